"""The Hub both ways: evaluate and record a pushed folder or a Hub repo (served from a local
huggingface_hub cache, offline, or from a mocked download), retrain from a pushed
hyperparameters.json or a run's config.json, and the TensorBoard logs that a run writes and a
push uploads."""

from __future__ import annotations

import csv
import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from huggingface_hub import metadata_load
from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError
from run_folders import error_line

from reinforce.app import agents
from reinforce.app.cli import main
from reinforce.app.runs import LOG_TAGS
from reinforce.checkpoint import load_weights

TINY = ["--env", "CartPole-v1", "--episodes", "64", "--batch-episodes", "16",
        "--eval-episodes", "5", "--quiet"]
EVAL = ["--episodes", "5", "--seed", "3"]


def run_main(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def cli(argv, cwd, **env):
    """``python -m reinforce`` in a fresh process (huggingface_hub reads its settings from the
    environment when imported)."""
    proc = subprocess.run([sys.executable, "-m", "reinforce", *map(str, argv)], cwd=cwd,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, **env})
    return proc.returncode, proc.stdout, proc.stderr


def cache_repo(cache: Path, repo_id: str, folder: Path, files=agents.PUSHED_FILES) -> None:
    """``files`` of ``folder`` as huggingface_hub's cache holds a downloaded repo."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / "0123456789abcdef"
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123456789abcdef")
    for name in files:
        shutil.copyfile(folder / name, snapshot / name)


@pytest.fixture(scope="module", params=["jax", "torch"])
def pushed(request, tmp_path_factory):
    """A trained run (2 seeds) and its pushed folder (dry run)."""
    root = tmp_path_factory.mktemp(f"pushed-{request.param}")
    run, hub = root / "run", root / "hub"
    assert main(["train", "--backend", request.param, "--seeds", "2", "--seed", "4",
                 "--out", str(run), *TINY]) == 0
    assert main(["push", str(run), "--local-dir", str(hub), "--repo-id", "someone/agent",
                 *EVAL]) == 0
    return SimpleNamespace(backend=request.param, root=root, run=run, hub=hub)


def test_a_pushed_folder_evaluates_and_records_like_its_run(pushed, tmp_path, capsys):
    for backend in ("jax", "torch"):
        code, from_run, err = run_main(["evaluate", pushed.run, "--backend", backend, *EVAL],
                                       capsys)
        assert code == 0, err
        code, from_hub, err = run_main(["evaluate", pushed.hub, "--backend", backend, *EVAL],
                                       capsys)
        assert code == 0, err
        assert from_run.split("): ")[1] == from_hub.split("): ")[1]
        assert "(certification: score >= 350" in from_hub
    code, out, err = run_main(["record", pushed.hub, "--out", tmp_path / "r.mp4",
                               "--max-frames", "30"], capsys)
    assert code == 0, err
    assert (tmp_path / "r.mp4").stat().st_size > 0 and "wrote" in out


def test_a_hub_repo_evaluates_and_records_from_the_cache_offline(pushed, tmp_path):
    cache_repo(tmp_path / "cache", "someone/agent", pushed.hub)
    env = {"HF_HUB_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}
    work = tmp_path / "work"
    work.mkdir()
    code, out, err = cli(["evaluate", "someone/agent", *EVAL], work, **env)
    assert code == 0, err
    code, local, _ = cli(["evaluate", pushed.hub, *EVAL], work, **env)
    assert out.startswith(f"CartPole-v1 ({pushed.backend}, someone/agent): ")
    assert out.split("): ")[1] == local.split("): ")[1]
    code, out, err = cli(["record", "someone/agent", "--max-frames", "30"], work, **env)
    assert code == 0, err
    assert sorted(p.name for p in work.iterdir()) == ["agent-replay.mp4"]  # not in the cache
    # Not cached, offline: one line, exit 1 (the network), nothing written.
    code, out, err = cli(["evaluate", "someone/other"], work, **env)
    assert code == 1 and "HF_HUB_OFFLINE" in error_line(err)
    assert sorted(p.name for p in work.iterdir()) == ["agent-replay.mp4"]


def _serve(monkeypatch, folder: Path | None, error: Exception | None = None) -> list[str]:
    """``hf_hub_download`` served from ``folder`` (or raising ``error``); the files asked."""
    asked: list[str] = []

    def download(repo_id, filename, **kwargs):
        asked.append(filename)
        if error is not None:
            raise error
        if not (folder / filename).is_file():
            raise EntryNotFoundError(f"{filename} not in {repo_id}")
        return str(folder / filename)

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    return asked


def test_only_json_and_safetensors_are_read_the_weights_last(pushed, tmp_path, monkeypatch,
                                                             capsys):
    shutil.copytree(pushed.hub, tmp_path / "repo")
    (tmp_path / "repo" / "pytorch_model.bin").write_bytes(b"a pickle")
    asked = _serve(monkeypatch, tmp_path / "repo")
    monkeypatch.chdir(tmp_path)
    code, out, err = run_main(["evaluate", "someone/agent", *EVAL], capsys)
    assert code == 0, err
    assert asked == ["config.json", "hyperparameters.json", "model.safetensors"]


@pytest.mark.parametrize("case", ["unknown repo", "not ours", "bad settings", "too big"])
def test_a_repo_that_cannot_be_evaluated_is_refused_in_one_line(case, pushed, tmp_path,
                                                                monkeypatch, capsys):
    repo = tmp_path / "repo"
    shutil.copytree(pushed.hub, repo)
    error = None
    if case == "unknown repo":
        response = SimpleNamespace(status_code=404, headers={}, request=None)
        error = RepositoryNotFoundError("404 Not Found", response=response)
    elif case == "not ours":
        (repo / "hyperparameters.json").unlink()
    elif case == "bad settings":
        hp = json.loads((repo / "hyperparameters.json").read_text())
        (repo / "hyperparameters.json").write_text(json.dumps({**hp, "gamma": 7}))
    else:
        big = [100_000_000_000]
        hp = json.loads((repo / "hyperparameters.json").read_text())
        (repo / "hyperparameters.json").write_text(json.dumps({**hp, "hidden_sizes": big}))
        config = json.loads((repo / "config.json").read_text())
        (repo / "config.json").write_text(json.dumps({**config, "hidden_sizes": big}))
    asked = _serve(monkeypatch, repo, error)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    for command in ("evaluate", "record"):
        code, out, err = run_main([command, "someone/agent"], capsys)
        line = error_line(err)
        assert code == 2, err
        expected = {"unknown repo": "no model repo someone/agent",
                    "not ours": "is not an agent of this project (no hyperparameters.json)",
                    "bad settings": "gamma", "too big": "memory"}[case]
        assert expected in line
    assert "model.safetensors" not in asked  # refused before the weights
    assert not any(work.iterdir())


def _same_weights(a: Path, b: Path, names: list[str]) -> None:
    for name in names:
        ours, theirs = load_weights(a / name), load_weights(b / name)
        assert ours.keys() == theirs.keys()
        for key in ours:
            np.testing.assert_array_equal(ours[key], theirs[key], err_msg=f"{name}: {key}")


def _eval(run: Path) -> dict:
    data = json.loads((run / "eval.json").read_text())
    assert data.pop("wall_seconds") > 0
    return data


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_train_config_of_a_pushed_agent_trains_it_again(backend, tmp_path, capsys):
    """push --local-dir, then train --config of its hyperparameters.json: the same seed,
    backend and settings, the same eval.json and weights."""
    run, hub, again = tmp_path / "run", tmp_path / "hub", tmp_path / "again"
    assert main(["train", "--backend", backend, "--seed", "6", "--out", str(run), *TINY]) == 0
    assert main(["push", str(run), "--local-dir", str(hub), *EVAL]) == 0
    code, out, err = run_main(["train", "--config", hub / "hyperparameters.json", "--out", again,
                               "--quiet"], capsys)
    assert code == 0, err
    assert _eval(again) == _eval(run)
    _same_weights(again, run, ["model.safetensors"])
    config = json.loads((again / "config.json").read_text())
    assert config["command"] == f"reinforce train --config {hub / 'hyperparameters.json'}"
    assert config["runs"] == json.loads((run / "config.json").read_text())["runs"]


def test_train_config_of_a_run_trains_all_its_runs_again(pushed, tmp_path, capsys):
    again = tmp_path / "again"
    code, out, err = run_main(["train", "--config", pushed.run / "config.json", "--out", again,
                               "--quiet"], capsys)
    assert code == 0, err
    assert _eval(again) == _eval(pushed.run)
    _same_weights(again, pushed.run, ["model.safetensors", "weights/run-0.safetensors",
                                      "weights/run-1.safetensors"])


def test_train_config_takes_overrides_and_refuses_bad_files(pushed, tmp_path, capsys):
    out = tmp_path / "other"
    code, _, err = run_main(["train", "--config", pushed.hub / "hyperparameters.json",
                             "--out", out, "--seed", "9", "--lr", "0.01", "--quiet"], capsys)
    assert code == 0, err
    (run,) = json.loads((out / "eval.json").read_text())["runs"]
    assert (run["seed"], run["lr"]) == (9, 0.01)
    (tmp_path / "bad.json").write_text('{"foo": 1}')
    for argv, expected in [
        (["--config", tmp_path / "bad.json"], "neither a run's config.json nor"),
        (["--config", tmp_path / "missing.json"], "missing.json"),
        (["--config", pushed.hub / "hyperparameters.json", "--preset", "fast"],
         "drop --preset"),
    ]:
        code, _, err = run_main(["train", *argv, "--out", tmp_path / "no"], capsys)
        assert code == 2 and expected in error_line(err)
    assert not (tmp_path / "no").exists()


def read_scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar of the TensorBoard event files in ``folder``: tag -> [(step, value)].
    The files are TFRecords: length (8 bytes), its CRC (4), an Event, its CRC (4)."""
    from tensorboardX.proto.event_pb2 import Event

    out: dict[str, list[tuple[int, float]]] = {}
    for file in sorted(folder.glob("events.out.tfevents.*")):
        data, i = file.read_bytes(), 0
        while i < len(data):
            (length,) = struct.unpack("<Q", data[i:i + 8])
            event = Event.FromString(data[i + 12:i + 12 + length])
            i += 12 + length + 4
            for value in event.summary.value:
                out.setdefault(value.tag, []).append((event.step, value.simple_value))
    return out


def test_the_tensorboard_logs_hold_the_numbers_of_metrics_csv(pushed):
    with open(pushed.run / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    runs = json.loads((pushed.run / "config.json").read_text())["runs"]
    folders = sorted((pushed.run / "logs").iterdir())
    assert [p.name for p in folders] == sorted(f"seed-{r['seed']}_lr-{r['lr']:g}" for r in runs)
    for i, spec in enumerate(runs):
        scalars = read_scalars(pushed.run / "logs" / f"seed-{spec['seed']}_lr-{spec['lr']:g}")
        assert set(scalars) == set(LOG_TAGS.values())
        mine = [row for row in rows if int(row["run"]) == i]
        for name, tag in LOG_TAGS.items():
            steps = [s for s, _ in scalars[tag]]
            assert steps == [int(row["update"]) for row in mine], tag
            np.testing.assert_allclose([v for _, v in scalars[tag]],
                                       [float(row[name]) for row in mine], rtol=1e-5,
                                       atol=1e-6, err_msg=tag)
    assert all(float(row["steps_per_second"]) > 0 for row in rows)


def test_the_pushed_folder_has_the_logs_the_curve_and_a_card_that_reproduces(pushed):
    assert (pushed.hub / "learning_curve.png").stat().st_size > 0
    logs = sorted(p.relative_to(pushed.hub / "logs") for p in (pushed.hub / "logs").rglob("*")
                  if p.is_file())
    assert logs == sorted(p.relative_to(pushed.run / "logs")
                          for p in (pushed.run / "logs").rglob("*") if p.is_file())
    card = (pushed.hub / "README.md").read_text()
    assert metadata_load(pushed.hub / "README.md")["library_name"] == "reinforce"
    command = json.loads((pushed.run / "config.json").read_text())["command"]
    assert command.startswith("reinforce train --env CartPole-v1") and f"\n{command}\n" in card
    assert "reinforce train --config agent/hyperparameters.json" in card
    assert "hf download someone/agent hyperparameters.json --local-dir agent" in card
    assert "![Learning curve](learning_curve.png)" in card and "`logs/`" in card
    wall = json.loads((pushed.run / "eval.json").read_text())["wall_seconds"]
    assert f"took {wall:.0f} s" in card and "cores" in card
