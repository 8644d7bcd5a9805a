"""Which device the torch backend computes on: ``auto`` (CUDA when torch sees it), ``cpu`` or
``cuda``.

Only the network runs there. The envs and the returns stay on the host (numpy and host-side
JAX), and actions are drawn on the host from the policy's probabilities with the run's CPU
generator, so a checkpoint holds the same arrays whatever the device: a run trained on CUDA
resumes or evaluates on a machine without it, and the other way round.
"""

from __future__ import annotations

import torch

from reinforce import memory
from reinforce.config import DEVICES, ConfigError


def torch_device(name: str = "auto") -> torch.device:
    """The ``torch.device`` for a ``--device`` value; ``ConfigError`` for an unknown value or
    for ``cuda`` where torch sees no CUDA device."""
    if name not in DEVICES:
        raise ConfigError(f"unknown device {name!r}; choose one of {', '.join(DEVICES)}")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            build = f"torch {torch.__version__}" + ("" if torch.version.cuda else ", a CPU build")
            raise ConfigError(f"--device cuda: torch sees no CUDA device ({build}); use "
                              "--device cpu or auto")
        # Full float32, as the JAX policy: no TF32 in matrix products or convolutions.
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    return torch.device(name)


def free_bytes(where: str) -> float | None:
    """Free memory of a place of ``reinforce.memory``'s estimates: the host's, or a CUDA
    device's as torch reports it."""
    if where.startswith("cuda"):
        free, _ = torch.cuda.mem_get_info(torch.device(where))
        return float(free)
    return memory.free_bytes(where)
