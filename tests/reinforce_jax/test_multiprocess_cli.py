"""``reinforce train --coordinator``: two processes on this machine, joined by
``jax.distributed``, train the runs of one process and write one run folder."""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np

from reinforce.app.runs import TIMING_COLUMNS

ARGS = ["train", "--env", "CartPole-v1", "--seeds", "3", "--episodes", "64", "--batch-episodes",
        "4", "--eval-episodes", "8", "--quiet"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _env() -> dict[str, str]:
    return dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2",
                JAX_PLATFORMS="cpu")


def _metrics(folder) -> dict[str, np.ndarray]:
    with open(folder / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return {k: np.array([float(r[k]) for r in rows]) for k in rows[0]
            if k not in TIMING_COLUMNS}


def _two_processes(out, extra=([], []), started=None) -> tuple[list, list[tuple[str, str]]]:
    """``reinforce train`` with ARGS in processes 0 and 1 joined on this machine (``extra[i]``
    added to process i's options; ``started(procs)`` called once both run); the processes and
    their (stdout, stderr)."""
    port = _free_port()
    procs = [
        subprocess.Popen([sys.executable, "-m", "reinforce", *ARGS, "--out", str(out),
                          "--coordinator", f"localhost:{port}", "--num-processes", "2",
                          "--process-id", str(i), *extra[i]],
                         env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(2)
    ]
    outs = []
    try:
        if started is not None:
            started(procs)
        for p in procs:
            outs.append(p.communicate(timeout=300))
    finally:
        for p in procs:
            p.kill()
    return procs, outs


def test_two_processes_write_one_folder_with_the_results_of_one(tmp_path):
    alone, shared = tmp_path / "alone", tmp_path / "shared"
    single = subprocess.run([sys.executable, "-m", "reinforce", *ARGS, "--out", str(alone)],
                            env=_env(), capture_output=True, text=True, timeout=300)
    assert single.returncode == 0, single.stderr[-2000:]
    assert "on 2 CPU devices" in single.stderr

    procs, outs = _two_processes(shared)
    for p, (_, stderr) in zip(procs, outs, strict=True):
        assert p.returncode == 0, stderr[-2000:]
    (out0, err0), (out1, _) = outs
    assert "on 4 CPU devices of 2 processes" in err0
    assert all(f"seed {s} lr 0.07" in out0 for s in range(3))  # process 0 reports every run
    # (gloo, the CPU collectives, prints its own lines on stdout)
    assert out1.strip().splitlines()[-1] == "process 1/2: done; process 0 wrote the run folder"
    assert "seed 0" not in out1
    # One folder (process 0's), holding the same runs as the single process.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alone", "shared"]
    a, b = _metrics(alone), _metrics(shared)
    for name in a:
        np.testing.assert_allclose(b[name], a[name], rtol=1e-4, atol=1e-5, err_msg=name)
    scores = [[r["score"] for r in json.loads((f / "eval.json").read_text())["runs"]]
              for f in (alone, shared)]
    np.testing.assert_allclose(scores[1], scores[0], rtol=1e-6)
    assert (shared / "model.safetensors").stat().st_size > 0


def test_a_stop_in_one_process_stops_all_with_process_0_checkpoint(tmp_path):
    """Process 1 alone is told to stop after 10 updates, one chunk (as if it got Ctrl-C): every
    process stops after that chunk, process 0 saves the checkpoint as interrupted, and the run then
    resumes in one process."""
    out = tmp_path / "run"
    procs, outs = _two_processes(out, [[], ["--stop-after", "10"]])
    (_, err0), (_, err1) = outs
    assert procs[0].returncode == 130, err0[-2000:]
    assert procs[1].returncode == 0, err1[-2000:]
    assert "interrupted at update 10/16" in err0
    assert err1.strip().splitlines()[-1] == ("reinforce: process 1: stopped with the other "
                                             "processes; process 0 saved the checkpoint")
    progress = json.loads((out / "checkpoint" / "progress.json").read_text())
    assert (progress["status"], progress["total_updates_done"]) == ("interrupted", 10)
    assert not (out / "eval.json").exists()
    resumed = subprocess.run([sys.executable, "-m", "reinforce", "train", "--resume", str(out),
                              "--quiet"], env=_env(), capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert len(json.loads((out / "eval.json").read_text())["runs"]) == 3


def test_sigterm_to_every_process_stops_them_after_one_chunk_with_a_checkpoint(tmp_path):
    """A scheduler cancelling the job sends SIGTERM to every process: they stop after the same
    chunk, process 0 saves the checkpoint, each exits 143."""
    out = tmp_path / "run"

    def terminate(procs):
        deadline = time.monotonic() + 120
        while not (out / "checkpoint" / "progress.json").exists():  # before the first chunk
            assert all(p.poll() is None for p in procs) and time.monotonic() < deadline
            time.sleep(0.05)
        for p in procs:
            p.send_signal(signal.SIGTERM)

    procs, outs = _two_processes(out, started=terminate)
    (_, err0), (_, err1) = outs
    assert [p.returncode for p in procs] == [143, 143], (err0[-2000:], err1[-2000:])
    progress = json.loads((out / "checkpoint" / "progress.json").read_text())
    # After the chunk the signal found running (update 10); on a busy machine it can come
    # before the first chunk starts, right after the first checkpoint (update 0).
    done = progress["total_updates_done"]
    assert done in (0, 10) and f"interrupted by SIGTERM at update {done}/16" in err0
    assert err1.strip().splitlines()[-1].startswith("reinforce: process 1: stopped with the "
                                                    "other processes")
    assert progress["status"] == "interrupted"
