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


def for_env(name: str | None, env_id: str) -> Backend:
    """The backend ``name`` for ``env_id``, or the default one: jax, but torch for a gymnasium
    env, which only torch plays (``ConfigError`` for jax)."""
    from reinforce.envs.foreign import source, torch_only

    if name is None:
        name = "torch" if source(env_id) == "gymnasium" else "jax"
    if name == "jax" and source(env_id) == "gymnasium":
        raise ConfigError(torch_only(env_id))
    return get(name)


def total_updates(backend: Backend, cfg, n_runs: int) -> int:
    """Updates as the progress bar and ``--stop-after`` count them: all runs together when they
    train side by side, the sum over runs when they train one after the other."""
    return cfg.n_updates * (n_runs if backend.runs_in_sequence else 1)
