"""Pixelcopter on the host, in plain Python: the rules of :mod:`reinforce.envs.pixelcopter`.

This is what the gymnasium view ``Pixelcopter-PLE-v0`` steps, one frame at a time. The JAX
port keeps blocks and terrain columns in fixed-capacity arrays with validity masks, so that it
can be compiled and vectorized; here they are Python lists in the game's list order, and a
frame costs a few dozen Python operations instead of a compiled call. Every function mirrors
the one of the same name in the JAX port (same rules, same order of operations), and the
constants are the JAX port's :class:`PixelcopterParams`.

Precision: in float64 (the default) every value is a Python float, an IEEE double like the
real game's, so a frame from a recorded state reproduces the game bit for bit. With
``dtype=np.float32`` the values are numpy float32 scalars and every operation rounds to
float32 as the JAX port does in its default 32-bit mode.

Random draws go to ``rng``, a numpy ``Generator`` (gymnasium's ``np_random``): ``integers`` for
a block, ``uniform`` for a terrain batch, in the game's order (a block before a terrain batch).
Anything with those two methods will do; a legacy ``RandomState`` behind them replays the real
game's draws exactly.

Stepping a finished game changes nothing and pays 0, like the real driver (and the JAX port).
States are never modified in place (a new state may share lists with the old one).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from reinforce.envs.cartpole_host import scalar_type
from reinforce.envs.pixelcopter import GREEN, WHITE, Pixelcopter, PixelcopterParams

Rect = tuple[int, int, int, int]  # x, y, w, h of an integer (pygame) rect


@dataclass(slots=True)
class PixelcopterHostState:
    player_y: Any  # centre y (Python float, or numpy float32 in float32 mode); y grows down
    player_vel: Any  # px per frame, + = down
    block_x: list  # centre x of every block, list order
    block_y: list[int]  # centre y
    terrain_x: list  # column centre x, list (creation) order
    terrain_y: list[int]  # centre of the column's free gap
    score: Any  # sum of rewards since reset
    lives: int  # 1 at reset; game over when <= 0
    time: int  # steps taken in this episode


@dataclass(slots=True)
class Collisions:
    """What the player hits in one frame, as indices into the moved state's lists: ``block``
    (the blocks it overlaps), ``ceiling`` and ``floor`` (the terrain columns it overlaps whose
    ceiling or floor it touches). Each entry costs a life. ``columns``: every terrain column
    the player overlaps, in list order."""

    block: list[int]
    ceiling: list[int]
    floor: list[int]
    columns: list[int]


# ----------------------------------------------------------------------------------------
# numeric helpers


def round_half_away(v: Any) -> int:
    """C ``round()`` (half away from zero), exact for every float: how pygame turns float
    centres into integer rects."""
    t = int(v)  # toward zero
    frac = v - t  # exact
    if frac >= 0.5:
        return t + 1
    if frac <= -0.5:
        return t - 1
    return t


def _overlap(a: Rect, b: Rect) -> bool:
    """Strict overlap of integer rects (x, y, w, h): touching edges do not overlap."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    return ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah


def player_rect(state: PixelcopterHostState, params: PixelcopterParams) -> Rect:
    s = params.player_rect_size
    return (params.player_x - s // 2, round_half_away(state.player_y) - s // 2, s, s)


def _rect(x: Any, y: int, w: int, h: int) -> Rect:
    return (round_half_away(x) - w // 2, y - h // 2, w, h)


def block_rects(state: PixelcopterHostState, params: PixelcopterParams) -> list[Rect]:
    w, h = params.block_width, params.block_height
    return [_rect(x, y, w, h) for x, y in zip(state.block_x, state.block_y, strict=True)]


def terrain_rects(state: PixelcopterHostState, params: PixelcopterParams) -> list[Rect]:
    w, h = params.terrain_spacing, params.terrain_rect_height
    return [_rect(x, y, w, h) for x, y in zip(state.terrain_x, state.terrain_y, strict=True)]


def _overlapping_columns(state: PixelcopterHostState, params: PixelcopterParams) -> list[int]:
    """Indices, in list order, of the terrain columns whose rect overlaps the player's."""
    p = params
    pr = player_rect(state, p)
    w, h = p.terrain_spacing, p.terrain_rect_height
    # A column's rect starts at round(x) - w // 2, within half a pixel of x - w // 2, so only
    # the columns with lo < x < hi can overlap the player in x: a cheap test that keeps the
    # exact one below to a column or two.
    lo = pr[0] - w + w // 2 - 0.5
    hi = pr[0] + pr[2] + w // 2 + 0.5
    tx, ty = state.terrain_x, state.terrain_y
    near = [i for i, x in enumerate(tx) if lo < x < hi]
    return [i for i in near if _overlap(pr, _rect(tx[i], ty[i], w, h))]


# ----------------------------------------------------------------------------------------
# observation


def observed_column(state: PixelcopterHostState, params: PixelcopterParams,
                    columns: list[int] | None = None) -> int:
    """Index of the terrain column the observation describes: the first one in list order whose
    rect overlaps the player's (``columns``, if already known); if none does (not from a
    reachable state), the column nearest to the player in x, as in the JAX port; -1 if there
    is no column at all."""
    if columns is None:
        columns = _overlapping_columns(state, params)
    if columns:
        return columns[0]
    tx = state.terrain_x
    if not tx:
        return -1
    return min(range(len(tx)), key=lambda i: abs(tx[i] - params.player_x))


def observation_f(state: PixelcopterHostState, params: PixelcopterParams,
                  columns: list[int] | None = None) -> tuple:
    """The 7 observation values in the state's precision (float64: exact)."""
    p = params
    y = state.player_y
    col = observed_column(state, p, columns)
    ty = state.terrain_y[col] if col >= 0 else 0
    # Next gate: the block with the smallest 0 < x - player_x < 999 (ties: first in list
    # order); none (not from a reachable state): distance 999 and a block top of 0.
    dist, top = 999.0, 0
    for x, by in zip(state.block_x, state.block_y, strict=True):
        d = x - p.player_x
        if 0 < d < 999 and (dist == 999.0 or d < dist):
            dist, top = d, by
    f = type(y)
    return (y, state.player_vel, y - (ty - p.terrain_gap), (ty + p.terrain_gap) - y, f(dist),
            f(top), f(top + p.block_height))


def observation(state: PixelcopterHostState, params: PixelcopterParams,
                columns: list[int] | None = None) -> np.ndarray:
    """The observation as gym-games returns it: ``float32[7]``."""
    return np.array(observation_f(state, params, columns), np.float32)


# ----------------------------------------------------------------------------------------
# random draws


def _spawn_block(rng: Any, params: PixelcopterParams, f: Any) -> tuple[Any, int]:
    x = rng.integers(*params.block_spawn_x)
    y = rng.integers(*params.block_spawn_y)
    return f(int(x)), int(y)


def _terrain_batch(rng: Any, start: int, end: int, params: PixelcopterParams, f: Any
                   ) -> tuple[list, list[int]]:
    """x and gap centre y (int) of a batch of columns for ``[start, end)``."""
    p = params
    sin = math.sin if f is float else np.sin
    xs = [f(int(x)) for x in p.batch_xs(start, end)]
    j = p.terrain_freq_jitter
    freq = f(p.terrain_freq) + f(rng.uniform(-j, j))
    phase = rng.uniform(0.0, p.terrain_phase_max, size=len(xs))
    jitter = [p.terrain_amplitude * sin(freq * x + f(u)) for x, u in zip(xs, phase, strict=True)]
    ys = [int(p.terrain_centre + v) for v in jitter]  # toward zero
    return xs, ys


def collisions(state: PixelcopterHostState, action: int, params: PixelcopterParams
               ) -> tuple[PixelcopterHostState, Collisions]:
    """Steps 1-6 of a frame: the player accelerates (``action``), is damped and moves, blocks
    and terrain scroll, then the collision tests. Returns the moved state and what was hit;
    :func:`step` goes on from there."""
    p = params
    s = state
    # 1.-3. The player: add the acceleration, damp, then move (in this order).
    acc = p.climb * p.dt if action == Pixelcopter.UP else p.fall * p.dt
    vel = (s.player_vel + acc) * p.damping
    y = s.player_y + vel
    # 4. Scroll blocks and terrain by repeated subtraction.
    scroll = p.scroll
    moved = PixelcopterHostState(
        y, vel, [x - scroll for x in s.block_x], s.block_y,
        [x - scroll for x in s.terrain_x], s.terrain_y, s.score, s.lives, s.time,
    )
    # 5. Block collisions: one life per overlapping block.
    pr = player_rect(moved, p)
    hit_blocks = [i for i, r in enumerate(block_rects(moved, p)) if _overlap(pr, r)]
    # 6. Terrain collisions, for every overlapping column: ceiling and floor tests.
    columns = _overlapping_columns(moved, p)
    ty = s.terrain_y
    hit_ceil = [i for i in columns if y - p.player_size <= ty[i] - p.terrain_gap]
    hit_floor = [i for i in columns if y >= ty[i] + p.terrain_gap]
    return moved, Collisions(hit_blocks, hit_ceil, hit_floor, columns)


# ----------------------------------------------------------------------------------------
# the environment


def reset(rng: Any, params: PixelcopterParams, dtype: Any = np.float64) -> PixelcopterHostState:
    """A new game: the player in the middle, one block, the first terrain batch."""
    f = scalar_type(dtype)
    bx, by = _spawn_block(rng, params, f)
    tx, ty = _terrain_batch(rng, *params.terrain_initial, params, f)
    return PixelcopterHostState(
        player_y=f(params.height / 2), player_vel=f(0.0), block_x=[bx], block_y=[by],
        terrain_x=tx, terrain_y=ty, score=f(0.0), lives=1, time=0,
    )


def step(rng: Any, state: PixelcopterHostState, action: int, params: PixelcopterParams
         ) -> tuple[PixelcopterHostState, Any, bool, bool, list[int]]:
    """One frame: ``(new_state, reward, terminated, truncated, columns)``, where ``columns``
    are the terrain columns the player overlaps in ``new_state`` (what :func:`observation`
    needs; passing them on saves it the search). ``state`` is not modified."""
    p = params
    f = type(state.player_y)
    if state.lives <= 0:
        # A finished game does not move any more and pays nothing (like the real driver).
        return state, f(0.0), True, state.time >= p.max_steps_in_episode, None

    # 1.-6. Move the player, scroll, and test for collisions.
    moved, hit = collisions(state, action, p)
    y = moved.player_y
    lives = state.lives - (len(hit.block) + len(hit.ceiling) + len(hit.floor))

    # 7. Blocks, over a snapshot of the list in list order: a block at or behind the
    # player's centre while it is the only block is "passed" (+1) and a new block is
    # appended; a block at x <= -4 is removed.
    count = len(moved.block_x)
    n_passed = 0
    bx, by = [], []
    for x, yb in zip(moved.block_x, moved.block_y, strict=True):
        if x <= p.player_x and count == 1:
            n_passed += 1
            count += 1
        if x <= p.block_remove_x:
            count -= 1
        else:
            bx.append(x)
            by.append(yb)
    if n_passed:
        new_x, new_y = _spawn_block(rng, p, f)
        bx.append(new_x)
        by.append(new_y)

    # 8. Terrain columns at x <= -4 are removed, +1 each (most frames remove none).
    tx, ty, columns = moved.terrain_x, moved.terrain_y, hit.columns
    n_killed = 0
    if tx and min(tx) <= p.terrain_remove_x:
        keep = [i for i, x in enumerate(tx) if x > p.terrain_remove_x]
        n_killed = len(tx) - len(keep)
        new_index = {old: new for new, old in enumerate(keep)}
        columns = [new_index[i] for i in columns if i in new_index]
        tx, ty = [tx[i] for i in keep], [ty[i] for i in keep]

    # 9. Out of the screen's safe band.
    if y < p.min_y:
        lives -= 1
    if y > p.max_y:
        lives -= 1

    # 10. Refill: a batch at ABSOLUTE positions, appended after the remaining columns.
    if len(tx) <= p.terrain_refill_threshold:
        batch_x, batch_y = _terrain_batch(rng, *p.terrain_refill, p, f)
        tx, ty = tx + batch_x, ty + batch_y
        columns = None  # the new columns could overlap the player: search again

    # 11. Game over: a single loss reward, whatever the number of lives lost.
    game_over = lives <= 0
    reward = (f(p.reward_tick) + p.reward_positive * f(n_passed + n_killed)
              + f(p.reward_loss if game_over else 0.0))
    new = PixelcopterHostState(y, moved.player_vel, bx, by, tx, ty, state.score + reward, lives,
                               state.time + 1)
    return new, reward, game_over, new.time >= p.max_steps_in_episode, columns


def render(state: PixelcopterHostState, params: PixelcopterParams) -> np.ndarray:
    """The 48 x 48 RGB screen ``uint8[y, x, rgb]``, drawn like the game: black, then the player
    (white), the blocks and the terrain columns (green 4 x 72 images whose rows ``[24, 50)``
    are transparent), later drawings covering earlier ones, clipped to the screen."""
    p = params
    frame = np.zeros((p.height, p.width, 3), np.uint8)

    def paint(rect: Rect, colour: np.ndarray) -> None:
        x, y, w, h = rect
        frame[max(y, 0):max(y + h, 0), max(x, 0):max(x + w, 0)] = colour

    paint(player_rect(state, p), WHITE)
    for rect in block_rects(state, p):
        paint(rect, GREEN)
    top, bottom = p.terrain_image_gap  # transparent image rows [top, bottom)
    for x, y, w, h in terrain_rects(state, p):
        paint((x, y, w, top), GREEN)
        paint((x, y + bottom, w, h - bottom), GREEN)
    return frame


# ----------------------------------------------------------------------------------------
# conversion to and from the JAX state, and recorded traces


def to_jax(state: PixelcopterHostState):
    """The JAX port's :class:`PixelcopterState` of a host state (JAX's current dtypes)."""
    import jax.numpy as jnp

    from reinforce.envs.core import float_dtype, int_dtype
    from reinforce.envs.pixelcopter import MAX_BLOCKS, MAX_TERRAIN, PixelcopterState

    fd, it = float_dtype(), int_dtype()

    def table(xs, ys, cap):
        if len(xs) > cap:
            raise ValueError(f"{len(xs)} objects exceed the JAX port's capacity {cap}")
        x = np.zeros(cap)
        y = np.zeros(cap, np.int64)
        x[:len(xs)] = np.asarray(xs, np.float64)
        y[:len(ys)] = ys
        return jnp.asarray(x, fd), jnp.asarray(y, it), jnp.arange(cap) < len(xs)

    bx, by, bv = table(state.block_x, state.block_y, MAX_BLOCKS)
    tx, ty, tv = table(state.terrain_x, state.terrain_y, MAX_TERRAIN)
    return PixelcopterState(
        player_y=jnp.asarray(state.player_y, fd), player_vel=jnp.asarray(state.player_vel, fd),
        block_x=bx, block_y=by, block_valid=bv, terrain_x=tx, terrain_y=ty, terrain_valid=tv,
        score=jnp.asarray(state.score, fd), lives=jnp.asarray(state.lives, it),
        time=jnp.asarray(state.time, it),
    )


def from_jax(state, dtype: Any = np.float64) -> PixelcopterHostState:
    """The host state of one (unbatched) JAX :class:`PixelcopterState` (its valid prefixes)."""
    f = scalar_type(dtype)
    nb, nt = int(np.sum(state.block_valid)), int(np.sum(state.terrain_valid))
    return PixelcopterHostState(
        player_y=f(state.player_y), player_vel=f(state.player_vel),
        block_x=[f(x) for x in np.asarray(state.block_x)[:nb]],
        block_y=[int(y) for y in np.asarray(state.block_y)[:nb]],
        terrain_x=[f(x) for x in np.asarray(state.terrain_x)[:nt]],
        terrain_y=[int(y) for y in np.asarray(state.terrain_y)[:nt]],
        score=f(state.score), lives=int(state.lives), time=int(state.time),
    )


def state_from_snapshot(arrays: dict[str, np.ndarray], index: int, dtype: Any = np.float64,
                        time: int = 0) -> PixelcopterHostState:
    """The host state of one internal-state snapshot of a recorded trace of the real game
    (``dict(np.load("pixelcopter_seed*.npz"))``, as for the JAX port's ``state_from_snapshot``);
    `time` is not part of the snapshots."""
    f = scalar_type(dtype)
    nb, nt = int(arrays["snap_n_blocks"][index]), int(arrays["snap_n_terrain"][index])
    lives = float(arrays["snap_lives"][index])
    if lives != math.floor(lives):
        raise ValueError("non-integer lives in snapshot")
    return PixelcopterHostState(
        player_y=f(arrays["snap_player_y"][index]),
        player_vel=f(arrays["snap_player_vel"][index]),
        block_x=[f(x) for x in arrays["snap_block_x"][index, :nb]],
        block_y=[round(y) for y in arrays["snap_block_y"][index, :nb].tolist()],
        terrain_x=[f(x) for x in arrays["snap_terrain_x"][index, :nt]],
        terrain_y=[round(y) for y in arrays["snap_terrain_y"][index, :nt].tolist()],
        score=f(arrays["snap_score"][index]), lives=int(lives), time=time,
    )


__all__ = [
    "Collisions", "PixelcopterHostState", "block_rects", "collisions", "from_jax",
    "observation", "observation_f", "observed_column", "player_rect", "render", "reset",
    "round_half_away", "state_from_snapshot", "step", "terrain_rects", "to_jax",
]
