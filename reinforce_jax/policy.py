"""The policy as a Flax module: an MLP from observation to action logits, after a small CNN
when the observations are frames (``reinforce.architecture``).

Layers are initialised like ``torch.nn.Linear`` and ``torch.nn.Conv2d`` (uniform in
+-1/sqrt(fan_in) for weights and biases), so both backends start from the same distribution of
networks. Parameters are named ``convs_0, ...`` and ``layers_0, layers_1, ...``, matching the
torch module's ``convs.0, ...`` and ``layers.0, layers.1, ...``;
:func:`to_export` and :func:`from_export` convert them to and from the export format, the
torch layout (``reinforce.architecture.Architecture.expected_shapes``), exactly: a round trip
gives back the same bits.

Every matrix product and convolution runs at full float32 precision (:data:`PRECISION`) on
every platform: GPUs and TPUs otherwise multiply float32 matrices in reduced precision (TF32 /
bfloat16 passes), and the policy would no longer agree with the torch backend to float32
rounding. The precision is
set on the operation, so it holds in the gradient too and needs no environment variable.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from reinforce.architecture import Architecture

#: The precision of every matrix product and convolution of the policy, forward and backward.
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


class Conv(nn.Module):
    """A VALID convolution of ``[N, H, W, C]`` images with torch's default initialisation;
    the kernel is ``[k, k, in, out]``."""

    features: int
    kernel: int
    stride: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        fan_in = self.kernel * self.kernel * x.shape[-1]
        shape = (self.kernel, self.kernel, x.shape[-1], self.features)
        kernel = self.param("kernel", _torch_uniform(fan_in), shape)
        bias = self.param("bias", _torch_uniform(fan_in), (self.features,))
        return conv_valid(x, kernel, self.stride) + bias


def conv_valid(x: jax.Array, kernel: jax.Array, stride: int) -> jax.Array:
    """The VALID convolution of ``x`` ``[N, H, W, C]`` with ``kernel`` ``[k, k, C, F]`` at
    ``stride``, as matrix products when ``stride`` divides ``k``.

    Cut into ``stride x stride`` blocks (space to depth), the input becomes ``[N, H/s, W/s,
    s*s*C]`` and the convolution one of kernel ``k/s`` at stride 1: a sum of ``(k/s)**2``
    products of shifted blocks with slices of the kernel. Its value is the convolution's, up to
    float32 rounding, and its gradient is matrix products too, which XLA's CPU backend runs
    much faster than a convolution's gradient, above all inside a compiled loop (docs/pixels.md).
    Other strides use the convolution itself.
    """
    k, c, f = kernel.shape[0], kernel.shape[2], kernel.shape[3]
    if k % stride:
        return jax.lax.conv_general_dilated(x, kernel, (stride, stride), "VALID",
                                            dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                            precision=PRECISION)
    n, h, w, _ = x.shape
    m, s = k // stride, stride
    out_h, out_w = (h - k) // s + 1, (w - k) // s + 1
    rows, cols = out_h + m - 1, out_w + m - 1  # blocks read
    blocks = (x[:, : rows * s, : cols * s]
              .reshape(n, rows, s, cols, s, c).transpose(0, 1, 3, 2, 4, 5)
              .reshape(n, rows, cols, s * s * c))
    # kernel[a*s + i, b*s + j, c] multiplies block (a, b)'s element (i, j, c).
    taps = kernel.reshape(m, s, m, s, c, f).transpose(0, 2, 1, 3, 4, 5).reshape(m, m, -1, f)
    return sum(jnp.matmul(blocks[:, a: a + out_h, b: b + out_w], taps[a, b],
                          precision=PRECISION)
               for a in range(m) for b in range(m))


def conv_valid_values(conv: tuple[int, int, int], image: tuple[int, ...],
                      out: tuple[int, ...]) -> int:
    """Values the gradient of a :func:`conv_valid` layer holds per image, for the memory
    estimate (``reinforce.memory.sizes``): the input cut into blocks (and its transposed
    copy), the ``(k/s)**2`` shifted blocks it multiplies, and the output before and after its
    ReLU."""
    _, k, s = conv
    out_h, out_w, features = out
    if k % s:
        return 2 * out_h * out_w * features
    m, c = k // s, image[-1]
    blocks = (out_h + m - 1) * (out_w + m - 1) * s * s * c
    return 2 * blocks + m * m * out_h * out_w * s * s * c + 2 * out_h * out_w * features


class Policy(nn.Module):
    """obs -> [conv layers ->] hidden_sizes[0] -> ... -> num_actions logits, ReLU in between.

    Frames (``convs`` given) are ``uint8 [..., H, W, C]``, scaled by 1/255; the conv output
    is flattened in height, width, channel order."""

    hidden_sizes: Sequence[int]
    num_actions: int
    convs: Sequence[Sequence[int]] = ()
    input_offset: Sequence[float] = ()  # features: (obs - input_offset) / input_scale first
    input_scale: Sequence[float] = ()

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        x = obs
        if self.input_scale:
            x = ((x - jnp.asarray(self.input_offset, jnp.float32))
                 / jnp.asarray(self.input_scale, jnp.float32))
        if self.convs:
            lead = obs.shape[:-3]
            x = obs.reshape(-1, *obs.shape[-3:]).astype(jnp.float32) / 255.0
            for i, (channels, kernel, stride) in enumerate(self.convs):
                x = nn.relu(Conv(channels, kernel, stride, name=f"convs_{i}")(x))
            x = x.reshape(*lead, -1)
        for i, width in enumerate(self.hidden_sizes):
            x = nn.relu(Linear(width, name=f"layers_{i}")(x))
        return Linear(self.num_actions, name=f"layers_{len(self.hidden_sizes)}")(x)


def make_policy(hidden_sizes: Sequence[int], num_actions: int,
                convs: Sequence[Sequence[int]] = (), input_offset: Sequence[float] = (),
                input_scale: Sequence[float] = ()) -> Policy:
    return Policy(hidden_sizes=tuple(hidden_sizes), num_actions=num_actions,
                  convs=tuple(tuple(c) for c in convs), input_offset=tuple(input_offset),
                  input_scale=tuple(input_scale))


def policy_for(arch: Architecture) -> Policy:
    return make_policy(arch.hidden_sizes, arch.num_actions, arch.convs, arch.input_offset,
                       arch.input_scale)


def init_params(policy: Policy, key: jax.Array, observation_shape: int | tuple[int, ...]):
    """Fresh parameters for observations of ``observation_shape`` (an int: a vector)."""
    shape = (observation_shape,) if isinstance(observation_shape, int) else observation_shape
    return policy.init(key, jnp.zeros(shape, jnp.uint8 if policy.convs else jnp.float32))


def log_probs(policy: Policy, params, obs: jax.Array, actions: jax.Array) -> jax.Array:
    """log pi(a|s) for every (obs, action) pair; obs ``[..., *observation_shape]``, actions
    ``[...]``."""
    return log_probs_and_entropy(policy, params, obs, actions)[0]


def log_probs_and_entropy(policy: Policy, params, obs: jax.Array, actions: jax.Array
                          ) -> tuple[jax.Array, jax.Array]:
    """:func:`log_probs` and the entropy of pi(.|s), from one forward pass."""
    logp = jax.nn.log_softmax(policy.apply(params, obs), axis=-1)
    # A select against the action's one-hot mask, not a gather: the same values, and on the
    # CPU the select (and its transpose in the gradient) is cheaper than gather and scatter.
    chosen = actions[..., None] == jnp.arange(logp.shape[-1])
    entropy = -jnp.sum(jnp.exp(logp) * logp, axis=-1)
    return jnp.sum(jnp.where(chosen, logp, 0.0), axis=-1), entropy


def state_values(value_net: Policy, params, obs: jax.Array) -> jax.Array:
    """V(s) ``[...]`` of a value network (a :class:`Policy` with one output) for obs
    ``[..., *observation_shape]``."""
    return value_net.apply(params, obs)[..., 0]


def probabilities(policy: Policy, params, obs: jax.Array) -> jax.Array:
    return jax.nn.softmax(policy.apply(params, obs), axis=-1)


# --- the export format ----------------------------------------------------------------------

_KEY = re.compile(r"^(layers|convs)\.(\d+)\.(weight|bias)$")
#: A Flax conv kernel ``[k, k, in, out]`` against the torch layout ``[out, in, k, k]``.
_TO_TORCH, _FROM_TORCH = (3, 2, 0, 1), (2, 3, 1, 0)


def to_export(params) -> dict[str, np.ndarray]:
    """The weights in the export format (``Architecture.expected_shapes``), numpy float32: a
    dense kernel ``[in, out]`` becomes ``layers.{i}.weight`` ``[out, in]``, a conv kernel
    ``[k, k, in, out]`` becomes ``convs.{i}.weight`` ``[out, in, k, k]``."""
    out: dict[str, np.ndarray] = {}
    for name, layer in params["params"].items():
        kind, i = name.rsplit("_", 1)
        kernel = np.asarray(layer["kernel"])
        axes = _TO_TORCH if kind == "convs" else (1, 0)
        out[f"{kind}.{i}.weight"] = np.ascontiguousarray(kernel.transpose(axes))
        out[f"{kind}.{i}.bias"] = np.asarray(layer["bias"]).copy()
    return out


def from_export(weights: dict[str, np.ndarray]) -> dict:
    """The Flax parameters of weights in the export format (the inverse of :func:`to_export`)."""
    layers: dict[str, dict[str, jnp.ndarray]] = {}
    for name, value in weights.items():
        match = _KEY.match(name)
        if match is None:
            raise ValueError(f"unexpected weight {name!r} (expected layers.<i>.weight/bias or "
                             "convs.<i>.weight/bias)")
        kind, i, part = match.groups()
        value = np.asarray(value, np.float32)
        entry = layers.setdefault(f"{kind}_{i}", {})
        if part == "weight":
            entry["kernel"] = jnp.asarray(value.transpose(_FROM_TORCH if kind == "convs"
                                                          else (1, 0)))
        else:
            entry["bias"] = jnp.asarray(value)
    return {"params": layers}
