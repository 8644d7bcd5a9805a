"""Many JAX runs at once: the run loop, its compiled programs and its checkpoints.

:func:`train_many` trains every (seed, learning rate) run of one config side by side in one
program (``vmap`` over runs, sharded over the devices by ``reinforce_jax.devices``). It calls
the algorithm's :meth:`~reinforce_jax.algorithm.Trainer.run` on compiled chunks of
``cfg.chunk_updates`` updates under the run loop both backends share (``reinforce.loop``:
checkpoints, stop requests, non-finite values, progress). Then it evaluates every run.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from reinforce.backend import (
    METRIC_NAMES,
    Metrics,
    Supervisor,
    TrainResult,
    evaluation_seed,
    first_non_finite,
    run_arrays,
)
from reinforce.checkpoint import CheckpointError, TrainingCheckpoint, take
from reinforce.config import RunSpec, TrainConfig
from reinforce.loop import Boundary, NonFinite, checkpoint_runs, drive
from reinforce_jax.algorithm import Hyper, Trainer, TrainState, program_config
from reinforce_jax.devices import (
    any_process,
    compiler_options,
    run_devices,
    shard_runs,
    to_host,
)
from reinforce_jax.policy import to_export

#: The axis name of the runs in :func:`train_many`'s programs.
RUNS_AXIS = "runs"
#: Arrays of a run's state in checkpoints of earlier versions that this one does not keep
#: (the learning rate, now taken from the run folder's config with the other settings).
LEGACY_ARRAYS = ("lr",)


def train_many(
    cfg: TrainConfig,
    runs: list[RunSpec],
    *,
    supervisor: Supervisor | None = None,
    on_progress=None,
    device: str = "auto",
) -> TrainResult:
    """Train the runs (run i: seed ``runs[i].seed``, with its own settings ``runs[i].settings``,
    e.g. a learning rate) in one program, on the devices of ``device``
    (``reinforce_jax.devices.platform_devices``).

    Updates run in compiled chunks of ``cfg.chunk_updates``; ``on_progress(updates_done,
    mean_recent_return)`` is called between chunks. The runs axis is vmapped and, with several
    devices, sharded over them. Then every run is evaluated on ``cfg.n_evaluation_episodes``
    episodes from ``reinforce.backend.evaluation_seed(seed)``.

    Between chunks (a compiled call cannot be interrupted) the loss, weights and optimizer
    moments are checked (``supervisor.non_finite`` if one is not finite), and a checkpoint is
    saved at update 0, when ``supervisor.due()``, on a stop request (then
    ``supervisor.stopped``) and at the end. ``supervisor.resume`` continues a checkpoint:
    chunks always start at multiples of ``cfg.chunk_updates``, so a resumed run runs the very
    chunks of an uninterrupted one and ends with the same numbers.
    """
    supervisor = supervisor or Supervisor.for_runs(runs, cfg.n_updates)
    updates = _Chunks(cfg, runs, supervisor, device)
    drive(updates, supervisor, on_progress)
    return updates.result()


class _Chunks:
    """The JAX side of the run loop (``reinforce.loop.Updates``): one compiled chunk of
    ``cfg.chunk_updates`` updates of every run per step."""

    def __init__(self, cfg: TrainConfig, runs: list[RunSpec], supervisor: Supervisor,
                 device: str):
        self.start = time.perf_counter()
        self.cfg, self.n_runs, self.wall_offset = cfg, len(runs), supervisor.wall_offset
        self.devices = devices = run_devices(self.n_runs, device)
        trainer, init, self.run_chunk, self.evaluate = _programs(cfg, devices[0].platform)
        n_dev = len(devices)
        padded = -(-self.n_runs // n_dev) * n_dev  # pad the runs axis to a multiple of devices

        def pad(values: list, dtype) -> jax.Array:
            return shard_runs(np.asarray(list(values) + [values[-1]] * (padded - self.n_runs),
                                         dtype), devices)

        seeds_p = pad([spec.seed for spec in runs], np.uint32)
        hypers = [Hyper.of(spec.config(cfg)) for spec in runs]
        hyper_p = Hyper(*(pad([getattr(h, name) for h in hypers], np.asarray(value).dtype)
                          for name, value in zip(Hyper._fields, hypers[0], strict=True)))
        self.eval_seeds = pad([evaluation_seed(spec.seed) for spec in runs], np.uint32)
        self.chunks: list[Metrics] = []
        self.wall: list[float] = []
        if supervisor.resume is not None:
            host, self.chunks, self.wall = restore(_state_template(trainer), supervisor.resume,
                                                   self.n_runs)
            host = jax.tree.map(
                lambda x: np.concatenate([x] + [x[-1:]] * (padded - self.n_runs)), host)
        self.done, self.total = len(self.wall), cfg.n_updates
        # Every program this run needs compiles in the background from the start (XLA
        # compiles a program on about one and a half cores): the chunk programs while the
        # state is initialised, the evaluation while training runs.
        self.compiling = _compile_ahead(cfg, seeds_p, hyper_p, self.eval_seeds, devices,
                                        self.done)
        if supervisor.resume is None:
            state = init(seeds_p, hyper_p)
        else:
            state = host._replace(key=jax.random.wrap_key_data(host.key), hyper=hyper_p)
        self.state = shard_runs(state, devices)
        # The state on the host, taken at the same points in every process (with several
        # processes this gathers); checkpoints are written from it, never touching the devices.
        self.host = to_host(self.state)

    def step(self) -> Boundary:
        n = min(self.cfg.chunk_updates, self.total - self.done)
        self.compiling.wait(("chunk", n))
        new_state, metrics = self.run_chunk(self.state, n)
        metrics = jax.tree.map(lambda x: x[:self.n_runs], to_host(metrics))  # waits for it
        self.host = to_host(new_state)
        check_finite(self.host, metrics, self.n_runs, self.done, self.total)
        # The same sharding in every chunk's input (jit may return a leaf replicated), so the
        # chunk program compiles once.
        self.state = shard_runs(new_state, self.devices)
        self.chunks.append(metrics)
        self.done += n
        self.wall += [self.wall_offset + time.perf_counter() - self.start] * n
        return Boundary.CHUNK

    def label(self) -> str:
        return f"update {self.done}/{self.total}"

    def arrays(self) -> dict[str, np.ndarray]:
        return checkpoint_arrays(self.host, self.chunks, self.wall, self.n_runs)

    def recent_return(self) -> float:
        last = self.chunks[-1].episodic_return
        return float(last[:, -max(1, last.shape[1] // 5):].mean())

    def agree(self, stop: bool) -> bool:
        return any_process(stop)

    def result(self) -> TrainResult:
        """Every run's weights, metrics and wall times, and its evaluation (run here)."""
        metrics = jax.tree.map(lambda *xs: np.concatenate(xs, axis=1), *self.chunks)
        self.compiling.wait(("evaluate",))
        eval_returns = to_host(self.evaluate(self.state.params, self.eval_seeds,
                                             self.cfg.n_evaluation_episodes))
        weights = [to_export(jax.tree.map(lambda x: x[i], self.host.params))
                   for i in range(self.n_runs)]
        return TrainResult(weights, metrics, np.tile(np.asarray(self.wall), (self.n_runs, 1)),
                           eval_returns[:self.n_runs])


_PROGRAMS: dict[tuple[TrainConfig, str], tuple] = {}


def _programs(cfg: TrainConfig, platform: str) -> tuple:
    """``(trainer, init, run_chunk, evaluate)`` of :func:`train_many`, jitted once per config
    and platform, so that a run resumed (or trained again) in the same process compiles nothing
    new: ``init(seeds, hyper)``, ``run_chunk(state, n)``, ``evaluate(params, seeds, n_episodes)``,
    all over the runs axis (seeds are ``uint32``; keys are made inside the programs).

    :func:`train_many` always passes the runs' own settings (they are traced), so configs
    that differ only in those share their programs."""
    cfg = program_config(cfg)
    if (cfg, platform) not in _PROGRAMS:
        if len(_PROGRAMS) >= 8:
            _PROGRAMS.pop(next(iter(_PROGRAMS)))
        trainer = Trainer(cfg, runs_axis=RUNS_AXIS)
        jit = partial(jax.jit, compiler_options=compiler_options(
            platform, trainer.training_steps()))
        jit_evaluate = partial(jax.jit, compiler_options=compiler_options(
            platform, trainer.evaluation_steps(cfg.n_evaluation_episodes)))
        _PROGRAMS[cfg, platform] = (
            trainer,
            jit(jax.vmap(_seed_init(trainer))),
            jit(jax.vmap(trainer.run, in_axes=(0, None), axis_name=RUNS_AXIS),
                static_argnums=1),
            jit_evaluate(jax.vmap(lambda params, seed, n: trainer.evaluate(
                params, jax.random.key(seed), n), in_axes=(0, 0, None), axis_name=RUNS_AXIS),
                static_argnums=2),
        )
    return _PROGRAMS[cfg, platform]


def _seed_init(trainer: Trainer):
    """``trainer.init`` from a seed (``uint32``) rather than a key."""
    return lambda seed, hyper: trainer.init(jax.random.key(seed), hyper)


class _CompileAhead:
    """Programs compiling in background threads; :meth:`wait` before calling one, so that it is
    not compiled twice (a jitted function called after its ``lower(...).compile()`` reuses the
    compiled program)."""

    def __init__(self, jobs: dict[tuple, Any]):
        pool = ThreadPoolExecutor(max_workers=max(1, len(jobs)),
                                  thread_name_prefix="reinforce-compile")
        self._futures = {name: pool.submit(job) for name, job in jobs.items()}
        pool.shutdown(wait=False)

    def wait(self, name: tuple) -> None:
        future = self._futures.pop(name, None)
        if future is not None:
            future.result()


def _compile_ahead(cfg: TrainConfig, seeds, hyper, eval_seeds, devices: list, done: int
                   ) -> _CompileAhead:
    """Start compiling the chunk programs (one per chunk length still to run) and the
    evaluation of :func:`train_many` for these (sharded) seeds and settings."""
    _, init, run_chunk, evaluate = _programs(cfg, devices[0].platform)
    state = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=seeds.sharding),
        jax.eval_shape(init, seeds, hyper))
    lengths = {min(cfg.chunk_updates, cfg.n_updates - d)
               for d in range(done, cfg.n_updates, cfg.chunk_updates)}
    jobs = {("chunk", n): partial(lambda n: run_chunk.lower(state, n).compile(), n)
            for n in sorted(lengths)}
    jobs[("evaluate",)] = lambda: evaluate.lower(state.params, eval_seeds,
                                                 cfg.n_evaluation_episodes).compile()
    return _CompileAhead(jobs)


# --- checkpoints (the layout of ``reinforce.backend``) ------------------------------------------


def state_arrays(host: TrainState, run: int) -> dict[str, np.ndarray]:
    """Every array of run ``run`` of a stacked ``TrainState`` on the host (``to_host``: the key
    as its raw data), by key path: ``params['params']['layers_0']['bias']``,
    ``opt_state.mu[...]``, ``key`` (the raw key data), ``update``, ``value_params[...]``.
    Not the run's settings (``hyper``): the run folder's config holds them."""
    leaves = jax.tree_util.tree_flatten_with_path(host._replace(hyper=None))[0]
    return {jax.tree_util.keystr(path)[1:]: np.asarray(leaf[run]) for path, leaf in leaves}


def checkpoint_arrays(host: TrainState, chunks: list[Metrics], wall: list[float], n_runs: int
                      ) -> dict[str, np.ndarray]:
    """A checkpoint of :func:`train_many`: each run's state (on the host), metrics so far and
    their wall times."""
    series = {name: (np.concatenate([getattr(c, name) for c in chunks], axis=1) if chunks
                     else np.zeros((n_runs, 0), np.float32)) for name in METRIC_NAMES}
    out: dict[str, np.ndarray] = {}
    for r in range(n_runs):
        out.update(run_arrays(r, state_arrays(host, r),
                              Metrics(**{k: v[r] for k, v in series.items()}), wall))
    return out


def restore(template: TrainState, checkpoint: TrainingCheckpoint, n_runs: int,
            source: str = "the checkpoint") -> tuple[TrainState, list[Metrics], list[float]]:
    """``(stacked state with raw key, [metrics so far], wall)`` from a checkpoint of
    :func:`train_many`; every array is checked against ``template`` (shapes and dtypes of one
    run's state, e.g. from ``jax.eval_shape``)."""
    leaves, treedef = jax.tree_util.tree_flatten_with_path(template)
    names = [jax.tree_util.keystr(path)[1:] for path, _ in leaves]
    runs = checkpoint_runs(checkpoint, "jax", n_runs, source)
    if len(runs) != n_runs:
        raise CheckpointError(f"{source} does not hold the state of exactly {n_runs} run(s)")
    unexpected = sorted(set(runs[0].state) - set(names) - set(LEGACY_ARRAYS))
    if unexpected:
        raise CheckpointError(f"{source} holds arrays this JAX trainer does not have "
                              f"({', '.join(unexpected[:3])}); a checkpoint of another version?")
    values = [np.stack([take(run.state, name, source, leaf.shape, leaf.dtype) for run in runs])
              for name, (_, leaf) in zip(names, leaves, strict=True)]
    state = jax.tree_util.tree_unflatten(treedef, values)
    walls = {len(run.wall) for run in runs}
    done = len(runs[0].wall)
    if walls != {done} or not (state.update == done).all():
        raise CheckpointError(f"{source}: the runs' update counters and metrics disagree")
    if checkpoint.progress.get("total_updates_done") != done:
        raise CheckpointError(f"{source}: the update counter and the progress record disagree")
    metrics = Metrics(*(np.stack([getattr(run.metrics, name) for run in runs])
                        for name in METRIC_NAMES))
    return state, ([metrics] if done else []), [float(w) for w in runs[0].wall]


def check_finite(host: TrainState, metrics: Metrics, n_runs: int, done: int, n_updates: int
                 ) -> None:
    """Raise ``reinforce.loop.NonFinite`` if a chunk left a non-finite loss, weight or
    optimizer moment (the gradients go into the moments) in any run (``host``: the state on the
    host, from ``to_host``)."""
    bad = ~np.isfinite(metrics.policy_loss)  # [runs, n]
    if bad.any():
        u = int(bad.any(axis=0).argmax())
        raise NonFinite("policy loss", f"update {done + u + 1}/{n_updates}",
                        int(bad[:, u].argmax()))
    n = metrics.policy_loss.shape[1]
    for what, tree in (("weight", (host.params, host.value_params)),
                       ("gradient (Adam moment)", (host.opt_state, host.value_opt_state))):
        leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
        found = first_non_finite({jax.tree_util.keystr(p): x[:n_runs] for p, x in leaves})
        if found is not None:
            name, run = found
            raise NonFinite(f"{what} {name}", f"updates {done + 1}-{done + n}/{n_updates}", run)


def _state_template(trainer: Trainer) -> TrainState:
    """Shapes and dtypes of one run's state as a checkpoint stores it (the key as its raw data,
    no settings)."""

    def init(seed):
        state = trainer.init(jax.random.key(seed))
        return state._replace(key=jax.random.key_data(state.key), hyper=None)

    return jax.eval_shape(init, jax.ShapeDtypeStruct((), jnp.uint32))


def check_checkpoint(cfg: TrainConfig, runs: list[RunSpec], checkpoint: TrainingCheckpoint,
                     source: str = "the checkpoint") -> None:
    """Raise ``CheckpointError`` unless :func:`train_many` can resume ``checkpoint`` (this
    compiles and runs nothing: the template comes from ``jax.eval_shape``)."""
    restore(_state_template(Trainer(cfg)), checkpoint, len(runs), source)
