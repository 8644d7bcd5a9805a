"""reinforce: REINFORCE (Monte Carlo policy gradient) in JAX/Flax and in PyTorch.

``reinforce.train(env_id, backend, seeds=..., **settings)`` trains and evaluates, writing a
run folder, and returns its :class:`~reinforce.app.training.Run` (scores, metrics, the best
policy, ``evaluate``, ``record``, ``push``); ``reinforce.load(RUN_DIR)`` opens one again and
``reinforce.resume(RUN_DIR)`` continues a stopped one. Importing the package registers
``Pixelcopter-PLE-v0`` with gymnasium; JAX and torch are imported only when used.
"""

__version__ = "0.1.0"

from reinforce.envs import register as _register_envs

_register_envs()

#: The API, imported from ``reinforce.app.training`` when first used.
_API = ("train", "resume", "load", "Run")


def __getattr__(name: str):
    if name in _API:
        from reinforce.app import training

        return getattr(training, name)
    raise AttributeError(f"module 'reinforce' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
