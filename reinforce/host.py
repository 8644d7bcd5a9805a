"""Where JAX runs when Python drives it one call at a time: on the host's CPU.

A compiled training program belongs on the accelerator. A call made from Python once per step
(a batch of envs stepped for the torch trainer or for an evaluation, the returns of one torch
update) does not: on a GPU each such call would copy its inputs to the device and its outputs
back, which costs far more than the step. These calls run on the CPU device explicitly, even
when a GPU is JAX's default.
"""

from __future__ import annotations

import functools
from typing import Any

import jax


@functools.cache
def host_device() -> jax.Device:
    """The first CPU device (JAX always has one, next to any accelerator)."""
    return jax.devices("cpu")[0]


def host() -> Any:
    """A context in which new arrays and uncommitted computations go to the CPU device."""
    return jax.default_device(host_device())


def on_host(tree: Any) -> Any:
    """``tree``'s arrays committed to the CPU device: a jitted function called with them runs
    there, and so do the calls that take its outputs."""
    return jax.device_put(tree, host_device())


class HostKey:
    """A holder of an RNG key that lives on the CPU device: a key assigned to ``key`` is moved
    there, so the per-step calls that split it never touch an accelerator."""

    def __init__(self, seed: int):
        with host():
            self.key = jax.random.key(seed)

    @property
    def key(self) -> jax.Array:
        """The RNG key (on the CPU device; a key set here is moved there)."""
        return self._key

    @key.setter
    def key(self, key: jax.Array) -> None:
        self._key = on_host(key)
