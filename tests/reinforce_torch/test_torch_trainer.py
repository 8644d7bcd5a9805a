"""The torch trainer: rollout layout, metrics, a fixed-batch learning probe, learning CartPole."""

from __future__ import annotations

import logging

import jax
import numpy as np
import pytest

from reinforce.config import TrainConfig, preset
from reinforce.envs.batched import BatchedEnv
from reinforce.runs import METRIC_NAMES
from reinforce_torch import trainer as tt
from reinforce_torch.policy import Policy


def _collect(B: int, horizon: int, seed: int = 0) -> tt.Rollout:
    generator = tt.seed_everything(seed)
    policy = Policy(4, 2, (16,))
    return tt.collect(BatchedEnv("CartPole-v1", B, seed), policy, horizon, generator)


def _check_layout(rollout: tt.Rollout, B: int) -> np.ndarray:
    T = rollout.valid.shape[0]
    valid, dones = rollout.valid, rollout.dones
    assert rollout.obs.shape == (T, B, 4) and rollout.obs.dtype == np.float32
    assert rollout.actions.shape == (T, B) and rollout.actions.dtype == np.int64
    assert rollout.rewards.dtype == np.float32
    assert valid.dtype == bool and dones.dtype == bool
    lengths = valid.sum(axis=0)
    assert np.all(lengths >= 1)
    assert lengths.max() == T, "collect must stop as soon as every episode has ended"
    np.testing.assert_array_equal(valid, np.arange(T)[:, None] < lengths[None, :])
    np.testing.assert_array_equal(dones.sum(axis=0), np.ones(B))
    np.testing.assert_array_equal(dones.argmax(axis=0), lengths - 1)
    np.testing.assert_array_equal(rollout.rewards, valid.astype(np.float32))
    assert not rollout.obs[~valid].any()
    assert np.all(np.abs(rollout.obs[0]) <= 0.05)
    assert set(np.unique(rollout.actions[valid])) <= {0, 1}
    return lengths


def test_collect_layout():
    lengths = _check_layout(_collect(B=6, horizon=500), 6)
    assert len(set(lengths.tolist())) > 1 and lengths.max() < 500


def test_collect_cuts_at_horizon():
    # CartPole cannot fall within 5 steps of a reset, so every episode is cut by the horizon.
    rollout = _collect(B=3, horizon=5)
    np.testing.assert_array_equal(_check_layout(rollout, 3), [5, 5, 5])


def _config(B: int) -> TrainConfig:
    return TrainConfig(env_id="CartPole-v1", hidden_sizes=(16,), lr=1e-2, gamma=1.0,
                       n_training_episodes=10 * B, batch_episodes=B)


def test_metrics():
    B = 3
    trainer = tt.Trainer(_config(B), seed=0)
    metrics = trainer.run(2)
    assert trainer.updates_done == 2 and len(metrics) == 2
    for m in metrics:
        assert tuple(m) == METRIC_NAMES
        assert all(np.isfinite(v) for v in m.values())
        assert m["env_steps"] == pytest.approx(m["episode_length"] * B)
        assert m["episodic_return"] == pytest.approx(m["episode_length"])  # reward 1 per step
        assert m["padded_steps"] >= 0
        total = m["env_steps"] + m["padded_steps"]
        # torch plays until the longest episode ends: T x B steps in all
        assert total % B == 0 and total // B >= m["episode_length"]


def test_fixed_batch_updates_lower_the_loss(monkeypatch):
    """Probe: Adam steps on one recorded batch must lower that batch's REINFORCE loss."""
    batch = _collect(B=4, horizon=500, seed=1)
    monkeypatch.setattr(tt, "collect", lambda env, policy, horizon, generator: batch)
    trainer = tt.Trainer(_config(4), seed=0)
    loss = np.array([m["policy_loss"] for m in trainer.run(20)])
    assert np.all(np.isfinite(loss))
    assert loss[-1] < loss[0] - 0.5 * abs(loss[0]) - 1.0, (
        f"loss went {loss[0]:.3f} -> {loss[-1]:.3f}")
    assert np.sum(np.diff(loss) < 0) >= 15, f"loss not decreasing: {np.round(loss, 3)}"


# Envs compare equal by type, so the jitted batch functions compile once per env class.
def test_second_batched_env_compiles_nothing(caplog):
    first = BatchedEnv("CartPole-v1", 2, 0)
    first.reset()
    first.step(np.zeros(2, np.int32))
    caplog.clear()
    with caplog.at_level(logging.WARNING), jax.log_compiles(True):
        second = BatchedEnv("CartPole-v1", 2, 1)
        second.reset()
        second.step(np.zeros(2, np.int32))
    compiled = [r.getMessage()[:60] for r in caplog.records if "Compiling" in r.getMessage()]
    assert not compiled, compiled


@pytest.mark.slow
def test_learns_cartpole_notebook_hyperparameters():
    """150 episodes of the course's settings, seed 0 (a random policy averages ~22)."""
    cfg = preset("notebook", "CartPole-v1")
    metrics = tt.Trainer(cfg, seed=0).run(150)
    returns = np.array([m["episodic_return"] for m in metrics])
    first, last = returns[:50].mean(), returns[-50:].mean()
    message = f"mean return of the first 50 updates {first:.1f}, of the last 50 {last:.1f}"
    print(message)
    assert last >= 100, message
    assert last >= 2 * first, message
