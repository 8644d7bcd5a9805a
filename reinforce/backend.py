"""The contract both backends implement, and the types they share.

A backend (``reinforce_jax.backend.BACKEND``, ``reinforce_torch.backend.BACKEND``) trains many
runs of one :class:`~reinforce.config.TrainConfig` (run ``i``: ``runs[i]``, a
:class:`~reinforce.config.RunSpec`: its seed and its own values of the settings that may vary
between runs, such as the learning rate), resumes them from a checkpoint, evaluates a policy
and hands back every run's weights in the export format. Everything above the backends (run
folders, the CLI, the Hub, the benchmarks) goes through :class:`Backend` and never asks which
backend it has.

What a backend returns and what a training loop may ask of its supervisor are defined here
once, for both:

* :class:`Metrics`: one value per update, the same names and meaning in both backends;
* :class:`TrainResult`: weights (export format), metrics, wall times and evaluation returns of
  every run;
* :func:`evaluation_seed`: the seed a run's final evaluation plays from;
* the checkpoint layout (:func:`run_arrays`, :func:`run_series`): per run, its training state,
  its metrics so far and their wall times;
* :class:`Supervisor`: stop requests, checkpoints and non-finite checks, seen from the loop
  (the run folders' ``reinforce.app.session.Session`` is the one that writes files).
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import numpy as np

from reinforce.checkpoint import CheckpointError, TrainingCheckpoint, take
from reinforce.config import RunSpec, TrainConfig


class Metrics(NamedTuple):
    """Per update, in both backends (in a result: numpy ``[runs, updates]``)."""

    episodic_return: Any  # mean undiscounted return of the update's episodes
    episode_length: Any  # their mean length
    policy_loss: Any  # -sum(log pi(a|s) * G) / B
    env_steps: Any  # live steps: steps of episodes
    padded_steps: Any  # steps computed for envs whose episode had already ended
    entropy: Any  # mean entropy of the policy over the learned steps (nats)
    value_loss: Any  # 0.5 * sum (V(s) - G)^2 / B over the learned steps (0: no value baseline)


METRIC_NAMES = Metrics._fields
#: Metrics a checkpoint of an earlier version may lack (they resume as NaN for its updates).
LATER_METRICS = ("entropy", "value_loss")


class TrainResult(NamedTuple):
    """What a backend's ``train_many`` returns for ``R`` runs of ``U`` updates."""

    # per run, the export format (Architecture.expected_shapes)
    weights: list[dict[str, np.ndarray]]
    metrics: Metrics  # numpy [R, U]
    wall: np.ndarray  # [R, U]: seconds since the start of training when each update ended
    eval_returns: np.ndarray  # [R, n_evaluation_episodes]: the final evaluation


#: A run's final evaluation plays from its seed plus this.
EVALUATION_SEED_OFFSET = 10_000


def evaluation_seed(seed: int) -> int:
    """The seed the final evaluation of a run trained with ``seed`` plays from: the same
    episodes a ``reinforce evaluate RUN --seed`` of this number plays, on the same backend."""
    return int(seed) + EVALUATION_SEED_OFFSET


# --- supervision of a training loop ----------------------------------------------------------


class TrainingError(RuntimeError):
    """Training cannot go on (a non-finite loss, gradient or weight); the message says where."""


class TrainingStopped(Exception):
    """Training stopped early with a checkpoint saved: by a signal (``signum``: Ctrl-C's
    SIGINT, a scheduler's SIGTERM, a closed terminal's SIGHUP) or as asked (a stop after N
    updates)."""

    def __init__(self, message: str, by_signal: bool, signum: int = signal.SIGINT):
        super().__init__(message)
        self.by_signal, self.signum = by_signal, int(signum)

    @property
    def exit_code(self) -> int:
        """What the command line exits with: 128 + the signal's number (Ctrl-C: 130, SIGTERM:
        143), 0 for a stop that was asked for."""
        return 128 + self.signum if self.by_signal else 0


class StopFlag:
    """Set by a signal handler (or a test); read by the training loop between updates.
    ``signum`` is the signal that set it (SIGINT when set by hand)."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.signum: int = signal.SIGINT

    def set(self, signum: int = signal.SIGINT) -> None:
        if not self._event.is_set():
            self.signum = int(signum)
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()


@dataclass
class Supervisor:
    """What a training loop asks between updates, and the errors it raises.

    The loop asks :meth:`should_stop` between compiled chunks (JAX) or updates (torch), calls
    :meth:`save` at the start, whenever :meth:`due`, at a stop and at the end, raises
    :meth:`stopped` after a stop's checkpoint and :meth:`non_finite` for a value that is not
    finite. This base class keeps no files: :meth:`save` only records where training was
    (``reinforce.app.session.Session`` writes the checkpoint). ``total_updates`` counts updates
    as the progress bar does (:meth:`Backend.total_updates`).
    """

    run_names: list[str]  # "seed=0 lr=0.05", for messages
    total_updates: int
    every_seconds: float = 60.0
    stop_after: int | None = None  # stop once this many (total) updates are done
    stop_flag: StopFlag = field(default_factory=StopFlag)
    stop_when: Callable[[int], bool] | None = None  # tests: stop when this says so
    resume: TrainingCheckpoint | None = None
    wall_offset: float = 0.0  # wall seconds of the training before a resume
    last_saved: int | None = None  # total updates done at the last checkpoint
    last_saved_label: str = ""
    _last_time: float = field(default_factory=time.perf_counter)
    _start: float = field(default_factory=time.perf_counter)

    @classmethod
    def for_runs(cls, runs: list[RunSpec], total_updates: int, **kwargs: Any) -> Supervisor:
        return cls([spec.label() for spec in runs], total_updates, **kwargs)

    def should_stop(self, total_done: int) -> bool:
        if self.stop_flag.is_set():
            return True
        if self.stop_after is not None and total_done >= self.stop_after:
            return True
        return self.stop_when is not None and bool(self.stop_when(total_done))

    def due(self) -> bool:
        return time.perf_counter() - self._last_time >= self.every_seconds

    def wall_seconds(self) -> float:
        return self.wall_offset + time.perf_counter() - self._start

    def save(self, arrays: Callable[[], dict[str, np.ndarray]], total_done: int, label: str,
             status: str = "running") -> None:
        """A checkpoint of ``arrays()`` at ``total_done`` updates; ``label`` says where, e.g.
        "update 40/100". Here nothing is written."""
        self._last_time = time.perf_counter()
        self.last_saved, self.last_saved_label = int(total_done), label

    def stopped(self, label: str) -> TrainingStopped:
        """The exception to raise once the checkpoint of a stop is saved."""
        how = "interrupted" if self.stop_flag.is_set() else "stopped"
        return TrainingStopped(f"{how} at {label}; no checkpoint", self.stop_flag.is_set(),
                               self.stop_flag.signum)

    def non_finite(self, what: str, label: str, run: int) -> TrainingError:
        """The error for a non-finite value in run ``run``."""
        return TrainingError(f"non-finite {what} at {label} (run {self.run_names[run]}); no "
                             "checkpoint was written; try a smaller learning rate (--lr)")


def first_non_finite(named: dict[str, np.ndarray]) -> tuple[str, int] | None:
    """``(name, run)`` of the first array (leading axis = runs) holding a non-finite value."""
    for name, value in named.items():
        value = np.asarray(value)
        if not np.issubdtype(value.dtype, np.floating):
            continue
        bad = ~np.isfinite(value.reshape(value.shape[0], -1)).all(axis=1)
        if bad.any():
            return name, int(np.argmax(bad))
    return None


# --- the checkpoint layout -------------------------------------------------------------------
#
# A training checkpoint (``reinforce.checkpoint.save_checkpoint``) holds, for every run ``r``
# that has started, named numpy arrays:
#
#     runs/<r>/state/<name>        the backend's training state of the run: weights, optimizer
#                                  moments and counts, RNG states, the update counter
#     runs/<r>/metrics/<metric>    [updates done] one value per update (METRIC_NAMES)
#     runs/<r>/wall                [updates done] float64, seconds since the start of training
#     runs/<r>/eval_returns        [n_evaluation_episodes], once the run is evaluated
#
# and a progress record (backend, status, where, updates done, the run folder's identity).


def run_arrays(r: int, state: dict[str, np.ndarray] | None, metrics: Metrics, wall,
               eval_returns=None) -> dict[str, np.ndarray]:
    """The checkpoint arrays of run ``r``: its state (if still training), its metrics so far
    (``Metrics`` of 1-d series), their wall times, its evaluation (once evaluated)."""
    out = {f"runs/{r}/state/{k}": np.asarray(v) for k, v in (state or {}).items()}
    for name in METRIC_NAMES:
        out[f"runs/{r}/metrics/{name}"] = np.asarray(getattr(metrics, name))
    out[f"runs/{r}/wall"] = np.asarray(wall, np.float64)
    if eval_returns is not None:
        out[f"runs/{r}/eval_returns"] = np.asarray(eval_returns)
    return out


class RunSeries(NamedTuple):
    """A run's part of a checkpoint (see :func:`run_arrays`)."""

    state: dict[str, np.ndarray]  # empty once the run's state was dropped
    metrics: Metrics  # 1-d series, one value per update done
    wall: np.ndarray
    eval_returns: np.ndarray | None


def run_series(checkpoint: TrainingCheckpoint, r: int, source: str) -> RunSeries | None:
    """Run ``r``'s arrays in ``checkpoint`` (None if it has none), checked for agreement."""
    prefix = f"runs/{r}/"
    if not any(k.startswith(prefix) for k in checkpoint.arrays):
        return None
    arrays = checkpoint.arrays
    wall = take(arrays, prefix + "wall", source)
    series = {name: (np.full(wall.shape, np.nan, np.float32)
                     if name in LATER_METRICS and f"{prefix}metrics/{name}" not in arrays
                     else take(arrays, f"{prefix}metrics/{name}", source))
              for name in METRIC_NAMES}
    for name, value in series.items():
        if value.shape != wall.shape or value.ndim != 1:
            raise CheckpointError(f"{source}: {prefix}metrics/{name} has shape {value.shape}, "
                                  f"but {prefix}wall has {wall.shape}")
    state = {k[len(prefix) + len("state/"):]: v for k, v in arrays.items()
             if k.startswith(prefix + "state/")}
    evaluated = arrays.get(prefix + "eval_returns")
    return RunSeries(state, Metrics(**series), wall, evaluated)


def check_backend(checkpoint: TrainingCheckpoint, backend: str, source: str) -> None:
    """Refuse a checkpoint written by another backend."""
    saved = checkpoint.progress.get("backend")
    if saved != backend:
        raise CheckpointError(f"{source} holds {saved} training state, not {backend}; a "
                              "training state resumes only on its own backend")


# --- the contract ----------------------------------------------------------------------------


class Backend(Protocol):
    """What the application needs of a backend."""

    #: "jax" or "torch": what run folders and checkpoints record.
    name: str
    #: True when runs train one after the other (the progress counts the updates of all runs,
    #: ``reinforce.app.backends.total_updates``), False when they train side by side.
    runs_in_sequence: bool
    #: True when one training can span several processes (``--coordinator``).
    multi_process: bool

    def check_device(self, device: str) -> None:
        """Raise ``ConfigError`` unless the backend can compute on ``device``
        (``reinforce.config.DEVICES``)."""

    def describe_devices(self, device: str, n_runs: int) -> str:
        """Where ``n_runs`` runs would train, e.g. "2 CPU devices" or "cuda"."""

    def memory(self, cfg: TrainConfig, n_runs: int, device: str):
        """The memory ``n_runs`` runs would need on ``device``: a ``reinforce.memory.Estimate``
        (from shapes only; nothing is allocated or compiled)."""

    def train_many(self, cfg: TrainConfig, runs: list[RunSpec], *,
                   supervisor: Supervisor | None = None,
                   on_progress: Callable[[int, float], None] | None = None,
                   device: str = "cpu") -> TrainResult:
        """Train the runs (resuming ``supervisor.resume`` if set), then evaluate each on
        ``cfg.n_evaluation_episodes`` episodes from :func:`evaluation_seed`."""

    def check_checkpoint(self, cfg: TrainConfig, runs: list[RunSpec],
                         checkpoint: TrainingCheckpoint, source: str) -> None:
        """Raise ``CheckpointError`` unless ``train_many`` can resume ``checkpoint``."""

    def evaluate(self, cfg: TrainConfig, weights: dict[str, np.ndarray], n_episodes: int,
                 seed: int, device: str = "cpu") -> np.ndarray:
        """Undiscounted returns of ``n_episodes`` episodes of the policy with ``weights``
        (export format), actions sampled, played from ``seed``."""
