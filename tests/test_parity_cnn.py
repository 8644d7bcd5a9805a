"""JAX <-> torch parity of the pixel policy (a CNN on stacked gray frames): the same weights and
the same recorded frames give the same log-probs, loss and gradients (float32, rtol 1e-5), the
weights convert exactly both ways, and three full updates give the same weights. Mutations of
the torch side (the conv output flattened channel first, the frames not scaled) are caught."""

from __future__ import annotations

import functools
from functools import partial

import both_trainers
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from reinforce import returns
from reinforce.architecture import architecture
from reinforce.config import preset
from reinforce_jax import algorithm as jt
from reinforce_jax.policy import from_export, log_probs, to_export
from reinforce_torch import algorithm as tt
from reinforce_torch.policy import Policy

RTOL, ATOL = 1e-5, 1e-6
CFG = preset("fast", "Pixelcopter-PLE-v0").replace(
    obs="pixels", frame_stack=2, hidden_sizes=(32,), segment_steps=0, batch_episodes=3,
    n_training_episodes=30, max_t=96, gamma=0.95, lr=3e-3, baseline="none", entropy_coef=0.0,
    max_grad_norm=0.0)
#: Adam divides each gradient by its own scale: where a gradient is ~1e-8 (a conv weight seen
#: through a dead ReLU), float32 rounding moves its step by up to lr x 1e-3 on the CPU, and on
#: a GPU, whose convolutions sum in another order, by up to lr x 0.05 (docs/scale.md, On a GPU).
UPDATE_ATOL = CFG.lr / 300 if jax.default_backend() == "cpu" else CFG.lr / 10


@functools.cache
def batch():
    """Initial weights and a real rollout of 3 episodes of frames played with them."""
    trainer = jt.Trainer(CFG)
    state = trainer.init(jax.random.key(0))
    rollout, n_played = jax.jit(trainer.collect, static_argnums=2)(state.params,
                                                                  jax.random.key(1), 3)
    rollout = jax.tree.map(lambda x: x[:int(n_played)], rollout)
    flat = rollout.flat()
    weights = np.asarray(returns.reward_to_go(flat.rewards, flat.dones, flat.valid, CFG.gamma))
    return trainer, state, rollout, jnp.asarray(n_played, jnp.int32), flat, weights


def test_the_batch_holds_frames_of_real_episodes():
    trainer, _, rollout, _, flat, _ = batch()
    assert flat.obs.dtype == jnp.uint8 and flat.obs.shape[2:] == (48, 48, 2)
    valid = np.asarray(flat.valid)
    frames = np.asarray(flat.obs)[valid]
    assert set(np.unique(frames)) == {0, 185, 255}  # black, terrain and blocks, the player
    assert len(np.unique(np.asarray(flat.actions)[valid])) == 2
    assert np.asarray(flat.dones).sum() >= 1


def torch_side(policy: Policy, flat, weights):
    obs = torch.from_numpy(np.array(flat.obs))
    actions = torch.from_numpy(np.asarray(flat.actions).astype(np.int64))
    w, valid = torch.from_numpy(np.asarray(weights)), torch.from_numpy(np.asarray(flat.valid))
    logp = policy.log_probs(obs, actions)
    loss = tt.reinforce_loss(policy, obs, actions, w, valid, 3)
    loss.backward()
    grads = {name: p.grad.numpy().copy() for name, p in policy.named_parameters()}
    return logp.detach().numpy(), float(loss.item()), grads


def jax_side(trainer, params, flat, weights):
    def loss_and_logp(params):
        loss = jt.reinforce_loss(trainer.policy, params, flat.obs, flat.actions,
                                 jnp.asarray(weights), flat.valid, 3)
        return loss, log_probs(trainer.policy, params, flat.obs, flat.actions)

    (loss, logp), grads = jax.jit(jax.value_and_grad(loss_and_logp, has_aux=True))(params)
    return np.asarray(logp), float(loss), to_export(grads)


def _torch_policy(params) -> Policy:
    return Policy.from_weights(to_export(params), architecture(CFG)).train()


def test_log_probs_loss_and_gradients_match():
    trainer, state, _, _, flat, weights = batch()
    t_logp, t_loss, t_grads = torch_side(_torch_policy(state.params), flat, weights)
    j_logp, j_loss, j_grads = jax_side(trainer, state.params, flat, weights)
    valid = np.asarray(flat.valid)
    np.testing.assert_allclose(t_logp[valid], j_logp[valid], rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(t_loss, j_loss, rtol=RTOL, atol=ATOL)
    assert sorted(t_grads) == sorted(j_grads) and "convs.0.weight" in t_grads
    for name in t_grads:
        np.testing.assert_allclose(t_grads[name], j_grads[name], rtol=RTOL, atol=ATOL,
                                   err_msg=name)
    assert np.abs(j_grads["convs.0.weight"]).max() > 1e-6, "no gradient reaches the convs"


def test_the_chunked_gradient_matches_torch():
    trainer, state, rollout, n_played, flat, weights = batch()
    w = jnp.asarray(weights).reshape(rollout.rewards.shape)
    loss, grads = jax.jit(partial(jt.policy_gradient, trainer.policy))(state.params, rollout, w,
                                                                       n_played)
    _, t_loss, t_grads = torch_side(_torch_policy(state.params), flat, weights)
    np.testing.assert_allclose(float(loss), t_loss, rtol=RTOL, atol=ATOL)
    for name, value in to_export(grads).items():
        np.testing.assert_allclose(value, t_grads[name], rtol=RTOL, atol=ATOL, err_msg=name)


def test_weights_convert_exactly_both_ways():
    _, state, _, _, flat, _ = batch()
    weights = to_export(state.params)
    assert weights["convs.0.weight"].shape == (16, 2, 8, 8)
    assert weights["convs.1.weight"].shape == (32, 16, 4, 4)
    assert weights["layers.0.weight"].shape == (32, 4 * 4 * 32)
    jax.tree.map(np.testing.assert_array_equal, from_export(weights), state.params)
    policy = Policy.from_weights(weights, architecture(CFG))
    for name, value in policy.export().items():
        np.testing.assert_array_equal(value, weights[name])


def test_three_full_updates_give_the_same_weights(monkeypatch):
    _, state, rollout, n_played, flat, _ = batch()
    trainer = jt.Trainer(CFG)  # a trainer of its own: its collect is replaced
    trainer.collect = lambda params, key, n: (rollout, n_played)
    torch_rollout = both_trainers.torch_rollout(flat)
    monkeypatch.setattr(tt, "collect", lambda env, policy, horizon, generator: torch_rollout)
    t_trainer = tt.Trainer(CFG, seed=0)
    initial = to_export(state.params)
    t_trainer.policy.load_state_dict({k: torch.from_numpy(v) for k, v in initial.items()})
    j_new, _ = both_trainers.assert_updates_match(jax.jit(trainer.update), state, t_trainer,
                                                  RTOL, UPDATE_ATOL)
    moved = max(np.abs(j_new[k] - v).max() for k, v in initial.items())
    assert moved > 1e-4, "the updates did not change the weights"


class ChannelFirstFlatten(Policy):
    def forward(self, obs):  # the conv output flattened channel first, as torch's default is
        x = obs.reshape(-1, *obs.shape[-3:]).float().div(255.0).permute(0, 3, 1, 2)
        for conv in self.convs:
            x = torch.relu(conv(x))
        x = x.reshape(*obs.shape[:-3], -1)
        for layer in self.layers[:-1]:
            x = torch.relu(layer(x))
        return self.layers[-1](x)


class Unscaled(Policy):
    def forward(self, obs):  # the frames as 0..255, not 0..1
        return super().forward(obs.float() * 255.0)


@pytest.mark.parametrize("mutant", [ChannelFirstFlatten, Unscaled])
def test_a_mutated_torch_policy_is_caught(mutant):
    trainer, state, _, _, flat, weights = batch()
    policy = mutant.build(architecture(CFG))
    policy.load_state_dict({k: torch.from_numpy(v) for k, v in to_export(state.params).items()})
    t_logp, _, _ = torch_side(policy, flat, weights)
    j_logp, _, _ = jax_side(trainer, state.params, flat, weights)
    valid = np.asarray(flat.valid)
    assert not np.allclose(t_logp[valid], j_logp[valid], rtol=RTOL, atol=ATOL)
