"""The course's training loop, rewritten for the benchmark: the baseline every ratio uses.

It keeps the structure of the Deep RL course's Unit 4 notebook on purpose, slow parts
included: one gymnasium env, one episode per update, a torch forward pass (with autograd) for
every single step, actions drawn from ``torch.distributions.Categorical``, the reward-to-go
built by a Python loop from the last step back, normalized by its mean and sample std (+ float32
eps), ``loss = -sum(log pi(a|s) * G)``, Adam. Only the env comes from this project (through its
gymnasium registration: the host env, stepped in plain Python, whose rules are the trainers'
JAX rules, checked step for step) and the policy is ``reinforce_torch.policy.Policy``, the same
MLP the torch backend trains.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import gymnasium
import numpy as np
import torch

import reinforce  # noqa: F401  (registers our env ids with gymnasium)
from reinforce import envs
from reinforce.config import TrainConfig
from reinforce.evaluation import play_episodes
from reinforce_torch.policy import Policy

#: The normalization's epsilon (float32 machine epsilon), as in the course.
EPS = float(np.finfo(np.float32).eps)


def gym_id(env_id: str, ours: bool = False) -> str:
    """The gymnasium id the loop plays ``env_id`` on: the fastest single env a course user has
    (gymnasium's own ``CartPole-v1``; our host ``Pixelcopter-PLE-v0``, the only one that
    installs), or (``ours``) this project's view of it (``reinforce/CartPole-v1``)."""
    if ours:
        return envs.gym_id(env_id)
    envs.gym_id(env_id)  # an unknown env id is refused
    return env_id


@dataclass
class LoopResult:
    """Per-episode series of one run of the loop (one episode = one update)."""

    policy: torch.nn.Module
    episodic_return: list[float] = field(default_factory=list)
    episode_length: list[int] = field(default_factory=list)
    policy_loss: list[float] = field(default_factory=list)
    wall: list[float] = field(default_factory=list)  # seconds since the start, per episode


def discounted_reward_to_go(rewards: list[float], gamma: float) -> list[float]:
    """G_t = r_t + gamma * G_{t+1}, by a plain loop from the end of the episode."""
    out = [0.0] * len(rewards)
    running = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        running = rewards[t] + gamma * running
        out[t] = running
    return out


def train(
    cfg: TrainConfig, seed: int, device: str = "cpu", on_episode=None, ours: bool = False
) -> LoopResult:
    """Train one policy the way the notebook does; ``cfg.batch_episodes`` is ignored (1).

    ``on_episode(episodes_done, last_return)`` is called after every update.
    """
    start = time.perf_counter()
    torch.manual_seed(seed)
    env = gymnasium.make(gym_id(cfg.env_id, ours))
    n_obs = env.observation_space.shape[0]
    policy = Policy(n_obs, env.action_space.n, cfg.hidden_sizes).to(device)
    optimizer = torch.optim.Adam(policy.parameters(), lr=cfg.lr)
    result = LoopResult(policy=policy)

    first_reset_seed: int | None = seed
    for _ in range(cfg.n_training_episodes):
        state, _ = env.reset(seed=first_reset_seed)
        first_reset_seed = None  # gymnasium keeps its own generator after the first reset
        log_probs: list[torch.Tensor] = []
        rewards: list[float] = []
        for _ in range(cfg.max_t):
            x = torch.tensor(state, dtype=torch.float32, device=device).unsqueeze(0)
            dist = torch.distributions.Categorical(probs=policy.probabilities(x))
            action = dist.sample()
            log_probs.append(dist.log_prob(action))
            state, reward, terminated, truncated, _ = env.step(int(action.item()))
            rewards.append(float(reward))
            if terminated or truncated:
                break

        returns = torch.tensor(discounted_reward_to_go(rewards, cfg.gamma), device=device)
        if cfg.normalize_returns:
            # The sample std of a single step is undefined; the shared returns layer takes it
            # as 0 there, so do the same rather than train on NaN.
            std = returns.std() if len(rewards) > 1 else torch.zeros((), device=device)
            returns = (returns - returns.mean()) / (std + EPS)
        loss = -(torch.cat(log_probs) * returns).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

        result.episodic_return.append(float(sum(rewards)))
        result.episode_length.append(len(rewards))
        result.policy_loss.append(float(loss.item()))
        result.wall.append(time.perf_counter() - start)
        if on_episode is not None:
            on_episode(len(result.wall), result.episodic_return[-1])
    env.close()
    return result


def evaluate(result: LoopResult, cfg: TrainConfig, n_episodes: int, seed: int) -> np.ndarray:
    """Returns of ``n_episodes`` episodes of the trained stochastic policy (shared evaluator)."""
    policy = result.policy.to("cpu")
    return play_episodes(cfg, policy.numpy_probabilities, n_episodes, seed)
