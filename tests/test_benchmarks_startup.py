"""``python -m benchmarks.startup``: the quick run end to end, its table, its options."""

from __future__ import annotations

import json
import re

import pytest

from benchmarks import startup


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("startup-bench")
    argv = ["--quick", "--baseline", str(startup.REPO_ROOT), "--out-dir", str(out)]
    assert startup.main(argv) == 0
    (json_path,) = out.glob("*.json")
    return json.loads(json_path.read_text()), json_path


def test_quick_run_times_every_checkout(quick_run):
    results, path = quick_run
    assert results["schema"] == startup.SCHEMA and results["quick"] is True
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}-.+-startup-quick", path.stem)
    assert results["train"] == ["reinforce", "train", *startup.QUICK["train"]]
    assert [c["path"] for c in results["checkouts"]] == [str(startup.REPO_ROOT)] * 2
    for entry in results["checkouts"]:
        (run,) = entry["runs"]
        # The process also imports and writes the run folder: it takes longer than training.
        assert 0 < run["printed_s"] < run["process_s"]


def test_table_and_ratios_come_from_the_json(quick_run):
    results, path = quick_run
    md = path.with_suffix(".md").read_text()
    header, rows = startup.rows(results)
    assert startup.markdown_table(header, rows) in md
    this, base = (c["runs"][0] for c in results["checkouts"])
    assert rows[0][:2] == ["this one", results["checkouts"][0]["commit"]]
    assert rows[0][5] == f"{this['printed_s'] / base['printed_s']:.2f}"
    assert rows[0][6] == f"{this['process_s'] / base['process_s']:.2f}"
    assert rows[1][5:] == ["1.00", "1.00"]


@pytest.mark.parametrize("argv, message", [
    (["--baseline", "."], "not a checkout of this project"),
    (["--rounds", "0"], "at least 1"),
    (["--no-such-option"], "unrecognized"),
    (["--rounds", "1", "--", "--env", "Nope"], "unknown env 'Nope'"),
])
def test_bad_options_exit_2_with_one_line(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert startup.main(["--out-dir", str(tmp_path / "out"), *argv]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[-1].startswith("benchmarks.startup: error:") and message in err[-1]
    assert not list((tmp_path / "out").glob("*.json"))
