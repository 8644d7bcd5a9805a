"""``python -m benchmarks.compare``: speed and scores of both backends and the notebook loop.

Each variant (see :mod:`benchmarks.variants`) trains all its seeds in a worker process of its
own (this module run with ``--_worker``), one variant after the other, so that compilation and
peak memory are per variant and no two variants share the CPU. The parent collects one JSON
dict per worker, adds the ratios to the notebook-style loop and the machine description, and
writes ``<out-dir>/<date>-<host>[-<env>][-quick].json``, ``.md`` and ``.png``.

Bad options print one line on stderr and exit with code 2.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shlex
import socket
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks import report, stats
from benchmarks.command import run_command, writable_out_dir
from benchmarks.variants import (
    BASELINE,
    DEFAULT_EPISODES,
    DEFAULT_VARIANTS,
    QUICK,
    VARIANTS,
    variant_config,
)
from reinforce.app.training import cpu_model
from reinforce.config import CERTIFICATION, COMPILE_CACHE_ENV, ConfigError
from reinforce.envs import ENV_IDS

PROG = "benchmarks.compare"
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results"
SCHEMA = "reinforce-benchmark/1"


class UsageError(Exception):
    """A bad option: one line on stderr, exit code 2."""


class WorkerFailed(Exception):
    """A variant's worker process failed (its traceback is on stderr above): exit code 1."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        raise UsageError(message)


def _positive(text: str, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise UsageError(f"{what}: expected a positive integer, got {text!r}") from None
    if value < 1:
        raise UsageError(f"{what}: must be at least 1, got {value}")
    return value


def per_variant(text: str | None, option: str, default_key: str) -> dict[str, int]:
    """``N`` (for ``default_key``) or ``VARIANT=N[,VARIANT=N...]``, as a dict."""
    if text is None:
        return {}
    out: dict[str, int] = {}
    for item in (p.strip() for p in text.split(",")):
        if not item:
            continue
        if "=" in item:
            name, _, value = item.partition("=")
            name = name.strip()
            if name not in VARIANTS and name != "all":
                raise UsageError(f"{option}: unknown variant {name!r}; choose from "
                                 f"{', '.join(VARIANTS)} or all")
            out[name] = _positive(value.strip(), option)
        else:
            out[default_key] = _positive(item, option)
    if not out:
        raise UsageError(f"{option}: expected N or VARIANT=N[,VARIANT=N...]")
    return out


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog=f"python -m {PROG}",
                description="Speed and scores of the notebook-style loop, the torch backend "
                            "and the JAX backend (one seed, many seeds), side by side.")
    p.add_argument("--env", default="CartPole-v1", help=f"one of {', '.join(ENV_IDS)}")
    p.add_argument("--variants", default=",".join(DEFAULT_VARIANTS),
                   help=f"comma-separated, from {', '.join(VARIANTS)} (default "
                        f"{','.join(DEFAULT_VARIANTS)}); ratios need notebook")
    p.add_argument("--seeds", default=None,
                   help="N: seeds of jax-seeds (default 32); or VARIANT=N,... for any variant "
                        "(defaults: " + ", ".join(f"{v.name} {v.default_seeds}"
                                                  for v in VARIANTS.values()) + "); seeds "
                        "are 0..N-1")
    p.add_argument("--budget", default=None,
                   help="training episodes per seed: N for every variant, or VARIANT=N,... "
                        "(default: the preset's, 1000 notebook / 1920 fast on CartPole-v1; "
                        "1000 on Pixelcopter-PLE-v0)")
    p.add_argument("--eval-episodes", default=None,
                   help="evaluation episodes per seed (default 100; 5 with --quick)")
    p.add_argument("--device", default="cpu", help="cpu (default) or gpu")
    p.add_argument("--quick", action="store_true",
                   help="smoke run of under a minute: a few episodes, 1-2 seeds")
    p.add_argument("--out-dir", type=Path, default=DEFAULT_OUT,
                   help="where the .json, .md and .png go (default benchmarks/results/)")
    p.add_argument("--render", type=Path, default=None, metavar="RESULTS_JSON",
                   help="no training: print the tables of a results file and write its .md "
                        "and .png again beside it")
    p.add_argument("--_worker", type=Path, default=None, help=argparse.SUPPRESS)
    return p


# --- the plan ------------------------------------------------------------------------------


def make_plan(args: argparse.Namespace) -> list[dict[str, Any]]:
    """One worker spec per variant, validated (raises UsageError / ConfigError)."""
    if args.env not in ENV_IDS:
        raise UsageError(f"unknown env {args.env!r}; choose one of {', '.join(ENV_IDS)}")
    if args.device not in ("cpu", "gpu"):
        raise UsageError(f"--device must be cpu or gpu, got {args.device!r}")
    names = [n.strip() for n in args.variants.split(",") if n.strip()]
    if not names:
        raise UsageError("--variants: expected at least one variant")
    for name in names:
        if name not in VARIANTS:
            raise UsageError(f"--variants: unknown variant {name!r}; choose from "
                             f"{', '.join(VARIANTS)}")
        if args.env not in VARIANTS[name].envs:
            raise UsageError(f"--variants: {name} runs on {', '.join(VARIANTS[name].envs)} "
                             f"only, not {args.env}")
    if len(set(names)) != len(names):
        raise UsageError("--variants: a variant is named twice")
    seeds = per_variant(args.seeds, "--seeds", "jax-seeds")
    budget = per_variant(args.budget, "--budget", "all")
    eval_episodes = (_positive(args.eval_episodes, "--eval-episodes")
                     if args.eval_episodes is not None
                     else QUICK["eval_episodes"] if args.quick else 100)

    plan = []
    for name in names:
        variant = VARIANTS[name]
        if name in seeds:
            n_seeds = seeds[name]
        elif args.quick:
            n_seeds = QUICK["seeds"].get(name, QUICK["seeds"]["default"])
        else:
            n_seeds = variant.default_seeds
        if name in budget or "all" in budget:
            episodes = budget.get(name, budget.get("all"))
        elif args.quick:
            table = QUICK["episodes"][args.env]
            episodes = table.get(name, table["default"])
        else:
            episodes = DEFAULT_EPISODES[args.env]
        try:
            cfg = variant_config(variant, args.env, episodes, eval_episodes,
                                 QUICK["chunk_updates"] if args.quick else None)
        except ConfigError as exc:
            raise UsageError(f"{name}: {exc}") from None
        plan.append({"variant": name, "config": cfg.to_dict(), "seeds": list(range(n_seeds)),
                     "device": args.device})
    for spec in plan:
        source = VARIANTS[spec["variant"]].cache_of
        if source is None:
            continue
        name = spec["variant"]
        earlier = [s["variant"] for s in plan[:plan.index(spec)]]
        if source not in earlier:
            raise UsageError(f"--variants: {name} loads the programs {source} compiled; "
                             f"name {source} before it")
        if name in seeds or name in budget:
            raise UsageError(f"{name} trains the seeds and budget of {source}; set those "
                             f"for {source}")
        given = plan[earlier.index(source)]
        spec.update(config=given["config"], seeds=given["seeds"])
    return plan


def check_gpu() -> dict[str, Any]:
    """What JAX and torch see, asked in a fresh process (so this one holds no GPU memory)."""
    code = ("import json, jax, torch\n"
            "try:\n    g = [str(d) for d in jax.devices('gpu')]\n"
            "except RuntimeError:\n    g = []\n"
            "print(json.dumps({'jax': g, 'torch': torch.cuda.is_available()}))\n")
    env = dict(os.environ, XLA_PYTHON_CLIENT_PREALLOCATE="false")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    seen = {"jax": [], "torch": False}
    if proc.returncode == 0 and proc.stdout.strip():
        seen = json.loads(proc.stdout.strip().splitlines()[-1])
    if not seen["jax"] and not seen["torch"]:
        raise UsageError("--device gpu: neither JAX nor torch sees a GPU on this machine; "
                         "use --device cpu")
    return seen


def worker_env(device: str, compile_cache: Path) -> dict[str, str]:
    """The worker's environment: the repository importable, the device, and a compilation
    cache folder of the variant's own (empty, so that it compiles cold) or of the variant whose
    programs it loads."""
    env = dict(os.environ)
    env[COMPILE_CACHE_ENV] = str(compile_cache)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    if device == "cpu":
        env["JAX_PLATFORMS"] = "cpu"
        env["CUDA_VISIBLE_DEVICES"] = ""
    else:
        env.pop("JAX_PLATFORMS", None)
        env["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
    return env


def run_variant(spec: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """Train one variant in a worker process; returns the dict it wrote."""
    name = spec["variant"]
    spec_path = workdir / f"{name}.spec.json"
    cache = VARIANTS[name].cache_of or name
    spec = {**spec, "out": str(workdir / f"{name}.result.json"), "spawned_at": time.time()}
    spec_path.write_text(json.dumps(spec))
    print(f"[{name}] {len(spec['seeds'])} seed(s) x {spec['config']['n_training_episodes']} "
          f"episodes ...", file=sys.stderr, flush=True)
    proc = subprocess.run([sys.executable, "-m", PROG, "--_worker", str(spec_path)],
                          env=worker_env(spec["device"], workdir / "compile-cache" / cache),
                          cwd=REPO_ROOT)
    if proc.returncode != 0:
        raise WorkerFailed(f"variant {name} failed (worker exit code {proc.returncode})")
    return json.loads(Path(spec["out"]).read_text())


def worker_main(spec_path: Path) -> int:
    from benchmarks.variants import run_worker

    spec = json.loads(spec_path.read_text())
    result = run_worker(spec)
    Path(spec["out"]).write_text(json.dumps(result))
    return 0


# --- the machine and the files -------------------------------------------------------------


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def machine_info() -> dict[str, Any]:
    return {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model(),
        "versions": {p: _version(p) for p in ("jax", "jaxlib", "torch", "flax", "optax",
                                               "gymnasium", "numpy")},
        "load_avg_start": list(os.getloadavg()),
    }


def output_stem(out_dir: Path, env_id: str, quick: bool, when: datetime.datetime) -> Path:
    """``<date>-<host>[-pixelcopter][-quick]``, with -2, -3... rather than overwrite a file."""
    parts = [] if env_id == "CartPole-v1" else [env_id.split("-")[0].lower()]
    return free_stem(out_dir, [*parts, *(["quick"] if quick else [])], when)


def free_stem(out_dir: Path, parts: list[str], when: datetime.datetime) -> Path:
    """``<date>-<host>[-<part>...]`` in ``out_dir``, with -2, -3... rather than overwrite a
    results file (.json, .md or .png)."""
    host = re.sub(r"[^A-Za-z0-9._-]+", "-", socket.gethostname()) or "host"
    base = "-".join([f"{when:%Y-%m-%d}", host, *parts])
    stem, i = out_dir / base, 2
    while any(stem.with_suffix(s).exists() for s in (".json", ".md", ".png")):
        stem, i = out_dir / f"{base}-{i}", i + 1
    return stem


def write_results(out_dir: Path, name: str, quick: bool, results: dict[str, Any],
                  markdown: str) -> tuple[Path, Path]:
    """Write ``results`` as ``<date>-<host>-<name>[-quick].json`` and its ``markdown`` as the
    ``.md`` beside it (never over an earlier file); returns the two paths."""
    stem = free_stem(out_dir, [name, *(["quick"] if quick else [])],
                     datetime.datetime.fromisoformat(results["created"]))
    json_path, md_path = stem.with_suffix(".json"), stem.with_suffix(".md")
    json_path.write_text(json.dumps(results, indent=1) + "\n")
    md_path.write_text(markdown)
    return json_path, md_path


def add_ratios(results: dict[str, Any]) -> None:
    baseline = results["variants"].get(results["baseline"])
    for v in results["variants"].values():
        v["ratios"] = stats.ratios(v, baseline)


def write_outputs(results: dict[str, Any], stem: Path) -> dict[str, Path]:
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = {"json": stem.with_suffix(".json"), "md": stem.with_suffix(".md"),
             "png": stem.with_suffix(".png")}
    paths["json"].write_text(json.dumps(results, indent=1) + "\n")
    report.plot(results, paths["png"])
    paths["md"].write_text(report.markdown(results, paths["png"].name))
    return paths


def render_main(path: Path) -> int:
    try:
        results = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"--render: cannot read {path}: {exc}") from None
    if results.get("schema") != SCHEMA:
        raise UsageError(f"--render: {path} is not a {SCHEMA} results file")
    stem = path.with_suffix("")
    report.plot(results, stem.with_suffix(".png"))
    stem.with_suffix(".md").write_text(report.markdown(results, stem.with_suffix(".png").name))
    print(report.terminal(results))
    return 0


def run(args: argparse.Namespace, argv: list[str]) -> int:
    plan = make_plan(args)
    gpu = check_gpu() if args.device == "gpu" else None
    writable_out_dir(args.out_dir)

    created = datetime.datetime.now().astimezone()
    machine = machine_info()
    variants: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="reinforce-bench-") as tmp:
        for spec in plan:
            variants[spec["variant"]] = run_variant(spec, Path(tmp))
    machine["load_avg_end"] = list(os.getloadavg())
    machine["jax_devices"] = next((v["jax_devices"] for v in variants.values()
                                   if "jax_devices" in v), None)
    if gpu is not None:
        machine["gpu_seen"] = gpu
    results = {
        "schema": SCHEMA,
        "created": created.isoformat(timespec="seconds"),
        "command": "python -m " + PROG + (" " + shlex.join(argv) if argv else ""),
        "quick": bool(args.quick),
        "env_id": args.env,
        "certification": CERTIFICATION[args.env],
        "device": args.device,
        "baseline": BASELINE if BASELINE in variants else None,
        "machine": machine,
        "definitions": stats.DEFINITIONS,
        "variants": variants,
    }
    add_ratios(results)
    paths = write_outputs(results, output_stem(args.out_dir, args.env, args.quick, created))
    print(report.terminal(results))
    print(f"\nwrote {paths['json']}, {paths['md'].name}, {paths['png'].name}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    return run_command(PROG, lambda: _main(argv), bad_input=(UsageError, ConfigError),
                       failures=(WorkerFailed,))


def _main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args._worker is not None:
        return worker_main(args._worker)
    if args.render is not None:
        return render_main(args.render)
    return run(args, argv)


if __name__ == "__main__":
    sys.exit(main())
