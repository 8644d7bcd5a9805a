"""The torch backend's side of the contract (``reinforce.backend.Backend``)."""

from __future__ import annotations

import numpy as np
import torch

from reinforce import memory
from reinforce.backend import METRIC_NAMES, Supervisor, TrainResult
from reinforce.checkpoint import TrainingCheckpoint
from reinforce.config import TrainConfig
from reinforce.envs import horizon, make
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

    def memory(self, cfg: TrainConfig, n_runs: int, device: str) -> memory.Estimate:
        """One run at a time: the network, its gradients, Adam's moments and the update's
        activations on the device; the rollout, the envs and the evaluation on the host."""
        where = "host" if torch_device(device).type == "cpu" else str(torch_device(device))
        env, params = make(cfg.env_id)
        obs, B = env.observation_size, cfg.batch_episodes
        steps = cfg.segment_steps or horizon(params, cfg.max_t)
        state = memory.env_state_bytes(env, params)
        step = (obs + 4) * memory.WORD + 2  # obs, action, reward, return, weight, two masks
        hidden = 2 * sum(cfg.hidden_sizes) * memory.WORD  # a step's activations, before and after
        n_params = memory.params_count(obs, cfg.hidden_sizes, env.num_actions)
        rollout, activations = memory.options(cfg)
        return memory.Estimate((
            memory.Part("parameters with gradients and Adam moments", where,
                        4 * n_params * memory.WORD, "--hidden"),
            # the steps as recorded, then stacked
            memory.Part("rollout of an update", "host", 2 * steps * B * step, rollout),
            memory.Part("the update's inputs on the device", where, steps * B * step, rollout),
            memory.Part("hidden activations of an update", where, steps * B * hidden,
                        activations),
            memory.Part("env states", "host", 2 * B * state, "--batch-episodes"),
            memory.Part("evaluation", "host", cfg.n_evaluation_episodes
                        * (2 * state + (obs + 2) * memory.WORD), "--eval-episodes"),
            memory.Part("metrics of every update", "host",
                        n_runs * cfg.n_updates * (len(METRIC_NAMES) * 8 + 8), "--episodes",
                        n_runs),
        ))

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
