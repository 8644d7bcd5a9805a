"""The JAX trainer: rollout layout, metrics, a fixed-batch learning probe, and learning CartPole."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from reinforce.config import CERTIFICATION, TrainConfig, preset
from reinforce.envs import CartPole
from reinforce.evaluate import summarize
from reinforce.runs import METRIC_NAMES
from reinforce_jax import trainer as jt
from reinforce_jax.policy import init_params, make_policy

ENV = CartPole()


def _collect(B: int, horizon: int, chunk_len: int, seed: int = 0):
    policy = make_policy((16,), ENV.num_actions)
    params = init_params(policy, jax.random.key(seed), ENV.observation_size)
    collect = jax.jit(lambda p, k: jt.collect(ENV, ENV.default_params(), policy, p, k, B, horizon,
                                              chunk_len))
    rollout, n_played = collect(params, jax.random.key(seed + 1))
    return jax.tree.map(np.asarray, rollout), int(n_played)


def _check_layout(rollout: jt.Rollout, n_played: int, chunk_len: int, B: int):
    """Masks of a rollout: valid prefix, one done at its end, zeros on padding."""
    n_chunks = rollout.valid.shape[0]
    flat = jax.tree.map(lambda x: x.reshape(-1, *x.shape[2:]), rollout)
    valid, dones = flat.valid, flat.dones
    lengths = valid.sum(axis=0)
    assert valid.shape == (n_chunks * chunk_len, B)
    assert np.all(lengths >= 1)
    # valid is a prefix of each column
    np.testing.assert_array_equal(valid, np.arange(valid.shape[0])[:, None] < lengths[None, :])
    # exactly one done per column, on its last valid step
    np.testing.assert_array_equal(dones.sum(axis=0), np.ones(B))
    np.testing.assert_array_equal(dones.argmax(axis=0), lengths - 1)
    assert not (dones & ~valid).any()
    # rewards 1 on the steps of an episode (CartPole), zero on padding; obs zero on padding
    np.testing.assert_array_equal(flat.rewards, valid.astype(np.float32))
    assert not flat.obs[~valid].any()
    assert np.all(np.abs(flat.obs[0]) <= 0.05)
    assert set(np.unique(flat.actions[valid])) <= {0, 1}
    # the played chunks cover the longest episode, and no more
    assert n_played == -(-lengths.max() // chunk_len)
    assert not rollout.valid[n_played:].any()
    return lengths


def test_collect_layout():
    B, chunk_len = 6, 16
    rollout, n_played = _collect(B, 500, chunk_len)
    assert rollout.obs.shape == (32, chunk_len, B, 4) and rollout.obs.dtype == np.float32
    assert rollout.actions.shape == (32, chunk_len, B) and rollout.actions.dtype == np.int32
    assert rollout.rewards.dtype == np.float32
    assert rollout.dones.dtype == bool and rollout.valid.dtype == bool
    lengths = _check_layout(rollout, n_played, chunk_len, B)
    assert n_played >= 2, "episodes should span several chunks"
    assert len(set(lengths.tolist())) > 1


def test_collect_cuts_at_horizon():
    # CartPole cannot fall within 5 steps of a reset, so every episode is cut by the horizon.
    rollout, n_played = _collect(B=3, horizon=5, chunk_len=2)
    assert rollout.valid.shape == (3, 2, 3)
    lengths = _check_layout(rollout, n_played, 2, 3)
    np.testing.assert_array_equal(lengths, [5, 5, 5])
    assert n_played == 3


def _small_trainer(B: int = 3) -> jt.Trainer:
    return jt.Trainer(TrainConfig(env_id="CartPole-v1", hidden_sizes=(16,), lr=1e-2, gamma=1.0,
                                  n_training_episodes=3 * B, batch_episodes=B))


def test_metrics():
    B = 3
    trainer = _small_trainer(B)
    assert trainer.horizon == 500 and trainer.chunk_len * -(-500 // trainer.chunk_len) >= 500
    state, metrics = jax.jit(trainer.train)(jax.random.key(0))
    assert jt.Metrics._fields == METRIC_NAMES
    assert int(state.update) == 3
    m = {name: np.asarray(getattr(metrics, name)) for name in METRIC_NAMES}
    for name, values in m.items():
        assert values.shape == (3,), name
        assert np.all(np.isfinite(values)), name
    np.testing.assert_allclose(m["env_steps"], m["episode_length"] * B)
    np.testing.assert_allclose(m["episodic_return"], m["episode_length"])  # reward 1 per step
    total = m["env_steps"] + m["padded_steps"]
    assert np.all(m["padded_steps"] >= 0)
    # computed steps are whole chunks for the whole batch, covering the longest episode
    assert np.all(total % (trainer.chunk_len * B) == 0)
    assert np.all(total >= B * np.ceil(m["episode_length"] / trainer.chunk_len)
                  * trainer.chunk_len)
    assert np.all(total <= B * 500 + B * trainer.chunk_len)


def test_fixed_batch_updates_lower_the_loss():
    """Probe: Adam steps on one recorded batch must lower that batch's REINFORCE loss."""
    trainer = _small_trainer(4)
    state = trainer.init(jax.random.key(0))
    batch = jax.jit(trainer.collect, static_argnums=2)(state.params, jax.random.key(1), 4)
    trainer.collect = lambda params, key, n: batch
    state, metrics = jax.jit(lambda s: trainer.run(s, 20))(state)
    loss = np.asarray(metrics.policy_loss)
    assert np.all(np.isfinite(loss))
    assert loss[-1] < loss[0] - 0.5 * abs(loss[0]) - 1.0, (
        f"loss went {loss[0]:.3f} -> {loss[-1]:.3f}")
    assert np.sum(np.diff(loss) < 0) >= 15, f"loss not decreasing: {np.round(loss, 3)}"


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
