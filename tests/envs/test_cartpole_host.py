"""The host CartPole (``reinforce.envs.cartpole_host``, what ``reinforce/CartPole-v1`` steps)
against gymnasium's traces, gymnasium's ``CartPole-v1`` itself, and the JAX port."""

from __future__ import annotations

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from traces import trace_files

import reinforce  # noqa: F401  (registers reinforce/CartPole-v1)
from reinforce.envs import cartpole_host as host
from reinforce.envs.cartpole import CartPole, CartPoleParams
from reinforce.envs.gym_wrapper import CartPoleEnv

TRACES = trace_files("cartpole")
PARAMS = CartPoleParams()
ENV = CartPole()


def _state(row: np.ndarray, t: int, dtype) -> host.CartPoleHostState:
    f = host.scalar_type(dtype)
    return host.CartPoleHostState(*(f(v) for v in row), int(t))


def _values(state: host.CartPoleHostState) -> np.ndarray:
    return np.array([state.x, state.x_dot, state.theta, state.theta_dot], np.float64)


def test_traces_present():
    assert TRACES, "no CartPole traces (*.npz)"


@pytest.mark.parametrize("path", TRACES, ids=[p.stem for p in TRACES])
def test_trace_rows(path):
    """float64: every next state bit for bit; float32: observations to float32 precision;
    rewards, terminations and the truncation at 500 steps exactly in both."""
    d = dict(np.load(path))
    assert d["terminated"].any() and d["truncated"].any()
    for dtype in (np.float64, np.float32):
        bad = []
        for i, action in enumerate(d["action"].tolist()):
            new, reward, terminated, truncated, _ = host.step(
                None, _state(d["state"][i], d["t"][i], dtype), action, PARAMS)
            obs = host.observation(new)
            same = (reward, terminated, truncated) == (
                d["reward"][i], d["terminated"][i], d["truncated"][i])
            if dtype == np.float64:
                same = (same and np.array_equal(_values(new), d["next_state"][i])
                        and np.array_equal(obs, d["next_obs"][i]))
            else:
                assert type(new.theta_dot) is np.float32
                same = same and np.allclose(obs, d["next_obs"][i], rtol=1e-5, atol=1e-6)
            if not same:
                bad.append(i)
        assert not bad, f"{np.dtype(dtype)}: {len(bad)} rows differ, first {bad[:5]}"


def _play(env, seed: int, actions: np.ndarray):
    obs, _ = env.reset(seed=seed)
    out = [obs]
    for t, action in enumerate(actions.tolist()):
        obs, reward, terminated, truncated, _ = env.step(action)
        out.append(obs)
        if terminated or truncated:
            return np.stack(out), t + 1, terminated, truncated
    raise AssertionError("the episode did not end")


def test_same_episodes_as_gymnasium_cartpole():
    """Same reset draw and same arithmetic: the same seed and actions give gymnasium's episode,
    every observation bit for bit, the 500-step truncation included."""
    ours, theirs = gymnasium.make("reinforce/CartPole-v1"), gymnasium.make("CartPole-v1")
    assert isinstance(ours.unwrapped, CartPoleEnv)
    rng = np.random.default_rng(0)
    lengths = []
    for seed in range(20):
        actions = rng.integers(0, 2, 600)
        a, b = _play(ours, seed, actions), _play(theirs, seed, actions)
        np.testing.assert_array_equal(a[0], b[0])
        assert a[1:] == b[1:]
        lengths.append(a[1])
    # A balancing controller runs into the time limit on both.
    for env in (ours, theirs):
        obs, _ = env.reset(seed=1)
        for t in range(1, 501):
            obs, _, terminated, truncated, _ = env.step(int(obs[2] + 0.5 * obs[3] > 0))
            assert not terminated and truncated == (t == 500)
    assert min(lengths) < 20 < max(lengths)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_host_step_equals_jax_step(dtype):
    """From the same states and actions as the JAX port: float64 against its 64-bit mode
    (XLA's sin and cos may differ from the C library's in the last bit: 1e-12), float32 against
    its default mode (to float32 precision)."""
    rng = np.random.default_rng(1)
    states = [host.reset(rng, PARAMS, dtype) for _ in range(64)]
    pairs = []
    for state in states:
        for _ in range(100):
            action = int(rng.integers(2))
            pairs.append((state, action))
            state, _, terminated, _, _ = host.step(None, state, action, PARAMS)
            if terminated:
                break
    with jax.enable_x64(dtype == np.float64):
        batch = jax.tree.map(lambda *a: jnp.stack(a), *[host.to_jax(s) for s, _ in pairs])
        _, new, reward, terminated, truncated, _ = jax.jit(
            jax.vmap(ENV.step, in_axes=(None, 0, 0, None)))(
            None, batch, jnp.asarray([a for _, a in pairs]), PARAMS)
        new, reward, terminated, truncated = jax.tree.map(
            np.asarray, (new, reward, terminated, truncated))
    tol = dict(rtol=0, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-6)
    for i, (state, action) in enumerate(pairs):
        h_new, h_reward, h_term, h_trunc, _ = host.step(None, state, action, PARAMS)
        j_new = host.from_jax(jax.tree.map(lambda a, i=i: a[i], new), dtype)
        np.testing.assert_allclose(_values(h_new), _values(j_new), **tol, err_msg=f"pair {i}")
        assert (h_reward, h_term, h_trunc, h_new.time) == (
            reward[i], terminated[i], truncated[i], j_new.time)
    assert len(pairs) > 1000


def test_render_is_the_jax_frame():
    env = gymnasium.make("reinforce/CartPole-v1", render_mode="rgb_array")
    env.reset(seed=0)
    for _ in range(3):
        env.step(1)
    frame = env.render()
    np.testing.assert_array_equal(
        frame, np.asarray(jax.jit(ENV.render)(host.to_jax(env.unwrapped.state), PARAMS)))
    assert frame.shape == (400, 600, 3) and (frame != 255).any()


def test_float32_view_and_bad_dtype():
    obs64 = _play(gymnasium.make("reinforce/CartPole-v1"), 2, np.ones(600, int))
    obs32 = _play(gymnasium.make("reinforce/CartPole-v1", dtype="float32"), 2, np.ones(600, int))
    assert obs64[1:] == obs32[1:]
    np.testing.assert_allclose(obs32[0], obs64[0], rtol=1e-5, atol=1e-6)
    assert not np.array_equal(obs32[0], obs64[0])
    with pytest.raises(ValueError, match="float64 or float32"):
        gymnasium.make("reinforce/CartPole-v1", dtype=np.float16)
