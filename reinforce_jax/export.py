"""Weights between the Flax policy and the torch layout (the export format).

Torch layout: ``layers.{i}.weight`` ``[out, in]`` and ``layers.{i}.bias`` ``[out]``, numpy
float32. Flax: ``{"params": {"layers_{i}": {"kernel": [in, out], "bias": [out]}}}``. Both
directions copy values exactly, so a round trip gives back the same bits.
"""

from __future__ import annotations

import re

import jax.numpy as jnp
import numpy as np

_KEY = re.compile(r"^layers\.(\d+)\.(weight|bias)$")


def to_torch_state(params) -> dict[str, np.ndarray]:
    layers = params["params"]
    out: dict[str, np.ndarray] = {}
    for i in range(len(layers)):
        layer = layers[f"layers_{i}"]
        out[f"layers.{i}.weight"] = np.ascontiguousarray(np.asarray(layer["kernel"]).T)
        out[f"layers.{i}.bias"] = np.asarray(layer["bias"]).copy()
    return out


def from_torch_state(state: dict[str, np.ndarray]) -> dict:
    layers: dict[str, dict[str, jnp.ndarray]] = {}
    for name, value in state.items():
        match = _KEY.match(name)
        if match is None:
            raise ValueError(f"unexpected weight {name!r} (expected layers.<i>.weight/bias)")
        i, kind = match.groups()
        value = np.asarray(value, np.float32)
        entry = layers.setdefault(f"layers_{i}", {})
        if kind == "weight":
            entry["kernel"] = jnp.asarray(value.T)
        else:
            entry["bias"] = jnp.asarray(value)
    return {"params": layers}


def to_torch_policy(params, observation_size: int, num_actions: int, hidden_sizes):
    """The same network as a ``reinforce_torch.policy.Policy`` (same probabilities)."""
    import torch

    from reinforce_torch.policy import Policy

    policy = Policy(observation_size, num_actions, hidden_sizes)
    policy.load_state_dict({k: torch.from_numpy(v) for k, v in to_torch_state(params).items()})
    return policy
