"""The JAX backend's side of the contract (``reinforce.backend.Backend``)."""

from __future__ import annotations

import functools
import math

import jax
import numpy as np

from reinforce import memory
from reinforce.backend import METRIC_NAMES, Supervisor, TrainResult
from reinforce.checkpoint import TrainingCheckpoint
from reinforce.config import SEGMENT_BLOCK, RunSpec, TrainConfig
from reinforce_jax import run
from reinforce_jax.algorithm import Trainer, program_config
from reinforce_jax.devices import compiler_options, platform_devices, run_devices
from reinforce_jax.policy import conv_valid_values, from_export


class JaxBackend:
    """All runs side by side in one compiled program, sharded over the devices."""

    name = "jax"
    runs_in_sequence = False
    multi_process = True

    def check_device(self, device: str) -> None:
        platform_devices(device)

    def describe_devices(self, device: str, n_runs: int) -> str:
        devices = run_devices(n_runs, device)
        n = len(devices)
        procs = f" of {jax.process_count()} processes" if jax.process_count() > 1 else ""
        return f"{n} {devices[0].platform.upper()} device{'s' if n > 1 else ''}{procs}"

    def memory(self, cfg: TrainConfig, n_runs: int, device: str) -> memory.Estimate:
        """Everything lives on the runs' devices (per device: its share of the runs), but the
        metrics of every update, which the run loop keeps on the host."""
        devices = run_devices(n_runs, device)
        where = "host" if devices[0].platform == "cpu" else str(devices[0])
        share = math.ceil(n_runs / len(devices))
        trainer, size = Trainer(cfg), memory.sizes(cfg, conv_valid_values)
        B = cfg.batch_episodes
        if cfg.segment_steps:
            steps, chunk = cfg.segment_steps, SEGMENT_BLOCK
        else:
            chunk = trainer.chunk_len
            steps = math.ceil(trainer.horizon / chunk) * chunk
        rollout, activations = memory.options(cfg)
        return memory.Estimate((
            memory.Part("parameters with gradients and Adam moments", where,
                        share * 4 * size.params * memory.WORD, "--hidden", share),
            # the rollout twice: the loop's buffer and its copy
            memory.Part("rollout of an update", where, share * 2 * steps * B * size.step,
                        rollout, share),
            # the gradient runs chunk by chunk
            memory.Part("activations of the gradient", where,
                        share * chunk * B * size.activations, activations, share),
            memory.Part("env states", where, share * 2 * B * size.state, "--batch-episodes",
                        share),
            memory.Part("evaluation", where, share * cfg.n_evaluation_episodes
                        * (2 * size.state + size.observation + 8), "--eval-episodes", share),
            memory.Part("metrics of every update", "host",
                        n_runs * cfg.n_updates * (len(METRIC_NAMES) * memory.WORD + 8),
                        "--episodes", n_runs),
        ))

    def train_many(self, cfg: TrainConfig, runs: list[RunSpec], *,
                   supervisor: Supervisor | None = None, on_progress=None,
                   device: str = "auto") -> TrainResult:
        return run.train_many(cfg, runs, supervisor=supervisor, on_progress=on_progress,
                              device=device)

    def check_checkpoint(self, cfg: TrainConfig, runs: list[RunSpec],
                         checkpoint: TrainingCheckpoint, source: str) -> None:
        run.check_checkpoint(cfg, runs, checkpoint, source)

    def evaluate(self, cfg: TrainConfig, weights: dict[str, np.ndarray], n_episodes: int,
                 seed: int, device: str = "auto") -> np.ndarray:
        where = platform_devices(device)[0]
        evaluate = _evaluate_program(program_config(cfg), where.platform, n_episodes)
        with jax.default_device(where):
            return np.asarray(evaluate(from_export(weights), jax.random.key(seed)))


@functools.lru_cache(maxsize=8)
def _evaluate_program(cfg: TrainConfig, platform: str, n_episodes: int):
    """The jitted evaluation of ``n_episodes`` episodes of a config on a platform."""
    trainer = Trainer(cfg)
    return jax.jit(functools.partial(trainer.evaluate, n_episodes=n_episodes),
                   compiler_options=compiler_options(platform,
                                                     trainer.evaluation_steps(n_episodes)))


BACKEND = JaxBackend()
