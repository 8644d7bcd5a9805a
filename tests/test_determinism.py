"""Same seed and backend -> identical metrics; another seed -> different metrics."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from reinforce.config import TrainConfig
from reinforce_jax.trainer import Metrics, Trainer
from reinforce_torch import trainer as tt

CFG = TrainConfig(env_id="CartPole-v1", hidden_sizes=(16,), lr=1e-2, gamma=1.0,
                  n_training_episodes=20, batch_episodes=2)


def _host(result):
    state, metrics = result
    return jax.tree.map(np.asarray, state.params), jax.tree.map(np.asarray, metrics)


@pytest.fixture(scope="module")
def jax_runs():
    """Seed 0 twice through one compiled function, once through a fresh compile, and seed 1."""
    train = jax.jit(Trainer(CFG).train)
    first = _host(train(jax.random.key(0)))
    second = _host(train(jax.random.key(0)))
    recompiled = _host(jax.jit(Trainer(CFG).train)(jax.random.key(0)))
    other = _host(train(jax.random.key(1)))
    return first, second, recompiled, other


def _assert_same_metrics(a: Metrics, b: Metrics):
    for name in Metrics._fields:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


def test_jax_same_seed_identical(jax_runs):
    (params1, m1), (params2, m2), (params3, m3), _ = jax_runs
    assert m1.episodic_return.shape == (CFG.n_updates,)
    _assert_same_metrics(m1, m2)
    _assert_same_metrics(m1, m3)
    jax.tree.map(np.testing.assert_array_equal, params1, params2)
    jax.tree.map(np.testing.assert_array_equal, params1, params3)


def test_jax_other_seed_differs(jax_runs):
    (_, m1), _, _, (_, m_other) = jax_runs
    assert not np.array_equal(m1.episodic_return, m_other.episodic_return)
    assert not np.array_equal(m1.policy_loss, m_other.policy_loss)


def test_torch_same_seed_identical():
    n = 4
    first = tt.Trainer(CFG, seed=0).run(n)
    second = tt.Trainer(CFG, seed=0).run(n)
    other = tt.Trainer(CFG, seed=1).run(n)
    assert len(first) == n
    assert first == second
    assert [m["policy_loss"] for m in first] != [m["policy_loss"] for m in other]
    assert [m["episodic_return"] for m in first] != [m["episodic_return"] for m in other]
