"""The command line: ``reinforce train|evaluate|record|push ...`` (also ``python -m reinforce``).

Every error a user can cause (unknown env, bad number, conflicting options, missing or corrupt
run folder) ends in one line on stderr and exit code 2; nothing already on disk is overwritten.
Training that goes non-finite ends with one line and exit code 1, keeping the last good
checkpoint; Ctrl-C saves a checkpoint and exits with 130; ``train --resume RUN_DIR`` goes on.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

from reinforce.app import backends, training
from reinforce.app.hub import DEFAULT_EPISODES, DEFAULT_SEED, HubError, push
from reinforce.app.lock import FolderInUse
from reinforce.app.session import DEFAULT_CHECKPOINT_SECONDS
from reinforce.app.training import UsageError
from reinforce.app.video import DEFAULT_FPS, VideoError
from reinforce.backend import TrainingError, TrainingStopped
from reinforce.checkpoint import CheckpointError, DiskFullError
from reinforce.config import (
    DEFAULT_PRESET,
    DEVICES,
    PRESETS,
    ConfigError,
    TrainConfig,
    flag_of,
    float_text,
)
from reinforce.envs import UnknownEnvError
from reinforce.evaluation import certification_line
from reinforce_jax.devices import init_distributed, use_compile_cache, use_host_cores

__all__ = ["UsageError", "build_parser", "main"]


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
    train.add_argument("--config", type=Path, default=None, metavar="FILE",
                       help="train with the settings of a run's config.json or a pushed "
                            "hyperparameters.json (also its env, backend and seeds); the "
                            "options given override them")
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
    train.add_argument("--resume-if-stopped", action="store_true",
                       help="with --out DIR: continue the run in DIR if it is this training, "
                            "stopped (finished: nothing to do; other settings: refused); "
                            "start it if DIR is new. One command for a job that may be "
                            "preempted and started again")
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

    agent = ("a run folder, a pushed folder, or a Hub repo USER/NAME (downloaded into the "
             "huggingface_hub cache: only its JSON and safetensors files)")
    ev = sub.add_parser("evaluate", help="evaluate a saved run, or an agent on the Hub")
    ev.add_argument("run_dir", metavar="RUN_DIR|USER/NAME", help=agent)
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

    rec = sub.add_parser("record", help="write a replay video of a run's (or a Hub agent's) "
                                        "policy")
    rec.add_argument("run_dir", metavar="RUN_DIR|USER/NAME", help=agent)
    rec.add_argument("--out", type=Path, default=None, metavar="FILE",
                     help="the .mp4 to write (default RUN_DIR/replay.mp4, or NAME-replay.mp4 "
                          "here for a Hub repo; replaced if there)")
    rec.add_argument("--fps", type=positive_int, default=DEFAULT_FPS,
                     help=f"frame rate (default {DEFAULT_FPS})")
    rec.add_argument("--seed", type=_seed, default=DEFAULT_SEED,
                     help=f"episode seed (default {DEFAULT_SEED})")
    rec.add_argument("--max-frames", type=positive_int, default=None,
                     help="longest video (default: the run's max_t + 1)")
    _add_device(rec, "the policy")
    return parser


def settings_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The training settings given on the command line (TrainConfig fields; a list for a
    sweepable setting), for ``reinforce.app.training.train``."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
            if f.name != "env_id" and getattr(args, f.name) is not None}


def _plan_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """What ``reinforce train``'s options give ``reinforce.app.training.train`` (None: not
    given)."""
    return dict(env_id=args.env_id, backend=args.backend, preset=args.preset, seed=args.seed,
                seeds=args.seeds, config=args.config, **settings_from_args(args))


def config_from_args(args: argparse.Namespace) -> tuple[TrainConfig, dict[str, list[float]]]:
    """The config of ``reinforce train``'s options and the settings it sweeps
    (``reinforce.app.training.make_config``)."""
    env_id = args.env_id if args.env_id is not None else "CartPole-v1"
    return training.make_config(env_id, args.preset, settings_from_args(args))


def plan_train(args: argparse.Namespace) -> training.TrainPlan:
    """The checked plan of ``reinforce train``'s options; nothing is written."""
    return training.plan(device=args.device, **_plan_kwargs(args))


def train_settings() -> list[tuple[str, str]]:
    """``(dest, flag)`` of the options that define a run, in the order messages name them;
    --resume takes them all from the run's config.json."""
    fields = {f.name: flag_of(f) for f in dataclasses.fields(TrainConfig)}
    run = [("config", "--config"), ("backend", "--backend"), ("preset", "--preset"),
           ("seed", "--seed"), ("seeds", "--seeds"), ("out", "--out")]
    return [("env_id", fields.pop("env_id")), *run, *fields.items()]


def _join_processes(args: argparse.Namespace) -> int:
    """Join the other processes if ``--coordinator`` is given; this process's index (0 alone).

    Called before JAX starts (after ``use_host_cores``)."""
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
    if args.resume is not None or args.resume_if_stopped:
        flag = "--resume" if args.resume is not None else "--resume-if-stopped"
        raise UsageError(f"{flag} continues a run in one process; drop --coordinator (the "
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


def _print_summary(run: training.Run) -> None:
    for line in run.summary():
        print(line)


def cmd_train(args: argparse.Namespace) -> int:
    # Before JAX's first array and compile: every CPU core becomes a host device (each trains
    # its share of the runs) and compiled programs are kept in the compilation cache.
    use_host_cores()
    use_compile_cache()
    process = _join_processes(args)
    if args.resume is not None and args.resume_if_stopped:
        raise UsageError("--resume continues RUN_DIR; --resume-if-stopped continues --out: "
                         "give one")
    options = dict(device=args.device, progress=not args.quiet,
                   checkpoint_every=args.checkpoint_every, stop_after=args.stop_after,
                   echo=training._stderr)
    if process != 0:
        training.train_other_process(plan_train(args), process, args.num_processes,
                                     training.Options(**options))
        print(f"process {process}/{args.num_processes}: done; process 0 wrote the run folder")
        return 0
    if args.resume is not None:
        given = [flag for dest, flag in train_settings() if getattr(args, dest) is not None]
        if given:
            raise UsageError(f"--resume continues a run with the settings in its config.json; "
                             f"drop {', '.join(given)}")
        _print_summary(training.resume(args.resume, **options))
        return 0
    kwargs = _plan_kwargs(args)
    _print_summary(training.train(out=args.out, resume_if_stopped=args.resume_if_stopped,
                                  **{**kwargs, **options}))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    run = training.load(args.run_dir, args.device)
    result = run.evaluate(args.episodes, seed=args.seed, backend=args.backend,
                          device=args.device)
    print(f"{run.env_id} ({args.backend or run.backend}, {run.source}): "
          f"{certification_line(run.env_id, result)}")
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    push(args.run_dir, repo_id=args.repo_id, local_dir=args.local_dir, n_episodes=args.episodes,
         seed=args.seed, backend=args.backend, fps=args.fps, max_frames=args.max_frames,
         private=args.private, device=args.device)
    return 0


def cmd_record(args: argparse.Namespace) -> int:
    run = training.load(args.run_dir, args.device)
    replay = run.record(args.out, fps=args.fps, seed=args.seed, max_frames=args.max_frames,
                        device=args.device)
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
    except (UsageError, ConfigError, UnknownEnvError, CheckpointError, FolderInUse) as exc:
        print(f"reinforce: error: {exc}", file=sys.stderr)
        return 2
    except (TrainingError, DiskFullError) as exc:  # the input was fine: non-finite, disk full
        print(f"reinforce: error: {exc}", file=sys.stderr)
        return 1
    except (HubError, VideoError) as exc:  # push/record: 2 for the input, 1 for Hub/network
        print(f"reinforce: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except TrainingStopped as exc:  # checkpoint saved: a signal (128 + its number), or asked
        print(f"reinforce: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("reinforce: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
