"""Unit tests of the JAX Pixelcopter (rules from the reference description of the real game)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from reinforce.envs import pixelcopter as pc
from reinforce.envs.pixelcopter import (
    MAX_BLOCKS,
    MAX_TERRAIN,
    Pixelcopter,
    PixelcopterParams,
    PixelcopterState,
    observation_f,
    player_rect,
    round_half_away,
    terrain_rects,
)

ENV = Pixelcopter()
PARAMS = ENV.default_params()
GREEN = np.array([120, 240, 80], np.uint8)

_reset = jax.jit(ENV.reset)
_step = jax.jit(ENV.step)
_render = jax.jit(ENV.render)


def _state(
    y=24.0, vel=0.0, blocks=((40.0, 24),), terrain=None, lives=1, score=0.0
) -> PixelcopterState:
    """A hand-made state: blocks and terrain columns given as (x, y) in list order."""
    if terrain is None:
        terrain = [(2.0 + 4 * i, 24) for i in range(48)]
    bx = np.zeros(MAX_BLOCKS)
    by = np.zeros(MAX_BLOCKS, int)
    bx[: len(blocks)] = [b[0] for b in blocks]
    by[: len(blocks)] = [b[1] for b in blocks]
    tx = np.zeros(MAX_TERRAIN)
    ty = np.zeros(MAX_TERRAIN, int)
    tx[: len(terrain)] = [t[0] for t in terrain]
    ty[: len(terrain)] = [t[1] for t in terrain]
    fd = jnp.float64 if jax.config.read("jax_enable_x64") else jnp.float32
    it = jnp.int64 if jax.config.read("jax_enable_x64") else jnp.int32
    return PixelcopterState(
        player_y=jnp.asarray(y, fd), player_vel=jnp.asarray(vel, fd),
        block_x=jnp.asarray(bx, fd), block_y=jnp.asarray(by, it),
        block_valid=jnp.arange(MAX_BLOCKS) < len(blocks),
        terrain_x=jnp.asarray(tx, fd), terrain_y=jnp.asarray(ty, it),
        terrain_valid=jnp.arange(MAX_TERRAIN) < len(terrain),
        score=jnp.asarray(score, fd), lives=jnp.asarray(lives, it), time=jnp.zeros((), it),
    )


def test_interface():
    assert ENV.id == "Pixelcopter-PLE-v0"
    assert (ENV.observation_size, ENV.num_actions) == (7, 2)
    assert isinstance(PARAMS, PixelcopterParams)
    assert PARAMS.scroll == 0.6400000000000001
    assert PARAMS.climb * PARAMS.dt == -0.5600000000000002
    assert PARAMS.fall * PARAMS.dt == 0.05760000000000001
    assert PARAMS.player_size == 2.4000000000000004
    assert PARAMS.max_steps_in_episode >= 2**31 - 1


def test_reset_state():
    for seed in range(3):
        obs, s = _reset(jax.random.key(seed), PARAMS)
        assert obs.shape == (7,) and obs.dtype == jnp.float32
        assert float(s.player_y) == 24.0 and float(s.player_vel) == 0.0
        assert int(s.block_valid.sum()) == 1 and bool(s.block_valid[0])
        bx, by = float(s.block_x[0]), int(s.block_y[0])
        assert bx == int(bx) and 48 <= bx < 72 and 12 <= by < 36
        assert int(s.terrain_valid.sum()) == 48 and bool(s.terrain_valid[:48].all())
        np.testing.assert_array_equal(s.terrain_x[:48], np.arange(2, 191, 4))
        ty = np.asarray(s.terrain_y[:48])
        assert ty.min() >= 18 and ty.max() <= 30
        # Current column: columns at x=14 (index 3) and x=18 overlap the player; the first wins.
        pr, tr = np.asarray(player_rect(s, PARAMS)), np.asarray(terrain_rects(s, PARAMS))
        np.testing.assert_array_equal(pr, [15, 23, 2, 2])
        overlapping = np.flatnonzero((tr[:48, 0] < pr[0] + 2) & (pr[0] < tr[:48, 0] + 4))
        np.testing.assert_array_equal(overlapping, [3, 4])
        np.testing.assert_allclose(
            obs, [24, 0, 24 - (ty[3] - 12), ty[3] + 12 - 24, bx - 16, by, by + 9]
        )
        assert float(s.score) == 0.0 and int(s.lives) == 1 and int(s.time) == 0


def test_round_half_away_from_zero():
    with jax.enable_x64(True):
        v = jnp.array([0.49999999999999994, 0.5, 2.5, -2.5, 22.5, 1.4999999999999998, -0.5, 3.0])
        np.testing.assert_array_equal(round_half_away(v), [0, 1, 3, -3, 23, 1, -1, 3])
    v = jnp.array([0.49999997, 0.5, 2.5, -2.5, 22.5, -0.49999997], jnp.float32)
    np.testing.assert_array_equal(round_half_away(v), [0, 1, 3, -3, 23, 0])


def test_first_overlapping_column_in_list_order():
    # The column at x=18 was created before the one at x=14: it defines the observation.
    terrain = [(18.0, 20), (14.0, 28)] + [(30.0 + 4 * i, 24) for i in range(20)]
    s = _state(y=24.0, terrain=terrain)
    obs = np.asarray(observation_f(s, PARAMS))
    np.testing.assert_allclose(obs[2:4], [24 - (20 - 12), (20 + 12) - 24])


def test_float64_step_matches_python_arithmetic():
    """One frame by hand in Python floats (the game's arithmetic) vs the x64 step."""
    with jax.enable_x64(True):
        s = _state(y=21.7, vel=-0.3, blocks=((40.3, 30),))
        for action in (0, 1):
            obs, new, reward, term, trunc, _ = jax.jit(ENV.step)(
                jax.random.key(0), s, action, PARAMS
            )
            acc = -0.016800000000000002 if action == 0 else 0.0017280000000000002
            vel = (-0.3 + acc * (1000.0 / 30)) * 0.99
            y = 21.7 + vel
            assert float(new.player_vel) == vel and float(new.player_y) == y
            assert float(new.block_x[0]) == 40.3 - 0.6400000000000001
            np.testing.assert_array_equal(
                new.terrain_x[:48], np.arange(2, 191, 4) - 0.6400000000000001
            )
            assert new.player_y.dtype == jnp.float64 and obs.dtype == jnp.float32
            assert float(reward) == 0.0 and not bool(term) and not bool(trunc)


def test_block_pass_spawns_new_block_last():
    s = _state(blocks=((16.5, 35),))
    obs, new, reward, term, _, _ = _step(jax.random.key(3), s, 1, PARAMS)
    assert float(reward) == 1.0 and not bool(term)
    assert int(new.block_valid.sum()) == 2
    assert float(new.block_x[0]) == pytest.approx(16.5 - 0.64)
    nx, ny = float(new.block_x[1]), int(new.block_y[1])
    assert nx == int(nx) and 48 <= nx < 72 and 12 <= ny < 36
    np.testing.assert_allclose(obs[4:], [nx - 16, ny, ny + 9])
    # Next frame: two blocks, so no second pass; a block behind x <= -4 is removed, no reward.
    s2 = _state(blocks=((-3.5, 20), (30.0, 20)))
    _, new2, reward2, _, _, _ = _step(jax.random.key(4), s2, 1, PARAMS)
    assert float(reward2) == 0.0 and int(new2.block_valid.sum()) == 1
    assert float(new2.block_x[0]) == pytest.approx(30.0 - 0.64)


def test_terrain_removal_and_refill_threshold():
    # 14 columns, the first scrolls off: 13 left -> refill of 48 at absolute x = 50..238.
    terrain = [(-3.5, 24)] + [(2.0 + 4 * i, 24) for i in range(13)]
    _, new, reward, term, _, _ = _step(jax.random.key(0), _state(terrain=terrain), 1, PARAMS)
    assert float(reward) == 1.0 and not bool(term)
    assert int(new.terrain_valid.sum()) == 13 + 48
    np.testing.assert_allclose(new.terrain_x[:13], np.arange(2, 53, 4) - 0.64, atol=1e-5)
    np.testing.assert_array_equal(new.terrain_x[13:61], np.arange(50, 239, 4))
    assert int(new.terrain_y[13:61].min()) >= 18 and int(new.terrain_y[13:61].max()) <= 30
    # 15 columns, one removed: 14 left -> no refill.
    terrain = [(-3.5, 24)] + [(2.0 + 4 * i, 24) for i in range(14)]
    _, new, reward, _, _, _ = _step(jax.random.key(0), _state(terrain=terrain), 1, PARAMS)
    assert float(reward) == 1.0 and int(new.terrain_valid.sum()) == 14


def test_single_loss_on_game_over_and_frozen_afterwards():
    # Ceiling hit and block hit in the same frame: two lives lost, one -5.
    terrain = [(2.0 + 4 * i, 30) for i in range(48)]  # ceiling at 18
    s = _state(y=19.0, vel=0.0, blocks=((16.5, 19),), terrain=terrain)
    obs, new, reward, term, _, _ = _step(jax.random.key(0), s, 0, PARAMS)
    assert bool(term) and int(new.lives) == -1 and float(reward) == -5.0 + 1.0  # block passed
    # Stepping a finished game changes nothing and pays 0.
    obs2, new2, reward2, term2, _, _ = _step(jax.random.key(1), new, 1, PARAMS)
    assert bool(term2) and float(reward2) == 0.0
    np.testing.assert_array_equal(obs2, obs)
    for a, b in zip(jax.tree_util.tree_leaves(new), jax.tree_util.tree_leaves(new2), strict=True):
        np.testing.assert_array_equal(a, b)


def test_truncation_by_params():
    params = PixelcopterParams(max_steps_in_episode=2)
    _, s = _reset(jax.random.key(0), params)
    truncs = []
    for _ in range(2):
        _, s, _, _, trunc, _ = jax.jit(ENV.step)(jax.random.key(0), s, 0, params)
        truncs.append(bool(trunc))
    assert truncs == [False, True]


def _episode_lengths(action: int, keys: jax.Array, n_steps: int = 40) -> np.ndarray:
    def one(key):
        _, s = ENV.reset(key, PARAMS)

        def body(carry, k):
            s, done, length = carry
            _, s, _, term, _, _ = ENV.step(k, s, action, PARAMS)
            length = length + (~done).astype(jnp.int32)
            return (s, done | term, length), None

        (_, done, length), _ = jax.lax.scan(
            body, (s, jnp.bool_(False), jnp.int32(0)), jax.random.split(key, n_steps)
        )
        return jnp.where(done, length, -1)

    return np.asarray(jax.jit(jax.vmap(one))(keys))


def test_all_up_and_all_noop_episode_lengths():
    keys = jax.random.split(jax.random.key(7), 16)
    up = _episode_lengths(Pixelcopter.UP, keys)
    noop = _episode_lengths(Pixelcopter.NOOP, keys)
    assert np.all((up >= 4) & (up <= 5)), up
    assert np.all((noop >= 18) & (noop <= 24)), noop


def test_batched_random_rollout_no_nan():
    n, steps = 64, 200
    step = jax.vmap(ENV.step, in_axes=(0, 0, 0, None))
    reset = jax.vmap(ENV.reset, in_axes=(0, None))

    @jax.jit
    def rollout(key):
        key, k = jax.random.split(key)
        obs, state = reset(jax.random.split(k, n), PARAMS)

        def body(carry, _):
            key, state = carry
            key, ka, ks, kr = jax.random.split(key, 4)
            actions = jax.random.randint(ka, (n,), 0, 2)
            obs, state, reward, term, trunc, _ = step(jax.random.split(ks, n), state, actions,
                                                      PARAMS)
            _, fresh = reset(jax.random.split(kr, n), PARAMS)
            state = jax.tree_util.tree_map(
                lambda f, s: jnp.where(term.reshape((-1,) + (1,) * (s.ndim - 1)), f, s),
                fresh, state,
            )
            return (key, state), (obs, reward, term)

        _, out = jax.lax.scan(body, (key, state), None, length=steps)
        return out

    obs, reward, term = rollout(jax.random.key(0))
    assert obs.shape == (steps, n, 7) and obs.dtype == jnp.float32
    assert np.isfinite(np.asarray(obs)).all() and np.isfinite(np.asarray(reward)).all()
    assert int(term.sum()) > 0
    assert set(np.unique(np.asarray(reward)).tolist()) <= {-5.0, -4.0, 0.0, 1.0, 2.0}


def test_determinism_same_key_same_trajectory():
    def run(seed):
        key = jax.random.key(seed)
        key, k = jax.random.split(key)
        obs, s = _reset(k, PARAMS)
        traj = [np.asarray(obs)]
        actions = np.random.default_rng(0).integers(0, 2, 30)
        for a in actions:
            key, k = jax.random.split(key)
            obs, s, r, term, _, _ = _step(k, s, a, PARAMS)
            traj.append(np.concatenate([np.asarray(obs), [float(r), float(term)]]))
        return traj

    a, b, c = run(5), run(5), run(6)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], c[0])


def test_render_initial_state():
    _, s = _reset(jax.random.key(0), PARAMS)
    frame = np.asarray(_render(s, PARAMS))
    assert frame.shape == (48, 48, 3) and frame.dtype == np.uint8
    # Player: white 2 x 2 at rows 23..24, cols 15..16 (not covered: columns are open there).
    np.testing.assert_array_equal(frame[23:25, 15:17], 255)
    assert (frame == 255).all(-1).sum() == 4
    # Terrain: green at the top and bottom, transparent gap [ty - 12, ty + 14) in between.
    ty = int(s.terrain_y[0])
    col = frame[:, 0]  # column at x=2 covers screen x 0..3
    green = (col == GREEN).all(-1)
    np.testing.assert_array_equal(np.flatnonzero(~green), np.arange(ty - 12, ty + 14))
    # Block: green 4 x 9 if on screen (spawned at x >= 48, so at most 2 columns visible).
    bx = int(s.block_x[0])
    assert bx >= 48



@pytest.mark.parametrize("x64", [False, True])
def test_overlap_by_span_is_the_rect_test(x64):
    """The two comparisons of ``column_span`` decide exactly what the rect test decides, for
    columns at and next to the span's ends (in both precisions) and players far off."""
    with jax.enable_x64(x64):
        fd = jnp.float64 if x64 else jnp.float32
        lo, hi = pc.column_span(PARAMS)
        edges = [v for e in map(fd, (lo, hi, lo - 1, hi + 1, 14.5, 17.5))
                 for v in (np.nextafter(e, fd(-np.inf)), e, np.nextafter(e, fd(np.inf)))]
        rng = np.random.default_rng(0)
        xs = np.concatenate([edges, rng.uniform(-6, 60, 64 - len(edges))]).astype(fd)
        checked = 0
        for y in (24.0, 5.6, -13.5, 59.4, 62.6, 24.4999):
            s = _state(y=y, terrain=[(float(x), int(t)) for x, t in
                                     zip(xs, rng.integers(18, 31, 64), strict=True)])
            s = s.replace(terrain_x=jnp.asarray(xs, fd))
            pr, tr = player_rect(s, PARAMS), terrain_rects(s, PARAMS)
            by_rects = s.terrain_valid & pc._overlap(pr[0], pr[1], pr[2], pr[3], tr[:, 0],
                                                     tr[:, 1], tr[:, 2], tr[:, 3])
            np.testing.assert_array_equal(pc._overlapping_columns(s, PARAMS), by_rects)
            checked += int(by_rects.sum())
        assert checked > 10


def test_observed_column_first_overlapping_else_first_nearest():
    """The plain-minimum reductions pick what argmax / argmin pick: the first overlapping
    column in list order, else the first of the nearest valid columns, else 0."""
    cases = [
        [(18.0, 20), (14.0, 28), (16.0, 22)],  # all overlap: the first
        [(40.0, 20), (16.0, 28), (15.0, 22)],  # the second
        [(30.0, 20), (2.0, 28), (30.0, 22)],  # none: the nearest, ties to the first
        [(-3.0, 20), (34.0, 28)],  # none: the nearest
    ]
    expected = [0, 1, 0, 1]
    for terrain, want in zip(cases, expected, strict=True):
        s = _state(terrain=terrain)
        assert int(pc.observed_column(s, PARAMS)) == want, terrain
        over = pc._overlapping_columns(s, PARAMS)
        nearest = jnp.argmin(jnp.where(s.terrain_valid, jnp.abs(s.terrain_x - 16), jnp.inf))
        assert want == int(jnp.where(over.any(), jnp.argmax(over), nearest))
    empty = _state(terrain=[])
    assert int(pc.observed_column(empty, PARAMS)) == 0
