"""CartPole-v1 on the host, in plain Python floats: the rules of :mod:`reinforce.envs.cartpole`.

This is what the gymnasium view ``reinforce/CartPole-v1`` steps, one step at a time, at the
speed of a few dozen Python float operations (a JAX call per step costs far more than the
step). Every function mirrors the one of the same name in the JAX port, so the two can be put
side by side; the constants are the JAX port's :class:`CartPoleParams`.

Precision: in float64 (the default) every value is a Python float, computed with the same
operations in the same order as gymnasium's numpy code, so a step reproduces gymnasium's
``CartPole-v1`` bit for bit. With ``dtype=np.float32`` the values are numpy float32 scalars
and every operation rounds to float32 like the JAX port in its default 32-bit mode.

The reset draw is gymnasium's: ``np_random.uniform(-0.05, 0.05, size=4)``, so
``reset(seed=s)`` starts where gymnasium's ``CartPole-v1`` starts with the same seed.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from reinforce.envs.cartpole import CartPoleParams


@dataclass(slots=True)
class CartPoleHostState:
    x: Any  # float (Python float, or numpy float32 in float32 mode)
    x_dot: Any
    theta: Any
    theta_dot: Any
    time: int  # steps taken in this episode


def scalar_type(dtype: Any) -> Any:
    """The type the host rules compute with: Python ``float`` for float64 (the fastest, and
    IEEE double like numpy's), ``np.float32`` for float32."""
    dtype = np.dtype(dtype)
    if dtype == np.float64:
        return float
    if dtype == np.float32:
        return np.float32
    raise ValueError(f"dtype must be float64 or float32, got {dtype}")


def reset(rng: np.random.Generator, params: CartPoleParams, dtype: Any = np.float64
          ) -> CartPoleHostState:
    """A new episode: the four state values uniform in [-0.05, 0.05) (gymnasium's draw)."""
    f = scalar_type(dtype)
    x, x_dot, theta, theta_dot = (f(v) for v in rng.uniform(-0.05, 0.05, size=4))
    return CartPoleHostState(x, x_dot, theta, theta_dot, 0)


def step(rng: Any, state: CartPoleHostState, action: int, params: CartPoleParams
         ) -> tuple[CartPoleHostState, float, bool, bool, None]:
    """One Euler step of ``tau`` seconds: ``(new_state, reward, terminated, truncated, None)``
    (deterministic: ``rng`` is not used; the ``None`` is the host protocol's hint for
    :func:`observation`, which CartPole does not need)."""
    del rng
    p = params
    s = state
    # math.cos/sin on a Python float; numpy's on a float32 scalar (math would return a double).
    cos, sin = (math.cos, math.sin) if type(s.theta) is float else (np.cos, np.sin)
    force = p.force_mag if action == 1 else -p.force_mag
    costheta = cos(s.theta)
    sintheta = sin(s.theta)
    # x * x, not x**2: Python's ** calls libm's pow; numpy's square (gymnasium's) multiplies.
    temp = (force + p.polemass_length * (s.theta_dot * s.theta_dot) * sintheta) / p.total_mass
    thetaacc = (p.gravity * sintheta - costheta * temp) / (
        p.length * (4.0 / 3.0 - p.masspole * (costheta * costheta) / p.total_mass)
    )
    xacc = temp - p.polemass_length * thetaacc * costheta / p.total_mass
    new = CartPoleHostState(
        x=s.x + p.tau * s.x_dot,
        x_dot=s.x_dot + p.tau * xacc,
        theta=s.theta + p.tau * s.theta_dot,
        theta_dot=s.theta_dot + p.tau * thetaacc,
        time=s.time + 1,
    )
    terminated = (
        new.x < -p.x_threshold
        or new.x > p.x_threshold
        or new.theta < -p.theta_threshold_radians
        or new.theta > p.theta_threshold_radians
    )
    truncated = new.time >= p.max_steps_in_episode
    return new, 1.0, bool(terminated), truncated, None


def observation(state: CartPoleHostState, params: CartPoleParams | None = None,
                hint: None = None) -> np.ndarray:
    """``float32[4]``: x, x_dot, theta, theta_dot."""
    return np.array((state.x, state.x_dot, state.theta, state.theta_dot), np.float32)


def render(state: CartPoleHostState, params: CartPoleParams) -> np.ndarray:
    """The JAX port's 600 x 400 frame of this state (the same drawing, computed on the CPU:
    a frame costs far more than a step either way)."""
    from reinforce.envs.cartpole import CartPole
    from reinforce.host import host

    with host():
        return np.asarray(_jax_render(CartPole())(to_jax(state), params))


@functools.cache
def _jax_render(env):
    import jax

    return jax.jit(env.render)


# ----------------------------------------------------------------------------------------
# conversion to and from the JAX state


def to_jax(state: CartPoleHostState):
    """The JAX port's :class:`CartPoleState` of a host state (in JAX's current float dtype)."""
    import jax.numpy as jnp

    from reinforce.envs.cartpole import CartPoleState
    from reinforce.envs.core import float_dtype, int_dtype

    fd = float_dtype()
    return CartPoleState(
        x=jnp.asarray(state.x, fd), x_dot=jnp.asarray(state.x_dot, fd),
        theta=jnp.asarray(state.theta, fd), theta_dot=jnp.asarray(state.theta_dot, fd),
        time=jnp.asarray(state.time, int_dtype()),
    )


def from_jax(state, dtype: Any = np.float64) -> CartPoleHostState:
    """The host state of one (unbatched) JAX :class:`CartPoleState`."""
    f = scalar_type(dtype)
    return CartPoleHostState(
        x=f(state.x), x_dot=f(state.x_dot), theta=f(state.theta),
        theta_dot=f(state.theta_dot), time=int(state.time),
    )


__all__ = ["CartPoleHostState", "from_jax", "observation", "render", "reset", "scalar_type",
           "step", "to_jax"]
