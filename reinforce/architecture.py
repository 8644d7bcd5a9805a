"""The policy network's architecture, and its weights' export format.

An MLP on the env's feature vector, or (observation mode ``pixels``) a small CNN on stacked
gray frames followed by the same MLP. Both backends build the network from an
:class:`Architecture`; every run folder and Hub repository stores its weights in one format,
the torch layout (:meth:`Architecture.expected_shapes`), whichever backend trained them, and
``config.json`` holds :meth:`Architecture.to_dict`.

The CNN: each conv layer is ``(out channels, kernel, stride)`` with VALID padding and a ReLU;
its output is flattened in height, width, channel order (both backends) before the MLP.
Frames are ``uint8`` and scaled by 1/255 inside the network.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from reinforce.checkpoint import CheckpointError
from reinforce.config import ConfigError
from reinforce.envs import spec

#: The conv layers of the pixel policy: (out channels, kernel, stride).
CNN = ((16, 8, 4), (32, 4, 2))
#: The conv layer for an env's own small images (MinAtar's 10 x 10 x C): one 3x3 layer.
SMALL_CNN = ((16, 3, 1),)


@dataclass(frozen=True)
class Architecture:
    observation_shape: tuple[int, ...]  # (S,) features, or (H, W, C) frames
    num_actions: int
    hidden_sizes: tuple[int, ...]
    convs: tuple[tuple[int, int, int], ...] = ()
    # Features: the network's first step is (obs - input_offset) / input_scale (none if empty).
    input_offset: tuple[float, ...] = ()
    input_scale: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "observation_shape", tuple(int(x) for x in
                                                            self.observation_shape))
        object.__setattr__(self, "hidden_sizes", tuple(int(h) for h in self.hidden_sizes))
        object.__setattr__(self, "convs", tuple(tuple(int(x) for x in c) for c in self.convs))
        object.__setattr__(self, "input_offset", tuple(float(x) for x in self.input_offset))
        object.__setattr__(self, "input_scale", tuple(float(x) for x in self.input_scale))
        if self.convs and len(self.observation_shape) != 3:
            raise ValueError(f"conv layers need (height, width, channels) observations, got "
                             f"{self.observation_shape}")
        if self.input_offset or self.input_scale:
            n = self.observation_size
            if self.convs or len(self.input_offset) != n or len(self.input_scale) != n:
                raise ValueError(f"input_offset and input_scale need one value per feature "
                                 f"({n}), got {len(self.input_offset)} and "
                                 f"{len(self.input_scale)}")
            if not all(math.isfinite(x) for x in self.input_offset) or not all(
                    0 < s < math.inf for s in self.input_scale):
                raise ValueError("input_offset must be finite and input_scale positive")

    def value(self) -> Architecture:
        """The state-value network of the value baseline: this network with one output."""
        return dataclasses.replace(self, num_actions=1)

    @property
    def observation_size(self) -> int:
        return math.prod(self.observation_shape)

    def conv_shapes(self) -> list[tuple[int, int, int]]:
        """``(height, width, channels)`` after each conv layer."""
        if not self.convs:
            return []
        h, w, _ = self.observation_shape
        shapes = []
        for channels, kernel, stride in self.convs:
            h, w = (h - kernel) // stride + 1, (w - kernel) // stride + 1
            if h < 1 or w < 1:
                raise ValueError(f"the frames {self.observation_shape} are too small for the "
                                 f"conv layers {self.convs}")
            shapes.append((h, w, channels))
        return shapes

    @property
    def flat_size(self) -> int:
        """Inputs of the first dense layer."""
        return math.prod(self.conv_shapes()[-1]) if self.convs else self.observation_size

    def expected_shapes(self) -> dict[str, tuple]:
        """The export format: ``convs.{i}.weight`` ``[out, in, k, k]`` and ``convs.{i}.bias``
        for each conv layer, ``layers.{i}.weight`` ``[out, in]`` and ``layers.{i}.bias`` for
        each dense layer, float32."""
        shapes: dict[str, tuple] = {}
        channels = self.observation_shape[-1] if self.convs else 0
        for i, (out, kernel, _) in enumerate(self.convs):
            shapes[f"convs.{i}.weight"] = (out, channels, kernel, kernel)
            shapes[f"convs.{i}.bias"] = (out,)
            channels = out
        widths = (self.flat_size, *self.hidden_sizes, self.num_actions)
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
            shapes[f"layers.{i}.weight"] = (b, a)
            shapes[f"layers.{i}.bias"] = (b,)
        return shapes

    def params_count(self) -> int:
        return sum(math.prod(shape) for shape in self.expected_shapes().values())

    def check(self, weights: dict[str, np.ndarray], source: Path | str) -> None:
        """``CheckpointError`` unless ``weights`` fit this architecture and are finite."""
        want = self.expected_shapes()
        got = {k: tuple(v.shape) for k, v in weights.items()}
        if got != want:
            raise CheckpointError(f"weights in {source} do not fit the architecture "
                                  f"{self.describe()} (got shapes {got})")
        for name, value in weights.items():
            if not np.all(np.isfinite(value)):
                raise CheckpointError(f"weights in {source} hold non-finite values ({name})")

    def describe(self) -> str:
        """E.g. ``7->64->128->2``, or ``48x48x2 frames->conv 16@8x8/4->...->2``."""
        if self.convs:
            parts = ["x".join(map(str, self.observation_shape)) + " frames"]
            parts += [f"conv {c}@{k}x{k}/{s}" for c, k, s in self.convs]
        else:
            parts = [str(self.observation_size) + (" scaled" if self.input_scale else "")]
        return "->".join([*parts, *map(str, self.hidden_sizes), str(self.num_actions)])

    def to_dict(self) -> dict[str, Any]:
        """What ``config.json`` holds (the torch policy's constructor arguments; the input
        scaling only when there is one)."""
        out = {"observation_size": self.observation_size,
               "observation_shape": list(self.observation_shape),
               "num_actions": self.num_actions, "hidden_sizes": list(self.hidden_sizes),
               "convs": [list(c) for c in self.convs]}
        if self.input_scale:
            out.update(input_offset=list(self.input_offset), input_scale=list(self.input_scale))
        return out

    @classmethod
    def from_dict(cls, config: dict[str, Any], source: Path | str = "config.json"
                  ) -> Architecture:
        """The architecture a ``config.json`` describes (one written before frames existed
        has no ``observation_shape`` and no ``convs``: an MLP)."""
        try:
            shape = config.get("observation_shape") or [int(config["observation_size"])]
            arch = cls(tuple(shape), int(config["num_actions"]),
                       tuple(config["hidden_sizes"]), tuple(config.get("convs") or ()),
                       tuple(config.get("input_offset") or ()),
                       tuple(config.get("input_scale") or ()))
            if arch.observation_size != int(config["observation_size"]):
                raise ValueError("observation_size and observation_shape disagree")
            arch.conv_shapes()
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{source} does not describe a policy ({exc})") from None
        return arch


def architecture(cfg) -> Architecture:
    """The network a ``TrainConfig`` trains: the CNN on frames for ``obs`` pixels, a small CNN
    on an env's own images; with ``normalize_obs``, the env's observation range mapped to
    [-1, 1] first."""
    env = spec(cfg.env_id, cfg.obs, cfg.frame_stack)
    offset, scale = (), ()
    if cfg.normalize_obs and cfg.obs == "features":
        if env.observation_range is None:
            raise ConfigError(f"{cfg.env_id} gives no observation range to normalize with")
        low, high = (np.asarray(x, np.float64) for x in env.observation_range)
        offset, scale = tuple((low + high) / 2), tuple((high - low) / 2)
    convs = (CNN if cfg.obs == "pixels" else SMALL_CNN if len(env.observation_shape) == 3
             else ())
    return Architecture(env.observation_shape, env.num_actions, cfg.hidden_sizes, convs,
                        offset, scale)
