"""The run loop both backends share: what happens around their updates.

A backend supplies :class:`Updates`, its side of a training: it runs its next updates (JAX: a
compiled chunk; torch: one update of the run in progress), says where it is, and hands over
its checkpoint arrays. :func:`drive` does the rest, the same way for both:

* a checkpoint when training starts, whenever the supervisor says one is due (at a chunk
  boundary), after every run that ends on its own (runs that train one after the other), on a
  stop and at the end;
* stop requests (Ctrl-C, ``--stop-after``), asked before every step and agreed between
  processes (one process interrupted stops them all): checkpoint, then
  ``Supervisor.stopped``;
* non-finite values: the backend's step raises :class:`NonFinite` naming what and where, and
  the loop raises ``Supervisor.non_finite`` without saving, so that the last checkpoint (which
  was checked) stays the last good one;
* progress: ``on_progress(updates_done, recent_return)`` at every chunk boundary and once
  after a resume.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Protocol

import numpy as np

from reinforce.backend import RunSeries, Supervisor, check_backend, run_series
from reinforce.checkpoint import CheckpointError, TrainingCheckpoint


class Boundary(enum.Enum):
    """Where a step of :class:`Updates` ended."""

    NONE = "none"  # inside a chunk: nothing to report
    CHUNK = "chunk"  # a chunk of updates is done: report; checkpoint if due
    RUN = "run"  # a run that trains on its own is done (and evaluated): report and checkpoint


class NonFinite(Exception):
    """Raised by a step: ``what`` was not finite at ``label`` in run ``run``."""

    def __init__(self, what: str, label: str, run: int):
        super().__init__(f"non-finite {what} at {label}")
        self.what, self.label, self.run = what, label, run


class Updates(Protocol):
    """A backend's side of the run loop."""

    #: Updates done and to do, counted as the supervisor counts them (``total_updates``).
    done: int
    total: int

    def step(self) -> Boundary:
        """Run the next updates; :class:`NonFinite` if one left a value that is not finite."""

    def label(self) -> str:
        """Where training is, for checkpoints and messages, e.g. "update 40/100"."""

    def arrays(self) -> dict[str, np.ndarray]:
        """The checkpoint arrays of the training so far (``reinforce.backend.run_arrays``)."""

    def recent_return(self) -> float:
        """The mean episodic return of the latest updates, for the progress bar."""

    def agree(self, stop: bool) -> bool:
        """Whether any process asks to stop (one process alone: ``stop``)."""


def drive(updates: Updates, supervisor: Supervisor,
          on_progress: Callable[[int, float], None] | None = None) -> None:
    """Run ``updates`` to the end under ``supervisor`` (see the module's docstring)."""

    def save(status: str = "running") -> None:
        supervisor.save(updates.arrays, updates.done, updates.label(), status)

    def report() -> None:
        if on_progress is not None:
            on_progress(updates.done, updates.recent_return())

    if supervisor.resume is not None and updates.done:
        report()
    if supervisor.last_saved is None:
        save()  # the first checkpoint: training has started
    while updates.done < updates.total:
        asked = supervisor.should_stop(updates.done)
        if updates.agree(asked):
            if not asked:  # another process was interrupted (Ctrl-C): so is this one
                supervisor.stop_flag.set()
            if supervisor.last_saved != updates.done:
                save("interrupted" if supervisor.stop_flag.is_set() else "stopped")
            raise supervisor.stopped(updates.label())
        try:
            boundary = updates.step()
        except NonFinite as bad:
            raise supervisor.non_finite(bad.what, bad.label, bad.run) from None
        if boundary is Boundary.NONE:
            continue
        report()
        if boundary is Boundary.RUN:
            save("trained" if updates.done >= updates.total else "running")
        elif supervisor.due() and updates.done < updates.total:
            save()
    if supervisor.last_saved != updates.done:
        save("trained")


def checkpoint_runs(checkpoint: TrainingCheckpoint, backend: str, n_runs: int, source: str
                    ) -> list[RunSeries]:
    """The runs a checkpoint of ``backend`` holds, in order (run 0, 1, ... up to the first one
    it lacks), refusing a checkpoint of another backend or one with more than ``n_runs``."""
    check_backend(checkpoint, backend, source)
    runs: list[RunSeries] = []
    while (run := run_series(checkpoint, len(runs), source)) is not None:
        if len(runs) == n_runs:
            raise CheckpointError(f"{source} holds more than the {n_runs} run(s) of this "
                                  "training")
        runs.append(run)
    return runs
