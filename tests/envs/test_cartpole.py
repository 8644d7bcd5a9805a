"""Our JAX CartPole against gymnasium's ``CartPole-v1``, side by side.

Our episodes are played in one jitted ``vmap``/``lax.scan`` call; gymnasium then replays each
of them step by step, with ``env.unwrapped.state`` set to our state (as float64) before every
step, so every single transition of ours is compared with gymnasium's (observation to float32
precision, reward, terminated, and the TimeLimit's truncation at exactly 500 steps).
"""

from __future__ import annotations

from functools import partial

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from reinforce.envs import CartPole, CartPoleState

ENV = CartPole()
PARAMS = ENV.default_params()
HORIZON = 500
POLE_RGB = np.array([202, 152, 101], np.uint8)


def balance(state: CartPoleState) -> jax.Array:
    """A controller that keeps the pole up for 500 steps from any reset state."""
    return (state.theta + 0.5 * state.theta_dot > 0).astype(jnp.int32)


@partial(jax.jit, static_argnames=("n_steps",))
def play(key: jax.Array, p_right: jax.Array, controlled: jax.Array, n_steps: int = HORIZON):
    """One episode of ours from a fresh reset: random Bernoulli(p_right) or balanced actions.

    Returns every pre-step state, action and step output for ``n_steps`` steps (steps after
    the end of the episode are garbage, the caller cuts at the first done).
    """
    reset_key, action_key = jax.random.split(key)
    obs0, state0 = ENV.reset(reset_key, PARAMS)
    coins = jax.random.bernoulli(action_key, p_right, (n_steps,)).astype(jnp.int32)

    def one(state, coin):
        action = jnp.where(controlled, balance(state), coin)
        obs, new, reward, terminated, truncated, _ = ENV.step(key, state, action, PARAMS)
        return new, (state, action, obs, reward, terminated, truncated)

    _, out = jax.lax.scan(one, state0, coins)
    return obs0, out


def _episodes():
    """12 random episodes (p_right 0.3/0.5/0.7) x 4 and 4 balanced episodes of 500 steps."""
    n_random, n_controlled = 48, 4
    keys = jax.random.split(jax.random.key(2024), n_random + n_controlled)
    p_right = jnp.asarray(([0.3, 0.5, 0.7] * n_random)[:n_random] + [0.5] * n_controlled)
    controlled = jnp.arange(n_random + n_controlled) >= n_random
    obs0, out = jax.vmap(play)(keys, p_right, controlled)
    return jax.tree.map(np.asarray, (obs0, out))


def test_matches_gymnasium_step_by_step():
    obs0, (states, actions, obs, rewards, terminated, truncated) = _episodes()
    gym_env = gymnasium.make("CartPole-v1")
    total_steps, n_truncated = 0, 0
    for ep in range(actions.shape[0]):
        gym_env.reset(seed=ep)
        # Cut at our first done, checked against gymnasium at every step on the way.
        for t in range(HORIZON):
            ours = np.array([states.x[ep, t], states.x_dot[ep, t], states.theta[ep, t],
                             states.theta_dot[ep, t]], np.float64)
            assert states.time[ep, t] == t
            gym_env.unwrapped.state = ours
            g_obs, g_rew, g_term, g_trunc, _ = gym_env.step(int(actions[ep, t]))
            where = f"episode {ep}, step {t}"
            np.testing.assert_allclose(obs[ep, t], g_obs, rtol=1e-5, atol=1e-6, err_msg=where)
            assert rewards[ep, t] == g_rew, where
            assert bool(terminated[ep, t]) == g_term, where
            assert bool(truncated[ep, t]) == g_trunc, where
            total_steps += 1
            if g_term or g_trunc:
                break
        else:
            pytest.fail(f"episode {ep} did not end within {HORIZON} steps")
        n_truncated += bool(truncated[ep, t])
        if truncated[ep, t]:
            assert t == HORIZON - 1, "truncation must come at exactly 500 steps"
    assert n_truncated == 4, "the balanced episodes must all be truncated at 500 steps"
    assert total_steps > 2500


def test_truncation_from_time_in_state():
    state = CartPoleState(x=jnp.float32(0.0), x_dot=jnp.float32(0.0), theta=jnp.float32(0.0),
                          theta_dot=jnp.float32(0.0), time=jnp.int32(498))
    step = jax.jit(ENV.step)
    _, state, _, terminated, truncated, _ = step(None, state, 1, PARAMS)
    assert not truncated and not terminated and int(state.time) == 499
    _, state, _, terminated, truncated, _ = step(None, state, 0, PARAMS)
    assert truncated and not terminated and int(state.time) == 500


def test_termination_thresholds():
    # Just inside / just outside the x and theta limits after one step with zero velocity.
    eps = 1e-3
    xs = jnp.array([2.4 - eps, 2.4 + eps, -2.4 - eps, 0.0, 0.0, 0.0])
    thetas = jnp.array([0.0, 0.0, 0.0, 0.2094 - eps, 0.2094 + eps, -0.2094 - eps])
    zeros = jnp.zeros_like(xs)
    state = CartPoleState(x=xs, x_dot=zeros, theta=thetas, theta_dot=zeros,
                          time=jnp.zeros(xs.shape, jnp.int32))
    _, _, _, terminated, _, _ = jax.vmap(ENV.step, in_axes=(None, 0, None, None))(
        None, state, jnp.int32(1), PARAMS)
    assert np.asarray(terminated).tolist() == [False, True, True, False, True, True]


def test_reset_range_and_dtypes():
    keys = jax.random.split(jax.random.key(0), 2000)
    obs, state = jax.jit(jax.vmap(ENV.reset, in_axes=(0, None)))(keys, PARAMS)
    obs = np.asarray(obs)
    assert obs.shape == (2000, 4) and obs.dtype == np.float32
    assert np.all(obs >= -0.05) and np.all(obs <= 0.05)
    assert np.all(np.abs(obs).max(axis=0) > 0.045), "the draw should fill [-0.05, 0.05]"
    assert len(np.unique(obs[:, 0])) > 1900, "different keys must give different resets"
    assert np.asarray(state.time).dtype == np.int32 and np.all(np.asarray(state.time) == 0)
    assert np.asarray(state.x).dtype == np.float32

    obs1, state1 = ENV.reset(jax.random.key(3), PARAMS)
    obs2, _ = ENV.reset(jax.random.key(3), PARAMS)
    np.testing.assert_array_equal(obs1, obs2)
    out = ENV.step(None, state1, jnp.int32(0), PARAMS)
    obs, new, reward, terminated, truncated, info = out
    assert obs.shape == (4,) and obs.dtype == jnp.float32
    assert reward.dtype == jnp.float32 and reward.shape == ()
    assert terminated.dtype == jnp.bool_ and truncated.dtype == jnp.bool_
    assert new.time.dtype == jnp.int32 and int(new.time) == 1
    assert isinstance(info, dict)


def test_jit_and_vmap_agree_with_single_steps():
    keys = jax.random.split(jax.random.key(1), 8)
    _, states = jax.vmap(ENV.reset, in_axes=(0, None))(keys, PARAMS)
    actions = jnp.array([0, 1, 1, 0, 1, 0, 0, 1], jnp.int32)
    batched = jax.jit(jax.vmap(ENV.step, in_axes=(None, 0, 0, None)))(None, states, actions,
                                                                       PARAMS)
    for i in range(8):
        state_i = jax.tree.map(lambda x, i=i: x[i], states)
        single = ENV.step(None, state_i, actions[i], PARAMS)
        np.testing.assert_allclose(batched[0][i], single[0], rtol=1e-6, atol=1e-7)
        assert bool(batched[3][i]) == bool(single[3])
    # The action matters: pushing right accelerates the cart to the right.
    assert float(batched[1].x_dot[1]) > float(states.x_dot[1])
    assert float(batched[1].x_dot[0]) < float(states.x_dot[0])


def _state(x=0.0, theta=0.0) -> CartPoleState:
    return CartPoleState(x=jnp.float32(x), x_dot=jnp.float32(0.0), theta=jnp.float32(theta),
                         theta_dot=jnp.float32(0.0), time=jnp.int32(0))


def test_render_frame():
    render = jax.jit(ENV.render)
    upright = np.asarray(render(_state(), PARAMS))
    assert upright.shape == (400, 600, 3) and upright.dtype == np.uint8
    assert (upright != 255).any(axis=-1).mean() > 0.005, "frame is blank"
    pole = (upright == POLE_RGB).all(axis=-1)
    assert pole.sum() > 500, "no pole drawn"

    tilted = np.asarray(render(_state(theta=0.2), PARAMS))
    assert (tilted != upright).any(axis=-1).sum() > 200, "frame ignores the pole angle"
    # A positive angle tilts the pole to the right (gymnasium's convention).
    cols = np.nonzero((tilted == POLE_RGB).all(axis=-1))[1]
    upright_cols = np.nonzero(pole)[1]
    assert cols.mean() > upright_cols.mean() + 10

    moved = np.asarray(render(_state(x=1.0), PARAMS))
    assert np.nonzero((moved == POLE_RGB).all(axis=-1))[1].mean() > upright_cols.mean() + 100
