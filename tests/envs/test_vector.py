"""``gymnasium.make_vec`` of our ids: shapes, NEXT_STEP autoreset, seeding, and each env's step
against the single env's step from the same state and action."""

from __future__ import annotations

import warnings

import gymnasium
import jax
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode
from traces import CountingRng

import reinforce  # noqa: F401  (registers the ids)
from reinforce.envs import cartpole_host, pixelcopter_host
from reinforce.envs.cartpole import CartPoleParams
from reinforce.envs.pixelcopter import Pixelcopter, PixelcopterParams
from reinforce.envs.vector import (
    CartPoleVectorEnv,
    FunctionalVectorEnv,
    PixelcopterVectorEnv,
    step_keys,
)

#: id -> (vector class, observation size, host rules, params)
ENVS = {
    "Pixelcopter-PLE-v0": (PixelcopterVectorEnv, 7, pixelcopter_host, PixelcopterParams()),
    "reinforce/CartPole-v1": (CartPoleVectorEnv, 4, cartpole_host, CartPoleParams()),
}
IDS = list(ENVS)


def _actions(rng, n, p_up=0.5):
    return (rng.random(n) >= p_up).astype(np.int64)


def _steer(obs, rng):
    """Pixelcopter actions that keep the player near the middle of the gap (90%; else random),
    so that episodes reach the blocks."""
    below_middle = (obs[:, 3] < obs[:, 2]) & (obs[:, 1] > -1.0)
    return np.where(rng.random(len(obs)) < 0.1, rng.integers(0, 2, len(obs)), ~below_middle)


def _roll(env, seed, steps, action_seed=0):
    """Observations, rewards, terminations and truncations of ``steps`` steps, stacked."""
    rng = np.random.default_rng(action_seed)
    obs, _ = env.reset(seed=seed)
    out = [(obs, np.zeros(env.num_envs, np.float32), np.zeros(env.num_envs, bool),
            np.zeros(env.num_envs, bool))]
    for _ in range(steps):
        out.append(env.step(_actions(rng, env.num_envs))[:4])
    return [np.stack(x) for x in zip(*out, strict=True)]


@pytest.mark.parametrize("env_id", IDS)
def test_make_vec_spaces_shapes_and_autoreset_mode(env_id):
    cls, size, _, _ = ENVS[env_id]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        env = gymnasium.make_vec(env_id, num_envs=3)
    assert type(env) is cls and env.num_envs == 3
    assert env.metadata["autoreset_mode"] is AutoresetMode.NEXT_STEP
    assert env.single_observation_space == gymnasium.spaces.Box(-np.inf, np.inf, (size,),
                                                                np.float32)
    assert env.observation_space.shape == (3, size)
    assert env.action_space == gymnasium.spaces.MultiDiscrete([2, 2, 2])
    obs, info = env.reset(seed=0)
    assert obs.shape == (3, size) and obs.dtype == np.float32 and info == {}
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert obs.shape == (3, size) and obs.dtype == np.float32 and info == {}
    assert reward.shape == terminated.shape == truncated.shape == (3,)
    assert reward.dtype == np.float32 and terminated.dtype == truncated.dtype == np.bool_
    obs[:] = 0  # writable, and not the env's own buffer
    assert env.step(np.zeros(3, int))[0].any()
    assert {d.platform for d in jax.tree.leaves(jax.tree.map(lambda a: a.device, env.state))} \
        == {"cpu"}


@pytest.mark.parametrize("env_id", IDS)
def test_seeding_is_reproducible(env_id):
    a = _roll(gymnasium.make_vec(env_id, num_envs=4), seed=3, steps=40)
    b = _roll(gymnasium.make_vec(env_id, num_envs=4), seed=3, steps=40)
    c = _roll(gymnasium.make_vec(env_id, num_envs=4), seed=4, steps=40)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], c[0])
    assert len(np.unique(a[0][0], axis=0)) == 4, "the envs must start differently"
    # reset() without a seed continues from the seeded generator, reproducibly.
    envs = [gymnasium.make_vec(env_id, num_envs=2) for _ in range(2)]
    starts = []
    for env in envs:
        env.reset(seed=9)
        starts.append(env.reset()[0])
    np.testing.assert_array_equal(*starts)
    # One seed per env: an env's episodes follow its own seed and actions only.
    left, right = (gymnasium.make_vec(env_id, num_envs=2) for _ in range(2))
    obs_l, _ = left.reset(seed=[5, 6])
    obs_r, _ = right.reset(seed=[7, 5])
    np.testing.assert_array_equal(obs_l[0], obs_r[1])
    for t in range(30):
        step_l = left.step(np.array([t % 2, 0]))
        step_r = right.step(np.array([1, t % 2]))
        for x, y in zip(step_l[:4], step_r[:4], strict=True):
            np.testing.assert_array_equal(x[0], y[1])


@pytest.mark.parametrize("env_id", IDS)
def test_next_step_autoreset(env_id):
    env = gymnasium.make_vec(env_id, num_envs=4)
    obs, reward, terminated, truncated = _roll(env, seed=1, steps=200)
    ended = terminated | truncated
    t, i = np.argwhere(ended[:-1])[0]
    assert terminated[:-1].any()
    # The step after an episode's end: the new episode's first observation, reward 0, no flag.
    assert reward[t + 1, i] == 0.0 and not terminated[t + 1, i] and not truncated[t + 1, i]
    if env_id == "Pixelcopter-PLE-v0":
        assert obs[t + 1, i, 0] == 24.0 and obs[t + 1, i, 1] == 0.0
    else:
        assert np.all(np.abs(obs[t + 1, i]) <= 0.05)
    # Every ended episode is followed by exactly such a step.
    after = np.zeros_like(ended)
    after[1:] = ended[:-1]
    assert np.all(reward[after] == 0.0) and not (terminated | truncated)[after].any()
    if env_id == "reinforce/CartPole-v1":  # +1 on every other step
        assert np.all(reward[1:][~after[1:]] == 1.0)


@pytest.mark.parametrize("env_id", IDS)
def test_time_limit_from_make_vec(env_id):
    env = gymnasium.make_vec(env_id, num_envs=2, max_episode_steps=3)
    env.reset(seed=0)
    flags = [env.step(np.array([0, 1]) if env_id != "Pixelcopter-PLE-v0" else np.ones(2, int))
             for _ in range(4)]
    truncated = np.array([f[3] for f in flags])
    np.testing.assert_array_equal(truncated, [[False] * 2, [False] * 2, [True] * 2, [False] * 2])
    assert np.all(flags[3][1] == 0.0)  # the autoreset step


@pytest.mark.parametrize("env_id", IDS)
def test_vector_step_equals_the_single_env_step(env_id):
    """Every env of a vector step against (a) the host env (the gymnasium single env, in
    float32 like the vector env) from the same state and action: Pixelcopter equal, except what
    the two random streams draw; (b) the functional JAX env's own step, unbatched, with the
    same key: Pixelcopter equal. CartPole: to the last bits of float32 sin and cos (numpy's,
    XLA's scalar and XLA's vectorized ones differ there)."""
    cls, size, rules, params = ENVS[env_id]
    env = gymnasium.make_vec(env_id, num_envs=16)
    rng = np.random.default_rng(0)
    obs, _ = env.reset(seed=2)
    compared = drawn = 0
    single_step = jax.jit(env.unwrapped.env.step)
    for _ in range(150):
        keys, t, states, done = env.unwrapped._carry
        keys = step_keys(keys, t)(jax.numpy.arange(16))
        done = np.asarray(done)
        actions = _steer(obs, rng) if size == 7 else _actions(rng, 16)
        states = jax.tree.map(np.asarray, states)
        obs, reward, terminated, truncated, _ = env.step(actions)
        for i in np.flatnonzero(~done):
            state_i = jax.tree.map(lambda a, i=i: a[i], states)
            # (a) the host rules
            host_rng = CountingRng(0)
            new, h_reward, h_term, h_trunc, hint = rules.step(
                host_rng, rules.from_jax(state_i, np.float32), int(actions[i]), params)
            h_obs = rules.observation(new, params, hint)
            keep = slice(0, 4) if host_rng.calls else slice(None)  # a block drawn: next gate
            drawn += host_rng.calls > 0
            if size == 7:
                np.testing.assert_array_equal(h_obs[keep], obs[i, keep])
            else:  # float32 sin and cos: numpy's and XLA's may differ in the last bit
                np.testing.assert_allclose(h_obs, obs[i], rtol=1e-6, atol=1e-7)
            assert (h_reward, h_term, h_trunc) == (reward[i], terminated[i], truncated[i])
            # (b) the functional env, unbatched, with the vector env's key for this env
            j_obs, _, j_reward, j_term, j_trunc, _ = single_step(
                keys[i], state_i, actions[i], env.unwrapped.params)
            if size == 7:
                np.testing.assert_array_equal(np.asarray(j_obs), obs[i])
            else:  # XLA's vectorized float32 sin and cos against its scalar ones
                np.testing.assert_allclose(np.asarray(j_obs), obs[i], rtol=1e-6, atol=1e-7)
            assert (j_reward, j_term, j_trunc) == (reward[i], terminated[i], truncated[i])
            compared += 1
    assert compared > 1500
    assert drawn > 0 or env_id != "Pixelcopter-PLE-v0"


def _numbers(tree) -> list[np.ndarray]:
    return [np.asarray(a) for a in jax.tree.leaves(tree)]


@pytest.mark.parametrize("env_id", IDS)
def test_reset_mask_resets_only_those_envs(env_id):
    env = gymnasium.make_vec(env_id, num_envs=4)
    env.reset(seed=0)
    for _ in range(3):
        obs, *_ = env.step(np.ones(4, int))
    mask = np.array([True, False, True, False])
    new, info = env.reset(options={"reset_mask": mask})
    np.testing.assert_array_equal(new[~mask], obs[~mask])
    assert not np.array_equal(new[mask], obs[mask])
    if env_id == "Pixelcopter-PLE-v0":
        assert np.all(new[mask, 0] == 24.0) and np.all(new[mask, 1] == 0.0)
    with pytest.raises(ValueError, match="reset_mask"):
        env.reset(options={"reset_mask": np.array([1, 0, 1, 0])})


@pytest.mark.parametrize("env_id", IDS)
def test_render_one_frame_per_env(env_id):
    _, _, rules, params = ENVS[env_id]
    env = gymnasium.make_vec(env_id, num_envs=2, render_mode="rgb_array")
    env.reset(seed=0)
    env.step(np.ones(2, int))
    frames = env.render()
    assert len(frames) == 2
    for i, frame in enumerate(frames):
        state_i = jax.tree.map(lambda a, i=i: np.asarray(a)[i], env.unwrapped.state)
        np.testing.assert_array_equal(frame, rules.render(rules.from_jax(state_i, np.float32),
                                                          params))
    assert gymnasium.make_vec(env_id, num_envs=2).render() is None


def test_bad_arguments():
    env = gymnasium.make_vec("Pixelcopter-PLE-v0", num_envs=2)
    with pytest.raises(RuntimeError, match="before reset"):
        env.step(np.zeros(2, int))
    env.reset(seed=0)
    for bad in (np.zeros(3, int), np.array([0, 2]), np.array([0.0, 1.0]), np.array([-1, 0])):
        with pytest.raises(ValueError, match="actions must be 2 integers"):
            env.step(bad)
    with pytest.raises(ValueError, match="one seed per env"):
        env.reset(seed=[1, 2, 3])
    with pytest.raises(ValueError, match="non-negative integer"):
        env.reset(seed=-1)
    with pytest.raises(ValueError, match="num_envs"):
        FunctionalVectorEnv(Pixelcopter(), 0)
    with pytest.raises(ValueError, match="render_mode"):
        PixelcopterVectorEnv(2, render_mode="human")
