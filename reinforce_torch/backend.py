"""The torch backend's side of the contract (``reinforce.backend.Backend``)."""

from __future__ import annotations

import numpy as np
import torch

from reinforce import memory
from reinforce.architecture import architecture
from reinforce.backend import METRIC_NAMES, Supervisor, TrainResult
from reinforce.checkpoint import TrainingCheckpoint
from reinforce.config import RunSpec, TrainConfig
from reinforce.envs import env_horizon
from reinforce.evaluation import play_episodes
from reinforce_torch import run
from reinforce_torch.devices import free_bytes, torch_device
from reinforce_torch.policy import Policy


class TorchBackend:
    """Runs one after the other; the network on the device, envs and returns on the host."""

    name = "torch"
    runs_in_sequence = True
    multi_process = False

    def check_device(self, device: str) -> None:
        torch_device(device)

    def describe_devices(self, device: str, n_runs: int) -> str:
        return str(torch_device(device))

    def memory(self, cfg: TrainConfig, n_runs: int, device: str) -> memory.Estimate:
        """One run at a time: the network, its gradients, Adam's moments and the update's
        activations on the device; the rollout, the envs and the evaluation on the host."""
        where = "host" if torch_device(device).type == "cpu" else str(torch_device(device))
        size, B = memory.sizes(cfg), cfg.batch_episodes
        steps = cfg.segment_steps or env_horizon(cfg.env_id, cfg.max_t)
        rollout, activations = memory.options(cfg)
        return memory.Estimate((
            memory.Part("parameters with gradients and Adam moments", where,
                        4 * size.params * memory.WORD, "--hidden"),
            # the steps as recorded, then stacked
            memory.Part("rollout of an update", "host", 2 * steps * B * size.step, rollout),
            memory.Part("the update's inputs on the device", where, steps * B * size.step,
                        rollout),
            memory.Part("activations of an update", where, steps * B * size.activations,
                        activations),
            memory.Part("env states", "host", 2 * B * size.state, "--batch-episodes"),
            memory.Part("evaluation", "host", cfg.n_evaluation_episodes
                        * (2 * size.state + size.observation + 8), "--eval-episodes"),
            memory.Part("metrics of every update", "host",
                        n_runs * cfg.n_updates * (len(METRIC_NAMES) * 8 + 8), "--episodes",
                        n_runs),
        ), free=free_bytes)

    def train_many(self, cfg: TrainConfig, runs: list[RunSpec], *,
                   supervisor: Supervisor | None = None, on_progress=None,
                   device: str = "cpu") -> TrainResult:
        torch.set_num_threads(1)  # tiny networks: threads cost more than they give
        return run.train_many(cfg, runs, supervisor=supervisor, on_progress=on_progress,
                              device=device)

    def check_checkpoint(self, cfg: TrainConfig, runs: list[RunSpec],
                         checkpoint: TrainingCheckpoint, source: str) -> None:
        run.check_checkpoint(cfg, runs, checkpoint, source)

    def evaluate(self, cfg: TrainConfig, weights: dict[str, np.ndarray], n_episodes: int,
                 seed: int, device: str = "cpu") -> np.ndarray:
        torch.set_num_threads(1)
        policy = Policy.from_weights(weights, architecture(cfg)).to(torch_device(device))
        return play_episodes(cfg, policy.numpy_probabilities, n_episodes, seed)


BACKEND = TorchBackend()
