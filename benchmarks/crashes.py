"""``python -m benchmarks.crashes RUN_DIR``: why a trained Pixelcopter agent's episodes end.

A Pixelcopter score is decided by the agent's crash rate per frame (docs/benchmarks.md). For every
run of a Pixelcopter run folder this plays episodes of the stochastic policy (as it is
evaluated) up to ``max_t`` frames and reports:

- how many episodes crashed before ``max_t``, their mean length, and the crash rate per frame;
- what each crash hit: a block, the ceiling or the floor of a terrain column (and of all
  crashes, the share caused by a column the observation did not show yet: the player's rect
  can overlap the next column, whose gap the observation does not give), or the screen's safe
  band;
- the share of frames flown within 3, 5 and 7 px of the ceiling or floor of the observed column,
  in all and in open space (no block from 6 px behind the player to 16 px ahead of it), where
  nothing forces the player near the terrain.

A crash can have several causes in the same frame, so the shares can add up to more than 100%.
Bad input (no run folder, a CartPole run, a bad number) prints one line on stderr and exits 2.
"""

from __future__ import annotations

import sys
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.command import run_command
from reinforce.app.cli import OneLineParser, UsageError, positive_int
from reinforce.app.runs import RunFolder
from reinforce.checkpoint import CheckpointError
from reinforce.envs import make
from reinforce.envs import pixelcopter as pc
from reinforce_jax.policy import from_export, policy_for

#: Margins (px to the observed column's ceiling or floor) whose frame shares are reported.
MARGINS = (3.0, 5.0, 7.0)
#: Open space: no block centre from this far behind the player (px) ...
OPEN_BEHIND = 6.0
#: ... to this far ahead of it.
OPEN_AHEAD = 16.0
#: Crash causes, in the order of :func:`crash_causes`.
CAUSES = ("block", "ceiling", "floor", "unseen column", "safe band")

PROG = "benchmarks.crashes"


def crash_causes(state: pc.PixelcopterState, action: jax.Array,
                 params: pc.PixelcopterParams) -> jax.Array:
    """What the frame from ``state`` with ``action`` hits, ``bool[len(CAUSES)]``, from the env's
    own collision tests (:func:`reinforce.envs.pixelcopter.collisions`)."""
    moved, hit = pc.collisions(state, action, params)
    seen = pc.observed_column(state, params)
    other = jnp.arange(hit.ceiling.shape[0]) != seen
    y = moved.player_y
    return jnp.stack([
        hit.block.any(),
        hit.ceiling.any(),
        hit.floor.any(),
        ((hit.ceiling | hit.floor) & other).any(),
        (y < params.min_y) | (y > params.max_y),
    ])


def in_open_space(state: pc.PixelcopterState, params: pc.PixelcopterParams) -> jax.Array:
    """Whether no block is near the player: none with its centre from :data:`OPEN_BEHIND` px
    behind to :data:`OPEN_AHEAD` px ahead of the player's."""
    d = state.block_x - params.player_x
    return ~(state.block_valid & (d > -OPEN_BEHIND) & (d < OPEN_AHEAD)).any()


def play(act, key: jax.Array, n_episodes: int, max_t: int,
         params: pc.PixelcopterParams | None = None, obs_mode: str = "features",
         frame_stack: int = 1) -> dict[str, np.ndarray]:
    """``n_episodes`` episodes of ``act(obs, key) -> action`` up to ``max_t`` frames, the policy
    seeing the game as ``obs_mode`` says (the 7 values, or its last ``frame_stack`` frames).

    Returns per episode: ``crashed`` (bool), ``length`` (frames played), ``causes``
    (``bool[len(CAUSES)]`` of the crash frame, all False without a crash), ``near`` (frames
    within each of :data:`MARGINS`), ``open`` (frames in open space, :func:`in_open_space`),
    ``near_open`` (frames in open space within each margin) and ``open_crash`` (the crash frame
    started in open space).
    """
    env, default = make(pc.Pixelcopter.id, obs_mode, frame_stack)
    params = default if params is None else params

    def game(state):  # the game's own state, whatever the policy sees
        return state.inner if obs_mode == "pixels" else state

    def episode(k):
        reset_key, k = jax.random.split(k)
        obs, state = env.reset(reset_key, params)

        def frame(carry, _):
            obs, state, k, over, causes, near, length, open_, near_open, open_crash = carry
            k, action_key, step_key = jax.random.split(k, 3)
            action = act(obs, action_key)
            next_obs, next_state, _, terminated, _, _ = env.step(step_key, state, action, params)
            crash = terminated & ~over
            causes = jnp.where(crash, crash_causes(game(state), action, params), causes)
            features = pc.observation(game(state), params)
            margin = jnp.minimum(features[2], features[3])
            is_near = (margin < jnp.asarray(MARGINS)) & ~over
            is_open = in_open_space(game(state), params) & ~over
            near = near + is_near
            open_ = open_ + is_open
            near_open = near_open + (is_near & is_open)
            open_crash = open_crash | (crash & is_open)
            length = length + jnp.where(over, 0, 1)
            carry = (next_obs, next_state, k, over | terminated, causes, near, length, open_,
                     near_open, open_crash)
            return carry, None

        zero, margins = jnp.zeros((), jnp.int32), jnp.zeros(len(MARGINS), jnp.int32)
        carry = (obs, state, k, jnp.zeros((), bool), jnp.zeros(len(CAUSES), bool), margins,
                 zero, zero, margins, jnp.zeros((), bool))
        (_, _, _, over, causes, near, length, open_, near_open, open_crash), _ = jax.lax.scan(
            frame, carry, None, max_t)
        return {"crashed": over, "length": length, "causes": causes, "near": near,
                "open": open_, "near_open": near_open, "open_crash": open_crash}

    out = jax.jit(jax.vmap(episode))(jax.random.split(key, n_episodes))
    return {name: np.asarray(value) for name, value in out.items()}


def summarize(result: dict[str, np.ndarray]) -> dict[str, Any]:
    """The report's numbers from :func:`play`'s arrays."""
    crashed, length = result["crashed"], result["length"]
    frames = int(length.sum())
    open_frames = int(result["open"].sum())
    n_crashed = int(crashed.sum())
    causes = result["causes"][crashed]
    return {
        "episodes": int(crashed.size),
        "crashed": n_crashed,
        "mean_length": float(length.mean()),
        "crash_rate": n_crashed / frames if frames else float("nan"),
        "causes": {name: float(causes[:, i].mean()) if n_crashed else 0.0
                   for i, name in enumerate(CAUSES)},
        "near": {m: float(result["near"][:, i].sum() / frames) if frames else 0.0
                 for i, m in enumerate(MARGINS)},
        "open": open_frames / frames if frames else 0.0,
        "open_crashes": float(result["open_crash"][crashed].mean()) if n_crashed else 0.0,
        "near_open": {m: float(result["near_open"][:, i].sum() / open_frames)
                      if open_frames else 0.0 for i, m in enumerate(MARGINS)},
    }


def format_report(label: str, s: dict[str, Any], max_t: int) -> str:
    causes = ", ".join(f"{name} {share:.0%}" for name, share in s["causes"].items())
    near = " / ".join(f"{share:.1%}" for share in s["near"].values())
    near_open = " / ".join(f"{share:.1%}" for share in s["near_open"].values())
    margins = "/".join(f"{m:g}" for m in s["near"])
    return (f"{label}: {s['crashed']} of {s['episodes']} episodes crashed before {max_t} "
            f"frames; mean length {s['mean_length']:.0f}; crash rate {s['crash_rate']:.2e} per "
            f"frame\n  crash causes: {causes}\n  frames within {margins} px of the ceiling or "
            f"floor: {near}\n  in open space (no block from {OPEN_BEHIND:g} px behind to "
            f"{OPEN_AHEAD:g} px ahead): {s['open']:.0%} of the frames, {s['open_crashes']:.0%} "
            f"of the crashes; frames there within {margins} px: {near_open}")


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog=f"python -m {PROG}",
                           description=__doc__.split("\n\n")[1])
    parser.add_argument("run_dir", help="a Pixelcopter run folder (reinforce train --out)")
    parser.add_argument("--episodes", type=positive_int, default=500,
                        help="episodes per run (default 500)")
    parser.add_argument("--max-t", type=positive_int, default=None,
                        help="frames per episode at most (default: the run's max_t)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the episodes (default 1)")
    return run_command(PROG, lambda: _report(parser.parse_args(argv)),
                       bad_input=(UsageError, CheckpointError))


def _report(args) -> int:
    folder = RunFolder.load(args.run_dir)
    if folder.cfg.env_id != pc.Pixelcopter.id:
        raise UsageError(f"{args.run_dir} is a {folder.cfg.env_id} run; crash causes are "
                         f"reported for {pc.Pixelcopter.id} runs only")
    states = [folder.load_weights(i) for i in range(len(folder.runs))]
    max_t = args.max_t or folder.cfg.max_t
    policy = policy_for(folder.arch)
    for i, (spec, state) in enumerate(zip(folder.runs, states, strict=True)):
        params = from_export(state)

        def act(obs, key, params=params):
            return jax.random.categorical(key, policy.apply(params, obs))

        result = play(act, jax.random.key(args.seed), args.episodes, max_t,
                      obs_mode=folder.cfg.obs, frame_stack=folder.cfg.frame_stack)
        label = f"run {i} ({spec.label(' ', ', ')})"
        print(format_report(label, summarize(result), max_t), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
