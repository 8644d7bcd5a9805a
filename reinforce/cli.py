"""The command line: ``reinforce train|evaluate|record|push ...`` (also ``python -m reinforce``).

Every error a user can cause (unknown env, bad number, conflicting options, missing or corrupt
run folder) ends in one line on stderr and exit code 2; nothing already on disk is overwritten.
Training that goes non-finite ends with one line and exit code 1, keeping the last good
checkpoint; Ctrl-C saves a checkpoint and exits with 130; ``train --resume RUN_DIR`` goes on.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
from pathlib import Path

from reinforce.checkpoint import (
    CHECKPOINT_DIR,
    PROGRESS_NAME,
    STATE_NAME,
    CheckpointError,
    TrainingCheckpoint,
    load_checkpoint,
    make_writable_dir,
    read_json,
)
from reinforce.config import (
    CERTIFICATION,
    DEFAULT_PRESET,
    DEVICES,
    PRESETS,
    ConfigError,
    TrainConfig,
    help_of,
    preset,
)
from reinforce.envs import ENV_IDS, UnknownEnvError
from reinforce.hub import DEFAULT_EPISODES, DEFAULT_SEED, HubError
from reinforce.runs import BACKENDS, RunFolder, RunSpec, new_run_path
from reinforce.session import (
    DEFAULT_CHECKPOINT_SECONDS,
    Session,
    TrainingError,
    TrainingStopped,
    check_resumable,
    run_identity,
    stop_on_sigint,
)
from reinforce.video import DEFAULT_FPS, VideoError


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


def _float_list(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {text!r}"
                                         ) from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one number")
    return values


def _int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers separated by commas, got {text!r}"
                                         ) from None


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if not 0 <= value < 2**31:
        raise argparse.ArgumentTypeError(f"must be in [0, 2**31), got {value}")
    return value


def _seconds(text: str) -> float:
    value = _float(text)
    if not (0 <= value < float("inf")):
        raise argparse.ArgumentTypeError(f"must be a number of seconds >= 0, got {text!r}")
    return value


def _add_device(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--device", choices=DEVICES, default="auto",
                        help=f"where {what} computes: auto (default: the GPU when there is one), "
                             "cpu or cuda")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="reinforce", description="REINFORCE in JAX and PyTorch.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    # Settings default to None so that --resume can tell which were given (see TRAIN_SETTINGS).
    train = sub.add_parser("train", help="train a policy and evaluate it")
    train.add_argument("--env", default=None,
                       help=f"one of {', '.join(ENV_IDS)} (default CartPole-v1)")
    train.add_argument("--backend", default=None, help="jax or torch (default jax)")
    train.add_argument("--preset", default=None,
                       help=f"hyper-parameter preset: {', '.join(PRESETS)} (default "
                            f"{DEFAULT_PRESET}); the options below override it")
    train.add_argument("--seed", type=_seed, default=None, help="first seed (default 0)")
    train.add_argument("--seeds", type=positive_int, default=None,
                       help="number of seeds: seed, seed+1, ... (JAX trains them all at once)")
    train.add_argument("--out", type=Path, default=None,
                       help="run folder to create (default runs/<env>-<backend>-<time>)")
    train.add_argument("--lr", type=_float_list, default=None,
                       help=help_of("lr") + "; a comma-separated list trains every lr")
    train.add_argument("--gamma", type=_float, default=None, help=help_of("gamma"))
    train.add_argument("--episodes", type=int, default=None, help=help_of("n_training_episodes"))
    train.add_argument("--batch-episodes", type=int, default=None, help=help_of("batch_episodes"))
    train.add_argument("--max-t", type=int, default=None, help=help_of("max_t"))
    train.add_argument("--baseline", default=None, help=help_of("baseline"))
    train.add_argument("--segment-steps", type=int, default=None, metavar="N",
                       help=help_of("segment_steps"))
    train.add_argument("--lr-warmup", type=int, default=None, metavar="N",
                       help=help_of("lr_warmup"))
    train.add_argument("--hidden", type=_int_list, default=None,
                       help=help_of("hidden_sizes") + ", e.g. 16 or 64,128")
    train.add_argument("--eval-episodes", type=int, default=None,
                       help=help_of("n_evaluation_episodes") + " (default 100)")
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


def config_from_args(args: argparse.Namespace) -> tuple[TrainConfig, list[float]]:
    env_id = args.env if args.env is not None else "CartPole-v1"
    if env_id not in ENV_IDS:
        raise UsageError(f"unknown env {env_id!r}; choose one of {', '.join(ENV_IDS)}")
    cfg = preset(args.preset if args.preset is not None else DEFAULT_PRESET, env_id)
    overrides = {
        "gamma": args.gamma,
        "n_training_episodes": args.episodes,
        "batch_episodes": args.batch_episodes,
        "max_t": args.max_t,
        "hidden_sizes": args.hidden,
        "n_evaluation_episodes": args.eval_episodes,
        "baseline": args.baseline,
        "segment_steps": args.segment_steps,
        "lr_warmup": args.lr_warmup,
    }
    lrs = args.lr if args.lr is not None else [cfg.lr]
    overrides["lr"] = lrs[0]
    cfg = cfg.replace(**{k: v for k, v in overrides.items() if v is not None})
    for lr in lrs[1:]:
        cfg.replace(lr=lr)  # validates every learning rate
    return cfg, lrs


def _check_backend(name: str) -> str:
    if name not in BACKENDS:
        raise UsageError(f"unknown backend {name!r}; choose jax or torch")
    return name


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


#: The options that define a run; --resume takes them all from the run's config.json.
TRAIN_SETTINGS = ("env", "backend", "preset", "seed", "seeds", "out", "lr", "gamma", "episodes",
                  "batch_episodes", "max_t", "hidden", "eval_episodes", "baseline",
                  "segment_steps", "lr_warmup")


def _join_processes(args: argparse.Namespace) -> int:
    """Join the other processes if ``--coordinator`` is given; this process's index (0 alone).

    Called before JAX starts (after :func:`_start_jax`)."""
    from reinforce_jax.trainer import init_distributed

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
    if args.backend not in (None, "jax"):
        raise UsageError("several processes (--coordinator) train only with --backend jax")
    try:
        init_distributed(args.coordinator, args.num_processes, args.process_id)
    except Exception as exc:  # noqa: BLE001 - JAX raises several kinds; one line for all
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"cannot join the processes through {args.coordinator}: {first}"
                         ) from None
    return args.process_id


def _start_jax() -> None:
    """Before JAX's first array and compile: every CPU core becomes a host device (each trains
    its share of the runs) and compiled programs are kept in the compilation cache."""
    from reinforce_jax.trainer import use_compile_cache, use_host_cores

    use_host_cores()
    use_compile_cache()


def cmd_train(args: argparse.Namespace) -> int:
    _start_jax()
    process = _join_processes(args)
    if process != 0:
        return _train_other_process(args, process)
    if args.resume is not None:
        opened = _open_resume(args)
        if opened is None:
            return 0
        folder, checkpoint = opened
    else:
        _check_device(args.backend if args.backend is not None else "jax", args.device)
        folder = _new_folder(args)
        folder.write_config()
        checkpoint = None
    return _train(args, folder, checkpoint)


def _check_device(backend: str, device: str) -> str:
    """``device`` if ``backend`` can compute there (else ``ConfigError``: one line, exit 2)."""
    if backend == "torch":
        from reinforce_torch.devices import torch_device

        torch_device(device)
    elif backend == "jax":
        from reinforce_jax.trainer import platform_devices

        platform_devices(device)
    return device


def _new_folder(args: argparse.Namespace, path: Path | None = None) -> RunFolder:
    """The run folder the train options describe, at ``path`` or else at ``--out`` (checked
    and created); its config is not written yet."""
    backend = _check_backend(args.backend if args.backend is not None else "jax")
    cfg, lrs = config_from_args(args)
    first = args.seed if args.seed is not None else 0
    n_seeds = args.seeds if args.seeds is not None else 1
    specs = [RunSpec(first + i, lr) for lr in lrs for i in range(n_seeds)]
    if path is None:
        path = _prepare_out(args.out, cfg, backend)

    from reinforce.envs import make

    env, _ = make(cfg.env_id)
    return RunFolder(path, cfg, backend, specs, env.observation_size, env.num_actions)


def _train_other_process(args: argparse.Namespace, process: int) -> int:
    """A process other than 0 of a multi-process run: it trains its share of the runs and
    writes nothing; the run folder is process 0's (its files go to a temporary folder)."""
    import shutil
    import tempfile

    scratch = Path(tempfile.mkdtemp(prefix=f"reinforce-process-{process}-"))
    try:
        folder = _new_folder(args, scratch / "run")
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


def _open_resume(args: argparse.Namespace) -> tuple[RunFolder, TrainingCheckpoint] | None:
    """The run folder and checkpoint to continue; None (after a message) if it is finished.

    Everything is checked before anything is written: conflicting options, a missing or
    corrupt run folder or checkpoint, a checkpoint of another backend or config.
    """
    given = [f"--{name.replace('_', '-')}" for name in TRAIN_SETTINGS
             if getattr(args, name) is not None]
    if given:
        raise UsageError(f"--resume continues a run with the settings in its config.json; "
                         f"drop {', '.join(given)}")
    path = args.resume
    folder = RunFolder.load(path)
    checkpoint = load_checkpoint(path / CHECKPOINT_DIR)
    check_resumable(checkpoint, run_identity(folder.config_dict()), path / CHECKPOINT_DIR)
    if folder.backend == "jax":
        from reinforce_jax.trainer import check_checkpoint
    else:
        from reinforce_torch.trainer import check_checkpoint
    check_checkpoint(folder.cfg, [r.seed for r in folder.runs], [r.lr for r in folder.runs],
                     checkpoint, str(path / CHECKPOINT_DIR / STATE_NAME))
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
    _check_device(folder.backend, args.device)
    return folder, checkpoint


def _train(args: argparse.Namespace, folder: RunFolder,
           checkpoint: TrainingCheckpoint | None, announce: bool = True) -> int:
    cfg, backend, specs, out = folder.cfg, folder.backend, folder.runs, folder.path
    sequential = backend == "torch"
    total = cfg.n_updates * (len(specs) if sequential else 1)
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
        print(f"training {len(specs)} run(s) of REINFORCE on {cfg.env_id} with {backend}"
              f"{_devices_note(backend, args.device, len(specs))} ({budget}) -> {out}",
              file=sys.stderr)
    elif announce:
        print(f"resuming {len(specs)} run(s) of REINFORCE on {cfg.env_id} with {backend} in "
              f"{out} at {checkpoint.progress.get('at', f'update {start_at}')}",
              file=sys.stderr)

    from tqdm import tqdm

    bar = tqdm(total=total, initial=start_at, unit="upd", disable=args.quiet,
               dynamic_ncols=True, file=sys.stderr)

    def on_progress(done: int, recent: float) -> None:
        bar.n = done
        bar.set_postfix_str(f"avg return {recent:.1f}")

    seeds, lr_list = [s.seed for s in specs], [s.lr for s in specs]
    try:
        with stop_on_sigint(session.stop_flag):
            if backend == "jax":
                from reinforce_jax.export import to_torch_state
                from reinforce_jax.trainer import train_many

                result = train_many(cfg, seeds, lr_list, on_progress, session=session,
                                    device=args.device)
                states = [to_torch_state(_index(result.params, i)) for i in range(len(specs))]
                metrics = [{k: v[i] for k, v in result.metrics._asdict().items()}
                           for i in range(len(specs))]
                wall = [result.wall] * len(specs)
                eval_returns = result.eval_returns
            else:
                import torch

                from reinforce_torch.trainer import train_many

                torch.set_num_threads(1)  # tiny networks: threads cost more than they give
                states, metrics, wall, eval_returns = train_many(
                    cfg, seeds, lr_list, on_progress, session=session, device=args.device)
    finally:
        bar.close()
    wall_seconds = session.wall_seconds()

    from reinforce.evaluate import certification_line, summarize

    results = [summarize(r) for r in eval_returns]
    best = folder.write_eval([r.to_dict() for r in results], wall_seconds,
                             cfg.n_evaluation_episodes)
    folder.write_weights(states, best)
    folder.write_metrics(metrics, wall)
    folder.plot(metrics)
    session.finished()
    for spec, res in zip(specs, results, strict=True):
        mark = "  <- best" if len(specs) > 1 and res is results[best] else ""
        print(f"seed {spec.seed} lr {spec.lr:g}: {certification_line(cfg.env_id, res)}{mark}")
    if len(specs) > 1:
        threshold = CERTIFICATION[cfg.env_id]
        n_ok = sum(r.score >= threshold for r in results)
        print(f"{n_ok}/{len(specs)} runs reach the certification score {threshold:g}")
    print(f"wall time {wall_seconds:.1f} s; run folder {out}")
    return 0


def _devices_note(backend: str, device: str, n_runs: int) -> str:
    """' on N CPU devices' (and processes) for the JAX backend, ' on cuda' for torch."""
    if backend == "torch":
        from reinforce_torch.devices import torch_device

        return f" on {torch_device(device)}"
    import jax

    from reinforce_jax.trainer import run_devices

    devices = run_devices(n_runs, device)
    n = len(devices)
    procs = f" of {jax.process_count()} processes" if jax.process_count() > 1 else ""
    return f" on {n} {devices[0].platform.upper()} device{'s' if n > 1 else ''}{procs}"


def _index(tree, i: int):
    import jax

    return jax.tree.map(lambda x: x[i], tree)


def _refuse_unfinished(path: Path) -> None:
    """A run without weights whose checkpoint says training is not over: say how to finish."""
    try:
        progress = read_json(path / CHECKPOINT_DIR / PROGRESS_NAME)
        at, done, total = (progress["at"], int(progress["total_updates_done"]),
                           int(progress["total_updates"]))
    except (CheckpointError, KeyError, TypeError, ValueError):
        return  # no readable checkpoint: the missing weights file is the error
    if done < total:
        raise UsageError(f"run {path} has not finished training (stopped at {at}, no "
                         f"model.safetensors yet); finish it with: reinforce train --resume "
                         f"{path}")


def cmd_evaluate(args: argparse.Namespace) -> int:
    folder = RunFolder.load(args.run_dir)
    backend = _check_backend(args.backend or folder.backend)
    if not (folder.path / "model.safetensors").exists():
        _refuse_unfinished(folder.path)
    from reinforce.evaluate import certification_line, evaluate_run

    if backend == "jax":
        from reinforce_jax.trainer import use_compile_cache

        use_compile_cache()
    result = evaluate_run(folder, backend, args.episodes, args.seed,
                          _check_device(backend, args.device))
    cfg = folder.cfg
    print(f"{cfg.env_id} ({backend}, {folder.path}): {certification_line(cfg.env_id, result)}")
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    from reinforce.hub import push

    if args.backend is not None:
        _check_backend(args.backend)
    push(args.run_dir, repo_id=args.repo_id, local_dir=args.local_dir, n_episodes=args.episodes,
         seed=args.seed, backend=args.backend, fps=args.fps, max_frames=args.max_frames,
         private=args.private, device=args.device)
    return 0


def cmd_record(args: argparse.Namespace) -> int:
    from reinforce.video import record_run

    replay = record_run(args.run_dir, args.out, fps=args.fps, seed=args.seed,
                        max_frames=args.max_frames, device=_check_device("torch", args.device))
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
    except TrainingError as exc:  # the input was fine, training went wrong (non-finite)
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
