"""What each variant trains and how its worker process measures it.

A worker trains one variant (all of its seeds) in a process of its own, so that its peak memory
and its compilation are its own. It calls the project's public entry points only: a backend's
``train_many`` through the contract (``reinforce.app.backends``; JAX after
``use_host_cores()``, as the CLI does) and the notebook-style loop of
:mod:`benchmarks.notebook_loop`; compilation is timed from JAX's monitoring events
(:class:`CompileClock`), so nothing of the trainers is reproduced here. torch and the backends
are imported by the variants that use them only, so that their memory counts in those
variants' peaks alone.
"""

from __future__ import annotations

import resource
import sys
import time
from dataclasses import dataclass
from typing import Any

import jax
import jax.monitoring

from reinforce.app import backends
from reinforce.backend import evaluation_seed
from reinforce.config import CERTIFICATION, TrainConfig, grid, preset
from reinforce.envs import ENV_IDS
from reinforce_jax.devices import use_compile_cache, use_host_cores


@dataclass(frozen=True)
class Variant:
    name: str
    preset: str
    backend: str  # "jax" or "torch"
    default_seeds: int
    description: str
    envs: tuple[str, ...] = ENV_IDS
    #: Another variant whose compiled programs this one loads from the compilation cache
    #: (it trains that variant's config and seeds again, in a new process).
    cache_of: str | None = None


VARIANTS: dict[str, Variant] = {
    v.name: v for v in (
        Variant("notebook", "notebook", "torch", 2,
                "the course's loop: one env (gymnasium's own CartPole-v1; our Pixelcopter), a "
                "torch forward per step, one episode per update"),
        Variant("notebook-ours", "notebook", "torch", 2,
                "the same loop on our reinforce/CartPole-v1 instead of gymnasium's",
                envs=("CartPole-v1",)),
        Variant("torch", "fast", "torch", 2,
                "torch backend, train_many (seeds one after the other), episodes batched"),
        Variant("jax", "fast", "jax", 1, "JAX backend, train_many, one seed"),
        Variant("jax-seeds", "fast", "jax", 32, "JAX backend, train_many, all seeds at once"),
        Variant("jax-seeds-cached", "fast", "jax", 32,
                "jax-seeds again in a new process, its programs loaded from the compilation "
                "cache the jax-seeds worker wrote (a repeated reinforce train)",
                cache_of="jax-seeds"),
    )
}
DEFAULT_VARIANTS = ("notebook", "torch", "jax", "jax-seeds", "jax-seeds-cached")
BASELINE = "notebook"

#: Training episodes per seed when --budget does not say; None = the preset's own.
DEFAULT_EPISODES = {"CartPole-v1": None, "Pixelcopter-PLE-v0": 1000}
#: --quick: training episodes per seed, seeds, evaluation episodes, updates per chunk.
QUICK = {
    "episodes": {"CartPole-v1": {"notebook": 20, "notebook-ours": 20, "default": 64},
                 "Pixelcopter-PLE-v0": {"default": 12}},
    "seeds": {"jax-seeds": 2, "jax-seeds-cached": 2, "default": 1},
    "eval_episodes": 5,
    "chunk_updates": 2,
}


def variant_config(
    variant: Variant, env_id: str, episodes: int | None, eval_episodes: int,
    chunk_updates: int | None = None,
) -> TrainConfig:
    """The variant's preset on ``env_id``, with the benchmark's budget (raises ConfigError)."""
    cfg = preset(variant.preset, env_id)
    changes: dict[str, Any] = {"n_evaluation_episodes": eval_episodes}
    if episodes is not None:
        changes["n_training_episodes"] = episodes
    if chunk_updates is not None:
        changes["chunk_updates"] = chunk_updates
    return cfg.replace(**changes)


# --- the worker ----------------------------------------------------------------------------


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, MiB (ru_maxrss is KiB on Linux)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024.0 * 1024.0) if sys.platform == "darwin" else rss / 1024.0


def _log(name: str, text: str) -> None:
    print(f"[{name}] {text}", file=sys.stderr, flush=True)


def run_notebook(cfg: TrainConfig, seeds: list[int], device: str, ours: bool,
                 name: str) -> dict[str, Any]:
    import torch

    from benchmarks import notebook_loop

    torch.set_num_threads(1)  # as the CLI does for torch: threads cost more than they give
    runs = []
    for i, seed in enumerate(seeds):
        def progress(done: int, ret: float, seed=seed) -> None:
            if done % 250 == 0:
                _log(name, f"seed {seed}: episode {done}/{cfg.n_training_episodes}")

        start = time.perf_counter()
        result = notebook_loop.train(cfg, seed, device, progress, ours=ours)
        eval_returns = notebook_loop.evaluate(result, cfg, cfg.n_evaluation_episodes,
                                              evaluation_seed(seed))
        finished = time.perf_counter() - start
        runs.append({
            "seed": seed, "clock": i, "episodic_return": result.episodic_return,
            "env_steps": result.episode_length, "padded_steps": [0] * len(result.wall),
            "wall": result.wall, "finished_s": finished, "eval_returns": eval_returns.tolist(),
            "clock_start": start,
        })
    return {"runs": runs, "device": str(torch.device(device))}


def run_backend(backend_name: str, cfg: TrainConfig, seeds: list[int], device: str,
                name: str) -> dict[str, Any]:
    """Train a variant's seeds with a backend's ``train_many``: in one call when the backend
    trains runs side by side (one clock), one call per seed when it trains them one after the
    other (so that each run's wall clock starts at 0; the numbers are those of one call)."""
    backend = backends.get(backend_name)
    groups = [[s] for s in seeds] if backend.runs_in_sequence else [list(seeds)]
    runs = []
    for clock, group in enumerate(groups):
        start = time.perf_counter()
        result = backend.train_many(cfg, grid(cfg, group, {})[1], device=device)
        finished = time.perf_counter() - start
        _log(name, f"seed(s) {', '.join(map(str, group))}: {finished:.1f} s")
        m = result.metrics
        runs += [{
            "seed": seed, "clock": clock, "episodic_return": m.episodic_return[i].tolist(),
            "env_steps": m.env_steps[i].tolist(), "padded_steps": m.padded_steps[i].tolist(),
            "wall": result.wall[i].tolist(), "finished_s": finished,
            "eval_returns": result.eval_returns[i].tolist(), "clock_start": start,
        } for i, seed in enumerate(group)]
    return {"runs": runs, "device": backend.describe_devices(device, len(groups[0])),
            "jax_devices": [str(d) for d in jax.devices()]}


class CompileClock:
    """Wall time JAX spends tracing, lowering and compiling, from its monitoring events.

    JAX reports the duration of every jaxpr trace, MLIR lowering and backend compile when it
    ends; the clock keeps them as time intervals and measures their union (nested traces are
    counted once). This sees what ``train_many`` compiles without reproducing it, and also the
    env and returns functions the eager variants call through JAX.
    """

    EVENTS = ("/jax/core/compile/jaxpr_trace_duration",
              "/jax/core/compile/jaxpr_to_mlir_module_duration",
              "/jax/core/compile/backend_compile_duration")

    def __init__(self) -> None:
        self.intervals: list[tuple[float, float]] = []
        jax.monitoring.register_event_duration_secs_listener(self._record)

    def _record(self, event: str, duration: float, **_: Any) -> None:
        if event in self.EVENTS:
            now = time.perf_counter()
            self.intervals.append((now - float(duration), now))

    def seconds(self, lo: float = float("-inf"), hi: float = float("inf")) -> float:
        """Length of the union of the recorded intervals within ``[lo, hi]``."""
        total, reach = 0.0, lo
        for a, b in sorted(self.intervals):
            a, b = max(a, reach), min(b, hi)
            if b > a:
                total += b - a
                reach = b
        return total


def _device(device: str) -> str:
    """The backends' ``--device`` value in a ``cpu`` or ``gpu`` benchmark."""
    return "cpu" if device == "cpu" else "cuda"


def gpu_peak_mib() -> float | None:
    """Peak accelerator memory of the worker, MiB: JAX's and torch's (if it was imported), where
    they report it."""
    peaks = []
    if jax.default_backend() != "cpu":
        peak = (jax.devices()[0].memory_stats() or {}).get("peak_bytes_in_use")
        peaks += [] if peak is None else [peak]
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        peaks.append(torch.cuda.max_memory_allocated())
    return sum(peaks) / 2**20 if peaks else None


def run_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Train one variant, all its seeds, and return its measurements and summary."""
    ready = time.time()
    variant = VARIANTS[spec["variant"]]
    cfg = TrainConfig.from_dict(spec["config"])
    seeds = [int(s) for s in spec["seeds"]]
    # As the CLI does before JAX starts: on a CPU, every core is a device (runs spread over
    # them); nothing changes on a GPU.
    if spec["device"] == "cpu":
        use_host_cores()
    use_compile_cache()  # the folder the harness gives (as the CLI does)
    from benchmarks import stats

    clock = CompileClock()
    start = time.perf_counter()
    if variant.name.startswith("notebook"):
        raw = run_notebook(cfg, seeds, _device(spec["device"]),
                           variant.name == "notebook-ours", variant.name)
    else:
        raw = run_backend(variant.backend, cfg, seeds, _device(spec["device"]), variant.name)
    end = time.perf_counter()
    peak = peak_rss_mib()

    # Compilation inside the training part of each clock (runs sharing a clock count once).
    windows = {run["clock"]: (run["clock_start"], run["clock_start"] + run["wall"][-1])
               for run in raw["runs"]}
    compile_train = sum(clock.seconds(a, b) for a, b in windows.values())
    summary = stats.summarize(
        {"batch_episodes": 1 if variant.name.startswith("notebook") else cfg.batch_episodes,
         "chunk_updates": cfg.chunk_updates, "runs": raw["runs"],
         "compile_train_s": compile_train},
        CERTIFICATION[cfg.env_id],
    )
    out = {
        "variant": variant.name,
        "description": variant.description,
        "backend": variant.backend,
        "preset": variant.preset,
        "device": raw["device"],
        "config": cfg.to_dict(),
        "episodes_per_seed": cfg.n_training_episodes,
        "startup_s": ready - float(spec.get("spawned_at", ready)),
        "wall_s": end - start,
        "compile_s": clock.seconds(start, end),
        "peak_rss_mib": peak,
        "gpu_peak_mib": gpu_peak_mib(),
        **summary,
    }
    out["eval_s"] = max(0.0, out["wall_s"] - summary["train_s"])
    if "jax_devices" in raw:
        out["jax_devices"] = raw["jax_devices"]
    return out
