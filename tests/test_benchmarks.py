"""``python -m benchmarks.compare``: the quick run end to end, its numbers, its options."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks import compare, envs, report, stats
from benchmarks.variants import DEFAULT_VARIANTS, CompileClock

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.compare", "--quick", "--out-dir", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    files = sorted(out.iterdir())
    (json_path,) = [f for f in files if f.suffix == ".json"]
    return json.loads(json_path.read_text()), json_path, proc.stdout


def test_quick_run_writes_every_variant_with_sane_numbers(quick_run):
    results, path, stdout = quick_run
    assert results["schema"] == compare.SCHEMA
    assert results["quick"] is True and results["env_id"] == "CartPole-v1"
    assert results["baseline"] == "notebook"
    assert list(results["variants"]) == list(DEFAULT_VARIANTS)
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}-.+-quick", path.stem)
    machine = results["machine"]
    assert machine["cpu_count"] >= 1 and machine["versions"]["jax"] and machine["jax_devices"]
    for name, v in results["variants"].items():
        n = v["n_seeds"]
        assert n == len(v["seeds"]) == len(v["per_seed"]) >= 1, name
        assert v["env_steps"] > 0 and v["padded_steps"] >= 0, name
        assert v["steps_per_s"] > 0 and v["steps_per_s_excl_compile"] >= v["steps_per_s"], name
        assert 0 < v["train_s"] <= v["wall_s"] and v["eval_s"] >= 0, name
        assert 0 <= v["compile_s"] <= v["wall_s"] and v["compile_train_s"] <= v["compile_s"]
        assert v["peak_rss_mib"] > 0 and v["startup_s"] >= 0, name
        assert v["updates"] == sum(s["updates"] for s in v["per_seed"]) > 0, name
        assert v["env_steps"] == sum(s["env_steps"] for s in v["per_seed"]), name
        assert 0 <= v["certified"] <= n and v["time_to_threshold_s"]["reached"] <= n
        for s in v["per_seed"]:
            ev = s["eval"]
            assert ev["n_episodes"] == 5, name  # --quick evaluates 5 episodes per seed
            assert math.isclose(ev["score"], ev["mean_reward"] - ev["std_reward"])
            assert ev["mean_reward"] >= 1  # CartPole: every episode earns at least 1
            assert len(s["curve"]["wall"]) == len(s["curve"]["return"]) > 0
        assert set(v["ratios"]) == {"steps_per_s", "steps_per_s_excl_compile",
                                    "steps_per_s_second_half", "wall_per_seed",
                                    "time_to_threshold"}
        assert v["steps_per_s_second_half"] > 0
    nb = results["variants"]["notebook"]
    assert nb["ratios"]["steps_per_s"] == pytest.approx(1.0)
    assert nb["padded_steps"] == 0 and nb["updates"] == nb["episodes_per_seed"]
    # The JAX backend spends most of a quick run compiling, and JAX reports it.
    assert results["variants"]["jax"]["compile_s"] > 0.5
    assert results["variants"]["jax-seeds"]["n_seeds"] == 2
    # jax-seeds again, its programs from the compilation cache: less compiling (tracing and
    # lowering remain, and take longer on a busy machine), same agents.
    fresh, cached = results["variants"]["jax-seeds"], results["variants"]["jax-seeds-cached"]
    assert cached["compile_s"] < fresh["compile_s"]
    assert [s["eval"] for s in cached["per_seed"]] == [s["eval"] for s in fresh["per_seed"]]
    # The terminal shows the same table as the markdown, from the same numbers.
    for row in report.speed_rows(results)[1]:
        assert row[0] in stdout and row[5] in stdout


def test_quick_run_writes_markdown_and_plot_that_match_the_json(quick_run):
    results, path, _ = quick_run
    md = path.with_suffix(".md").read_text()
    for rows in (report.speed_rows, report.score_rows, report.readme_rows):
        assert report.markdown_table(*rows(results)) in md
    assert path.with_suffix(".png").name in md
    png = path.with_suffix(".png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    # --render rebuilds the same markdown from the JSON alone.
    before = md
    assert compare.main(["--render", str(path)]) == 0
    assert path.with_suffix(".md").read_text() == before


@pytest.mark.parametrize("argv, message", [
    (["--env", "MountainCar-v0"], "unknown env"),
    (["--variants", "notebook,tensorflow"], "unknown variant"),
    (["--variants", "notebook-ours", "--env", "Pixelcopter-PLE-v0"], "CartPole-v1 only"),
    (["--seeds", "0"], "at least 1"),
    (["--seeds", "torch=x"], "positive integer"),
    (["--budget", "jax=8"], "batch_episodes"),
    (["--budget", "bogus=3"], "unknown variant"),
    (["--device", "tpu"], "cpu or gpu"),
    (["--eval-episodes", "-1"], "at least 1"),
    (["--variants", "notebook,jax-seeds-cached"], "name jax-seeds before it"),
    (["--variants", "jax-seeds-cached,jax-seeds"], "name jax-seeds before it"),
    (["--seeds", "jax-seeds-cached=4"], "trains the seeds and budget of jax-seeds"),
    (["--no-such-option"], "unrecognized"),
])
def test_bad_options_exit_2_with_one_line(argv, message, capsys, tmp_path):
    assert compare.main([*argv, "--out-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and err.startswith("benchmarks.compare:")
    assert not any(tmp_path.iterdir())


def test_gpu_without_a_gpu_is_a_usage_error(capsys, tmp_path):
    seen = subprocess.run(
        [sys.executable, "-c", "import torch; print(torch.cuda.is_available())"],
        capture_output=True, text=True,
    ).stdout.strip()
    if seen == "True":
        pytest.skip("this machine has a GPU")
    assert compare.main(["--device", "gpu", "--quick", "--out-dir", str(tmp_path)]) == 2
    assert "sees a GPU" in capsys.readouterr().err


def test_plan_defaults_and_overrides():
    args = compare.build_parser().parse_args([])
    plan = {p["variant"]: p for p in compare.make_plan(args)}
    assert list(plan) == list(DEFAULT_VARIANTS)
    assert [len(plan[v]["seeds"]) for v in DEFAULT_VARIANTS] == [2, 2, 1, 32, 32]
    assert plan["notebook"]["config"]["batch_episodes"] == 1
    assert plan["notebook"]["config"]["n_training_episodes"] == 1000
    assert plan["jax"]["config"]["n_training_episodes"] == 1920
    assert all(p["config"]["n_evaluation_episodes"] == 100 for p in plan.values())
    args = compare.build_parser().parse_args(
        ["--seeds", "8", "--budget", "320,notebook=50", "--variants", "notebook,jax-seeds",
         "--env", "Pixelcopter-PLE-v0"])
    plan = {p["variant"]: p for p in compare.make_plan(args)}
    assert list(plan) == ["notebook", "jax-seeds"] and len(plan["jax-seeds"]["seeds"]) == 8
    assert plan["notebook"]["config"]["n_training_episodes"] == 50
    assert plan["jax-seeds"]["config"]["n_training_episodes"] == 320
    assert plan["jax-seeds"]["config"]["env_id"] == "Pixelcopter-PLE-v0"
    # The cached variant trains exactly what the variant it loads the programs of trains.
    args = compare.build_parser().parse_args(
        ["--seeds", "6", "--budget", "jax-seeds=640", "--variants", "jax-seeds,jax-seeds-cached"])
    plan = {p["variant"]: p for p in compare.make_plan(args)}
    assert plan["jax-seeds-cached"]["seeds"] == plan["jax-seeds"]["seeds"] == list(range(6))
    assert plan["jax-seeds-cached"]["config"] == plan["jax-seeds"]["config"]
    assert plan["jax-seeds-cached"]["config"]["n_training_episodes"] == 640


def test_rolling_window_and_time_to_threshold():
    r = np.array([0, 0, 10, 10, 10, 10], float)
    assert stats.rolling_mean(r, 2).tolist() == [0, 0, 5, 10, 10, 10]
    wall = np.arange(1, 7, dtype=float)
    assert stats.time_to_threshold(r, wall, 2, 10) == 4.0
    assert stats.time_to_threshold(r, wall, 2, 11) is None
    # A window that is not yet full never counts.
    assert stats.time_to_threshold(np.array([20.0, 0.0]), np.array([1.0, 2.0]), 3, 5) is None
    assert stats.window_updates(1) == 100 and stats.window_updates(16) == 7


def test_summarize_counts_each_shared_clock_once():
    def run(seed, clock, wall):
        return {"seed": seed, "clock": clock, "episodic_return": [1.0, 3.0],
                "env_steps": [10, 30], "padded_steps": [5, 0], "wall": wall,
                "finished_s": wall[-1] + 1, "eval_returns": [2.0, 4.0]}

    together = stats.summarize({"batch_episodes": 100, "chunk_updates": 1,
                                "runs": [run(0, 0, [1.0, 2.0]), run(1, 0, [1.0, 2.0])],
                                "compile_train_s": 1.0}, threshold=2.0)
    assert together["train_s"] == 2.0 and together["env_steps"] == 80
    assert together["steps_per_s"] == 40.0 and together["steps_per_s_excl_compile"] == 80.0
    assert together["eval"]["score_median"] == 2.0 and together["certified"] == 2
    assert together["time_to_threshold_s"] == {"median": 2.0, "reached": 2, "window_updates": 1}
    apart = stats.summarize({"batch_episodes": 100, "chunk_updates": 1,
                             "runs": [run(0, 0, [1.0, 2.0]), run(1, 1, [1.0, 2.0])]}, 2.0)
    assert apart["train_s"] == 4.0 and apart["steps_per_s"] == 20.0
    ratios = stats.ratios({**together, "wall_s": 4.0}, {**apart, "wall_s": 8.0})
    assert ratios["steps_per_s"] == 2.0 and ratios["wall_per_seed"] == 2.0
    assert ratios["time_to_threshold"] == 1.0


def test_second_half_speed_follows_the_reports():
    # Reported per update: the second half is updates 2-3, after the report at t=2.
    per_update = stats.summarize({"batch_episodes": 1, "chunk_updates": 1, "runs": [
        {"seed": 0, "clock": 0, "episodic_return": [1.0] * 4, "env_steps": [10, 10, 40, 40],
         "padded_steps": [0] * 4, "wall": [1.0, 2.0, 3.0, 6.0], "finished_s": 7.0,
         "eval_returns": [1.0]}]}, threshold=2.0)
    assert per_update["steps_per_s_second_half"] == 80 / 4.0
    # Reported by chunks of 2 (5 updates): the middle (update 2) starts a chunk; two runs on
    # one clock count their steps together and the time once.
    chunked = {"seed": 0, "clock": 0, "episodic_return": [1.0] * 5,
               "env_steps": [1, 1, 30, 30, 40], "padded_steps": [0] * 5,
               "wall": [5.0, 5.0, 7.0, 7.0, 8.0], "finished_s": 9.0, "eval_returns": [1.0]}
    together = stats.summarize({"batch_episodes": 1, "chunk_updates": 2,
                                "runs": [chunked, {**chunked, "seed": 1}]}, threshold=2.0)
    assert together["steps_per_s_second_half"] == 2 * 100 / 3.0
    # Update 2 reported mid-chunk: the second half starts at the next chunk.
    assert stats.second_half_start(np.array([1.0, 3.0, 3.0, 3.0, 4.0])) == 4
    assert stats.second_half_start(np.array([2.0])) == 0
    # No chunk starts in the second half: the last chunk.
    assert stats.second_half_start(np.array([1.0, 2.0, 2.0, 2.0, 2.0])) == 1


def test_compile_clock_counts_nested_intervals_once():
    clock = CompileClock.__new__(CompileClock)
    clock.intervals = [(0.0, 4.0), (1.0, 2.0), (3.0, 6.0), (10.0, 11.0)]
    assert clock.seconds() == 7.0
    assert clock.seconds(5.0, 10.5) == 1.5


def test_the_docs_tables_match_the_results_files_they_cite():
    pages = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    checked = 0
    for page in pages:
        text = page.read_text()
        for name in sorted(set(re.findall(r"benchmarks/results/([\w.-]+\.json)", text))):
            results = json.loads((REPO / "benchmarks" / "results" / name).read_text())
            if not isinstance(results, dict) or "schema" not in results:
                continue  # a certify or sweep record: quoted in prose, not rendered as a table
            if results["schema"] == envs.SCHEMA:  # python -m benchmarks.envs: its two tables
                tables = [envs.markdown_table(*rows(results))
                          for rows in (envs.single_rows, envs.vector_rows)]
            else:
                tables = [report.markdown_table(*report.readme_rows(results))]
            assert all(table in text for table in tables), f"{page.name}: {name}"
            checked += 1
    assert checked >= 2  # the compare and env-speed tables at least


# --- the device check ---------------------------------------------------------------------


def test_device_check_dry_run_times_the_returns_on_the_cpu(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "benchmarks.device_check", "--device", "cpu",
                           "--parts", "returns", "--out-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (path,) = tmp_path.glob("*-device-check-cpu.json")
    data = json.loads(path.read_text())
    measured = data["parts"]["returns"]["measured"]
    assert measured["platform"] == "cpu"
    impls = {(r["T"], r["B"], r["impl"]) for r in measured["rows"]}
    assert {(500, 32, "scan"), (500, 32, "associative"), (10000, 64, "platform")} <= impls
    assert all(r["max_rel_error"] < 1e-4 and r["median_ms"] > 0 for r in measured["rows"])
    assert "| 500 x 32 | associative |" in path.with_suffix(".md").read_text()


@pytest.mark.parametrize(("argv", "message"), [
    (["--parts", "tests,nope"], "--parts: unknown part(s) nope"),
    (["--device", "tpu"], "argument --device: invalid choice: 'tpu'"),
    (["--device", "gpu"], "--device gpu: JAX sees no GPU on this machine"),
    (["--parts", "pixels", "--pixels-seconds", "0"],
     "argument --pixels-seconds: must be at least 1"),
])
def test_device_check_bad_options_one_line_exit_2(argv, message, tmp_path):
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, "-m", "benchmarks.device_check", *argv, "--out-dir",
                           str(tmp_path)], capture_output=True, text=True, timeout=120,
                          cwd=REPO, env=env)
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("benchmarks.device_check: error: ") and message in line, line
    assert not list(tmp_path.iterdir())


def test_device_check_times_the_runs_under_each_of_its_xla_flags(tmp_path, monkeypatch):
    from benchmarks import device_check

    seen = []

    def fake_child(args, device, limit, xla_flags=None):
        out_dir = Path(args[args.index("--out-dir") + 1])
        seen.append((out_dir.name, xla_flags, device_check.child_env(device, xla_flags)))
        out_dir.mkdir(parents=True)
        variant = {"device": "cpu", "n_seeds": 32, "wall_s": 4.0 + len(seen), "compile_s": 2.5,
                   "certified": 32, "eval": {"score_median": 500.0}}
        (out_dir / "r.json").write_text(json.dumps({"command": "compare",
                                                    "variants": {"jax-seeds": variant}}))
        return {"exit_code": 0, "seconds": 1.0, "output_tail": ""}

    monkeypatch.setattr(device_check, "run_child", fake_child)
    part = device_check.part_compile_flags("gpu", tmp_path)
    flags = device_check.COMPILE_FLAGS["gpu"]
    assert [(name, f) for name, f, _ in seen] == [
        (f"flags-{i}-{run}", f) for i, f in enumerate(flags) for run in ("cartpole-32",
                                                                         "pixelcopter")]
    assert all(env["XLA_FLAGS"] == f for _, f, env in seen)
    assert part["exit_code"] == 0 and len(part["rows"]) == 2 * len(flags)
    md = device_check.markdown({"device": "gpu", "created": "now", "command": "c",
                                "machine": {}, "parts": {"compile-flags": part}})
    assert "| (defaults) | cartpole-32 | 32 | 5.00 | 2.50 | 32/32 |" in md
    assert f"| `{flags[1]}` | pixelcopter | 32 | 8.00 | 2.50 | 32/32 |" in md


def test_device_check_reads_chunk_walls_and_learning_curves(tmp_path):
    from benchmarks import device_check

    metrics = tmp_path / "metrics.csv"
    rows = ["run,seed,lr,update,episodes,episodic_return,wall_seconds"]
    for run in (0, 1):  # 4 updates in chunks of 2: compile 30 s, then 5 s per chunk
        rows += [f"{run},{run},0.1,{u},{u * 8},{u + 10 * run},{30 + 5 * ((u - 1) // 2)}"
                 for u in (1, 2, 3, 4)]
    metrics.write_text("\n".join(rows) + "\n")
    assert device_check.chunk_walls(metrics) == [30.0, 35.0]
    curve = device_check.learning_curve(metrics, points=2)
    assert [(c["run"], c["update"], c["episodic_return"], c["wall_s"]) for c in curve] == [
        (0, 2, 1.5, 30.0), (0, 4, 3.5, 35.0), (1, 2, 11.5, 30.0), (1, 4, 13.5, 35.0)]


# --- certification reliability ------------------------------------------------------------------


def test_certify_counts_the_evaluations_that_reach_the_threshold(tmp_path):
    from run_folders import write_run

    from benchmarks import certify
    from reinforce.app.runs import RunFolder

    run = tmp_path / "run"
    write_run(run, "CartPole-v1", "torch")
    out = tmp_path / "certify.json"
    proc = subprocess.run([sys.executable, "-m", "benchmarks.certify", str(run),
                           "--evaluations", "3", "--episodes", "4", "--long", "6", "--json",
                           str(out)], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (row,) = json.loads(out.read_text())["runs"]
    assert row["evaluations"] == 3 and len(row["scores"]) == 3 and row["long"]["n_episodes"] == 6
    assert row["reached"] == sum(s >= 350 for s in row["scores"]) == 0  # an untrained policy
    again = certify.certify(RunFolder.load(run), 3, 4, 6, 1, "cpu")[0]
    assert again["scores"] == row["scores"]  # the same seeds, the same episodes
    assert "0/3 evaluations of 4 episodes reach 350" in proc.stdout


def test_certify_bad_arguments_one_line_exit_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "benchmarks.certify", str(tmp_path / "none")],
                          capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("benchmarks.certify: error: no run folder")


def test_sweep_ranks_the_settings_of_a_run_folder(tmp_path):
    """A CartPole sweep of two learning rates, two seeds each, in one program: the setting
    that learns (lr 0.07) ranks above the one that barely moves (lr 1e-4)."""
    from reinforce.app.cli import main

    run = tmp_path / "run"
    assert main(["train", "--lr", "1e-4,0.07", "--seeds", "2", "--episodes", "640",
                 "--eval-episodes", "2", "--quiet", "--out", str(run)]) == 0
    md, out = tmp_path / "sweep.md", tmp_path / "sweep.json"
    proc = subprocess.run([sys.executable, "-m", "benchmarks.sweep", str(run), "--evaluations",
                           "2", "--episodes", "5", "--long", "10", "--md", str(md), "--json",
                           str(out)], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    ranked = json.loads(out.read_text())["settings"]
    assert [g["settings"]["lr"] for g in ranked] == [0.07, 1e-4]
    assert [g["seeds"] for g in ranked] == [[0, 1], [0, 1]]
    assert all(g["evaluations"] == 4 and len(g["long_scores"]) == 2 for g in ranked)
    best, worst = ranked
    assert best["median_long_score"] > worst["median_long_score"]
    table = md.read_text()
    assert "| rank | lr | seeds |" in table and table.count("\n| 1 | 0.07 | 0,1 |") == 1
    assert "0.07" in proc.stdout.splitlines()[2]  # the first row of the printed table


def test_sweep_bad_arguments_one_line_exit_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "benchmarks.sweep", str(tmp_path / "none"),
                           "--episodes", "0"], capture_output=True, text=True, timeout=120,
                          cwd=REPO)
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("benchmarks.sweep: error: argument --episodes")
