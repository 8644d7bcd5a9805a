"""``python -m benchmarks.crashes``: the crash causes of Pixelcopter agents."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from benchmarks import crashes
from reinforce.envs import pixelcopter as pc
from tests.run_folders import write_run

ENV = pc.Pixelcopter()
PARAMS = ENV.default_params()
CAUSE = {name: i for i, name in enumerate(crashes.CAUSES)}


def fresh_state(seed: int = 0) -> pc.PixelcopterState:
    return ENV.reset(jax.random.key(seed), PARAMS)[1]


def test_a_block_in_the_way_is_a_block_crash():
    state = fresh_state()
    # A block centred 2 px ahead of the player, at its height: hit on the next frame.
    state = state.replace(block_x=state.block_x.at[0].set(PARAMS.player_x + 2.0),
                          block_y=state.block_y.at[0].set(24))
    causes = np.asarray(crashes.crash_causes(state, pc.Pixelcopter.NOOP, PARAMS))
    assert causes[CAUSE["block"]]
    assert not causes[[CAUSE["ceiling"], CAUSE["floor"], CAUSE["safe band"]]].any()
    assert ENV.step(jax.random.key(1), state, pc.Pixelcopter.NOOP, PARAMS)[3]  # the env agrees


def test_a_column_the_observation_does_not_show_is_an_unseen_crash():
    state = fresh_state()
    seen = int(pc.observed_column(state, PARAMS))
    # After reset the player (x 15-17) overlaps the columns centred at 14 (shown) and 18; one
    # frame later only the one at 18, the next in list order. Give it a low ceiling.
    assert float(state.terrain_x[seen]) == 14.0 and float(state.terrain_x[seen + 1]) == 18.0
    state = state.replace(terrain_y=state.terrain_y.at[seen + 1].set(36))
    causes = np.asarray(crashes.crash_causes(state, pc.Pixelcopter.NOOP, PARAMS))
    assert causes[CAUSE["ceiling"]] and causes[CAUSE["unseen column"]]
    assert not causes[CAUSE["block"]] and not causes[CAUSE["floor"]]
    # Moved onto the shown column (index `seen`, first in list order), the same low ceiling
    # is a crash the observation showed coming.
    shown = fresh_state()
    shown = shown.replace(terrain_x=shown.terrain_x.at[seen].set(18.0),
                          terrain_y=shown.terrain_y.at[seen].set(36))
    assert int(pc.observed_column(shown, PARAMS)) == seen
    causes = np.asarray(crashes.crash_causes(shown, pc.Pixelcopter.NOOP, PARAMS))
    assert causes[CAUSE["ceiling"]] and not causes[CAUSE["unseen column"]]


@pytest.mark.parametrize("offset, open_", [(10.0, False), (-5.0, False), (20.0, True),
                                           (-7.0, True)])
def test_open_space_has_no_block_from_6_px_behind_to_16_ahead(offset, open_):
    state = fresh_state()
    state = state.replace(block_x=state.block_x.at[0].set(PARAMS.player_x + offset))
    assert bool(crashes.in_open_space(state, PARAMS)) is open_
    # an invalid slot does not count, wherever it is
    state = state.replace(block_valid=state.block_valid.at[0].set(False))
    assert bool(crashes.in_open_space(state, PARAMS))


@pytest.mark.parametrize("action, cause", [(pc.Pixelcopter.UP, "ceiling"),
                                           (pc.Pixelcopter.NOOP, "floor")])
def test_holding_one_action_crashes_every_episode_the_same_way(action, cause):
    result = crashes.play(lambda obs, key: jnp.asarray(action), jax.random.key(0), 16, 300)
    s = crashes.summarize(result)
    assert s["crashed"] == 16 and s["episodes"] == 16
    assert s["causes"][cause] == 1.0
    assert s["causes"]["block"] == 0.0
    assert 0 < s["mean_length"] < 300
    assert s["crash_rate"] == pytest.approx(16 / result["length"].sum())


def test_every_crash_of_a_random_policy_has_a_cause_and_matches_the_env():
    result = crashes.play(lambda obs, key: jax.random.bernoulli(key, 0.1).astype(jnp.int32),
                          jax.random.key(3), 32, 400)
    crashed, causes = result["crashed"], result["causes"]
    assert crashed.sum() > 0
    direct = causes[:, [CAUSE["block"], CAUSE["ceiling"], CAUSE["floor"], CAUSE["safe band"]]]
    assert direct[crashed].any(axis=1).all()  # every crash has a cause
    assert not causes[~crashed].any()  # episodes that did not crash have none
    # an unseen column is a ceiling or floor crash
    unseen = causes[:, CAUSE["unseen column"]]
    assert (causes[unseen][:, [CAUSE["ceiling"], CAUSE["floor"]]].any(axis=1)).all()
    assert (result["length"][~crashed] == 400).all()
    s = crashes.summarize(result)
    near = list(s["near"].values())
    assert 0.0 <= near[0] <= near[1] <= near[2] <= 1.0  # margins 3 <= 5 <= 7 px
    near_open = list(s["near_open"].values())
    assert 0.0 <= near_open[0] <= near_open[1] <= near_open[2] <= 1.0
    # open-space counts are a part of all counts
    assert (result["open"] <= result["length"]).all()
    assert (result["near_open"] <= result["near"]).all()
    assert not result["open_crash"][~crashed].any()
    assert 0.0 < s["open"] <= 1.0 and 0.0 <= s["open_crashes"] <= 1.0


def test_cli_reports_every_run_of_a_pixelcopter_folder(tmp_path, capsys):
    write_run(tmp_path / "pix", "Pixelcopter-PLE-v0", "jax", seed=3)
    assert crashes.main([str(tmp_path / "pix"), "--episodes", "4", "--max-t", "100"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("run 0 (seed 3, lr ")
    assert "episodes crashed before 100 frames" in out and "crash causes: block" in out
    assert "in open space (no block from 6 px behind to 16 px ahead)" in out


@pytest.mark.parametrize("make, argv, message", [
    (lambda p: write_run(p, "CartPole-v1", "torch"), [], "crash causes are reported for"),
    (lambda p: None, [], "no run folder at"),
])
def test_cli_refuses_what_it_cannot_report(tmp_path, capsys, make, argv, message):
    make(tmp_path / "run")
    assert crashes.main([str(tmp_path / "run"), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("benchmarks.crashes: error: ")
    assert message in err[0]


@pytest.mark.parametrize("argv, message", [
    (["--episodes", "0"], "argument --episodes: must be at least 1, got 0"),
    (["--max-t", "x"], "argument --max-t: expected an integer, got 'x'"),
    ([], "the following arguments are required: run_dir"),
])
def test_cli_refuses_bad_arguments_in_one_line(tmp_path, capsys, argv, message):
    argv = [str(tmp_path), *argv] if argv else argv
    assert crashes.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"benchmarks.crashes: error: {message}"]
