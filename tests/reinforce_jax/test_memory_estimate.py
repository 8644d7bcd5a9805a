"""The JAX backend's memory estimate holds what XLA itself allocates for a chunk of updates
(``memory_analysis`` of the compiled program), without counting it several times over."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from reinforce.app import backends
from reinforce.config import preset
from reinforce_jax import run
from reinforce_jax.algorithm import Hyper


@pytest.mark.parametrize("cfg", [
    preset("fast", "CartPole-v1"),  # episodes, an MLP
    preset("fast", "Pixelcopter-PLE-v0"),  # segments, an MLP
    preset("pixels", "Pixelcopter-PLE-v0"),  # segments, the CNN on frames
    preset("pixels", "Pixelcopter-PLE-v0").replace(segment_steps=0, max_t=500),
], ids=["cartpole", "pixelcopter", "pixels", "pixels-episodes"])
def test_the_estimate_holds_what_xla_allocates_for_a_chunk(cfg, monkeypatch):
    monkeypatch.setattr(run, "_PROGRAMS", {})
    _, init, run_chunk, _ = run._programs(cfg, "cpu")
    hyper = jax.tree.map(lambda x: np.asarray(x)[None], Hyper.of(cfg))
    state = init(np.zeros(1, np.uint32), hyper)
    allocated = run_chunk.lower(state, 2).compile().memory_analysis().temp_size_in_bytes
    estimate = backends.get("jax").memory(cfg, 1, "cpu")
    training = sum(p.bytes for p in estimate.parts
                   if p.what not in ("evaluation", "metrics of every update"))
    assert allocated <= training <= 2 * allocated, (allocated, training)
