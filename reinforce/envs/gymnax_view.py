"""Our envs as gymnax ``Environment``s, for code written against gymnax (rejax, PureJaxRL-style
trainers, gymnax's own wrappers).

``gymnax_env("Pixelcopter-PLE-v0")`` gives ``(env, params)`` as ``gymnax.make`` does. The env
has gymnax's API: ``default_params`` (a property), ``reset(key, params)``, an auto-resetting
``step(key, state, action, params)`` that returns ``(obs, state, reward, terminated,
truncated, info)``, ``action_space(params)``, ``observation_space(params)``, ``num_actions``
and ``name``. Underneath it is our env, step for step: gymnax's ``step`` splits its key into a
step key and a reset key, steps our env with the first and, when the episode is over, starts a
new one with the second.

gymnax is an optional dependency (``pip install "reinforce[gymnax]"``): this module imports it.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces

from reinforce.envs import make
from reinforce.envs.core import Environment


@struct.dataclass
class ViewState:
    """Our env's state, with whether the step that led to it ran into the time limit (gymnax
    asks ``is_truncated`` of the state after the step)."""

    env_state: Any
    truncated: jax.Array


class GymnaxView(environment.Environment):
    """One of our functional envs (``reinforce.envs.make``) behind gymnax's API."""

    def __init__(self, env: Environment, params: Any):
        super().__init__()
        self._env, self._params = env, params

    @property
    def default_params(self) -> Any:
        return self._params

    def reset_env(self, key: jax.Array, params: Any) -> tuple[jax.Array, ViewState]:
        obs, state = self._env.reset(key, params)
        return obs, ViewState(state, jnp.zeros((), bool))

    def step_env(self, key: jax.Array, state: ViewState, action: Any, params: Any
                 ) -> tuple[jax.Array, ViewState, jax.Array, jax.Array, dict]:
        obs, new, reward, terminated, truncated, info = self._env.step(
            key, state.env_state, action, params)
        return obs, ViewState(new, truncated & ~terminated), reward, terminated, info

    def is_truncated(self, state: ViewState, params: Any) -> jax.Array:
        return state.truncated

    def is_terminated(self, state: ViewState, params: Any) -> jax.Array:
        raise NotImplementedError("our envs say whether a step terminates as they take it")

    @property
    def name(self) -> str:
        return self._env.id

    @property
    def num_actions(self) -> int:
        return self._env.num_actions

    def action_space(self, params: Any = None) -> spaces.Discrete:
        return spaces.Discrete(self._env.num_actions)

    def observation_space(self, params: Any = None) -> spaces.Box:
        """The observation's shape and dtype; unbounded floats (an env's
        ``observation_range`` is where values lie in ordinary play, not a bound), pixels in
        0..255."""
        dtype = jnp.dtype(self._env.observation_dtype)
        if jnp.issubdtype(dtype, jnp.integer):
            low, high = 0, int(jnp.iinfo(dtype).max)
        else:
            low, high = -jnp.inf, jnp.inf
        return spaces.Box(low, high, self._env.observation_shape, dtype)

    # One view per env (as our envs): jit caches keyed on the env are shared by every view.
    def __eq__(self, other: object) -> bool:
        return isinstance(other, GymnaxView) and other._env == self._env

    def __hash__(self) -> int:
        return hash((GymnaxView, self._env))


def gymnax_env(env_id: str, obs: str = "features", frame_stack: int = 1
               ) -> tuple[GymnaxView, Any]:
    """``(env, params)`` of our ``env_id`` as a gymnax env, as ``gymnax.make`` returns them."""
    env, params = make(env_id, obs, frame_stack)
    return GymnaxView(env, params), params
