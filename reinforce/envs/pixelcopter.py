"""Pixelcopter (PyGame-Learning-Environment, as gym-games' ``Pixelcopter-PLE-v0``) in pure JAX.

A faithful functional port of the real game at its gym-games settings (48 x 48 screen,
``fps=30`` with ``force_fps``, so every frame uses ``dt = 1000 / 30`` ms; one ``step`` is one
frame). The rules, constants and order of operations follow the reference description of the
game; everything is jittable and vmappable.

Actions: ``0`` = "up" (the game's ``K_w`` key held during this frame), ``1`` = no-op; this is
the order of the real action set ``[K_w, None]``.

Observation (float32, 7 values, in the order of the game's state dictionary)::

    [player_y, player_vel, player_dist_to_ceil, player_dist_to_floor,
     next_gate_dist_to_player, next_gate_block_top, next_gate_block_bottom]

Reward per step: +1 per block passed, +1 per terrain column that scrolled off the left edge,
-5 once on the frame the game ends. ``terminated`` = game over; there is no time limit in the
real game (``max_steps_in_episode`` defaults to a huge value; ``truncated`` is
``time >= max_steps_in_episode``). Stepping a finished game changes nothing and pays 0, like
the real driver.

Precision: with JAX's 64-bit mode on, every quantity is computed in float64 with the same
operations in the same order as the game's Python floats, so a step from a recorded internal
state reproduces the next state, observation, reward and termination bit for bit (this is
checked against traces of the real game). In the default 32-bit mode the same operations run
in float32. The random draws (block spawn, terrain batch) come from JAX keys, so the random
stream differs from the game's ``numpy.random.RandomState``; everything that follows from a
given state and action does not.

State layout: blocks and terrain columns live in fixed-capacity arrays with validity masks.
Valid entries always form a prefix and are kept in the real game's list (creation) order,
which matters: the *first* overlapping terrain column in list order defines the observation.

A frame is written in phases: ``draw`` (every random number a frame or a reset may use, from
its key), ``advance`` (the deterministic steps), ``remove_columns``, ``tally`` (the reward) and
``place`` (the new block and terrain, from the draws); ``start`` makes a new game from draws.
``step`` and ``reset`` run them in order; ``autoreset_step`` runs them for a batch of envs and
draws for the few envs that need it (the vector envs). The host mirror,
:mod:`reinforce.envs.pixelcopter_host`, has the same rules in plain Python.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jax import lax

from reinforce.envs.core import (
    Environment,
    float_dtype,
    int_dtype,
    update_rows,
    where_rows,
)

#: Capacity of the block arrays (the game never holds more than 2 blocks at once).
MAX_BLOCKS = 4
#: Capacity of the terrain arrays (at most 13 old + 48 new = 61 columns are ever alive).
MAX_TERRAIN = 64

_W, _H = 48, 48  # the real game's (default) screen size
_SPEED = 0.0004 * _W  # px per ms

#: Colours of the screen: the blocks and terrain (green) and the player (white).
GREEN = np.array([120, 240, 80], np.uint8)
WHITE = np.array([255, 255, 255], np.uint8)


def _static(default: Any) -> Any:
    return struct.field(pytree_node=False, default=default)


@struct.dataclass
class PixelcopterParams:
    """Constants of the game, as the game computes them in Python (double precision).

    All fields are static (not traced): derived constants such as the scroll per frame
    ``speed * dt = 0.6400000000000001`` are computed once in Python double precision and only
    then cast to JAX's float dtype, exactly like the game's own arithmetic. Only the defaults
    reproduce the real game; the array capacities (``MAX_BLOCKS``, ``MAX_TERRAIN``) and the
    sprite layout are sized for them.
    """

    width: int = _static(_W)
    height: int = _static(_H)
    dt: float = _static(1000.0 / 30)  # ms per frame (fps = 30, force_fps)
    speed: float = _static(_SPEED)  # horizontal scroll speed, px per ms
    climb: float = _static(_SPEED * -0.875)  # acceleration while "up" is held, per ms
    fall: float = _static(_SPEED * 0.09)  # acceleration otherwise, per ms
    damping: float = _static(0.99)  # velocity factor per frame
    player_x: int = _static(int(_W * 0.35))  # 16; never changes
    player_size: float = _static(_W * 0.05)  # 2.4000000000000004, used in the ceiling test
    player_rect_size: int = _static(int(_W * 0.05))  # 2: collision rect and sprite are 2 x 2
    block_width: int = _static(int(_W * 0.1))  # 4
    block_height: int = _static(int(_H * 0.2))  # 9
    block_spawn_x: tuple[int, int] = _static((_W, int(_W * 1.5)))  # randint range [48, 72)
    block_spawn_y: tuple[int, int] = _static((int(_H * 0.25), int(_H * 0.75)))  # [12, 36)
    block_remove_x: float = _static(-4.0)  # a block with x <= this is removed
    terrain_spacing: int = _static(int(_W * 0.1))  # 4: column width and spacing
    terrain_rect_height: int = _static(int(_H * 1.5))  # 72
    terrain_gap: float = _static(_H * 0.25)  # 12.0: logical ceiling/floor = y -+ gap
    terrain_image_gap: tuple[int, int] = _static((24, 50))  # transparent image rows [24, 50)
    terrain_centre: float = _static(_H / 2)  # 24.0
    terrain_amplitude: float = _static(_H * 0.125)  # 6.0
    terrain_freq: float = _static(4.5 / _W)  # 0.09375
    terrain_freq_jitter: float = _static(0.01)  # freq += uniform(-0.01, 0.01)
    terrain_phase_max: float = _static(0.5)  # phase_i = uniform(0.0, 0.5)
    terrain_initial: tuple[int, int] = _static((0, _W * 4))  # batch range at reset
    terrain_refill: tuple[int, int] = _static((_W, _W * 5))  # absolute batch range of a refill
    terrain_refill_threshold: int = _static(13)  # refill when <= this many columns are left
    terrain_remove_x: float = _static(-4.0)  # a column with x <= this is removed (+1)
    min_y: float = _static(_H * 0.125)  # 6.0: y < this loses a life
    max_y: float = _static(_H * 0.875)  # 42.0: y > this loses a life
    reward_tick: float = _static(0.0)
    reward_positive: float = _static(1.0)
    reward_loss: float = _static(-5.0)
    max_steps_in_episode: int = _static(2**31 - 1)  # no time limit in the real game

    @property
    def scroll(self) -> float:
        """Leftward move of every block and column per frame: ``0.6400000000000001``."""
        return self.speed * self.dt

    def batch_xs(self, start: int, end: int) -> np.ndarray:
        """Integer x positions of a terrain batch for the range ``[start, end)``."""
        half = self.terrain_spacing // 2
        return np.arange(start + half, end + half, self.terrain_spacing)


@struct.dataclass
class PixelcopterState:
    player_y: jax.Array  # centre y (float); y grows downwards
    player_vel: jax.Array  # px per frame, + = down
    block_x: jax.Array  # float[MAX_BLOCKS], centre x, list order (valid prefix)
    block_y: jax.Array  # int[MAX_BLOCKS], centre y
    block_valid: jax.Array  # bool[MAX_BLOCKS]
    terrain_x: jax.Array  # float[MAX_TERRAIN], column centre x, list (creation) order
    terrain_y: jax.Array  # int[MAX_TERRAIN], centre of the column's free gap
    terrain_valid: jax.Array  # bool[MAX_TERRAIN]
    score: jax.Array  # float, sum of rewards since reset
    lives: jax.Array  # int, 1 at reset; game over when <= 0
    time: jax.Array  # int, steps taken in this episode


# ----------------------------------------------------------------------------------------
# numeric helpers


def _no_fma(x: jax.Array) -> jax.Array:
    """`x` unchanged, but rounded on its own before it enters the next operation.

    XLA (LLVM) contracts ``a * b + c`` into a fused multiply-add, which skips the rounding of
    the product and breaks bit-for-bit agreement with the game's Python floats. A select the
    compiler cannot see through (NaN stays NaN, everything else passes) prevents that.
    """
    return jnp.where(jnp.isnan(x), jnp.nan, x)


def round_half_away(v: jax.Array) -> jax.Array:
    """C ``round()`` (half away from zero) as an integer array, exact for every float.

    This is how pygame turns float centres into integer rects. ``floor(v + 0.5)`` is wrong
    (e.g. for 0.49999999999999994) and ``jnp.round`` rounds halves to even.
    """
    t = jnp.trunc(v)
    frac = v - t  # exact
    r = t + jnp.where(jnp.abs(frac) >= 0.5, jnp.sign(v), jnp.zeros_like(v))
    return r.astype(int_dtype())


def _overlap(ax, ay, aw, ah, bx, by, bw, bh) -> jax.Array:
    """Strict overlap of integer rects (x, y, w, h): touching edges do not overlap."""
    return (ax < bx + bw) & (bx < ax + aw) & (ay < by + bh) & (by < ay + ah)


def player_rect(state: PixelcopterState, params: PixelcopterParams) -> jax.Array:
    """Player collision rect ``int[4]`` = (x, y, w, h) of one (unbatched) state; vmap for more."""
    s = params.player_rect_size
    py = round_half_away(state.player_y) - s // 2
    px = jnp.full_like(py, params.player_x - s // 2)
    return jnp.stack([px, py, jnp.full_like(py, s), jnp.full_like(py, s)], axis=-1)


def block_rects(state: PixelcopterState, params: PixelcopterParams) -> jax.Array:
    """Block collision rects ``int[MAX_BLOCKS, 4]`` (garbage where not ``block_valid``)."""
    w, h = params.block_width, params.block_height
    x = round_half_away(state.block_x) - w // 2
    y = state.block_y.astype(x.dtype) - h // 2
    return jnp.stack([x, y, jnp.full_like(x, w), jnp.full_like(x, h)], axis=-1)


def terrain_rects(state: PixelcopterState, params: PixelcopterParams) -> jax.Array:
    """Terrain collision rects ``int[MAX_TERRAIN, 4]`` (garbage where not ``terrain_valid``)."""
    w, h = params.terrain_spacing, params.terrain_rect_height
    x = round_half_away(state.terrain_x) - w // 2
    y = state.terrain_y.astype(x.dtype) - h // 2
    return jnp.stack([x, y, jnp.full_like(x, w), jnp.full_like(x, h)], axis=-1)


def column_span(params: PixelcopterParams) -> tuple[float, float]:
    """``(lo, hi)``: a terrain column's rect overlaps the player's in x iff ``lo <= x < hi``.

    The rect starts at ``round(x) - w // 2`` (:func:`terrain_rects`), so it overlaps the
    player's ``[px, px + pw)`` iff ``first <= round(x) <= last``; with rounding half away from
    zero, ``round(x) >= first`` iff ``x >= first - 0.5`` and ``round(x) <= last`` iff
    ``x < last + 0.5`` for every float ``x``, while ``first >= 1`` (as for the game's sizes).
    Two comparisons per column instead of a rounding and a rect test.
    """
    s, w = params.player_rect_size, params.terrain_spacing
    px = params.player_x - s // 2
    first, last = px - w + w // 2 + 1, px + s + w // 2 - 1
    if first < 1:
        raise ValueError("these params put the player too close to the left edge")
    return first - 0.5, last + 0.5


def _overlapping_columns(state: PixelcopterState, params: PixelcopterParams) -> jax.Array:
    """``bool[MAX_TERRAIN]``: the columns whose rect overlaps the player's (the rect test of
    :func:`player_rect` and :func:`terrain_rects`, in x by :func:`column_span`)."""
    lo, hi = column_span(params)
    s, h = params.player_rect_size, params.terrain_rect_height
    py = round_half_away(state.player_y) - s // 2
    ty = state.terrain_y.astype(py.dtype) - h // 2
    x = state.terrain_x
    return state.terrain_valid & (x >= lo) & (x < hi) & (ty < py + s) & (py < ty + h)


def _compact(valid: jax.Array, *arrays: jax.Array) -> tuple[jax.Array, ...]:
    """Move the valid entries to the front, keeping their order; zero the rest."""
    cap = valid.shape[0]
    target = jnp.where(valid, jnp.cumsum(valid) - 1, cap)  # cap = dropped
    out = [jnp.zeros_like(a).at[target].set(a, mode="drop") for a in arrays]
    return (jnp.arange(cap) < valid.sum(), *out)


# ----------------------------------------------------------------------------------------
# observation


def _first(mask: jax.Array) -> jax.Array:
    """Index of the first True of ``mask``, its length if none. (A plain minimum: XLA runs
    ``argmax``'s index-carrying reduction element by element on a CPU, this one vectorized.)"""
    n = mask.shape[-1]
    return jnp.min(jnp.where(mask, jnp.arange(n), n), axis=-1)


def _first_smallest(x: jax.Array, valid: jax.Array) -> jax.Array:
    """Index of the smallest ``x`` where ``valid``, the first of equals; the length if none."""
    smallest = jnp.min(jnp.where(valid, x, jnp.inf), axis=-1, keepdims=True)
    return _first(valid & (x == smallest))


def observed_column(state: PixelcopterState, params: PixelcopterParams) -> jax.Array:
    """Index of the terrain column the observation describes: the first one in list order whose
    rect overlaps the player's. (The real game crashes if none does, which cannot happen from a
    reachable state; here the valid column nearest to the player in x is used instead.) The
    player can also overlap the next column, which the observation does not show."""
    over = _first(_overlapping_columns(state, params))
    nearest = _first_smallest(jnp.abs(state.terrain_x - params.player_x), state.terrain_valid)
    return jnp.where(over < MAX_TERRAIN, over, jnp.where(nearest < MAX_TERRAIN, nearest, 0))


def observation_f(state: PixelcopterState, params: PixelcopterParams,
                  column: jax.Array | None = None) -> jax.Array:
    """The 7 observation values in JAX's float dtype (float64 in x64 mode: exact); ``column``:
    the :func:`observed_column`, if already known."""
    fd = float_dtype()
    y = state.player_y.astype(fd)
    if column is None:
        column = observed_column(state, params)
    ty = state.terrain_y[column].astype(fd)
    # Next gate: the block with the smallest 0 < x - player_x < 999 (ties: first in list order).
    # (If there is none, which again cannot happen from a reachable state, the game would crash;
    # here: distance 999 - the game's initial search bound - and a block top of 0.)
    d = state.block_x.astype(fd) - params.player_x
    cand = state.block_valid & (d > 0) & (d < 999)
    gate = _first_smallest(d, cand)
    has_gate = gate < MAX_BLOCKS
    dist = jnp.where(has_gate, d[gate], 999.0).astype(fd)
    top = jnp.where(has_gate, state.block_y[gate], 0).astype(fd)
    return jnp.stack([
        y,
        state.player_vel.astype(fd),
        y - (ty - params.terrain_gap),
        (ty + params.terrain_gap) - y,
        dist,
        top,
        top + params.block_height,
    ])


def observation(state: PixelcopterState, params: PixelcopterParams,
                column: jax.Array | None = None) -> jax.Array:
    """The observation as gym-games returns it: ``observation_f`` cast to float32."""
    return observation_f(state, params, column).astype(jnp.float32)


def _observations(state: PixelcopterState, params: PixelcopterParams) -> jax.Array:
    """:func:`observation` of a batch ``[N, ...]``. The observed column is the first one that
    overlaps the player; only when some env has none (never in a reachable game) is the
    nearest column looked for, for every env."""
    over = jax.vmap(lambda s: _first(_overlapping_columns(s, params)))(state)
    column = lax.cond(jnp.all(over < MAX_TERRAIN), lambda: over,
                      lambda: jax.vmap(observed_column, in_axes=(0, None))(state, params))
    return jax.vmap(observation, in_axes=(0, None, 0))(state, params, column)


# ----------------------------------------------------------------------------------------
# random draws


@struct.dataclass
class Draws:
    """The random numbers of one frame or one reset, all drawn from its key whether they are
    used or not: a block's ``block_x`` (float) and ``block_y``, and a terrain batch's frequency
    ``terrain_freq`` and phases ``terrain_phase`` (one per column)."""

    block_x: jax.Array
    block_y: jax.Array
    terrain_freq: jax.Array
    terrain_phase: jax.Array


def _spawn_block(key: jax.Array, params: PixelcopterParams) -> tuple[jax.Array, jax.Array]:
    kx, ky = jax.random.split(key)
    x = jax.random.randint(kx, (), *params.block_spawn_x, dtype=int_dtype())
    y = jax.random.randint(ky, (), *params.block_spawn_y, dtype=int_dtype())
    return x.astype(float_dtype()), y


def batch_size(params: PixelcopterParams) -> int:
    """Columns in a terrain batch: the first one and every refill have as many."""
    n = len(params.batch_xs(*params.terrain_initial))
    if len(params.batch_xs(*params.terrain_refill)) != n:
        raise ValueError("the first terrain batch and a refill must have as many columns")
    return n


def draw(key: jax.Array, params: PixelcopterParams) -> Draws:
    """Everything a frame or a reset may draw, from ``key``."""
    fd = float_dtype()
    key_block, key_terrain = jax.random.split(key)
    block_x, block_y = _spawn_block(key_block, params)
    kf, kp = jax.random.split(key_terrain)
    j = params.terrain_freq_jitter
    freq = params.terrain_freq + jax.random.uniform(kf, (), fd, -j, j)
    phase = jax.random.uniform(kp, (batch_size(params),), fd, 0.0, params.terrain_phase_max)
    return Draws(block_x, block_y, freq, phase)


def terrain_columns(draws: Draws, xs: Any, params: PixelcopterParams
                    ) -> tuple[jax.Array, jax.Array]:
    """x (float) and gap centre y (int) of the terrain batch of ``draws`` at the integer
    positions ``xs`` (``params.batch_xs(start, end)``)."""
    xs = jnp.asarray(xs, dtype=float_dtype())
    jitter = _no_fma(params.terrain_amplitude
                     * jnp.sin(_no_fma(draws.terrain_freq * xs) + draws.terrain_phase))
    ys = jnp.trunc(params.terrain_centre + jitter).astype(int_dtype())  # int(): toward zero
    return xs, ys


@struct.dataclass
class Collisions:
    """What the player hits in one frame: ``block[MAX_BLOCKS]`` (the blocks it overlaps),
    ``ceiling[MAX_TERRAIN]`` and ``floor[MAX_TERRAIN]`` (the terrain columns it overlaps whose
    ceiling or floor it touches). Each entry costs a life."""

    block: jax.Array
    ceiling: jax.Array
    floor: jax.Array


def collisions(
    state: PixelcopterState, action: jax.Array, params: PixelcopterParams
) -> tuple[PixelcopterState, Collisions]:
    """Steps 1-6 of a frame: the player accelerates (``action``), is damped and moves, blocks
    and terrain scroll, then the collision tests. Returns the moved state (nothing else of
    ``state`` changed) and what was hit; :func:`advance` goes on from there."""
    p = params
    fd = float_dtype()
    # 1.-3. The player: add the acceleration, damp, then move (in this order).
    up = jnp.asarray(action) == Pixelcopter.UP
    acc = jnp.where(up, p.climb * p.dt, p.fall * p.dt).astype(fd)
    vel = _no_fma((state.player_vel.astype(fd) + acc) * p.damping)
    y = state.player_y + vel
    # 4. Scroll blocks and terrain by repeated subtraction.
    moved = state.replace(player_y=y, player_vel=vel, block_x=state.block_x - p.scroll,
                          terrain_x=state.terrain_x - p.scroll)
    # 5. Block collisions: one life per overlapping block.
    pr, br = player_rect(moved, p), block_rects(moved, p)
    hit_blocks = state.block_valid & _overlap(
        pr[0], pr[1], pr[2], pr[3], br[:, 0], br[:, 1], br[:, 2], br[:, 3]
    )
    # 6. Terrain collisions, for every overlapping column: ceiling and floor tests.
    over = _overlapping_columns(moved, p)
    ty_f = state.terrain_y.astype(fd)
    hit_ceil = over & (y - p.player_size <= ty_f - p.terrain_gap)
    hit_floor = over & (y >= ty_f + p.terrain_gap)
    return moved, Collisions(block=hit_blocks, ceiling=hit_ceil, floor=hit_floor)


# ----------------------------------------------------------------------------------------
# a frame, in phases: advance (deterministic), remove_columns, tally, place (the draws)


@struct.dataclass
class Frame:
    """A frame up to its random part: ``state`` has moved and lost its lives (steps 1-6 and
    9), its passed and removed blocks are done (7), its removed columns are marked
    (``killed``, step 8) but still in place; score and time are the old ones. ``spawn``: a
    block was passed, a new one is due; ``events``: blocks passed + columns removed."""

    state: PixelcopterState
    killed: jax.Array
    spawn: jax.Array
    events: jax.Array


def advance(state: PixelcopterState, action: jax.Array, params: PixelcopterParams) -> Frame:
    """Steps 1-9 of a frame, all but the random draws and the removal of the columns."""
    p = params
    it = int_dtype()
    # 1.-6. Move the player, scroll, and test for collisions.
    moved, hit = collisions(state, action, p)
    y, bx = moved.player_y, moved.block_x
    lives = state.lives - (
        hit.block.sum(dtype=it) + hit.ceiling.sum(dtype=it) + hit.floor.sum(dtype=it)
    )

    # 7. Blocks, over a snapshot of the list in list order: a block at or behind the
    # player's centre while it is the only block is "passed" (+1) and a new block is
    # appended (by place()); a block at x <= -4 is removed. At most one spawn per frame is
    # possible (a spawn needs exactly one block, and there are never more than two).
    count = state.block_valid.sum(dtype=it)
    n_passed = jnp.zeros((), it)
    removed = []
    for i in range(MAX_BLOCKS):
        valid_i = state.block_valid[i]
        passed = valid_i & (bx[i] <= p.player_x) & (count == 1)
        n_passed = n_passed + passed
        count = count + passed
        gone = valid_i & (bx[i] <= p.block_remove_x)
        count = count - gone
        removed.append(gone)
    b_valid, bx, by = _compact(state.block_valid & ~jnp.stack(removed), bx, state.block_y)

    # 8. Terrain columns at x <= -4 are removed (remove_columns()), +1 each.
    killed = state.terrain_valid & (moved.terrain_x <= p.terrain_remove_x)

    # 9. Out of the screen's safe band.
    lives = lives - (y < p.min_y).astype(it) - (y > p.max_y).astype(it)
    moved = moved.replace(block_x=bx, block_y=by, block_valid=b_valid, lives=lives)
    return Frame(state=moved, killed=killed, spawn=n_passed > 0,
                 events=n_passed + killed.sum(dtype=it))


def remove_columns(state: PixelcopterState, killed: jax.Array) -> PixelcopterState:
    """Step 8: the ``killed`` columns leave the list; the others keep their order."""
    valid, x, y = _compact(state.terrain_valid & ~killed, state.terrain_x, state.terrain_y)
    return state.replace(terrain_valid=valid, terrain_x=x, terrain_y=y)


def _remove_columns_batch(state: PixelcopterState, killed: jax.Array) -> PixelcopterState:
    """:func:`remove_columns` for a batch ``[N, ...]``. When no env removes more than its first
    column (every frame of a reachable game: columns leave in the order they came), that is a
    shift by one where it goes; else the general removal, env by env."""
    k = killed.sum(axis=-1)
    head_only = jnp.all((k == 0) | ((k == 1) & killed[:, 0]))

    def shift(_):
        by_one = (k == 1)[:, None]

        def shifted(a):
            return jnp.where(by_one, jnp.concatenate([a[:, 1:], jnp.zeros_like(a[:, :1])], 1), a)

        valid = shifted(state.terrain_valid)  # valid entries form a prefix
        return state.replace(terrain_valid=valid,
                             terrain_x=jnp.where(valid, shifted(state.terrain_x), 0),
                             terrain_y=jnp.where(valid, shifted(state.terrain_y), 0))

    def general(_):
        return jax.vmap(remove_columns)(state, killed)

    return lax.cond(head_only, shift, general, None)


def refill_due(state: PixelcopterState, params: PixelcopterParams) -> jax.Array:
    """Step 10's test: after the removals, too few columns are left."""
    return state.terrain_valid.sum(dtype=int_dtype()) <= params.terrain_refill_threshold


def tally(frame: Frame, params: PixelcopterParams) -> tuple[PixelcopterState, jax.Array]:
    """Step 11: the frame's reward (+1 per event; game over: a single loss, whatever the number
    of lives lost), added to the score; one more step in the episode."""
    p = params
    fd = float_dtype()
    game_over = frame.state.lives <= 0
    reward = (
        jnp.asarray(p.reward_tick, fd)
        + p.reward_positive * frame.events.astype(fd)
        + jnp.where(game_over, p.reward_loss, 0.0).astype(fd)
    )
    state = frame.state.replace(score=frame.state.score + reward, time=frame.state.time + 1)
    return state, reward


def place(state: PixelcopterState, spawn: jax.Array, draws: Draws,
          params: PixelcopterParams) -> PixelcopterState:
    """The frame's random part: the new block if ``spawn`` (step 7), appended after the
    remaining blocks, and a terrain refill if due (step 10): a batch at ABSOLUTE positions,
    appended after the remaining columns."""
    p = params
    it = int_dtype()
    put = spawn & (jnp.arange(MAX_BLOCKS) == state.block_valid.sum())
    bx = jnp.where(put, draws.block_x, state.block_x)
    by = jnp.where(put, draws.block_y, state.block_y)
    b_valid = state.block_valid | put

    nb_refill = batch_size(p)
    n_left = state.terrain_valid.sum(dtype=it)
    batch_x, batch_y = terrain_columns(draws, p.batch_xs(*p.terrain_refill), p)
    j = jnp.arange(MAX_TERRAIN, dtype=it) - n_left
    put = refill_due(state, p) & (j >= 0) & (j < nb_refill)
    jj = jnp.clip(j, 0, nb_refill - 1)
    tx = jnp.where(put, batch_x[jj], state.terrain_x)
    ty = jnp.where(put, batch_y[jj], state.terrain_y)
    t_valid = state.terrain_valid | put
    return state.replace(block_x=bx, block_y=by, block_valid=b_valid,
                         terrain_x=tx, terrain_y=ty, terrain_valid=t_valid)


def start(draws: Draws, params: PixelcopterParams) -> PixelcopterState:
    """A new game from the draws of a reset: the player in the middle, one block, the first
    terrain batch."""
    fd, it = float_dtype(), int_dtype()
    tx, ty = terrain_columns(draws, params.batch_xs(*params.terrain_initial), params)
    nt = tx.shape[0]
    if nt > MAX_TERRAIN:
        raise ValueError(f"terrain batch of {nt} columns exceeds MAX_TERRAIN={MAX_TERRAIN}")
    return PixelcopterState(
        player_y=jnp.asarray(params.height / 2, fd),
        player_vel=jnp.zeros((), fd),
        block_x=jnp.zeros(MAX_BLOCKS, fd).at[0].set(draws.block_x),
        block_y=jnp.zeros(MAX_BLOCKS, it).at[0].set(draws.block_y),
        block_valid=jnp.arange(MAX_BLOCKS) < 1,
        terrain_x=jnp.zeros(MAX_TERRAIN, fd).at[:nt].set(tx),
        terrain_y=jnp.zeros(MAX_TERRAIN, it).at[:nt].set(ty),
        terrain_valid=jnp.arange(MAX_TERRAIN) < nt,
        score=jnp.zeros((), fd),
        lives=jnp.ones((), it),
        time=jnp.zeros((), it),
    )


# ----------------------------------------------------------------------------------------
# the environment


class Pixelcopter(Environment[PixelcopterState, PixelcopterParams]):
    id = "Pixelcopter-PLE-v0"
    observation_size = 7
    num_actions = 2
    #: Positions and distances within the 48 px screen (the terrain's gap is 24 px high), the
    #: velocity within about one pixel per frame.
    observation_range = ((0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 0.0),
                         (float(_H), 1.0, _H / 2, _H / 2, float(_W), float(_H), float(_H)))

    #: Action indices of the real action set ``[K_w, None]``.
    UP = 0
    NOOP = 1

    def default_params(self) -> PixelcopterParams:
        return PixelcopterParams()

    def reset(
        self, key: jax.Array, params: PixelcopterParams
    ) -> tuple[jax.Array, PixelcopterState]:
        state = start(draw(key, params), params)
        return observation(state, params), state

    def step(
        self,
        key: jax.Array,
        state: PixelcopterState,
        action: jax.Array,
        params: PixelcopterParams,
    ) -> tuple[jax.Array, PixelcopterState, jax.Array, jax.Array, jax.Array, dict[str, Any]]:
        p = params
        if p.terrain_refill_threshold + batch_size(p) > MAX_TERRAIN:
            raise ValueError("MAX_TERRAIN is too small for these params")
        frame = advance(state, action, p)
        new, reward = tally(frame.replace(state=remove_columns(frame.state, frame.killed)), p)
        new = place(new, frame.spawn, draw(key, p), p)
        # A finished game does not move any more and pays nothing (like the real driver).
        already_over = state.lives <= 0
        new = jax.tree_util.tree_map(lambda old, nw: jnp.where(already_over, old, nw), state, new)
        reward = jnp.where(already_over, jnp.zeros((), reward.dtype), reward)
        terminated = new.lives <= 0
        truncated = new.time >= p.max_steps_in_episode
        return observation(new, p), new, reward, terminated, truncated, {}

    def autoreset_step(
        self, keys_of: Any, state: PixelcopterState, restart: jax.Array, actions: jax.Array,
        params: PixelcopterParams, size: int = 1,
    ) -> tuple[jax.Array, PixelcopterState, jax.Array, jax.Array, jax.Array]:
        """:meth:`Environment.autoreset_step` (the same numbers), cheaper for a batch: every
        env advances, and only the envs that restart, spawn a block or refill the terrain (a
        few in a hundred frames) draw their random numbers: the restarting ones ``size`` at a
        time, the others half as many at a time."""
        p = params
        over = state.lives <= 0
        frame = jax.vmap(advance, in_axes=(0, 0, None))(state, actions, p)
        frame = frame.replace(state=_remove_columns_batch(frame.state, frame.killed))
        tallied, reward = jax.vmap(tally, in_axes=(0, None))(frame, p)

        def new_games(idx, rows):
            return jax.vmap(start, in_axes=(0, None))(
                jax.vmap(draw, in_axes=(0, None))(keys_of(idx), p), p)

        def placed(idx, rows):
            draws = jax.vmap(draw, in_axes=(0, None))(keys_of(idx), p)
            return jax.vmap(place, in_axes=(0, 0, 0, None))(rows, frame.spawn[idx], draws, p)

        new = update_rows(restart, size, new_games, tallied)
        drawing = ~restart & ~over & (frame.spawn | jax.vmap(refill_due, (0, None))(tallied, p))
        new = update_rows(drawing, max(1, size // 2), placed, new)
        # A finished game does not move any more and pays nothing (see step); a vector env
        # restarts every finished game, so this is seldom needed.
        frozen = over & ~restart
        new = lax.cond(frozen.any(), lambda: where_rows(frozen, state, new), lambda: new)
        reward = jnp.where(restart | frozen, jnp.zeros((), reward.dtype), reward)
        terminated = ~restart & (new.lives <= 0)
        truncated = ~restart & (new.time >= p.max_steps_in_episode)
        return _observations(new, p), new, reward, terminated, truncated

    @staticmethod
    def observation(state: PixelcopterState, params: PixelcopterParams) -> jax.Array:
        return observation(state, params)

    @staticmethod
    def observation_f(state: PixelcopterState, params: PixelcopterParams) -> jax.Array:
        return observation_f(state, params)

    def render(self, state: PixelcopterState, params: PixelcopterParams) -> jax.Array:
        """The 48 x 48 RGB screen ``uint8[y, x, rgb]`` drawn from `state`.

        Black background, then the player (white 2 x 2), the blocks and the terrain columns
        (green 4 x 72 images whose rows ``[24, 50)`` are transparent), at their integer
        rects, clipped to the screen. All blocks and columns share one colour, so a pixel is
        green if any of them covers it, else white if the player does, else black.
        """
        ys, xs = jnp.arange(params.height), jnp.arange(params.width)

        def spans(r, valid, rows=None):
            """The screen rows ``bool[n, H]`` and columns ``bool[n, W]`` each rect covers: a
            rect covers the pixels in both, so drawing is separable."""
            x0, y0 = r[:, 0, None], r[:, 1, None]
            w, h = r[:, 2, None], r[:, 3, None]
            cols = (xs >= x0) & (xs < x0 + w) & valid[:, None]
            rws = (ys >= y0) & (ys < y0 + h)
            if rows is not None:  # transparent image rows [rows[0], rows[1])
                rws = rws & ((ys - y0 < rows[0]) | (ys - y0 >= rows[1]))
            return rws, cols

        def covered(*parts):
            """``bool[H, W]``: the pixels any of the rects covers. Counting the rects over
            each pixel is a product of the 0/1 masks (exact in float32), far cheaper than
            testing every rect at every pixel."""
            rws = jnp.concatenate([p[0] for p in parts]).astype(jnp.float32)
            cols = jnp.concatenate([p[1] for p in parts]).astype(jnp.float32)
            return jnp.einsum("ny,nx->yx", rws, cols, precision=lax.Precision.HIGHEST) > 0

        player = covered(spans(player_rect(state, params)[None], jnp.ones((1,), bool)))
        green = covered(spans(block_rects(state, params), state.block_valid),
                        spans(terrain_rects(state, params), state.terrain_valid,
                              params.terrain_image_gap))
        frame = jnp.where(player[..., None], jnp.asarray(WHITE), jnp.zeros(3, jnp.uint8))
        return jnp.where(green[..., None], jnp.asarray(GREEN), frame)


# ----------------------------------------------------------------------------------------
# recorded traces


def state_from_snapshot(
    arrays: dict[str, np.ndarray], snap_index: Any, time: Any = 0
) -> PixelcopterState:
    """A `PixelcopterState` from internal-state snapshot(s) of a recorded trace of the real game.

    `arrays` is ``dict(np.load("pixelcopter_seed*.npz"))`` (``snap_*`` arrays: player y and
    velocity, score, lives, blocks and terrain columns in list order with NaN padding).
    `snap_index` is an int or an integer array; the state's leading dimensions follow its
    shape, so an array of indices gives a batch for ``jax.vmap``. Values are cast to JAX's
    current float/int dtypes (exact in x64 mode). `time` (steps into the episode) is not part
    of the snapshots and defaults to 0.
    """
    fd, it = float_dtype(), int_dtype()
    idx = np.asarray(snap_index)

    def table(name_x, name_y, name_n, cap):
        n = np.asarray(arrays[name_n][idx])
        x = np.asarray(arrays[name_x][idx], np.float64)
        y = np.asarray(arrays[name_y][idx], np.float64)
        if np.any(n > cap):
            raise ValueError(f"{name_n} exceeds the capacity {cap}")
        width = min(x.shape[-1], cap)
        pad = [(0, 0)] * (x.ndim - 1) + [(0, cap - width)]
        x = np.pad(x[..., :width], pad)
        y = np.pad(y[..., :width], pad)
        valid = np.arange(cap) < n[..., None]
        x = np.where(valid, x, 0.0)
        y = np.where(valid, y, 0.0)
        return (jnp.asarray(x, fd), jnp.asarray(np.rint(y).astype(np.int64), it),
                jnp.asarray(valid))

    bx, by, bv = table("snap_block_x", "snap_block_y", "snap_n_blocks", MAX_BLOCKS)
    tx, ty, tv = table("snap_terrain_x", "snap_terrain_y", "snap_n_terrain", MAX_TERRAIN)
    lives = np.asarray(arrays["snap_lives"][idx], np.float64)
    if not np.all(lives == np.floor(lives)):
        raise ValueError("non-integer lives in snapshot")
    return PixelcopterState(
        player_y=jnp.asarray(arrays["snap_player_y"][idx], fd),
        player_vel=jnp.asarray(arrays["snap_player_vel"][idx], fd),
        block_x=bx, block_y=by, block_valid=bv,
        terrain_x=tx, terrain_y=ty, terrain_valid=tv,
        score=jnp.asarray(arrays["snap_score"][idx], fd),
        lives=jnp.asarray(lives.astype(np.int64), it),
        time=jnp.broadcast_to(jnp.asarray(time, it), idx.shape),
    )


__all__ = [
    "GREEN", "MAX_BLOCKS", "MAX_TERRAIN", "Collisions", "Draws", "Frame", "Pixelcopter",
    "PixelcopterParams", "PixelcopterState", "advance", "batch_size", "block_rects",
    "collisions", "column_span", "draw", "observation", "observation_f", "observed_column",
    "place", "player_rect", "refill_due", "remove_columns", "round_half_away", "start",
    "state_from_snapshot", "tally", "terrain_columns", "terrain_rects", "WHITE",
]
