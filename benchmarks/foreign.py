"""REINFORCE on envs that are not ours: each row one cold ``reinforce train`` (compilation
cache off, its own process), with its wall time, the returns its seeds reach, a random
policy's return on the same env, and a published reference.

    python -m benchmarks.foreign                  # every row (about 20 minutes on 2 cores)
    python -m benchmarks.foreign --rows acrobot   # some rows
    python -m benchmarks.foreign --quick          # a smoke run: Catch, 2 seeds, 64 episodes

Writes ``benchmarks/results/<date>-foreign-envs.{json,md}``. A row's "final return" per seed
is the mean of its evaluation (100 episodes, sampled actions, the seed's own policy); the
table gives their median, minimum and maximum over the seeds.
"""

from __future__ import annotations

import datetime
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.command import run_command, writable_out_dir
from benchmarks.compare import DEFAULT_OUT, REPO_ROOT, machine_info, write_results
from benchmarks.report import machine_line, markdown_head, markdown_table, text_table
from reinforce.app.cli import OneLineParser, UsageError
from reinforce.config import COMPILE_CACHE_ENV, preset
from reinforce.evaluation import play_episodes

PROG = "benchmarks.foreign"
SCHEMA = "reinforce-foreign-envs-benchmark/1"

#: Each row: the env, the train arguments beyond it, the episodes a random policy plays, the
#: reference (what, value) and the targets (most seconds, least median return, least ratio of
#: the median to the random policy's return).
ROWS: dict[str, dict[str, Any]] = {
    "acrobot": dict(env="gymnax:Acrobot-v1", train=["--seeds", "32"], random_episodes=200,
                    reference=("gymnax-blines PPO", -80.0), max_s=60.0, min_median=-100.0),
    "catch": dict(env="gymnax:Catch-bsuite", train=["--seeds", "32"], random_episodes=1000,
                  reference=("gymnax-blines PPO", 1.0)),
    "breakout": dict(env="gymnax:Breakout-MinAtar", train=["--seeds", "32"],
                     random_episodes=1000, reference=("gymnax-blines PPO", 28.0),
                     max_s=900.0, min_random_ratio=10.0),
    "lunarlander": dict(env="gymnasium:LunarLander-v3", train=["--seeds", "1"],
                        random_episodes=100, reference=("gymnasium's reward threshold", 200.0)),
}
QUICK = {"quick": dict(env="gymnax:Catch-bsuite", random_episodes=100,
                       train=["--seeds", "2", "--episodes", "64", "--eval-episodes", "10"],
                       reference=("gymnax-blines PPO", 1.0))}


def build_parser() -> OneLineParser:
    p = OneLineParser(prog=f"python -m {PROG}", description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", default=",".join(ROWS),
                   help=f"comma-separated rows to run, of {', '.join(ROWS)} (default all)")
    p.add_argument("--quick", action="store_true", help="smoke run: Catch, 2 seeds, tiny")
    p.add_argument("--out-dir", type=Path, default=DEFAULT_OUT,
                   help="where the .json and .md go (default benchmarks/results/)")
    return p


def random_return(env_id: str, episodes: int) -> float:
    """The mean return of uniformly random actions over ``episodes`` episodes."""
    cfg = preset("fast", env_id)
    from reinforce.envs import spec

    n = spec(env_id).num_actions
    returns = play_episodes(cfg, lambda obs: np.full((obs.shape[0], n), 1.0 / n), episodes, 0)
    return float(np.mean(returns))


def train_once(row: dict[str, Any], scratch: Path) -> dict[str, Any]:
    """One cold ``reinforce train`` of the row: its process time and the seeds' returns."""
    out = Path(tempfile.mkdtemp(prefix="run-", dir=scratch)) / "run"
    args = ["--env", row["env"], *row["train"]]
    env = {**os.environ, COMPILE_CACHE_ENV: "off"}
    command = [sys.executable, "-m", "reinforce", "train", *args, "--out", str(out), "--quiet"]
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    process = time.perf_counter() - start
    if proc.returncode != 0:
        last = (proc.stderr.strip() or proc.stdout.strip() or "no output").splitlines()[-1]
        raise UsageError(f"`reinforce train {shlex.join(args)}` failed (exit "
                         f"{proc.returncode}): {last}")
    evaluation = json.loads((out / "eval.json").read_text())
    config = json.loads((out / "config.json").read_text())
    means = [r["mean_reward"] for r in evaluation["runs"]]
    return {"train": ["reinforce", "train", *args], "backend": evaluation["backend"],
            "process_s": round(process, 2), "printed_s": evaluation["wall_seconds"],
            "updates": config["train"]["n_training_episodes"]
            // config["train"]["batch_episodes"],
            "batch_episodes": config["train"]["batch_episodes"], "returns": means,
            "median": statistics.median(means), "min": min(means), "max": max(means)}


def judge(row: dict[str, Any], result: dict[str, Any]) -> list[str]:
    """The row's targets, each ``met`` or ``missed``, in words."""
    verdicts = []
    if "max_s" in row:
        ok = result["process_s"] <= row["max_s"]
        verdicts.append(f"<= {row['max_s']:g} s: {'met' if ok else 'missed'}")
    if "min_median" in row:
        ok = result["median"] >= row["min_median"]
        verdicts.append(f"median >= {row['min_median']:g}: {'met' if ok else 'missed'}")
    if "min_random_ratio" in row:
        ratio = result["median"] / result["random"] if result["random"] > 0 else float("nan")
        ok = ratio >= row["min_random_ratio"]
        verdicts.append(f"median >= {row['min_random_ratio']:g}x random ({ratio:.1f}x): "
                        f"{'met' if ok else 'missed'}")
    return verdicts


def measure(args, argv: list[str]) -> dict[str, Any]:
    if args.quick:
        rows = QUICK
    else:
        names = [n.strip() for n in args.rows.split(",") if n.strip()]
        unknown = [n for n in names if n not in ROWS]
        if unknown or not names:
            raise UsageError(f"--rows: unknown row(s) {', '.join(unknown) or '(none)'}; choose "
                             f"from {', '.join(ROWS)}")
        rows = {n: ROWS[n] for n in names}
    created = datetime.datetime.now().astimezone()
    machine = machine_info()
    results = []
    with tempfile.TemporaryDirectory(prefix="reinforce-foreign-") as scratch:
        for name, row in rows.items():
            print(f"[{PROG}] {name}: training {row['env']}", file=sys.stderr, flush=True)
            result = {"row": name, "env": row["env"], **train_once(row, Path(scratch)),
                      "random": random_return(row["env"], row["random_episodes"]),
                      "random_episodes": row["random_episodes"],
                      "reference": {"what": row["reference"][0],
                                    "return": row["reference"][1]}}
            result["targets"] = judge(row, result)
            results.append(result)
    machine["load_avg_end"] = list(os.getloadavg())
    return {"schema": SCHEMA, "created": created.isoformat(timespec="seconds"),
            "command": "python -m " + PROG + (" " + shlex.join(argv) if argv else ""),
            "quick": bool(args.quick), "machine": machine, "rows": results}


def table(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = ["env", "backend", "seeds", "updates x episodes", "wall (process)",
              "final return: median [min, max]", "random policy", "reference", "targets"]
    rows = []
    for r in results["rows"]:
        rows.append([r["env"], r["backend"], str(len(r["returns"])),
                     f"{r['updates']} x {r['batch_episodes']}", f"{r['process_s']:.1f} s",
                     f"{r['median']:.2f} [{r['min']:.2f}, {r['max']:.2f}]",
                     f"{r['random']:.2f}",
                     f"{r['reference']['return']:g} ({r['reference']['what']})",
                     "; ".join(r["targets"]) or "-"])
    return header, rows


def _machine_line(results: dict[str, Any]) -> str:
    return machine_line(results, ("jax",), "cold compilation cache")


def markdown(results: dict[str, Any]) -> str:
    commands = "\n".join(f"- `{shlex.join(r['train'])}`" for r in results["rows"])
    return "\n".join([
        *markdown_head("REINFORCE beyond the course's two envs", results,
                       _machine_line(results)),
        "Each row is one cold `reinforce train` (default preset; its own process, "
        "compilation included). Final return: each seed's evaluation mean over 100 "
        "episodes (sampled actions); random policy: uniform actions, same env.",
        "",
        markdown_table(*table(results)),
        "",
        commands,
        "",
    ])


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    return run_command(PROG, lambda: _main(argv))


def _main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    writable_out_dir(args.out_dir)
    results = measure(args, argv)
    paths = write_results(args.out_dir, "foreign-envs", args.quick, results, markdown(results))
    print(_machine_line(results) + "\n\n" + text_table(*table(results)))
    print(f"\nwrote {paths[0]}, {paths[1].name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
