"""The host-side batch of envs (``reinforce.envs.batched.BatchedEnv``)."""

from __future__ import annotations

import logging

import jax
import numpy as np

from reinforce.envs.batched import BatchedEnv


# Envs compare equal by type, so the jitted batch functions compile once per env class.
def test_second_batched_env_compiles_nothing(caplog):
    first = BatchedEnv("CartPole-v1", 2, 0)
    first.reset()
    first.step(np.zeros(2, np.int32))
    caplog.clear()
    with caplog.at_level(logging.WARNING), jax.log_compiles(True):
        second = BatchedEnv("CartPole-v1", 2, 1)
        second.reset()
        second.step(np.zeros(2, np.int32))
    compiled = [r.getMessage()[:60] for r in caplog.records if "Compiling" in r.getMessage()]
    assert not compiled, compiled
