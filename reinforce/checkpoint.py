"""Reading and writing weights and run folders: safetensors and JSON only, never pickle.

Weights are always stored in the export format (``reinforce.architecture``: the torch layout)
whichever backend trained them, so any run folder can be evaluated, recorded or pushed by either
backend.
Files are written atomically (a temporary file in the same folder, then a rename).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


class CheckpointError(ValueError):
    """A run folder or weights file that cannot be used; the message says which and why."""


class DiskFullError(OSError):
    """A file could not be written for want of space; the message names the file and the free
    space. The file written before, if any, is untouched (writes are atomic)."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        super().__init__(errno.ENOSPC, f"no space left on the device to write {self.path} "
                                       f"({_free_space(self.path)} free there)")

    def __str__(self) -> str:
        return self.strerror


def format_bytes(n: float) -> str:
    """A size for a message: ``1.6 PB``, ``19.2 GB``, ``512 B``."""
    if n >= 1e18:
        return f"{n:.1e} bytes"
    for unit, size in (("PB", 1e15), ("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n:.0f} B"


def _free_space(path: Path) -> str:
    for folder in (path.parent, *path.parents):
        try:
            return format_bytes(shutil.disk_usage(folder).free)
        except OSError:
            continue
    return "unknown"


def disk_full(exc: OSError, path: Path | str) -> OSError:
    """``exc`` as a :class:`DiskFullError` when it says the disk (or a quota) is full."""
    if isinstance(exc, DiskFullError) or exc.errno not in (errno.ENOSPC, errno.EDQUOT):
        return exc
    return DiskFullError(exc.filename or path)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """``data`` to ``path`` through a temporary file in the same folder, flushed and renamed
    over it: a crash, a kill or a full disk never leaves a half-written file, and the file
    written before stays as it was. A full disk raises :class:`DiskFullError`."""
    path = Path(path)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise disk_full(exc, path) from None
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def make_writable_dir(path: Path) -> None:
    """Create ``path`` if needed and check a file can be written there (``OSError`` if not)."""
    path.mkdir(parents=True, exist_ok=True)
    probe = path / ".write-test"
    probe.write_text("")
    probe.unlink()


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def save_weights(path: Path, state: dict[str, np.ndarray], metadata: dict[str, str] | None = None
                 ) -> None:
    from safetensors.numpy import save

    arrays = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in state.items()}
    atomic_write_bytes(Path(path), save(arrays, metadata=metadata))


def save_arrays(path: Path, arrays: dict[str, np.ndarray], metadata: dict[str, str] | None = None
                ) -> None:
    """Named arrays of any dtype (and string metadata) to one safetensors file, atomically."""
    from safetensors.numpy import save

    arrays = {k: np.asarray(v, order="C") for k, v in arrays.items()}  # keeps 0-d arrays 0-d
    atomic_write_bytes(Path(path), save(arrays, metadata=metadata))


def load_arrays(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The arrays and the metadata of a safetensors file; a clear error if it is damaged."""
    from safetensors.numpy import load

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"missing file {path}")
    data = path.read_bytes()
    try:
        arrays = load(data)
        header_size = int.from_bytes(data[:8], "little")
        metadata = json.loads(data[8:8 + header_size]).get("__metadata__") or {}
    except Exception as exc:  # safetensors raises its own error types for corrupt files
        raise CheckpointError(f"corrupt safetensors file {path}: {exc}") from None
    return arrays, metadata


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


# --- training checkpoints ------------------------------------------------------------------

#: A run folder's training checkpoint: ``checkpoint/state.safetensors`` holds every array of
#: the training state (weights, optimizer moments and counts, RNG states, metrics so far) and,
#: in its metadata, the progress record; ``checkpoint/progress.json`` is the same record for
#: people and scripts. Each file is replaced atomically; the state file alone is enough.
CHECKPOINT_DIR = "checkpoint"
STATE_NAME = "state.safetensors"
PROGRESS_NAME = "progress.json"
CHECKPOINT_FORMAT = "reinforce-checkpoint/2"


@dataclass(frozen=True)
class TrainingCheckpoint:
    arrays: dict[str, np.ndarray]
    progress: dict[str, Any]


def save_checkpoint(directory: Path, arrays: dict[str, np.ndarray], progress: dict[str, Any]
                    ) -> None:
    directory = Path(directory)
    directory.mkdir(exist_ok=True)
    record = json.dumps(progress)
    save_arrays(directory / STATE_NAME, arrays,
                {"format": CHECKPOINT_FORMAT, "progress": record})
    atomic_write_text(directory / PROGRESS_NAME, json.dumps(progress, indent=2))
    for stale in directory.glob(".*.tmp"):  # left by a process killed while writing
        stale.unlink(missing_ok=True)


def update_progress(directory: Path, **fields: Any) -> None:
    """Change fields of ``progress.json`` only (a status, an error); the state stays as it is."""
    path = Path(directory) / PROGRESS_NAME
    progress = read_json(path) if path.is_file() else {}
    atomic_write_text(path, json.dumps({**progress, **fields}, indent=2))


def load_checkpoint(directory: Path) -> TrainingCheckpoint:
    directory = Path(directory)
    state_file = directory / STATE_NAME
    if not state_file.is_file():
        raise CheckpointError(f"{directory.parent} has no checkpoint to resume "
                              f"({state_file} is missing)")
    if not isinstance(read_json(directory / PROGRESS_NAME), dict):
        raise CheckpointError(f"corrupt progress file {directory / PROGRESS_NAME}")
    arrays, metadata = load_arrays(state_file)
    if metadata.get("format") == "reinforce-checkpoint/1":
        raise CheckpointError(f"{state_file} was written by an earlier version of reinforce, "
                              "whose checkpoint layout this version does not read; finish the "
                              "run with that version, or train it again")
    if metadata.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{state_file} is not a reinforce training checkpoint "
                              f"(format {metadata.get('format')!r})")
    try:
        progress = json.loads(metadata["progress"])
        if not isinstance(progress, dict):
            raise TypeError("not an object")
    except (KeyError, TypeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{state_file} holds no valid progress record: {exc}") from None
    return TrainingCheckpoint(arrays, progress)


def take(arrays: dict[str, np.ndarray], name: str, source: Path | str, shape: tuple | None = None,
         dtype: Any = None) -> np.ndarray:
    """``arrays[name]``, checked for presence, shape and dtype (a clear error otherwise)."""
    if name not in arrays:
        raise CheckpointError(f"{source} has no array {name!r}")
    value = arrays[name]
    if shape is not None and tuple(value.shape) != tuple(shape):
        raise CheckpointError(f"{source}: {name!r} has shape {tuple(value.shape)}, "
                              f"expected {tuple(shape)}")
    if dtype is not None and value.dtype != np.dtype(dtype):
        raise CheckpointError(f"{source}: {name!r} has dtype {value.dtype}, "
                              f"expected {np.dtype(dtype)}")
    return value
