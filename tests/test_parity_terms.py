"""JAX <-> torch parity of the terms beyond the course's loss: the learned value baseline, the
entropy bonus and gradient clipping.

On the batches of ``test_parity`` (a real CartPole rollout and synthetic Pixelcopter-like
episodes, chunked for the JAX side), both backends start from the same policy and value
weights, compute the state values, subtract them from the reward-to-go through the shared
returns layer, and differentiate ``policy_loss - entropy_coef * entropy + value_coef *
value_loss``: the loss terms and the gradients of both networks agree to float32 rounding.

The mutation tests show the comparison would catch a wrong term: the torch side with the
entropy bonus or the value loss of the wrong sign, or with the baseline left in the graph (no
stop-gradient: the policy loss then trains the value network too), or clipping each network on
its own instead of the global norm, is far outside the tolerance.
"""

from __future__ import annotations

import functools
from functools import partial

import both_trainers
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from test_parity import ATOL, CASES, IDS, NUM_ACTIONS, RTOL, Case, make_batch, max_rel_diff

from reinforce import returns
from reinforce.architecture import Architecture, architecture
from reinforce.config import TrainConfig
from reinforce_jax import algorithm as jt
from reinforce_jax.policy import init_params, make_policy, policy_for, to_export
from reinforce_torch import algorithm as tt
from reinforce_torch.policy import Policy

#: (entropy_coef, value_coef) pairs compared.
COEFS = [(0.0, 0.5), (0.05, 0.5), (0.2, 2.0)]


@functools.cache
def _nets(hidden: tuple[int, ...]):
    return make_policy(hidden, NUM_ACTIONS), make_policy(hidden, 1)


@functools.cache
def value_params(case: Case, seed: int = 7):
    return jax.jit(partial(init_params, _nets(case.hidden)[1]), static_argnums=1)(
        jax.random.key(seed), case.obs_size)


@functools.cache
def _jax_update(hidden: tuple[int, ...]):
    policy, value_net = _nets(hidden)

    @jax.jit
    def update(params, value_params, rollout, n_played, gamma, entropy_coef, value_coef):
        G = jt.compute_returns(rollout, n_played, gamma)
        values = jt.chunk_values(value_net, value_params, rollout.obs, n_played)
        weights = returns.weigh(G, rollout.valid, True, "value", values)
        terms, grads = jt.loss_gradient(policy, value_net, params, value_params, rollout,
                                        weights, G, n_played, entropy_coef, value_coef)
        return terms, grads, values

    return update


def jax_side(case: Case, entropy_coef: float, value_coef: float):
    """Loss terms, policy and value gradients (torch layout) and state values of the JAX
    trainer's functions."""
    batch = make_batch(case)
    terms, (grads, value_grads), values = _jax_update(case.hidden)(
        batch.params, value_params(case), batch.rollout, batch.n_played, case.gamma,
        entropy_coef, value_coef)
    return terms, to_export(grads), to_export(value_grads), np.asarray(values)


def _torch_normalized(x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """``reinforce.returns.normalize`` in torch operations (so that a gradient can flow)."""
    v = valid.to(x.dtype)
    count = v.sum()
    mean = (x * v).sum() / count
    std = torch.sqrt((((x - mean) ** 2) * v).sum() / (count - 1))
    return (x - mean) / (std + returns.EPS) * v


def torch_side(case: Case, entropy_coef: float, value_coef: float, mutation: str | None = None):
    """The same with the torch trainer's functions; ``mutation`` plants a bug."""
    batch = make_batch(case)
    arch = Architecture((case.obs_size,), NUM_ACTIONS, case.hidden)
    policy = Policy.from_weights(to_export(batch.params), arch)
    value_net = Policy.from_weights(to_export(value_params(case)), arch.value())
    rollout = both_trainers.torch_rollout(batch.flat)
    G = tt.compute_returns(rollout, case.gamma)
    obs, actions, targets, valid = (torch.from_numpy(x) for x in (
        rollout.obs, rollout.actions, G, rollout.valid))
    with torch.no_grad():
        values = value_net.values(obs)
    weights = torch.from_numpy(tt.compute_weights(rollout, case.gamma, True, "value",
                                                  values.numpy(), G))
    if mutation == "no_stop_gradient":  # the baseline stays in the policy loss's graph
        weights = _torch_normalized(targets - value_net.values(obs), valid)
    if mutation == "entropy_sign":
        entropy_coef = -entropy_coef
    if mutation == "value_loss_sign":
        value_coef = -value_coef
    total, terms = tt.update_loss(policy, value_net, obs, actions, weights, targets, valid,
                                  case.B, entropy_coef, value_coef)
    total.backward()
    grads = {name: p.grad.numpy().copy() for name, p in policy.named_parameters()}
    value_grads = {name: p.grad.numpy().copy() for name, p in value_net.named_parameters()}
    return terms, grads, value_grads, values.numpy()


@pytest.fixture(params=CASES, ids=IDS)
def case(request):
    return request.param


@pytest.mark.parametrize(("entropy_coef", "value_coef"), COEFS)
def test_loss_terms_and_both_gradients_match(case, entropy_coef, value_coef):
    j_terms, j_grads, j_value_grads, j_values = jax_side(case, entropy_coef, value_coef)
    t_terms, t_grads, t_value_grads, t_values = torch_side(case, entropy_coef, value_coef)
    valid = np.asarray(make_batch(case).flat.valid)
    T = t_values.shape[0]
    np.testing.assert_allclose(t_values[valid[:T]], j_values.reshape(valid.shape)[valid],
                               rtol=RTOL, atol=ATOL)
    for name in jt.LossTerms._fields:
        np.testing.assert_allclose(getattr(t_terms, name).item(), float(getattr(j_terms, name)),
                                   rtol=RTOL, atol=ATOL, err_msg=name)
    assert float(j_terms.entropy) > 0 and float(j_terms.value_loss) > 0
    for got, want in ((t_grads, j_grads), (t_value_grads, j_value_grads)):
        assert sorted(got) == sorted(want)
        for name in want:
            np.testing.assert_allclose(got[name], want[name], rtol=RTOL, atol=ATOL,
                                       err_msg=name)
    assert max(np.abs(g).max() for g in j_value_grads.values()) > 1e-3, "value gradient ~0"


def test_the_entropy_term_changes_the_policy_gradient():
    """The entropy bonus is in the gradient (not only in the reported terms)."""
    case = CASES[3]
    _, without, _, _ = jax_side(case, 0.0, 0.5)
    _, with_bonus, _, _ = jax_side(case, 0.2, 0.5)
    assert max_rel_diff(with_bonus, without) > 1e-2


@pytest.mark.parametrize("mutation", ["entropy_sign", "value_loss_sign", "no_stop_gradient"])
@pytest.mark.parametrize("case", [CASES[1], CASES[3]], ids=[IDS[1], IDS[3]])
def test_mutated_terms_are_caught(case, mutation):
    entropy_coef, value_coef = 0.05, 0.5
    _, j_grads, j_value_grads, _ = jax_side(case, entropy_coef, value_coef)
    _, good, good_value, _ = torch_side(case, entropy_coef, value_coef)
    _, bad, bad_value, _ = torch_side(case, entropy_coef, value_coef, mutation)
    good_diff = max(max_rel_diff(good, j_grads), max_rel_diff(good_value, j_value_grads))
    bad_diff = max(max_rel_diff(bad, j_grads), max_rel_diff(bad_value, j_value_grads))
    print(f"[mutation] {case.name}-B{case.B} {mutation}: max relative gradient difference "
          f"{bad_diff:.3g} (unmutated {good_diff:.3g})")
    assert good_diff < 10 * RTOL, f"unmutated torch side differs by {good_diff:.3g}"
    assert bad_diff > 100 * RTOL, (
        f"{mutation} changed the torch gradients by only {bad_diff:.3g}: the parity test "
        "would not catch it")
    with pytest.raises(AssertionError):
        for got, want in ((bad, j_grads), (bad_value, j_value_grads)):
            for name in want:
                np.testing.assert_allclose(got[name], want[name], rtol=RTOL, atol=ATOL)


# --- clipping ------------------------------------------------------------------------------


def _torch_clipped(grads: dict[str, np.ndarray], max_norm: float) -> dict[str, np.ndarray]:
    params = {name: torch.nn.Parameter(torch.zeros(g.shape)) for name, g in grads.items()}
    for name, p in params.items():
        p.grad = torch.from_numpy(grads[name].copy())
    torch.nn.utils.clip_grad_norm_(list(params.values()), max_norm)
    return {name: p.grad.numpy() for name, p in params.items()}


def _norm(grads: dict[str, np.ndarray]) -> float:
    return float(np.sqrt(sum(np.sum(g.astype(np.float64) ** 2) for g in grads.values())))


@pytest.mark.parametrize("max_norm", [0.0, 0.05, 1e6])
def test_clipping_scales_both_networks_by_the_global_norm_as_torch_does(max_norm):
    case = CASES[3]
    _, grads, value_grads, _ = jax_side(case, 0.05, 0.5)
    both = {**{f"policy.{k}": v for k, v in grads.items()},
            **{f"value.{k}": v for k, v in value_grads.items()}}
    clipped = jt.clip_gradient({k: jnp.asarray(v) for k, v in both.items()}, max_norm)
    clipped = {k: np.asarray(v) for k, v in clipped.items()}
    if max_norm == 0.0:  # no clipping
        for k in both:
            np.testing.assert_array_equal(clipped[k], both[k])
        return
    want = _torch_clipped(both, max_norm)
    for k in both:
        np.testing.assert_allclose(clipped[k], want[k], rtol=RTOL, atol=1e-9, err_msg=k)
    assert _norm(clipped) == pytest.approx(min(max_norm, _norm(both)), rel=1e-4)
    if max_norm < _norm(both):
        # Clipping each network to the norm on its own is another rule, and it shows.
        per_net = {**_torch_clipped({k: v for k, v in both.items() if k[0] == "p"}, max_norm),
                   **_torch_clipped({k: v for k, v in both.items() if k[0] == "v"}, max_norm)}
        assert max_rel_diff(per_net, clipped) > 1000 * RTOL


# --- normalized observations -----------------------------------------------------------------


def test_normalized_inputs_are_part_of_both_policies_and_their_config(tmp_path):
    cfg = TrainConfig(env_id="Pixelcopter-PLE-v0", hidden_sizes=(64, 128), gamma=0.95,
                      normalize_obs=True)
    arch = architecture(cfg)
    assert arch.input_offset[0] == 24.0 and arch.input_scale[0] == 24.0
    assert "scaled" in arch.describe()
    params = init_params(policy_for(arch), jax.random.key(0), 7)
    obs = np.random.default_rng(0).uniform(0, 48, (64, 7)).astype(np.float32)
    j_probs = np.asarray(jax.nn.softmax(policy_for(arch).apply(params, obs)))
    policy = Policy.from_weights(to_export(params), arch)
    np.testing.assert_allclose(policy.numpy_probabilities(obs), j_probs, rtol=RTOL, atol=ATOL)
    # The exported folder keeps the scaling: the policy loaded from it takes raw observations.
    policy.save_pretrained(tmp_path)
    loaded = Policy.from_pretrained(tmp_path)
    assert loaded.arch == arch
    np.testing.assert_allclose(loaded.numpy_probabilities(obs), j_probs, rtol=RTOL, atol=ATOL)
    plain = Policy.from_weights(to_export(params), Architecture((7,), 2, (64, 128)))
    assert np.abs(plain.numpy_probabilities(obs) - j_probs).max() > 1e-3


def test_frames_are_scaled_by_the_network_whatever_normalize_obs_says():
    cfg = TrainConfig(env_id="Pixelcopter-PLE-v0", obs="pixels", normalize_obs=True)
    assert architecture(cfg) == architecture(cfg.replace(normalize_obs=False))
    assert architecture(cfg).input_scale == ()
