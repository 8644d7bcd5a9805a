"""How much memory a training needs, estimated before anything is allocated or compiled.

A backend adds up :class:`Part` s (``Backend.memory``): the parameters with their gradients
and Adam moments, the rollout of one update, the envs' states, the evaluation, the metrics it
keeps. Each part lives somewhere (the host's memory, or an accelerator's) and names the option
that shrinks it. :func:`check` compares every place's sum with what it has free, less a
headroom, and refuses a training that would not fit, in one line.

Sizes come from shapes only (``jax.eval_shape`` for an env's state): nothing is allocated.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import jax
import numpy as np

from reinforce.architecture import architecture
from reinforce.checkpoint import format_bytes
from reinforce.config import ConfigError
from reinforce.envs import Environment, make, source

#: The share of a place's free memory a training may plan to use.
HEADROOM = 0.8
#: Above this share of what it may use, the start-up line says how much a training needs.
LARGE = 0.25
#: Bytes of a float32 or int32.
WORD = 4


@dataclass(frozen=True)
class Part:
    """One item of an estimate: what it is, where it lives, its size and the option to lower."""

    what: str
    where: str  # "host" or an accelerator's name, e.g. "cuda:0"
    bytes: float
    option: str
    runs: int = 1  # how many runs' copies ``bytes`` counts (runs side by side on one device)


class TooBigError(ConfigError):
    """A training that would not fit in memory (one line, exit 2)."""


def options(cfg) -> tuple[str, str]:
    """The options that shrink an update's rollout, and its hidden activations."""
    length = "--segment-steps" if cfg.segment_steps else "--max-t"
    return f"--batch-episodes or {length}", f"--hidden, --batch-episodes or {length}"


@dataclass(frozen=True)
class Sizes:
    """What one step and one network of a config take."""

    observation: int  # bytes of one observation
    step: int  # bytes of one rollout step: the observation, action, reward, return, weight, masks
    activations: int  # bytes of one step's activations in the gradient
    params: int  # parameters of the networks (the policy, and the value network if any)
    state: int  # bytes of one env's state


def conv_outputs(conv: tuple[int, int, int], image: tuple[int, ...],
                 out: tuple[int, ...]) -> int:
    """Values a conv layer's gradient keeps per image: its output before and after its ReLU
    (``conv`` is ``(channels, kernel, stride)``, ``image`` its input's shape, ``out`` its
    output's)."""
    return 2 * math.prod(out)


def sizes(cfg, conv_values: Callable[..., int] = conv_outputs) -> Sizes:
    """The :class:`Sizes` of a ``TrainConfig``'s env, observation mode and network; a backend
    whose conv layers keep more than :func:`conv_outputs` passes its own ``conv_values``."""
    arch = architecture(cfg)
    if source(cfg.env_id) == "gymnasium":  # float32 vectors; its envs live in Python objects
        observation, state = arch.observation_size * 4, 0
    else:
        env, params = make(cfg.env_id, cfg.obs, cfg.frame_stack)
        observation = arch.observation_size * np.dtype(env.observation_dtype).itemsize
        state = env_state_bytes(env, params)
    # each dense layer's output before and after its ReLU, each conv layer's values, and
    # frames once more as floats
    shapes = arch.conv_shapes()
    values = 2 * sum(cfg.hidden_sizes) + sum(
        conv_values(conv, image, out) for conv, image, out
        in zip(arch.convs, [arch.observation_shape, *shapes][: len(shapes)], shapes,
               strict=True))
    values += arch.observation_size if arch.convs else 0
    networks = 2 if cfg.baseline == "value" else 1  # the value network: the policy's shape
    return Sizes(observation, observation + 4 * WORD + 2, networks * values * WORD,
                 networks * arch.params_count(), state)


def env_state_bytes(env: Environment, params) -> int:
    """Bytes of one env's state (from its shapes: nothing is allocated)."""
    _, state = jax.eval_shape(env.reset, jax.ShapeDtypeStruct((2,), np.uint32), params)
    return sum(math.prod(leaf.shape) * np.dtype(leaf.dtype).itemsize
               for leaf in jax.tree.leaves(state))


def free_bytes(where: str) -> float | None:
    """Free memory of a place: the host's available memory, or a JAX device's free memory as
    JAX reports it (None when unknown). A backend whose devices JAX does not know passes its
    own function to :class:`Estimate`."""
    if where == "host":
        try:
            for line in Path("/proc/meminfo").read_text().splitlines():
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
        except OSError:
            pass
        try:
            return float(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError, AttributeError):
            return None
    for device in jax.devices():
        if str(device) == where or f"{device.platform}:{device.id}" == where:
            stats = device.memory_stats() or {}
            if "bytes_limit" in stats:
                return float(stats["bytes_limit"] - stats.get("bytes_in_use", 0))
    return None


@dataclass(frozen=True)
class Estimate:
    """The parts of a training's memory, by place, and how to ask a place for its free memory
    (bytes, or None when unknown)."""

    parts: tuple[Part, ...]
    free: Callable[[str], float | None] = free_bytes

    def total(self, where: str) -> float:
        return sum(p.bytes for p in self.parts if p.where == where)

    def places(self) -> list[str]:
        return sorted({p.where for p in self.parts})

    def check(self) -> str | None:
        """Raise :class:`TooBigError` (one line naming the estimate, the limit and the option
        to lower) if a place would not hold its parts; a note for the start-up line when a
        training is large but fits, else None. When one run's share would fit, the option to
        lower is the number of runs trained side by side."""
        notes = []
        for where in self.places():
            need, have = self.total(where), self.free(where)
            if have is None:
                continue
            limit = HEADROOM * have
            parts = sorted((p for p in self.parts if p.where == where), key=lambda p: -p.bytes)
            if need > limit:
                listed = ", ".join(f"{p.what} {format_bytes(p.bytes)}" for p in parts[:3])
                one_run = sum(p.bytes / p.runs for p in parts)
                lower = (parts[0].option if one_run > limit or parts[0].runs == 1
                         else f"the number of runs ({parts[0].runs:,}): --seeds, or fewer "
                              "--lr values")
                raise TooBigError(
                    f"training would need about {format_bytes(need)} of {_place(where)} "
                    f"({listed}), more than the {format_bytes(limit)} it can use "
                    f"({HEADROOM:.0%} of {format_bytes(have)} free); lower {lower}")
            if need > LARGE * limit:
                notes.append(f"about {format_bytes(need)} of the {format_bytes(limit)} of "
                             f"{_place(where)} it can use")
        return "; ".join(notes) or None


def _place(where: str) -> str:
    return "host memory" if where == "host" else f"{where} memory"
