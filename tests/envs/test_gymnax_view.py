"""Our envs as gymnax Environments: gymnax's API and its log wrapper on them, and a vmapped
rollout whose every step is our env's own (step with the step key; a new episode from the
reset key when one ends)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

gymnax = pytest.importorskip("gymnax")  # the [gymnax] extra; the dev extra installs it
from gymnax.environments import environment  # noqa: E402
from gymnax.wrappers.purerl import LogWrapper  # noqa: E402

from reinforce.envs import make  # noqa: E402
from reinforce.envs.gymnax_view import gymnax_env  # noqa: E402

N_ENVS, STEPS = 8, 400


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pixelcopter-PLE-v0"])
def test_the_view_has_gymnax_api(env_id):
    env, params = gymnax_env(env_id)
    ours, our_params = make(env_id)
    assert isinstance(env, environment.Environment)
    assert env.default_params == params == our_params
    assert env.name == env_id and env.num_actions == ours.num_actions
    assert env.action_space(params).n == ours.num_actions
    space = env.observation_space(params)
    assert space.shape == ours.observation_shape
    obs, _ = env.reset(jax.random.key(0), params)
    assert obs.shape == space.shape and space.contains(obs)
    assert env.action_space(params).contains(env.action_space(params).sample(jax.random.key(1)))


def _actions(key, n):
    return jax.random.randint(key, (STEPS, N_ENVS), 0, n)


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pixelcopter-PLE-v0"])
def test_a_log_wrapped_vmapped_rollout_plays_our_envs_episodes(env_id):
    env, params = gymnax_env(env_id)
    ours, _ = make(env_id)
    logged = LogWrapper(env)
    keys = jax.random.split(jax.random.key(3), (STEPS + 1, N_ENVS))
    actions = _actions(jax.random.key(4), ours.num_actions)

    # gymnax-style: the wrapper's vmapped reset and step, as rejax or PureJaxRL call them
    obs, state = jax.vmap(logged.reset, in_axes=(0, None))(keys[0], params)

    def gymnax_step(carry, xs):
        obs, state = carry
        key, action = xs
        obs, state, reward, terminated, truncated, info = jax.vmap(
            logged.step, in_axes=(0, 0, 0, None))(key, state, action, params)
        return (obs, state), (obs, reward, terminated, truncated, info["returned_episode"],
                              info["returned_episode_returns"])

    _, (g_obs, g_reward, g_term, g_trunc, ended, returns) = jax.lax.scan(
        gymnax_step, (obs, state), (keys[1:], actions))

    # ours: the same keys, our env's own step and reset
    r_obs, r_state = jax.vmap(ours.reset, in_axes=(0, None))(keys[0], params)

    def our_step(carry, xs):
        obs, state, ret = carry
        key, action = xs
        k_step, k_reset = jax.vmap(jax.random.split, out_axes=1)(key)
        obs, state, reward, terminated, truncated, _ = jax.vmap(
            ours.step, in_axes=(0, 0, 0, None))(k_step, state, action, params)
        done = terminated | truncated
        new_obs, new_state = jax.vmap(ours.reset, in_axes=(0, None))(k_reset, params)
        pick = lambda a, b: jnp.where(done.reshape(done.shape + (1,) * (a.ndim - 1)), a, b)  # noqa: E731
        obs, state = pick(new_obs, obs), jax.tree.map(pick, new_state, state)
        ret = ret + reward
        return (obs, state, jnp.where(done, 0.0, ret)), (obs, reward, terminated, truncated,
                                                         done, ret)

    _, (o_obs, o_reward, o_term, o_trunc, o_done, o_returns) = jax.lax.scan(
        our_step, (r_obs, r_state, jnp.zeros(N_ENVS)), (keys[1:], actions))

    np.testing.assert_array_equal(g_obs, o_obs)
    np.testing.assert_array_equal(g_reward, o_reward)
    np.testing.assert_array_equal(g_term, o_term)
    np.testing.assert_array_equal(g_trunc, o_trunc)
    np.testing.assert_array_equal(ended, o_done)
    assert int(o_done.sum()) >= N_ENVS  # episodes ended (and started again) on the way
    np.testing.assert_allclose(np.asarray(returns)[np.asarray(ended)],
                               np.asarray(o_returns)[np.asarray(o_done)], rtol=1e-6)
