"""Shared test configuration.

JAX's 64-bit mode is switched on only inside ``jax.enable_x64(True)`` blocks of single tests;
the autouse guard below fails any test that starts or ends with it on, so it never leaks.
"""

from __future__ import annotations

import os

import jax
import pytest


@pytest.fixture(autouse=True)
def _no_x64_leak():
    assert not jax.config.read("jax_enable_x64"), "JAX 64-bit mode was left on before this test"
    yield
    assert not jax.config.read("jax_enable_x64"), "this test left JAX's 64-bit mode on"


@pytest.fixture(autouse=True)
def _restore_xla_flags():
    """``reinforce train`` exposes the CPU cores through ``XLA_FLAGS`` (for JAX's first use in
    its process); called in-process by a test, it must not reach later tests' subprocesses."""
    before = os.environ.get("XLA_FLAGS")
    yield
    if before is None:
        os.environ.pop("XLA_FLAGS", None)
    else:
        os.environ["XLA_FLAGS"] = before
