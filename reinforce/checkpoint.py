"""Reading and writing weights and run folders: safetensors and JSON only, never pickle.

Weights are always stored in the torch layout (see ``reinforce_jax.export``) whichever
backend trained them, so any run folder can be evaluated, recorded or pushed by either backend.
Files are written atomically (a temporary file in the same folder, then a rename).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np


class CheckpointError(ValueError):
    """A run folder or weights file that cannot be used; the message says which and why."""


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def save_weights(path: Path, state: dict[str, np.ndarray], metadata: dict[str, str] | None = None
                 ) -> None:
    from safetensors.numpy import save

    arrays = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in state.items()}
    atomic_write_bytes(Path(path), save(arrays, metadata=metadata))


def load_weights(path: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"missing weights file {path}")
    try:
        return load(path.read_bytes())
    except Exception as exc:  # safetensors raises its own error types for corrupt files
        raise CheckpointError(f"corrupt weights file {path}: {exc}") from None


def read_json(path: Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"missing file {path}")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"corrupt JSON file {path}: {exc}") from None


def expected_shapes(observation_size: int, num_actions: int, hidden_sizes) -> dict[str, tuple]:
    widths = (observation_size, *hidden_sizes, num_actions)
    shapes: dict[str, tuple] = {}
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        shapes[f"layers.{i}.weight"] = (b, a)
        shapes[f"layers.{i}.bias"] = (b,)
    return shapes


def check_architecture(state: dict[str, np.ndarray], observation_size: int, num_actions: int,
                       hidden_sizes, source: Path | str) -> None:
    want = expected_shapes(observation_size, num_actions, hidden_sizes)
    got = {k: tuple(v.shape) for k, v in state.items()}
    if got != want:
        raise CheckpointError(
            f"weights in {source} do not fit the architecture {observation_size}->"
            f"{'->'.join(map(str, hidden_sizes))}->{num_actions} (got shapes {got})"
        )
    for name, value in state.items():
        if not np.all(np.isfinite(value)):
            raise CheckpointError(f"weights in {source} hold non-finite values ({name})")


def load_policy_folder(path: Path):
    """A torch ``Policy`` from a folder with ``config.json`` and ``model.safetensors``."""
    import torch

    from reinforce_torch.policy import CONFIG_NAME, WEIGHTS_NAME, Policy

    path = Path(path)
    config = read_json(path / CONFIG_NAME)
    try:
        arch = (int(config["observation_size"]), int(config["num_actions"]),
                tuple(int(h) for h in config["hidden_sizes"]))
    except (KeyError, TypeError, ValueError):
        raise CheckpointError(f"{path / CONFIG_NAME} does not describe a policy") from None
    state = load_weights(path / WEIGHTS_NAME)
    check_architecture(state, *arch, source=path / WEIGHTS_NAME)
    policy = Policy(*arch)
    policy.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in state.items()})
    return policy.eval()
