"""Many torch runs, one after the other: the run loop and its checkpoints.

:func:`train_many` trains every (seed, learning rate) run of one config with the algorithm's
:class:`~reinforce_torch.algorithm.Trainer`, one run after the other, and evaluates each when
it is done. Between updates it reports progress, checks that nothing went non-finite,
checkpoints and honours stop requests (``reinforce.backend.Supervisor``).
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
    check_backend,
    evaluation_seed,
    run_arrays,
    run_series,
)
from reinforce.checkpoint import CheckpointError, TrainingCheckpoint
from reinforce.config import RunSpec, TrainConfig
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
    start = time.perf_counter()
    n_runs, n_updates = len(runs), cfg.n_updates
    supervisor = supervisor or Supervisor.for_runs(runs, n_runs * n_updates)
    finished: list[dict[str, np.ndarray]] = []  # finished runs' checkpoint arrays
    current: RunSeries | None = None
    if supervisor.resume is not None:
        finished, current = restore(supervisor.resume, cfg, n_runs)
    total = len(finished) * n_updates + (len(current.wall) if current else 0)

    def label(r: int, u: int) -> str:
        return f"update {u}/{n_updates}" + (f" of run {r + 1}/{n_runs}" if n_runs > 1 else "")

    def save(r: int, trainer: Trainer | None, series: list[Metrics], times: list[float],
             status: str = "running") -> None:
        def arrays() -> dict[str, np.ndarray]:
            out = {k: v for run in finished for k, v in run.items()}
            if trainer is not None:
                out.update(run_arrays(r, trainer.state_arrays(), _stack(series), times))
            return out

        where = label(r, len(series)) if trainer else label(r - 1, n_updates)
        supervisor.save(arrays, total, where, status)

    def report(series: list[Metrics]) -> None:
        if on_progress is not None and series:
            recent = series[-max(1, min(len(series), cfg.chunk_updates) // 5):]
            on_progress(total, sum(m.episodic_return for m in recent) / len(recent))

    first = len(finished)
    for r in range(first, n_runs):
        trainer = Trainer(runs[r].config(cfg), runs[r].seed, device)
        series: list[Metrics] = []
        times: list[float] = []
        if current is not None and r == first:
            trainer.load_state_arrays(current.state, "the checkpoint")
            series = [Metrics(*(getattr(current.metrics, m)[u].item() for m in METRIC_NAMES))
                      for u in range(len(current.wall))]
            times = [float(t) for t in current.wall]
            report(series)
        elif supervisor.last_saved is None:
            save(r, trainer, series, times)  # the first checkpoint: training has started
        while len(series) < n_updates:
            if supervisor.should_stop(total):
                if supervisor.last_saved != total:
                    save(r, trainer, series, times,
                         "interrupted" if supervisor.stop_flag.is_set() else "stopped")
                raise supervisor.stopped(label(r, len(series)))
            try:
                m = trainer.update()
            except RuntimeError as exc:  # torch refuses some non-finite values itself
                if (what := _non_finite_error(exc)) is None:
                    raise
                raise supervisor.non_finite(what, label(r, len(series) + 1), r) from None
            if (what := trainer.non_finite(m)) is not None:
                raise supervisor.non_finite(what, label(r, len(series) + 1), r)
            series.append(m)
            times.append(supervisor.wall_offset + time.perf_counter() - start)
            total += 1
            if len(series) % cfg.chunk_updates == 0 or len(series) == n_updates:
                report(series)
                if supervisor.due() and len(series) < n_updates:
                    save(r, trainer, series, times)
        eval_returns = trainer.evaluate(cfg.n_evaluation_episodes,
                                        evaluation_seed(runs[r].seed))
        finished.append(run_arrays(r, trainer.state_arrays(), _stack(series), times,
                                   eval_returns))
        save(r + 1, None, series, times, "trained" if r + 1 == n_runs else "running")
    runs = [_series(run, r) for r, run in enumerate(finished)]
    return TrainResult(
        weights=[_weights(run.state) for run in runs],
        metrics=Metrics(*(np.stack([getattr(run.metrics, m) for run in runs])
                          for m in METRIC_NAMES)),
        wall=np.stack([run.wall for run in runs]),
        eval_returns=np.stack([run.eval_returns for run in runs]),
    )


def _non_finite_error(exc: RuntimeError) -> str | None:
    return next((what for text, what in _NON_FINITE_ERRORS.items() if text in str(exc)), None)


def _stack(series: list[Metrics]) -> Metrics:
    """Per-update metrics as one series per name."""
    return Metrics(*(np.asarray([getattr(m, name) for m in series]) if series else np.zeros(0)
                     for name in METRIC_NAMES))


def _series(arrays: dict[str, np.ndarray], r: int) -> RunSeries:
    return run_series(TrainingCheckpoint(arrays, {}), r, "the run")


def _weights(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The export-format weights in a trainer's state arrays (the policy's state dict; the
    value network is training state, not exported)."""
    return {k[len("policy/"):]: v for k, v in state.items() if k.startswith("policy/")}


def restore(checkpoint: TrainingCheckpoint, cfg: TrainConfig, n_runs: int,
            source: str = "the checkpoint") -> tuple[list[dict[str, np.ndarray]], RunSeries | None]:
    """``(finished runs' arrays, the current run's series or None)`` of a checkpoint."""
    check_backend(checkpoint, "torch", source)
    finished: list[dict[str, np.ndarray]] = []
    current = None
    for r in range(n_runs + 1):
        run = run_series(checkpoint, r, source)
        if run is None:
            break
        if r == n_runs or current is not None:
            raise CheckpointError(f"{source} holds a run after the one in progress, or more "
                                  f"than {n_runs} run(s)")
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
