"""The backends by name: the one place that knows which exist.

A backend is imported when it is first asked for, so a JAX run never imports torch's backend
and the other way round.
"""

from __future__ import annotations

from importlib import import_module

from reinforce.backend import Backend
from reinforce.config import ConfigError

#: Every backend's name and the module that holds its ``BACKEND``.
MODULES = {"jax": "reinforce_jax.backend", "torch": "reinforce_torch.backend"}
BACKENDS = tuple(MODULES)


def get(name: str) -> Backend:
    """The backend called ``name`` (``ConfigError`` for an unknown one)."""
    if name not in MODULES:
        raise ConfigError(f"unknown backend {name!r}; choose jax or torch")
    return import_module(MODULES[name]).BACKEND


def total_updates(backend: Backend, cfg, n_runs: int) -> int:
    """Updates as the progress bar and ``--stop-after`` count them: all runs together when they
    train side by side, the sum over runs when they train one after the other."""
    return cfg.n_updates * (n_runs if backend.runs_in_sequence else 1)
