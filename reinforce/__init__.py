"""reinforce: REINFORCE (Monte Carlo policy gradient) in JAX/Flax and in PyTorch.

Importing the package registers ``Pixelcopter-PLE-v0`` with gymnasium.
"""

__version__ = "0.1.0"

from reinforce.envs import register as _register_envs

_register_envs()
