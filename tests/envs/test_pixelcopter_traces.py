"""Fidelity of the JAX Pixelcopter against step-by-step traces of the real game.

Every step row of every trace file is checked: the recorded internal state before the step
(``pre_snap``) is loaded with `state_from_snapshot`, the recorded action is applied with the
jitted, vmapped ``step`` (all rows of a file at once, in fixed-size chunks so that each
precision mode compiles once), and the result is compared with what the real game produced.

Rows that consume the game's RNG (``rng_consumed``: a block spawn and/or a terrain batch) get
their new objects from our own JAX key, so only what does not depend on the new draws is
compared there. Spawned objects are appended at the END of the block / terrain lists, so the
first ``n_post - n_spawned`` entries of each list are the surviving old objects, which must
match exactly. What depends on the draws:

* block spawn (``block_passed``): the new block's x and y, and hence observation entries 4..6
  (``next_gate_*``). A block is only passed while it is the only block, and a passed block is
  at or behind the player (distance <= 0), so the next gate after a spawn is always the new
  block (checked against the recording below). Entries 0..3, reward and terminated do not
  depend on it: collisions and the +1 happen before or regardless of the spawn.
* terrain batch (``terrain_added``): only the new columns' gap centres y. Their x positions
  are absolute (50, 54, ..., 238) and are compared; they lie far right of the player, so they
  never become the "current column" of the observation, which is fully compared.

Modes: 64-bit (``jax.enable_x64``, the game's own float64 arithmetic): observations to 1e-9
(in fact bitwise), float32 observations exactly as gym-games returns them, rewards and
terminations exactly, internal post-step state and integer rects exactly, on 100% of rows.
Default 32-bit mode: snapshots are cast to float32 and stepped in float32; observations to
1e-4 (measured max error 4.3e-6) and rows whose reward or terminated differ: measured 0 on all
files, asserted 0.

Rendering: every recorded frame (``frames`` shows the screen after step ``frame_row``) is
compared with ``render`` of (a) the recorded post-step snapshot and (b) our stepped state for
rows that drew no random numbers (one recorded frame row spawns something, and a block spawned
at x = 48 or 49 would be partly visible). Both are pixel-exact in 64-bit mode; in 32-bit mode
they are also pixel-exact on all 509 recorded frames (0 differing pixels; asserted).

The trace folder is ``tests/data/pixelcopter`` unless ``REINFORCE_REFERENCE_DIR`` is set
(then ``$REINFORCE_REFERENCE_DIR/pixelcopter``).
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from traces import trace_files

from reinforce.envs.pixelcopter import (
    MAX_BLOCKS,
    MAX_TERRAIN,
    Pixelcopter,
    block_rects,
    observation_f,
    player_rect,
    state_from_snapshot,
    terrain_rects,
)

TRACE_FILES = trace_files("pixelcopter")
CHUNK = 1024  # rows per compiled call (fixed, so each mode compiles once)
FRAME_CHUNK = 128

ENV = Pixelcopter()
PARAMS = ENV.default_params()


def _row(key, state, action, params):
    obs_pre = observation_f(state, params)
    obs32, new, reward, terminated, truncated, _ = ENV.step(key, state, action, params)
    return dict(
        obs_pre=obs_pre,
        obs=observation_f(new, params),
        obs32=obs32,
        reward=reward,
        terminated=terminated,
        truncated=truncated,
        state=new,
        player_rect=player_rect(new, params),
        block_rects=block_rects(new, params),
        terrain_rects=terrain_rects(new, params),
    )


_step_rows = jax.jit(jax.vmap(_row, in_axes=(0, 0, 0, None)))
_render_rows = jax.jit(jax.vmap(ENV.render, in_axes=(0, None)))


def _chunked(fn, n: int, size: int):
    """Run ``fn(index_array)`` over ``range(n)`` in padded chunks; concatenate numpy leaves."""
    outs = []
    for start in range(0, n, size):
        idx = np.arange(start, start + size)
        valid = idx < n
        out = fn(np.where(valid, idx, n - 1))
        outs.append(jax.tree_util.tree_map(lambda a, k=valid.sum(): np.asarray(a)[:k], out))
    return jax.tree_util.tree_map(lambda *a: np.concatenate(a), *outs)


def _run(d: dict[str, np.ndarray], seed: int) -> tuple[dict, np.ndarray, np.ndarray]:
    """Step every row and render every frame in the current precision mode."""
    n = len(d["action"])
    keys = jax.random.split(jax.random.key(seed), n)

    def rows(idx):
        state = state_from_snapshot(d, d["pre_snap"][idx])
        return _step_rows(keys[idx], state, jnp.asarray(d["action"][idx]), PARAMS)

    res = _chunked(rows, n, CHUNK)
    frame_rows = d["frame_row"]
    # (a) the recorded post-step snapshots, (b) our own stepped states.
    from_snap = _chunked(
        lambda i: _render_rows(state_from_snapshot(d, d["post_snap"][frame_rows[i]]), PARAMS),
        len(frame_rows), FRAME_CHUNK,
    )
    stepped = _chunked(
        lambda i: _render_rows(
            jax.tree_util.tree_map(lambda a: jnp.asarray(a[frame_rows[i]]), res["state"]), PARAMS
        ),
        len(frame_rows), FRAME_CHUNK,
    )
    return res, from_snap, stepped


def _obs_mask(d: dict[str, np.ndarray]) -> np.ndarray:
    """Observation entries that do not depend on this step's random draws (see module doc)."""
    mask = np.ones(d["next_obs"].shape, bool)
    mask[d["block_passed"] > 0, 4:] = False
    return mask


def _check_trace_consistency(d: dict[str, np.ndarray]) -> None:
    """The trace semantics the comparisons rely on."""
    spawned = (d["block_passed"] > 0) | (d["terrain_added"] > 0)
    np.testing.assert_array_equal(d["rng_consumed"], spawned)
    assert set(np.unique(d["terrain_added"])) <= {0, 48}
    # After a block spawn, the recorded next gate is the spawned (last) block.
    rows = np.flatnonzero(d["block_passed"] > 0)
    post = d["post_snap"][rows]
    last = d["snap_block_x"][post, d["snap_n_blocks"][post] - 1]
    np.testing.assert_array_equal(d["next_obs"][rows, 4], last - 16)


def _check_post_state(d: dict[str, np.ndarray], res: dict) -> None:
    """64-bit mode: our post-step state equals the recorded one (non-spawned parts exactly)."""
    post = d["post_snap"]
    s = res["state"]
    np.testing.assert_array_equal(s.player_y, d["snap_player_y"][post])
    np.testing.assert_array_equal(s.player_vel, d["snap_player_vel"][post])
    np.testing.assert_array_equal(s.score, d["snap_score"][post])
    np.testing.assert_array_equal(s.lives, d["snap_lives"][post])
    np.testing.assert_array_equal(res["player_rect"], d["snap_player_rect"][post])

    n_b = d["snap_n_blocks"][post]
    n_t = d["snap_n_terrain"][post]
    np.testing.assert_array_equal(s.block_valid.sum(1), n_b)
    np.testing.assert_array_equal(s.terrain_valid.sum(1), n_t)
    # Valid entries form a prefix.
    np.testing.assert_array_equal(s.block_valid, np.arange(MAX_BLOCKS) < n_b[:, None])
    np.testing.assert_array_equal(s.terrain_valid, np.arange(MAX_TERRAIN) < n_t[:, None])

    # Surviving (non-spawned) blocks, in list order.
    old_b = np.arange(d["snap_block_x"].shape[1]) < (n_b - d["block_passed"])[:, None]
    kb = old_b.shape[1]
    np.testing.assert_array_equal(s.block_x[:, :kb][old_b], d["snap_block_x"][post][old_b])
    np.testing.assert_array_equal(s.block_y[:, :kb][old_b], d["snap_block_y"][post][old_b])
    np.testing.assert_array_equal(
        res["block_rects"][:, :kb][old_b], d["snap_block_rect"][post][old_b]
    )
    # Spawned blocks: last in the list, integer x in [48, 72) and y in [12, 36), like the game's.
    new_b = (np.arange(kb) >= (n_b - d["block_passed"])[:, None]) & (np.arange(kb) < n_b[:, None])
    for x, y in ((s.block_x[:, :kb][new_b], s.block_y[:, :kb][new_b]),
                 (d["snap_block_x"][post][new_b], d["snap_block_y"][post][new_b])):
        assert np.all((x == np.floor(x)) & (x >= 48) & (x < 72))
        assert np.all((y >= 12) & (y < 36))

    # Surviving terrain columns, in list order (x, gap centre y, integer rect).
    kt = d["snap_terrain_x"].shape[1]
    live = np.arange(kt) < n_t[:, None]
    old_t = np.arange(kt) < (n_t - d["terrain_added"])[:, None]
    rec_x, rec_y = d["snap_terrain_x"][post], d["snap_terrain_y"][post]
    np.testing.assert_array_equal(s.terrain_x[:, :kt][old_t], rec_x[old_t])
    np.testing.assert_array_equal(s.terrain_y[:, :kt][old_t], rec_y[old_t])
    np.testing.assert_array_equal(
        res["terrain_rects"][:, :kt, :2][old_t], d["snap_terrain_rect_xy"][post][old_t]
    )
    assert np.all(res["terrain_rects"][:, :kt, 2:][live] == [4, 72])
    # Spawned columns: their x positions are deterministic (absolute), their y random in range.
    new_t = live & ~old_t
    np.testing.assert_array_equal(s.terrain_x[:, :kt][new_t], rec_x[new_t])
    for y in (s.terrain_y[:, :kt][new_t], rec_y[new_t]):
        assert np.all((y >= 18) & (y <= 30))


@pytest.mark.parametrize("path", TRACE_FILES, ids=[p.stem for p in TRACE_FILES])
def test_trace(path: Path) -> None:
    d = dict(np.load(path))
    n = len(d["action"])
    assert n > 0
    assert set(np.unique(d["action"])) <= {0, 1}
    _check_trace_consistency(d)
    mask = _obs_mask(d)
    frames = d["frames"]
    no_rng_frames = ~d["rng_consumed"][d["frame_row"]]

    # ---------------- 64-bit mode: bit-exact ----------------
    with jax.enable_x64(True):
        res, from_snap, stepped = _run(d, seed=0)
    assert res["obs"].dtype == np.float64
    np.testing.assert_allclose(res["obs_pre"], d["obs"], rtol=0, atol=1e-9)
    err64 = np.abs(res["obs"] - d["next_obs"])[mask]
    assert err64.max() <= 1e-9, f"64-bit obs max abs error {err64.max()}"
    np.testing.assert_array_equal(res["obs32"][mask], d["next_obs_f32"][mask])
    np.testing.assert_array_equal(res["reward"], d["reward"])
    np.testing.assert_array_equal(res["terminated"], d["terminated"])
    assert not res["truncated"].any()
    _check_post_state(d, res)
    np.testing.assert_array_equal(from_snap, frames)
    np.testing.assert_array_equal(stepped[no_rng_frames], frames[no_rng_frames])

    # ---------------- 32-bit mode ----------------
    with jax.enable_x64(False):
        res, from_snap, stepped = _run(d, seed=1)
    assert res["obs"].dtype == np.float32
    err32 = np.abs(res["obs"].astype(np.float64) - d["next_obs"])[mask]
    assert err32.max() <= 1e-4, f"32-bit obs max abs error {err32.max()}"
    np.testing.assert_allclose(res["obs_pre"], d["obs"], rtol=0, atol=1e-4)
    n_reward = int((res["reward"] != d["reward"]).sum())
    n_done = int((res["terminated"] != d["terminated"]).sum())
    n_diff = int(((res["reward"] != d["reward"]) | (res["terminated"] != d["terminated"])).sum())
    print(f"{path.stem}: {n} rows; obs max err {err64.max():.3g} (x64), {err32.max():.3g} (x32); "
          f"x32 rows with reward/terminated differences: {n_diff} ({n_reward} reward, "
          f"{n_done} done)")
    assert n_diff == 0
    assert int((from_snap != frames).any(-1).sum()) == 0
    assert int((stepped[no_rng_frames] != frames[no_rng_frames]).any(-1).sum()) == 0
