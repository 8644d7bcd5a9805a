"""A whole training, from settings to a finished run folder: the Python API.

``reinforce.train(...)`` (this module's :func:`train`) is what ``reinforce train`` runs: it
checks the settings, the device and the memory before anything is written, creates the run
folder, trains every run under a :class:`~reinforce.app.session.Session` (checkpoints, Ctrl-C)
with a progress bar (a widget in a notebook), evaluates, and writes the weights, metrics,
learning curve and ``eval.json``. It returns a :class:`Run`, which is also what
:func:`load` gives for a run folder: its scores and metrics, its best policy, and
``evaluate``, ``record`` and ``push``.

Errors a user can cause are raised as :class:`UsageError`, ``ConfigError``,
``CheckpointError`` or ``TooBigError`` with a one-line message; a refused start leaves nothing
behind. The command line (``reinforce.app.cli``) parses its options into these calls and
prints what they return.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import os
import platform
import shlex
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from reinforce.app import backends
from reinforce.app.agents import open_agent
from reinforce.app.evaluation import evaluate_run
from reinforce.app.hub import DEFAULT_EPISODES, DEFAULT_SEED
from reinforce.app.hub import push as push_run
from reinforce.app.lock import WRITER_NAME, run_folder_lock
from reinforce.app.runs import RunFolder, new_run_path
from reinforce.app.session import (
    DEFAULT_CHECKPOINT_SECONDS,
    Session,
    check_resumable,
    identity_diff,
    run_identity,
    stop_on_signals,
)
from reinforce.app.video import DEFAULT_FPS, Replay, record_folder
from reinforce.architecture import architecture
from reinforce.backend import Backend, TrainingError, TrainingStopped
from reinforce.checkpoint import (
    CHECKPOINT_DIR,
    STATE_NAME,
    CheckpointError,
    DiskFullError,
    TrainingCheckpoint,
    disk_full,
    load_checkpoint,
    make_writable_dir,
    read_json,
)
from reinforce.config import (
    CERTIFICATION,
    DEFAULT_PRESET,
    SWEEPABLE,
    ConfigError,
    RunSpec,
    TrainConfig,
    flag_of,
    grid,
    preset,
)
from reinforce.envs import UnknownEnvError, check_id
from reinforce.evaluation import EvalResult, certification_line, summarize
from reinforce.memory import TooBigError
from reinforce_jax.devices import use_compile_cache, use_host_cores


class UsageError(ValueError):
    """Bad input from the user: reported on one line (the command line exits with 2)."""


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


# --- settings --------------------------------------------------------------------------------

#: A setting's name in :func:`train`: its TrainConfig field, or its command-line flag without
#: the dashes (``episodes`` for ``n_training_episodes``, ``hidden`` for ``hidden_sizes``).
SETTING_NAMES = {**{f.name: f.name for f in fields(TrainConfig)},
                 **{flag_of(f)[2:].replace("-", "_"): f.name for f in fields(TrainConfig)}}


def make_config(env_id: str, preset_name: str | None, settings: dict[str, Any],
                base: TrainConfig | None = None
                ) -> tuple[TrainConfig, dict[str, list[float]]]:
    """The config (``base`` or else the preset, then every setting given, the first value of a
    list) and the settings given several values (``SWEEPABLE``: each run has its own), with
    their values."""
    try:
        check_id(env_id)
    except UnknownEnvError as exc:
        raise UsageError(str(exc)) from None
    if base is not None:
        cfg = base.replace(env_id=env_id)
    else:
        cfg = preset(preset_name if preset_name is not None else DEFAULT_PRESET, env_id)
    given: dict[str, Any] = {}
    for name, value in settings.items():
        if name not in SETTING_NAMES:
            raise UsageError(f"unknown setting {name!r}; the settings are TrainConfig's "
                             f"fields: {', '.join(f.name for f in fields(TrainConfig))}")
        field = SETTING_NAMES[name]
        if field == "env_id":
            raise UsageError("give the env as env_id, not as a setting")
        if field in given:
            raise UsageError(f"{name!r}: {field} is given twice")
        if field in SWEEPABLE:
            value = _numbers(name, value)
        given[field] = value
    sweeps = {name: values for name, values in given.items()
              if name in SWEEPABLE and len(values) > 1}
    cfg = cfg.replace(**{name: values[0] if name in SWEEPABLE else values
                         for name, values in given.items()})
    return cfg, sweeps


def _numbers(name: str, value: Any) -> list[float]:
    """A sweepable setting's values: one number or several."""
    values = list(value) if isinstance(value, Sequence) and not isinstance(value, str) \
        else [value]
    try:
        out = [float(v) for v in values]
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: expected a number or a list of numbers, got {value!r}"
                          ) from None
    if not out:
        raise ConfigError(f"{name}: expected at least one value")
    return out


@dataclass(frozen=True)
class TrainPlan:
    """A new training, checked before anything is written, allocated or compiled."""

    backend: Backend
    cfg: TrainConfig
    runs: list[RunSpec]  # every seed with every combination of the settings swept
    memory_note: str | None  # for the start-up line when the training is large


@dataclass(frozen=True)
class ConfigFile:
    """What ``--config FILE`` gives: a run's ``config.json`` (every run of it: its seeds and
    the settings it swept) or a pushed ``hyperparameters.json`` (the run that was pushed)."""

    cfg: TrainConfig
    backend: str
    seed: int
    seeds: int
    sweeps: dict[str, list[float]]

    @classmethod
    def read(cls, path: str | Path) -> ConfigFile:
        path = Path(path)
        data = read_json(path)
        try:
            if isinstance(data, dict) and isinstance(data.get("train"), dict):  # config.json
                cfg = TrainConfig.from_dict(data["train"])
                runs = [RunSpec.from_dict(r) for r in data["runs"]]
                seeds = list(dict.fromkeys(r.seed for r in runs))
                values = {name: list(dict.fromkeys(dict(r.settings)[name] for r in runs))
                          for name, _ in runs[0].settings}
                sweeps = {name: v for name, v in values.items() if len(v) > 1}
                backend = data["backend"]
            elif isinstance(data, dict) and "trained_with" in data:  # hyperparameters.json
                names = {f.name for f in fields(TrainConfig)}
                cfg = TrainConfig.from_dict({k: v for k, v in data.items() if k in names})
                seeds, sweeps, backend = [int(data["seed"])], {}, data["trained_with"]
            else:
                raise ConfigError("it is neither a run's config.json nor a pushed "
                                  "hyperparameters.json")
            if seeds != list(range(seeds[0], seeds[0] + len(seeds))):
                raise ConfigError(f"its seeds {seeds} do not follow one another")
        except (KeyError, TypeError, ValueError, ConfigError) as exc:
            why = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
            raise ConfigError(f"--config {path}: {why}") from None
        return cls(cfg, str(backend), seeds[0], len(seeds), sweeps)


def plan(env_id: str | None = None, backend: str | None = None, *, preset: str | None = None,
         seed: int | None = None, seeds: int | None = None, config: str | Path | None = None,
         device: str = "auto", **settings: Any) -> TrainPlan:
    """The backend, the config and its runs, the device and the memory the runs need, all
    checked (a one-line ``UsageError``, ``ConfigError`` or ``TooBigError``); nothing is
    written. ``config``: a run's ``config.json`` or a pushed ``hyperparameters.json`` gives
    the env, backend, seeds and settings that are not given here."""
    base = None
    if config is not None:
        if preset is not None:
            raise UsageError("--config gives every setting; drop --preset")
        file = ConfigFile.read(config)
        base = file.cfg
        env_id = env_id if env_id is not None else file.cfg.env_id
        backend = backend if backend is not None else file.backend
        seed = seed if seed is not None else file.seed
        seeds = seeds if seeds is not None else file.seeds
        given = {SETTING_NAMES.get(name, name) for name in settings}
        settings = {**{k: v for k, v in file.sweeps.items() if k not in given}, **settings}
    env_id = env_id if env_id is not None else "CartPole-v1"
    cfg, sweeps = make_config(env_id, preset, settings, base)
    backend_ = backends.for_env(backend, env_id)
    seed = seed if seed is not None else 0
    seeds = seeds if seeds is not None else 1
    backend_.check_device(device)
    n_runs = seeds * math.prod(len(values) for values in sweeps.values())
    note = backend_.memory(cfg, n_runs, device).check()  # before listing the runs
    cfg, runs = grid(cfg, list(range(seed, seed + seeds)), sweeps)
    return TrainPlan(backend_, cfg, runs, note)


def command_line(env_id: str | None = None, backend: str | None = None, *,
                 preset: str | None = None, seed: int | None = None, seeds: int | None = None,
                 config: str | Path | None = None, **settings: Any) -> str:
    """The ``reinforce train`` command of these arguments of :func:`train` (what a run folder
    records, and its Hub card shows)."""
    by_field = {f.name: f for f in fields(TrainConfig)}
    order = list(by_field)  # the settings in TrainConfig's order, however they were given
    settings = dict(sorted(settings.items(),
                           key=lambda item: order.index(SETTING_NAMES.get(item[0], item[0]))))
    words = ["reinforce", "train"]
    for flag, value in (("--config", config), ("--env", env_id), ("--backend", backend),
                        ("--preset", preset), ("--seed", seed), ("--seeds", seeds)):
        if value is not None:
            words += [flag, str(value)]
    for name, value in settings.items():
        flag = flag_of(by_field[SETTING_NAMES.get(name, name)])
        if isinstance(value, bool):
            words.append(flag if value else "--no-" + flag[2:])
        elif isinstance(value, Sequence) and not isinstance(value, str):
            words += [flag, ",".join(f"{v:g}" if isinstance(v, float) else str(v)
                                     for v in value)]
        else:
            words += [flag, f"{value:g}" if isinstance(value, float) else str(value)]
    return shlex.join(words)


@dataclass(frozen=True)
class Options:
    """How a training runs, not what it trains."""

    device: str = "auto"
    progress: bool = True  # the progress bar
    checkpoint_every: float = DEFAULT_CHECKPOINT_SECONDS
    stop_after: int | None = None
    echo: Callable[[str], None] = _stderr  # the start-up line


# --- the API ---------------------------------------------------------------------------------


def train(env_id: str | None = None, backend: str | None = None, *,
          preset: str | None = None, seed: int | None = None, seeds: int | None = None,
          config: str | Path | None = None, out: str | Path | None = None,
          device: str = "auto", progress: bool = True,
          checkpoint_every: float = DEFAULT_CHECKPOINT_SECONDS, stop_after: int | None = None,
          resume_if_stopped: bool = False, echo: Callable[[str], None] = print,
          **settings: Any) -> Run:
    """Train ``seeds`` runs (seeds ``seed``, ``seed + 1``, ...; default 1 run of seed 0) of
    REINFORCE on ``env_id`` (default CartPole-v1) with ``backend`` (default jax), evaluate them
    and write the run folder ``out`` (default ``runs/<env>-<backend>-<time>``); the finished
    :class:`Run`.

    ``preset`` (default ``fast``) gives every setting; ``settings`` override it, by
    TrainConfig field or command-line name (``lr=0.01``, ``episodes=500``, ``hidden=(64,
    128)``); a list for ``lr``, ``gamma``, ``value_coef``, ``entropy_coef`` or
    ``max_grad_norm`` trains every combination. ``config``, a run's ``config.json`` or a
    pushed ``hyperparameters.json``, takes the preset's place and also gives the env, backend
    and seeds not given. ``stop_after`` stops (with a checkpoint) after that many updates:
    continue with :func:`resume`. ``resume_if_stopped``: if ``out`` holds this very training,
    stopped, continue it (finished: nothing to do); with other settings, refuse; else start it.
    ``echo`` prints the start-up line.
    """
    use_host_cores()  # before JAX's first array (nothing changes once JAX has started)
    use_compile_cache()
    what = dict(env_id=env_id, backend=backend, preset=preset, seed=seed, seeds=seeds,
                config=config, **settings)
    the_plan = plan(device=device, **what)
    options = Options(device, progress, checkpoint_every, stop_after, echo)
    if resume_if_stopped:
        if out is None:
            raise UsageError("--resume-if-stopped needs --out DIR: the run to continue or start")
        if (Path(out) / "config.json").is_file():
            check_same_training(the_plan, Path(out))
            return resume(out, device=device, progress=progress,
                          checkpoint_every=checkpoint_every, stop_after=stop_after, echo=echo)
    return Run(start(the_plan, out, options, command_line(**what)))


def check_same_training(the_plan: TrainPlan, path: Path) -> None:
    """Refuse (one line) to continue the run in ``path`` unless it is ``the_plan``'s training:
    the same env, backend, architecture, runs and settings."""
    planned = run_identity(new_folder(the_plan, path).config_dict())
    there = run_identity(RunFolder.load(path).config_dict())
    if planned != there:
        raise UsageError(f"{path} holds a training with other settings "
                         f"({', '.join(identity_diff(planned, there))} differ); give the "
                         "settings it was started with, or another --out")


def resume(run_dir: str | Path, *, device: str = "auto", progress: bool = True,
           checkpoint_every: float = DEFAULT_CHECKPOINT_SECONDS, stop_after: int | None = None,
           echo: Callable[[str], None] = print) -> Run:
    """Continue the stopped or interrupted training in ``run_dir`` from its checkpoint, with the
    settings in its config.json; it ends with the numbers of an uninterrupted run."""
    use_host_cores()
    use_compile_cache()
    options = Options(device, progress, checkpoint_every, stop_after, echo)
    RunFolder.load(run_dir)  # a missing or corrupt folder: its own error, before the lock
    with run_folder_lock(run_dir, f"reinforce train --resume {run_dir}"):
        opened = open_resume(Path(run_dir), device, echo)
        if opened is not None:
            folder, checkpoint, note = opened
            run_training(folder, checkpoint, options, note)
    return Run(run_dir)


def load(source: str | Path, device: str = "auto") -> Run:
    """The run in a run folder (finished or not), or the agent in a pushed folder or a Hub
    repo (``USER/NAME``: downloaded, see ``reinforce.app.agents``)."""
    return Run(source, device)


class Run:
    """A run folder: what one training wrote (``reinforce.app.runs``), and what can be done
    with it; or an agent pushed to the Hub (a pushed folder or a repo id), which has no
    metrics or results of its own but plays, evaluates and records the same way.

    ``results``, ``scores``, ``best`` and ``metrics`` read the folder's ``eval.json`` and
    ``metrics.csv`` (one entry, or one row, per run: every seed and setting trained);
    ``policy()`` is the best run's policy (torch, the export format);
    ``evaluate``, ``record`` and ``push`` work as the commands of the same names.
    """

    def __init__(self, source: str | Path, device: str = "auto"):
        agent = open_agent(source, device)
        self.folder, self.source = agent.folder, agent.source
        self.path = self.folder.path
        self._default_replay = agent.default_replay()
        self._is_run = agent.is_run

    def __repr__(self) -> str:
        return f"Run({self.source!r})"

    @property
    def env_id(self) -> str:
        return self.folder.cfg.env_id

    @property
    def backend(self) -> str:
        return self.folder.backend

    @property
    def config(self) -> TrainConfig:
        return self.folder.cfg

    @property
    def runs(self) -> list[RunSpec]:
        return self.folder.runs

    @cached_property
    def _eval(self) -> dict[str, Any]:
        self.folder.check_finished()
        file = self.path / "eval.json"
        if not file.is_file():
            raise CheckpointError(f"{self.source} has no eval.json (a finished run's "
                                  "evaluation)")
        data = read_json(file)
        if not isinstance(data, dict) or not isinstance(data.get("runs"), list):
            raise CheckpointError(f"{file} is not a run's evaluation")
        return data

    @property
    def results(self) -> list[EvalResult]:
        """Each run's final evaluation."""
        try:
            return [EvalResult(float(r["mean_reward"]), float(r["std_reward"]),
                               int(r["n_episodes"])) for r in self._eval["runs"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{self.path / 'eval.json'} lacks {exc}") from None

    @property
    def scores(self) -> list[float]:
        """Each run's score (mean - std of its final evaluation)."""
        return [r.score for r in self.results]

    @property
    def best(self) -> int:
        """The index of the run with the best score (``model.safetensors`` holds its weights)."""
        return int(self._eval.get("best", 0))

    @property
    def wall_seconds(self) -> float:
        return float(self._eval.get("wall_seconds", float("nan")))

    @property
    def learning_curve(self) -> Path:
        return self.path / "learning_curve.png"

    @cached_property
    def metrics(self) -> dict[str, np.ndarray]:
        """Per run and update (``[runs, updates]``): every column of ``metrics.csv`` after
        ``update``: ``episodes``, the metrics of ``reinforce.backend.Metrics``,
        ``learning_rate``, ``steps_per_second``, ``wall_seconds``."""
        file = self.path / "metrics.csv"
        try:
            reader = csv.reader(io.StringIO(file.read_text()))
            header = next(reader)
            first = header.index("update") + 1
            names = header[first:]
            values = np.asarray([[float(v) for v in row[first:]] for row in reader], np.float64)
            values = values.reshape(len(self.runs), -1, len(names))
        except OSError as exc:
            raise CheckpointError(f"cannot read {file}: {exc.strerror}") from None
        except (StopIteration, TypeError, ValueError) as exc:
            raise CheckpointError(f"{file} is not a run's metrics ({exc})") from None
        return {name: values[:, :, i] for i, name in enumerate(names)}

    def policy(self, run: int | None = None):
        """Run ``run``'s policy (default: the best one), a torch ``Policy``."""
        self.folder.check_finished()
        return self.folder.policy(run)

    def summary(self) -> list[str]:
        """What ``reinforce train`` prints at the end: one certification line per run (the best
        marked), how many reach the certification score, the wall time."""
        results = self.results
        lines = []
        for i, (spec, res) in enumerate(zip(self.runs, results, strict=True)):
            mark = "  <- best" if len(results) > 1 and i == self.best else ""
            lines.append(f"{spec.label(' ')}: {certification_line(self.env_id, res)}{mark}")
        threshold = CERTIFICATION.get(self.env_id)
        if len(results) > 1 and threshold is not None:
            n_ok = sum(r.score >= threshold for r in results)
            lines.append(f"{n_ok}/{len(results)} runs reach the certification score "
                         f"{threshold:g}")
        lines.append(f"wall time {self.wall_seconds:.1f} s; run folder {self.path}")
        return lines

    def evaluate(self, episodes: int = DEFAULT_EPISODES, *, seed: int = DEFAULT_SEED,
                 backend: str | None = None, device: str = "auto") -> EvalResult:
        """``episodes`` episodes of the best policy, played by ``backend`` (default: the run's
        own) from ``seed``: what ``reinforce evaluate`` prints."""
        backend_ = backends.for_env(backend or self.backend, self.env_id)
        self.folder.check_finished()
        use_compile_cache()
        backend_.check_device(device)
        return evaluate_run(self.folder, backend_.name, episodes, seed, device)

    def record(self, out: str | Path | None = None, *, fps: int = DEFAULT_FPS,
               seed: int = DEFAULT_SEED, max_frames: int | None = None,
               device: str = "auto") -> Replay:
        """A replay video of the best policy (default ``RUN_DIR/replay.mp4``; for a Hub
        repo, ``NAME-replay.mp4`` here)."""
        backends.get("torch").check_device(device)  # the replay plays the export format
        self.folder.check_finished()
        out = Path(out) if out is not None else self._default_replay
        # Writing into a run folder (its replay.mp4): one writer at a time.
        lock = (run_folder_lock(self.path, f"reinforce record {self.source}")
                if self._is_run else contextlib.nullcontext())
        with lock:
            return record_folder(self.folder, out, fps=fps, seed=seed, max_frames=max_frames,
                                 device=device)

    def push(self, repo_id: str | None = None, *, local_dir: str | Path | None = None,
             episodes: int = DEFAULT_EPISODES, seed: int = DEFAULT_SEED,
             backend: str | None = None, fps: int = DEFAULT_FPS, max_frames: int | None = None,
             private: bool = False, device: str = "auto",
             echo: Callable[[str], None] = print) -> Path:
        """Evaluate, build the Hub folder and upload it to ``repo_id`` (``local_dir``: a dry
        run that only builds the folder there); the folder."""
        return push_run(self.path, repo_id=repo_id, local_dir=local_dir, n_episodes=episodes,
                        seed=seed, backend=backend, fps=fps, max_frames=max_frames,
                        private=private, echo=echo, device=device)


# --- what train and resume run ---------------------------------------------------------------


class NotStarted(Exception):
    """Training failed before its first update (its cause is the error to report)."""


def prepare_out(path: str | Path | None, cfg: TrainConfig, backend: str) -> Path:
    """The new run folder (default ``runs/<env>-<backend>-<time>``), created empty."""
    path = Path(path) if path is not None else new_run_path(Path("runs"), cfg.env_id, backend)
    if path.exists() and (not path.is_dir() or _holds_files(path)):
        raise _not_empty(path)
    try:
        make_writable_dir(path)
    except OSError as exc:
        raise UsageError(f"cannot write to output folder {path}: {exc.strerror}") from None
    return path


def _holds_files(path: Path) -> bool:
    """Whether a folder holds anything but a lock file (which a refused start may leave)."""
    return any(p.name != WRITER_NAME for p in path.iterdir())


def _not_empty(path: Path) -> UsageError:
    return UsageError(f"output folder {path} already exists and is not empty; choose another "
                      "--out (or add --resume-if-stopped to continue the run in it)")


def new_folder(the_plan: TrainPlan, path: Path, command: str | None = None) -> RunFolder:
    """The run folder of a planned training at ``path``; its config is not written yet."""
    return RunFolder(path, the_plan.cfg, the_plan.backend.name, the_plan.runs,
                     architecture(the_plan.cfg), command)


def start(the_plan: TrainPlan, out: str | Path | None, options: Options,
          command: str | None = None) -> Path:
    """Create the run folder of ``the_plan`` (at ``out``; ``command``: the one that trains
    it), train and write the results; the folder. A start refused before the first update
    removes the folder again."""
    path = prepare_out(out, the_plan.cfg, the_plan.backend.name)
    # One writer: of two trainings started into one new folder, one gets the lock; the other
    # is refused here, or finds the folder no longer empty once it has the lock.
    with run_folder_lock(path, command):
        if _holds_files(path):
            raise _not_empty(path)
        folder = new_folder(the_plan, path, command)
        try:
            folder.write_config()
            run_training(folder, None, options, the_plan.memory_note)
        except NotStarted as exc:  # nothing was trained: a refused start leaves nothing behind
            shutil.rmtree(folder.path, ignore_errors=True)
            raise exc.__cause__ from None
        except OSError as exc:  # the config could not be written
            shutil.rmtree(folder.path, ignore_errors=True)
            error = disk_full(exc, folder.path / "config.json")
            if isinstance(error, DiskFullError):
                raise error from None
            raise UsageError(f"cannot write to output folder {folder.path}: {exc.strerror}"
                             ) from None
    return folder.path


def train_other_process(the_plan: TrainPlan, process: int, n_processes: int,
                        options: Options) -> None:
    """A process other than 0 of a multi-process run: it trains its share of the runs and
    writes nothing; the run folder is process 0's (its files go to a temporary folder)."""
    scratch = Path(tempfile.mkdtemp(prefix=f"reinforce-process-{process}-"))
    try:
        folder = new_folder(the_plan, scratch / "run")
        make_writable_dir(folder.path)
        folder.write_config()
        quiet = Options(options.device, False, options.checkpoint_every, options.stop_after,
                        lambda line: None)
        with contextlib.redirect_stdout(io.StringIO()):
            run_training(folder, None, quiet)
    except TrainingStopped as exc:  # all processes stop together; process 0 has the checkpoint
        raise TrainingStopped(f"process {process}: stopped with the other processes; process "
                              "0 saved the checkpoint", by_signal=exc.by_signal,
                              signum=exc.signum) from None
    except TrainingError as exc:  # the same in every process; process 0 reports it in full
        raise TrainingError(f"process {process}: {str(exc).split(';')[0]}") from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def open_resume(path: Path, device: str, echo: Callable[[str], None] = _stderr
                ) -> tuple[RunFolder, TrainingCheckpoint, str | None] | None:
    """The run folder and checkpoint to continue, and the memory note; None (after a message)
    if it is finished.

    Everything is checked before anything is written: a missing or corrupt run folder or
    checkpoint, a checkpoint of another backend or config, the device and the memory.
    """
    folder = RunFolder.load(path)
    checkpoint = load_checkpoint(path / CHECKPOINT_DIR)
    check_resumable(checkpoint, run_identity(folder.config_dict()), path / CHECKPOINT_DIR)
    backend = backends.get(folder.backend)
    backend.check_checkpoint(folder.cfg, folder.runs, checkpoint,
                             str(path / CHECKPOINT_DIR / STATE_NAME))
    done, total = (checkpoint.progress["total_updates_done"],
                   checkpoint.progress["total_updates"])
    results = ("eval.json", "model.safetensors", "metrics.csv")
    if done >= total and all((path / name).is_file() for name in results):
        echo(f"reinforce: run {path} already finished ({done}/{total} updates, evaluated in "
             f"{path / 'eval.json'}); nothing to resume. Evaluate it again with: "
             f"reinforce evaluate {path}")
        return None
    try:
        make_writable_dir(path / CHECKPOINT_DIR)
    except OSError as exc:
        raise UsageError(f"cannot write to run folder {path}: {exc.strerror}") from None
    backend.check_device(device)
    note = backend.memory(folder.cfg, len(folder.runs), device).check()
    return folder, checkpoint, note


def run_training(folder: RunFolder, checkpoint: TrainingCheckpoint | None, options: Options,
                 memory_note: str | None = None) -> None:
    """Train the runs of ``folder`` (from ``checkpoint`` if given) and write the results.

    An error before the first update of a new run is raised as :class:`NotStarted`; a full
    disk during training is a ``TrainingError`` that says which checkpoint is kept and how to
    resume."""
    cfg, specs, out = folder.cfg, folder.runs, folder.path
    backend = backends.get(folder.backend)
    total = backends.total_updates(backend, cfg, len(specs))
    session = Session.for_run_folder(out, folder.config_dict(), total, resume=checkpoint,
                                     every_seconds=options.checkpoint_every,
                                     stop_after=options.stop_after)
    start_at = session.last_saved or 0
    devices = backend.describe_devices(options.device, len(specs))
    machine = f"{describe_host()}; {backend.name} on {devices}"
    if checkpoint is None:
        if cfg.segment_steps:
            budget = (f"{cfg.n_updates} updates of {cfg.batch_episodes} env(s) x "
                      f"{cfg.segment_steps} steps, learning from the first {cfg.segment_learned}")
        else:
            budget = (f"{cfg.n_training_episodes} episodes, {cfg.n_updates} updates of "
                      f"{cfg.batch_episodes} episode(s) each")
        memory = f"; memory: {memory_note}" if memory_note else ""
        options.echo(f"training {len(specs)} run(s) of REINFORCE on {cfg.env_id} with "
                     f"{backend.name} on {devices} ({budget}{memory}) -> {out}")
    else:
        options.echo(f"resuming {len(specs)} run(s) of REINFORCE on {cfg.env_id} with "
                     f"{backend.name} in {out} at "
                     f"{checkpoint.progress.get('at', f'update {start_at}')}")

    bar = _progress_bar()(total=total, initial=start_at, unit="upd",
                          disable=not options.progress, dynamic_ncols=True, file=sys.stderr)
    progress = {"done": start_at}

    def on_progress(done: int, recent: float) -> None:
        progress["done"] = done
        bar.n = done
        bar.set_postfix_str(f"avg return {recent:.1f}")

    try:
        with stop_on_signals(session.stop_flag):
            result = backend.train_many(cfg, specs, supervisor=session,
                                        on_progress=on_progress, device=options.device)
        wall_seconds = session.wall_seconds()
        results = [summarize(r) for r in result.eval_returns]
        best = folder.write_eval([r.to_dict() for r in results], wall_seconds,
                                 cfg.n_evaluation_episodes, machine=machine)
        folder.write_weights(result.weights, best)
        curves = folder.curves(result.metrics, result.wall)
        folder.write_metrics(curves)
        folder.write_logs(curves)
        folder.plot(result.metrics)
        session.finished()
    except (TrainingStopped, TrainingError):
        raise
    except Exception as exc:
        if checkpoint is None and progress["done"] == 0:
            raise NotStarted() from one_line(exc)
        raise one_line(exc, session) from None
    finally:
        bar.close()


def cpu_model() -> str:
    """The CPU's model name (Linux's /proc/cpuinfo, else what ``platform`` knows)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown"


def describe_host() -> str:
    """This machine in a few words: its CPU model and number of cores."""
    return f"{cpu_model()}, {os.cpu_count()} cores"


def _progress_bar():
    """tqdm's bar: a widget in a notebook that has ipywidgets (Colab has), text elsewhere."""
    from tqdm import tqdm

    if "ipykernel" in sys.modules:
        try:
            import ipywidgets  # noqa: F401
            from tqdm.notebook import tqdm
        except ImportError:
            pass
    return tqdm


def one_line(exc: Exception, session: Session | None = None) -> Exception:
    """An error of training as a one-line error: a full disk (with a ``session``, which
    checkpoint is kept and how to resume), memory exhausted on a device (the input was too
    big); other errors as they are."""
    kept = ""
    if session is not None and session.last_saved is not None:
        kept = (f"; the last good checkpoint ({session.last_saved_label}) is kept; once there "
                f"is space, resume with: {session.resume_command}")
    full = disk_full(exc, "?") if isinstance(exc, OSError) else None
    if isinstance(full, DiskFullError):
        return TrainingError(f"{full}{kept}")
    text = str(exc)
    if isinstance(exc, MemoryError) or "RESOURCE_EXHAUSTED" in text or "out of memory" in text:
        first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
        return TooBigError(f"out of memory: {first[:300]}; train with smaller settings (the "
                           "largest parts of the memory estimate are in docs/troubleshooting.md)")
    return exc
