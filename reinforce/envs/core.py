"""The functional environment protocol every env of ours follows.

An environment is a stateless object with pure functions of explicit arguments:

    obs, state = env.reset(key, params)
    obs, state, reward, terminated, truncated, info = env.step(key, state, action, params)

`params` and `state` are frozen pytrees (``flax.struct.dataclass``); everything is
jittable and vmappable. `step` never resets on its own: what happens after the end of an
episode is the caller's business (the trainers mask, the gymnasium wrapper asks for a reset,
the vector envs call `autoreset_step`, which steps a batch and restarts the envs it is told to).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

import jax
import jax.numpy as jnp
from jax import lax

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
    #: The dtype of an observation.
    observation_dtype: Any = jnp.float32
    #: ``(low, high)``: where each observation value lies in ordinary play (not a bound the env
    #: enforces); ``normalize_obs`` maps it to [-1, 1] inside the policy. None: not given.
    observation_range: tuple[tuple[float, ...], tuple[float, ...]] | None = None

    @property
    def observation_shape(self) -> tuple[int, ...]:
        """The shape of one observation: a vector of ``observation_size`` unless it says."""
        return (self.observation_size,)

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

    def autoreset_step(
        self, keys_of: Callable[[jax.Array], jax.Array], state: TState, restart: jax.Array,
        actions: jax.Array, params: TParams, size: int = 1,
    ) -> tuple[jax.Array, TState, jax.Array, jax.Array, jax.Array]:
        """A batch of envs (leading axis N) one step on, as a vector env's NEXT_STEP autoreset
        wants it: env ``i`` takes ``step(key, state[i], actions[i])``, or, where ``restart[i]``,
        starts a new episode, ``reset(key)`` (its action ignored; reward 0, neither flag), with
        its key for this step, ``key = keys_of(idx)[j]`` for ``idx[j] == i`` (an env may only
        need its key now and then). Returns ``(obs, state, reward, terminated, truncated)``.

        New episodes are made for the restarting envs only, ``size`` at a time (see
        :func:`update_rows`): the same numbers whatever the size.
        """
        keys = keys_of(jnp.arange(restart.shape[0]))
        obs, state, reward, terminated, truncated, _ = jax.vmap(
            self.step, in_axes=(0, 0, 0, None))(keys, state, actions, params)

        def new_episodes(idx, rows):
            return jax.vmap(self.reset, in_axes=(0, None))(keys[idx], params)

        obs, state = update_rows(restart, size, new_episodes, (obs, state))
        reward = jnp.where(restart, jnp.zeros((), reward.dtype), reward)
        return obs, state, reward, terminated & ~restart, truncated & ~restart


def where_rows(mask: jax.Array, a: Any, b: Any) -> Any:
    """Trees of ``[N, ...]`` arrays: ``a``'s rows where ``mask`` (``bool[N]``), else ``b``'s."""
    def pick(x, y):
        return jnp.where(mask.reshape(mask.shape + (1,) * (x.ndim - 1)), x, y)

    return jax.tree.map(pick, a, b)


def take_rows(tree: Any, idx: jax.Array) -> Any:
    """The rows ``idx`` of every ``[N, ...]`` array of a tree."""
    return jax.tree.map(lambda a: a[idx], tree)


def update_rows(mask: jax.Array, size: int, compute: Any, base: Any) -> Any:
    """``base`` (a tree of ``[N, ...]`` arrays) with its rows where ``mask`` replaced by
    ``compute(idx, rows)``: the new values of the rows ``idx``, whose values now are ``rows``.

    The rows to replace go through ``compute`` ``size`` at a time (the last batch padded), in a
    loop that updates ``base`` in place: the cost of the rows that need it, whatever their
    number, for one compiled ``compute``; the same result whatever the size.
    """
    n = mask.shape[0]
    size = max(1, min(int(size), n))
    order = jnp.nonzero(mask, size=n + size, fill_value=n)[0]  # the rows, then padding (n)

    def batch(carry):
        start, base = carry
        idx = lax.dynamic_slice(order, (start,), (size,))
        safe = jnp.minimum(idx, n - 1)
        new = compute(safe, take_rows(base, safe))
        return start + size, jax.tree.map(lambda old, v: old.at[idx].set(v, mode="drop"),
                                          base, new)

    count = mask.sum()
    return lax.while_loop(lambda carry: carry[0] < count, batch, (jnp.zeros_like(count), base))[1]
