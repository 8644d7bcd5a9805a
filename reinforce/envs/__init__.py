"""The environment layer: functional JAX envs, their gymnasium views and registration."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from reinforce.envs.cartpole import CartPole, CartPoleParams, CartPoleState
from reinforce.envs.core import Environment

ENV_IDS = ("CartPole-v1", "Pixelcopter-PLE-v0")


class UnknownEnvError(ValueError):
    pass


def make(env_id: str, obs: str = "features", frame_stack: int = 1) -> tuple[Environment, Any]:
    """Our functional env and its default params for a gymnasium id; with ``obs="pixels"``,
    observed through its last ``frame_stack`` gray frames (:mod:`reinforce.envs.pixels`)."""
    env, params = _make(env_id)
    if obs == "pixels":
        from reinforce.envs.pixels import Pixels

        return Pixels(env, frame_stack), params
    return env, params


def _make(env_id: str) -> tuple[Environment, Any]:
    if env_id == "CartPole-v1":
        env: Environment = CartPole()
    elif env_id == "Pixelcopter-PLE-v0":
        from reinforce.envs.pixelcopter import Pixelcopter

        env = Pixelcopter()
    else:
        raise UnknownEnvError(f"unknown env {env_id!r}; choose one of {', '.join(ENV_IDS)}")
    return env, env.default_params()


def gym_id(env_id: str) -> str:
    """The gymnasium id of our view of ``env_id`` (``CartPole-v1`` alone is gymnasium's own)."""
    if env_id not in ENV_IDS:
        raise UnknownEnvError(f"unknown env {env_id!r}; choose one of {', '.join(ENV_IDS)}")
    return "reinforce/CartPole-v1" if env_id == "CartPole-v1" else env_id


def reset_where(env: Environment, keys: jax.Array, obs: jax.Array, state: Any,
                alive: jax.Array, params: Any) -> tuple[jax.Array, Any]:
    """A batch of envs where the slots with ``alive`` False start a new episode (from ``keys``)
    and the others keep theirs: one vectorized reset of every slot, then a select."""
    new_obs, new_state = jax.vmap(env.reset, in_axes=(0, None))(keys, params)

    def keep(old, new):
        return jnp.where(alive.reshape(alive.shape + (1,) * (old.ndim - 1)), old, new)

    return keep(obs, new_obs), jax.tree.map(keep, state, new_state)


def where_alive(alive, obs):
    """Observations ``[B, ...]`` where ``alive`` (``bool[B]``), zeros of their dtype elsewhere;
    numpy in, numpy out, or JAX in, JAX out."""
    xp = jnp if isinstance(obs, jax.Array) else np
    mask = alive.reshape(alive.shape + (1,) * (obs.ndim - 1))
    return xp.where(mask, obs, xp.zeros((), obs.dtype))


def horizon(env_params: Any, max_t: int) -> int:
    """Longest episode a trainer plays: ``max_t``, or the env's own time limit if shorter."""
    return int(min(max_t, getattr(env_params, "max_steps_in_episode", max_t)))


def register() -> None:
    """Register ``Pixelcopter-PLE-v0`` (and our CartPole as ``reinforce/CartPole-v1``) with
    gymnasium: ``gymnasium.make`` gives the host env, ``gymnasium.make_vec`` the vector env."""
    import gymnasium

    if "Pixelcopter-PLE-v0" not in gymnasium.registry:
        gymnasium.register(
            "Pixelcopter-PLE-v0", entry_point="reinforce.envs.gym_wrapper:make_pixelcopter",
            vector_entry_point="reinforce.envs.vector:PixelcopterVectorEnv",
        )
    if "reinforce/CartPole-v1" not in gymnasium.registry:
        gymnasium.register(
            "reinforce/CartPole-v1",
            entry_point="reinforce.envs.gym_wrapper:CartPoleEnv",
            vector_entry_point="reinforce.envs.vector:CartPoleVectorEnv",
            max_episode_steps=None,
        )


__all__ = [
    "ENV_IDS", "CartPole", "CartPoleParams", "CartPoleState", "Environment",
    "UnknownEnvError", "gym_id", "horizon", "make", "register",
]
