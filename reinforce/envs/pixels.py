"""Pixel observations: the frames an env renders, in gray, the last ``k`` of them stacked.

:class:`Pixels` wraps a functional env: its observation is ``uint8[H, W, k]``, the env's own
rendered frames (``env.render``, the same pixels as the real game) turned gray by
:func:`grayscale` and stacked by :func:`push_frame`, newest last; a reset fills the stack with
the first frame. The gymnasium view (``gymnasium.make("Pixelcopter-PLE-v0", obs="pixels",
frame_stack=k)``, :class:`~reinforce.envs.gym_wrapper.PixelObservation`) applies the same two
functions, written once for numpy and JAX arrays, to the host env's frames, so a course loop
and the trainers see the same observations.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from reinforce.envs.core import Environment


def grayscale(rgb):
    """``uint8[..., 3]`` RGB to ``uint8[...]`` gray, ``(299 R + 587 G + 114 B) // 1000``: integer
    arithmetic, so numpy and JAX give the same bytes."""
    rgb = rgb.astype("int32")
    gray = (299 * rgb[..., 0] + 587 * rgb[..., 1] + 114 * rgb[..., 2]) // 1000
    return gray.astype("uint8")


def push_frame(frames, frame):
    """The stack ``[..., H, W, k]`` without its oldest frame and with ``frame`` (``[..., H, W]``)
    last; a numpy stack gives a numpy one, a JAX stack a JAX one."""
    xp = jnp if isinstance(frames, jax.Array) else np
    return xp.concatenate([frames[..., 1:], frame[..., None]], axis=-1)


def first_stack(frame, k: int):
    """A new episode's stack: its first frame ``k`` times."""
    xp = jnp if isinstance(frame, jax.Array) else np
    return xp.repeat(frame[..., None], k, axis=-1)


@struct.dataclass
class PixelState:
    inner: Any  # the wrapped env's state
    frames: jax.Array  # uint8 [H, W, k], the observation


class Pixels(Environment):
    """``env`` observed through its last ``k`` gray frames (see the module docstring)."""

    observation_dtype = jnp.uint8

    def __init__(self, env: Environment, k: int = 1):
        self.env, self.k = env, int(k)
        self.id, self.num_actions = env.id, env.num_actions
        params = env.default_params()
        _, state = jax.eval_shape(env.reset, jax.random.key(0), params)
        height, width, _ = jax.eval_shape(env.render, state, params).shape
        self._shape = (height, width, self.k)
        self.observation_size = height * width * self.k

    @property
    def observation_shape(self) -> tuple[int, ...]:
        return self._shape

    def __eq__(self, other: object) -> bool:  # equal envs share compiled programs
        return type(self) is type(other) and (self.env, self.k) == (other.env, other.k)

    def __hash__(self) -> int:
        return hash((type(self), self.env, self.k))

    def default_params(self) -> Any:
        return self.env.default_params()

    def reset(self, key: jax.Array, params: Any) -> tuple[jax.Array, PixelState]:
        _, inner = self.env.reset(key, params)
        frames = first_stack(grayscale(self.env.render(inner, params)), self.k)
        return frames, PixelState(inner, frames)

    def step(self, key: jax.Array, state: PixelState, action: jax.Array, params: Any):
        _, inner, reward, terminated, truncated, info = self.env.step(key, state.inner, action,
                                                                     params)
        frames = push_frame(state.frames, grayscale(self.env.render(inner, params)))
        return frames, PixelState(inner, frames), reward, terminated, truncated, info

    def render(self, state: PixelState, params: Any) -> jax.Array:
        return self.env.render(state.inner, params)
