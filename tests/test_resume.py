"""Runs that survive: stop + resume ends exactly like an uninterrupted run (both backends),
Ctrl-C checkpoints and exits 130, a non-finite value stops training and keeps the last good
checkpoint."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from reinforce.app.cli import main
from reinforce.app.runs import TIMING_COLUMNS
from reinforce.app.session import Session, stop_on_signals
from reinforce.backend import StopFlag, TrainingError, TrainingStopped
from reinforce.checkpoint import CHECKPOINT_DIR, load_arrays, load_checkpoint
from reinforce.config import RunSpec, preset

TINY = ["--env", "CartPole-v1", "--batch-episodes", "4", "--eval-episodes", "5", "--quiet",
        "--checkpoint-every", "0"]
#: One JAX setting for every JAX run of this module (the lr aside, which is traced), so that
#: the programs compile once per process: 2 runs of 60 updates, in chunks of 10.
JAX_RUNS = ["--backend", "jax", "--episodes", "240", "--seeds", "2", *TINY]


def _metrics(run: Path) -> list[list[str]]:
    """metrics.csv without its timing columns (steps_per_second, wall_seconds)."""
    with open(run / "metrics.csv") as f:
        rows = list(csv.reader(f))
    assert tuple(rows[0][-2:]) == TIMING_COLUMNS
    return [row[:-2] for row in rows]


def _weights(run: Path) -> dict[str, np.ndarray]:
    files = [run / "model.safetensors", *sorted((run / "weights").glob("*.safetensors"))]
    return {f"{f.name}/{k}": v for f in files if f.exists() for k, v in load_arrays(f)[0].items()}


def _assert_same_run(a: Path, b: Path) -> None:
    assert _metrics(a) == _metrics(b)
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for name in wa:
        np.testing.assert_array_equal(wa[name], wb[name], err_msg=name)
    ea, eb = (json.loads((r / "eval.json").read_text()) for r in (a, b))
    assert ea["runs"] == eb["runs"] and ea["best"] == eb["best"]


def _progress(run: Path) -> dict:
    return json.loads((run / CHECKPOINT_DIR / "progress.json").read_text())


SEGMENTS = ["--gamma", "0.9", "--baseline", "none", "--segment-steps", "128"]
#: Pixelcopter with the terms beyond the course's loss, in segments.
VALUE = ["--env", "Pixelcopter-PLE-v0", "--normalize-obs", "--baseline", "value",
         "--entropy-coef", "0.01", "--max-grad-norm", "0.5", "--gamma", "0.9", "--segment-steps",
         "128", "--hidden", "16", "--max-t", "300", "--chunk-updates", "10"]


@pytest.mark.parametrize(("backend", "stops", "mode"), [
    ("jax", [15, 41], []),  # chunks of 10 updates: stops at the chunk boundaries 20, then 50
    ("torch", [3, 9], []),  # 2 runs of 6 updates, one after the other: stops in run 1, in run 2
    ("jax", [15, 41], SEGMENTS),
    ("torch", [3, 9], SEGMENTS),
    ("jax", [15, 41], ["--lr-warmup", "30"]),  # the lr is still rising at the first stop
    ("torch", [3, 9], ["--lr-warmup", "4"]),
    ("jax", [15, 41], VALUE),
    ("torch", [3, 9], VALUE),
], ids=["jax", "torch", "jax-segments", "torch-segments", "jax-warmup", "torch-warmup",
        "jax-value", "torch-value"])
def test_stopped_and_resumed_run_ends_like_an_uninterrupted_one(tmp_path, backend, stops, mode,
                                                                 capsys):
    if backend == "jax":
        argv = ["train", *JAX_RUNS, *mode]
    else:
        argv = ["train", "--backend", "torch", "--episodes", "24", "--seeds", "2", *TINY, *mode]
    assert main([*argv, "--out", str(tmp_path / "straight")]) == 0

    resumed = tmp_path / "resumed"
    assert main([*argv, "--out", str(resumed), "--stop-after", str(stops[0])]) == 0
    err = capsys.readouterr().err
    assert "stopped at update" in err and f"reinforce train --resume {resumed}" in err
    assert not (resumed / "eval.json").exists() and not (resumed / "model.safetensors").exists()
    assert _progress(resumed)["status"] == "stopped"
    for stop in stops[1:]:  # resume, and stop again further on
        assert main(["train", "--resume", str(resumed), "--quiet", "--stop-after", str(stop)]
                    ) == 0
        assert _progress(resumed)["total_updates_done"] == (stop if backend == "torch" else
                                                             -(-stop // 10) * 10)
    assert main(["train", "--resume", str(resumed), "--quiet"]) == 0
    assert "resuming 2 run(s)" in capsys.readouterr().err
    assert _progress(resumed)["status"] == "finished"
    _assert_same_run(tmp_path / "straight", resumed)

    # Resuming a finished run changes nothing and says so.
    before = {p: p.read_bytes() for p in resumed.rglob("*") if p.is_file()}
    assert main(["train", "--resume", str(resumed)]) == 0
    assert "already finished" in capsys.readouterr().err
    assert before == {p: p.read_bytes() for p in resumed.rglob("*") if p.is_file()}
    if mode is VALUE:  # the value network is checkpointed but not exported
        state = load_arrays(resumed / CHECKPOINT_DIR / "state.safetensors")[0]
        assert any("value" in name for name in state)
        hub = tmp_path / "hub"
        assert main(["push", str(resumed), "--local-dir", str(hub), "--episodes", "3",
                     "--max-frames", "20"]) == 0
        pushed = load_arrays(hub / "model.safetensors")[0]
        assert sorted(pushed) == sorted(load_arrays(resumed / "model.safetensors")[0])
        assert not any("value" in name for name in pushed)


def test_ctrl_c_saves_a_checkpoint_exits_130_and_resumes(tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["train", *JAX_RUNS, "--out", str(run)]
    proc = subprocess.Popen([sys.executable, "-m", "reinforce", *argv],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        # The first checkpoint comes before the first chunk is compiled: the signal arrives
        # while that compiles or runs, and training stops at the end of the chunk.
        while not (run / CHECKPOINT_DIR / "progress.json").exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "training never started"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("reinforce: interrupted at update "), err
    assert f"resume with: reinforce train --resume {run}" in last
    progress = _progress(run)
    assert progress["status"] == "interrupted"
    # Stopped at the end of the chunk the signal found running; on a busy machine the signal
    # can come before the first chunk starts (right after the first checkpoint): update 0.
    assert progress["total_updates_done"] in (0, 10)
    assert f"at update {progress['total_updates_done']}/60;" in last
    assert not (run / "eval.json").exists()
    assert not list(run.rglob("*.tmp")), "a temporary file was left behind"

    assert main(["train", "--resume", str(run), "--quiet"]) == 0
    capsys.readouterr()
    assert [r["seed"] for r in json.loads((run / "eval.json").read_text())["runs"]] == [0, 1]
    assert len(_metrics(run)) == 1 + 2 * 60
    assert _progress(run)["status"] == "finished"


def test_first_ctrl_c_sets_the_flag_and_a_second_one_would_end_the_process():
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers can only be installed from the main thread")
    before = signal.getsignal(signal.SIGINT)
    with stop_on_signals() as flag:
        assert not flag.is_set()
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.01)  # the handler runs between bytecodes
        assert flag.is_set()
        # The next Ctrl-C gets the default action: the process ends at once, even inside a
        # long compiled JAX call (files are replaced by renames: none is half-written).
        assert signal.getsignal(signal.SIGINT) == signal.SIG_DFL
    assert signal.getsignal(signal.SIGINT) is before


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_exploding_learning_rate_stops_with_one_line_and_exit_1(tmp_path, backend, capsys):
    run = tmp_path / "run"
    if backend == "jax":
        argv = ["train", *JAX_RUNS, "--lr", "1e30"]
    else:
        argv = ["train", "--backend", "torch", "--episodes", "16", "--lr", "1e30", *TINY]
    assert main([*argv, "--out", str(run)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and err[0].startswith("training "), err  # the banner, then the error
    assert err[1].startswith("reinforce: error: non-finite "), err[1]
    assert "at update " in err[1] and "seed=0 lr=1e+30" in err[1]
    total = 60 if backend == "jax" else 4
    assert f"the last good checkpoint (update 0/{total}) is kept in {run}" in err[1]
    progress = _progress(run)
    assert progress["status"] == "failed" and progress["error"] in err[1]
    checkpoint = load_checkpoint(run / CHECKPOINT_DIR)
    assert checkpoint.progress["total_updates_done"] == 0
    assert all(np.isfinite(v).all() for v in checkpoint.arrays.values()
               if np.issubdtype(v.dtype, np.floating))
    assert not (run / "model.safetensors").exists()


SMALL_CFG = preset("fast", "CartPole-v1").replace(
    n_training_episodes=48, batch_episodes=4, chunk_updates=3, n_evaluation_episodes=4,
    gamma=0.995,  # a config no other test compiles: the patched update is traced afresh
)


def _session(tmp_path: Path, backend: str, total: int, **kwargs) -> Session:
    config = {"backend": backend, "runs": [{"seed": 0, "lr": SMALL_CFG.lr}]}
    return Session.for_run_folder(tmp_path, config, total, every_seconds=0, **kwargs)


def test_jax_nan_in_weights_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    from reinforce_jax import algorithm as jt
    from reinforce_jax import run

    original = jt.Trainer.update

    def poisoned(self, state):  # the weights turn NaN in update 8
        state, metrics = original(self, state)
        bad = state.update == 8
        params = jax.tree.map(lambda p: jnp.where(bad, jnp.nan, p), state.params)
        return state._replace(params=params), metrics

    monkeypatch.setattr(jt.Trainer, "update", poisoned)
    monkeypatch.setattr(run, "_PROGRAMS", {})
    with pytest.raises(TrainingError) as err:
        run.train_many(SMALL_CFG, [RunSpec.of(0, lr=SMALL_CFG.lr)],
                       supervisor=_session(tmp_path, "jax", 12))
    message = str(err.value)
    # updates 7-9 are one chunk: the NaN weights show as the policy loss of update 9
    assert message.startswith(
        f"non-finite policy loss at update 9/12 (run seed=0 lr={SMALL_CFG.lr:g})")
    assert "the last good checkpoint (update 6/12) is kept" in message
    checkpoint = load_checkpoint(tmp_path / CHECKPOINT_DIR)
    assert checkpoint.progress["total_updates_done"] == 6
    assert np.isfinite(checkpoint.arrays["runs/0/state/params['params']['layers_0']['kernel']"]
                       ).all()
    assert _progress(tmp_path)["status"] == "failed"


def test_torch_nan_loss_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    from reinforce_torch import algorithm as tt
    from reinforce_torch import run

    original, calls = tt.update_loss, []

    def poisoned(*args):  # the loss of update 8 is NaN
        calls.append(1)
        loss, terms = original(*args)
        if len(calls) == 8:
            return loss * float("nan"), terms._replace(policy_loss=loss * float("nan"))
        return loss, terms

    monkeypatch.setattr(tt, "update_loss", poisoned)
    with pytest.raises(TrainingError) as err:
        run.train_many(SMALL_CFG, [RunSpec.of(0, lr=SMALL_CFG.lr)],
                       supervisor=_session(tmp_path, "torch", 12))
    message = str(err.value)
    assert message.startswith(
        f"non-finite policy loss at update 8/12 (run seed=0 lr={SMALL_CFG.lr:g})")
    assert "the last good checkpoint (update 6/12) is kept" in message
    assert load_checkpoint(tmp_path / CHECKPOINT_DIR).progress["total_updates_done"] == 6


def test_a_plain_train_many_checks_too():
    """Without a session (no checkpoints) a non-finite run still stops with a clear error."""
    from reinforce_torch import run

    cfg = SMALL_CFG.replace(lr=1e38)
    with pytest.raises(TrainingError, match=r"at update 1/12 .*no checkpoint was written"):
        run.train_many(cfg, [RunSpec.of(0, lr=cfg.lr)])


def test_stop_request_and_stop_flag_stop_between_updates(tmp_path):
    from reinforce_torch import run

    session = _session(tmp_path, "torch", 12, stop_when=lambda done: done >= 5)
    with pytest.raises(TrainingStopped) as stopped:
        run.train_many(SMALL_CFG, [RunSpec.of(0, lr=SMALL_CFG.lr)], supervisor=session)
    assert not stopped.value.by_signal and "stopped at update 5/12" in str(stopped.value)

    flag = StopFlag()
    flag.set()  # as the SIGINT handler does
    session = _session(tmp_path, "torch", 12, stop_flag=flag,
                       resume=load_checkpoint(tmp_path / CHECKPOINT_DIR))
    with pytest.raises(TrainingStopped) as stopped:
        run.train_many(SMALL_CFG, [RunSpec.of(0, lr=SMALL_CFG.lr)], supervisor=session)
    assert stopped.value.by_signal and str(stopped.value).startswith("interrupted at update 5")


def test_resume_after_a_crash_during_evaluation_only_evaluates(tmp_path, capsys):
    """Training done (checkpoint says so) but the results never written: resume writes them."""
    run = tmp_path / "run"
    argv = ["train", "--backend", "torch", "--episodes", "8", *TINY, "--out", str(run)]
    assert main(argv) == 0
    metrics = _metrics(run)
    for name in ("eval.json", "model.safetensors", "metrics.csv", "learning_curve.png"):
        (run / name).unlink()
    assert main(["train", "--resume", str(run), "--quiet"]) == 0
    assert "at update 2/2" in capsys.readouterr().err
    assert _metrics(run) == metrics and (run / "model.safetensors").exists()
