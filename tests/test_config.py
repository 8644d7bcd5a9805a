"""The runs of a training: each one's seed and own settings, and the grid a sweep trains."""

from __future__ import annotations

import dataclasses

import pytest

from reinforce.config import SWEEPABLE, ConfigError, RunSpec, TrainConfig, grid, preset


def test_the_settings_a_run_may_have_its_own_value_of():
    assert SWEEPABLE == ("lr", "gamma", "value_coef", "entropy_coef", "max_grad_norm")
    flagged = [f.name for f in dataclasses.fields(TrainConfig) if f.metadata.get("sweep")]
    assert flagged == list(SWEEPABLE)


def test_a_run_spec_keeps_its_settings_in_one_order_and_round_trips():
    spec = RunSpec(3, (("entropy_coef", 0.01), ("lr", 2e-3)))
    assert spec.settings == (("lr", 2e-3), ("entropy_coef", 0.01)) and spec.lr == 2e-3
    assert spec.label() == "seed=3 lr=0.002 entropy_coef=0.01"
    assert spec.to_dict() == {"seed": 3, "lr": 2e-3, "entropy_coef": 0.01}
    assert RunSpec.from_dict(spec.to_dict()) == spec == RunSpec.of(3, lr=2e-3, entropy_coef=0.01)
    base = preset("fast", "Pixelcopter-PLE-v0")
    cfg = spec.config(base)
    assert (cfg.lr, cfg.entropy_coef, cfg.gamma) == (2e-3, 0.01, base.gamma)


@pytest.mark.parametrize("settings", [(), (("gamma", 0.9),), (("lr", 1.0), ("hidden", 3.0)),
                                      (("lr", 1.0), ("lr", 2.0))])
def test_a_run_spec_refuses_other_settings(settings):
    with pytest.raises(ConfigError, match="a run's own settings are"):
        RunSpec(0, settings)


def test_the_grid_trains_every_combination_with_every_seed():
    base = preset("fast", "CartPole-v1")
    cfg, runs = grid(base, [0, 1], {"entropy_coef": [0.0, 0.1], "lr": [0.01, 0.02]})
    assert cfg == base.replace(lr=0.01, entropy_coef=0.0)
    assert [(r.seed, r.lr, dict(r.settings)["entropy_coef"]) for r in runs] == [
        (s, lr, e) for lr in (0.01, 0.02) for e in (0.0, 0.1) for s in (0, 1)]
    _, plain = grid(base, [5], {})
    assert plain == [RunSpec.of(5, lr=base.lr)]


def test_the_grid_checks_every_combination():
    base = preset("fast", "Pixelcopter-PLE-v0")  # segments: gamma must stay below 1
    with pytest.raises(ConfigError, match="needs gamma < 1"):
        grid(base, [0], {"gamma": [0.9, 1.0]})
    with pytest.raises(ConfigError, match="hidden_sizes cannot vary between runs"):
        grid(base, [0], {"hidden_sizes": [1.0]})
