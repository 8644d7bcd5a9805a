"""Evaluation of any policy: mean, std and score (= mean - std) over N episodes.

:func:`play_episodes` plays a batch of episodes of any policy given as a probabilities
function (numpy in, numpy out), on the host; the JAX backend plays its own inside a compiled
program.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from reinforce.config import CERTIFICATION, TrainConfig
from reinforce.envs import batch


@dataclass(frozen=True)
class EvalResult:
    mean_reward: float
    std_reward: float
    n_episodes: int

    @property
    def score(self) -> float:
        return self.mean_reward - self.std_reward

    def to_dict(self) -> dict:
        return {**asdict(self), "score": self.score}


def summarize(episode_returns) -> EvalResult:
    r = np.asarray(episode_returns, dtype=np.float64)
    return EvalResult(float(r.mean()), float(r.std()), int(r.size))


def certification_line(env_id: str, result: EvalResult) -> str:
    threshold = CERTIFICATION.get(env_id)
    verdict = ""
    if threshold is not None:
        ok = "reached" if result.score >= threshold else "not reached"
        verdict = f"  (certification: score >= {threshold:g}, {ok})"
    return (f"mean_reward={result.mean_reward:.2f} std_reward={result.std_reward:.2f} "
            f"score={result.score:.2f} over {result.n_episodes} episodes{verdict}")


def play_episodes(
    cfg: TrainConfig,
    probabilities: Callable[[np.ndarray], np.ndarray],
    n_episodes: int,
    seed: int,
) -> np.ndarray:
    """Undiscounted returns of ``n_episodes`` episodes of ``cfg``'s env (observed as ``cfg``
    says, cut at ``cfg.max_t`` steps), actions sampled from the policy.

    ``probabilities`` maps observations ``[n, ...]`` to action probabilities ``[n, A]`` (any
    backend). The episodes run side by side (:func:`reinforce.envs.batch`).
    """
    env = batch(cfg.env_id, n_episodes, seed, cfg.obs, cfg.frame_stack)
    max_t = cfg.max_t
    rng = np.random.default_rng(seed)
    obs = env.reset()
    alive = np.ones(n_episodes, bool)
    totals = np.zeros(n_episodes, np.float64)
    for _ in range(max_t):
        probs = np.asarray(probabilities(obs), np.float64)
        probs /= probs.sum(axis=1, keepdims=True)
        actions = (rng.random((n_episodes, 1)) > probs.cumsum(axis=1)).sum(axis=1)
        actions = np.minimum(actions, probs.shape[1] - 1)
        obs, reward, terminated, truncated = env.step(actions)
        totals += np.where(alive, reward, 0.0)
        alive &= ~(terminated | truncated)
        if not alive.any():
            break
    return totals
