"""The host Pixelcopter (``reinforce.envs.pixelcopter_host``, what ``Pixelcopter-PLE-v0`` steps)
against the real game's traces, against the JAX port, and as a gymnasium env.

Traces: every step row of every trace file (``tests/data/pixelcopter`` or
``$REINFORCE_REFERENCE_DIR/pixelcopter``) is stepped from its recorded internal state. The host
rules draw from any generator with ``integers`` and ``uniform``; given the game's own
``RandomState`` in its recorded state, they draw the same numbers, so every row is compared in
full, spawned blocks and terrain included, and so is the generator's state afterwards (the
same number of draws). Rows where the game drew nothing get a generator that fails on any draw.
Whole recorded episodes are replayed from their resets as well.

JAX port: the same states and actions through both (JAX in 64-bit mode against float64, in
its default 32-bit mode against ``dtype=np.float32``): equal, to the bit, except the objects
drawn from the two different random streams; the same frames.
"""

from __future__ import annotations

import warnings

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from traces import CountingRng, NoDraws, game_rng, trace_files

import reinforce  # noqa: F401  (registers Pixelcopter-PLE-v0)
from reinforce.envs import pixelcopter_host as host
from reinforce.envs.gym_wrapper import PixelcopterEnv
from reinforce.envs.pixelcopter import Pixelcopter, PixelcopterParams

TRACE_FILES = trace_files("pixelcopter")
PARAMS = PixelcopterParams()
ENV = Pixelcopter()


def _rng_state(rng) -> tuple:
    _, key, pos, _, _ = rng.state.get_state()
    return key.tobytes(), pos


def _bad(rows: list[int], what: str) -> str:
    return f"{len(rows)} rows differ in {what}, first {rows[:5]}"


def test_traces_present():
    assert TRACE_FILES, "no Pixelcopter traces (*.npz)"


@pytest.mark.parametrize("path", TRACE_FILES, ids=[p.stem for p in TRACE_FILES])
def test_trace_rows_float64_bit_for_bit(path):
    d = dict(np.load(path))
    bad: dict[str, list[int]] = {k: [] for k in (
        "observation before", "state after", "observation after", "float32 observation",
        "reward", "terminated", "rects", "draws")}
    stepped = {}
    frame_rows = set(d["frame_row"].tolist())
    for i, action in enumerate(d["action"].tolist()):
        pre, post = d["pre_snap"][i], d["post_snap"][i]
        state = host.state_from_snapshot(d, pre, time=10)
        if host.observation_f(state, PARAMS) != tuple(d["obs"][i]):
            bad["observation before"].append(i)
        rng = game_rng(d, d["snap_rng_idx"][pre]) if d["rng_consumed"][i] else NoDraws()
        new, reward, terminated, truncated, columns = host.step(rng, state, action, PARAMS)
        assert not truncated
        if new != host.state_from_snapshot(d, post, time=11):
            bad["state after"].append(i)
        if host.observation_f(new, PARAMS, columns) != tuple(d["next_obs"][i]):
            bad["observation after"].append(i)
        obs = host.observation(new, PARAMS, columns)
        if not (np.array_equal(obs, d["next_obs_f32"][i])
                and np.array_equal(obs, host.observation(new, PARAMS))):
            bad["float32 observation"].append(i)
        if reward != d["reward"][i]:
            bad["reward"].append(i)
        if terminated != d["terminated"][i]:
            bad["terminated"].append(i)
        nb, nt = d["snap_n_blocks"][post], d["snap_n_terrain"][post]
        if not (host.player_rect(new, PARAMS) == tuple(d["snap_player_rect"][post])
                and np.array_equal(host.block_rects(new, PARAMS),
                                   d["snap_block_rect"][post, :nb].reshape(-1, 4))
                and np.array_equal(np.array(host.terrain_rects(new, PARAMS))[:, :2],
                                   d["snap_terrain_rect_xy"][post, :nt])):
            bad["rects"].append(i)
        if d["rng_consumed"][i] and _rng_state(rng) != _rng_state(
                game_rng(d, d["snap_rng_idx"][post])):
            bad["draws"].append(i)
        if i in frame_rows:
            stepped[i] = new
    problems = [_bad(rows, what) for what, rows in bad.items() if rows]
    assert not problems, problems
    # Frames: the recorded post-step states and our stepped ones, pixel for pixel.
    for k, row in enumerate(d["frame_row"].tolist()):
        frame = d["frames"][k]
        np.testing.assert_array_equal(
            host.render(host.state_from_snapshot(d, d["post_snap"][row]), PARAMS), frame)
        np.testing.assert_array_equal(host.render(stepped[row], PARAMS), frame)


@pytest.mark.parametrize("path", TRACE_FILES, ids=[p.stem for p in TRACE_FILES])
def test_trace_rows_float32_within_tolerance(path):
    d = dict(np.load(path))
    errors, bad = [], []
    for i, action in enumerate(d["action"].tolist()):
        pre = d["pre_snap"][i]
        state = host.state_from_snapshot(d, pre, np.float32)
        assert type(state.player_y) is np.float32
        rng = game_rng(d, d["snap_rng_idx"][pre]) if d["rng_consumed"][i] else NoDraws()
        new, reward, terminated, _, columns = host.step(rng, state, action, PARAMS)
        assert type(new.player_y) is np.float32 and type(reward) is np.float32
        obs = host.observation(new, PARAMS, columns)
        errors.append(np.abs(obs.astype(np.float64) - d["next_obs"][i]).max())
        if reward != d["reward"][i] or terminated != d["terminated"][i]:
            bad.append(i)
    print(f"{path.stem}: float32 max observation error {max(errors):.3g}")
    assert max(errors) <= 1e-4
    assert not bad, _bad(bad, "reward or terminated")


@pytest.mark.parametrize("path", TRACE_FILES, ids=[p.stem for p in TRACE_FILES])
def test_recorded_episodes_replay_from_their_resets(path):
    """Whole episodes from the reset, the game's generator and the recorded actions alone:
    no recorded state is loaded after the reset."""
    d = dict(np.load(path))
    for e, first in enumerate(d["ep_first_row"].tolist()):
        rng = game_rng(d, d["ep_rng_before_reset_idx"][e])
        # gym-games' reset(seed=s) seeds the generator, then initialises the game twice.
        for _ in range(2 if d["ep_reset_seed"][e] >= 0 else 1):
            state = host.reset(rng, PARAMS)
        assert host.observation_f(state, PARAMS) == tuple(d["ep_reset_obs"][e]), f"episode {e}"
        rows = range(first, first + d["ep_length"][e])
        for i in rows:
            state, reward, terminated, _, columns = host.step(rng, state, d["action"][i], PARAMS)
            where = f"episode {e}, row {i}"
            assert host.observation_f(state, PARAMS, columns) == tuple(d["next_obs"][i]), where
            assert (reward, terminated) == (d["reward"][i], d["terminated"][i]), where
        assert terminated == d["ep_terminated"][e]


# ----------------------------------------------------------------------------------------
# the same states through the JAX port


def _edge_states(dtype) -> list[host.PixelcopterHostState]:
    """Hand-made states the traces do not hold: a column created earlier that lies to the right
    of a later one under the player, blocks half off the screen on both sides, a finished
    game, a hit on a block and the ceiling in one frame, a state that refills, a column that
    leaves the screen behind one created earlier."""
    f = host.scalar_type(dtype)
    columns = [(2.0 + 4 * i, 24) for i in range(48)]

    def state(y=24.0, vel=0.0, blocks=((40.0, 24),), terrain=columns, lives=1):
        return host.PixelcopterHostState(
            f(y), f(vel), [f(x) for x, _ in blocks], [b for _, b in blocks],
            [f(x) for x, _ in terrain], [t for _, t in terrain], f(3.0), lives, 5)

    return [
        state(terrain=[(18.0, 20), (14.0, 28)] + [(30.0 + 4 * i, 24) for i in range(20)]),
        state(blocks=((-1.5, 10), (47.5, 33))),
        state(y=30.0, lives=0),
        state(y=19.0, blocks=((16.5, 19),), terrain=[(2.0 + 4 * i, 30) for i in range(48)]),
        state(terrain=[(-3.5, 24)] + [(2.0 + 4 * i, 24) for i in range(13)]),
        state(terrain=[(30.0, 24), (-3.7, 22)] + [(2.0 + 4 * i, 24) for i in range(20)]),
        state(y=41.9, vel=2.5),
    ]


def _host_pairs(dtype, n_episodes=40, seed=0):
    """(state, action) pairs: host episodes whose actions keep the player near the middle of
    the gap (90%, else random), the recorded states and actions of a trace (its long episodes
    refill the terrain), and the edge states."""
    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(n_episodes):
        state = host.reset(rng, PARAMS, dtype)
        for _ in range(400):
            obs = host.observation(state, PARAMS)
            below_middle = obs[3] < obs[2] and obs[1] > -1.0
            action = int(rng.integers(2)) if rng.random() < 0.1 else int(not below_middle)
            pairs.append((state, action))
            state, _, terminated, _, _ = host.step(rng, state, action, PARAMS)
            if terminated:
                pairs.append((state, action))  # stepping a finished game
                break
    d = dict(np.load(TRACE_FILES[seed % len(TRACE_FILES)]))
    pairs += [(host.state_from_snapshot(d, d["pre_snap"][i], dtype), int(d["action"][i]))
              for i in range(0, len(d["action"]), 3)]
    return pairs + [(s, a) for s in _edge_states(dtype) for a in (0, 1)]


def _stack(states):
    """A batch of JAX states (stacked in numpy: one transfer per leaf)."""
    return jax.tree.map(lambda *leaves: jnp.asarray(np.stack([np.asarray(a) for a in leaves])),
                        *states)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_host_step_equals_jax_step(dtype):
    """From the same state and action, the same frame: bit for bit (float64 against JAX's
    64-bit mode, float32 against its default mode), except what the two random streams draw."""
    pairs = _host_pairs(dtype)
    x64 = dtype == np.float64
    with jax.enable_x64(x64):
        batch = _stack([host.to_jax(s) for s, _ in pairs])
        actions = jnp.asarray([a for _, a in pairs])
        keys = jax.random.split(jax.random.key(0), len(pairs))
        obs, new, reward, terminated, truncated, _ = jax.jit(
            jax.vmap(ENV.step, in_axes=(0, 0, 0, None)))(keys, batch, actions, PARAMS)
        obs_pre = jax.vmap(ENV.observation_f, in_axes=(0, None))(batch, PARAMS)
        obs, obs_pre, new, reward, terminated, truncated = jax.tree.map(
            np.asarray, (obs, obs_pre, new, reward, terminated, truncated))
    n_drawn = 0
    for i, (state, action) in enumerate(pairs):
        where = f"pair {i}"
        np.testing.assert_array_equal(host.observation_f(state, PARAMS), obs_pre[i], where)
        rng = CountingRng(i)
        h_new, h_reward, h_term, h_trunc, columns = host.step(rng, state, action, PARAMS)
        j_new = host.from_jax(jax.tree.map(lambda a, i=i: a[i], new), dtype)
        h_obs = host.observation(h_new, PARAMS, columns)
        assert (h_reward, h_term, h_trunc) == (reward[i], terminated[i], truncated[i]), where
        spawned, refilled = rng.integers_calls > 0, rng.uniform_calls > 0
        n_drawn += spawned or refilled
        if spawned:  # the new block (last) and the next gate are drawn
            assert len(h_new.block_x) == len(j_new.block_x), where
            h_new.block_x, h_new.block_y = h_new.block_x[:-1], h_new.block_y[:-1]
            j_new.block_x, j_new.block_y = j_new.block_x[:-1], j_new.block_y[:-1]
            h_obs, j_obs = h_obs[:4], obs[i, :4]
        else:
            j_obs = obs[i]
        if refilled:  # the new batch's gaps are drawn (its x positions are not)
            assert h_new.terrain_x[-48:] == j_new.terrain_x[-48:], where
            h_new.terrain_y, j_new.terrain_y = h_new.terrain_y[:-48], j_new.terrain_y[:-48]
        assert h_new == j_new, where
        np.testing.assert_array_equal(h_obs, j_obs, where)
    assert len(pairs) > 2000 and n_drawn > 20


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_host_render_equals_jax_render(dtype):
    states = [s for s, a in _host_pairs(dtype, n_episodes=10, seed=1)][::3]
    with jax.enable_x64(dtype == np.float64):
        frames = np.asarray(jax.jit(jax.vmap(ENV.render, in_axes=(0, None)))(
            _stack([host.to_jax(s) for s in states]), PARAMS))
    for i, state in enumerate(states):
        np.testing.assert_array_equal(host.render(state, PARAMS), frames[i], f"state {i}")


def test_jax_round_trip():
    for state, _ in _host_pairs(np.float64, n_episodes=3):
        with jax.enable_x64(True):
            assert host.from_jax(host.to_jax(state)) == state


def test_round_half_away_from_zero():
    cases = {0.49999999999999994: 0, 0.5: 1, 2.5: 3, -2.5: -3, 22.5: 23,
             1.4999999999999998: 1, -0.5: -1, 3.0: 3, -0.49999999999999994: 0}
    for v, expected in cases.items():
        assert host.round_half_away(v) == expected, v
    assert host.round_half_away(np.float32(0.49999997)) == 0
    assert host.round_half_away(np.float32(-2.5)) == -3


# ----------------------------------------------------------------------------------------
# the gymnasium view


def test_env_checker_and_spaces():
    env = gymnasium.make("Pixelcopter-PLE-v0", render_mode="rgb_array")
    assert isinstance(env.unwrapped, PixelcopterEnv)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped)
    other = [str(w.message) for w in caught if "infinity" not in str(w.message)]
    assert not other, other
    assert env.observation_space == gymnasium.spaces.Box(-np.inf, np.inf, (7,), np.float32)
    assert env.action_space == gymnasium.spaces.Discrete(2)


def _episode(env, seed, p_up=0.5, action_seed=0):
    rng = np.random.default_rng(action_seed)
    obs, info = env.reset(seed=seed)
    assert info == {}
    observations, rewards = [obs], []
    while True:
        obs, reward, terminated, truncated, info = env.step(int(rng.random() >= p_up))
        assert obs.dtype == np.float32 and type(reward) is float and info == {}
        observations.append(obs)
        rewards.append(reward)
        if terminated or truncated:
            assert terminated and not truncated
            return np.stack(observations), np.array(rewards)


def test_same_seed_same_episode():
    env = gymnasium.make("Pixelcopter-PLE-v0")
    obs_a, rew_a = _episode(env, seed=3)
    obs_b, rew_b = _episode(gymnasium.make("Pixelcopter-PLE-v0"), seed=3)
    np.testing.assert_array_equal(obs_a, obs_b)
    np.testing.assert_array_equal(rew_a, rew_b)
    assert rew_a[-1] in (-5.0, -4.0) and obs_a[0, 0] == 24.0 and obs_a[0, 1] == 0.0
    np.testing.assert_array_equal(_episode(env, seed=3)[0], obs_a)
    assert not np.array_equal(env.reset(seed=4)[0], obs_a[0])
    # Without a seed, reset continues the generator: another start.
    first, _ = env.reset(seed=3)
    assert not np.array_equal(env.reset()[0], first)


def test_float32_view_follows_the_float64_view():
    obs64, rew64 = _episode(gymnasium.make("Pixelcopter-PLE-v0"), seed=5, p_up=0.45)
    obs32, rew32 = _episode(gymnasium.make("Pixelcopter-PLE-v0", dtype=np.float32), seed=5,
                            p_up=0.45)
    np.testing.assert_array_equal(rew32, rew64)
    np.testing.assert_allclose(obs32, obs64, rtol=0, atol=1e-4)
    assert not np.array_equal(obs32, obs64)  # it does compute in float32
    with pytest.raises(ValueError, match="float64 or float32"):
        gymnasium.make("Pixelcopter-PLE-v0", dtype=np.int32)


def test_all_up_and_all_noop_episode_lengths():
    env = gymnasium.make("Pixelcopter-PLE-v0")
    for seed in range(8):
        for action, lengths in ((Pixelcopter.UP, range(4, 6)), (Pixelcopter.NOOP, range(18, 25))):
            env.reset(seed=seed)
            steps, terminated = 0, False
            while not terminated:
                terminated = env.step(action)[2]
                steps += 1
            assert steps in lengths, (seed, action, steps)


def test_stepping_a_finished_game_changes_nothing_and_pays_zero():
    env = gymnasium.make("Pixelcopter-PLE-v0", render_mode="rgb_array")
    env.reset(seed=0)
    terminated = False
    while not terminated:
        obs, reward, terminated, truncated, _ = env.step(Pixelcopter.NOOP)
    state, frame = env.unwrapped.state, env.render()
    for action in (0, 1, 1):
        again, reward, terminated, truncated, _ = env.step(action)
        np.testing.assert_array_equal(again, obs)
        assert (reward, terminated, truncated) == (0.0, True, False)
    assert env.unwrapped.state == state
    np.testing.assert_array_equal(env.render(), frame)


def test_render_shows_the_state_after_reset_and_steps():
    env = gymnasium.make("Pixelcopter-PLE-v0", render_mode="rgb_array")
    env.reset(seed=0)
    for _ in range(3):
        frame = env.render()
        assert frame.shape == (48, 48, 3) and frame.dtype == np.uint8
        with jax.enable_x64(True):
            np.testing.assert_array_equal(frame, np.asarray(
                ENV.render(host.to_jax(env.unwrapped.state), PARAMS)))
        env.step(1)
    assert frame.any() and (frame == 255).all(-1).sum() == 4  # the player, 2 x 2
    assert gymnasium.make("Pixelcopter-PLE-v0").unwrapped.render() is None


def test_invalid_action_and_order():
    env = gymnasium.make("Pixelcopter-PLE-v0")
    with pytest.raises(gymnasium.error.ResetNeeded):
        env.step(0)
    env.reset(seed=0)
    for bad in (2, -1, 0.5, "up"):
        with pytest.raises(ValueError, match="invalid action"):
            env.step(bad)
    for good in (np.int64(0), np.array(1), True):
        env.step(good)
