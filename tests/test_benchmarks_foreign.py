"""``python -m benchmarks.foreign``: the quick run end to end, its table, its targets."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("gymnax")  # the [gymnax] extra; the dev extra installs it

from benchmarks import foreign  # noqa: E402


def test_quick_run_trains_and_writes_the_table(tmp_path):
    assert foreign.main(["--quick", "--out-dir", str(tmp_path)]) == 0
    (path,) = tmp_path.glob("*-foreign-envs-quick.json")
    results = json.loads(path.read_text())
    (row,) = results["rows"]
    assert results["schema"] == foreign.SCHEMA and row["env"] == "gymnax:Catch-bsuite"
    assert row["backend"] == "jax" and len(row["returns"]) == 2
    assert (row["updates"], row["batch_episodes"]) == (4, 16)
    assert row["min"] <= row["median"] <= row["max"] and -1 <= row["random"] <= 1
    assert 0 < row["printed_s"] < row["process_s"]
    assert foreign.markdown_table(*foreign.table(results)) in path.with_suffix(".md").read_text()


def test_targets_are_judged_from_the_numbers():
    row = foreign.ROWS["breakout"]
    met = foreign.judge(row, {"process_s": 800.0, "median": 4.0, "random": 0.35})
    assert met == ["<= 900 s: met", "median >= 10x random (11.4x): met"]
    missed = foreign.judge(foreign.ROWS["acrobot"],
                           {"process_s": 61.0, "median": -100.5, "random": -500.0})
    assert missed == ["<= 60 s: missed", "median >= -100: missed"]


def test_an_unknown_row_is_refused_in_one_line(tmp_path, capsys):
    assert foreign.main(["--rows", "nope", "--out-dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err == ("benchmarks.foreign: error: --rows: unknown row(s) "
                                       "nope; choose from acrobot, catch, breakout, "
                                       "lunarlander\n")
    assert list(tmp_path.iterdir()) == []
