"""The CPU compiler options: short runs are compiled for a quick start with XLA's older code
generator, long ones for speed, and both give the same episodes."""

from __future__ import annotations

import numpy as np

from reinforce.config import grid, preset
from reinforce_jax import devices, run


def test_short_programs_ask_for_the_older_code_generator():
    assert devices._has_older_codegen()  # this jaxlib has it (the README's numbers use it)
    short = devices.compiler_options("cpu", devices.QUICK_START_STEPS)
    assert short == {"xla_backend_optimization_level": 1, **devices._OLDER_CODEGEN}
    for steps in (devices.QUICK_START_STEPS + 1, None):
        assert devices.compiler_options("cpu", steps) == {"xla_backend_optimization_level": 1}
    assert devices.compiler_options("gpu", 1) is None


def test_a_jaxlib_without_the_option_compiles_as_usual(monkeypatch):
    monkeypatch.setattr(devices, "_OLDER_CODEGEN", {"xla_cpu_no_such_option": False})
    devices._has_older_codegen.cache_clear()
    try:
        assert devices.compiler_options("cpu", 1) == {"xla_backend_optimization_level": 1}
    finally:
        devices._has_older_codegen.cache_clear()


def test_the_fast_cartpole_preset_is_a_quick_start_and_pixelcopter_is_not():
    def steps(env_id):
        cfg = preset("fast", env_id)
        return cfg.n_updates * run.Trainer(cfg).steps_per_update()

    assert steps("CartPole-v1") <= devices.QUICK_START_STEPS < steps("Pixelcopter-PLE-v0")


def test_the_run_asks_by_its_own_length_and_the_evaluation_by_its_own(monkeypatch):
    asked = []

    def spy(platform, steps=None):
        asked.append((platform, steps))
        return devices.compiler_options(platform, steps)

    monkeypatch.setattr(run, "compiler_options", spy)
    monkeypatch.setattr(run, "_PROGRAMS", {})
    cfg = preset("fast", "Pixelcopter-PLE-v0")
    trainer = run._programs(cfg, "cpu")[0]
    assert asked == [("cpu", cfg.n_updates * cfg.batch_episodes * cfg.segment_steps),
                     ("cpu", cfg.n_evaluation_episodes * trainer.horizon)]


def test_both_code_generators_play_the_same_episodes(monkeypatch):
    cfg = preset("fast", "CartPole-v1").replace(n_training_episodes=32 * 6, chunk_updates=3,
                                                n_evaluation_episodes=8)
    results = []
    for bound in (devices.QUICK_START_STEPS, 0):  # the quick start, then compiled for speed
        monkeypatch.setattr(devices, "QUICK_START_STEPS", bound)
        monkeypatch.setattr(run, "_PROGRAMS", {})
        results.append(run.train_many(cfg, grid(cfg, [0, 1], {})[1]))
    quick, fast = results
    np.testing.assert_array_equal(quick.metrics.episodic_return, fast.metrics.episodic_return)
    np.testing.assert_array_equal(quick.eval_returns, fast.eval_returns)
    for a, b in zip(quick.weights, fast.weights, strict=True):
        for name in a:
            np.testing.assert_allclose(a[name], b[name], rtol=1e-5, atol=1e-6)
