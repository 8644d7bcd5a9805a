"""``python -m benchmarks.sweep RUN_DIR``: rank the settings of a sweep by how reliably their
agents reach the certification score.

A sweep is one training whose runs differ in their own settings (``reinforce train --lr
1e-3,3e-3 --entropy-coef 0,0.01 --seeds 2``: every combination, every seed, one JAX program).
Every run is judged as ``benchmarks.certify`` judges it (``--evaluations`` independent
evaluations of ``--episodes`` episodes, and one of ``--long`` episodes, through the run's own
backend); the runs of one setting (its seeds) are pooled, and the settings are ranked by the
share of evaluations that reach the score, then by the median long score. The table is printed
and, with ``--md``, written as markdown (``--json`` keeps the numbers).

Bad arguments print one line and exit 2.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.certify import certify, evaluation_parser
from benchmarks.command import run_command
from benchmarks.report import markdown_table, text_table
from reinforce.app.cli import UsageError
from reinforce.app.runs import RunFolder
from reinforce.checkpoint import CheckpointError, atomic_write_text
from reinforce.config import ConfigError

PROG = "benchmarks.sweep"


def rank(folder: RunFolder, rows: list[dict]) -> list[dict[str, Any]]:
    """The settings of ``folder``'s runs, best first, each with its seeds' certify ``rows``
    pooled: evaluations reaching the score, their scores, the long scores."""
    groups: dict[tuple, list[dict]] = {}
    for spec, row in zip(folder.runs, rows, strict=True):
        groups.setdefault(spec.settings, []).append(row)
    ranked = []
    for settings, runs in groups.items():
        scores = [s for row in runs for s in row["scores"]]
        long = [row["long"]["score"] for row in runs]
        ranked.append({
            "settings": dict(settings),
            "seeds": [row["seed"] for row in runs],
            "reached": sum(row["reached"] for row in runs),
            "evaluations": sum(row["evaluations"] for row in runs),
            "median_score": float(np.median(scores)),
            "min_score": float(np.min(scores)),
            "long_scores": long,
            "long_means": [row["long"]["mean_reward"] for row in runs],
            "median_long_score": float(np.median(long)),
        })
    ranked.sort(key=lambda g: (-g["reached"] / g["evaluations"], -g["median_long_score"]))
    return ranked


def table(ranked: list[dict[str, Any]], threshold: float, long: int) -> tuple[list, list]:
    names = list(ranked[0]["settings"])
    header = ["rank", *names, "seeds", f"evaluations >= {threshold:g}", "median score",
              "min score", f"{long}-episode scores", f"{long}-episode means"]
    rows = [[str(i + 1), *(f"{g['settings'][n]:g}" for n in names),
             ",".join(map(str, g["seeds"])), f"{g['reached']}/{g['evaluations']}",
             f"{g['median_score']:.1f}", f"{g['min_score']:.1f}",
             ", ".join(f"{s:.1f}" for s in g["long_scores"]),
             ", ".join(f"{m:.0f}" for m in g["long_means"])]
            for i, g in enumerate(ranked)]
    return header, rows


def main(argv: list[str] | None = None) -> int:
    parser = evaluation_parser(PROG, __doc__.split("\n\n")[0])
    parser.add_argument("--md", type=Path, default=None, metavar="FILE",
                        help="also write the table as markdown to FILE")

    def body() -> int:
        args = parser.parse_args(argv)
        folder = RunFolder.load_finished(args.run_dir)
        rows = certify(folder, args.evaluations, args.episodes, args.long, args.seed,
                       args.device)
        ranked = rank(folder, rows)
        threshold = rows[0]["threshold"]
        header, cells = table(ranked, threshold, args.long)
        print(text_table(header, cells))
        if args.md is not None:
            atomic_write_text(args.md, f"Settings of `{args.run_dir}` ranked by "
                                       f"{args.evaluations} evaluations of {args.episodes} "
                                       f"episodes per run (`python -m {PROG}`).\n\n"
                              + markdown_table(header, cells) + "\n")
        if args.json is not None:
            atomic_write_text(args.json, json.dumps(
                {"run_dir": str(args.run_dir), "settings": ranked, "runs": rows}, indent=1))
        return 0

    return run_command(PROG, body, bad_input=(UsageError, CheckpointError, ConfigError))


if __name__ == "__main__":
    sys.exit(main())
