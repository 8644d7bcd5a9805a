"""``python -m benchmarks.startup``: how long ``reinforce train`` takes from a cold start, in
this checkout and in others (an older commit, for a ratio measured in the same run).

Each round runs the same ``reinforce train`` command once in every checkout, one after the
other, as a fresh process with JAX's compilation cache off (``REINFORCE_COMPILE_CACHE=off``),
so every program is compiled; the rounds interleave the checkouts, so that a change in the
machine's load touches them alike. Two times are kept per run: the wall time the command
prints (training, compiling and evaluating) and the process's (imports and writing the run
folder included). A checkout is a folder holding the ``reinforce`` package, e.g. ``git
worktree add /tmp/before d2b063d``; it runs with this Python and its packages.

Writes ``<out-dir>/<date>-<host>-startup[-quick].json`` (every run) and ``.md`` (medians and
ratios to the first ``--baseline``), and prints the table. Bad options print one line on
stderr and exit with code 2.
"""

from __future__ import annotations

import datetime
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.command import run_command, writable_out_dir
from benchmarks.compare import DEFAULT_OUT, REPO_ROOT, machine_info, write_results
from benchmarks.report import machine_line, markdown_head, markdown_table, text_table
from reinforce.app.cli import OneLineParser, UsageError, positive_int

PROG = "benchmarks.startup"
SCHEMA = "reinforce-startup-benchmark/1"
#: The command of the issue's target: 32 CartPole seeds with the default preset.
DEFAULT_TRAIN = ["--env", "CartPole-v1", "--seeds", "32"]
QUICK = {"rounds": 1, "train": ["--env", "CartPole-v1", "--seeds", "2", "--episodes", "64",
                                "--eval-episodes", "5"]}
#: The line of ``reinforce train`` that gives its wall time.
WALL_LINE = re.compile(r"wall time ([0-9.]+) s")


def build_parser() -> OneLineParser:
    p = OneLineParser(prog=f"python -m {PROG}", description=__doc__.split("\n\n")[0])
    p.add_argument("--baseline", type=Path, action="append", default=[], metavar="CHECKOUT",
                   help="another checkout to run the same command in (repeatable); ratios "
                        "are to the first")
    p.add_argument("--rounds", type=positive_int, default=5,
                   help="runs per checkout, the median is reported (default 5)")
    p.add_argument("--quick", action="store_true",
                   help=f"smoke run: {QUICK['rounds']} round of `reinforce train "
                        f"{shlex.join(QUICK['train'])}`")
    p.add_argument("--out-dir", type=Path, default=DEFAULT_OUT,
                   help="where the .json and .md go (default benchmarks/results/)")
    p.add_argument("train", nargs="*", metavar="-- TRAIN_ARGS",
                   help=f"arguments of `reinforce train` (default {shlex.join(DEFAULT_TRAIN)})")
    return p


def checkout(path: Path) -> Path:
    """``path`` resolved, if it holds the ``reinforce`` package (``UsageError`` if not)."""
    if not (path / "reinforce" / "__init__.py").is_file():
        raise UsageError(f"--baseline {path}: not a checkout of this project (no "
                         f"reinforce/__init__.py there)")
    return path.resolve()


def run_once(tree: Path, train_args: list[str], scratch: Path) -> dict[str, Any]:
    """One cold ``reinforce train`` in ``tree``: its printed and its process wall time."""
    out = Path(tempfile.mkdtemp(prefix="run-", dir=scratch)) / "run"
    env = {**os.environ, "PYTHONPATH": str(tree), "REINFORCE_COMPILE_CACHE": "off"}
    command = [sys.executable, "-m", "reinforce", "train", *train_args, "--out", str(out),
               "--quiet"]
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True)
    process = time.perf_counter() - start
    found = WALL_LINE.search(proc.stdout)
    if proc.returncode != 0 or found is None:
        last = (proc.stderr.strip() or proc.stdout.strip() or "no output").splitlines()[-1]
        raise UsageError(f"`reinforce train` failed in {tree} (exit {proc.returncode}): {last}")
    return {"printed_s": float(found.group(1)), "process_s": round(process, 3)}


def measure(args, argv: list[str]) -> dict[str, Any]:
    trees = [REPO_ROOT, *(checkout(p) for p in args.baseline)]
    rounds = QUICK["rounds"] if args.quick else args.rounds
    train_args = args.train or (QUICK["train"] if args.quick else DEFAULT_TRAIN)
    created = datetime.datetime.now().astimezone()
    machine = machine_info()
    runs: list[list] = [[] for _ in trees]
    with tempfile.TemporaryDirectory(prefix="reinforce-startup-") as scratch:
        for r in range(rounds):
            for tree, kept in zip(trees, runs, strict=True):
                kept.append(run_once(tree, train_args, Path(scratch)))
            print(f"[{PROG}] round {r + 1}/{rounds} done", file=sys.stderr, flush=True)
    machine["load_avg_end"] = list(os.getloadavg())
    return {
        "schema": SCHEMA,
        "created": created.isoformat(timespec="seconds"),
        "command": "python -m " + PROG + (" " + shlex.join(argv) if argv else ""),
        "quick": bool(args.quick),
        "train": ["reinforce", "train", *train_args],
        "machine": machine,
        "checkouts": [{"path": str(t), "commit": _commit(t), "runs": kept}
                      for t, kept in zip(trees, runs, strict=True)],
    }


def _commit(tree: Path) -> str | None:
    """The checkout's commit, ``-dirty`` when it has changes (None outside git)."""
    proc = subprocess.run(["git", "-C", str(tree), "describe", "--always", "--dirty"],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        return None
    return proc.stdout.strip() or None


# --- the table -----------------------------------------------------------------------------


def medians(entry: dict[str, Any]) -> tuple[float, float]:
    return (statistics.median(r["printed_s"] for r in entry["runs"]),
            statistics.median(r["process_s"] for r in entry["runs"]))


def rows(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """One row per checkout: medians, every run, and ratios to the first baseline (the second
    checkout), all measured in the same run."""
    entries = results["checkouts"]
    base = medians(entries[1]) if len(entries) > 1 else None
    header = ["checkout", "commit", "wall time printed (s)", "process (s)", "runs (printed)",
              "x baseline (printed)", "x baseline (process)"]
    out = []
    for i, e in enumerate(entries):
        printed, process = medians(e)
        name = "this one" if i == 0 else f"baseline {i}"
        out.append([name, e["commit"] or "-", f"{printed:.2f}", f"{process:.2f}",
                    " ".join(f"{r['printed_s']:.1f}" for r in e["runs"]),
                    f"{printed / base[0]:.2f}" if base else "-",
                    f"{process / base[1]:.2f}" if base else "-"])
    return header, out


def _machine_line(results: dict[str, Any]) -> str:
    return machine_line(results, ("jax",), "cold compilation cache")


def terminal(results: dict[str, Any]) -> str:
    return "\n\n".join([_machine_line(results), f"`{shlex.join(results['train'])}`",
                        text_table(*rows(results))])


def markdown(results: dict[str, Any]) -> str:
    return "\n".join([
        *markdown_head("Start-up of `reinforce train`", results, _machine_line(results)),
        f"Each round runs `{shlex.join(results['train'])}` once in every checkout, in turn; "
        "medians over the rounds.",
        "",
        markdown_table(*rows(results)),
        "",
    ])


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    return run_command(PROG, lambda: _main(argv))


def _main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    writable_out_dir(args.out_dir)
    results = measure(args, argv)
    paths = write_results(args.out_dir, "startup", args.quick, results, markdown(results))
    print(terminal(results))
    print(f"\nwrote {paths[0]}, {paths[1].name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
