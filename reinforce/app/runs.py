"""Run folders: what a training run leaves on disk, and reading it back.

A run folder holds::

    config.json          policy architecture, env, backend, hyper-parameters, the runs trained
    model.safetensors    weights of the best run (the only one for a single run), torch layout
    weights/run-<i>.safetensors   every run's weights when several were trained at once
    metrics.csv          one row per run and update
    logs/<run>/          TensorBoard event files: the numbers of metrics.csv
    learning_curve.png   episodic return against episodes, one curve per run
    eval.json            final evaluation, one entry per run, and the index of the best run
    checkpoint/          state.safetensors (every array of the training state, the metrics so
                         far, the progress record in its metadata) + progress.json: what
                         ``reinforce train --resume`` continues (see ``reinforce.app.session``)

``config.json`` + ``model.safetensors`` is also a valid policy folder for
``reinforce_torch.policy.Policy.from_pretrained``.
"""

from __future__ import annotations

import csv
import io
import json
import re
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from reinforce.app.backends import BACKENDS
from reinforce.architecture import Architecture, architecture
from reinforce.backend import METRIC_NAMES, Metrics
from reinforce.checkpoint import (
    CHECKPOINT_DIR,
    PROGRESS_NAME,
    CheckpointError,
    atomic_write_text,
    load_weights,
    read_json,
    save_weights,
)
from reinforce.config import ConfigError, RunSpec, TrainConfig

#: The columns of ``metrics.csv`` that time the training: they differ between two trainings of
#: the same numbers.
TIMING_COLUMNS = ("steps_per_second", "wall_seconds")
#: The TensorBoard logs of a run folder, and the tag of each series in them.
LOGS_DIR = "logs"
LOG_TAGS = {
    "episodic_return": "charts/episodic_return",
    "episode_length": "charts/episode_length",
    "learning_rate": "charts/learning_rate",
    "env_steps": "charts/env_steps",
    "padded_steps": "charts/padded_steps",
    "steps_per_second": "charts/steps_per_second",
    "policy_loss": "losses/policy_loss",
    "entropy": "losses/entropy",
    "value_loss": "losses/value_loss",
}


@dataclass
class RunFolder:
    path: Path
    cfg: TrainConfig
    backend: str
    runs: list[RunSpec]
    arch: Architecture
    command: str | None = None  # the ``reinforce train`` command that trains it

    @property
    def observation_size(self) -> int:
        return self.arch.observation_size

    @property
    def num_actions(self) -> int:
        return self.arch.num_actions

    # --- writing ----------------------------------------------------------------------------

    def config_dict(self) -> dict[str, Any]:
        return {
            **self.arch.to_dict(),
            "env_id": self.cfg.env_id,
            "backend": self.backend,
            "runs": [r.to_dict() for r in self.runs],
            "train": self.cfg.to_dict(),
            **({"command": self.command} if self.command else {}),
        }

    def write_config(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path / "config.json", json.dumps(self.config_dict(), indent=2))

    def write_weights(self, states: list[dict[str, np.ndarray]], best: int) -> None:
        meta = {"env_id": self.cfg.env_id, "backend": self.backend, "format": "torch"}
        if len(states) > 1:
            (self.path / "weights").mkdir(exist_ok=True)
            for i, state in enumerate(states):
                save_weights(self.path / "weights" / f"run-{i}.safetensors", state, meta)
        save_weights(self.path / "model.safetensors", states[best], meta)

    def curves(self, metrics: Metrics, wall: np.ndarray) -> dict[str, np.ndarray]:
        """Every per-update series of the run folder, ``[runs, updates]``: the metrics, the
        learning rate, env steps per second and wall seconds (what ``metrics.csv`` and the
        TensorBoard logs hold)."""
        wall = np.asarray(wall, np.float64)
        updates = np.arange(wall.shape[1])
        lr = np.stack([self.run_config(i).lr * np.asarray([self.cfg.lr_factor(int(u))
                                                           for u in updates])
                       for i in range(len(self.runs))])
        return {**{name: np.asarray(getattr(metrics, name), np.float64)
                   for name in METRIC_NAMES},
                "learning_rate": lr,
                "steps_per_second": steps_per_second(np.asarray(metrics.env_steps), wall),
                "wall_seconds": wall}

    def write_metrics(self, curves: dict[str, np.ndarray]) -> None:
        """``metrics.csv``, one row per run and update, from :meth:`curves`."""
        buf = io.StringIO()
        writer = csv.writer(buf)
        settings = [name for name, _ in self.runs[0].settings]
        writer.writerow(["run", "seed", *settings, "update", "episodes", *curves])
        for i, spec in enumerate(self.runs):
            values = [_fmt(value) for _, value in spec.settings]
            for u in range(curves["wall_seconds"].shape[1]):
                row = [i, spec.seed, *values, u + 1, (u + 1) * self.cfg.batch_episodes]
                row += [_fmt(series[i][u]) for name, series in curves.items()
                        if name != "wall_seconds"]
                row.append(f"{curves['wall_seconds'][i][u]:.3f}")
                writer.writerow(row)
        atomic_write_text(self.path / "metrics.csv", buf.getvalue())

    def write_logs(self, curves: dict[str, np.ndarray]) -> None:
        """TensorBoard logs in ``logs/``, one folder per run (``seed-0_lr-0.07``), one point per
        update, from :meth:`curves`: the numbers of ``metrics.csv``."""
        FileWriter, Summary = _tensorboardx()
        # Each point's time: the end of its update, counted back from now (training just ended).
        start = time.time() - float(curves["wall_seconds"].max(initial=0.0))
        for i, spec in enumerate(self.runs):
            writer = FileWriter(str(self.path / LOGS_DIR / spec.label("-", "_")),
                                flush_secs=3600)
            try:
                series = {tag: curves[name][i].tolist() for name, tag in LOG_TAGS.items()}
                ends = curves["wall_seconds"][i].tolist()
                for u, end in enumerate(ends):  # one event per update, every series in it
                    summary = Summary(value=[Summary.Value(tag=tag, simple_value=values[u])
                                             for tag, values in series.items()])
                    writer.add_summary(summary, u + 1, walltime=start + end)
            finally:
                writer.close()

    def write_eval(self, results: list[dict[str, float]], wall_seconds: float,
                   n_episodes: int, machine: str | None = None) -> int:
        scores = [r["score"] for r in results]
        best = int(np.argmax(scores))
        data = {
            "env_id": self.cfg.env_id,
            "backend": self.backend,
            "n_evaluation_episodes": n_episodes,
            "wall_seconds": round(wall_seconds, 3),
            **({"machine": machine} if machine else {}),
            "runs": [
                {**spec.to_dict(), **res, "best": i == best}
                for i, (spec, res) in enumerate(zip(self.runs, results, strict=True))
            ],
            "best": best,
        }
        atomic_write_text(self.path / "eval.json", json.dumps(data, indent=2))
        return best

    def plot(self, metrics: Metrics) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(8, 4.5))
        for spec, y in zip(self.runs, np.asarray(metrics.episodic_return, np.float64),
                           strict=True):
            x = np.arange(1, len(y) + 1) * self.cfg.batch_episodes
            window = max(1, min(len(y) // 20, 100 // self.cfg.batch_episodes or 1))
            smooth = np.convolve(y, np.ones(window) / window, mode="valid")
            label = spec.label(" ", ", ") if len(self.runs) <= 12 else None
            ax.plot(x[window - 1:], smooth, lw=1, label=label)
        ax.set_xlabel("training episodes")
        ax.set_ylabel("episodic return (moving average)")
        ax.set_title(f"REINFORCE on {self.cfg.env_id} ({self.backend})")
        if len(self.runs) <= 12:
            ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(self.path / "learning_curve.png", dpi=100)
        plt.close(fig)

    # --- reading ----------------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | Path) -> RunFolder:
        path = Path(path)
        if not path.is_dir():
            raise CheckpointError(f"no run folder at {path}")
        config = read_json(path / "config.json")
        if not isinstance(config, dict):
            raise CheckpointError(f"{path / 'config.json'} is not a run config (not an object)")
        try:
            cfg = TrainConfig.from_dict(config["train"])
            backend = config["backend"]
            runs = [RunSpec.from_dict(r) for r in config["runs"]]
            for r in runs:
                r.config(cfg)
            int(config["observation_size"]), int(config["num_actions"])
            hidden = [int(h) for h in config.get("hidden_sizes", cfg.hidden_sizes)]
        except KeyError as exc:
            raise CheckpointError(f"{path / 'config.json'} is not a run config: missing "
                                  f"{exc}") from None
        except (TypeError, ValueError, ConfigError) as exc:
            raise CheckpointError(f"{path / 'config.json'} is not a run config: {exc}") from None
        if backend not in BACKENDS:
            raise CheckpointError(f"{path / 'config.json'}: unknown backend {backend!r}")
        if not runs:
            raise CheckpointError(f"{path / 'config.json'} lists no runs")
        if hidden != list(cfg.hidden_sizes):
            raise CheckpointError(f"{path / 'config.json'}: hidden_sizes {hidden} and "
                                  f"train.hidden_sizes {list(cfg.hidden_sizes)} disagree")
        arch, want = Architecture.from_dict(config, path / "config.json"), architecture(cfg)
        if arch != want:
            raise CheckpointError(
                f"{path / 'config.json'} describes a policy for {arch.observation_size} "
                f"observations and {arch.num_actions} actions, but {cfg.env_id} has "
                f"{want.observation_size} and {want.num_actions} (obs {cfg.obs}: "
                f"{want.describe()}, not {arch.describe()})"
            )
        command = config.get("command")
        return cls(path, cfg, backend, runs, arch, command if isinstance(command, str) else None)

    @classmethod
    def load_finished(cls, path: str | Path) -> RunFolder:
        """A run folder with its final weights (a clear error for a missing or unfinished
        run)."""
        folder = cls.load(path)
        folder.check_finished()
        return folder

    def check_finished(self) -> None:
        """``CheckpointError`` saying how to finish the run if it has no final weights and its
        checkpoint says training is not over (with no readable checkpoint, the missing weights
        file is the error, when they are read)."""
        if (self.path / "model.safetensors").exists():
            return
        try:
            progress = read_json(self.path / CHECKPOINT_DIR / PROGRESS_NAME)
            at, done, total = (progress["at"], int(progress["total_updates_done"]),
                               int(progress["total_updates"]))
        except (CheckpointError, KeyError, TypeError, ValueError):
            return
        if done < total:
            raise CheckpointError(f"run {self.path} has not finished training (stopped at "
                                  f"{at}, no model.safetensors yet); finish it with: reinforce "
                                  f"train --resume {self.path}")

    def run_config(self, run: int) -> TrainConfig:
        """The config run ``run`` trained with: the folder's, with the run's own settings."""
        return self.runs[run].config(self.cfg)

    def load_weights(self, run: int | None = None) -> dict[str, np.ndarray]:
        """Weights of run ``run`` (default: the best / only one), checked against the config."""
        if run is None or len(self.runs) == 1:
            file = self.path / "model.safetensors"
        else:
            file = self.path / "weights" / f"run-{run}.safetensors"
        state = load_weights(file)
        self.arch.check(state, source=file)
        return state

    def policy(self, run: int | None = None):
        """Run ``run``'s weights (default: the best / only one) as the export format's torch
        ``Policy``, whichever backend trained them (torch is imported here, when needed)."""
        from reinforce_torch.policy import Policy

        return Policy.from_weights(self.load_weights(run), self.arch)

    def best_run(self) -> int:
        eval_file = self.path / "eval.json"
        if not eval_file.is_file():
            return 0
        return int(read_json(eval_file).get("best", 0))


def _tensorboardx() -> tuple[Any, Any]:
    """tensorboardX's ``FileWriter`` and ``Summary``, imported without torch where torch is not
    loaded yet: tensorboardX imports torch if it can, for torch tensors it is never given here
    (a second, 0.9 s here, of a JAX run that otherwise never loads torch)."""
    block = "torch" not in sys.modules
    if block:
        sys.modules["torch"] = None  # type: ignore[assignment]  # "import torch" fails
    try:
        from tensorboardX import FileWriter
        from tensorboardX.proto.summary_pb2 import Summary
    finally:
        if block:
            del sys.modules["torch"]
    return FileWriter, Summary


def steps_per_second(env_steps: np.ndarray, wall: np.ndarray) -> np.ndarray:
    """Env steps per second of each update, ``[runs, updates]``: the steps of the updates that
    ended together (a compiled chunk) over the time since the updates before them ended, in
    any run (runs that train one after the other start when the one before ends)."""
    out = np.zeros(wall.shape, np.float64)
    ends = np.unique(wall)
    for i in range(wall.shape[0]):
        group_ends, group = np.unique(wall[i], return_inverse=True)
        steps = np.bincount(group, weights=np.asarray(env_steps[i], np.float64))
        k = np.searchsorted(ends, group_ends)
        seconds = group_ends - np.where(k > 0, ends[np.maximum(k - 1, 0)], 0.0)
        rate = np.divide(steps, seconds, out=np.zeros_like(steps), where=seconds > 0)
        out[i] = rate[group]
    return out


def new_run_path(root: Path, env_id: str, backend: str) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", env_id)  # gymnax:X, ns/Y: no ':' or '/' in a name
    base = Path(root) / f"{name}-{backend}-{stamp}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def _fmt(value: Any) -> str:
    v = float(value)
    return str(int(v)) if v.is_integer() and abs(v) < 1e15 else f"{v:.6g}"
