"""Shared test configuration.

JAX's 64-bit mode is switched on only inside ``jax.enable_x64(True)`` blocks of single tests;
the autouse guard below fails any test that starts or ends with it on, so it never leaks.
"""

from __future__ import annotations

import os

import jax
import pytest

from reinforce.config import COMPILE_CACHE_ENV


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


@pytest.fixture(autouse=True, scope="session")
def _compile_cache(tmp_path_factory):
    """One compilation cache for the whole test run (shared by the xdist workers), never the
    user's ``~/.cache``: a CLI subprocess loads the programs an earlier test compiled."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    before = os.environ.get(COMPILE_CACHE_ENV)
    os.environ[COMPILE_CACHE_ENV] = str(shared / "compile-cache")
    yield
    if before is None:
        os.environ.pop(COMPILE_CACHE_ENV, None)
    else:
        os.environ[COMPILE_CACHE_ENV] = before
