"""The gymnasium view of our JAX CartPole: ``gymnasium.make("reinforce/CartPole-v1")``."""

from __future__ import annotations

import warnings

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import reinforce  # noqa: F401  (registers the ids)

ENV_ID = "reinforce/CartPole-v1"
#: check_env's only complaint: our Box is unbounded (gymnasium's CartPole bounds x and theta).
ALLOWED_WARNINGS = ("minimum value is -infinity", "maximum value is infinity")


@pytest.mark.parametrize("render_mode", [None, "rgb_array"])
def test_env_checker(render_mode):
    env = gymnasium.make(ENV_ID, render_mode=render_mode)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped)
    other = [str(w.message) for w in caught
             if not any(a in str(w.message) for a in ALLOWED_WARNINGS)]
    assert not other, other
    assert env.observation_space.shape == (4,) and env.observation_space.dtype == np.float32
    assert env.action_space == gymnasium.spaces.Discrete(2)


def _episode(env, seed: int, action_seed: int = 0):
    rng = np.random.default_rng(action_seed)
    obs, _ = env.reset(seed=seed)
    trace = [obs]
    rewards = []
    while True:
        obs, reward, terminated, truncated, _ = env.step(int(rng.random() < 0.5))
        trace.append(obs)
        rewards.append(reward)
        if terminated or truncated:
            return np.stack(trace), np.array(rewards), terminated, truncated


def test_same_seed_same_episode():
    env = gymnasium.make(ENV_ID)
    obs_a, rew_a, term_a, _ = _episode(env, seed=5)
    obs_b, rew_b, term_b, _ = _episode(gymnasium.make(ENV_ID), seed=5)
    assert obs_a.dtype == np.float32 and obs_a.shape[1] == 4
    np.testing.assert_array_equal(obs_a, obs_b)
    np.testing.assert_array_equal(rew_a, rew_b)
    assert term_a and term_b and len(rew_a) > 1 and np.all(rew_a == 1.0)
    # The same env object reseeded replays it too; another seed starts elsewhere.
    np.testing.assert_array_equal(_episode(env, seed=5)[0], obs_a)
    other, _ = env.reset(seed=6)
    assert not np.array_equal(other, obs_a[0])
    assert np.all(np.abs(other) <= 0.05)


def test_step_after_termination_raises_and_reset_recovers():
    env = gymnasium.make(ENV_ID)
    _, _, terminated, _ = _episode(env, seed=1)
    assert terminated
    with pytest.raises(RuntimeError):
        env.step(0)
    obs, _ = env.reset()
    assert obs.shape == (4,)
    obs, reward, terminated, truncated, _ = env.step(1)
    assert reward == 1.0 and not terminated and not truncated


def test_truncation_at_500_then_step_raises():
    env = gymnasium.make(ENV_ID)
    obs, _ = env.reset(seed=3)
    for t in range(1, 501):
        action = int(obs[2] + 0.5 * obs[3] > 0)  # keeps the pole up
        obs, reward, terminated, truncated, _ = env.step(action)
        assert not terminated, f"fell at step {t}"
        assert truncated == (t == 500), f"step {t}"
    with pytest.raises(RuntimeError):
        env.step(0)


def test_render_rgb_array():
    env = gymnasium.make(ENV_ID, render_mode="rgb_array")
    env.reset(seed=0)
    frame = env.render()
    assert isinstance(frame, np.ndarray)
    assert frame.shape == (400, 600, 3) and frame.dtype == np.uint8
    assert (frame != 255).any()
    assert gymnasium.make(ENV_ID).unwrapped.render() is None
