"""Runs that survive preemption and a second process: SIGTERM and SIGHUP stop as Ctrl-C does
(checkpoint, exit 128 + the signal), one process writes to a run folder at a time (an OS lock
that dies with its process), and ``--resume-if-stopped`` continues or starts with one
unchanged command."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from run_folders import error_line

from reinforce.app.cli import main
from reinforce.app.lock import WRITER_NAME, run_folder_lock
from reinforce.app.runs import TIMING_COLUMNS
from reinforce.checkpoint import CHECKPOINT_DIR, load_arrays

#: Long enough to be stopped on the way, short enough to train to the end in a test: JAX in
#: chunks of 10 updates; torch one update at a time.
RUNS = {
    "jax": ["--backend", "jax", "--episodes", "480", "--batch-episodes", "8", "--seeds", "2",
            "--chunk-updates", "10"],
    "torch": ["--backend", "torch", "--episodes", "400", "--batch-episodes", "2", "--max-t",
              "60"],
}
COMMON = ["--env", "CartPole-v1", "--eval-episodes", "5", "--quiet"]


def _progress(run: Path) -> dict:
    return json.loads((run / CHECKPOINT_DIR / "progress.json").read_text())


def _results(run: Path) -> tuple:
    """What must be equal between two trainings of the same numbers: the evaluation, the
    metrics but their timing columns, every weight."""
    evaluation = json.loads((run / "eval.json").read_text())
    evaluation.pop("wall_seconds")
    rows = [line.split(",") for line in (run / "metrics.csv").read_text().splitlines()]
    keep = [i for i, name in enumerate(rows[0]) if name not in TIMING_COLUMNS]
    files = [run / "model.safetensors", *sorted((run / "weights").glob("*.safetensors"))]
    weights = {f"{f.name}/{k}": v.tobytes() for f in files if f.exists()
               for k, v in load_arrays(f)[0].items()}
    return evaluation, [[row[i] for i in keep] for row in rows], weights


def _start(argv: list[str], cwd: Path | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "reinforce", *map(str, argv)], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _when_training(proc: subprocess.Popen, run: Path) -> None:
    """Wait for the first checkpoint: training has started (the signal handlers are in)."""
    deadline = time.monotonic() + 120
    while not (run / CHECKPOINT_DIR / "progress.json").exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "training never started"
        time.sleep(0.05)


def _run(argv: list[str]) -> None:
    """A command in a fresh process: the same devices for every training a test compares
    (a test process may have started JAX with another number of them)."""
    proc = subprocess.run([sys.executable, "-m", "reinforce", *map(str, argv)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]


def _signal_mid_run(argv: list[str], run: Path, signum: int) -> tuple[int, str]:
    proc = _start(argv)
    try:
        _when_training(proc, run)
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=300)
    finally:
        proc.kill()
    return proc.returncode, err


@pytest.mark.parametrize(("backend", "signum"), [("jax", signal.SIGTERM),
                                                 ("torch", signal.SIGHUP)],
                         ids=["jax-SIGTERM", "torch-SIGHUP"])
def test_a_signal_saves_a_checkpoint_and_the_run_resumes_to_the_uninterrupted_numbers(
        backend, signum, tmp_path):
    argv = ["train", *RUNS[backend], *COMMON]
    straight, run = tmp_path / "straight", tmp_path / "run"
    _run([*argv, "--out", straight])
    code, err = _signal_mid_run([*argv, "--out", run], run, signum)
    assert code == 128 + signum, err
    assert "Traceback" not in err
    name = {signal.SIGTERM: "SIGTERM", signal.SIGHUP: "SIGHUP"}[signum]
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"reinforce: interrupted by {name} at update "), err
    progress = _progress(run)
    assert progress["status"] == "interrupted"
    total = progress["total_updates"]
    assert progress["total_updates_done"] < total
    assert f"at update {progress['total_updates_done']}/" in last  # the update reached
    assert not (run / "eval.json").exists()
    _run(["train", "--resume", run, "--quiet"])
    assert _results(run) == _results(straight)


def test_a_second_writer_is_refused_and_a_reader_is_not(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", *RUNS["torch"], *COMMON, "--episodes", "8", "--out", str(run)]) == 0
    capsys.readouterr()
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != WRITER_NAME}
    with run_folder_lock(run, "a test holding the lock"):
        for argv in (["train", "--resume", run], ["push", run, "--local-dir", tmp_path / "hub"],
                     ["record", run], ["train", *RUNS["torch"], *COMMON, "--episodes", "8",
                                       "--out", run, "--resume-if-stopped"]):
            code = main([str(a) for a in argv])
            line = error_line(capsys.readouterr().err)
            assert code == 2, argv
            assert f"run folder {run} is in use by process {os.getpid()} on " in line, line
            assert "(a test holding the lock, started 20" in line
        assert main(["evaluate", str(run), "--episodes", "3"]) == 0  # reading needs no lock
    after = {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != WRITER_NAME}
    assert after == before and not (tmp_path / "hub").exists()
    assert main(["record", str(run), "--max-frames", "10"]) == 0  # the lock is free again


def test_a_folder_whose_writer_was_killed_is_writable_again(tmp_path):
    argv = ["train", *RUNS["jax"], *COMMON]
    straight, run = tmp_path / "straight", tmp_path / "run"
    _run([*argv, "--out", straight])
    proc = _start([*argv, "--out", run])
    try:
        _when_training(proc, run)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert _progress(run)["status"] == "running"  # it never got to say otherwise
    _run(["train", "--resume", run, "--quiet"])
    assert _results(run) == _results(straight)


def test_two_trainings_racing_for_one_new_folder(tmp_path):
    argv = ["train", *RUNS["torch"], *COMMON, "--episodes", "40", "--out", tmp_path / "run"]
    procs = [_start(argv), _start(argv)]
    outs = [p.communicate(timeout=300) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 2], outs
    loser = outs[[p.returncode for p in procs].index(2)][1]
    line = error_line(loser)
    assert ("is in use by process" in line
            or "already exists and is not empty" in line), loser
    assert len(json.loads((tmp_path / "run" / "eval.json").read_text())["runs"]) == 1


def test_resume_if_stopped_continues_or_starts_with_one_command(tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["train", *RUNS["torch"], *COMMON, "--out", str(run), "--resume-if-stopped"]
    straight = tmp_path / "straight"
    assert main(["train", *RUNS["torch"], *COMMON, "--out", str(straight)]) == 0
    code, err = _signal_mid_run(argv, run, signal.SIGTERM)  # a preempted job
    assert code == 143, err
    assert main(argv) == 0  # the same command, started again: it continues
    assert "resuming 1 run(s)" in capsys.readouterr().err
    assert _results(run) == _results(straight)
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != WRITER_NAME}
    assert main(argv) == 0  # finished: nothing to do
    assert "already finished" in capsys.readouterr().err
    assert before == {p: p.read_bytes() for p in run.rglob("*")
                      if p.is_file() and p.name != WRITER_NAME}
    code = main([*argv, "--lr", "0.01"])  # other settings: refused
    assert code == 2
    assert "holds a training with other settings (runs, train.lr differ)" in error_line(
        capsys.readouterr().err)
    assert main(["train", *COMMON, "--resume-if-stopped"]) == 2
    assert "needs --out DIR" in error_line(capsys.readouterr().err)
