"""``python -m benchmarks.certify RUN_DIR``: how reliably a run's agents reach the certification
score, judged the way the course judges one push: score = mean - std over 100 episodes.

A Pixelcopter score is noisy (a near-exponential return has std ~ mean), so one 100-episode
evaluation says little. For every run of a run folder this plays ``--evaluations`` independent
evaluations of ``--episodes`` episodes each (seeds ``--seed``, ``--seed + 1``, ...; the
stochastic policy, as the course evaluates) and one long evaluation of ``--long`` episodes,
through the run's own backend, and prints how many evaluations reach the course's
certification score, their scores, and the long evaluation's mean, std and score.

Bad arguments print one line and exit 2.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from benchmarks.command import run_command
from reinforce.app import backends
from reinforce.app.cli import OneLineParser, UsageError, positive_int
from reinforce.app.runs import RunFolder
from reinforce.checkpoint import CheckpointError
from reinforce.config import CERTIFICATION, DEVICES, ConfigError
from reinforce.evaluation import summarize

PROG = "benchmarks.certify"


def certify(folder: RunFolder, evaluations: int, episodes: int, long: int, seed: int,
            device: str = "auto") -> list[dict]:
    """Per run: the scores of the short evaluations, how many reach the threshold, and the long
    evaluation."""
    backend = backends.get(folder.backend)
    threshold = CERTIFICATION[folder.cfg.env_id]
    out = []
    for i, spec in enumerate(folder.runs):
        weights = folder.load_weights(i)
        scores = [summarize(backend.evaluate(folder.cfg, weights, episodes, seed + k,
                                             device)).score for k in range(evaluations)]
        whole = summarize(backend.evaluate(folder.cfg, weights, long, seed + evaluations,
                                           device))
        out.append({**spec.to_dict(), "label": spec.label(" ", " "), "threshold": threshold,
                    "evaluations": evaluations, "episodes": episodes,
                    "reached": int(sum(s >= threshold for s in scores)),
                    "scores": [round(s, 2) for s in scores],
                    "long": {"episodes": long, **whole.to_dict()}})
    return out


def report(rows: list[dict]) -> str:
    lines = []
    for row in rows:
        scores = np.asarray(row["scores"])
        long = row["long"]
        lines.append(
            f"run {row['label']}: {row['reached']}/{row['evaluations']} "
            f"evaluations of {row['episodes']} episodes reach {row['threshold']:g} (scores "
            f"median {np.median(scores):.1f}, min {scores.min():.1f}, max {scores.max():.1f}); "
            f"{long['episodes']} episodes: mean {long['mean_reward']:.1f}, std "
            f"{long['std_reward']:.1f}, score {long['score']:.1f}")
    return "\n".join(lines)


def evaluation_parser(prog: str, description: str) -> OneLineParser:
    """The options of a command that certifies a run folder's agents: the folder, the
    evaluations to play, the device and ``--json``."""
    parser = OneLineParser(prog=f"python -m {prog}", description=description)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--evaluations", type=positive_int, default=20,
                        help="independent short evaluations per run (default 20)")
    parser.add_argument("--episodes", type=positive_int, default=100,
                        help="episodes of a short evaluation (default 100, as the course)")
    parser.add_argument("--long", type=positive_int, default=1000,
                        help="episodes of the long evaluation (default 1000)")
    parser.add_argument("--seed", type=positive_int, default=1,
                        help="seed of the first evaluation (default 1)")
    parser.add_argument("--device", choices=DEVICES, default="auto")
    parser.add_argument("--json", type=Path, default=None, metavar="FILE",
                        help="also write the numbers to FILE")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = evaluation_parser(PROG, __doc__.split("\n\n")[0])

    def body() -> int:
        args = parser.parse_args(argv)
        folder = RunFolder.load_finished(args.run_dir)
        rows = certify(folder, args.evaluations, args.episodes, args.long, args.seed,
                       args.device)
        print(report(rows))
        if args.json is not None:
            args.json.write_text(json.dumps({"run_dir": str(args.run_dir), "runs": rows},
                                            indent=1))
        return 0

    return run_command(PROG, body, bad_input=(UsageError, CheckpointError, ConfigError))


if __name__ == "__main__":
    sys.exit(main())
