"""Tables (terminal, markdown, README) and the plot, all rendered from a results dict.

Everything here reads only the results dict that is also written as JSON, so the markdown
file, the README table and the JSON cannot disagree: render again with
``python -m benchmarks.compare --render RESULTS.json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.stats import DEFINITIONS

NONE = "-"


def _num(x: float | None, digits: int = 1) -> str:
    return NONE if x is None else f"{x:,.{digits}f}"


def _secs(x: float | None) -> str:
    if x is None:
        return NONE
    return f"{x:.2f}" if x < 10 else f"{x:.1f}"


def _int(x: float | None) -> str:
    return NONE if x is None else f"{round(x):,}"


def _ratio(x: float | None) -> str:
    if x is None:
        return NONE
    return f"{x:.2f}x" if x < 10 else f"{x:,.0f}x" if x >= 100 else f"{x:.1f}x"


def _tt(v: dict[str, Any]) -> str:
    t = v["time_to_threshold_s"]
    return f"{_secs(t['median'])} ({t['reached']}/{v['n_seeds']})"


def speed_rows(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = ["variant", "device", "seeds", "episodes/seed", "updates", "wall s", "compile s",
              "live steps", "padded steps", "steps/s", "x nb", "steps/s excl. compile", "x nb",
              "steps/s 2nd half", "x nb", "wall/seed x nb", "peak MiB"]
    rows = []
    for name, v in results["variants"].items():
        r = v["ratios"]
        rows.append([
            name, v["device"], str(v["n_seeds"]), _int(v["episodes_per_seed"]),
            _int(v["updates"]), _secs(v["wall_s"]), _secs(v["compile_s"]),
            _int(v["env_steps"]), _int(v["padded_steps"]), _int(v["steps_per_s"]),
            _ratio(r["steps_per_s"]), _int(v["steps_per_s_excl_compile"]),
            _ratio(r["steps_per_s_excl_compile"]), _int(v.get("steps_per_s_second_half")),
            _ratio(r.get("steps_per_s_second_half")), _ratio(r["wall_per_seed"]),
            _int(v["peak_rss_mib"]),
        ])
    return header, rows


#: A score far above certification, per env (the speed targets': CartPole's 475 of 500, and
#: for Pixelcopter 300, above the public leaderboard); the scores table counts the seeds there.
TOP_SCORE = {"CartPole-v1": 475.0, "Pixelcopter-PLE-v0": 300.0}


def score_rows(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    thr = results["certification"]
    top = TOP_SCORE.get(results.get("env_id", ""))
    header = ["variant", "eval episodes", "mean", "std", "score median [min, max]",
              f"certified (>= {thr:g})"]
    header += [f"score >= {top:g}"] if top is not None else []
    header += ["time to threshold s (reached)", "x nb"]
    rows = []
    for name, v in results["variants"].items():
        e = v["eval"]
        row = [
            name, f"{e['n_episodes']} x {v['n_seeds']}", _num(e["mean_reward"]),
            _num(e["std_reward"]),
            f"{_num(e['score_median'])} [{_num(e['score_min'])}, {_num(e['score_max'])}]",
            f"{v['certified']}/{v['n_seeds']}",
        ]
        if top is not None:
            row.append(f"{sum(s['eval']['score'] >= top for s in v['per_seed'])}/{v['n_seeds']}")
        rows.append(row + [_tt(v), _ratio(v["ratios"]["time_to_threshold"])])
    return header, rows


def readme_rows(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The compact table the README quotes; ratios to the notebook-style loop in brackets."""
    thr = results["certification"]
    header = ["variant", "seeds", "wall s (compile)", "wall s per seed (x nb)",
              "env steps/s (x nb)", f"certified (score >= {thr:g})",
              "time to threshold s (x nb)", "peak MiB"]
    rows = []
    for name, v in results["variants"].items():
        r = v["ratios"]
        rows.append([
            name, str(v["n_seeds"]), f"{_secs(v['wall_s'])} ({_secs(v['compile_s'])})",
            f"{_secs(v['wall_s'] / v['n_seeds'])} ({_ratio(r['wall_per_seed'])})",
            f"{_int(v['steps_per_s'])} ({_ratio(r['steps_per_s'])})",
            f"{v['certified']}/{v['n_seeds']}",
            f"{_secs(v['time_to_threshold_s']['median'])} ({_ratio(r['time_to_threshold'])})",
            _int(v["peak_rss_mib"]),
        ])
    return header, rows


def machine_line(results: dict[str, Any], versions: tuple[str, ...], tail: str) -> str:
    """The machine a results file was measured on, the given package versions, the load
    average at the start and end, then ``tail`` (how the numbers were taken)."""
    m = results["machine"]
    packages = ", ".join(f"{p} {m['versions'].get(p)}" for p in versions)
    return (f"{m['hostname']}: {m['cpu_count']} CPUs ({m['cpu_model']}), Python {m['python']}, "
            f"{packages}; load average (1 min) {m['load_avg_start'][0]:.2f} at the start, "
            f"{m['load_avg_end'][0]:.2f} at the end; {tail}")


def markdown_head(title: str, results: dict[str, Any], machine_line: str) -> list[str]:
    """The first lines of a results ``.md``: the title with the date, the command (marked when
    it was a quick smoke run) and the machine."""
    quick = " (quick smoke run: not meaningful numbers)" if results.get("quick") else ""
    return [f"# {title}, {results['created'][:10]}", "", f"`{results['command']}`{quick}", "",
            machine_line, ""]


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(c) for c in col) for col in zip(header, *rows, strict=True)]

    def line(cells):
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True)))

    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def terminal(results: dict[str, Any]) -> str:
    m = results["machine"]
    head = (f"{results['env_id']} on {m['hostname']} ({m['cpu_count']} CPUs, device "
            f"{results['device']}, load {m['load_avg_start'][0]:.2f} at start)")
    return "\n\n".join([head, text_table(*speed_rows(results)),
                        text_table(*score_rows(results)),
                        "x nb: ratio to the notebook-style loop (above 1 = faster); "
                        "see the .md file for the definitions"])


def markdown(results: dict[str, Any], png_name: str | None) -> str:
    m = results["machine"]
    parts = [
        f"# REINFORCE benchmark: {results['env_id']}, {results['created'][:10]}, "
        f"{m['hostname']}",
        "",
        f"`{results['command']}`" + (" (quick smoke run: not meaningful numbers)"
                                     if results["quick"] else ""),
        "",
        "## Machine",
        "",
        f"- {m['cpu_count']} CPUs ({m['cpu_model']}), {m['platform']}, Python {m['python']}",
        f"- jax {m['versions'].get('jax')}, jaxlib {m['versions'].get('jaxlib')}, "
        f"torch {m['versions'].get('torch')}, flax {m['versions'].get('flax')}, "
        f"gymnasium {m['versions'].get('gymnasium')}",
        f"- device: {results['device']}; JAX devices: {', '.join(m.get('jax_devices') or [])}",
        f"- load average (1 min) at start {m['load_avg_start'][0]:.2f}, at end "
        f"{m['load_avg_end'][0]:.2f}",
        "",
        "## Speed",
        "",
        markdown_table(*speed_rows(results)),
        "",
        "## Scores",
        "",
        markdown_table(*score_rows(results)),
        "",
        "## Summary (the README's table)",
        "",
        markdown_table(*readme_rows(results)),
        "",
    ]
    if png_name:
        parts += [f"![score against wall time]({png_name})", ""]
    parts += ["## Variants", ""]
    for name, v in results["variants"].items():
        cfg = v["config"]
        decay = " decaying to 0" if cfg["lr_decay"] else ""
        if cfg.get("lr_warmup"):
            decay = f" warmed up over {cfg['lr_warmup']} updates" + (decay and "," + decay)
        baseline = cfg.get("baseline", "none")
        baseline = f", baseline {baseline}" if baseline != "none" else ""
        parts.append(
            f"- **{name}**: {v['description']}. Preset `{v['preset']}`: hidden "
            f"{tuple(cfg['hidden_sizes'])}, lr {cfg['lr']:g}{decay}, "
            f"gamma {cfg['gamma']:g}, {cfg['batch_episodes']} episode(s) per update, "
            f"max_t {cfg['max_t']}{baseline}, seeds {', '.join(map(str, v['seeds']))}."
        )
    parts += ["", "## Definitions", ""]
    parts += [f"- `{k}`: {text}" for k, text in results["definitions"].items()]
    parts.append("")
    return "\n".join(parts)


COLORS = {"notebook": "tab:red", "notebook-ours": "tab:orange", "torch": "tab:blue",
          "jax": "tab:green", "jax-seeds": "tab:purple", "jax-seeds-cached": "tab:brown"}
MAX_CURVES = 8


def plot(results: dict[str, Any], path: Path) -> None:
    """Training curves (rolling return) and final evaluation scores against wall time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.ticker import FuncFormatter, NullFormatter

    fig, ax = plt.subplots(figsize=(9, 5.5))
    for name, v in results["variants"].items():
        color = COLORS.get(name)
        seeds = v["per_seed"]
        label = f"{name} ({v['n_seeds']} seed{'s' if v['n_seeds'] > 1 else ''})"
        shared = len(seeds) > 1 and all(s["curve"]["wall"] == seeds[0]["curve"]["wall"]
                                        for s in seeds)
        for i, s in enumerate(seeds[:MAX_CURVES]):
            ax.plot(s["curve"]["wall"], s["curve"]["return"], color=color,
                    alpha=0.3 if shared else 0.8, lw=1.0,
                    label=label if i == 0 and not shared else None)
        if shared:  # runs trained together: their median too
            median = np.median([s["curve"]["return"] for s in seeds], axis=0)
            ax.plot(seeds[0]["curve"]["wall"], median, color=color, lw=2.2,
                    label=label + ", median")
        ax.scatter([s["finished_s"] for s in seeds], [s["eval"]["score"] for s in seeds],
                   color=color, marker="x", s=36, zorder=3)
    thr = results["certification"]
    ax.axhline(thr, color="gray", ls="--", lw=1)
    ax.text(0.01, thr, f"certification {thr:g}", transform=ax.get_yaxis_transform(),
            va="bottom", color="gray", fontsize=8)
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("seconds since the run's training started (log scale; compilation included)")
    ax.set_ylabel("mean return of the last 100 training episodes\n"
                  "x: evaluation score (mean - std) when the run finished")
    m = results["machine"]
    ax.set_title(f"REINFORCE on {results['env_id']}: {m['hostname']}, {m['cpu_count']} CPUs, "
                 f"{results['device']}" + (" (quick smoke run)" if results["quick"] else ""),
                 fontsize=10)
    ax.legend(fontsize=8, loc="best")
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


__all__ = ["DEFINITIONS", "markdown", "markdown_table", "plot", "readme_rows", "score_rows",
           "speed_rows", "terminal", "text_table"]
