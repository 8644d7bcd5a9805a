"""The torch backend's ``--device`` values."""

from __future__ import annotations

import pytest
import torch

from reinforce.config import ConfigError
from reinforce_torch.devices import torch_device


def test_auto_is_cuda_where_torch_sees_it_else_the_cpu():
    assert torch_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert torch_device("cpu") == torch.device("cpu")


def test_unknown_devices_are_refused():
    with pytest.raises(ConfigError, match="unknown device 'gpu'; choose one of auto, cpu, cuda"):
        torch_device("gpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_says_so():
    with pytest.raises(ConfigError, match="--device cuda: torch sees no CUDA device"):
        torch_device("cuda")
