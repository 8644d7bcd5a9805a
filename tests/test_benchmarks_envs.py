"""``python -m benchmarks.envs``: the quick run end to end, its tables, its options."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import envs

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("env-bench")
    proc = subprocess.run([sys.executable, "-m", "benchmarks.envs", "--quick", "--out-dir",
                           str(out)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (json_path,) = out.glob("*.json")
    return json.loads(json_path.read_text()), json_path, proc.stdout


def test_quick_run_measures_every_variant(quick_run):
    results, path, _ = quick_run
    assert results["schema"] == envs.SCHEMA and results["quick"] is True
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}-.+-envs-quick", path.stem)
    assert [(r["id"], r["impl"]) for r in results["single"]] == list(envs.SINGLE)
    n = envs.QUICK["num_envs"]
    assert [(r["id"], r["num_envs"]) for r in results["vector"]] == [
        (i, k) for i in envs.VECTOR_IDS for k in n]
    for row in results["single"] + results["vector"]:
        assert len(row["repeats"]) == 1 and row["steps_per_s"] == row["repeats"][0] > 0
        assert row["steps"] >= row.get("num_envs", 1)
    machine = results["machine"]
    assert machine["cpu_count"] >= 1 and len(machine["load_avg_end"]) == 3
    assert results["settings"] == {"seconds": envs.QUICK["seconds"], "repeats": 1,
                                   "num_envs": list(n)}


def test_tables_and_ratios_come_from_the_json(quick_run):
    results, path, stdout = quick_run
    md = path.with_suffix(".md").read_text()
    for rows in (envs.single_rows, envs.vector_rows):
        assert envs.markdown_table(*rows(results)) in md
        assert envs.text_table(*rows(results)) in stdout
    header, rows = envs.single_rows(results)
    by_impl = {(r[0], r[1]): r for r in rows}
    gym = by_impl[("CartPole-v1", envs.IMPLEMENTATIONS["gymnasium"])]
    assert gym[4] == "1.00x" and gym[5] == "-"
    rate = {(r["id"], r["impl"]): r["steps_per_s"] for r in results["single"]}
    for env_id in ("Pixelcopter-PLE-v0", "reinforce/CartPole-v1"):
        assert by_impl[(env_id, envs.IMPLEMENTATIONS["jax"])][5] == "1.00x"
        host = by_impl[(env_id, envs.IMPLEMENTATIONS["host"])]
        ratio = rate[(env_id, "host")] / rate[(env_id, "jax")]
        assert host[5] == envs._ratio(ratio)
        assert host[3] == f"{host[2]} - {host[2]}"  # one measurement: min = max = median
    # --render writes the same markdown from the JSON alone.
    path.with_suffix(".md").unlink()
    assert envs.main(["--render", str(path)]) == 0
    assert path.with_suffix(".md").read_text() == md


@pytest.mark.parametrize("argv, message", [
    (["--seconds", "0"], "positive number of seconds"),
    (["--seconds", "nan"], "positive number of seconds"),
    (["--seconds", "soon"], "expected a number of seconds"),
    (["--repeats", "0"], "at least 1"),
    (["--no-such-option"], "unrecognized"),
    (["--render", "missing.json"], "cannot read"),
])
def test_bad_options_exit_2_with_one_line(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert envs.main([*argv, "--out-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and err.startswith("benchmarks.envs:")
    assert not (tmp_path / "out").exists()


def test_render_refuses_other_results(tmp_path, capsys):
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"schema": "reinforce-benchmark/1"}))
    assert envs.main(["--render", str(other)]) == 2
    assert "is not a reinforce-env-benchmark/1 results file" in capsys.readouterr().err
