"""The command line end to end: a small training run, re-evaluation, and bad input."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from run_folders import error_line, run_main

from reinforce.app.cli import main
from reinforce.config import preset

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
    assert run["seed"] == 3 and run["lr"] == preset("fast", "CartPole-v1").lr
    assert run["score"] == pytest.approx(run["mean_reward"] - run["std_reward"])
    assert len((out / "metrics.csv").read_text().splitlines()) == 1 + 8 // 2
    for other in ("jax", "torch"):
        assert main(["evaluate", str(out), "--episodes", "3", "--backend", other]) == 0
        assert "over 3 episodes" in capsys.readouterr().out


def test_torch_trains_and_evaluates_on_the_device_asked_for(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--backend", "torch", "--device", "cpu", "--out", str(out), *SMALL]
    assert main(argv) == 0
    assert "with torch on cpu (" in capsys.readouterr().err
    assert main(["evaluate", str(out), "--episodes", "3", "--device", "cpu"]) == 0
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


def test_a_sweep_trains_every_combination_of_the_settings_given_as_lists(tmp_path):
    out = tmp_path / "sweep"
    argv = ["train", "--seeds", "2", "--gamma", "0.9,0.99", "--entropy-coef", "0,0.1",
            "--max-grad-norm", "1", "--out", str(out), *SMALL]
    assert main(argv) == 0
    runs = json.loads((out / "eval.json").read_text())["runs"]
    assert [(r["seed"], r["gamma"], r["entropy_coef"]) for r in runs] == [
        (s, g, e) for g in (0.9, 0.99) for e in (0.0, 0.1) for s in (0, 1)]
    assert all("max_grad_norm" not in r for r in runs)  # one value: the config's, not swept
    config = json.loads((out / "config.json").read_text())
    assert config["runs"][0] == {"seed": 0, "lr": config["train"]["lr"], "gamma": 0.9,
                                 "entropy_coef": 0.0}
    assert config["train"]["max_grad_norm"] == 1.0 and config["train"]["gamma"] == 0.9
    with open(out / "metrics.csv") as f:
        header = f.readline().strip().split(",")
    assert header[:6] == ["run", "seed", "lr", "gamma", "entropy_coef", "update"]
    assert {"entropy", "value_loss"} <= set(header)


#: The rows that ask for CUDA where there is none (all of CI).
NEEDS_NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")

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
    (["train", "--baseline", "mean"], "unknown baseline 'mean'; choose one of none, time, value"),
    (["train", "--entropy-coef", "-0.01"], "entropy_coef must be a number in [0, 1000)"),
    (["train", "--entropy-coef", "0,5000"], "entropy_coef must be a number in [0, 1000)"),
    (["train", "--value-coef", "inf"], "value_coef must be a number in [0, 1000)"),
    (["train", "--max-grad-norm", "-1"], "max_grad_norm must be a number in [0, inf)"),
    (["train", "--max-grad-norm", "nan"], "max_grad_norm must be a number in [0, inf)"),
    (["train", "--gamma", "0.9,1.5"], "gamma must be in [0, 1]"),
    (["train", "--env", "Pixelcopter-PLE-v0", "--gamma", "0.95,1"], "needs gamma < 1"),
    (["evaluate", "/nonexistent/run"], "no run folder"),
    (["frobnicate"], "invalid choice"),
]


@pytest.mark.parametrize(("argv", "message"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_one_line_exit_2(tmp_path, argv, message):
    out = tmp_path / "untouched"
    if argv[0] == "train":
        argv = [*argv, "--out", str(out)]
    code, _, err = run_main(argv)  # in this process; test_bad_input_in_a_real_process: a real one
    assert code == 2, err
    line = error_line(err)
    assert message in line, line
    assert not out.exists()


def test_existing_run_folder_is_never_overwritten(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "eval.json").write_text("precious")
    assert main(["train", "--out", str(out), *SMALL]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (out / "eval.json").read_text() == "precious"


# --- bad input, table-driven: one line on stderr, exit code 2, every run folder untouched ----

#: ``{run}`` is a torch run stopped after one update (config.json + checkpoint), ``{bare}`` a
#: folder with a config.json only, ``{empty}`` an empty folder, ``{file}`` a regular file,
#: ``{readonly}`` a folder without write permission.
BAD_MORE = [
    # bad numbers
    (["train", "--batch-episodes", "0"], "batch_episodes must be at least 1"),
    (["train", "--max-t", "-5"], "max_t must be at least 1"),
    (["train", "--eval-episodes", "0"], "n_evaluation_episodes must be at least 1"),
    (["train", "--episodes", "1e3"], "invalid int value"),
    (["train", "--episodes", "4", "--batch-episodes", "8"], "exceeds n_training_episodes"),
    (["train", "--seeds", "0"], "must be at least 1"),
    (["train", "--seeds", "two"], "expected an integer"),
    (["train", "--seed", "-1"], "must be in [0, 2**31)"),
    (["train", "--lr", "1e-3,abc"], "expected numbers separated by commas"),
    (["train", "--lr", "nan"], "learning rate must be a positive number"),
    (["train", "--lr", "inf"], "learning rate must be a positive number"),
    (["train", "--lr-warmup", "-1"], "lr_warmup must be 0 or more updates, got -1"),
    (["train", "--lr-warmup", "60"],
     "lr_warmup (60 updates) must be shorter than the training (60 updates)"),
    (["train", "--lr", "0.01,0"], "learning rate must be a positive number"),
    (["train", "--gamma", "nan"], "gamma must be in [0, 1]"),
    (["train", "--hidden", "16,x"], "expected integers"),
    (["train", "--hidden", ","], "hidden sizes must be positive"),
    (["train", "--checkpoint-every", "-1"], "must be a number of seconds >= 0"),
    (["train", "--checkpoint-every", "nan"], "must be a number of seconds >= 0"),
    (["train", "--stop-after", "0"], "must be at least 1"),
    (["train", "--segment-steps", "100"], "segment_steps must be 0 or a positive multiple of 64"),
    (["train", "--segment-steps", "1024"], "segment_steps needs gamma < 1"),
    (["train", "--segment-steps", "1024", "--gamma", "0.99"], "baseline 'time' needs complete"),
    (["train", "--env", "Pixelcopter-PLE-v0", "--segment-steps", "64"], "use at least 192"),
    (["evaluate", "{run}", "--episodes", "0"], "must be at least 1"),
    (["evaluate", "{run}", "--backend", "tf"], "unknown backend"),
    # output folders
    (["train", "--out", "{run}"], "already exists and is not empty"),
    (["train", "--out", "{file}/run"], "cannot write to output folder"),
    (["train", "--out", "{readonly}/run"], "cannot write to output folder"),
    # conflicting flags: --resume takes every setting from the run's config.json
    (["train", "--resume", "{run}", "--env", "CartPole-v1"], "drop --env"),
    (["train", "--resume", "{run}", "--lr", "0.1"], "drop --lr"),
    (["train", "--resume", "{run}", "--seed", "0"], "drop --seed"),
    (["train", "--resume", "{run}", "--baseline", "none"], "drop --baseline"),
    (["train", "--resume", "{run}", "--segment-steps", "128"], "drop --segment-steps"),
    (["train", "--resume", "{run}", "--seeds", "2", "--backend", "torch"],
     "drop --backend, --seeds"),
    (["train", "--resume", "{run}", "--out", "{empty}"], "drop --out"),
    (["train", "--resume", "{run}", "--episodes", "8", "--preset", "notebook"],
     "drop --preset, --episodes"),
    # several processes (jax.distributed): checked before any process is contacted
    (["train", "--num-processes", "2"], "--num-processes needs --coordinator HOST:PORT"),
    (["train", "--num-processes", "2", "--process-id", "1"],
     "--num-processes and --process-id need --coordinator"),
    (["train", "--coordinator", "localhost:1"], "--coordinator needs --num-processes N and"),
    (["train", "--coordinator", "localhost:1", "--num-processes", "2", "--process-id", "2"],
     "--process-id must be in 0..1, got 2"),
    (["train", "--coordinator", "localhost:1", "--num-processes", "2", "--process-id", "0",
      "--backend", "torch"], "train only with --backend jax"),
    (["train", "--resume", "{run}", "--coordinator", "localhost:1", "--num-processes", "2",
      "--process-id", "0"], "--resume continues a run in one process"),
    # missing or unusable run folders
    (["train", "--resume"], "expected one argument"),
    (["train", "--resume", "/nonexistent/run"], "no run folder at /nonexistent/run"),
    (["train", "--resume", "{file}"], "no run folder"),
    (["train", "--resume", "{empty}"], "missing file"),
    (["train", "--resume", "{bare}"], "has no checkpoint to resume"),
    (["evaluate", "{file}"], "no run folder"),
    (["evaluate", "{empty}"], "missing file"),
    (["evaluate", "{run}"], "has not finished training"),
    # devices
    (["train", "--device", "gpu"], "argument --device: invalid choice: 'gpu'"),
    (["evaluate", "{run}", "--device", "tpu"], "argument --device: invalid choice: 'tpu'"),
    (["record", "{run}", "--device", "mps"], "argument --device: invalid choice: 'mps'"),
    pytest.param(["train", "--backend", "torch", "--device", "cuda"],
                 "--device cuda: torch sees no CUDA device", marks=NEEDS_NO_CUDA),
    pytest.param(["train", "--resume", "{run}", "--device", "cuda"],
                 "--device cuda: torch sees no CUDA device", marks=NEEDS_NO_CUDA),
    pytest.param(["train", "--device", "cuda"], "--device cuda: JAX sees no such device",
                 marks=NEEDS_NO_CUDA),
]


@pytest.fixture(scope="module")
def existing(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("existing")
    run = root / "run"
    assert main(["train", "--backend", "torch", "--episodes", "8", "--batch-episodes", "4",
                 "--eval-episodes", "2", "--quiet", "--stop-after", "1", "--out", str(run)]) == 0
    (root / "bare").mkdir()
    (root / "bare" / "config.json").write_bytes((run / "config.json").read_bytes())
    (root / "empty").mkdir()
    (root / "file").write_text("not a folder")
    (root / "readonly").mkdir()
    (root / "readonly").chmod(0o500)
    return {name: root / name for name in ("run", "bare", "empty", "file", "readonly")}


def _tree_hash(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        digest.update(str(path.relative_to(root)).encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _fill(argv: list[str], existing: dict[str, Path]) -> list[str]:
    return [a.format(**{k: str(v) for k, v in existing.items()}) for a in argv]


def _row_id(row) -> str:
    argv = row.values[0] if hasattr(row, "values") else row[0]
    return " ".join(argv)


@pytest.mark.parametrize(("argv", "message"), BAD + BAD_MORE,
                         ids=[_row_id(row) for row in BAD + BAD_MORE])
def test_bad_input_table(tmp_path, existing, capsys, argv, message):
    if "{readonly}" in " ".join(argv) and os.access(existing["readonly"], os.W_OK):
        pytest.skip("running as root: a read-only folder is still writable")
    argv = _fill(argv, existing)
    out = tmp_path / "untouched"
    if argv[0] == "train" and "--out" not in argv and "--resume" not in argv:
        argv = [*argv, "--out", str(out)]
    root = existing["run"].parent
    before = _tree_hash(root)
    capsys.readouterr()
    assert main(argv) == 2
    stdout, stderr = capsys.readouterr()
    line = error_line(stderr)
    assert message in line, line
    assert stdout == ""
    assert not out.exists()
    assert _tree_hash(root) == before, "an existing run folder was changed"


def test_bad_input_in_a_real_process(existing):
    """The exit code and stderr of ``python -m reinforce`` itself, for a conflicting --resume."""
    argv = ["train", "--resume", str(existing["run"]), "--lr", "0.1"]
    before = _tree_hash(existing["run"].parent)
    proc = subprocess.run([sys.executable, "-m", "reinforce", *argv], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == ("reinforce: error: --resume continues a run with the "
                                   "settings in its config.json; drop --lr")
    assert _tree_hash(existing["run"].parent) == before


def test_unwritable_output_folder_even_as_root(tmp_path, capsys, monkeypatch):
    """The write probe failing (permissions, read-only disk) is one line and exit code 2."""
    def refuse(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "write_text", refuse)
    out = tmp_path / "out"
    assert main(["train", "--out", str(out), *SMALL]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"reinforce: error: cannot write to output folder {out}: Permission denied"]


# --- the training options come from TrainConfig -------------------------------------------


def test_every_config_field_is_an_option_with_its_help():
    import dataclasses

    from reinforce.app.cli import build_parser
    from reinforce.config import TrainConfig, flag_of

    train = build_parser()._subparsers._group_actions[0].choices["train"]
    options = {flag: action for action in train._actions for flag in action.option_strings}
    for f in dataclasses.fields(TrainConfig):
        action = options[flag_of(f)]
        assert action.dest == f.name and action.help == f.metadata["help"], f.name


def test_settings_without_an_option_before_are_settable(tmp_path):
    from reinforce.app.runs import RunFolder

    out = tmp_path / "run"
    argv = ["train", "--out", str(out), "--no-lr-decay", "--no-normalize-returns",
            "--chunk-updates", "3", "--stop-after", "1", *SMALL]
    assert main(argv) == 0
    cfg = RunFolder.load(out).cfg
    assert (cfg.lr_decay, cfg.normalize_returns, cfg.chunk_updates) == (False, False, 3)
    assert preset("fast", "CartPole-v1").lr_decay  # the preset said otherwise


def test_resume_refuses_the_new_options_too(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), "--stop-after", "1", *SMALL]) == 0
    capsys.readouterr()
    assert main(["train", "--resume", str(out), "--chunk-updates", "2", "--lr-decay"]) == 2
    line = error_line(capsys.readouterr().err)
    assert line.endswith("drop --lr-decay, --chunk-updates"), line
