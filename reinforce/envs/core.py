"""The functional environment protocol every env of ours follows.

An environment is a stateless object with pure functions of explicit arguments:

    obs, state = env.reset(key, params)
    obs, state, reward, terminated, truncated, info = env.step(key, state, action, params)

`params` and `state` are frozen pytrees (``flax.struct.dataclass``); everything is
jittable and vmappable. `step` never resets on its own: what happens after the end of an
episode is the caller's business (the trainers mask, the gymnasium wrapper asks for a reset).
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

import jax
import jax.numpy as jnp

TState = TypeVar("TState")
TParams = TypeVar("TParams")


def float_dtype() -> jnp.dtype:
    """The float dtype JAX uses right now: float64 in x64 mode, float32 otherwise."""
    return jnp.float64 if jax.config.read("jax_enable_x64") else jnp.float32


def int_dtype() -> jnp.dtype:
    """The integer dtype JAX uses right now: int64 in x64 mode, int32 otherwise."""
    return jnp.int64 if jax.config.read("jax_enable_x64") else jnp.int32


class Environment(Generic[TState, TParams]):
    """Base class of our functional environments (see the module docstring)."""

    #: The id the env is registered under in gymnasium, e.g. ``"CartPole-v1"``.
    id: str = ""
    #: Length of the flat observation vector.
    observation_size: int = 0
    #: Number of discrete actions.
    num_actions: int = 0

    # Envs hold no state: two instances of one class are the same env. Equality by type lets
    # jit caches keyed on an env (static arguments) be shared by every instance.
    def __eq__(self, other: object) -> bool:
        return type(self) is type(other)

    def __hash__(self) -> int:
        return hash(type(self))

    def default_params(self) -> TParams:
        raise NotImplementedError

    def reset(self, key: jax.Array, params: TParams) -> tuple[jax.Array, TState]:
        raise NotImplementedError

    def step(
        self, key: jax.Array, state: TState, action: jax.Array, params: TParams
    ) -> tuple[jax.Array, TState, jax.Array, jax.Array, jax.Array, dict[str, Any]]:
        raise NotImplementedError

    def render(self, state: TState, params: TParams) -> jax.Array:
        """An RGB frame ``uint8[H, W, 3]`` drawn from `state`."""
        raise NotImplementedError
