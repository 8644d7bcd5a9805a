"""The shared returns layer (``reinforce.returns``) against its numpy oracles and by hand."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from reinforce import returns
from reinforce.envs import CartPole
from reinforce_jax import algorithm as jt
from reinforce_jax.policy import init_params, make_policy


def _random_batch(seed: int, T: int = 57, B: int = 6, p_done: float = 0.1):
    rng = np.random.default_rng(seed)
    rewards = rng.normal(size=(T, B)).astype(np.float32)
    dones = rng.random((T, B)) < p_done
    return rewards, dones


@pytest.mark.parametrize("gamma", [1.0, 0.99, 0.5, 0.0])
@pytest.mark.parametrize("seed", [0, 1])
def test_discounted_returns_match_reference(gamma, seed):
    rewards, dones = _random_batch(seed)
    assert dones.any() and not dones.all()
    got = np.asarray(returns.discounted_returns(rewards, dones, gamma))
    want = returns.discounted_returns_reference(rewards, dones, gamma)
    assert got.shape == rewards.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    if gamma == 0.0:
        np.testing.assert_array_equal(got, rewards)


IMPLEMENTATIONS = {
    "platform": returns.discounted_returns,
    "scan": jax.jit(returns.discounted_returns_scan),
    "associative": jax.jit(returns.discounted_returns_associative),
}


@pytest.mark.parametrize("impl", list(IMPLEMENTATIONS))
@pytest.mark.parametrize("shape", [(1, 3), (2, 1), (57, 6), (500, 32), (1000, 4)])
@pytest.mark.parametrize("gamma", [1.0, 0.99])
def test_every_implementation_matches_the_oracle_with_dones_and_bootstrap(impl, shape, gamma):
    """Random rewards, episode ends and bootstrap values, float32 tolerance (the parallel scan
    sums in another order than the sequential one)."""
    rng = np.random.default_rng(shape[0] * 7 + shape[1])
    rewards = rng.normal(size=shape).astype(np.float32)
    dones = rng.random(shape) < 0.02
    bootstrap = rng.normal(size=shape[1]).astype(np.float32) * 10
    got = np.asarray(IMPLEMENTATIONS[impl](rewards, dones, gamma, jnp.asarray(bootstrap)))
    want = returns.discounted_returns_reference(rewards, dones, gamma, bootstrap)
    assert got.shape == shape and got.dtype == np.float32
    scale = max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=2e-6 * scale)


def test_the_parallel_scan_is_what_a_non_cpu_platform_lowers():
    """``discounted_returns`` picks per platform when lowered: the sequential scan for the CPU,
    the associative scan (no ``while`` loop) for a GPU; lowering for CUDA needs no GPU."""
    rewards, dones = _random_batch(0)
    lowered = {
        platform: jax.jit(returns.discounted_returns).trace(rewards, dones, 0.9)
        .lower(lowering_platforms=(platform,)).as_text()
        for platform in ("cpu", "cuda")
    }
    assert "stablehlo.while" in lowered["cpu"]
    assert "stablehlo.while" not in lowered["cuda"]


def test_hand_computed():
    r = np.array([[1.0], [1.0], [1.0]], np.float32)
    no_done = np.zeros((3, 1), bool)
    np.testing.assert_allclose(
        np.asarray(returns.discounted_returns(r, no_done, 0.5))[:, 0], [1.75, 1.5, 1.0])
    # A done on step 1 ends the first episode there: G[0] = 1 + 0.5 * 1, G[1] = 1, G[2] = 1.
    cut = np.array([[False], [True], [False]])
    np.testing.assert_allclose(
        np.asarray(returns.discounted_returns(r, cut, 0.5))[:, 0], [1.5, 1.0, 1.0])
    # Undiscounted reward-to-go of an episode of 4 ones: 4, 3, 2, 1.
    r4 = np.ones((4, 1), np.float32)
    np.testing.assert_allclose(
        np.asarray(returns.discounted_returns(r4, np.zeros((4, 1), bool), 1.0))[:, 0],
        [4, 3, 2, 1])
    # Columns are independent.
    two = np.array([[1.0, 2.0], [0.0, 4.0]], np.float32)
    np.testing.assert_allclose(
        np.asarray(returns.discounted_returns(two, np.zeros((2, 2), bool), 0.5)),
        [[1.0, 4.0], [0.0, 4.0]])


@pytest.mark.parametrize("gamma", [1.0, 0.9])
@pytest.mark.parametrize("split", [1, 13, 40])
def test_bootstrap_chunks_equal_one_pass(gamma, split):
    rewards, dones = _random_batch(3, T=50, B=4, p_done=0.05)
    whole = np.asarray(returns.discounted_returns(rewards, dones, gamma))
    late = returns.discounted_returns(rewards[split:], dones[split:], gamma)
    early = returns.discounted_returns(rewards[:split], dones[:split], gamma, late[0])
    np.testing.assert_allclose(np.concatenate([early, late]), whole, rtol=1e-6, atol=1e-6)
    # Without the bootstrap the early chunk would be wrong wherever no done separates them.
    unlinked = np.asarray(returns.discounted_returns(rewards[:split], dones[:split], gamma))
    assert not np.allclose(unlinked, whole[:split], atol=1e-4)


def test_bootstrap_value_is_used():
    r = np.zeros((2, 1), np.float32)
    got = returns.discounted_returns(r, np.zeros((2, 1), bool), 0.5, jnp.array([8.0]))
    np.testing.assert_allclose(np.asarray(got)[:, 0], [2.0, 4.0])
    # ...and cut by a done on the last row.
    done_last = np.array([[False], [True]])
    got = returns.discounted_returns(r, done_last, 0.5, jnp.array([8.0]))
    np.testing.assert_allclose(np.asarray(got)[:, 0], [0.0, 0.0])


def _padded_batch(seed: int, T: int = 40, B: int = 5):
    """Random returns with a valid prefix per column and huge garbage on the padding."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, T + 1, size=B)
    valid = np.arange(T)[:, None] < lengths[None, :]
    values = rng.normal(3.0, 2.0, size=(T, B)).astype(np.float32)
    values[~valid] = 1e4
    return values, valid


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_normalize_matches_reference(seed):
    values, valid = _padded_batch(seed)
    got = np.asarray(returns.normalize(values, valid))
    want = returns.normalize_reference(values, valid)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert np.all(got[~valid] == 0.0)
    assert abs(got[valid].mean()) < 1e-5
    assert abs(got[valid].std(ddof=1) - 1.0) < 1e-4
    # The padding values do not matter.
    values2 = np.where(valid, values, -7.0).astype(np.float32)
    np.testing.assert_allclose(np.asarray(returns.normalize(values2, valid)), got, atol=1e-6)


def test_normalize_single_valid_step_is_finite():
    values = np.array([[5.0, 9.0], [2.0, 9.0]], np.float32)
    valid = np.array([[True, False], [False, False]])
    got = np.asarray(returns.normalize(values, valid))
    assert np.all(np.isfinite(got))
    np.testing.assert_array_equal(got, np.zeros_like(got))
    np.testing.assert_array_equal(got, returns.normalize_reference(values, valid))


def test_normalize_constant_returns_is_finite():
    values = np.full((4, 2), 3.0, np.float32)
    got = np.asarray(returns.normalize(values, np.ones((4, 2), bool)))
    assert np.all(np.isfinite(got)) and np.all(got == 0.0)


@pytest.mark.parametrize("normalized", [True, False])
@pytest.mark.parametrize("gamma", [1.0, 0.99])
def test_reward_to_go_composition(normalized, gamma):
    rng = np.random.default_rng(4)
    T, B = 30, 3
    lengths = np.array([30, 12, 1])
    valid = np.arange(T)[:, None] < lengths[None, :]
    dones = np.arange(T)[:, None] == (lengths - 1)[None, :]
    rewards = np.where(valid, rng.normal(size=(T, B)), 0.0).astype(np.float32)
    got = np.asarray(returns.reward_to_go(rewards, dones, valid, gamma, normalized))
    G = returns.discounted_returns_reference(rewards, dones, gamma)
    want = returns.normalize_reference(G, valid) if normalized else G * valid
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def cartpole_rollout():
    """Four CartPole episodes of a random-weight policy, in time chunks of 8 steps."""
    env = CartPole()
    policy = make_policy((16,), env.num_actions)
    params = init_params(policy, jax.random.key(0), env.observation_size)
    rollout, n_played = jax.jit(
        lambda p, k: jt.collect(env, env.default_params(), policy, p, k, 4, 500, 8)
    )(params, jax.random.key(1))
    return rollout, n_played


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("gamma", [1.0, 0.99])
def test_jax_chunked_compute_weights_equals_flat(cartpole_rollout, gamma, normalize):
    rollout, n_played = cartpole_rollout
    assert int(n_played) >= 2, "episodes must span several chunks for this test to mean much"
    chunked = np.asarray(jax.jit(jt.compute_weights, static_argnums=(2, 3))(
        rollout, n_played, gamma, normalize))
    flat = rollout.flat()
    want = np.asarray(returns.reward_to_go(flat.rewards, flat.dones, flat.valid, gamma,
                                           normalize))
    np.testing.assert_allclose(chunked.reshape(want.shape), want, rtol=1e-5, atol=1e-5)
    # And against the numpy oracle.
    G = returns.discounted_returns_reference(flat.rewards, flat.dones, gamma)
    oracle = returns.normalize_reference(G, flat.valid) if normalize else G * flat.valid
    np.testing.assert_allclose(chunked.reshape(want.shape), oracle, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("gamma", [1.0, 0.99])
def test_the_trainers_two_returns_layouts_agree(cartpole_rollout, gamma):
    """The CPU's chunk-by-chunk returns and the accelerators' one parallel scan over the whole
    rollout (chunks never played included) give the oracle's returns."""
    rollout, n_played = cartpole_rollout
    assert int(n_played) < rollout.rewards.shape[0], "some chunks must be unplayed zeros"
    by_chunks = jax.jit(jt.returns_by_chunks)(rollout.rewards, rollout.dones, n_played, gamma)
    at_once = jax.jit(jt.returns_at_once)(rollout.rewards, rollout.dones, n_played, gamma)
    flat = rollout.flat()
    want = returns.discounted_returns_reference(flat.rewards, flat.dones, gamma)
    for got in (by_chunks, at_once):
        np.testing.assert_allclose(np.asarray(got).reshape(want.shape), want, rtol=1e-5,
                                   atol=1e-4)


# --- the time baseline ------------------------------------------------------------------------


def _episodes(seed: int, lengths, T: int):
    """Episodes that all start at row 0, one per column, with random rewards."""
    rng = np.random.default_rng(seed)
    lengths = np.asarray(lengths)
    valid = np.arange(T)[:, None] < lengths[None, :]
    dones = np.arange(T)[:, None] == (lengths - 1)[None, :]
    rewards = np.where(valid, rng.normal(size=(T, len(lengths))), 0.0).astype(np.float32)
    return rewards, dones, valid


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_time_baseline_matches_reference(seed):
    rewards, dones, valid = _episodes(seed, [40, 7, 1, 40, 23], 44)
    G = returns.discounted_returns_reference(rewards, dones, 0.99)
    got = np.asarray(returns.time_baseline(G.astype(np.float32), valid))
    want = returns.time_baseline_reference(G, valid)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    # Rows where only one episode is left: no other episode, baseline 0.
    assert np.all(got[valid.sum(axis=1) == 1] == 0.0)
    assert np.all(got[~valid] == 0.0) and np.abs(got[valid]).max() > 0.1


def test_time_baseline_by_hand():
    G = np.array([[3.0, 5.0, 10.0], [2.0, 4.0, 0.0]], np.float32)
    valid = np.array([[True, True, True], [True, True, False]])
    want = np.array([[7.5, 6.5, 4.0], [4.0, 2.0, 0.0]])
    np.testing.assert_allclose(np.asarray(returns.time_baseline(G, valid)), want)


def test_time_baseline_uses_only_other_episodes():
    """Changing episode i's returns changes every baseline but its own."""
    rewards, dones, valid = _episodes(3, [20, 20, 15, 9], 20)
    G = returns.discounted_returns_reference(rewards, dones, 1.0).astype(np.float32)
    before = np.asarray(returns.time_baseline(G, valid))
    G2 = G.copy()
    G2[:, 1] += 100.0 * valid[:, 1]
    after = np.asarray(returns.time_baseline(G2, valid))
    np.testing.assert_allclose(after[:, 1], before[:, 1], atol=1e-4)
    assert np.all(np.abs(after - before)[:, [0, 2, 3]][valid[:, [0, 2, 3]]] > 1.0)


def test_equal_episodes_give_no_weight_with_time_baseline():
    """CartPole's perfect batch: every episode 500 steps of reward 1. The course's normalized
    returns weigh early steps up and late steps down; the time baseline weighs nothing."""
    T, B = 500, 4
    rewards = np.ones((T, B), np.float32)
    dones = np.zeros((T, B), bool)
    dones[-1] = True
    valid = np.ones((T, B), bool)
    plain = np.asarray(returns.reward_to_go(rewards, dones, valid, 1.0, True, "none"))
    assert plain[0, 0] > 1.5 and plain[-1, 0] < -1.5
    timed = np.asarray(returns.reward_to_go(rewards, dones, valid, 1.0, True, "time"))
    np.testing.assert_array_equal(timed, 0.0)


@pytest.mark.parametrize("normalized", [True, False])
def test_reward_to_go_with_time_baseline(normalized):
    rewards, dones, valid = _episodes(5, [30, 12, 1, 25], 30)
    got = np.asarray(returns.reward_to_go(rewards, dones, valid, 0.9, normalized, "time"))
    G = returns.discounted_returns_reference(rewards, dones, 0.9)
    A = (G - returns.time_baseline_reference(G, valid)) * valid
    want = returns.normalize_reference(A, valid) if normalized else A
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_unknown_baseline_is_refused():
    rewards, dones, valid = _episodes(0, [3, 2], 3)
    with pytest.raises(ValueError, match="unknown baseline 'mean'"):
        returns.reward_to_go(rewards, dones, valid, 1.0, True, "mean")


@pytest.mark.parametrize("normalize", [True, False])
def test_jax_chunked_time_baseline_equals_flat(cartpole_rollout, normalize):
    rollout, n_played = cartpole_rollout
    chunked = np.asarray(jax.jit(jt.compute_weights, static_argnums=(2, 3, 4))(
        rollout, n_played, 0.99, normalize, "time"))
    flat = rollout.flat()
    G = returns.discounted_returns_reference(flat.rewards, flat.dones, 0.99)
    A = (G - returns.time_baseline_reference(G, np.asarray(flat.valid))) * flat.valid
    oracle = returns.normalize_reference(A, flat.valid) if normalize else A
    np.testing.assert_allclose(chunked.reshape(oracle.shape), oracle, rtol=1e-5, atol=1e-4)
