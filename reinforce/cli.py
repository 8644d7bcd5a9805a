"""The command line: ``reinforce train|evaluate ...`` (also ``python -m reinforce``).

Every error a user can cause (unknown env, bad number, missing or corrupt run folder) ends in
one line on stderr and exit code 2; nothing already on disk is overwritten.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from reinforce.checkpoint import CheckpointError
from reinforce.config import (
    CERTIFICATION,
    DEFAULT_PRESET,
    PRESETS,
    ConfigError,
    TrainConfig,
    help_of,
    preset,
)
from reinforce.envs import ENV_IDS, UnknownEnvError
from reinforce.runs import BACKENDS, RunFolder, RunSpec, new_run_path


class UsageError(Exception):
    """Bad input from the user: reported on one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, no usage dump
        raise UsageError(message)


def _positive_int(text: str) -> int:
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


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="reinforce", description="REINFORCE in JAX and PyTorch.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    train = sub.add_parser("train", help="train a policy and evaluate it")
    train.add_argument("--env", default="CartPole-v1", help=f"one of {', '.join(ENV_IDS)}")
    train.add_argument("--backend", default="jax", help="jax or torch")
    train.add_argument("--preset", default=DEFAULT_PRESET,
                       help=f"hyper-parameter preset: {', '.join(PRESETS)} (default "
                            f"{DEFAULT_PRESET}); the options below override it")
    train.add_argument("--seed", type=int, default=0, help="first seed (default 0)")
    train.add_argument("--seeds", type=_positive_int, default=1,
                       help="number of seeds: seed, seed+1, ... (JAX trains them all at once)")
    train.add_argument("--out", type=Path, default=None,
                       help="run folder to create (default runs/<env>-<backend>-<time>)")
    train.add_argument("--lr", type=_float_list, default=None,
                       help=help_of("lr") + "; a comma-separated list trains every lr")
    train.add_argument("--gamma", type=_float, default=None, help=help_of("gamma"))
    train.add_argument("--episodes", type=int, default=None, help=help_of("n_training_episodes"))
    train.add_argument("--batch-episodes", type=int, default=None, help=help_of("batch_episodes"))
    train.add_argument("--max-t", type=int, default=None, help=help_of("max_t"))
    train.add_argument("--hidden", type=_int_list, default=None,
                       help=help_of("hidden_sizes") + ", e.g. 16 or 64,128")
    train.add_argument("--eval-episodes", type=int, default=None,
                       help=help_of("n_evaluation_episodes") + " (default 100)")
    train.add_argument("--quiet", action="store_true", help="no progress bar")

    ev = sub.add_parser("evaluate", help="evaluate a saved run again")
    ev.add_argument("run_dir", type=Path)
    ev.add_argument("--episodes", type=_positive_int, default=100)
    ev.add_argument("--backend", default=None, help="jax or torch (default: the run's own)")
    ev.add_argument("--seed", type=int, default=12345)
    return parser


def config_from_args(args: argparse.Namespace) -> tuple[TrainConfig, list[float]]:
    if args.env not in ENV_IDS:
        raise UsageError(f"unknown env {args.env!r}; choose one of {', '.join(ENV_IDS)}")
    cfg = preset(args.preset, args.env)
    overrides = {
        "gamma": args.gamma,
        "n_training_episodes": args.episodes,
        "batch_episodes": args.batch_episodes,
        "max_t": args.max_t,
        "hidden_sizes": args.hidden,
        "n_evaluation_episodes": args.eval_episodes,
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
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"cannot write to output folder {path}: {exc.strerror}") from None
    return path


def cmd_train(args: argparse.Namespace) -> int:
    backend = _check_backend(args.backend)
    if backend == "jax":
        from reinforce_jax.trainer import use_host_cores

        use_host_cores()  # before JAX's first array: every core trains its share of the runs
    cfg, lrs = config_from_args(args)
    specs = [RunSpec(args.seed + i, lr) for lr in lrs for i in range(args.seeds)]
    out = _prepare_out(args.out, cfg, backend)

    from reinforce.envs import make

    env, _ = make(cfg.env_id)
    folder = RunFolder(out, cfg, backend, specs, env.observation_size, env.num_actions)
    folder.write_config()
    print(f"training {len(specs)} run(s) of REINFORCE on {cfg.env_id} with {backend} "
          f"({cfg.n_training_episodes} episodes, {cfg.n_updates} updates of "
          f"{cfg.batch_episodes} episode(s) each) -> {out}", file=sys.stderr)

    from tqdm import tqdm

    sequential = backend == "torch"
    total = cfg.n_updates * (len(specs) if sequential else 1)
    bar = tqdm(total=total, unit="upd", disable=args.quiet, dynamic_ncols=True, file=sys.stderr)

    def on_progress(done: int, recent: float) -> None:
        bar.n = done
        bar.set_postfix_str(f"avg return {recent:.1f}")

    start = time.perf_counter()
    seeds, lr_list = [s.seed for s in specs], [s.lr for s in specs]
    if backend == "jax":
        from reinforce_jax.export import to_torch_state
        from reinforce_jax.trainer import train_many

        result = train_many(cfg, seeds, lr_list, on_progress)
        states = [to_torch_state(_index(result.params, i)) for i in range(len(specs))]
        metrics = [{k: v[i] for k, v in result.metrics._asdict().items()}
                   for i in range(len(specs))]
        wall = [result.wall] * len(specs)
        eval_returns = result.eval_returns
    else:
        import torch

        from reinforce_torch.trainer import train_many

        torch.set_num_threads(1)  # tiny networks: threads cost more than they give
        states, metrics, wall, eval_returns = train_many(cfg, seeds, lr_list, on_progress)
    bar.close()
    wall_seconds = time.perf_counter() - start

    from reinforce.evaluate import certification_line, summarize

    results = [summarize(r) for r in eval_returns]
    best = folder.write_eval([r.to_dict() for r in results], wall_seconds,
                             cfg.n_evaluation_episodes)
    folder.write_weights(states, best)
    folder.write_metrics(metrics, wall)
    folder.plot(metrics)
    for spec, res in zip(specs, results, strict=True):
        mark = "  <- best" if len(specs) > 1 and res is results[best] else ""
        print(f"seed {spec.seed} lr {spec.lr:g}: {certification_line(cfg.env_id, res)}{mark}")
    if len(specs) > 1:
        threshold = CERTIFICATION[cfg.env_id]
        n_ok = sum(r.score >= threshold for r in results)
        print(f"{n_ok}/{len(specs)} runs reach the certification score {threshold:g}")
    print(f"wall time {wall_seconds:.1f} s; run folder {out}")
    return 0


def _index(tree, i: int):
    import jax

    return jax.tree.map(lambda x: x[i], tree)


def cmd_evaluate(args: argparse.Namespace) -> int:
    folder = RunFolder.load(args.run_dir)
    backend = _check_backend(args.backend or folder.backend)
    state = folder.load_weights()
    cfg = folder.cfg.replace(n_evaluation_episodes=args.episodes)
    if backend == "jax":
        import jax

        from reinforce_jax.export import from_torch_state
        from reinforce_jax.trainer import Trainer

        trainer = Trainer(cfg)
        evaluate = jax.jit(trainer.evaluate, static_argnums=2)
        returns = evaluate(from_torch_state(state), jax.random.key(args.seed), args.episodes)
    else:
        import torch

        from reinforce.evaluate import play_episodes
        from reinforce_torch.policy import Policy

        torch.set_num_threads(1)
        policy = Policy(folder.observation_size, folder.num_actions, cfg.hidden_sizes)
        policy.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in state.items()})
        returns = play_episodes(cfg.env_id, policy.numpy_probabilities, args.episodes,
                                cfg.max_t, args.seed)

    from reinforce.evaluate import certification_line, summarize

    result = summarize(returns)
    print(f"{cfg.env_id} ({backend}, {folder.path}): {certification_line(cfg.env_id, result)}")
    return 0


COMMANDS = {"train": cmd_train, "evaluate": cmd_evaluate}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        return COMMANDS[args.command](args)
    except (UsageError, ConfigError, UnknownEnvError, CheckpointError) as exc:
        print(f"reinforce: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("reinforce: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
