"""The policy as a Flax module: an MLP from observation to action logits.

Layers are initialised like ``torch.nn.Linear`` (uniform in +-1/sqrt(fan_in) for weights and
biases), so both backends start from the same distribution of networks. Parameters are named
``layers_0, layers_1, ...``, matching the torch module's ``layers.0, layers.1, ...``;
:func:`to_export` and :func:`from_export` convert them to and from the export format, the
torch layout (``reinforce.checkpoint.expected_shapes``), exactly: a round trip gives back the
same bits.

Every matrix product runs at full float32 precision (:data:`PRECISION`) on every platform: GPUs
and TPUs otherwise multiply float32 matrices in reduced precision (TF32 / bfloat16 passes), and
the policy would no longer agree with the torch backend to float32 rounding. The precision is
set on the operation, so it holds in the gradient too and needs no environment variable.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

#: The precision of every matrix product of the policy, forward and backward.
PRECISION = jax.lax.Precision.HIGHEST


def _torch_uniform(fan_in: int):
    bound = 1.0 / np.sqrt(fan_in)

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


class Linear(nn.Module):
    """A dense layer with torch's default initialisation."""

    features: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        fan_in = x.shape[-1]
        kernel = self.param("kernel", _torch_uniform(fan_in), (fan_in, self.features))
        bias = self.param("bias", _torch_uniform(fan_in), (self.features,))
        return jnp.matmul(x, kernel, precision=PRECISION) + bias


class Policy(nn.Module):
    """obs -> hidden_sizes[0] -> ... -> num_actions logits, ReLU in between."""

    hidden_sizes: Sequence[int]
    num_actions: int

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        x = obs
        for i, width in enumerate(self.hidden_sizes):
            x = nn.relu(Linear(width, name=f"layers_{i}")(x))
        return Linear(self.num_actions, name=f"layers_{len(self.hidden_sizes)}")(x)


def make_policy(hidden_sizes: Sequence[int], num_actions: int) -> Policy:
    return Policy(hidden_sizes=tuple(hidden_sizes), num_actions=num_actions)


def init_params(policy: Policy, key: jax.Array, observation_size: int):
    return policy.init(key, jnp.zeros((observation_size,), jnp.float32))


def log_probs(policy: Policy, params, obs: jax.Array, actions: jax.Array) -> jax.Array:
    """log pi(a|s) for every (obs, action) pair; obs ``[..., S]``, actions ``[...]``."""
    logp = jax.nn.log_softmax(policy.apply(params, obs), axis=-1)
    # A select against the action's one-hot mask, not a gather: the same values, and on the
    # CPU the select (and its transpose in the gradient) is cheaper than gather and scatter.
    chosen = actions[..., None] == jnp.arange(logp.shape[-1])
    return jnp.sum(jnp.where(chosen, logp, 0.0), axis=-1)


def probabilities(policy: Policy, params, obs: jax.Array) -> jax.Array:
    return jax.nn.softmax(policy.apply(params, obs), axis=-1)


# --- the export format ----------------------------------------------------------------------

_KEY = re.compile(r"^layers\.(\d+)\.(weight|bias)$")


def to_export(params) -> dict[str, np.ndarray]:
    """The weights in the export format: ``layers.{i}.weight`` ``[out, in]`` and
    ``layers.{i}.bias`` ``[out]``, numpy float32 (Flax keeps ``kernel`` as ``[in, out]``)."""
    layers = params["params"]
    out: dict[str, np.ndarray] = {}
    for i in range(len(layers)):
        layer = layers[f"layers_{i}"]
        out[f"layers.{i}.weight"] = np.ascontiguousarray(np.asarray(layer["kernel"]).T)
        out[f"layers.{i}.bias"] = np.asarray(layer["bias"]).copy()
    return out


def from_export(weights: dict[str, np.ndarray]) -> dict:
    """The Flax parameters of weights in the export format (the inverse of :func:`to_export`)."""
    layers: dict[str, dict[str, jnp.ndarray]] = {}
    for name, value in weights.items():
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
