"""The command line end to end: a small training run, re-evaluation, and bad input."""

import json
import subprocess
import sys

import pytest

from reinforce.cli import main

SMALL = ["--env", "CartPole-v1", "--episodes", "8", "--batch-episodes", "2", "--eval-episodes",
         "5", "--quiet"]


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_train_writes_run_folder_and_evaluate_reads_it(tmp_path, backend, capsys):
    out = tmp_path / "run"
    assert main(["train", "--backend", backend, "--seed", "3", "--out", str(out), *SMALL]) == 0
    printed = capsys.readouterr().out
    assert "score=" in printed and "certification: score >= 350" in printed
    for name in ("config.json", "model.safetensors", "metrics.csv", "learning_curve.png"):
        assert (out / name).stat().st_size > 0, name
    data = json.loads((out / "eval.json").read_text())
    assert data["env_id"] == "CartPole-v1" and data["backend"] == backend
    assert data["n_evaluation_episodes"] == 5 and data["wall_seconds"] > 0
    (run,) = data["runs"]
    assert run["seed"] == 3 and run["lr"] == 0.05
    assert run["score"] == pytest.approx(run["mean_reward"] - run["std_reward"])
    assert len((out / "metrics.csv").read_text().splitlines()) == 1 + 8 // 2
    for other in ("jax", "torch"):
        assert main(["evaluate", str(out), "--episodes", "3", "--backend", other]) == 0
        assert "over 3 episodes" in capsys.readouterr().out


def test_several_seeds_and_lrs_give_one_entry_each_and_a_best(tmp_path):
    out = tmp_path / "sweep"
    argv = ["train", "--seeds", "2", "--lr", "0.01,0.03", "--out", str(out), *SMALL]
    assert main(argv) == 0
    data = json.loads((out / "eval.json").read_text())
    pairs = [(r["seed"], r["lr"]) for r in data["runs"]]
    assert pairs == [(0, 0.01), (1, 0.01), (0, 0.03), (1, 0.03)]
    assert sum(r["best"] for r in data["runs"]) == 1
    assert len(list((out / "weights").glob("run-*.safetensors"))) == 4


BAD = [
    (["train", "--env", "NoSuchEnv-v0"], "unknown env"),
    (["train", "--backend", "tensorflow"], "unknown backend"),
    (["train", "--lr", "-0.1"], "learning rate must be a positive number"),
    (["train", "--lr", "abc"], "expected numbers"),
    (["train", "--gamma", "1.5"], "gamma must be in [0, 1]"),
    (["train", "--gamma", "-0.1"], "gamma must be in [0, 1]"),
    (["train", "--episodes", "0"], "must be at least 1"),
    (["train", "--hidden", "0"], "hidden sizes must be positive"),
    (["train", "--preset", "nope"], "unknown preset"),
    (["evaluate", "/nonexistent/run"], "no run folder"),
    (["frobnicate"], "invalid choice"),
]


@pytest.mark.parametrize(("argv", "message"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_one_line_exit_2(tmp_path, argv, message):
    out = tmp_path / "untouched"
    if argv[0] == "train":
        argv = [*argv, "--out", str(out)]
    proc = subprocess.run([sys.executable, "-m", "reinforce", *argv], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith("reinforce: error: ") and message in lines[0], lines[0]
    assert not out.exists()


def test_existing_run_folder_is_never_overwritten(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "eval.json").write_text("precious")
    assert main(["train", "--out", str(out), *SMALL]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (out / "eval.json").read_text() == "precious"
