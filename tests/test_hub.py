"""``reinforce push``: the repository folder (dry run, both envs and backends), the card's
metadata against ``reinforce evaluate``, the exported policy against the run's, the upload and
every error, without network."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from huggingface_hub import HfApi, metadata_load
from huggingface_hub.utils import HfHubHTTPError
from run_folders import error_line, run_main, snapshot
from run_folders import write_run as _write_run

from reinforce.app.hub import HUB_FILES, TAGS
from reinforce.app.runs import RunFolder
from reinforce.envs import ENV_IDS, make
from reinforce_torch.policy import Policy


def write_run(path, env_id, backend, seed=0):
    return _write_run(path, env_id, backend, seed, evaluated=True)


FAKE_TOKEN = "hf_FakeTokenForTests0123456789abcdef"
EVAL = ["--episodes", "5", "--seed", "7"]
COMBOS = [(env_id, backend) for env_id in ENV_IDS for backend in ("jax", "torch")]
IDS = [f"{env_id}-{backend}" for env_id, backend in COMBOS]


def printed_eval(text: str) -> tuple[str, str]:
    match = re.search(r"mean_reward=(-?\d+\.\d\d) std_reward=(\d+\.\d\d) ", text)
    assert match, text
    return match.group(1), match.group(2)


def states_batch(env_id: str, n: int = 64) -> np.ndarray:
    """``n`` random observations on the scale of the env's own (pixels for Pixelcopter)."""
    env, _ = make(env_id)
    scale = 1.0 if env_id == "CartPole-v1" else 20.0
    rng = np.random.default_rng(0)
    return (scale * rng.normal(size=(n, env.observation_size))).astype(np.float32)


def run_probabilities(folder: RunFolder, obs: np.ndarray) -> np.ndarray:
    """The run's own policy, in its own backend (Flax for a JAX run)."""
    state = folder.load_weights()
    if folder.backend == "jax":
        from reinforce_jax.policy import from_export, policy_for, probabilities

        return np.asarray(probabilities(policy_for(folder.arch), from_export(state), obs))
    policy = Policy.build(folder.arch)
    policy.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    return policy.numpy_probabilities(obs)


@pytest.fixture(autouse=True)
def _no_hub_access(monkeypatch):
    """Any real call to the Hub fails the test; tests that upload patch these again."""
    def refuse(*args, **kwargs):
        raise AssertionError("the test tried to reach the Hub")

    for name in ("create_repo", "upload_folder", "whoami"):
        monkeypatch.setattr(HfApi, name, refuse)
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module", params=COMBOS, ids=IDS)
def built(request, tmp_path_factory):
    """A dry-run folder of one (env, backend), with what push and evaluate printed."""
    env_id, backend = request.param
    root = tmp_path_factory.mktemp(f"dry-{env_id}-{backend}")
    run = write_run(root / "run", env_id, backend)
    hub = root / "hub"
    code, pushed, err = run_main(["push", str(run.path), "--local-dir", str(hub), *EVAL])
    assert code == 0, err
    code, evaluated, err = run_main(["evaluate", str(run.path), *EVAL])
    assert code == 0, err
    return SimpleNamespace(env_id=env_id, backend=backend, run=run, hub=hub, pushed=pushed,
                           evaluated=evaluated)


def test_dry_run_folder_card_and_results(built):
    env_id, backend, hub = built.env_id, built.backend, built.hub
    assert sorted(p.name for p in hub.iterdir()) == sorted(HUB_FILES)
    for name in HUB_FILES:
        assert (hub / name).stat().st_size > 0, name
    assert "dry run" in built.pushed and "nothing uploaded" in built.pushed

    # push prints the same certification line as evaluate, for the same seed and episodes
    line = [ln for ln in built.evaluated.splitlines() if "mean_reward=" in ln][0]
    assert line in built.pushed.splitlines()
    mean, std = printed_eval(line)

    meta = metadata_load(hub / "README.md")
    assert meta["tags"][0] == env_id and set(TAGS) <= set(meta["tags"])
    (result,) = meta["model-index"][0]["results"]
    assert result["task"]["type"] == "reinforcement-learning"
    assert result["dataset"] == {"name": env_id, "type": env_id}
    metric = result["metrics"][0]
    assert metric["type"] == "mean_reward"
    assert metric["value"] == f"{mean} +/- {std}"

    results = json.loads((hub / "results.json").read_text())
    assert results["env_id"] == env_id and results["n_evaluation_episodes"] == 5
    assert f"{results['mean_reward']:.2f}" == mean and f"{results['std_reward']:.2f}" == std
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", results["eval_datetime"])
    assert results["eval_seed"] == 7 and results["eval_backend"] == backend

    hparams = json.loads((hub / "hyperparameters.json").read_text())
    assert hparams["env_id"] == env_id and hparams["trained_with"] == backend
    assert hparams["max_t"] == 200 and hparams["seed"] == 0
    config = json.loads((hub / "config.json").read_text())
    assert config["env_id"] == env_id and config["hidden_sizes"] == list(
        built.run.cfg.hidden_sizes)

    card = (hub / "README.md").read_text()
    assert 'Policy.from_pretrained("USER/NAME")' in card
    assert f'gymnasium.make("{env_id}")' in card and "| `gamma` |" in card


def test_from_pretrained_reproduces_the_run_probabilities(built):
    env_id, backend = built.env_id, built.backend
    obs = states_batch(env_id)
    loaded = Policy.from_pretrained(built.hub).numpy_probabilities(obs)
    expected = run_probabilities(built.run, obs)
    assert loaded.shape == (len(obs), built.run.num_actions)
    assert np.ptp(expected, axis=0).max() > 1e-3  # the batch is not degenerate
    if backend == "torch":
        np.testing.assert_array_equal(loaded, expected)
    else:  # Flax (XLA) against torch: the same float32 weights, another matmul order
        np.testing.assert_allclose(loaded, expected, rtol=1e-5, atol=1e-7)


def test_jax_run_is_converted_to_the_torch_policy(tmp_path):
    run = write_run(tmp_path / "run", "Pixelcopter-PLE-v0", "jax", seed=3)
    policy = run.policy()
    assert isinstance(policy, Policy) and not policy.training
    obs = states_batch("Pixelcopter-PLE-v0", 128)
    np.testing.assert_allclose(policy.numpy_probabilities(obs), run_probabilities(run, obs),
                               rtol=1e-5, atol=1e-7)


def test_card_usage_snippet_plays_an_episode(built, capsys):
    hub = built.hub
    card = (hub / "README.md").read_text()
    (code,) = re.findall(r"```python\n(.*?)```", card, re.S)
    exec(compile(code.replace('"USER/NAME"', repr(str(hub))), "card", "exec"), {})
    assert re.search(r"^return: -?\d", capsys.readouterr().out, re.M)


def test_upload_creates_the_repo_and_uploads_the_folder(tmp_path, monkeypatch):
    run = write_run(tmp_path / "run", "CartPole-v1", "torch")
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    calls = {}

    def create_repo(self, repo_id, **kwargs):
        assert self.token == FAKE_TOKEN
        calls["create_repo"] = (repo_id, kwargs)

    def upload_folder(self, *, repo_id, folder_path, allow_patterns, **kwargs):
        folder = Path(folder_path)
        calls["upload_folder"] = (repo_id, folder, sorted(p.name for p in folder.iterdir()),
                                  sorted(allow_patterns))
        return SimpleNamespace(commit_url=f"https://hub.test/{repo_id}/commit/abc")

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    code, out, err = run_main(["push", str(run.path), "--repo-id", "someone/cartpole-agent",
                               *EVAL])
    assert code == 0, err
    assert calls["create_repo"] == ("someone/cartpole-agent",
                                    {"repo_type": "model", "exist_ok": True})
    repo_id, folder, files, allowed = calls["upload_folder"]
    assert repo_id == "someone/cartpole-agent" and folder == run.path / "hub"
    assert files == sorted(HUB_FILES)  # a folder without a curve or logs (never trained)
    assert allowed == sorted([*HUB_FILES, "learning_curve.png", "logs/**"])
    assert "https://hub.test/someone/cartpole-agent/commit/abc" in out
    assert 'Policy.from_pretrained("someone/cartpole-agent")' in (folder / "README.md").read_text()
    assert_token_absent(out + err, tmp_path)


def assert_token_absent(text: str, root: Path) -> None:
    assert FAKE_TOKEN not in text
    for path in root.rglob("*"):
        if path.is_file():
            assert FAKE_TOKEN.encode() not in path.read_bytes(), path


def _http_error(status: int) -> HfHubHTTPError:
    response = SimpleNamespace(status_code=status, headers={}, request=None)
    return HfHubHTTPError(f"{status} Client Error for token {FAKE_TOKEN}\nmore detail",
                          response=response)


@pytest.mark.parametrize(("error", "message"), [
    (_http_error(401), "401 Unauthorized"),
    (_http_error(403), "403 Forbidden"),
    (_http_error(500), "the Hub answered 500"),
    (ConnectionError(f"connection refused ({FAKE_TOKEN})"), "could not reach the Hub"),
], ids=["401", "403", "500", "connection"])
def test_hub_errors_are_one_line_keep_the_folder_and_hide_the_token(tmp_path, monkeypatch,
                                                                   error, message):
    run = write_run(tmp_path / "run", "CartPole-v1", "torch")
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)

    def fail(self, *args, **kwargs):
        raise error

    monkeypatch.setattr(HfApi, "create_repo", lambda self, *a, **k: None)
    monkeypatch.setattr(HfApi, "upload_folder", fail)
    code, out, err = run_main(["push", str(run.path), "--repo-id", "me/agent", *EVAL])
    assert code == 1
    line = error_line(err)
    assert message in line and f"kept at {run.path / 'hub'}" in line
    assert sorted(p.name for p in (run.path / "hub").iterdir()) == sorted(HUB_FILES)
    assert_token_absent(out + err, tmp_path)


def _subprocess_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("HF_", "HUGGING_FACE_"))}
    home = tmp_path / "hf-home"
    env.update(HF_HOME=str(home), HF_TOKEN_PATH=str(home / "token"), **extra)
    return env


def test_no_token_builds_the_folder_exits_2_and_says_where_it_is(tmp_path):
    run = write_run(tmp_path / "run", "CartPole-v1", "torch")
    before = snapshot(run.path)
    proc = subprocess.run([sys.executable, "-m", "reinforce", "push", str(run.path),
                           "--repo-id", "me/agent", *EVAL], capture_output=True, text=True,
                          timeout=300, env=_subprocess_env(tmp_path))
    assert proc.returncode == 2, proc.stderr
    line = error_line(proc.stderr)
    hub = run.path / "hub"
    assert "no Hugging Face token" in line and "--local-dir" in line
    assert f"kept at {hub}" in line
    assert sorted(p.name for p in hub.iterdir()) == sorted(HUB_FILES)
    after = {k: v for k, v in snapshot(run.path).items() if not k.startswith("hub/")}
    assert after == before  # the run itself is untouched


def test_network_unreachable_exits_1_keeps_the_folder_and_never_shows_the_token(tmp_path):
    run = write_run(tmp_path / "run", "CartPole-v1", "torch")
    env = _subprocess_env(tmp_path, HF_TOKEN=FAKE_TOKEN, HF_ENDPOINT="http://127.0.0.1:9")
    proc = subprocess.run([sys.executable, "-m", "reinforce", "push", str(run.path),
                           "--repo-id", "me/agent", *EVAL], capture_output=True, text=True,
                          timeout=300, env=env)
    assert proc.returncode == 1, proc.stderr
    line = error_line(proc.stderr)
    assert "could not reach the Hub at http://127.0.0.1:9" in line
    assert f"kept at {run.path / 'hub'}" in line
    assert f"built {run.path / 'hub'}" in proc.stdout
    assert sorted(p.name for p in (run.path / "hub").iterdir()) == sorted(HUB_FILES)
    assert_token_absent(proc.stdout + proc.stderr, tmp_path)


@pytest.mark.parametrize("repo_id", ["agent", "me/agent/x", "me/bad..name", "me/-agent",
                                     "me/", "me/has space", "me/" + "a" * 97])
def test_malformed_repo_id_exits_2_before_anything(tmp_path, monkeypatch, repo_id):
    run = write_run(tmp_path / "run", "CartPole-v1", "torch")
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    code, out, err = run_main(["push", str(run.path), "--repo-id", repo_id])
    assert code == 2
    assert "malformed repo id" in error_line(err) and out == ""
    assert not (run.path / "hub").exists()


def test_push_without_repo_id_or_local_dir_is_a_usage_error(tmp_path):
    run = write_run(tmp_path / "run", "CartPole-v1", "torch")
    code, _, err = run_main(["push", str(run.path)])
    assert code == 2 and "needs --repo-id" in error_line(err)


def _break_config(run: Path) -> None:
    (run / "config.json").write_text("{not json")


def _break_weights(run: Path) -> None:
    data = (run / "model.safetensors").read_bytes()
    (run / "model.safetensors").write_bytes(data[: len(data) // 2])


def _drop_weights(run: Path) -> None:
    (run / "model.safetensors").unlink()


@pytest.mark.parametrize(("damage", "message"), [
    (None, "no run folder"),
    (_break_config, "corrupt JSON file"),
    (_break_weights, "corrupt weights file"),
    (_drop_weights, "missing weights file"),
], ids=["missing", "corrupt-config", "corrupt-weights", "no-weights"])
@pytest.mark.parametrize("command", ["push", "record"])
def test_missing_or_corrupt_run_folder_exits_2(tmp_path, damage, message, command):
    run = tmp_path / "run"
    if damage is not None:
        write_run(run, "CartPole-v1", "torch")
        damage(run)
    out = tmp_path / "out"
    argv = (["push", str(run), "--local-dir", str(out)] if command == "push"
            else ["record", str(run), "--out", str(out / "replay.mp4")])
    code, _, err = run_main(argv)
    assert code == 2
    assert message in error_line(err)
    assert not out.exists()


def test_local_dir_with_other_files_is_refused_and_a_built_one_is_rebuilt(tmp_path):
    run = write_run(tmp_path / "run", "CartPole-v1", "torch")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    code, _, err = run_main(["push", str(run.path), "--local-dir", str(busy)])
    assert code == 2 and "notes.txt" in error_line(err)
    assert sorted(p.name for p in busy.iterdir()) == ["notes.txt"]

    hub = tmp_path / "hub"
    for seed in ("1", "2"):
        code, _, err = run_main(["push", str(run.path), "--local-dir", str(hub),
                                 "--episodes", "3", "--seed", seed])
        assert code == 0, err
        assert json.loads((hub / "results.json").read_text())["eval_seed"] == int(seed)
