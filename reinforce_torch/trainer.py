"""REINFORCE in PyTorch: the course's algorithm, B complete episodes per update.

The environment is the shared functional one, stepped for the whole batch by
:class:`~reinforce.envs.batched.BatchedEnv`; the returns come from the shared
``reinforce.returns``. Phases mirror ``reinforce_jax.trainer``: :func:`collect` ->
:func:`compute_weights` -> :func:`reinforce_loss` + Adam. With ``batch_episodes=1`` this is
the course's loop: sample, reward-to-go, normalize, ``loss = -sum(log pi(a|s) * G)``, Adam.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import torch

from reinforce import envs, returns
from reinforce.config import TrainConfig
from reinforce.envs.batched import BatchedEnv
from reinforce_torch.policy import Policy


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch; returns a torch generator for action sampling."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


@dataclass
class Rollout:
    """Episodes time-major ``[T, B]`` (numpy); padding after an episode's end is zeros."""

    obs: np.ndarray  # float32 [T, B, S]
    actions: np.ndarray  # int64 [T, B]
    rewards: np.ndarray  # float32 [T, B]
    dones: np.ndarray  # bool [T, B]
    valid: np.ndarray  # bool [T, B]


def collect(
    env: BatchedEnv, policy: Policy, horizon: int, generator: torch.Generator
) -> Rollout:
    """Play one episode in each of the env's ``B`` slots, until all have ended."""
    obs = env.reset()
    alive = np.ones(env.n, bool)
    record: dict[str, list[np.ndarray]] = {k: [] for k in ("obs", "actions", "rewards", "dones",
                                                          "valid")}
    for t in range(horizon):
        with torch.no_grad():
            probs = policy.probabilities(torch.from_numpy(obs))
            actions = torch.multinomial(probs, 1, generator=generator).squeeze(1).numpy()
        next_obs, reward, terminated, truncated = env.step(actions)
        done = alive & (terminated | truncated | (t + 1 >= horizon))
        record["obs"].append(np.where(alive[:, None], obs, 0.0).astype(np.float32))
        record["actions"].append(actions)
        record["rewards"].append(np.where(alive, reward, 0.0).astype(np.float32))
        record["dones"].append(done)
        record["valid"].append(alive.copy())
        alive &= ~done
        obs = next_obs
        if not alive.any():
            break
    return Rollout(**{k: np.stack(v) for k, v in record.items()})


def _pad_time(x: np.ndarray, length: int) -> np.ndarray:
    return np.concatenate([x, np.zeros((length - x.shape[0], *x.shape[1:]), x.dtype)])


def compute_weights(rollout: Rollout, gamma: float, normalize: bool) -> np.ndarray:
    """Reward-to-go of every step (normalized if asked), from the shared returns scan.

    Time is padded to a power of two so the compiled scan sees a handful of shapes only.
    """
    length = rollout.rewards.shape[0]
    padded = max(16, 1 << (length - 1).bit_length())
    G = returns.reward_to_go(
        _pad_time(rollout.rewards, padded), _pad_time(rollout.dones, padded),
        _pad_time(rollout.valid, padded), gamma, normalize,
    )
    return np.array(G[:length])


def reinforce_loss(
    policy: Policy, obs: torch.Tensor, actions: torch.Tensor, weights: torch.Tensor,
    valid: torch.Tensor, n_episodes: int,
) -> torch.Tensor:
    """-sum over valid steps of log pi(a|s) * G, divided by the number of episodes."""
    logp = policy.log_probs(obs, actions)
    return -torch.where(valid, logp * weights, torch.zeros_like(logp)).sum() / n_episodes


class Trainer:
    """One run (one seed, one learning rate) of the torch backend."""

    def __init__(self, cfg: TrainConfig, seed: int, lr: float | None = None):
        self.cfg = cfg
        self.seed = seed
        self.lr = cfg.lr if lr is None else float(lr)
        self.generator = seed_everything(seed)
        self.env = BatchedEnv(cfg.env_id, cfg.batch_episodes, seed)
        self.horizon = envs.horizon(self.env.params, cfg.max_t)
        self.policy = Policy(self.env.observation_size, self.env.num_actions, cfg.hidden_sizes)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=self.lr)
        n_updates = cfg.n_updates
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, (lambda u: 1.0 - u / n_updates) if cfg.lr_decay else (lambda u: 1.0)
        )
        self.updates_done = 0

    def update(self) -> dict[str, float]:
        """One REINFORCE update: collect -> returns -> update."""
        rollout = collect(self.env, self.policy, self.horizon, self.generator)
        weights = compute_weights(rollout, self.cfg.gamma, self.cfg.normalize_returns)
        loss = reinforce_loss(
            self.policy, torch.from_numpy(rollout.obs), torch.from_numpy(rollout.actions),
            torch.from_numpy(weights), torch.from_numpy(rollout.valid), self.env.n,
        )
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        self.updates_done += 1
        lengths = rollout.valid.sum(axis=0)
        live = int(lengths.sum())
        return {
            "episodic_return": float(rollout.rewards.sum(axis=0).mean()),
            "episode_length": float(lengths.mean()),
            "policy_loss": float(loss.item()),
            "env_steps": live,
            "padded_steps": int(rollout.valid.size) - live,
        }

    def run(self, n_updates: int) -> list[dict[str, float]]:
        return [self.update() for _ in range(n_updates)]

    def evaluate(self, n_episodes: int, seed: int) -> np.ndarray:
        from reinforce.evaluate import play_episodes

        return play_episodes(self.cfg.env_id, self.policy.numpy_probabilities, n_episodes,
                             self.cfg.max_t, seed)


def train_many(cfg: TrainConfig, seeds: list[int], lrs: list[float], on_progress=None):
    """Train the runs one after the other; same results layout as ``reinforce_jax``'s.

    Returns ``(states, metrics, wall, eval_returns)``: torch-layout weights per run, per-run
    dicts of per-update numpy series, per-run per-update wall seconds, ``[runs, n_eval]``.
    """
    import time

    start = time.perf_counter()
    states, metrics, wall, evals = [], [], [], []
    done = 0
    for seed, lr in zip(seeds, lrs, strict=True):
        trainer = Trainer(cfg, seed, lr)
        series: list[dict[str, float]] = []
        times: list[float] = []
        while len(series) < cfg.n_updates:
            n = min(cfg.chunk_updates, cfg.n_updates - len(series))
            chunk = trainer.run(n)
            series += chunk
            times += [time.perf_counter() - start] * n
            done += n
            if on_progress is not None:
                recent = chunk[-max(1, n // 5):]
                on_progress(done, sum(m["episodic_return"] for m in recent) / len(recent))
        weights = trainer.policy.state_dict()
        states.append({k: v.detach().numpy().copy() for k, v in weights.items()})
        metrics.append({k: np.asarray([m[k] for m in series]) for k in series[0]})
        wall.append(np.asarray(times))
        evals.append(trainer.evaluate(cfg.n_evaluation_episodes, seed + 10_000))
    return states, metrics, wall, np.stack(evals)
