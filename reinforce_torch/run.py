"""Many torch runs, one after the other: the run loop and its checkpoints.

:func:`train_many` trains every (seed, learning rate) run of one config with the algorithm's
:class:`~reinforce_torch.algorithm.Trainer`, one run after the other, and evaluates each when
it is done, under the run loop both backends share (``reinforce.loop``: checkpoints, stop
requests, non-finite values, progress).
"""

from __future__ import annotations

import time

import numpy as np

from reinforce.backend import (
    METRIC_NAMES,
    Metrics,
    RunSeries,
    Supervisor,
    TrainResult,
    evaluation_seed,
    run_arrays,
    run_series,
)
from reinforce.checkpoint import CheckpointError, TrainingCheckpoint
from reinforce.config import RunSpec, TrainConfig
from reinforce.loop import Boundary, NonFinite, checkpoint_runs, drive
from reinforce_torch.algorithm import Trainer

#: Errors torch raises on non-finite values, and what they mean.
_NON_FINITE_ERRORS = {
    "probability tensor contains": "action probabilities (the policy's outputs overflow)",
    "without overflow": "Adam step (learning rate x update overflows float32)",
}


def train_many(
    cfg: TrainConfig,
    runs: list[RunSpec],
    *,
    supervisor: Supervisor | None = None,
    on_progress=None,
    device: str = "cpu",
) -> TrainResult:
    """Train the runs (run i: seed ``runs[i].seed``, with its own settings
    ``runs[i].settings``, e.g. a learning rate) one after the other on ``device``
    (``reinforce_torch.devices``), each evaluated when it is done on
    ``cfg.n_evaluation_episodes`` episodes from
    ``reinforce.backend.evaluation_seed(seed)``.

    ``on_progress(updates_done, mean_recent_return)`` is called every ``cfg.chunk_updates``
    updates. A checkpoint is saved at the start, after every run and when
    ``supervisor.due()`` (at chunk boundaries); a stop request is honoured between updates
    (checkpoint, then ``supervisor.stopped``); a non-finite loss, gradient or weight raises
    ``supervisor.non_finite``; ``supervisor.resume`` continues a checkpoint, ending with
    exactly the numbers of an uninterrupted run.
    """
    n_runs = len(runs)
    supervisor = supervisor or Supervisor.for_runs(runs, n_runs * cfg.n_updates)
    updates = _RunsInTurn(cfg, runs, supervisor, device)
    drive(updates, supervisor, on_progress)
    finished = [_series(run, r) for r, run in enumerate(updates.finished)]
    return TrainResult(
        weights=[_weights(run.state) for run in finished],
        metrics=Metrics(*(np.stack([getattr(run.metrics, m) for run in finished])
                          for m in METRIC_NAMES)),
        wall=np.stack([run.wall for run in finished]),
        eval_returns=np.stack([run.eval_returns for run in finished]),
    )


class _RunsInTurn:
    """The torch side of the run loop (``reinforce.loop.Updates``): one update of the run in
    progress per step; a run ends with its evaluation, and the next one starts at the next
    step."""

    def __init__(self, cfg: TrainConfig, runs: list[RunSpec], supervisor: Supervisor,
                 device: str):
        self.cfg, self.runs, self.device = cfg, runs, device
        self.wall_offset = supervisor.wall_offset
        self.start = time.perf_counter()
        self.finished: list[dict[str, np.ndarray]] = []  # finished runs' checkpoint arrays
        current: RunSeries | None = None
        if supervisor.resume is not None:
            self.finished, current = restore(supervisor.resume, cfg, len(runs))
        self.total = len(runs) * cfg.n_updates
        self.r = len(self.finished)  # the run in progress (or the last one, when all are done)
        self.trainer: Trainer | None = None
        self.series: list[Metrics] = []
        self.times: list[float] = []
        if self.r < len(runs):
            self._start_run()
            if current is not None:
                self.trainer.load_state_arrays(current.state, "the checkpoint")
                self.series = _unstack(current.metrics)
                self.times = [float(t) for t in current.wall]
        elif self.finished:  # all trained: the last run's metrics, for the progress bar
            self.series = _unstack(_series(self.finished[-1], self.r - 1).metrics)
        self.done = len(self.finished) * cfg.n_updates + len(self.times)

    def _start_run(self) -> None:
        spec = self.runs[self.r]
        self.trainer = Trainer(spec.config(self.cfg), spec.seed, self.device)
        self.series, self.times = [], []

    def step(self) -> Boundary:
        if self.trainer is None:  # the previous run ended: the next one starts
            self.r += 1
            self._start_run()
        n_updates = self.cfg.n_updates
        where = self._label(len(self.series) + 1)
        try:
            m = self.trainer.update()
        except RuntimeError as exc:  # torch refuses some non-finite values itself
            if (what := _non_finite_error(exc)) is None:
                raise
            raise NonFinite(what, where, self.r) from None
        if (what := self.trainer.non_finite(m)) is not None:
            raise NonFinite(what, where, self.r)
        self.series.append(m)
        self.times.append(self.wall_offset + time.perf_counter() - self.start)
        self.done += 1
        if len(self.series) == n_updates:
            eval_returns = self.trainer.evaluate(self.cfg.n_evaluation_episodes,
                                                 evaluation_seed(self.runs[self.r].seed))
            self.finished.append(run_arrays(self.r, self.trainer.state_arrays(),
                                            _stack(self.series), self.times, eval_returns))
            self.trainer = None
            return Boundary.RUN
        return Boundary.CHUNK if len(self.series) % self.cfg.chunk_updates == 0 \
            else Boundary.NONE

    def _label(self, u: int) -> str:
        n_runs = len(self.runs)
        return (f"update {u}/{self.cfg.n_updates}"
                + (f" of run {self.r + 1}/{n_runs}" if n_runs > 1 else ""))

    def label(self) -> str:
        return self._label(len(self.series))

    def arrays(self) -> dict[str, np.ndarray]:
        out = {k: v for run in self.finished for k, v in run.items()}
        if self.trainer is not None:
            out.update(run_arrays(self.r, self.trainer.state_arrays(), _stack(self.series),
                                  self.times))
        return out

    def recent_return(self) -> float:
        recent = self.series[-max(1, min(len(self.series), self.cfg.chunk_updates) // 5):]
        return sum(m.episodic_return for m in recent) / max(1, len(recent))

    def agree(self, stop: bool) -> bool:
        return stop


def _non_finite_error(exc: RuntimeError) -> str | None:
    return next((what for text, what in _NON_FINITE_ERRORS.items() if text in str(exc)), None)


def _stack(series: list[Metrics]) -> Metrics:
    """Per-update metrics as one series per name."""
    return Metrics(*(np.asarray([getattr(m, name) for m in series]) if series else np.zeros(0)
                     for name in METRIC_NAMES))


def _unstack(metrics: Metrics) -> list[Metrics]:
    """One ``Metrics`` of numbers per update from one series per name (:func:`_stack`
    undone)."""
    return [Metrics(*(v.item() for v in values)) for values in zip(*metrics, strict=True)]


def _series(arrays: dict[str, np.ndarray], r: int) -> RunSeries:
    return run_series(TrainingCheckpoint(arrays, {}), r, "the run")


def _weights(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The export-format weights in a trainer's state arrays (the policy's state dict; the
    value network is training state, not exported)."""
    return {k[len("policy/"):]: v for k, v in state.items() if k.startswith("policy/")}


def restore(checkpoint: TrainingCheckpoint, cfg: TrainConfig, n_runs: int,
            source: str = "the checkpoint") -> tuple[list[dict[str, np.ndarray]], RunSeries | None]:
    """``(finished runs' arrays, the current run's series or None)`` of a checkpoint: runs
    0..k-1 finished (evaluated), then at most the run in progress."""
    finished: list[dict[str, np.ndarray]] = []
    current = None
    for r, run in enumerate(checkpoint_runs(checkpoint, "torch", n_runs, source)):
        if current is not None:
            raise CheckpointError(f"{source} holds a run after the one in progress")
        if run.eval_returns is None:
            current = run
            continue
        if len(run.wall) != cfg.n_updates:
            raise CheckpointError(f"{source}: finished run {r} has {len(run.wall)} updates, "
                                  f"expected {cfg.n_updates}")
        prefix = f"runs/{r}/"
        finished.append({k: v for k, v in checkpoint.arrays.items() if k.startswith(prefix)})
    if current is not None and int(current.state.get("updates_done", -1)) != len(current.wall):
        raise CheckpointError(f"{source}: the current run's metrics and state disagree")
    return finished, current


def check_checkpoint(cfg: TrainConfig, runs: list[RunSpec], checkpoint: TrainingCheckpoint,
                     source: str = "the checkpoint") -> None:
    """Raise ``CheckpointError`` unless :func:`train_many` can resume ``checkpoint``."""
    finished, current = restore(checkpoint, cfg, len(runs), source)
    states = [_series(arrays, r).state for r, arrays in enumerate(finished)]
    for r, state in enumerate([*states, *([current.state] if current is not None else [])]):
        Trainer(runs[r].config(cfg), runs[r].seed).load_state_arrays(state, source)
