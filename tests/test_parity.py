"""JAX <-> torch parity: same weights + same recorded episodes -> same log-probs, loss, gradients.

Weights come from the Flax policy and are converted to the export format (the torch layout) by
``reinforce_jax.policy.to_export``. The weights of the update (the normalized reward-to-go) are
computed once through the shared ``reinforce.returns`` layer; the JAX side then differentiates
``reinforce_jax.algorithm.reinforce_loss`` (flat, and chunked through ``policy_gradient``), the
torch side backpropagates ``reinforce_torch.algorithm.reinforce_loss``. Two architectures: the
CartPole one (4 -> 16 -> 2) on a real rollout, and the Pixelcopter one (7 -> 64 -> 128 -> 2) on
synthetic episodes of varied lengths (so it does not depend on the Pixelcopter env).

The mutation tests document that the comparison is sensitive: the torch side recomputed with
the discount running the wrong way, or without the normalization, is far outside tolerance.
"""

from __future__ import annotations

import functools
from functools import partial
from typing import NamedTuple

import both_trainers
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from reinforce import returns
from reinforce.architecture import Architecture
from reinforce.config import TrainConfig
from reinforce.envs import CartPole
from reinforce_jax import algorithm as jt
from reinforce_jax.policy import from_export, init_params, log_probs, make_policy, to_export
from reinforce_torch import algorithm as tt
from reinforce_torch.policy import Policy

RTOL, ATOL = 1e-5, 1e-6
CHUNK = 16


class Case(NamedTuple):
    name: str
    obs_size: int
    hidden: tuple[int, ...]
    gamma: float
    B: int


CASES = [
    Case("cartpole", 4, (16,), 1.0, 1),
    Case("cartpole", 4, (16,), 1.0, 4),
    Case("pixelcopter", 7, (64, 128), 0.99, 1),
    Case("pixelcopter", 7, (64, 128), 0.99, 4),
]
IDS = [f"{c.name}-B{c.B}" for c in CASES]
NUM_ACTIONS = 2


class Batch(NamedTuple):
    params: dict
    rollout: jt.Rollout  # chunked [n_chunks, CHUNK, B, ...]
    n_played: jax.Array
    flat: jt.Rollout  # [n_chunks * CHUNK, B, ...]
    weights: np.ndarray  # normalized reward-to-go, [n_chunks * CHUNK, B]


@functools.cache
def _cartpole_rollout(hidden: tuple[int, ...], seed: int) -> tuple[dict, jt.Rollout]:
    """Initial weights and a real rollout of 4 CartPole episodes played with them."""
    env = CartPole()
    policy = make_policy(hidden, NUM_ACTIONS)

    @jax.jit
    def init_and_play(key):
        params = init_params(policy, key, env.observation_size)
        play_key = jax.random.fold_in(key, 1)
        return params, jt.collect(env, env.default_params(), policy, params, play_key, 4, 500,
                                  CHUNK)[0]

    return init_and_play(jax.random.key(seed))


def _cartpole_batch(case: Case, seed: int) -> tuple[dict, jt.Rollout]:
    """B = 4: the recorded rollout; B = 1: its first episode."""
    params, rollout = _cartpole_rollout(case.hidden, seed)
    return params, jax.tree.map(lambda x: x[:, :, : case.B], rollout)


def _synthetic_batch(case: Case, seed: int) -> jt.Rollout:
    """Episodes of 7-dim observations with varied lengths, Pixelcopter-like rewards."""
    rng = np.random.default_rng(seed)
    lengths = np.array([45, 5, 70, 18][: case.B]) if case.B <= 4 else rng.integers(3, 80, case.B)
    T = -(-lengths.max() // CHUNK) * CHUNK
    valid = np.arange(T)[:, None] < lengths[None, :]
    dones = np.arange(T)[:, None] == (lengths - 1)[None, :]
    scale = np.array([1.0, 0.5, 2.0, 0.3, 1.5, 0.8, 3.0], np.float32)
    obs = (rng.normal(size=(T, case.B, case.obs_size)) * scale * valid[..., None]).astype(
        np.float32)
    actions = (rng.random((T, case.B)) < 0.4).astype(np.int32) * valid
    rewards = (rng.random((T, case.B)) < 0.15).astype(np.float32)  # a pipe passed now and then
    rewards = np.where(dones, -5.0, rewards) * valid  # and a crash at the end
    flat = jt.Rollout(obs=jnp.asarray(obs), actions=jnp.asarray(actions, jnp.int32),
                      rewards=jnp.asarray(rewards, jnp.float32), dones=jnp.asarray(dones),
                      valid=jnp.asarray(valid))
    n_chunks = T // CHUNK
    return jax.tree.map(lambda x: x.reshape(n_chunks, CHUNK, *x.shape[1:]), flat)


@functools.cache
def make_batch(case: Case, seed: int = 0) -> Batch:
    if case.name == "cartpole":
        params, rollout = _cartpole_batch(case, seed)
    else:
        params = _jax_fns(case.hidden)[2](jax.random.key(seed), case.obs_size)
        rollout = _synthetic_batch(case, seed)
    # Chunks after the last played one are all padding: cut them (as collect reports).
    n_played = int(np.asarray(rollout.valid).any(axis=(1, 2)).sum())
    rollout = jax.tree.map(lambda x: x[:n_played], rollout)
    flat = rollout.flat()
    weights = np.asarray(returns.reward_to_go(flat.rewards, flat.dones, flat.valid, case.gamma))
    return Batch(params, rollout, jnp.asarray(n_played, jnp.int32), flat, weights)


def _torch_tensors(flat: jt.Rollout, weights: np.ndarray):
    return (torch.from_numpy(np.array(flat.obs)), torch.from_numpy(np.array(flat.actions)),
            torch.from_numpy(np.array(weights)), torch.from_numpy(np.array(flat.valid)))


def torch_side(case: Case, batch: Batch, weights: np.ndarray):
    """log-probs, loss and gradients (torch layout) of the torch backend."""
    policy = Policy.from_weights(to_export(batch.params),
                                 Architecture((case.obs_size,), NUM_ACTIONS, case.hidden))
    obs, actions, w, valid = _torch_tensors(batch.flat, weights)
    logp = policy.log_probs(obs, actions)
    loss = tt.reinforce_loss(policy, obs, actions, w, valid, case.B)
    loss.backward()
    grads = {name: p.grad.numpy().copy() for name, p in policy.named_parameters()}
    return logp.detach().numpy(), float(loss.item()), grads


@functools.cache
def _jax_fns(hidden: tuple[int, ...]):
    """Jitted (loss and log-probs with gradient, chunked policy_gradient, init) per architecture."""
    policy = make_policy(hidden, NUM_ACTIONS)

    def loss_and_logp(params, obs, actions, weights, valid, n_episodes):
        loss = jt.reinforce_loss(policy, params, obs, actions, weights, valid, n_episodes)
        return loss, log_probs(policy, params, obs, actions)

    return (jax.jit(jax.value_and_grad(loss_and_logp, has_aux=True)),
            jax.jit(partial(jt.policy_gradient, policy)),
            jax.jit(partial(init_params, policy), static_argnums=1))


def jax_side(case: Case, batch: Batch, weights: np.ndarray):
    """log-probs, loss and gradients (torch layout) of the flat JAX loss."""
    f = batch.flat
    (loss, logp), grads = _jax_fns(case.hidden)[0](
        batch.params, f.obs, f.actions, jnp.asarray(weights), f.valid, case.B)
    return np.asarray(logp), float(loss), to_export(grads)


def max_rel_diff(got: dict, want: dict) -> float:
    """Largest |got - want| over each parameter, relative to that parameter's largest |want|."""
    return max(float(np.abs(got[k] - want[k]).max() / np.abs(want[k]).max()) for k in want)


@pytest.fixture(params=CASES, ids=IDS)
def case_batch(request):
    case = request.param
    return case, make_batch(case)


def test_batch_is_meaningful(case_batch):
    case, batch = case_batch
    valid = np.asarray(batch.flat.valid)
    lengths = valid.sum(axis=0)
    assert valid.shape[1] == case.B and np.all(lengths >= 2)
    assert np.asarray(batch.flat.dones).sum() == case.B
    if case.B > 1:
        assert len(set(lengths.tolist())) > 1, "episodes of different lengths expected"
    w = batch.weights[valid]
    assert abs(w.mean()) < 1e-5 and abs(w.std(ddof=1) - 1.0) < 1e-3
    assert np.all(batch.weights[~valid] == 0.0)
    # Both actions occur, so the gradient is not degenerate.
    assert len(np.unique(np.asarray(batch.flat.actions)[valid])) == 2


def test_both_trainers_compute_the_shared_weights(case_batch):
    case, batch = case_batch
    chunked = jt.compute_weights(batch.rollout, batch.n_played, case.gamma, True)
    np.testing.assert_allclose(np.asarray(chunked).reshape(batch.weights.shape), batch.weights,
                               rtol=RTOL, atol=ATOL)
    torch_rollout = both_trainers.torch_rollout(batch.flat)  # torch keeps no padding
    T = len(torch_rollout.obs)
    torch_w = tt.compute_weights(torch_rollout, case.gamma, True)
    assert torch_w.shape == (T, case.B)
    np.testing.assert_allclose(torch_w, batch.weights[:T], rtol=RTOL, atol=ATOL)


def test_both_trainers_compute_the_shared_weights_with_time_baseline(case_batch):
    case, batch = case_batch
    f = batch.flat
    flat_w = np.asarray(returns.reward_to_go(f.rewards, f.dones, f.valid, case.gamma, True,
                                             "time"))
    if case.B == 1:  # no other episode: the baseline is 0 and changes nothing
        np.testing.assert_allclose(flat_w, batch.weights, rtol=RTOL, atol=ATOL)
    else:
        assert not np.allclose(flat_w, batch.weights, atol=1e-3), "the baseline changed nothing"
    chunked = jt.compute_weights(batch.rollout, batch.n_played, case.gamma, True, "time")
    np.testing.assert_allclose(np.asarray(chunked).reshape(flat_w.shape), flat_w,
                               rtol=RTOL, atol=ATOL)
    torch_rollout = both_trainers.torch_rollout(f)
    T = len(torch_rollout.obs)
    torch_w = tt.compute_weights(torch_rollout, case.gamma, True, "time")
    np.testing.assert_allclose(torch_w, flat_w[:T], rtol=RTOL, atol=ATOL)


def test_log_probs_loss_and_gradients_match(case_batch):
    case, batch = case_batch
    t_logp, t_loss, t_grads = torch_side(case, batch, batch.weights)
    j_logp, j_loss, j_grads = jax_side(case, batch, batch.weights)
    valid = np.asarray(batch.flat.valid)
    np.testing.assert_allclose(t_logp[valid], j_logp[valid], rtol=RTOL, atol=ATOL)
    assert np.all(j_logp[valid] < 0)
    np.testing.assert_allclose(t_loss, j_loss, rtol=RTOL, atol=ATOL)
    assert sorted(t_grads) == sorted(j_grads)
    for name in t_grads:
        assert t_grads[name].shape == j_grads[name].shape, name
        np.testing.assert_allclose(t_grads[name], j_grads[name], rtol=RTOL, atol=ATOL,
                                   err_msg=name)
    assert max(np.abs(g).max() for g in j_grads.values()) > 1e-3, "gradient is ~zero"


def test_chunked_policy_gradient_matches_torch(case_batch):
    case, batch = case_batch
    policy_gradient = _jax_fns(case.hidden)[1]
    weights = jnp.asarray(batch.weights).reshape(batch.rollout.rewards.shape)
    loss, grads = policy_gradient(batch.params, batch.rollout, weights, batch.n_played)
    _, t_loss, t_grads = torch_side(case, batch, batch.weights)
    np.testing.assert_allclose(float(loss), t_loss, rtol=RTOL, atol=ATOL)
    j_grads = to_export(grads)
    for name in t_grads:
        np.testing.assert_allclose(j_grads[name], t_grads[name], rtol=RTOL, atol=ATOL,
                                   err_msg=name)


def test_weight_conversion_round_trip():
    case = CASES[3]
    params = make_batch(case).params
    state = to_export(params)
    assert state["layers.0.weight"].shape == (64, 7) and state["layers.2.bias"].shape == (2,)
    back = from_export(state)
    jax.tree.map(np.testing.assert_array_equal, back, params)
    # Converted weights give the same probabilities.
    batch = make_batch(case)
    t_logp, _, _ = torch_side(case, batch, batch.weights)
    j_logp, _, _ = jax_side(case, batch, batch.weights)
    np.testing.assert_allclose(np.exp(t_logp), np.exp(j_logp), rtol=RTOL, atol=ATOL)


# --- one full update: torch Adam vs the JAX trainer's scale_by_adam + lr ----------------------


def _update_config(B: int, baseline: str = "none", **changes) -> TrainConfig:
    return TrainConfig(env_id="CartPole-v1", hidden_sizes=(16,), lr=1e-2, gamma=0.99,
                       n_training_episodes=100, batch_episodes=B, baseline=baseline, **changes)


@functools.cache
def _trainer_rollout() -> tuple[jt.TrainState, jt.Rollout]:
    """The JAX trainer's initial state and 4 episodes its own ``collect`` played with it."""
    trainer = jt.Trainer(_update_config(4))
    state = trainer.init(jax.random.key(0))
    rollout, _ = jax.jit(trainer.collect, static_argnums=2)(state.params, jax.random.key(1), 4)
    return state, rollout


@pytest.mark.parametrize(("B", "baseline", "schedule"), [
    (1, "none", {}), (4, "none", {}), (4, "time", {}),
    (4, "none", {"lr_warmup": 2, "lr_decay": True}),  # the lr changes at every update
    (4, "value", {}),
    (1, "value", {"entropy_coef": 0.05, "max_grad_norm": 0.5, "value_coef": 2.0}),
    (4, "none", {"entropy_coef": 0.1, "max_grad_norm": 0.05}),
    (4, "value", {"normalize_obs": True, "entropy_coef": 0.01}),
])
def test_full_updates_give_same_weights(B, baseline, schedule, monkeypatch):
    cfg = _update_config(B, baseline).replace(**schedule)
    j_trainer = jt.Trainer(cfg)
    state, rollout = _trainer_rollout()
    state = j_trainer.init(jax.random.key(0))._replace(params=state.params)
    initial = to_export(state.params)
    rollout = jax.tree.map(lambda x: x[:, :, :B], rollout)  # B = 1: the first episode
    n_played = jnp.asarray(np.asarray(rollout.valid).any(axis=(1, 2)).sum(), jnp.int32)
    # Both trainers get this same rollout instead of playing their own.
    j_trainer.collect = lambda params, key, n: (rollout, n_played)
    torch_rollout = both_trainers.torch_rollout(rollout.flat())
    monkeypatch.setattr(tt, "collect", lambda env, policy, horizon, generator: torch_rollout)
    t_trainer = tt.Trainer(cfg, seed=0)
    both_trainers.same_start(state, t_trainer)
    # three steps: Adam's moments and bias corrections are exercised
    j_new, _ = both_trainers.assert_updates_match(
        jax.jit(j_trainer.update), state, t_trainer, RTOL, ATOL,
        ("episodic_return", "episode_length", "env_steps"))
    moved = max(np.abs(j_new[k] - v).max() for k, v in initial.items())
    assert moved > 1e-3, "the updates did not change the weights"


# --- mutations: the parity test must catch these bugs -----------------------------------------


def _forward_cumsum(rewards: np.ndarray, dones: np.ndarray, gamma: float) -> np.ndarray:
    """The wrong direction: G[t] = r[t] + gamma * G[t-1] within an episode."""
    out = np.zeros(rewards.shape, np.float64)
    running = np.zeros(rewards.shape[1])
    for t in range(rewards.shape[0]):
        running = rewards[t] + gamma * running
        out[t] = running
        running = np.where(dones[t], 0.0, running)
    return out.astype(np.float32)


def _mutated_weights(mutation: str, case: Case, batch: Batch) -> np.ndarray:
    f = batch.flat
    rewards, dones, valid = (np.asarray(f.rewards), np.asarray(f.dones), np.asarray(f.valid))
    if mutation == "forward_cumsum":
        return np.asarray(returns.normalize(_forward_cumsum(rewards, dones, case.gamma), valid))
    if mutation == "no_normalization":
        G = returns.discounted_returns(rewards, dones, case.gamma)
        return np.asarray(G) * valid
    raise ValueError(mutation)


@pytest.mark.parametrize("mutation", ["forward_cumsum", "no_normalization"])
@pytest.mark.parametrize("case", [CASES[1], CASES[3]], ids=[IDS[1], IDS[3]])
def test_mutated_torch_side_is_caught(mutation, case):
    batch = make_batch(case)
    _, _, j_grads = jax_side(case, batch, batch.weights)
    _, _, good = torch_side(case, batch, batch.weights)
    _, _, bad = torch_side(case, batch, _mutated_weights(mutation, case, batch))
    good_diff, bad_diff = max_rel_diff(good, j_grads), max_rel_diff(bad, j_grads)
    print(f"[mutation] {case.name}-B{case.B} {mutation}: max relative gradient difference "
          f"{bad_diff:.3g} (unmutated {good_diff:.3g})")
    assert good_diff < 10 * RTOL, f"unmutated torch side differs by {good_diff:.3g}"
    assert bad_diff > 1000 * RTOL, (
        f"{mutation} changed the torch gradients by only {bad_diff:.3g} (max relative "
        f"difference; unmutated {good_diff:.3g}): the parity test would not catch it")
    with pytest.raises(AssertionError):
        for name in j_grads:
            np.testing.assert_allclose(bad[name], j_grads[name], rtol=RTOL, atol=ATOL)
