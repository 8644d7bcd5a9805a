"""The compilation cache: a second process training the same config loads the compiled programs
from ``$REINFORCE_COMPILE_CACHE`` instead of compiling them, and gets the same weights."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from reinforce.app.runs import TIMING_COLUMNS
from reinforce.checkpoint import load_arrays
from reinforce.config import COMPILE_CACHE_ENV, compile_cache_dir
from reinforce_jax.devices import use_compile_cache

ARGS = ["train", "--env", "CartPole-v1", "--seeds", "2", "--episodes", "32", "--batch-episodes",
        "4", "--eval-episodes", "4", "--quiet"]

# Counts the persistent-cache hits JAX reports while the CLI trains, then prints them.
COUNT_HITS = """
import sys
import jax
from reinforce.app.cli import main
hits = []
HIT = '/jax/compilation_cache/cache_hits'
jax.monitoring.register_event_listener(lambda event, **kw: hits.append(1) if event == HIT else 0)
code = main(sys.argv[1:])
print('cache hits', len(hits))
sys.exit(code)
"""


def _train(out: Path, cache: str, script: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, JAX_PLATFORMS="cpu", **{COMPILE_CACHE_ENV: cache})
    env.pop("XLA_FLAGS", None)
    head = [sys.executable, "-c", script] if script else [sys.executable, "-m", "reinforce"]
    proc = subprocess.run([*head, *ARGS, "--out", str(out)], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def _entries(cache: Path) -> set[str]:
    return {p.name for p in cache.iterdir()} if cache.exists() else set()


def test_a_second_process_loads_the_programs_and_trains_the_same_weights(tmp_path):
    cache = tmp_path / "cache"
    _train(tmp_path / "first", str(cache))
    filled = _entries(cache)
    assert any(name.startswith("jit_run") for name in filled), sorted(filled)

    second = _train(tmp_path / "second", str(cache), COUNT_HITS)
    hits = int(second.stdout.strip().splitlines()[-1].split()[-1])
    assert hits >= 2, second.stdout  # at least the training chunk and the evaluation
    # The trainer's programs were loaded, not compiled and written again. (Small helper
    # programs compile in about the cache's 0.1 s threshold: they may come and go.)
    programs = {name for name in _entries(cache) if name.startswith(("jit_run", "jit_evaluate"))}
    assert programs == {name for name in filled if name.startswith(("jit_run", "jit_evaluate"))}
    first, again = tmp_path / "first", tmp_path / "second"
    weights = [load_arrays(d / "model.safetensors")[0] for d in (first, again)]
    assert weights[0].keys() == weights[1].keys()
    for name in weights[0]:
        np.testing.assert_array_equal(weights[0][name], weights[1][name], err_msg=name)
    # Every metric and evaluation number is equal; only the clock differs.
    assert _without_wall(first / "metrics.csv") == _without_wall(again / "metrics.csv")
    evals = [json.loads((d / "eval.json").read_text()) for d in (first, again)]
    for e in evals:
        e.pop("wall_seconds")
    assert evals[0] == evals[1]


def _without_wall(path: Path) -> list[list[str]]:
    """metrics.csv without its timing columns."""
    rows = [line.split(",") for line in path.read_text().splitlines()]
    keep = [i for i, name in enumerate(rows[0]) if name not in TIMING_COLUMNS]
    return [[row[i] for i in keep] for row in rows]


def test_off_writes_nothing(tmp_path):
    home = tmp_path / "xdg"
    env_cache = home / "reinforce" / "jax"
    proc = subprocess.run(
        [sys.executable, "-m", "reinforce", *ARGS, "--out", str(tmp_path / "run")],
        env=dict(os.environ, JAX_PLATFORMS="cpu", XDG_CACHE_HOME=str(home),
                 **{COMPILE_CACHE_ENV: "off"}),
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not env_cache.exists()
    assert (tmp_path / "run" / "model.safetensors").exists()


def test_an_unusable_folder_trains_without_the_cache(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    proc = _train(tmp_path / "run", str(blocker / "cache"))
    assert "Traceback" not in proc.stderr
    assert (tmp_path / "run" / "model.safetensors").exists()


@pytest.mark.parametrize(("value", "xdg", "expected"), [
    (None, "/x/cache", Path("/x/cache/reinforce/jax")),
    ("/data/jax-cache", "/x/cache", Path("/data/jax-cache")),
    ("off", "/x/cache", None),
    ("OFF", None, None),
    ("0", None, None),
    ("", None, None),
])
def test_the_folder_comes_from_the_environment(monkeypatch, value, xdg, expected):
    for name, v in ((COMPILE_CACHE_ENV, value), ("XDG_CACHE_HOME", xdg)):
        if v is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, v)
    assert compile_cache_dir() == expected


def test_default_is_under_the_home_cache(monkeypatch):
    monkeypatch.delenv(COMPILE_CACHE_ENV, raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert compile_cache_dir() == Path.home() / ".cache" / "reinforce" / "jax"


def test_off_returns_none_and_leaves_jax_alone(monkeypatch):
    import jax

    before = jax.config.jax_compilation_cache_dir
    monkeypatch.setenv(COMPILE_CACHE_ENV, "off")
    assert use_compile_cache() is None
    assert jax.config.jax_compilation_cache_dir == before
