"""Shared test configuration.

JAX's 64-bit mode is switched on only inside ``jax.enable_x64(True)`` blocks of single tests;
the autouse guard below fails any test that starts or ends with it on, so it never leaks.
"""

from __future__ import annotations

import jax
import pytest


@pytest.fixture(autouse=True)
def _no_x64_leak():
    assert not jax.config.read("jax_enable_x64"), "JAX 64-bit mode was left on before this test"
    yield
    assert not jax.config.read("jax_enable_x64"), "this test left JAX's 64-bit mode on"
