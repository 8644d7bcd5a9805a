"""Derived numbers of one variant's run, from its raw per-update series (plain numpy).

Every variant's worker reports the same raw layout, whatever trained it:

* ``runs``: one dict per seed with per-update series ``episodic_return`` (mean return of the
  update's episodes), ``env_steps`` (live steps), ``padded_steps`` and ``wall`` (seconds since
  the start of that run's clock, at the end of the chunk holding the update), the id of that
  clock, ``finished_s`` (clock time when the run's evaluation was done) and ``eval_returns``.
* Runs trained together (the JAX backend's seeds) share one clock; runs trained one after the
  other (the notebook loop, the torch backend) each have their own, starting at 0.

The definitions below are the benchmark's; they are repeated in :data:`DEFINITIONS`, which goes
into every results file.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from reinforce.evaluation import summarize as summarize_returns

#: Training episodes in the rolling window of the training-curve threshold test.
WINDOW_EPISODES = 100
#: Points kept per run of a training curve in the results file.
CURVE_POINTS = 200

DEFINITIONS = {
    "wall_s": "seconds from the start of training to the end of the last evaluation, all seeds, "
              "compilation included; interpreter start-up and imports excluded (startup_s)",
    "train_s": "the training part of wall_s (compilation included), summed over runs trained "
               "one after the other",
    "eval_s": "the evaluation part of wall_s (for JAX, includes compiling the evaluation)",
    "compile_s": "seconds JAX spent tracing, lowering and compiling within wall_s (the union of "
                 "the durations of its jaxpr-trace, MLIR-lowering and backend-compile "
                 "monitoring events); for the eager variants, the env-layer and returns "
                 "functions they call through JAX",
    "compile_train_s": "the part of compile_s inside train_s",
    "first_chunk_s": "clock time at the end of the first chunk of chunk_updates updates "
                     "(where the training step compiles), summed over clocks",
    "env_steps": "live env steps of training (steps of episodes), all seeds; evaluation "
                 "not counted",
    "padded_steps": "env steps computed for batch slots whose episode had already ended",
    "steps_per_s": "env_steps / train_s (compilation included)",
    "steps_per_s_excl_compile": "env_steps / (train_s - compile_train_s)",
    "steps_per_s_second_half": "live env steps of the second half of the updates (from the "
                               "first reported update at or after the middle, else the last "
                               "chunk) over the clock "
                               "time they took, summed over clocks: the speed once compiled and "
                               "once episodes are long",
    "eval": "stochastic policy, n_episodes episodes per seed after training; score = mean - std",
    "certified": "seeds whose evaluation score reaches the certification threshold",
    "time_to_threshold_s": "per seed, the clock time (compilation included) at the first "
                           "reported update (JAX: end of its chunk) where the "
                           "mean return of the last >= 100 training episodes (the last "
                           "ceil(100 / batch_episodes) updates) reaches the certification "
                           "threshold; training returns only (the std of single episodes is "
                           "not in the batched metrics), so an optimistic proxy for the time "
                           "to certify; median over the seeds that got there",
    "peak_rss_mib": "peak resident memory of the variant's worker process (ru_maxrss)",
    "ratios": "against the notebook-style loop: steps_per_s, steps_per_s_excl_compile and "
              "steps_per_s_second_half are variant / notebook; wall_per_seed and "
              "time_to_threshold are notebook / variant (wall_per_seed = wall_s / seeds); "
              "above 1 = faster than the notebook",
}


def window_updates(batch_episodes: int) -> int:
    """Updates in the rolling window: enough to hold at least WINDOW_EPISODES episodes."""
    return max(1, math.ceil(WINDOW_EPISODES / int(batch_episodes)))


def rolling_mean(values: np.ndarray, window: int) -> np.ndarray:
    """Mean of the last ``window`` values at every index (fewer at the start)."""
    values = np.asarray(values, np.float64)
    if values.size == 0:
        return values
    csum = np.concatenate([[0.0], np.cumsum(values)])
    idx = np.arange(1, values.size + 1)
    lo = np.maximum(idx - window, 0)
    return (csum[idx] - csum[lo]) / (idx - lo)


def time_to_threshold(
    returns: np.ndarray, wall: np.ndarray, window: int, threshold: float
) -> float | None:
    """Clock time of the first update whose full rolling window averages >= threshold."""
    rolled = rolling_mean(returns, window)
    hits = np.flatnonzero(rolled[window - 1:] >= threshold)
    if hits.size == 0:
        return None
    return float(np.asarray(wall)[window - 1 + hits[0]])


def downsample(x: np.ndarray, y: np.ndarray, n: int = CURVE_POINTS) -> tuple[list, list]:
    """At most ``n`` evenly spread points of a curve, the last one always kept."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.size > n:
        idx = np.unique(np.linspace(0, x.size - 1, n).round().astype(int))
        x, y = x[idx], y[idx]
    return [round(float(v), 4) for v in x], [round(float(v), 3) for v in y]


def _median(values: list[float]) -> float | None:
    return float(np.median(values)) if values else None


def summarize(raw: dict[str, Any], threshold: float) -> dict[str, Any]:
    """The variant's numbers (everything the table and the plot show) from its raw series."""
    batch = int(raw["batch_episodes"])
    first_chunk = int(raw["chunk_updates"])
    window = window_updates(batch)
    runs = raw["runs"]

    clocks: dict[int, dict[str, float]] = {}
    live = padded = updates = late_steps = 0
    per_seed = []
    for run in runs:
        ret = np.asarray(run["episodic_return"], np.float64)
        steps = np.asarray(run["env_steps"], np.int64)
        pad = np.asarray(run["padded_steps"], np.int64)
        wall = np.asarray(run["wall"], np.float64)
        n = ret.size
        k = min(first_chunk, n)
        split = second_half_start(wall)
        late_steps += int(steps[split:].sum())
        clocks[run["clock"]] = {"end": float(wall[-1]), "first": float(wall[k - 1]),
                                "late": float(wall[-1] - (wall[split - 1] if split else 0.0))}
        live += int(steps.sum())
        padded += int(pad.sum())
        updates += n
        ev = summarize_returns(run["eval_returns"])
        curve_x, curve_y = downsample(wall, rolling_mean(ret, window))
        per_seed.append({
            "seed": int(run["seed"]),
            "updates": n,
            "env_steps": int(steps.sum()),
            "padded_steps": int(pad.sum()),
            "train_s": float(wall[-1]),
            "finished_s": float(run["finished_s"]),
            "eval": {**ev.to_dict(), "certified": bool(ev.score >= threshold)},
            "time_to_threshold_s": time_to_threshold(ret, wall, window, threshold),
            "curve": {"wall": curve_x, "return": curve_y},
        })

    train_s = sum(c["end"] for c in clocks.values())
    late_s = sum(c["late"] for c in clocks.values())
    compile_train = float(raw.get("compile_train_s", 0.0))
    run_s = train_s - compile_train
    times = [s["time_to_threshold_s"] for s in per_seed if s["time_to_threshold_s"] is not None]
    scores = [s["eval"]["score"] for s in per_seed]
    return {
        "n_seeds": len(per_seed),
        "seeds": [s["seed"] for s in per_seed],
        "updates": updates,
        "train_s": train_s,
        "first_chunk_s": sum(c["first"] for c in clocks.values()),
        "env_steps": live,
        "padded_steps": padded,
        "steps_per_s": live / train_s if train_s > 0 else None,
        "compile_train_s": compile_train,
        "steps_per_s_excl_compile": live / run_s if run_s > 0 else None,
        "steps_per_s_second_half": late_steps / late_s if late_s > 0 else None,
        "eval": {
            "n_episodes": per_seed[0]["eval"]["n_episodes"] if per_seed else 0,
            "mean_reward": float(np.mean([s["eval"]["mean_reward"] for s in per_seed])),
            "std_reward": float(np.mean([s["eval"]["std_reward"] for s in per_seed])),
            "score_median": _median(scores),
            "score_min": min(scores) if scores else None,
            "score_max": max(scores) if scores else None,
        },
        "certified": sum(s["eval"]["certified"] for s in per_seed),
        "time_to_threshold_s": {"median": _median(times), "reached": len(times),
                                "window_updates": window},
        "per_seed": per_seed,
    }


def second_half_start(wall: np.ndarray) -> int:
    """Index of the first update at or after the middle whose reported time is new (the start of
    a chunk, where updates are reported by chunks), so that the steps counted from there and the
    clock time from the previous report cover the same updates; when no chunk starts in the
    second half, the start of the last chunk."""
    n = wall.size
    starts = [i for i in range(n) if i == 0 or wall[i] != wall[i - 1]]
    later = [i for i in starts if i >= n // 2]
    return later[0] if later else starts[-1]


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator <= 0 or numerator <= 0:
        return None
    return numerator / denominator


def ratios(variant: dict[str, Any], baseline: dict[str, Any] | None) -> dict[str, float | None]:
    """The variant against the baseline; see DEFINITIONS['ratios']. All None without one."""
    if baseline is None:
        return {"steps_per_s": None, "steps_per_s_excl_compile": None,
                "steps_per_s_second_half": None, "wall_per_seed": None,
                "time_to_threshold": None}

    def per_seed(v):
        return v["wall_s"] / v["n_seeds"] if v["n_seeds"] else None

    return {
        "steps_per_s": ratio(variant["steps_per_s"], baseline["steps_per_s"]),
        "steps_per_s_excl_compile": ratio(variant["steps_per_s_excl_compile"],
                                          baseline["steps_per_s_excl_compile"]),
        "steps_per_s_second_half": ratio(variant.get("steps_per_s_second_half"),
                                         baseline.get("steps_per_s_second_half")),
        "wall_per_seed": ratio(per_seed(baseline), per_seed(variant)),
        "time_to_threshold": ratio(baseline["time_to_threshold_s"]["median"],
                                   variant["time_to_threshold_s"]["median"]),
    }
