"""Gymnasium `Env` classes of our envs.

* :class:`HostEnv`: the registered views ``Pixelcopter-PLE-v0`` and ``reinforce/CartPole-v1``.
  They step the host rules (:mod:`~reinforce.envs.pixelcopter_host`,
  :mod:`~reinforce.envs.cartpole_host`) in plain Python, one step at a time, and draw their
  random numbers from gymnasium's ``np_random``.
* :class:`FunctionalEnv`: a gymnasium view of any functional JAX env (any params), one jitted
  call per step. Much slower; kept for envs or params the host rules do not cover.
"""

from __future__ import annotations

import functools
from types import ModuleType
from typing import Any

import gymnasium
import jax
import numpy as np

from reinforce.envs import pixels
from reinforce.envs.core import Environment


class HostEnv(gymnasium.Env):
    """A gymnasium view of host rules: numpy in, numpy out, one episode at a time.

    ``rules`` is a host module with ``reset(rng, params, dtype) -> state``,
    ``step(rng, state, action, params) -> (state, reward, terminated, truncated, hint)``,
    ``observation(state, params, hint) -> float32 array`` and ``render(state, params)``.
    ``dtype`` (float64 or float32) is the precision the rules compute in; observations are
    float32 either way.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 30}
    #: What ``step`` does after the end of an episode: raise (True) or let the rules answer.
    raise_after_end = True

    def __init__(self, rules: ModuleType, params: Any, num_actions: int, observation_size: int,
                 render_mode: str | None = None, dtype: Any = np.float64):
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.rules = rules
        self.params = params
        self.dtype = np.dtype(dtype)
        rules.scalar_type(self.dtype)  # checks it
        self.render_mode = render_mode
        self.observation_space = gymnasium.spaces.Box(-np.inf, np.inf, (observation_size,),
                                                      np.float32)
        self.action_space = gymnasium.spaces.Discrete(num_actions)
        self._actions = tuple(range(num_actions))
        self.state: Any = None
        self._done = True

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.state = self.rules.reset(self.np_random, self.params, self.dtype)
        self._done = False
        return self.rules.observation(self.state, self.params), {}

    def step(self, action):
        if action not in self._actions:
            raise ValueError(f"invalid action {action!r}: {self.spec.id if self.spec else ''} "
                             f"takes an integer in [0, {len(self._actions)})")
        if self.state is None:
            raise RuntimeError("step() called before reset()")
        if self._done and self.raise_after_end:
            raise RuntimeError("step() called after the episode ended; call reset() first")
        self.state, reward, terminated, truncated, hint = self.rules.step(
            self.np_random, self.state, action, self.params)
        self._done = terminated or truncated
        return (self.rules.observation(self.state, self.params, hint), float(reward), terminated,
                truncated, {})

    def render(self):
        if self.render_mode != "rgb_array" or self.state is None:
            return None
        return self.rules.render(self.state, self.params)


class PixelcopterEnv(HostEnv):
    """``Pixelcopter-PLE-v0``: the real game's rules on the host.

    Stepping a finished game is allowed and answers like the real driver: reward 0, nothing
    changes, ``terminated`` again.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 30}
    raise_after_end = False

    def __init__(self, render_mode: str | None = None, dtype: Any = np.float64):
        from reinforce.envs import pixelcopter_host
        from reinforce.envs.pixelcopter import Pixelcopter, PixelcopterParams

        super().__init__(pixelcopter_host, PixelcopterParams(), Pixelcopter.num_actions,
                         Pixelcopter.observation_size, render_mode, dtype)


class PixelObservation(gymnasium.Wrapper):
    """An env observed through its last ``k`` gray frames, ``uint8[H, W, k]``: its own
    rendered frames through the functions of :mod:`reinforce.envs.pixels`, so that the
    observations are those the trainers' ``obs pixels`` policies see."""

    def __init__(self, env: gymnasium.Env, k: int = 1):
        if env.render_mode != "rgb_array":
            raise ValueError("PixelObservation needs an env made with render_mode='rgb_array'")
        super().__init__(env)
        self.k = int(k)
        height, width = env.unwrapped.params.height, env.unwrapped.params.width
        self.observation_space = gymnasium.spaces.Box(0, 255, (height, width, self.k), np.uint8)
        self._frames: np.ndarray | None = None

    def _frame(self) -> np.ndarray:
        return pixels.grayscale(self.env.render())

    def reset(self, **kwargs):
        _, info = self.env.reset(**kwargs)
        self._frames = pixels.first_stack(self._frame(), self.k)
        return self._frames.copy(), info

    def step(self, action):
        _, reward, terminated, truncated, info = self.env.step(action)
        self._frames = pixels.push_frame(self._frames, self._frame())
        return self._frames.copy(), reward, terminated, truncated, info


def make_pixelcopter(render_mode: str | None = None, dtype: Any = np.float64,
                     obs: str = "features", frame_stack: int = 1) -> gymnasium.Env:
    """``gymnasium.make("Pixelcopter-PLE-v0", ...)``: the host game, observed through its
    7-value state (``obs="features"``) or its last ``frame_stack`` gray frames (``"pixels"``);
    ``render()`` gives the RGB screen either way (frames need it, so a pixel env always
    renders)."""
    if obs == "features":
        if frame_stack != 1:
            raise ValueError("frame_stack stacks frames: it needs obs='pixels'")
        return PixelcopterEnv(render_mode, dtype)
    if obs != "pixels":
        raise ValueError(f"obs must be 'features' or 'pixels', got {obs!r}")
    if render_mode not in (None, "rgb_array"):
        raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
    return PixelObservation(PixelcopterEnv("rgb_array", dtype), frame_stack)


class CartPoleEnv(HostEnv):
    """``reinforce/CartPole-v1``: gymnasium's CartPole-v1 rules on the host, the 500-step time
    limit included. Stepping after the end of an episode raises."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 50}
    raise_after_end = True

    def __init__(self, render_mode: str | None = None, dtype: Any = np.float64):
        from reinforce.envs import cartpole_host
        from reinforce.envs.cartpole import CartPole, CartPoleParams

        super().__init__(cartpole_host, CartPoleParams(), CartPole.num_actions,
                         CartPole.observation_size, render_mode, dtype)


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
