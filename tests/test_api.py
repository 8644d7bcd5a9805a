"""The Python API: ``reinforce.train`` writes what ``reinforce train`` writes, and the Run it
returns reads the folder back, evaluates, records and pushes."""

from __future__ import annotations

import json

import numpy as np
import pytest

import reinforce
from reinforce.app.cli import main
from reinforce.app.training import UsageError
from reinforce.checkpoint import CheckpointError, load_weights
from reinforce.config import ConfigError

SMALL = dict(episodes=8, batch_episodes=2, eval_episodes=5)
SMALL_FLAGS = ["--episodes", "8", "--batch-episodes", "2", "--eval-episodes", "5"]


def _eval_without_time(path):
    data = json.loads((path / "eval.json").read_text())
    assert data.pop("wall_seconds") > 0
    return data


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_the_api_and_the_command_line_write_the_same_run(tmp_path, backend, capsys):
    cli = tmp_path / "cli"
    argv = ["train", "--env", "CartPole-v1", "--backend", backend, "--seed", "5", "--seeds",
            "2", "--lr", "0.02,0.05", "--gamma", "0.98", "--out", str(cli), "--quiet",
            *SMALL_FLAGS]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    run = reinforce.train("CartPole-v1", backend, seed=5, seeds=2, lr=[0.02, 0.05],
                          gamma=0.98, out=tmp_path / "api", progress=False, **SMALL)
    assert _eval_without_time(run.path) == _eval_without_time(cli)
    assert json.loads((run.path / "config.json").read_text()) == \
        json.loads((cli / "config.json").read_text())
    for name in ["model.safetensors", *(f"weights/run-{i}.safetensors" for i in range(4))]:
        ours, theirs = load_weights(run.path / name), load_weights(cli / name)
        assert ours.keys() == theirs.keys()
        for key in ours:
            np.testing.assert_array_equal(ours[key], theirs[key], err_msg=f"{name}: {key}")
    # What the command line printed at the end is the run's summary (but for the folder).
    summary = "\n".join(run.summary()[:-1])
    assert summary in printed and len(run.summary()) == 4 + 2


def test_a_run_reads_back_its_scores_and_metrics(tmp_path, capsys):
    run = reinforce.train("CartPole-v1", "torch", seed=3, out=tmp_path / "run", **SMALL)
    err = capsys.readouterr().err
    assert "4/4" in err and "upd" in err  # the progress bar went to stderr
    assert (run.env_id, run.backend, run.best) == ("CartPole-v1", "torch", 0)
    data = json.loads((run.path / "eval.json").read_text())
    assert run.scores == [data["runs"][0]["score"]]
    assert run.results[0].n_episodes == 5
    assert run.metrics["episodic_return"].shape == (1, 4)
    np.testing.assert_array_equal(run.metrics["episodes"], [[2, 4, 6, 8]])
    rows = (run.path / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    last = dict(zip(header, rows[-1].split(","), strict=True))
    assert run.metrics["policy_loss"][0, -1] == pytest.approx(float(last["policy_loss"]))
    assert run.learning_curve.is_file()
    loaded = reinforce.load(run.path)
    assert loaded.scores == run.scores and loaded.summary() == run.summary()
    assert loaded.policy().act(np.zeros(4, np.float32)) in (0, 1)


def test_evaluate_record_and_push_on_a_run(tmp_path, capsys):
    run = reinforce.train("CartPole-v1", "jax", out=tmp_path / "run", progress=False, **SMALL)
    result = run.evaluate(4, seed=1, backend="torch")
    assert main(["evaluate", str(run.path), "--episodes", "4", "--seed", "1", "--backend",
                 "torch"]) == 0
    assert f"score={result.score:.2f} over 4 episodes" in capsys.readouterr().out
    replay = run.record(tmp_path / "replay.mp4", max_frames=20)
    assert replay.path.stat().st_size > 0 and replay.n_frames <= 20
    out = run.push(local_dir=tmp_path / "hub", episodes=3, max_frames=20)
    assert {"README.md", "model.safetensors", "results.json"} <= {p.name for p in out.iterdir()}


def test_bad_settings_are_refused_before_anything_is_written(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(UsageError, match="unknown setting 'learning_rate'"):
        reinforce.train("CartPole-v1", learning_rate=0.1, out=out)
    with pytest.raises(UsageError, match="unknown env"):
        reinforce.train("Pong-v5", out=out)
    with pytest.raises(ConfigError, match="lr"):
        reinforce.train("CartPole-v1", lr="fast", out=out)
    with pytest.raises(ConfigError):
        reinforce.train("CartPole-v1", lr=-1.0, out=out)
    assert not out.exists()
    with pytest.raises(CheckpointError):
        reinforce.load(tmp_path / "nothing")


def test_a_stopped_run_resumes_to_the_uninterrupted_numbers(tmp_path):
    from reinforce.backend import TrainingStopped

    whole = reinforce.train("CartPole-v1", "torch", out=tmp_path / "whole", progress=False,
                            **SMALL)
    with pytest.raises(TrainingStopped):
        reinforce.train("CartPole-v1", "torch", out=tmp_path / "part", progress=False,
                        stop_after=2, **SMALL)
    with pytest.raises(CheckpointError, match="not finished"):
        _ = reinforce.load(tmp_path / "part").scores
    resumed = reinforce.resume(tmp_path / "part", progress=False)
    assert resumed.scores == whole.scores
    np.testing.assert_array_equal(resumed.metrics["policy_loss"], whole.metrics["policy_loss"])
