"""``python -m benchmarks.device_check``: everything that needs checking on an accelerator, in one
command of a few minutes.

On a GPU (``--device gpu``, the default) it

1. runs the parity, returns, precision and trace tests there (JAX's default device is the GPU;
   torch's parity tests stay on the CPU, as everywhere);
2. times the returns implementations (sequential scan, parallel scan, the platform's choice,
   and a numpy loop on the host) at ``[T, B]`` = ``[500, 32]``, ``[500, 4096]``,
   ``[10000, 64]`` and ``[10000, 4096]``, with their error against a float64 oracle;
3. runs ``benchmarks.compare --device gpu`` on CartPole-v1 (a short notebook loop, the torch
   backend on CUDA, JAX with one seed and with 32 seeds) and again with 2048 seeds, and a
   short Pixelcopter run (compile time and speed);
4. measures the gymnasium views' and the host batch's env steps per second;
5. only when asked (``--parts compile-flags``): times the CartPole (32 seeds) and Pixelcopter
   runs of 3. again under each ``XLA_FLAGS`` of :data:`COMPILE_FLAGS` (autotuning, Triton
   GEMMs and command buffers off on a GPU), to find where a short run's compile time goes;
6. only when asked (``--parts pixels``): trains the GPU pixel preset (``--preset pixels-gpu``,
   2 seeds; its whole budget takes hours on one H200 at this version's speed, so
   ``--pixels-seconds S`` sizes the run to fit), evaluates every run on 100 and 1000 episodes
   and reports its crash causes;

and writes ``<out-dir>/<date>-<host>-device-check-<device>.json`` and ``.md``. ``--device cpu``
runs the same on the CPU with smaller sizes: a dry run of the script. Every part runs in a
process of its own with a time limit; a part that fails is recorded, and the others go on.

The accelerator machine needs the project's dependencies importable (gymnasium included);
run from the repository root.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.command import run_command
from benchmarks.compare import DEFAULT_OUT, REPO_ROOT, machine_info, output_stem
from reinforce.app.cli import OneLineParser, UsageError, config_from_args, positive_int
from reinforce.app.cli import build_parser as train_parser

PROG = "benchmarks.device_check"
SCHEMA = "reinforce-device-check/1"

#: The test files that must pass on every device.
TESTS = ("tests/test_parity.py", "tests/test_parity_cnn.py", "tests/test_returns.py",
         "tests/reinforce_jax/test_precision.py", "tests/envs/test_cartpole_traces.py",
         "tests/envs/test_pixelcopter_traces.py")

#: ``[T, B]`` sizes of the returns timing, per device.
RETURNS_SIZES = {"gpu": ((500, 32), (500, 4096), (10000, 64), (10000, 4096)),
                 "cpu": ((500, 32), (10000, 64))}

#: The benchmark runs: (name, arguments of ``benchmarks.compare``), per device.
COMPARE_RUNS = {
    "gpu": (
        ("cartpole", ["--variants", "notebook,torch,jax,jax-seeds", "--seeds",
                      "notebook=1,torch=1,jax-seeds=32", "--budget", "notebook=100,torch=640"]),
        ("cartpole-2048", ["--variants", "jax-seeds", "--seeds", "2048"]),
        ("pixelcopter", ["--env", "Pixelcopter-PLE-v0", "--variants", "jax-seeds", "--seeds",
                         "4", "--budget", "3200", "--eval-episodes", "20"]),
    ),
    "cpu": (
        ("cartpole", ["--variants", "notebook,torch,jax,jax-seeds", "--quick"]),
        ("pixelcopter", ["--env", "Pixelcopter-PLE-v0", "--variants", "jax-seeds", "--seeds",
                         "2", "--budget", "64", "--eval-episodes", "4"]),
    ),
}

#: ``XLA_FLAGS`` of the compile-flags part, per device ("": XLA's defaults).
COMPILE_FLAGS = {
    "gpu": ("", "--xla_gpu_autotune_level=0", "--xla_gpu_enable_triton_gemm=false",
            "--xla_gpu_enable_command_buffer=",
            "--xla_gpu_autotune_level=0 --xla_gpu_enable_triton_gemm=false "
            "--xla_gpu_enable_command_buffer="),
    "cpu": ("", "--xla_cpu_parallel_codegen_split_count=1"),
}
#: The runs the compile-flags part times under each of its flags: JAX's 32 CartPole seeds
#: alone, and the Pixelcopter run of COMPARE_RUNS.
COMPILE_FLAG_RUNS = {
    device: (("cartpole-32", ["--variants", "jax-seeds", "--seeds", "32",
                              *(["--quick"] if device == "cpu" else [])]),
             *((name, extra) for name, extra in runs if name == "pixelcopter"))
    for device, runs in COMPARE_RUNS.items()}

#: Seconds each part may take before it is stopped (compile-flags: each of its runs).
LIMITS = {"tests": 200, "returns": 60, "compare": 180, "views": 60, "pixels": 1200,
          "compile-flags": 120}
#: The parts run when --parts does not say; ``compile-flags`` and ``pixels`` (the GPU pixel
#: preset's training) only when asked for.
DEFAULT_PARTS = "tests,returns,compare,views"
PARTS = ("tests", "returns", "compare", "views", "compile-flags", "pixels")

#: The pixel policies' run: the GPU preset (a CPU dry run: a few updates of the CPU one).
PIXELS_RUNS = {
    "gpu": ["--preset", "pixels-gpu", "--seeds", "2"],
    "cpu": ["--preset", "pixels", "--seeds", "2", "--episodes", "64", "--eval-episodes", "10",
            "--lr-warmup", "0"],
}
#: Updates per chunk of the speed probe (and of the run it sizes) under --pixels-seconds.
PIXELS_PROBE_CHUNK = 10


def preset_config(args: list[str]):
    """The ``TrainConfig`` that ``reinforce train --env Pixelcopter-PLE-v0 ARGS`` trains."""
    return config_from_args(train_parser().parse_args(
        ["train", "--env", "Pixelcopter-PLE-v0", *args]))[0]


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog=f"python -m {PROG}", description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=("gpu", "cpu"), default="gpu",
                   help="gpu (default): the checks on the accelerator; cpu: a dry run")
    p.add_argument("--out-dir", type=Path, default=DEFAULT_OUT,
                   help="where the .json and .md go (default benchmarks/results/)")
    p.add_argument("--parts", default=DEFAULT_PARTS,
                   help=f"comma-separated, from {','.join(PARTS)} (default {DEFAULT_PARTS}; "
                        "pixels trains the GPU pixel preset: see --pixels-seconds)")
    p.add_argument("--pixels-episodes", type=positive_int, default=None, metavar="N",
                   help="pixels: train N episodes per seed instead of the preset's (a shorter "
                        "run when device time is short)")
    p.add_argument("--pixels-seconds", type=positive_int, default=None, metavar="S",
                   help="pixels: measure the speed with a short probe, then train as many "
                        "updates as fit in about S seconds")
    return p


def child_env(device: str, xla_flags: str | None = None) -> dict[str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if xla_flags is not None:
        env["XLA_FLAGS"] = xla_flags
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    if device == "cpu":
        env["JAX_PLATFORMS"] = "cpu"
        env["CUDA_VISIBLE_DEVICES"] = ""
    else:
        env.pop("JAX_PLATFORMS", None)
        env["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
    return env


def run_child(args: list[str], device: str, limit: float, xla_flags: str | None = None
              ) -> dict[str, Any]:
    """Run ``python ARGS`` in the repository root (with ``XLA_FLAGS`` set to ``xla_flags``
    if given); its exit code, output tail and seconds."""
    start = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, *args], cwd=REPO_ROOT,
                              env=child_env(device, xla_flags),
                              capture_output=True, text=True, timeout=limit)
        code, out = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as exc:
        code = None
        out = ((exc.stdout or b"").decode(errors="replace") if isinstance(exc.stdout, bytes)
               else exc.stdout or "") + f"\nstopped after {limit:g} s"
    return {"exit_code": code, "seconds": round(time.perf_counter() - start, 2),
            "output_tail": out[-3000:]}


def part_tests(device: str) -> dict[str, Any]:
    result = run_child(["-m", "pytest", "-q", "-p", "no:cacheprovider", *TESTS], device,
                       LIMITS["tests"])
    counts = {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|skipped|error)",
                                               result["output_tail"])}
    return {**result, "counts": counts, "files": list(TESTS)}


#: The returns timing, run in a child process (JAX on the device under test).
RETURNS_SCRIPT = r"""
import json, sys, time
import jax, jax.numpy as jnp, numpy as np
from reinforce import returns

def host_loop(r, d, gamma, dtype):
    out = np.empty(r.shape, dtype); g = np.zeros(r.shape[1], dtype)
    cont = (1.0 - d.astype(dtype)) * gamma
    for t in range(r.shape[0] - 1, -1, -1):
        g = r[t].astype(dtype) + cont[t] * g; out[t] = g
    return out

impls = {"scan": jax.jit(returns.discounted_returns_scan),
         "associative": jax.jit(returns.discounted_returns_associative),
         "platform": returns.discounted_returns}
rows = []
for T, B in json.loads(sys.argv[1]):
    rng = np.random.default_rng(0)
    r = rng.normal(size=(T, B)).astype(np.float32)
    d = rng.random((T, B)) < 0.01
    oracle = host_loop(r, d, 0.99, np.float64)
    rd, dd = jnp.asarray(r), jnp.asarray(d)
    for name, f in impls.items():
        out = f(rd, dd, 0.99); out.block_until_ready()
        times = []
        for _ in range(9):
            t = time.perf_counter(); f(rd, dd, 0.99).block_until_ready()
            times.append(time.perf_counter() - t)
        err = float(np.abs(np.asarray(out) - oracle).max() / max(1.0, np.abs(oracle).max()))
        rows.append({"T": T, "B": B, "impl": name, "median_ms": 1e3 * float(np.median(times)),
                     "max_rel_error": err})
    times = []
    for _ in range(3):
        t = time.perf_counter()
        out = host_loop(r, d, 0.99, np.float32)
        times.append(time.perf_counter() - t)
    err = float(np.abs(out - oracle).max() / max(1.0, np.abs(oracle).max()))
    rows.append({"T": T, "B": B, "impl": "numpy loop (host)",
                 "median_ms": 1e3 * float(np.median(times)), "max_rel_error": err})
print("RESULT " + json.dumps({"platform": jax.default_backend(), "rows": rows}))
"""


def _result_line(output: str) -> Any:
    lines = [line for line in output.splitlines() if line.startswith("RESULT ")]
    return json.loads(lines[-1][len("RESULT "):]) if lines else None


def part_returns(device: str) -> dict[str, Any]:
    sizes = json.dumps(RETURNS_SIZES[device])
    result = run_child(["-c", RETURNS_SCRIPT, sizes], device, LIMITS["returns"])
    return {**result, "measured": _result_line(result["output_tail"])}


def run_compare(device: str, out_dir: Path, extra: list[str], limit: float,
                xla_flags: str | None = None) -> dict[str, Any]:
    """One ``benchmarks.compare`` run: the child's result with what it measured per variant."""
    result = run_child(["-m", "benchmarks.compare", "--device", device, "--out-dir",
                        str(out_dir), *extra], device, limit, xla_flags)
    files = sorted(out_dir.glob("*.json"))
    if files:
        data = json.loads(files[-1].read_text())
        result["variants"] = {
            v: {**{k: d.get(k) for k in (
                "device", "n_seeds", "wall_s", "compile_s", "steps_per_s",
                "steps_per_s_excl_compile", "steps_per_s_second_half", "certified",
                "gpu_peak_mib")}, "score_median": d.get("eval", {}).get("score_median")}
            for v, d in data["variants"].items()}
        result["command"] = data["command"]
    return result


def _first_failure(results) -> int | None:
    return next((r["exit_code"] for r in results if r["exit_code"] != 0), 0)


def part_compare(device: str, workdir: Path) -> dict[str, Any]:
    runs = {name: run_compare(device, workdir / name, extra, LIMITS["compare"])
            for name, extra in COMPARE_RUNS[device]}
    return {"runs": runs, "exit_code": _first_failure(runs.values())}


def part_compile_flags(device: str, workdir: Path) -> dict[str, Any]:
    """The compile-flags runs under each ``XLA_FLAGS`` of :data:`COMPILE_FLAGS`, in turns."""
    rows = []
    for i, flags in enumerate(COMPILE_FLAGS[device]):
        for name, extra in COMPILE_FLAG_RUNS[device]:
            result = run_compare(device, workdir / f"flags-{i}-{name}", extra,
                                 LIMITS["compile-flags"], flags)
            rows.append({"xla_flags": flags, "run": name, **result})
    return {"rows": rows, "exit_code": _first_failure(rows)}


VIEWS_SCRIPT = r"""
import json, time
import gymnasium, numpy as np
import reinforce
from reinforce.envs.batched import BatchedEnv

def single(env_id, seconds=2.0):
    env = gymnasium.make(env_id)
    rng = np.random.default_rng(0)
    env.reset(seed=0); n = 0; t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        _, _, term, trunc, _ = env.step(int(rng.integers(2))); n += 1
        if term or trunc:
            env.reset()
    return n / (time.perf_counter() - t0)

def batch(env_id, n_envs, seconds=2.0):
    env = BatchedEnv(env_id, n_envs, 0); env.reset(); rng = np.random.default_rng(0)
    env.step(rng.integers(0, 2, n_envs)); n = 0; t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        env.step(rng.integers(0, 2, n_envs)); n += n_envs
    return n / (time.perf_counter() - t0)

rows = []
for env_id in ("CartPole-v1", "reinforce/CartPole-v1", "Pixelcopter-PLE-v0"):
    rows.append({"what": f"gymnasium.make({env_id!r}), one step at a time",
                 "steps_per_s": single(env_id)})
for env_id in ("CartPole-v1", "Pixelcopter-PLE-v0"):
    for n in (1, 64):
        rows.append({"what": f"BatchedEnv({env_id!r}, {n})", "steps_per_s": batch(env_id, n)})
print("RESULT " + json.dumps(rows))
"""


def part_views(device: str) -> dict[str, Any]:
    result = run_child(["-c", VIEWS_SCRIPT], device, LIMITS["views"])
    return {**result, "measured": _result_line(result["output_tail"])}


#: Every run of a pixel training evaluated again on 1000 episodes (through the contract).
EVALUATE_SCRIPT = r"""
import json, sys
from reinforce.app import backends
from reinforce.app.runs import RunFolder
from reinforce.evaluation import summarize
folder = RunFolder.load(sys.argv[1])
backend = backends.get(folder.backend)
rows = []
for i, spec in enumerate(folder.runs):
    for n in (100, 1000):
        r = summarize(backend.evaluate(folder.cfg, folder.load_weights(i), n, 54321 + i, "auto"))
        rows.append({"seed": spec.seed, "episodes": n, "mean": r.mean_reward,
                     "std": r.std_reward, "score": r.score})
print("RESULT " + json.dumps(rows))
"""


def learning_curve(path: Path, points: int = 10) -> list[dict[str, Any]]:
    """Each run's mean episodic return over each tenth of its updates, and the wall time then."""
    with path.open() as f:
        rows = list(csv.DictReader(f))
    curve = []
    for run in sorted({r["run"] for r in rows}):
        mine = [r for r in rows if r["run"] == run]
        step = max(1, len(mine) // points)
        for start in range(0, len(mine), step):
            part = mine[start:start + step]
            curve.append({"run": int(run), "update": int(part[-1]["update"]),
                          "episodic_return": round(sum(float(r["episodic_return"]) for r in part)
                                                   / len(part), 2),
                          "wall_s": float(part[-1]["wall_seconds"])})
    return curve


def chunk_walls(path: Path) -> list[float]:
    """The wall seconds at the end of each chunk of a run folder's first run (metrics.csv)."""
    with path.open() as f:
        walls = [float(r["wall_seconds"]) for r in csv.DictReader(f) if r["run"] == "0"]
    return sorted(set(walls))


def part_pixels(device: str, workdir: Path, episodes: int | None, seconds: int | None,
                out: dict[str, Any], save: Callable[[], None]) -> None:
    """The pixel preset trained and every run evaluated on 100 and 1000 episodes, and its crash
    causes. With ``seconds``, a probe of two short chunks measures the speed first and the run
    trains as many chunks as fit in that time. Fills ``out`` step by step, calling ``save``
    after each."""
    base = ["-m", "reinforce", "train", "--env", "Pixelcopter-PLE-v0", *PIXELS_RUNS[device]]
    if seconds:
        cfg = preset_config(PIXELS_RUNS[device])
        chunk = PIXELS_PROBE_CHUNK
        probe = run_child([*base, "--chunk-updates", str(chunk), "--episodes",
                           str(2 * chunk * cfg.batch_episodes), "--lr-warmup", "0",
                           "--eval-episodes", "1",
                           "--out", str(workdir / "pixels-probe"), "--quiet"], device,
                          LIMITS["pixels"])
        out["probe"] = probe
        metrics = workdir / "pixels-probe" / "metrics.csv"
        if probe["exit_code"] != 0 or not metrics.is_file():
            out["exit_code"] = probe["exit_code"] or 1
            return save()
        first, second = chunk_walls(metrics)[:2]
        chunk_s, compile_s = second - first, max(0.0, 2 * first - second)
        # at least one chunk past the preset's warm-up
        chunks = max(cfg.lr_warmup // chunk + 1, int((seconds - compile_s) / chunk_s))
        out.update(probe_chunk_s=round(chunk_s, 3), probe_compile_s=round(compile_s, 2))
        episodes = chunks * chunk * cfg.batch_episodes
        base += ["--chunk-updates", str(chunk)]
        save()
    run = workdir / "pixels-run"
    budget = ["--episodes", str(episodes)] if episodes else []
    command = [*base, *budget, "--out", str(run), "--quiet"]
    train = run_child(command, device, LIMITS["pixels"])
    out.update(command="python " + " ".join(command[:-3] + command[-1:]), train=train,
               exit_code=train["exit_code"])
    if (run / "metrics.csv").is_file():
        out["curve"] = learning_curve(run / "metrics.csv")
    save()
    if train["exit_code"] == 0:
        evaluated = run_child(["-c", EVALUATE_SCRIPT, str(run)], device, 300)
        out.update(evaluate=evaluated, measured=_result_line(evaluated["output_tail"]))
        save()
        crashes = run_child(["-m", "benchmarks.crashes", str(run), "--episodes", "200"], device,
                            300)
        out.update(crashes=crashes, exit_code=evaluated["exit_code"] or crashes["exit_code"])


def markdown(results: dict[str, Any]) -> str:
    lines = [f"# Device check ({results['device']}), {results['created']}", "",
             f"`{results['command']}` on {results['machine'].get('cpu_model')}"
             f" ({results['machine'].get('cpu_count')} cores); accelerator: "
             f"{results.get('accelerator') or 'none'}.", ""]
    parts = results["parts"]
    if "tests" in parts:
        t = parts["tests"]
        lines += ["## Tests", "", f"{', '.join(t['files'])}: {t['counts'] or 'no summary'} "
                  f"(exit code {t['exit_code']}, {t['seconds']} s)", ""]
    if "returns" in parts and parts["returns"].get("measured"):
        m = parts["returns"]["measured"]
        lines += [f"## Returns ({m['platform']}), median of 9 calls", "",
                  "| T x B | implementation | ms | max relative error vs float64 |",
                  "| --- | --- | --- | --- |"]
        lines += [f"| {r['T']} x {r['B']} | {r['impl']} | {r['median_ms']:.3f} | "
                  f"{r['max_rel_error']:.1e} |" for r in m["rows"]]
        lines.append("")
    if "compare" in parts:
        lines += ["## Training (benchmarks.compare)", "",
                  "| run | variant | device | seeds | wall s | compile s | steps/s | "
                  "steps/s 2nd half | certified |", "| --- | --- | --- | --- | --- | --- | --- "
                  "| --- | --- |"]
        for run, r in parts["compare"]["runs"].items():
            for name, v in (r.get("variants") or {}).items():
                lines.append(f"| {run} | {name} | {v['device']} | {v['n_seeds']} | "
                             f"{v['wall_s']:.2f} | {v['compile_s']:.2f} | "
                             f"{v['steps_per_s'] or 0:,.0f} | "
                             f"{v['steps_per_s_second_half'] or 0:,.0f} | "
                             f"{v['certified']}/{v['n_seeds']} |")
            if not r.get("variants"):
                lines.append(f"| {run} | failed (exit code {r['exit_code']}) | | | | | | | |")
        lines.append("")
    if "compile-flags" in parts:
        lines += ["## Compile time under XLA_FLAGS (benchmarks.compare, JAX, cold cache)", "",
                  "| XLA_FLAGS | run | seeds | wall s | compile s | certified |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for r in parts["compile-flags"]["rows"]:
            flags = f"`{r['xla_flags']}`" if r["xla_flags"] else "(defaults)"
            for v in (r.get("variants") or {}).values():
                lines.append(f"| {flags} | {r['run']} | {v['n_seeds']} | {v['wall_s']:.2f} | "
                             f"{v['compile_s']:.2f} | {v['certified']}/{v['n_seeds']} |")
            if not r.get("variants"):
                lines.append(f"| {flags} | {r['run']} | failed (exit code {r['exit_code']}) "
                             "| | | |")
        lines.append("")
    if "pixels" in parts:
        p = parts["pixels"]
        lines += ["## Pixel policies", ""]
        if p.get("probe"):
            lines += [f"speed probe: exit code {p['probe']['exit_code']}, "
                      f"{p.get('probe_chunk_s')} s per chunk of {PIXELS_PROBE_CHUNK} updates, "
                      f"{p.get('probe_compile_s')} s to compile", ""]
        if p.get("train"):
            lines += [f"`{p['command']}`: exit code {p['exit_code']}, {p['train']['seconds']} s",
                      ""]
        if p.get("curve"):
            lines += ["| run | update | mean episodic return | wall s |",
                      "| --- | --- | --- | --- |"]
            lines += [f"| {c['run']} | {c['update']} | {c['episodic_return']:.1f} | "
                      f"{c['wall_s']:.0f} |" for c in p["curve"]]
            lines.append("")
        if p.get("measured"):
            lines += ["| seed | episodes | mean | std | score |", "| --- | --- | --- | --- | --- |"]
            lines += [f"| {r['seed']} | {r['episodes']} | {r['mean']:.1f} | {r['std']:.1f} | "
                      f"{r['score']:.1f} |" for r in p["measured"]]
            lines.append("")
        if p.get("crashes"):
            lines += ["```text", p["crashes"]["output_tail"].strip(), "```", ""]
    if "views" in parts and parts["views"].get("measured"):
        lines += ["## Env steps per second", "", "| what | steps/s |", "| --- | --- |"]
        lines += [f"| {r['what']} | {r['steps_per_s']:,.0f} |"
                  for r in parts["views"]["measured"]]
        lines.append("")
    return "\n".join(lines)


def accelerator(device: str) -> str | None:
    if device != "gpu":
        return None
    probe = run_child(["-c", "import jax; print('RESULT ' + repr(str(jax.devices()[0].device_kind)"
                             "))"], device, 60)
    found = [line for line in probe["output_tail"].splitlines() if line.startswith("RESULT ")]
    return found[-1][len("RESULT "):].strip("'\"") if found else None


def run(args: argparse.Namespace, argv: list[str]) -> int:
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown or not parts:
        raise UsageError(f"--parts: unknown part(s) {', '.join(unknown) or '(none)'}; choose "
                         f"from {', '.join(PARTS)}")
    found = accelerator(args.device)
    if args.device == "gpu" and (found is None or "cpu" in found.lower()):
        raise UsageError("--device gpu: JAX sees no GPU on this machine; use --device cpu for "
                         "a dry run")
    created = datetime.datetime.now().astimezone()
    results: dict[str, Any] = {
        "schema": SCHEMA, "created": created.isoformat(timespec="seconds"),
        "command": f"python -m {PROG} " + " ".join(argv), "device": args.device,
        "accelerator": found, "machine": machine_info(), "parts": {},
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    stem = output_stem(args.out_dir, "CartPole-v1", False, created)
    stem = stem.with_name(f"{stem.name}-device-check-{args.device}")

    def save() -> None:
        # After every part and step: a check stopped from outside keeps what it measured.
        stem.with_suffix(".json").write_text(json.dumps(results, indent=1) + "\n")
        stem.with_suffix(".md").write_text(markdown(results))

    with tempfile.TemporaryDirectory(prefix="reinforce-device-check-") as tmp:
        for part in parts:
            print(f"[{part}] ...", file=sys.stderr, flush=True)
            start = time.perf_counter()
            if part == "tests":
                results["parts"][part] = part_tests(args.device)
            elif part == "returns":
                results["parts"][part] = part_returns(args.device)
            elif part == "compare":
                results["parts"][part] = part_compare(args.device, Path(tmp))
            elif part == "compile-flags":
                results["parts"][part] = part_compile_flags(args.device, Path(tmp))
            elif part == "pixels":
                results["parts"][part] = {}
                part_pixels(args.device, Path(tmp), args.pixels_episodes, args.pixels_seconds,
                            results["parts"][part], save)
            else:
                results["parts"][part] = part_views(args.device)
            print(f"[{part}] {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
            save()
    print(markdown(results))
    print(f"wrote {stem.with_suffix('.json')} and .md", file=sys.stderr)
    failed = [p for p, r in results["parts"].items()
              if isinstance(r, dict) and r.get("exit_code", 0) != 0]
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    return run_command(PROG, lambda: run(build_parser().parse_args(argv), argv))


if __name__ == "__main__":
    sys.exit(main())
