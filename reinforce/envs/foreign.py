"""Envs that are not ours: gymnax's, trained inside our compiled programs, and gymnasium's,
played on the host by the torch backend.

An env id names where an env comes from: ``CartPole-v1`` and ``Pixelcopter-PLE-v0`` are ours;
``gymnax:NAME`` is ``gymnax.make(NAME)`` (``gymnax:Breakout-MinAtar``); ``gymnasium:NAME`` is
``gymnasium.make(NAME)`` (``gymnasium:Acrobot-v1``). Only discrete action spaces are taken:
REINFORCE here samples from a softmax over the actions.

:class:`FromGymnax` puts a gymnax env behind our functional protocol
(:mod:`reinforce.envs.core`): its ``step_env`` (no auto-reset) and ``is_truncated``, its
observations flattened to a vector, or, for images of values in [0, 1] (MinAtar's 10x10xC),
kept as ``uint8`` frames of 0..255 for the CNN. :class:`GymnasiumBatch` is ``n`` copies of a
gymnasium env (``gymnasium.make_vec``) with the interface of our
:class:`~reinforce.envs.batched.BatchedEnv`; observations are flattened (a ``Discrete`` one
becomes one-hot) by gymnasium's ``FlattenObservation``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from reinforce.envs.core import Environment, float_dtype
from reinforce.host import HostKey

GYMNAX = "gymnax:"
GYMNASIUM = "gymnasium:"


class UnknownEnvError(ValueError):
    """An env id this project cannot train; the message says why, in one line."""


def source(env_id: str) -> str:
    """Where ``env_id`` comes from: ``"gymnax"``, ``"gymnasium"`` or ``"ours"``."""
    for prefix in (GYMNAX, GYMNASIUM):
        if env_id.startswith(prefix):
            return prefix[:-1]
    return "ours"


def name_of(env_id: str) -> str:
    """The id without its ``gymnax:`` or ``gymnasium:`` prefix."""
    return env_id.split(":", 1)[1] if source(env_id) != "ours" else env_id


def torch_only(env_id: str) -> str:
    """What a JAX backend says of a gymnasium env, which only the torch backend plays."""
    return f"{env_id} is a gymnasium env: it plays with --backend torch (jax trains ours and " \
           f"gymnax's)"


def _discrete(env_id: str, space: Any) -> int:
    """The number of actions of a discrete action space (gymnax's or gymnasium's), or a
    refusal naming the space."""
    n = getattr(space, "n", None)
    if type(space).__name__ != "Discrete" or n is None:
        raise UnknownEnvError(f"{env_id} has a {type(space).__name__} action space; REINFORCE "
                              f"here takes discrete actions only")
    return int(n)


# --- gymnax --------------------------------------------------------------------------------


class FromGymnax(Environment):
    """A gymnax env (``gymnax.make(name)``) as one of our functional envs."""

    def __init__(self, name: str):
        try:
            import gymnax
        except ImportError:
            raise UnknownEnvError(f"gymnax:{name} needs gymnax: pip install "
                                  f"\"reinforce[gymnax]\"") from None
        if name not in gymnax.registered_envs:
            raise UnknownEnvError(f"unknown gymnax env {name!r}; gymnax has "
                                  f"{', '.join(gymnax.registered_envs)}")
        self.name = name
        self.id = GYMNAX + name
        self.inner, self._params = gymnax.make(name)
        self.num_actions = _discrete(self.id, self.inner.action_space(self._params))
        shape = jax.eval_shape(self.inner.reset_env, jax.random.key(0), self._params)[0].shape
        space = self.inner.observation_space(self._params)
        low, high = (np.broadcast_to(np.asarray(getattr(space, b, np.nan), np.float64), shape)
                     for b in ("low", "high"))
        #: Images of values in [0, 1] are shown to the CNN as uint8 frames; the rest is a vector.
        self.frames = len(shape) == 3 and bool(np.all(low == 0) and np.all(high == 1))
        self._shape = tuple(shape) if self.frames else (math.prod(shape),)
        self.observation_size = math.prod(shape)
        self.observation_dtype = jnp.uint8 if self.frames else jnp.float32
        low, high = low.reshape(-1), high.reshape(-1)
        finite = np.all(np.isfinite(low) & np.isfinite(high) & (high > low))
        self.observation_range = (tuple(low), tuple(high)) if finite and not self.frames else None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FromGymnax) and other.name == self.name

    def __hash__(self) -> int:
        return hash((FromGymnax, self.name))

    @property
    def observation_shape(self) -> tuple[int, ...]:
        return self._shape

    def default_params(self) -> Any:
        return self._params

    def _observe(self, obs: jax.Array) -> jax.Array:
        if self.frames:
            return jnp.round(obs.astype(jnp.float32) * 255).astype(jnp.uint8)
        return obs.reshape(self._shape).astype(jnp.float32)

    def reset(self, key: jax.Array, params: Any) -> tuple[jax.Array, Any]:
        obs, state = self.inner.reset_env(key, params)
        return self._observe(obs), state

    def step(self, key, state, action, params):
        obs, state, reward, done, _ = self.inner.step_env(key, state, action, params)
        truncated = jnp.asarray(self.inner.is_truncated(state, params), bool)
        terminated = jnp.asarray(done, bool) & ~truncated
        return (self._observe(obs), state, jnp.asarray(reward, float_dtype()), terminated,
                truncated, {})


# --- gymnasium -----------------------------------------------------------------------------


@dataclass(frozen=True)
class GymnasiumInfo:
    """What the trainers need to know of a gymnasium env, read without playing it."""

    env_id: str
    observation_size: int
    num_actions: int
    #: The env's own time limit (``max_episode_steps`` of its registration), if it has one.
    max_steps_in_episode: int | None

    @property
    def observation_shape(self) -> tuple[int, ...]:
        return (self.observation_size,)


def _gymnasium_make(name: str, **kwargs: Any) -> Any:
    """``gymnasium.make(name)`` with its observations flattened, or a one-line refusal."""
    import gymnasium
    from gymnasium.wrappers import FlattenObservation

    env_id = GYMNASIUM + name
    try:
        gymnasium.spec(name)
    except gymnasium.error.Error as exc:
        raise UnknownEnvError(f"unknown gymnasium env {name!r} ({exc})") from None
    try:
        env = gymnasium.make(name, **kwargs)
    except gymnasium.error.DependencyNotInstalled as exc:
        raise UnknownEnvError(f"{env_id} needs a package that is not installed: "
                              f"{str(exc).splitlines()[0]}") from None
    return FlattenObservation(env)


@functools.cache
def gymnasium_info(name: str) -> GymnasiumInfo:
    """The sizes of gymnasium env ``name``: made once (and closed) to read its spaces."""
    env = _gymnasium_make(name)
    try:
        num_actions = _discrete(GYMNASIUM + name, env.action_space)
        size = int(np.prod(env.observation_space.shape))
    finally:
        env.close()
    return GymnasiumInfo(GYMNASIUM + name, size, num_actions,
                         env.spec.max_episode_steps if env.spec is not None else None)


def gymnasium_env(env_id: str, **kwargs: Any) -> Any:
    """One gymnasium env of ``env_id`` (``gymnasium:NAME``), its observations flattened as
    the trainers see them; ``kwargs`` go to ``gymnasium.make`` (e.g. ``render_mode``)."""
    gymnasium_info(name_of(env_id))
    return _gymnasium_make(name_of(env_id), **kwargs)


class GymnasiumBatch(HostKey):
    """``n`` copies of a gymnasium env (``gymnasium.make_vec``, in this process) with the
    interface of :class:`~reinforce.envs.batched.BatchedEnv`: the caller tracks which episodes
    are over, and each :meth:`reset` starts ``n`` new ones.

    Each reset seeds the ``n`` envs from the batch's JAX key (split once per reset), so the key
    is all a checkpoint keeps of the envs: a resumed run plays the same episodes.
    """

    def __init__(self, env_id: str, n: int, seed: int):
        import gymnasium
        from gymnasium.wrappers import FlattenObservation

        self.info = gymnasium_info(name_of(env_id))
        self.n = int(n)
        self.vector = gymnasium.make_vec(name_of(env_id), num_envs=self.n,
                                         vectorization_mode="sync",
                                         wrappers=[FlattenObservation])
        self.params = self.info
        super().__init__(seed)

    @property
    def observation_size(self) -> int:
        return self.info.observation_size

    @property
    def num_actions(self) -> int:
        return self.info.num_actions

    def reset(self) -> np.ndarray:
        self._key, sub = jax.random.split(self._key)
        seeds = np.asarray(jax.random.randint(sub, (self.n,), 0, 2**31 - 1))
        obs, _ = self.vector.reset(seed=[int(s) for s in seeds])
        return np.asarray(obs, np.float32)

    def renew(self, obs: np.ndarray, alive: np.ndarray) -> np.ndarray:
        raise UnknownEnvError(f"{self.info.env_id}: segments are for our envs and gymnax's")

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """obs ``[n, S]`` float32, reward ``[n]``, terminated ``[n]``, truncated ``[n]``; an
        env whose episode is over starts a new one on the next step (gymnasium's autoreset),
        which the caller does not count."""
        obs, reward, terminated, truncated, _ = self.vector.step(np.asarray(actions, np.int64))
        return (np.asarray(obs, np.float32), np.asarray(reward, np.float32),
                np.asarray(terminated, bool), np.asarray(truncated, bool))

    def close(self) -> None:
        self.vector.close()
