"""Where the recorded traces are, the real game's random number generator, and generators
that check the draws of the host rules.

The trace folder of a game is ``tests/data/<game>`` unless ``REINFORCE_REFERENCE_DIR`` is set
(then ``$REINFORCE_REFERENCE_DIR/<game>``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def trace_dir(game: str) -> Path:
    root = os.environ.get("REINFORCE_REFERENCE_DIR")
    base = Path(root) if root else Path(__file__).resolve().parents[1] / "data"
    return base / game


def trace_files(game: str) -> list[Path]:
    return sorted(trace_dir(game).glob("*.npz"))


class GameRng:
    """The real Pixelcopter's generator (a legacy ``RandomState``) behind the two methods the
    host rules call: ``integers(low, high)`` is its ``randint``, ``uniform`` its ``uniform``."""

    def __init__(self, state: np.random.RandomState):
        self.state = state

    def integers(self, low: int, high: int) -> int:
        return self.state.randint(low, high)

    def uniform(self, low: float, high: float, size: int | None = None):
        return self.state.uniform(low, high, size)


def game_rng(arrays: dict[str, np.ndarray], rng_index: int) -> GameRng:
    """The game's generator in its recorded state ``rng_index`` (an index into ``rng_*``)."""
    state = np.random.RandomState()
    state.set_state(("MT19937", arrays["rng_key"][rng_index], int(arrays["rng_pos"][rng_index]),
                     int(arrays["rng_has_gauss"][rng_index]),
                     float(arrays["rng_cached_gaussian"][rng_index])))
    return GameRng(state)


class NoDraws:
    """A generator for steps that must not draw: any draw fails the test."""

    def integers(self, *args, **kwargs):
        raise AssertionError("the step drew an integer where the game drew nothing")

    def uniform(self, *args, **kwargs):
        raise AssertionError("the step drew a float where the game drew nothing")


class CountingRng:
    """``np_random`` (a numpy Generator) that counts the draws: ``integers`` (a block spawn)
    and ``uniform`` (a terrain batch)."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.integers_calls = self.uniform_calls = 0

    @property
    def calls(self) -> int:
        return self.integers_calls + self.uniform_calls

    def integers(self, low: int, high: int) -> int:
        self.integers_calls += 1
        return self.rng.integers(low, high)

    def uniform(self, low: float, high: float, size: int | None = None):
        self.uniform_calls += 1
        return self.rng.uniform(low, high, size)
