"""Runs that survive: checkpoints, stop requests (Ctrl-C) and non-finite checks, both backends.

A :class:`Session` goes into a backend's ``train_many``. The training loop

* asks :meth:`Session.should_stop` between compiled chunks of updates (JAX: a compiled call
  cannot be interrupted) or between updates (torch); when it says yes (Ctrl-C, SIGTERM or
  SIGHUP: :func:`stop_on_signals`; ``--stop-after``), the loop saves a checkpoint and raises
  :class:`TrainingStopped`;
* saves a checkpoint at the start, whenever :meth:`Session.due` (at most every
  ``every_seconds``, at chunk boundaries), at a stop and at the end of training;
* checks the loss, the gradients (or the optimizer moments built from them) and the weights,
  and raises :class:`TrainingError` naming the update when one is not finite, without saving:
  the last checkpoint, which was checked, stays the last good one.

What the arrays are is the backend's business (flat, stably named arrays, no pickle); the
session owns where and when they are written, and the progress record that goes with them.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from reinforce.backend import StopFlag, Supervisor, TrainingError, TrainingStopped
from reinforce.checkpoint import (
    CHECKPOINT_DIR,
    CHECKPOINT_FORMAT,
    CheckpointError,
    TrainingCheckpoint,
    save_checkpoint,
    update_progress,
)
from reinforce.config import RunSpec, TrainConfig

#: Seconds between periodic checkpoints unless told otherwise (``--checkpoint-every``).
DEFAULT_CHECKPOINT_SECONDS = 60.0


#: The signals that stop a training gracefully, and how a message names each.
STOP_SIGNALS = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM", signal.SIGHUP: "SIGHUP"}


@contextmanager
def stop_on_signals(flag: StopFlag | None = None) -> Iterator[StopFlag]:
    """While inside, the first Ctrl-C (SIGINT), SIGTERM or SIGHUP sets ``flag``: training stops
    after the updates in progress, saves a checkpoint and raises ``TrainingStopped`` (exit
    128 + the signal's number: 130, 143, 129). A second one of the same signal ends the process
    at once.

    A scheduler (Slurm, Kubernetes, systemd, Colab) sends SIGTERM and waits a grace period
    before it kills: the period must cover the longest chunk of updates. The second signal gets
    the operating system's default action: a Python handler would only run once a compiled JAX
    call returns, minutes later for big chunks. Files are only ever replaced by a rename, so
    none is left half-written; the last checkpoint stands. The previous handlers are restored
    on exit. Outside the main thread (where no signal handler can be installed) the flag is
    only set by hand.
    """
    flag = flag or StopFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, frame):
        flag.set(signum)
        signal.signal(signum, signal.SIG_DFL)
        name = STOP_SIGNALS.get(signum, str(signum))
        again = "Ctrl-C again" if signum == signal.SIGINT else f"another {name}"
        with suppress(OSError):  # a raw write: safe even while the main thread prints
            os.write(2, f"\nreinforce: {name}: stopping after the updates in progress to save "
                        f"a checkpoint ({again} to quit at once, keeping the last one)\n"
                     .encode())

    previous = {signum: signal.signal(signum, handler) for signum in STOP_SIGNALS}
    try:
        yield flag
    finally:
        for signum, action in previous.items():
            signal.signal(signum, action)


def run_identity(config: dict[str, Any]) -> dict[str, Any]:
    """The fields of a run's ``config.json`` that a checkpoint must agree with."""
    keys = ("env_id", "backend", "observation_size", "observation_shape", "num_actions",
            "hidden_sizes", "convs", "runs",
            "train")
    return json.loads(json.dumps({k: config.get(k) for k in keys}))


@dataclass
class Session(Supervisor):
    """A :class:`~reinforce.backend.Supervisor` that checkpoints into a run folder: where and
    when a training loop saves, and the progress record that goes with the arrays.

    ``total_updates`` counts updates the way the progress bar does (all runs together when they
    train side by side, the sum over runs when they train one after the other).
    """

    directory: Path | None = None  # the checkpoint folder; None: no checkpoints
    backend: str = ""
    identity: dict[str, Any] = field(default_factory=dict)
    resume_command: str = ""

    def __post_init__(self) -> None:
        if self.resume is not None and self.last_saved is None:  # the checkpoint resumed from
            self.last_saved = int(self.resume.progress.get("total_updates_done", 0))
            self.last_saved_label = str(self.resume.progress.get("at", ""))

    @classmethod
    def for_run_folder(cls, path: Path, config: dict[str, Any], total_updates: int,
                       **kwargs: Any) -> Session:
        names = [RunSpec.from_dict(r).label() for r in config["runs"]]
        resume = kwargs.get("resume")
        if resume is not None:
            kwargs.setdefault("wall_offset", float(resume.progress.get("wall_seconds", 0.0)))
        return cls(names, total_updates, directory=Path(path) / CHECKPOINT_DIR,
                   backend=config["backend"], identity=run_identity(config),
                   resume_command=f"reinforce train --resume {_quote(path)}", **kwargs)

    def save(self, arrays: Callable[[], dict[str, np.ndarray]], total_done: int, label: str,
             status: str = "running") -> None:
        """Write a checkpoint of ``arrays()`` (called only when there is a checkpoint folder);
        ``label`` says where training is, e.g. "update 40/100"."""
        if self.directory is None:
            super().save(arrays, total_done, label, status)
            return
        progress = {
            "format": CHECKPOINT_FORMAT,
            "backend": self.backend,
            "status": status,
            "at": label,
            "total_updates_done": int(total_done),
            "total_updates": int(self.total_updates),
            "wall_seconds": round(self.wall_seconds(), 3),
            "config": self.identity,
        }
        save_checkpoint(self.directory, arrays(), progress)
        super().save(arrays, total_done, label, status)  # saved: the last good one

    def stopped(self, label: str) -> TrainingStopped:
        """The exception to raise once the checkpoint of a stop is saved."""
        where = f"checkpoint saved in {self.directory}" if self.directory else "no checkpoint"
        how = f"; resume with: {self.resume_command}" if self.resume_command else ""
        if self.directory is not None and self.last_saved is not None:
            update_progress(self.directory,
                            status="interrupted" if self.stop_flag.is_set() else "stopped")
        if self.stop_flag.is_set():
            signum = self.stop_flag.signum
            by = "" if signum == signal.SIGINT else f" by {STOP_SIGNALS.get(signum, signum)}"
            return TrainingStopped(f"interrupted{by} at {label}; {where}{how}", by_signal=True,
                                   signum=signum)
        return TrainingStopped(f"stopped at {label} as asked; {where}{how}", by_signal=False)

    def non_finite(self, what: str, label: str, run: int) -> TrainingError:
        """The error for a non-finite value; ``progress.json`` records it, the state is kept."""
        if self.last_saved is not None and self.directory is not None:
            kept = (f"the last good checkpoint ({self.last_saved_label}) is kept in "
                    f"{self.directory.parent}")
        else:
            kept = "no checkpoint was written"
        message = (f"non-finite {what} at {label} (run {self.run_names[run]}); {kept}; "
                   "try a smaller learning rate (--lr)")
        if self.directory is not None and self.last_saved is not None:
            update_progress(self.directory, status="failed", error=message)
        return TrainingError(message)

    def finished(self) -> None:
        """Mark ``progress.json`` finished once the run folder's results are all written."""
        if self.directory is not None and self.last_saved is not None:
            update_progress(self.directory, status="finished")


def _with_defaults(identity: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's saved ``identity`` with its train config completed by the defaults of
    settings added since it was written (a checkpoint of an earlier version lacks them), so that
    it still matches its run folder, whose identity is always complete."""
    train = identity.get("train")
    if not isinstance(train, dict):
        return identity
    try:
        complete = TrainConfig.from_dict(train).to_dict()
    except (TypeError, ValueError):
        return identity
    return {**identity, "train": complete}


def identity_diff(identity: dict[str, Any], other: dict[str, Any]) -> list[str]:
    """The fields in which two identities (:func:`run_identity`) differ: ``runs``,
    ``train.lr``, ..."""
    diff = [k for k in identity if other.get(k) != identity[k] and k != "train"]
    train, other_train = identity.get("train") or {}, other.get("train") or {}
    return diff + [f"train.{k}" for k in train if other_train.get(k) != train[k]]


def check_resumable(checkpoint: TrainingCheckpoint, identity: dict[str, Any],
                    source: Path | str) -> None:
    """Refuse a checkpoint of another backend, or one whose run config.json was changed."""
    progress = checkpoint.progress
    saved_backend, backend = progress.get("backend"), identity.get("backend")
    if saved_backend != backend:
        raise CheckpointError(
            f"{source} holds {saved_backend} training state but config.json says the run is "
            f"{backend}; a training state resumes only on the backend that wrote it"
        )
    saved = progress.get("config")
    if isinstance(saved, dict):
        saved = _with_defaults(saved)
    if not isinstance(saved, dict) or saved != identity:
        diff = identity_diff(identity, saved if isinstance(saved, dict) else {})
        raise CheckpointError(
            f"config.json no longer matches the checkpoint in {source} "
            f"({', '.join(diff) or 'config'} differ); restore config.json or train a new run"
        )
    for name in ("total_updates_done", "total_updates"):
        if not isinstance(progress.get(name), int):
            raise CheckpointError(f"{source}: progress record without {name}")


def _quote(path: Path | str) -> str:
    return shlex.quote(str(path))
