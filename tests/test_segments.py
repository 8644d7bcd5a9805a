"""Segment mode (``segment_steps > 0``): B envs played for N steps each, new episodes started
at block boundaries, the last ``segment_cut(gamma)`` steps of every segment not learned from.

Checked for both backends: the rollout layout (episodes back to back, closed by ``done``,
padding only up to the next block, new episodes only at block starts, ``max_t`` respected),
the episode bookkeeping behind the metrics, the learn mask, one full update equal between the
backends on the same rollout, and that CartPole learns with it.
"""

from __future__ import annotations

import both_trainers
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from reinforce import returns
from reinforce.config import SEGMENT_BLOCK, SEGMENT_TOLERANCE, ConfigError, TrainConfig, segment_cut
from reinforce.envs import CartPole
from reinforce.envs.batched import BatchedEnv
from reinforce_jax import algorithm as jt
from reinforce_jax.policy import init_params, make_policy, to_export
from reinforce_torch import algorithm as tt
from reinforce_torch.policy import Policy as TorchPolicy

BLOCK = 16  # a short block, so that a few steps hold many of them


def _config(**changes) -> TrainConfig:
    base = dict(env_id="CartPole-v1", hidden_sizes=(16,), lr=1e-2, gamma=0.95,
                n_training_episodes=64, batch_episodes=4, segment_steps=128)
    return TrainConfig(**{**base, **changes})


# --- the configuration -------------------------------------------------------------------


@pytest.mark.parametrize("gamma", [0.5, 0.9, 0.95, 0.99, 0.999])
def test_segment_cut_is_the_least_step_below_the_tolerance(gamma):
    k = segment_cut(gamma)
    assert gamma**k <= SEGMENT_TOLERANCE < gamma ** (k - 1)


def test_segment_cut_values():
    assert (segment_cut(0.95), segment_cut(0.99), segment_cut(0.0)) == (90, 459, 0)
    assert _config().segment_learned == 128 - 90
    assert _config(segment_steps=0).segment_learned == 0


@pytest.mark.parametrize(("changes", "message"), [
    (dict(segment_steps=100), "multiple of 64"),
    (dict(segment_steps=-64), "multiple of 64"),
    (dict(gamma=1.0), "needs gamma < 1"),
    (dict(baseline="time"), "baseline 'time' needs complete episodes"),
    (dict(segment_steps=64), "use at least 128"),
    (dict(gamma=0.99, segment_steps=448), "use at least 512"),
])
def test_bad_segment_configs(changes, message):
    with pytest.raises(ConfigError, match=message):
        _config(**changes)


# --- the rollout layout, both backends ----------------------------------------------------


def _check_layout(obs, actions, rewards, dones, valid, stats, block_len, horizon):
    """Time-major numpy arrays ``[T, B, ...]`` of one segment rollout; returns the lengths of
    the episodes that ended."""
    T, B = valid.shape
    assert T % block_len == 0
    assert (rewards[~valid] == 0).all() and (obs[~valid] == 0).all()
    assert not dones[~valid].any(), "done only on steps of episodes"
    ended_returns, ended_lengths = [], []
    for b in range(B):
        t, run, ret = 0, 0, 0.0
        while t < T:
            if valid[t, b]:
                if run == 0:  # an episode starts: at 0 or at a block start after padding
                    assert t == 0 or t % block_len == 0 or dones[t - 1, b], (b, t)
                    assert np.abs(obs[t, b]).max() <= 0.05, "a new episode starts from a reset"
                run, ret = run + 1, ret + rewards[t, b]
                if dones[t, b]:
                    assert run <= horizon
                    ended_lengths.append(run)
                    ended_returns.append(ret)
                    # The next episode starts at the next block (or right away at a boundary).
                    nxt = -(-(t + 1) // block_len) * block_len
                    assert not valid[t + 1:nxt, b].any(), "padding until the next block"
                    if nxt < T:
                        assert valid[nxt, b], "an ended episode is replaced at the next block"
                    run, ret, t = 0, 0.0, nxt
                    continue
            else:
                assert run == 0, "no padding inside an episode"
            t += 1
        # The episode still running at the end (if any) is the cut one.
        assert int(stats.cut_length[b]) == run
        assert float(stats.cut_return[b]) == pytest.approx(ret)
        assert run < horizon
    assert int(stats.ended) == len(ended_lengths) == int(dones.sum())
    assert float(stats.ended_return) == pytest.approx(sum(ended_returns))
    assert int(stats.ended_length) == sum(ended_lengths)
    return ended_lengths


def test_jax_segment_layout():
    B, n_blocks, horizon = 5, 12, 40
    policy = make_policy((16,), 2)
    params = init_params(policy, jax.random.key(0), 4)
    collect = jax.jit(lambda p, k: jt.collect_segments(
        CartPole(), CartPole().default_params(), policy, p, k, B, n_blocks, horizon, BLOCK))
    rollout = collect(params, jax.random.key(3))
    assert rollout.obs.shape == (n_blocks, BLOCK, B, 4)
    flat = jax.tree.map(np.asarray, rollout.flat())
    stats = returns.segment_episodes(flat.rewards, flat.dones, flat.valid)
    lengths = _check_layout(flat.obs, flat.actions, flat.rewards, flat.dones, flat.valid, stats,
                            BLOCK, horizon)
    assert len(lengths) > 2 * B, "several episodes per env"
    assert horizon in lengths, "some episodes are cut by max_t"
    assert np.asarray(flat.valid).mean() > 0.6


def test_torch_segment_layout():
    B, T, horizon = 5, 12 * BLOCK, 40
    torch.manual_seed(0)
    policy = TorchPolicy(4, 2, (16,))
    rollout = tt.collect_segments(BatchedEnv("CartPole-v1", B, 0), policy, T, horizon,
                                  torch.Generator().manual_seed(0), BLOCK)
    assert rollout.obs.shape == (T, B, 4)
    stats = returns.segment_episodes(rollout.rewards, rollout.dones, rollout.valid)
    lengths = _check_layout(rollout.obs, rollout.actions, rollout.rewards, rollout.dones,
                            rollout.valid, stats, BLOCK, horizon)
    assert len(lengths) > 2 * B and horizon in lengths


def test_learn_mask_cuts_every_segment_at_the_same_step():
    valid = np.ones((4, BLOCK, 3), bool)
    valid[1, 3:, 0] = False  # some padding
    mask = np.asarray(jt.learn_mask(jnp.asarray(valid), 40)).reshape(-1, 3)
    assert mask[:40].sum() == valid.reshape(-1, 3)[:40].sum() and not mask[40:].any()
    # Whatever happens after step 40 (an episode ending or not) does not change the mask.
    other = valid.copy()
    other[3, :, 1] = False
    assert (np.asarray(jt.learn_mask(jnp.asarray(other), 40)).reshape(-1, 3) == mask).all()


# --- one update, both backends on the same rollout ----------------------------------------


@pytest.mark.parametrize("changes", [
    {}, {"baseline": "value", "entropy_coef": 0.02, "max_grad_norm": 1.0, "value_coef": 0.25},
])
def test_segment_updates_give_same_weights(changes, monkeypatch):
    cfg = _config(**changes)
    j_trainer = jt.Trainer(cfg)
    state = j_trainer.init(jax.random.key(0))
    rollout = jax.jit(j_trainer.collect_segments)(state.params, jax.random.key(1))
    flat = jax.tree.map(np.array, rollout.flat())
    stats = returns.segment_episodes(flat.rewards, flat.dones, flat.valid)
    assert int(stats.ended) > 0
    j_trainer.collect_segments = lambda params, key: rollout
    t_rollout = both_trainers.torch_rollout(flat, cut=False)
    monkeypatch.setattr(tt, "collect_segments", lambda *args, **kw: t_rollout)
    t_trainer = tt.Trainer(cfg, seed=0)
    both_trainers.same_start(state, t_trainer)
    _, t_metrics = both_trainers.assert_updates_match(
        jax.jit(j_trainer.update), state, t_trainer, 1e-5, 1e-6,
        ("episodic_return", "episode_length", "env_steps", "padded_steps"))
    assert t_metrics.env_steps + t_metrics.padded_steps == 4 * 128
    assert t_metrics.episodic_return == pytest.approx(
        float(stats.ended_return) / int(stats.ended))


def test_segment_update_learns_only_from_the_first_steps():
    """Changing what happens in the last (cut) steps of the segment changes nothing."""
    cfg = _config()
    trainer = jt.Trainer(cfg)
    state = trainer.init(jax.random.key(0))
    rollout = jax.jit(trainer.collect_segments)(state.params, jax.random.key(1))
    late = (np.arange(128) >= cfg.segment_learned).reshape(-1, SEGMENT_BLOCK)[..., None]
    changed = rollout._replace(
        rewards=jnp.where(late, 7.0 * rollout.valid, rollout.rewards),
        actions=jnp.where(late, 1 - rollout.actions, rollout.actions))

    def update(r):
        trainer.collect_segments = lambda params, key: r
        new_state, metrics = jax.jit(trainer.update)(state)
        return to_export(new_state.params), float(metrics.policy_loss)

    (a, loss_a), (b, loss_b) = update(rollout), update(changed)
    for name in a:
        np.testing.assert_allclose(a[name], b[name], rtol=1e-6, atol=1e-7)
    assert loss_a == pytest.approx(loss_b, rel=1e-6)
    # A change in the learned steps does change the update.
    early = rollout._replace(actions=rollout.actions.at[0, :8].set(1 - rollout.actions[0, :8]))
    _, loss_c = update(early)
    assert abs(loss_c - loss_a) > 1e-3


# --- learning ------------------------------------------------------------------------------


@pytest.mark.slow
def test_jax_segments_learn_cartpole():
    """CartPole with gamma 0.99 in segments of 1024 steps (565 learned), 4 envs, 100 updates:
    seed 0 reaches a mean return of 488.6 on 20 evaluation episodes (seeds 1, 2: 491.8, 500)."""
    cfg = TrainConfig(env_id="CartPole-v1", hidden_sizes=(16,), lr=2e-2, gamma=0.99,
                      n_training_episodes=4 * 100, batch_episodes=4, max_t=500,
                      segment_steps=1024, lr_decay=True, chunk_updates=100)
    trainer = jt.Trainer(cfg)
    state, metrics = jax.jit(trainer.train)(jax.random.key(0))
    returns = jax.jit(trainer.evaluate, static_argnums=2)(state.params, jax.random.key(9), 20)
    assert float(np.mean(returns)) >= 450.0, float(np.mean(returns))
    first, last = metrics.episodic_return[:5].mean(), metrics.episodic_return[-5:].mean()
    assert float(last) > 4 * float(first)
