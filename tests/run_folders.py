"""Helpers of the tests that need a run folder without training one."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import jax
import torch

from reinforce.app.cli import main
from reinforce.app.runs import RunFolder
from reinforce.architecture import architecture
from reinforce.config import RunSpec, preset
from reinforce.envs import make
from reinforce_torch.policy import Policy


def write_run(path: Path, env_id: str, backend: str, seed: int = 0,
              evaluated: bool = False) -> RunFolder:
    """A finished run folder with freshly initialised weights of the given backend (and an
    ``eval.json`` of zeros when ``evaluated``)."""
    cfg = preset("fast", env_id).replace(n_training_episodes=2, batch_episodes=1, max_t=200,
                                         n_evaluation_episodes=5)
    env, _ = make(env_id)
    folder = RunFolder(path, cfg, backend, [RunSpec.of(seed, lr=cfg.lr)], architecture(cfg))
    folder.write_config()
    if backend == "jax":
        from reinforce_jax.policy import init_params, make_policy, to_export

        policy = make_policy(cfg.hidden_sizes, env.num_actions)
        state = to_export(init_params(policy, jax.random.key(seed), env.observation_size))
    else:
        torch.manual_seed(seed)
        policy = Policy(env.observation_size, env.num_actions, cfg.hidden_sizes)
        state = {k: v.detach().numpy().copy() for k, v in policy.state_dict().items()}
    folder.write_weights([state], 0)
    if evaluated:
        folder.write_eval([{"mean_reward": 0.0, "std_reward": 0.0, "score": 0.0}], 0.1, 5)
    return folder


def error_line(err: str) -> str:
    """The one line a refused command writes to stderr (asserted to be just that)."""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("reinforce: error: "), lines[0]
    return lines[0]


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (relative path -> bytes), to show a command changed nothing."""
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def run_main(argv: list[str]) -> tuple[int, str, str]:
    """``reinforce ARGV`` in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()
