"""The environment layer: functional JAX envs, their gymnasium views and registration."""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from reinforce.envs.cartpole import CartPole, CartPoleParams, CartPoleState
from reinforce.envs.core import Environment
from reinforce.envs.foreign import (
    GYMNASIUM,
    GYMNAX,
    FromGymnax,
    UnknownEnvError,
    gymnasium_info,
    name_of,
    source,
    torch_only,
)

#: Our envs; ``gymnax:NAME`` and ``gymnasium:NAME`` name the others (``reinforce.envs.foreign``).
ENV_IDS = ("CartPole-v1", "Pixelcopter-PLE-v0")
#: How the env ids are written, for messages.
ENV_CHOICES = (f"{', '.join(ENV_IDS)}, {GYMNAX}NAME (a discrete gymnax env) or "
               f"{GYMNASIUM}NAME (a discrete gymnasium env, torch backend)")


def check_id(env_id: str) -> str:
    """``env_id`` if this project trains it (ours, or a discrete gymnax or gymnasium env), else
    a one-line ``UnknownEnvError`` (unknown, not installed, or continuous actions)."""
    if not isinstance(env_id, str):
        raise UnknownEnvError(f"the env must be a string, got {env_id!r}")
    kind = source(env_id)
    if kind == "gymnax":
        _gymnax(name_of(env_id))
    elif kind == "gymnasium":
        gymnasium_info(name_of(env_id))
    elif env_id not in ENV_IDS:
        hint = f" (gymnasium's: {GYMNASIUM}{env_id})" if _in_gymnasium(env_id) else ""
        raise UnknownEnvError(f"unknown env {env_id!r}{hint}; choose {ENV_CHOICES}")
    return env_id


def _in_gymnasium(name: str) -> bool:
    import gymnasium

    return name in gymnasium.registry


@functools.cache
def _gymnax(name: str) -> FromGymnax:
    return FromGymnax(name)


def make(env_id: str, obs: str = "features", frame_stack: int = 1) -> tuple[Environment, Any]:
    """Our functional env and its default params for a gymnasium id; with ``obs="pixels"``,
    observed through its last ``frame_stack`` gray frames (:mod:`reinforce.envs.pixels`)."""
    env, params = _make(env_id)
    if obs == "pixels":
        from reinforce.envs.pixels import Pixels

        return Pixels(env, frame_stack), params
    return env, params


def _make(env_id: str) -> tuple[Environment, Any]:
    kind = source(env_id)
    if kind == "gymnax":
        env: Environment = _gymnax(name_of(env_id))
        return env, env.default_params()
    if kind == "gymnasium":
        check_id(env_id)
        raise UnknownEnvError(torch_only(env_id))
    if env_id == "CartPole-v1":
        env = CartPole()
    elif env_id == "Pixelcopter-PLE-v0":
        from reinforce.envs.pixelcopter import Pixelcopter

        env = Pixelcopter()
    else:
        check_id(env_id)
    return env, env.default_params()


def spec(env_id: str, obs: str = "features", frame_stack: int = 1) -> Any:
    """What the policy sees and chooses of ``env_id``: an object with ``observation_shape``,
    ``num_actions`` and ``observation_range`` (None where not known), for any env id."""
    if source(env_id) == "gymnasium":
        info = gymnasium_info(name_of(env_id))
        return _Spec(info.observation_shape, info.num_actions, None)
    env, _ = make(env_id, obs, frame_stack)
    return _Spec(env.observation_shape, env.num_actions, env.observation_range)


class _Spec(NamedTuple):
    observation_shape: tuple[int, ...]
    num_actions: int
    observation_range: Any


def batch(env_id: str, n: int, seed: int, obs: str = "features", frame_stack: int = 1) -> Any:
    """``n`` copies of ``env_id`` stepped together from the host: our
    :class:`~reinforce.envs.batched.BatchedEnv` over a functional env, or a
    :class:`~reinforce.envs.foreign.GymnasiumBatch` for a gymnasium env."""
    if source(env_id) == "gymnasium":
        from reinforce.envs.foreign import GymnasiumBatch

        return GymnasiumBatch(check_id(env_id), n, seed)
    from reinforce.envs.batched import BatchedEnv

    return BatchedEnv(env_id, n, seed, obs, frame_stack)


def draws(env_id: str) -> bool:
    """Whether ``env_id`` draws frames for a replay: ours and gymnasium's do (gymnasium's
    through pygame), gymnax's do not."""
    return source(env_id) != "gymnax"


def gym_id(env_id: str) -> str:
    """The gymnasium id of our view of ``env_id`` (``CartPole-v1`` alone is gymnasium's own);
    a gymnasium env's own id; gymnax envs have no gymnasium view."""
    check_id(env_id)
    if source(env_id) == "gymnasium":
        return name_of(env_id)
    if source(env_id) == "gymnax":
        raise UnknownEnvError(f"{env_id} is a gymnax env: it has no gymnasium view to play "
                              f"or draw")
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
    limit = getattr(env_params, "max_steps_in_episode", None)
    return int(min(max_t, limit)) if limit is not None else int(max_t)


def env_horizon(env_id: str, max_t: int) -> int:
    """:func:`horizon` of ``env_id``'s default params (a gymnasium env's registered limit)."""
    if source(env_id) == "gymnasium":
        return horizon(gymnasium_info(name_of(check_id(env_id))), max_t)
    return horizon(make(env_id)[1], max_t)


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
    "ENV_CHOICES", "ENV_IDS", "CartPole", "CartPoleParams", "CartPoleState", "Environment",
    "UnknownEnvError", "batch", "check_id", "draws", "env_horizon", "gym_id", "horizon",
    "make", "register", "source", "spec",
]
