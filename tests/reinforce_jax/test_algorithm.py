"""What only the JAX algorithm does: a run is a pure function (the same numbers from a fresh
compile) and many seeds train in one program (the course's settings certify there).

What both backends share is tested once, on both, in ``tests/test_contract.py``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from reinforce.backend import METRIC_NAMES
from reinforce.config import CERTIFICATION, TrainConfig, preset
from reinforce.evaluation import summarize
from reinforce_jax import algorithm as jt

CFG = TrainConfig(env_id="CartPole-v1", hidden_sizes=(16,), lr=1e-2, gamma=1.0,
                  n_training_episodes=20, batch_episodes=2)


def _host(result):
    state, metrics = result
    return jax.tree.map(np.asarray, state.params), jax.tree.map(np.asarray, metrics)


def test_train_is_pure_the_same_after_a_fresh_compile():
    """``make_train(cfg)(key)`` twice through one compiled function and once through another
    compile give the same numbers; another key does not."""
    train = jax.jit(jt.make_train(CFG))
    params1, m1 = _host(train(jax.random.key(0)))
    params2, m2 = _host(train(jax.random.key(0)))
    params3, m3 = _host(jax.jit(jt.Trainer(CFG).train)(jax.random.key(0)))
    _, m_other = _host(train(jax.random.key(1)))
    assert m1.episodic_return.shape == (CFG.n_updates,)
    for name in METRIC_NAMES:
        np.testing.assert_array_equal(getattr(m1, name), getattr(m2, name), err_msg=name)
        np.testing.assert_array_equal(getattr(m1, name), getattr(m3, name), err_msg=name)
    jax.tree.map(np.testing.assert_array_equal, params1, params2)
    jax.tree.map(np.testing.assert_array_equal, params1, params3)
    assert not np.array_equal(m1.policy_loss, m_other.policy_loss)


@pytest.mark.slow
def test_learns_cartpole_notebook_preset():
    """The course's hyper-parameters, seeds 0-3 trained at once, evaluated on 100 episodes."""
    cfg = preset("notebook", "CartPole-v1")
    trainer = jt.Trainer(cfg)
    seeds = jnp.arange(4)
    state, metrics = jax.jit(jax.vmap(trainer.train))(jax.vmap(jax.random.key)(seeds))
    evaluate = jax.jit(jax.vmap(trainer.evaluate, in_axes=(0, 0, None)), static_argnums=2)
    returns = np.asarray(evaluate(state.params, jax.vmap(jax.random.key)(seeds + 1000), 100))
    results = [summarize(r) for r in returns]
    scores = [round(r.score, 1) for r in results]
    threshold = CERTIFICATION["CartPole-v1"]
    late = np.asarray(metrics.episodic_return, np.float64)[:, -50:].mean(axis=1)
    message = (f"scores (mean - std over 100 episodes) of seeds 0-3: {scores}; "
               f"mean returns of their last 50 updates: {late.round(1).tolist()}")
    print(message)
    assert sum(s >= threshold for s in scores) >= 2, message
    assert max(r.mean_reward for r in results) >= 450, message
