"""Gymnasium `Env` around any of our functional envs, and the registration of our ids."""

from __future__ import annotations

import functools
from typing import Any

import gymnasium
import jax
import numpy as np

from reinforce.envs.core import Environment


@functools.cache
def _compiled(env: Environment) -> tuple[Any, Any, Any]:
    """jitted (reset, step, render) of an env, compiled once per env object."""
    return jax.jit(env.reset), jax.jit(env.step), jax.jit(env.render)


class FunctionalEnv(gymnasium.Env):
    """A gymnasium view of a functional env: numpy in, numpy out, one episode at a time.

    The JAX key of each episode is drawn from gymnasium's ``np_random``, so
    ``reset(seed=s)`` is reproducible. ``step`` after the end of an episode raises.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 30}

    def __init__(self, env: Environment, params: Any = None, render_mode: str | None = None):
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.env = env
        self.params = env.default_params() if params is None else params
        self.render_mode = render_mode
        self.observation_space = gymnasium.spaces.Box(
            -np.inf, np.inf, (env.observation_size,), np.float32
        )
        self.action_space = gymnasium.spaces.Discrete(env.num_actions)
        self._reset_fn, self._step_fn, self._render_fn = _compiled(env)
        self._key: jax.Array | None = None
        self.state: Any = None
        self._done = True

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._key = jax.random.key(int(self.np_random.integers(0, 2**31 - 1)))
        self._key, reset_key = jax.random.split(self._key)
        obs, self.state = self._reset_fn(reset_key, self.params)
        self._done = False
        return np.asarray(obs, dtype=np.float32), {}

    def step(self, action):
        if self._done:
            raise RuntimeError("step() called after the episode ended; call reset() first")
        self._key, step_key = jax.random.split(self._key)
        obs, self.state, reward, terminated, truncated, _ = self._step_fn(
            step_key, self.state, np.asarray(action, dtype=np.int32), self.params
        )
        terminated, truncated = bool(terminated), bool(truncated)
        self._done = terminated or truncated
        return np.asarray(obs, dtype=np.float32), float(reward), terminated, truncated, {}

    def render(self):
        if self.render_mode != "rgb_array" or self.state is None:
            return None
        return np.asarray(self._render_fn(self.state, self.params))


def make_cartpole(render_mode: str | None = None) -> FunctionalEnv:
    """Entry point of ``reinforce/CartPole-v1`` (the time limit lives in the state)."""
    from reinforce.envs.cartpole import CartPole

    return FunctionalEnv(CartPole(), render_mode=render_mode)


def make_pixelcopter(render_mode: str | None = None) -> FunctionalEnv:
    """Entry point of ``Pixelcopter-PLE-v0``."""
    from reinforce.envs.pixelcopter import Pixelcopter

    return FunctionalEnv(Pixelcopter(), render_mode=render_mode)
