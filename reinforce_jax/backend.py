"""The JAX backend's side of the contract (``reinforce.backend.Backend``)."""

from __future__ import annotations

import jax
import numpy as np

from reinforce.backend import Supervisor, TrainResult
from reinforce.checkpoint import TrainingCheckpoint
from reinforce.config import TrainConfig
from reinforce_jax import run
from reinforce_jax.algorithm import Trainer
from reinforce_jax.devices import compiler_options, platform_devices, run_devices
from reinforce_jax.policy import from_export


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

    def train_many(self, cfg: TrainConfig, seeds: list[int], lrs: list[float], *,
                   supervisor: Supervisor | None = None, on_progress=None,
                   device: str = "auto") -> TrainResult:
        return run.train_many(cfg, seeds, lrs, supervisor=supervisor, on_progress=on_progress,
                              device=device)

    def check_checkpoint(self, cfg: TrainConfig, seeds: list[int], lrs: list[float],
                         checkpoint: TrainingCheckpoint, source: str) -> None:
        run.check_checkpoint(cfg, seeds, lrs, checkpoint, source)

    def evaluate(self, cfg: TrainConfig, weights: dict[str, np.ndarray], n_episodes: int,
                 seed: int, device: str = "auto") -> np.ndarray:
        where = platform_devices(device)[0]
        evaluate = jax.jit(Trainer(cfg).evaluate, static_argnums=2,
                           compiler_options=compiler_options(where.platform))
        with jax.default_device(where):
            return np.asarray(evaluate(from_export(weights), jax.random.key(seed), n_episodes))


BACKEND = JaxBackend()
