"""Files on disk: safetensors + JSON only, atomic writes, and a clear one-line error (exit 2)
for every damaged or mismatched file a command reads."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from run_folders import error_line, snapshot

from reinforce.app.cli import main
from reinforce.checkpoint import (
    CHECKPOINT_DIR,
    CheckpointError,
    atomic_write_text,
    load_arrays,
    load_checkpoint,
    save_arrays,
    save_weights,
)

RUN = ["--backend", "torch", "--env", "CartPole-v1", "--episodes", "8", "--batch-episodes", "4",
       "--eval-episodes", "3", "--quiet", "--checkpoint-every", "0"]


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    """A finished torch run and one stopped after its first update (checkpoint, no model)."""
    root = tmp_path_factory.mktemp("runs")
    assert main(["train", *RUN, "--out", str(root / "finished")]) == 0
    assert main(["train", *RUN, "--out", str(root / "stopped"), "--stop-after", "1"]) == 0
    return {"finished": root / "finished", "stopped": root / "stopped"}


def _copy(folders, name: str, tmp_path: Path) -> Path:
    return Path(shutil.copytree(folders[name], tmp_path / name))


def _one_line_error(argv: list[str], capsys, message: str, folder: Path) -> None:
    capsys.readouterr()
    before = snapshot(folder)
    assert main(argv) == 2
    out, err = capsys.readouterr()
    line = error_line(err)
    assert message in line, line
    assert out == ""
    assert snapshot(folder) == before, "the command changed the run folder"


# --- the formats -----------------------------------------------------------------------------


def test_arrays_round_trip_any_dtype_and_shape(tmp_path):
    arrays = {"scalar": np.asarray(3.5, np.float32), "count": np.asarray(7, np.int64),
              "rng": np.arange(10, dtype=np.uint8), "key": np.asarray([1, 2], np.uint32),
              "moments": np.ones((2, 3), np.float64), "empty": np.zeros((2, 0), np.float32)}
    save_arrays(tmp_path / "a.safetensors", arrays, {"note": "hi"})
    loaded, metadata = load_arrays(tmp_path / "a.safetensors")
    assert metadata == {"note": "hi"} and loaded.keys() == arrays.keys()
    for name, value in arrays.items():
        assert loaded[name].dtype == value.dtype and loaded[name].shape == value.shape, name
        np.testing.assert_array_equal(loaded[name], value)


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "progress.json"
    atomic_write_text(path, "old")

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        atomic_write_text(path, "new")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["progress.json"]


def test_checkpoint_holds_every_array_and_no_pickle(folders):
    checkpoint = load_checkpoint(folders["stopped"] / CHECKPOINT_DIR)
    assert checkpoint.progress["backend"] == "torch"
    assert checkpoint.progress["total_updates_done"] == 1
    names = set(checkpoint.arrays)
    for expected in ("runs/0/state/policy/layers.0.weight", "runs/0/state/adam/0/exp_avg_sq",
                     "runs/0/state/adam/0/step", "runs/0/state/generator",
                     "runs/0/state/env_key", "runs/0/metrics/policy_loss", "runs/0/wall"):
        assert expected in names, expected
    on_disk = json.loads((folders["stopped"] / CHECKPOINT_DIR / "progress.json").read_text())
    assert on_disk["total_updates_done"] == 1 and on_disk["status"] == "stopped"


def test_nothing_is_ever_unpickled():
    """Loading is safetensors and JSON only: no pickle, np.load without allow_pickle, and any
    torch.load with weights_only=True."""
    root = Path(__file__).resolve().parents[1]
    sources = [p for pkg in ("reinforce", "reinforce_jax", "reinforce_torch", "benchmarks")
               for p in (root / pkg).rglob("*.py")]
    assert sources
    for path in sources:
        text = path.read_text()
        assert not re.search(r"^\s*(import|from)\s+(c?pickle|dill|joblib)\b", text, re.M), path
        for call in re.finditer(r"torch\.load\(([^)]*)\)", text):
            assert "weights_only=True" in call.group(1), f"{path}: {call.group(0)}"
        for call in re.finditer(r"np\.load\(([^)]*)\)", text):
            assert "allow_pickle=True" not in call.group(1), f"{path}: {call.group(0)}"


# --- evaluate: damaged weights and configs -----------------------------------------------------


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _drop_tensor(path: Path) -> None:
    arrays, _ = load_arrays(path)
    del arrays["layers.1.bias"]
    save_weights(path, arrays)


def _nan_weights(path: Path) -> None:
    arrays, _ = load_arrays(path)
    arrays["layers.0.weight"][0, 0] = np.nan
    save_weights(path, arrays)


WEIGHTS_DAMAGE = {
    "truncated": (_truncate, "corrupt weights file"),
    "random bytes": (lambda p: p.write_bytes(os.urandom(300)), "corrupt weights file"),
    "empty": (lambda p: p.write_bytes(b""), "corrupt weights file"),
    "missing": (lambda p: p.unlink(), "missing weights file"),
    "missing tensor": (_drop_tensor, "do not fit the architecture 4->16->2"),
    "nan": (_nan_weights, "hold non-finite values"),
}


@pytest.mark.parametrize("damage", WEIGHTS_DAMAGE, ids=list(WEIGHTS_DAMAGE))
def test_evaluate_damaged_weights(folders, tmp_path, capsys, damage):
    run = _copy(folders, "finished", tmp_path)
    corrupt, message = WEIGHTS_DAMAGE[damage]
    corrupt(run / "model.safetensors")
    _one_line_error(["evaluate", str(run), "--episodes", "2"], capsys, message, run)


def _edit_config(run: Path, **changes) -> None:
    config = json.loads((run / "config.json").read_text())
    train = changes.pop("train", {})
    config.update(changes)
    config["train"].update(train)
    (run / "config.json").write_text(json.dumps(config))


CONFIG_DAMAGE = {
    "invalid JSON": (lambda r: (r / "config.json").write_text("{not json"),
                     "corrupt JSON file"),
    "not an object": (lambda r: (r / "config.json").write_text("[1, 2]"),
                      "is not a run config (not an object)"),
    "unknown key": (lambda r: _edit_config(r, train={"no_such_key": 1}), "unknown config keys"),
    "missing key": (lambda r: (r / "config.json").write_text(json.dumps(
        {k: v for k, v in json.loads((r / "config.json").read_text()).items()
         if k != "observation_size"})), "is not a run config: missing 'observation_size'"),
    "other architecture": (lambda r: _edit_config(r, hidden_sizes=[32],
                                                  train={"hidden_sizes": [32]}),
                           "do not fit the architecture 4->32->2"),
    "other env": (lambda r: _edit_config(r, env_id="Pixelcopter-PLE-v0",
                                         train={"env_id": "Pixelcopter-PLE-v0"}),
                  "describes a policy for 4 observations and 2 actions, but Pixelcopter"),
    "halves disagree": (lambda r: _edit_config(r, hidden_sizes=[8]), "disagree"),
    "unknown backend": (lambda r: _edit_config(r, backend="tensorflow"), "unknown backend"),
    "missing": (lambda r: (r / "config.json").unlink(), "missing file"),
}


@pytest.mark.parametrize("damage", CONFIG_DAMAGE, ids=list(CONFIG_DAMAGE))
def test_evaluate_damaged_config(folders, tmp_path, capsys, damage):
    run = _copy(folders, "finished", tmp_path)
    corrupt, message = CONFIG_DAMAGE[damage]
    corrupt(run)
    _one_line_error(["evaluate", str(run), "--episodes", "2"], capsys, message, run)


def test_evaluate_an_unfinished_run_says_how_to_finish_it(folders, capsys):
    run = folders["stopped"]
    _one_line_error(["evaluate", str(run)], capsys,
                    f"has not finished training (stopped at update 1/2, no model.safetensors "
                    f"yet); finish it with: reinforce train --resume {run}", run)


def test_evaluate_with_the_other_backend_is_fine(folders, capsys):
    """model.safetensors is torch layout from both backends: switching backend is legitimate."""
    assert main(["evaluate", str(folders["finished"]), "--backend", "jax", "--episodes", "2"]
                ) == 0
    assert "over 2 episodes" in capsys.readouterr().out


# --- resume: damaged checkpoints, another backend, a changed config -------------------------


def _resave_state(run: Path, change) -> None:
    path = run / CHECKPOINT_DIR / "state.safetensors"
    arrays, metadata = load_arrays(path)
    change(arrays)
    save_arrays(path, arrays, metadata)


def _state(run: Path) -> Path:
    return run / CHECKPOINT_DIR / "state.safetensors"


RESUME_DAMAGE = {
    "progress.json invalid": (lambda r: (r / CHECKPOINT_DIR / "progress.json").write_text("{"),
                              "corrupt JSON file"),
    "progress.json missing": (lambda r: (r / CHECKPOINT_DIR / "progress.json").unlink(),
                              "missing file"),
    "state truncated": (lambda r: _truncate(_state(r)), "corrupt safetensors file"),
    "state random bytes": (lambda r: _state(r).write_bytes(os.urandom(500)),
                           "corrupt safetensors file"),
    "state missing": (lambda r: _state(r).unlink(), "has no checkpoint to resume"),
    "no checkpoint folder": (lambda r: shutil.rmtree(r / CHECKPOINT_DIR),
                             "has no checkpoint to resume"),
    "weights as state": (lambda r: shutil.copy(r.parent / "weights.safetensors", _state(r)),
                         "is not a reinforce training checkpoint"),
    "array of another shape": (
        lambda r: _resave_state(r, lambda a: a.update(
            {"runs/0/state/policy/layers.0.weight": np.zeros((8, 4), np.float32)})),
        "state.safetensors: 'policy/layers.0.weight' has shape (8, 4), expected (16, 4)"),
    "array missing": (
        lambda r: _resave_state(r, lambda a: a.pop("runs/0/state/adam/0/exp_avg")),
        "is not a torch training state of this run (missing adam/0/exp_avg)"),
    "other backend": (lambda r: _edit_config(r, backend="jax"),
                      "holds torch training state but config.json says the run is jax"),
    "config changed": (lambda r: _edit_config(r, train={"gamma": 0.5}),
                       "config.json no longer matches the checkpoint"),
    "other architecture": (lambda r: _edit_config(r, hidden_sizes=[32],
                                                  train={"hidden_sizes": [32]}),
                           "(hidden_sizes, train.hidden_sizes differ)"),
}


@pytest.mark.parametrize("damage", RESUME_DAMAGE, ids=list(RESUME_DAMAGE))
def test_resume_damaged_checkpoint(folders, tmp_path, capsys, damage):
    run = _copy(folders, "stopped", tmp_path)
    shutil.copy(folders["finished"] / "model.safetensors", tmp_path / "weights.safetensors")
    corrupt, message = RESUME_DAMAGE[damage]
    corrupt(run)
    _one_line_error(["train", "--resume", str(run), "--quiet"], capsys, message, run)


def test_a_torch_checkpoint_does_not_resume_in_jax(folders):
    from reinforce.app import backends
    from reinforce.app.runs import RunFolder
    from reinforce.config import RunSpec

    folder = RunFolder.load(folders["stopped"])
    checkpoint = load_checkpoint(folders["stopped"] / CHECKPOINT_DIR)
    with pytest.raises(CheckpointError, match="holds torch training state, not jax"):
        backends.get("jax").check_checkpoint(folder.cfg, [RunSpec.of(0, lr=folder.cfg.lr)],
                                             checkpoint, "ck")


def test_a_checkpoint_write_clears_temporaries_of_a_killed_process(tmp_path):
    from reinforce.checkpoint import save_checkpoint

    folder = tmp_path / CHECKPOINT_DIR
    folder.mkdir()
    (folder / ".state.safetensors.x1y2.tmp").write_bytes(b"half")
    save_checkpoint(folder, {"a": np.zeros(2, np.float32)}, {"total_updates_done": 0})
    assert sorted(p.name for p in folder.iterdir()) == ["progress.json", "state.safetensors"]
