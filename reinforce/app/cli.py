"""The command line: ``reinforce train|evaluate|record|push ...`` (also ``python -m reinforce``).

Every error a user can cause (unknown env, bad number, conflicting options, missing or corrupt
run folder) ends in one line on stderr and exit code 2; nothing already on disk is overwritten.
Training that goes non-finite ends with one line and exit code 1, keeping the last good
checkpoint; Ctrl-C saves a checkpoint and exits with 130; ``train --resume RUN_DIR`` goes on.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import math
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reinforce.app import backends
from reinforce.app.evaluation import evaluate_run
from reinforce.app.hub import DEFAULT_EPISODES, DEFAULT_SEED, HubError, push
from reinforce.app.runs import RunFolder, new_run_path
from reinforce.app.session import (
    DEFAULT_CHECKPOINT_SECONDS,
    Session,
    check_resumable,
    run_identity,
    stop_on_sigint,
)
from reinforce.app.video import DEFAULT_FPS, VideoError, record_run
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
)
from reinforce.config import (
    CERTIFICATION,
    DEFAULT_PRESET,
    DEVICES,
    PRESETS,
    SWEEPABLE,
    ConfigError,
    RunSpec,
    TrainConfig,
    flag_of,
    float_text,
    grid,
    preset,
)
from reinforce.envs import ENV_IDS, UnknownEnvError
from reinforce.evaluation import certification_line, summarize
from reinforce.memory import TooBigError
from reinforce_jax.devices import init_distributed, use_compile_cache, use_host_cores


class UsageError(Exception):
    """Bad input from the user: reported on one line, exit code 2."""


class OneLineParser(argparse.ArgumentParser):
    """argparse that raises :class:`UsageError` (one line, exit 2) instead of printing usage."""

    def error(self, message: str):  # one line, no usage dump
        raise UsageError(message)


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if not 0 <= value < 2**31:
        raise argparse.ArgumentTypeError(f"must be in [0, 2**31), got {value}")
    return value


def _seconds(text: str) -> float:
    value = float_text(text)
    if not (0 <= value < float("inf")):
        raise argparse.ArgumentTypeError(f"must be a number of seconds >= 0, got {text!r}")
    return value


#: How the command line reads a TrainConfig field of each type (unless the field says).
_READERS: dict[str, Any] = {"int": int, "float": float_text, "str": str}


def _add_setting(parser, f: dataclasses.Field) -> None:
    """The option of one TrainConfig field: its flag, help text and reader come from the
    field; a boolean field gets ``--x`` and ``--no-x``."""
    kwargs: dict[str, Any] = {"dest": f.name, "default": None, "help": f.metadata["help"]}
    if f.type == "bool":
        kwargs["action"] = argparse.BooleanOptionalAction
    else:
        kwargs["type"] = f.metadata.get("parse") or _READERS[str(f.type)]
        if f.metadata.get("metavar"):
            kwargs["metavar"] = f.metadata["metavar"]
    parser.add_argument(flag_of(f), **kwargs)


def _add_device(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--device", choices=DEVICES, default="auto",
                        help=f"where {what} computes: auto (default: the GPU when there is one), "
                             "cpu or cuda")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="reinforce", description="REINFORCE in JAX and PyTorch.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    # Settings default to None so that --resume can tell which were given (train_settings).
    train = sub.add_parser("train", help="train a policy and evaluate it")
    train.add_argument("--backend", default=None,
                       help=f"{' or '.join(backends.BACKENDS)} (default jax)")
    train.add_argument("--preset", default=None,
                       help=f"hyper-parameter preset: {', '.join(PRESETS)} (default "
                            f"{DEFAULT_PRESET}); the settings below override it")
    train.add_argument("--seed", type=_seed, default=None, help="first seed (default 0)")
    train.add_argument("--seeds", type=positive_int, default=None,
                       help="number of seeds: seed, seed+1, ... (JAX trains them all at once)")
    train.add_argument("--out", type=Path, default=None,
                       help="run folder to create (default runs/<env>-<backend>-<time>)")
    settings = train.add_argument_group(
        "training settings", "one per field of TrainConfig; the default is the preset's")
    for f in dataclasses.fields(TrainConfig):
        _add_setting(settings, f)
    _add_device(train, "training (and its evaluation)")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.add_argument("--resume", type=Path, default=None, metavar="RUN_DIR",
                       help="continue the interrupted run in RUN_DIR from its checkpoint, with "
                            "the settings in its config.json (give no other settings)")
    train.add_argument("--checkpoint-every", type=_seconds, default=DEFAULT_CHECKPOINT_SECONDS,
                       metavar="SECONDS",
                       help="save a checkpoint at most every SECONDS, between chunks of "
                            f"updates (default {DEFAULT_CHECKPOINT_SECONDS:g}; 0: after every "
                            "chunk); always at the start, on Ctrl-C and at the end")
    train.add_argument("--stop-after", type=positive_int, default=None, metavar="UPDATES",
                       help="save a checkpoint and stop once UPDATES updates are done (JAX: "
                            "at the end of that chunk); continue later with --resume")
    train.add_argument("--coordinator", default=None, metavar="HOST:PORT",
                       help="train over several processes (hosts) with jax.distributed: "
                            "the address of process 0; every process runs the same command "
                            "with its own --process-id, and process 0 writes the run folder")
    train.add_argument("--num-processes", type=positive_int, default=None, metavar="N",
                       help="number of processes, with --coordinator")
    train.add_argument("--process-id", type=int, default=None, metavar="I",
                       help="this process's index, 0 to N-1, with --coordinator")

    ev = sub.add_parser("evaluate", help="evaluate a saved run again")
    ev.add_argument("run_dir", type=Path)
    ev.add_argument("--episodes", type=positive_int, default=DEFAULT_EPISODES)
    ev.add_argument("--backend", default=None, help="jax or torch (default: the run's own)")
    ev.add_argument("--seed", type=int, default=DEFAULT_SEED)
    _add_device(ev, "the policy")

    push = sub.add_parser("push", help="evaluate a run and share it on the Hugging Face Hub")
    push.add_argument("run_dir", type=Path)
    push.add_argument("--repo-id", default=None, metavar="USER/NAME",
                      help="Hub repository to create or update (token: HF_TOKEN or a cached "
                           "`hf auth login`)")
    push.add_argument("--local-dir", type=Path, default=None, metavar="DIR",
                      help="dry run: build the repository folder in DIR, upload nothing "
                           "(no token, no network); default folder for an upload: RUN_DIR/hub")
    push.add_argument("--episodes", type=positive_int, default=DEFAULT_EPISODES,
                      help=f"evaluation episodes (default {DEFAULT_EPISODES})")
    push.add_argument("--seed", type=_seed, default=DEFAULT_SEED,
                      help=f"evaluation and replay seed (default {DEFAULT_SEED}, as for "
                           "evaluate)")
    push.add_argument("--backend", default=None,
                      help="jax or torch evaluation (default: the run's own)")
    push.add_argument("--fps", type=positive_int, default=DEFAULT_FPS, help="replay frame rate")
    push.add_argument("--max-frames", type=positive_int, default=None,
                      help="longest replay (default: the run's max_t + 1)")
    push.add_argument("--private", action="store_true", help="create the repository private")
    _add_device(push, "the evaluation")

    rec = sub.add_parser("record", help="write a replay video of a run's policy")
    rec.add_argument("run_dir", type=Path)
    rec.add_argument("--out", type=Path, default=None, metavar="FILE",
                     help="the .mp4 to write (default RUN_DIR/replay.mp4, replaced if there)")
    rec.add_argument("--fps", type=positive_int, default=DEFAULT_FPS,
                     help=f"frame rate (default {DEFAULT_FPS})")
    rec.add_argument("--seed", type=_seed, default=DEFAULT_SEED,
                     help=f"episode seed (default {DEFAULT_SEED})")
    rec.add_argument("--max-frames", type=positive_int, default=None,
                     help="longest video (default: the run's max_t + 1)")
    _add_device(rec, "the policy")
    return parser


def config_from_args(args: argparse.Namespace) -> tuple[TrainConfig, dict[str, list[float]]]:
    """The config (the preset, then every setting given, the first value of a list) and the
    settings given several values (``SWEEPABLE``: each run has its own), with their values."""
    env_id = args.env_id if args.env_id is not None else "CartPole-v1"
    if env_id not in ENV_IDS:
        raise UsageError(f"unknown env {env_id!r}; choose one of {', '.join(ENV_IDS)}")
    cfg = preset(args.preset if args.preset is not None else DEFAULT_PRESET, env_id)
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
             if f.name != "env_id" and getattr(args, f.name) is not None}
    sweeps = {name: values for name, values in given.items()
              if name in SWEEPABLE and len(values) > 1}
    cfg = cfg.replace(**{name: values[0] if name in SWEEPABLE else values
                         for name, values in given.items()})
    return cfg, sweeps


def _prepare_out(path: Path | None, cfg: TrainConfig, backend: str) -> Path:
    path = path if path is not None else new_run_path(Path("runs"), cfg.env_id, backend)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise UsageError(f"output folder {path} already exists and is not empty; "
                         "choose another --out")
    try:
        make_writable_dir(path)
    except OSError as exc:
        raise UsageError(f"cannot write to output folder {path}: {exc.strerror}") from None
    return path


def train_settings() -> list[tuple[str, str]]:
    """``(dest, flag)`` of the options that define a run, in the order messages name them;
    --resume takes them all from the run's config.json."""
    fields = {f.name: flag_of(f) for f in dataclasses.fields(TrainConfig)}
    run = [("backend", "--backend"), ("preset", "--preset"), ("seed", "--seed"),
           ("seeds", "--seeds"), ("out", "--out")]
    return [("env_id", fields.pop("env_id")), *run, *fields.items()]


def _join_processes(args: argparse.Namespace) -> int:
    """Join the other processes if ``--coordinator`` is given; this process's index (0 alone).

    Called before JAX starts (after :func:`_start_jax`)."""
    given = [f"--{name.replace('_', '-')}" for name in ("num_processes", "process_id")
             if getattr(args, name) is not None]
    if args.coordinator is None:
        if given:
            verb = "need" if len(given) > 1 else "needs"
            raise UsageError(f"{' and '.join(given)} {verb} --coordinator HOST:PORT")
        return 0
    if len(given) < 2:
        raise UsageError("--coordinator needs --num-processes N and --process-id I")
    if not 0 <= args.process_id < args.num_processes:
        raise UsageError(f"--process-id must be in 0..{args.num_processes - 1}, "
                         f"got {args.process_id}")
    if args.resume is not None:
        raise UsageError("--resume continues a run in one process; drop --coordinator (the "
                         "results do not depend on the number of devices)")
    if not backends.get(args.backend or "jax").multi_process:
        able = " or ".join(f"--backend {name}" for name in backends.BACKENDS
                           if backends.get(name).multi_process)
        raise UsageError(f"several processes (--coordinator) train only with {able}")
    try:
        init_distributed(args.coordinator, args.num_processes, args.process_id)
    except Exception as exc:  # noqa: BLE001 - JAX raises several kinds; one line for all
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"cannot join the processes through {args.coordinator}: {first}"
                         ) from None
    return args.process_id


def _start_jax() -> None:
    """Before JAX's first array and compile (both backends use JAX, the torch one on the host):
    every CPU core becomes a host device (each trains its share of the runs) and compiled
    programs are kept in the compilation cache."""
    use_host_cores()
    use_compile_cache()


@dataclass(frozen=True)
class TrainPlan:
    """A new training, checked before anything is written, allocated or compiled."""

    backend: Backend
    cfg: TrainConfig
    runs: list[RunSpec]  # every seed with every combination of the settings swept
    memory_note: str | None  # for the start-up line when the training is large


def plan_train(args: argparse.Namespace) -> TrainPlan:
    """The backend, the config and its runs, the device and the memory the runs need, all
    checked (a one-line ``UsageError`` or ``ConfigError`` otherwise); nothing is written."""
    backend = backends.get(args.backend if args.backend is not None else "jax")
    cfg, sweeps = config_from_args(args)
    first = args.seed if args.seed is not None else 0
    n_seeds = args.seeds if args.seeds is not None else 1
    backend.check_device(args.device)
    n_runs = n_seeds * math.prod(len(values) for values in sweeps.values())
    note = backend.memory(cfg, n_runs, args.device).check()  # before listing the runs
    cfg, runs = grid(cfg, list(range(first, first + n_seeds)), sweeps)
    return TrainPlan(backend, cfg, runs, note)


def cmd_train(args: argparse.Namespace) -> int:
    _start_jax()
    process = _join_processes(args)
    if process != 0:
        return _train_other_process(args, process)
    if args.resume is not None:
        opened = _open_resume(args)
        if opened is None:
            return 0
        folder, checkpoint, note = opened
        return _train(args, folder, checkpoint, note)
    plan = plan_train(args)
    folder = _new_folder(args, plan)
    try:
        folder.write_config()
        return _train(args, folder, None, plan.memory_note)
    except NotStarted as exc:  # nothing was trained: the refused start leaves nothing behind
        shutil.rmtree(folder.path, ignore_errors=True)
        raise exc.__cause__ from None
    except OSError as exc:  # the config could not be written
        shutil.rmtree(folder.path, ignore_errors=True)
        error = disk_full(exc, folder.path / "config.json")
        if isinstance(error, DiskFullError):
            raise error from None
        raise UsageError(f"cannot write to output folder {folder.path}: {exc.strerror}"
                         ) from None


class NotStarted(Exception):
    """Training failed before its first update (its cause is the error to report)."""


def _new_folder(args: argparse.Namespace, plan: TrainPlan, path: Path | None = None
                ) -> RunFolder:
    """The run folder of a planned training, at ``path`` or else at ``--out`` (checked and
    created); its config is not written yet."""
    backend, cfg = plan.backend.name, plan.cfg
    if path is None:
        path = _prepare_out(args.out, cfg, backend)
    return RunFolder(path, cfg, backend, plan.runs, architecture(cfg))


def _train_other_process(args: argparse.Namespace, process: int) -> int:
    """A process other than 0 of a multi-process run: it trains its share of the runs and
    writes nothing; the run folder is process 0's (its files go to a temporary folder)."""
    scratch = Path(tempfile.mkdtemp(prefix=f"reinforce-process-{process}-"))
    try:
        folder = _new_folder(args, plan_train(args), scratch / "run")
        make_writable_dir(folder.path)
        folder.write_config()
        args.quiet = True
        with contextlib.redirect_stdout(io.StringIO()):
            _train(args, folder, None, announce=False)
    except TrainingStopped as exc:  # all processes stop together; process 0 has the checkpoint
        raise TrainingStopped(f"process {process}: stopped with the other processes; process "
                              "0 saved the checkpoint", by_signal=exc.by_signal) from None
    except TrainingError as exc:  # the same in every process; process 0 reports it in full
        raise TrainingError(f"process {process}: {str(exc).split(';')[0]}") from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"process {process}/{args.num_processes}: done; process 0 wrote the run folder")
    return 0


def _open_resume(args: argparse.Namespace
                 ) -> tuple[RunFolder, TrainingCheckpoint, str | None] | None:
    """The run folder and checkpoint to continue, and the memory note; None (after a message)
    if it is finished.

    Everything is checked before anything is written: conflicting options, a missing or
    corrupt run folder or checkpoint, a checkpoint of another backend or config, the device and
    the memory.
    """
    given = [flag for dest, flag in train_settings() if getattr(args, dest) is not None]
    if given:
        raise UsageError(f"--resume continues a run with the settings in its config.json; "
                         f"drop {', '.join(given)}")
    path = args.resume
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
        print(f"reinforce: run {path} already finished ({done}/{total} updates, evaluated in "
              f"{path / 'eval.json'}); nothing to resume. Evaluate it again with: "
              f"reinforce evaluate {path}", file=sys.stderr)
        return None
    try:
        make_writable_dir(path / CHECKPOINT_DIR)
    except OSError as exc:
        raise UsageError(f"cannot write to run folder {path}: {exc.strerror}") from None
    backend.check_device(args.device)
    note = backend.memory(folder.cfg, len(folder.runs), args.device).check()
    return folder, checkpoint, note


def _train(args: argparse.Namespace, folder: RunFolder, checkpoint: TrainingCheckpoint | None,
           memory_note: str | None = None, announce: bool = True) -> int:
    """Train the runs of ``folder`` (from ``checkpoint`` if given) and write the results.

    An error before the first update of a new run is raised as :class:`NotStarted`; a full
    disk during training is a ``TrainingError`` that says which checkpoint is kept and how to
    resume."""
    cfg, specs, out = folder.cfg, folder.runs, folder.path
    backend = backends.get(folder.backend)
    total = backends.total_updates(backend, cfg, len(specs))
    session = Session.for_run_folder(out, folder.config_dict(), total, resume=checkpoint,
                                     every_seconds=args.checkpoint_every,
                                     stop_after=args.stop_after)
    start_at = session.last_saved or 0
    if announce and checkpoint is None:
        if cfg.segment_steps:
            budget = (f"{cfg.n_updates} updates of {cfg.batch_episodes} env(s) x "
                      f"{cfg.segment_steps} steps, learning from the first {cfg.segment_learned}")
        else:
            budget = (f"{cfg.n_training_episodes} episodes, {cfg.n_updates} updates of "
                      f"{cfg.batch_episodes} episode(s) each")
        memory = f"; memory: {memory_note}" if memory_note else ""
        print(f"training {len(specs)} run(s) of REINFORCE on {cfg.env_id} with {backend.name}"
              f" on {backend.describe_devices(args.device, len(specs))} ({budget}{memory}) -> "
              f"{out}", file=sys.stderr)
    elif announce:
        print(f"resuming {len(specs)} run(s) of REINFORCE on {cfg.env_id} with {backend.name} "
              f"in {out} at {checkpoint.progress.get('at', f'update {start_at}')}",
              file=sys.stderr)

    from tqdm import tqdm  # the progress bar only when training

    bar = tqdm(total=total, initial=start_at, unit="upd", disable=args.quiet,
               dynamic_ncols=True, file=sys.stderr)

    progress = {"done": start_at}

    def on_progress(done: int, recent: float) -> None:
        progress["done"] = done
        bar.n = done
        bar.set_postfix_str(f"avg return {recent:.1f}")

    try:
        with stop_on_sigint(session.stop_flag):
            result = backend.train_many(cfg, specs, supervisor=session,
                                        on_progress=on_progress, device=args.device)
        wall_seconds = session.wall_seconds()
        results = [summarize(r) for r in result.eval_returns]
        best = folder.write_eval([r.to_dict() for r in results], wall_seconds,
                                 cfg.n_evaluation_episodes)
        folder.write_weights(result.weights, best)
        folder.write_metrics(result.metrics, result.wall)
        folder.plot(result.metrics)
        session.finished()
    except (TrainingStopped, TrainingError):
        raise
    except Exception as exc:
        if checkpoint is None and progress["done"] == 0:
            raise NotStarted() from _one_line(exc)
        raise _one_line(exc, session) from None
    finally:
        bar.close()
    for spec, res in zip(specs, results, strict=True):
        mark = "  <- best" if len(specs) > 1 and res is results[best] else ""
        print(f"{spec.label(' ')}: {certification_line(cfg.env_id, res)}{mark}")
    if len(specs) > 1:
        threshold = CERTIFICATION[cfg.env_id]
        n_ok = sum(r.score >= threshold for r in results)
        print(f"{n_ok}/{len(specs)} runs reach the certification score {threshold:g}")
    print(f"wall time {wall_seconds:.1f} s; run folder {out}")
    return 0


def _one_line(exc: Exception, session: Session | None = None) -> Exception:
    """An error of training as one of the CLI's one-line errors: a full disk (exit 1; with a
    ``session``, which checkpoint is kept and how to resume), memory exhausted on a device
    (exit 2: the input was too big); other errors as they are."""
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


def cmd_evaluate(args: argparse.Namespace) -> int:
    folder = RunFolder.load(args.run_dir)
    backend = backends.get(args.backend or folder.backend)
    folder.check_finished()
    use_compile_cache()
    backend.check_device(args.device)
    result = evaluate_run(folder, backend.name, args.episodes, args.seed, args.device)
    cfg = folder.cfg
    print(f"{cfg.env_id} ({backend.name}, {folder.path}): "
          f"{certification_line(cfg.env_id, result)}")
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    backend = backends.get(args.backend) if args.backend is not None else None
    if backend is not None:
        backend.check_device(args.device)
    push(args.run_dir, repo_id=args.repo_id, local_dir=args.local_dir, n_episodes=args.episodes,
         seed=args.seed, backend=args.backend, fps=args.fps, max_frames=args.max_frames,
         private=args.private, device=args.device)
    return 0


def cmd_record(args: argparse.Namespace) -> int:
    backends.get("torch").check_device(args.device)  # the replay plays the export format
    replay = record_run(args.run_dir, args.out, fps=args.fps, seed=args.seed,
                        max_frames=args.max_frames, device=args.device)
    end = "episode over" if replay.episode_over else "cut at --max-frames"
    print(f"wrote {replay.path}: {replay.n_frames} frames at {args.fps} fps, "
          f"{replay.episode_length} steps, return {replay.episode_return:g} ({end})")
    return 0


COMMANDS = {"train": cmd_train, "evaluate": cmd_evaluate, "push": cmd_push,
            "record": cmd_record}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        return COMMANDS[args.command](args)
    except (UsageError, ConfigError, UnknownEnvError, CheckpointError) as exc:
        print(f"reinforce: error: {exc}", file=sys.stderr)
        return 2
    except (TrainingError, DiskFullError) as exc:  # the input was fine: non-finite, disk full
        print(f"reinforce: error: {exc}", file=sys.stderr)
        return 1
    except (HubError, VideoError) as exc:  # push/record: 2 for the input, 1 for Hub/network
        print(f"reinforce: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except TrainingStopped as exc:  # checkpoint saved: Ctrl-C (130) or --stop-after (0)
        print(f"reinforce: {exc}", file=sys.stderr)
        return 130 if exc.by_signal else 0
    except KeyboardInterrupt:
        print("reinforce: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
