"""Inputs too big for the machine fail fast and clearly; a full disk is one line; a refused
start leaves nothing behind."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from run_folders import error_line, run_main

from reinforce import checkpoint
from reinforce.app import backends
from reinforce.checkpoint import CHECKPOINT_DIR
from reinforce.config import preset
from reinforce.memory import Estimate, Part, TooBigError


def last_line(err: str) -> str:
    """The error line of a run that started (after its start-up line): one line, no trace."""
    assert "Traceback" not in err, err
    return error_line(err.strip().splitlines()[-1])


TINY = ["--env", "CartPole-v1", "--episodes", "16", "--batch-episodes", "2", "--eval-episodes",
        "3", "--checkpoint-every", "0", "--quiet"]

OVERSIZED = {
    "hidden": (["--env", "CartPole-v1", "--hidden", "100000000000"],
               "lower --hidden, --batch-episodes or --max-t"),
    "seeds": (["--env", "CartPole-v1", "--seeds", "100000000"], "lower the number of runs"),
    "batch": (["--env", "Pixelcopter-PLE-v0", "--batch-episodes", "100000000", "--episodes",
               "100000000"], "--batch-episodes or --segment-steps"),
}


@pytest.mark.parametrize("backend", ["jax", "torch"])
@pytest.mark.parametrize("case", OVERSIZED, ids=list(OVERSIZED))
def test_an_oversized_training_is_refused_at_once(tmp_path, case, backend):
    argv, lower = OVERSIZED[case]
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "reinforce", "train", *argv, "--backend",
                           backend, "--out", str(out)], capture_output=True, text=True,
                          timeout=60)  # a guard against a hang; it takes a few seconds
    assert proc.returncode == 2, proc.stderr[-2000:]
    line = error_line(proc.stderr)
    assert "training would need about" in line and "of host memory" in line, line
    assert "it can use" in line and lower in line, line
    assert not out.exists()


def test_the_estimate_names_the_limit_and_notes_a_large_training():
    parts = (Part("rollout", "host", 6e9, "--batch-episodes"),
             Part("parameters", "host", 1e9, "--hidden"))
    assert Estimate(parts, free=lambda where: 100e9).check() is None  # small: nothing to say
    note = Estimate(parts, free=lambda where: 20e9).check()  # 7 of the 16 GB it may use
    assert note == "about 7.0 GB of the 16.0 GB of host memory it can use"
    with pytest.raises(TooBigError) as refused:
        Estimate(parts, free=lambda where: 8e9).check()
    assert str(refused.value) == (
        "training would need about 7.0 GB of host memory (rollout 6.0 GB, parameters 1.0 GB), "
        "more than the 6.4 GB it can use (80% of 8.0 GB free); lower --batch-episodes")


def test_each_place_is_checked_against_its_own_memory():
    parts = (Part("network", "cuda:0", 5e9, "--hidden"), Part("rollout", "host", 1e9, "x"))
    free = {"cuda:0": 4e9, "host": 100e9}
    with pytest.raises(TooBigError, match="5.0 GB of cuda:0 memory .* lower --hidden"):
        Estimate(parts, free=free.get).check()


def test_each_backend_asks_its_own_framework_for_device_memory(monkeypatch):
    import torch

    from reinforce import memory
    from reinforce_torch import devices

    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (3e9, 8e9))
    assert devices.free_bytes("cuda:0") == 3e9  # torch's CUDA devices: torch tells
    assert memory.free_bytes("cuda:0") is None  # not a JAX device here: unknown, not torch's
    assert devices.free_bytes("host") == pytest.approx(memory.free_bytes("host"), rel=0.2)
    fast = preset("fast", "CartPole-v1")
    assert backends.get("torch").memory(fast, 1, "cpu").free is devices.free_bytes
    assert backends.get("jax").memory(fast, 1, "cpu").free is memory.free_bytes


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_the_presets_fit_and_the_estimate_grows_with_the_settings(backend):
    fast = preset("fast", "Pixelcopter-PLE-v0")
    small = backends.get(backend).memory(fast, 4, "cpu")
    assert small.check() is None or "it can use" in small.check()
    bigger = backends.get(backend).memory(fast.replace(batch_episodes=64), 4, "cpu")
    assert bigger.total("host") > small.total("host") > 0


def test_an_error_before_the_first_update_leaves_no_run_folder(tmp_path, monkeypatch):
    backend = backends.get("torch")

    def exhausted(*args, **kwargs):
        raise MemoryError("RESOURCE_EXHAUSTED: Out of memory allocating 17203212516856 bytes")

    monkeypatch.setattr(type(backend), "train_many", exhausted)
    out = tmp_path / "run"
    code, _, err = run_main(["train", "--backend", "torch", "--out", str(out), *TINY])
    assert code == 2
    assert last_line(err).startswith("reinforce: error: out of memory: RESOURCE_EXHAUSTED")
    assert not out.exists()


def _state_writes_fail_after(n: int, monkeypatch) -> list[str]:
    """From the ``n``-th write of the checkpoint state on, the disk is full."""
    real, seen = os.fsync, []

    def fsync(fd):
        name = os.readlink(f"/proc/self/fd/{fd}")
        if ".state.safetensors." in name:
            seen.append(name)
            if len(seen) >= n:
                raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd)

    monkeypatch.setattr(checkpoint.os, "fsync", fsync)
    return seen


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_a_full_disk_keeps_the_last_checkpoint_and_says_how_to_resume(tmp_path, monkeypatch,
                                                                       backend):
    out = tmp_path / "run"
    _state_writes_fail_after(3, monkeypatch)
    code, _, err = run_main(["train", "--backend", backend, "--out", str(out),
                             "--chunk-updates", "2", *TINY])
    assert code == 1
    line = last_line(err)
    state = out / CHECKPOINT_DIR / "state.safetensors"
    assert f"no space left on the device to write {state} (" in line and " free there)" in line
    assert "the last good checkpoint (update 2/" in line
    assert line.endswith(f"resume with: reinforce train --resume {out}")
    progress = json.loads((out / CHECKPOINT_DIR / "progress.json").read_text())
    assert progress["total_updates_done"] == 2
    assert not list((out / CHECKPOINT_DIR).glob(".*.tmp"))  # no half-written file
    monkeypatch.undo()  # space was freed
    assert run_main(["train", "--resume", str(out), "--quiet"])[0] == 0
    assert (out / "model.safetensors").exists()


def test_a_disk_full_at_the_start_leaves_no_run_folder(tmp_path, monkeypatch):
    _state_writes_fail_after(1, monkeypatch)
    out = tmp_path / "run"
    code, _, err = run_main(["train", "--backend", "torch", "--out", str(out), *TINY])
    assert code == 1
    assert "no space left on the device to write" in last_line(err)
    assert not out.exists()


def test_a_full_disk_while_building_the_hub_folder_is_one_line(tmp_path, monkeypatch):
    from run_folders import write_run

    run = tmp_path / "run"
    write_run(run, "CartPole-v1", "torch")
    real = checkpoint.os.fsync

    def fsync(fd):
        if os.readlink(f"/proc/self/fd/{fd}").endswith(".tmp") and "hub" in os.readlink(
                f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd)

    monkeypatch.setattr(checkpoint.os, "fsync", fsync)
    hub = tmp_path / "hub"
    code, _, err = run_main(["push", str(run), "--local-dir", str(hub), "--episodes", "2"])
    assert code == 1
    line = last_line(err)
    assert f"no space left on the device to write {hub}" in line and "is kept at" in line


def test_the_written_file_of_a_failed_write_is_the_old_one(tmp_path, monkeypatch):
    path = tmp_path / "x.json"
    checkpoint.atomic_write_text(path, "old")
    monkeypatch.setattr(checkpoint.os, "fsync", lambda fd: (_ for _ in ()).throw(
        OSError(errno.ENOSPC, "No space left on device")))
    with pytest.raises(checkpoint.DiskFullError, match=f"to write {path} "):
        checkpoint.atomic_write_text(path, "new")
    assert path.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["x.json"]
    assert isinstance(Path(path), Path)
