"""``python -m benchmarks.envs``: env steps per second, one env at a time and vectorized.

Single env: each gymnasium view through ``gymnasium.make`` (with the wrappers a course user
gets), random actions (each with probability 1/2), ``reset()`` whenever an episode
ends (the resets' time counts, their steps do not): our host envs, the JAX-backed view they
replaced (:class:`~reinforce.envs.gym_wrapper.FunctionalEnv`, one jitted call per step) and
gymnasium's own ``CartPole-v1``.

Vector env: ``gymnasium.make_vec(id, num_envs=N)``, random actions, after warm-up steps that
compile it; its autoreset is part of every step.

Every number is the median of ``--repeats`` measurements of about ``--seconds`` seconds each;
the repeats go round all the variants in turn, so that a change in the machine's load touches
them alike. Writes ``<out-dir>/<date>-<host>-envs[-quick].json`` (every measurement) and
``.md`` (the tables), and prints the tables. Bad options print one line on stderr and exit
with code 2.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.command import run_command, writable_out_dir
from benchmarks.compare import DEFAULT_OUT, machine_info, write_results
from benchmarks.report import machine_line, markdown_head, markdown_table, text_table
from reinforce.app.cli import OneLineParser, UsageError, positive_int

PROG = "benchmarks.envs"
SCHEMA = "reinforce-env-benchmark/1"
#: The single-env variants: (gymnasium id, implementation).
SINGLE = (
    ("Pixelcopter-PLE-v0", "host"),
    ("Pixelcopter-PLE-v0", "jax"),
    ("reinforce/CartPole-v1", "host"),
    ("reinforce/CartPole-v1", "jax"),
    ("CartPole-v1", "gymnasium"),
)
IMPLEMENTATIONS = {
    "host": "ours: plain Python on the host",
    "jax": "ours before: one jitted JAX call per step (FunctionalEnv)",
    "gymnasium": "gymnasium's own (numpy)",
}
VECTOR_IDS = ("Pixelcopter-PLE-v0", "reinforce/CartPole-v1")
NUM_ENVS = (1, 64, 1024)
QUICK = {"seconds": 0.05, "repeats": 1, "num_envs": (1, 16)}
#: The reference of the "x gymnasium" ratios.
REFERENCE = ("CartPole-v1", "gymnasium")


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog=f"python -m {PROG}", description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=positive_float, default=2.0,
                   help="length of one measurement (default 2)")
    p.add_argument("--repeats", type=positive_int, default=5,
                   help="measurements per variant, the median is reported (default 5)")
    p.add_argument("--quick", action="store_true",
                   help=f"smoke run: {QUICK['seconds']} s, {QUICK['repeats']} repeat, vector "
                        f"envs at N = {', '.join(map(str, QUICK['num_envs']))}")
    p.add_argument("--out-dir", type=Path, default=DEFAULT_OUT,
                   help="where the .json and .md go (default benchmarks/results/)")
    p.add_argument("--render", type=Path, default=None, metavar="RESULTS_JSON",
                   help="measure nothing: print the tables of a results file and write its "
                        ".md again")
    return p


# --- the envs ------------------------------------------------------------------------------


def make_single(gym_id: str, impl: str):
    """The single env of a variant, through ``gymnasium.make``."""
    import gymnasium

    import reinforce  # noqa: F401  (registers our ids)

    if impl != "jax":
        return gymnasium.make(gym_id)
    from gymnasium.envs.registration import EnvSpec

    from reinforce import envs
    from reinforce.envs.gym_wrapper import FunctionalEnv

    env_id = "CartPole-v1" if gym_id == "reinforce/CartPole-v1" else gym_id
    functional, params = envs.make(env_id)
    # The registered view's spec with the old entry point: gymnasium.make adds the same wrappers.
    spec = EnvSpec(f"benchmark/{env_id.split('-')[0]}-jax-v0",
                   entry_point=lambda: FunctionalEnv(functional, params))
    return gymnasium.make(spec)


def single_rate(env, seconds: float, chunks: list[list[int]]) -> tuple[float, int, int]:
    """(steps/s, steps, episodes ended) of about ``seconds`` of random steps (whole chunks of
    actions, the clock read between chunks)."""
    step, reset = env.step, env.reset
    steps = episodes = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for actions in chunks:
            for action in actions:
                _, _, terminated, truncated, _ = step(action)
                if terminated or truncated:
                    reset()
                    episodes += 1
            steps += len(actions)
            now = time.perf_counter()
            if now >= deadline:
                return steps / (now - start), steps, episodes


def vector_rate(env, seconds: float, actions: np.ndarray) -> tuple[float, int, int]:
    """(steps/s, steps, calls) of about ``seconds`` of random vector steps."""
    calls = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for a in actions:
            env.step(a)
        calls += len(actions)
        now = time.perf_counter()
        if now >= deadline:
            return calls * env.num_envs / (now - start), calls * env.num_envs, calls


class Variant:
    """One row of a table: how to measure it once, and its measurements."""

    def __init__(self, key: dict[str, Any], measure: Callable[[], tuple[float, int, int]]):
        self.key, self.measure, self.runs = key, measure, []

    def result(self) -> dict[str, Any]:
        rates = [r[0] for r in self.runs]
        return {**self.key, "steps_per_s": statistics.median(rates), "repeats": rates,
                "steps": sum(r[1] for r in self.runs)}


def variants(num_envs: tuple[int, ...], seconds: float) -> tuple[list[Variant], list[Variant]]:
    """The single-env and vector-env variants, made and warmed up (compiled)."""
    import gymnasium

    rng = np.random.default_rng(0)
    chunks = rng.integers(0, 2, (100, 100)).tolist()  # Python ints, as a course loop passes
    single = []
    for gym_id, impl in SINGLE:
        env = make_single(gym_id, impl)
        env.reset(seed=0)
        single_rate(env, 0.0, chunks)  # warm-up: compiles the JAX view
        single.append(Variant({"id": gym_id, "impl": impl},
                              lambda env=env: single_rate(env, seconds, chunks)))
    vector = []
    for gym_id in VECTOR_IDS:
        for n in num_envs:
            env = gymnasium.make_vec(gym_id, num_envs=n)
            env.reset(seed=0)
            batch = rng.integers(0, 2, (16, n))
            vector_rate(env, 0.0, batch[:2])  # warm-up: compiles the step
            vector.append(Variant({"id": gym_id, "num_envs": n},
                                  lambda env=env, batch=batch: vector_rate(env, seconds, batch)))
    return single, vector


def measure(args: argparse.Namespace, argv: list[str]) -> dict[str, Any]:
    seconds = QUICK["seconds"] if args.quick else args.seconds
    repeats = QUICK["repeats"] if args.quick else args.repeats
    num_envs = QUICK["num_envs"] if args.quick else NUM_ENVS
    created = datetime.datetime.now().astimezone()
    machine = machine_info()
    single, vector = variants(num_envs, seconds)
    for r in range(repeats):
        for v in single + vector:
            v.runs.append(v.measure())
        print(f"[{PROG}] repeat {r + 1}/{repeats} done", file=sys.stderr, flush=True)
    machine["load_avg_end"] = list(os.getloadavg())
    import jax

    machine["jax_devices"] = [str(d) for d in jax.devices()]
    return {
        "schema": SCHEMA,
        "created": created.isoformat(timespec="seconds"),
        "command": "python -m " + PROG + (" " + shlex.join(argv) if argv else ""),
        "quick": bool(args.quick),
        "settings": {"seconds": seconds, "repeats": repeats, "num_envs": list(num_envs)},
        "machine": machine,
        "single": [v.result() for v in single],
        "vector": [v.result() for v in vector],
    }


# --- the tables ----------------------------------------------------------------------------


def _int(x: float) -> str:
    return f"{round(x):,}"


def _range(row: dict[str, Any]) -> str:
    """The slowest and the fastest of a row's measurements."""
    return f"{_int(min(row['repeats']))} - {_int(max(row['repeats']))}"


def _ratio(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:.2f}x" if x < 10 else f"{x:.1f}x" if x < 100 else f"{x:,.0f}x"


def single_rows(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """One row per single env; ratios to gymnasium's CartPole-v1 and to our JAX-backed view of
    the same env, all measured in the same run."""
    rate = {(r["id"], r["impl"]): r["steps_per_s"] for r in results["single"]}
    reference = rate.get(REFERENCE)
    header = ["env", "implementation", "steps/s", "min - max", "x gymnasium CartPole-v1",
              "x our JAX-backed view"]
    rows = []
    for r in results["single"]:
        jax_view = rate.get((r["id"], "jax"))
        rows.append([r["id"], IMPLEMENTATIONS[r["impl"]], _int(r["steps_per_s"]), _range(r),
                     _ratio(r["steps_per_s"] / reference if reference else None),
                     _ratio(r["steps_per_s"] / jax_view if jax_view else None)])
    return header, rows


def vector_rows(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """One row per vector env and N; ratio to our single host env of the same id."""
    host = {r["id"]: r["steps_per_s"] for r in results["single"] if r["impl"] == "host"}
    header = ["env", "num_envs", "steps/s", "min - max", "x our single env"]
    rows = [[r["id"], str(r["num_envs"]), _int(r["steps_per_s"]), _range(r),
             _ratio(r["steps_per_s"] / host[r["id"]] if r["id"] in host else None)]
            for r in results["vector"]]
    return header, rows


def _machine_line(results: dict[str, Any]) -> str:
    s = results["settings"]
    return machine_line(results, ("gymnasium", "jax", "numpy"),
                        f"median of {s['repeats']} x {s['seconds']:g} s per number")


def terminal(results: dict[str, Any]) -> str:
    return "\n\n".join([_machine_line(results), "single env, gymnasium.make, random actions",
                        text_table(*single_rows(results)),
                        "vector env, gymnasium.make_vec, random actions",
                        text_table(*vector_rows(results))])


def markdown(results: dict[str, Any]) -> str:
    return "\n".join([
        *markdown_head("Env speed", results, _machine_line(results)),
        "## One env, one step at a time (`gymnasium.make`, random actions)",
        "",
        markdown_table(*single_rows(results)),
        "",
        "## Vector envs (`gymnasium.make_vec`, random actions, autoreset included)",
        "",
        markdown_table(*vector_rows(results)),
        "",
    ])


# --- main ----------------------------------------------------------------------------------


def render_main(path: Path) -> int:
    try:
        results = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"--render: cannot read {path}: {exc}") from None
    if not isinstance(results, dict) or results.get("schema") != SCHEMA:
        raise UsageError(f"--render: {path} is not a {SCHEMA} results file")
    path.with_suffix(".md").write_text(markdown(results))
    print(terminal(results))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    return run_command(PROG, lambda: _main(argv))


def _main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.render is not None:
        return render_main(args.render)
    writable_out_dir(args.out_dir)
    results = measure(args, argv)
    paths = write_results(args.out_dir, "envs", args.quick, results, markdown(results))
    print(terminal(results))
    print(f"\nwrote {paths[0]}, {paths[1].name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
