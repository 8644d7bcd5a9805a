"""The torch backend's side of the contract (``reinforce.backend.Backend``)."""

from __future__ import annotations

import numpy as np
import torch

from reinforce.backend import Supervisor, TrainResult
from reinforce.checkpoint import TrainingCheckpoint
from reinforce.config import TrainConfig
from reinforce.envs import make
from reinforce.evaluation import play_episodes
from reinforce_torch import run
from reinforce_torch.devices import torch_device
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

    def train_many(self, cfg: TrainConfig, seeds: list[int], lrs: list[float], *,
                   supervisor: Supervisor | None = None, on_progress=None,
                   device: str = "cpu") -> TrainResult:
        torch.set_num_threads(1)  # tiny networks: threads cost more than they give
        return run.train_many(cfg, seeds, lrs, supervisor=supervisor, on_progress=on_progress,
                              device=device)

    def check_checkpoint(self, cfg: TrainConfig, seeds: list[int], lrs: list[float],
                         checkpoint: TrainingCheckpoint, source: str) -> None:
        run.check_checkpoint(cfg, seeds, lrs, checkpoint, source)

    def evaluate(self, cfg: TrainConfig, weights: dict[str, np.ndarray], n_episodes: int,
                 seed: int, device: str = "cpu") -> np.ndarray:
        torch.set_num_threads(1)
        env, _ = make(cfg.env_id)
        policy = Policy.from_weights(weights, env.observation_size, env.num_actions,
                                     cfg.hidden_sizes).to(torch_device(device))
        return play_episodes(cfg.env_id, policy.numpy_probabilities, n_episodes, cfg.max_t,
                             seed)


BACKEND = TorchBackend()
