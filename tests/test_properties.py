"""Property-based tests (hypothesis): any config or command line either validates or is
refused in one line; the returns layer equals its numpy oracles on any shape, episode ends and
bootstrap values. Example counts are kept small for CI."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from reinforce import returns
from reinforce.app.cli import OneLineParser, UsageError, build_parser, plan_train
from reinforce.config import ConfigError, TrainConfig
from reinforce.envs import ENV_IDS

SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

numbers = st.one_of(st.integers(-10, 10**12), st.floats(allow_nan=True, allow_infinity=True),
                    st.sampled_from([0, 1, 64, 128, 1024, -1, 0.5, 1.0, 1e-3]))
FIELD_VALUES = {
    "env_id": st.sampled_from([*ENV_IDS, "CartPole-v0", ""]),
    "hidden_sizes": st.lists(st.integers(-2, 10**12), max_size=3).map(tuple),
    "baseline": st.sampled_from(["none", "time", "mean", ""]),
    "lr_decay": st.booleans(),
    "normalize_returns": st.booleans(),
}


@st.composite
def config_kwargs(draw):
    fields = [f.name for f in dataclasses.fields(TrainConfig)]
    chosen = draw(st.lists(st.sampled_from(fields), unique=True, max_size=6))
    return {name: draw(FIELD_VALUES.get(name, numbers)) for name in chosen}


@SETTINGS
@given(config_kwargs())
def test_any_config_validates_or_is_refused_in_one_line(kwargs):
    try:
        cfg = TrainConfig(**kwargs)
    except ConfigError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    assert cfg.n_updates >= 1 and cfg.lr > 0 and 0 <= cfg.gamma <= 1


#: Option texts a user might type, right or wrong.
TEXTS = st.one_of(st.sampled_from(["0", "1", "-1", "8", "64", "1024", "0.99", "1e-3", "nan",
                                   "inf", "1e3", "abc", "", ",", "16,x", "64,128", "none",
                                   "time", "100000000000", "CartPole-v1", "Pixelcopter-PLE-v0"]),
                  st.integers(-5, 10**12).map(str), st.text(max_size=6))
OPTIONS = ["--env", "--backend", "--preset", "--seed", "--seeds", "--lr", "--gamma",
           "--episodes", "--batch-episodes", "--max-t", "--hidden", "--baseline",
           "--segment-steps", "--lr-warmup", "--eval-episodes", "--chunk-updates", "--device"]
FLAGS = ["--lr-decay", "--no-lr-decay", "--normalize-returns", "--no-normalize-returns"]


@st.composite
def train_argv(draw):
    argv = ["train"]
    for option in draw(st.lists(st.sampled_from(OPTIONS), unique=True, max_size=5)):
        argv += [option, draw(TEXTS)]
    argv += draw(st.lists(st.sampled_from(FLAGS), max_size=2))
    return argv


@SETTINGS
@given(train_argv())
def test_any_train_command_plans_or_is_refused_in_one_line(argv):
    """Everything ``reinforce train`` checks before it writes or allocates anything: the
    options, the config, the device and the memory the runs would need."""
    try:
        plan = plan_train(build_parser().parse_args(argv))
    except (UsageError, ConfigError) as exc:
        assert str(exc) and "\n" not in str(exc), repr(str(exc))
        return
    assert plan.runs and plan.cfg.n_updates >= 1


def test_the_parser_is_the_one_line_parser():
    assert isinstance(build_parser(), OneLineParser)


# --- the returns layer against its oracles ----------------------------------------------------


@st.composite
def episodes(draw):
    """Rewards ``[T, B]``, episode ends and bootstrap values."""
    T, B = draw(st.integers(1, 40)), draw(st.integers(1, 5))
    finite = st.floats(-10, 10, width=32)
    rewards = draw(hnp.arrays(np.float32, (T, B), elements=finite))
    dones = draw(hnp.arrays(np.bool_, (T, B)))
    bootstrap = draw(hnp.arrays(np.float32, (B,), elements=finite))
    gamma = draw(st.sampled_from([0.0, 0.5, 0.9, 0.99, 1.0]))
    return rewards, dones, bootstrap, gamma


SCANS = {"platform": returns.discounted_returns,
         "scan": jax.jit(returns.discounted_returns_scan),
         "associative": jax.jit(returns.discounted_returns_associative)}


@pytest.mark.parametrize("impl", list(SCANS))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=episodes())
def test_every_returns_scan_equals_the_oracle(impl, data):
    rewards, dones, bootstrap, gamma = data
    got = np.asarray(SCANS[impl](rewards, dones, gamma, jnp.asarray(bootstrap)))
    want = returns.discounted_returns_reference(rewards, dones, gamma, bootstrap)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


@SETTINGS
@given(data=episodes(), valid_seed=st.integers(0, 2**16))
def test_normalization_and_time_baseline_equal_their_oracles(data, valid_seed):
    rewards, _, _, _ = data
    rng = np.random.default_rng(valid_seed)
    valid = rng.random(rewards.shape) < 0.8
    got = np.asarray(returns.normalize(rewards, valid))
    want = returns.normalize_reference(rewards, valid)
    assert np.isfinite(got).all() and not got[~valid].any()
    values = rewards[valid].astype(np.float64)
    # Values equal up to float32 rounding have no scale to normalize by: only finite above.
    if values.size > 1 and values.std() > 1e-4 * (1.0 + np.abs(values).max()):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    baseline = np.asarray(returns.time_baseline(rewards, valid))
    np.testing.assert_allclose(baseline, returns.time_baseline_reference(rewards, valid),
                               rtol=1e-5, atol=1e-4)


# --- the env views ------------------------------------------------------------------------------


@pytest.mark.parametrize("env_id", ["Pixelcopter-PLE-v0", "reinforce/CartPole-v1"])
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1), actions=st.lists(st.integers(0, 1), min_size=1,
                                                         max_size=400))
def test_an_env_view_never_leaves_its_observation_space(env_id, seed, actions):
    import gymnasium

    env = gymnasium.make(env_id)
    obs, _ = env.reset(seed=seed)
    for action in actions:
        assert obs.dtype == np.float32 and np.isfinite(obs).all()
        assert env.observation_space.contains(obs), obs
        obs, reward, terminated, truncated, _ = env.step(action)
        assert np.isfinite(reward)
        if terminated or truncated:
            obs, _ = env.reset()
    assert env.observation_space.contains(obs)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1), n=st.sampled_from([1, 3, 8]),  # one compile per n
       actions=st.lists(st.integers(0, 255), min_size=1, max_size=300))
def test_a_vector_env_never_leaves_its_observation_space(seed, n, actions):
    import gymnasium

    env = gymnasium.make_vec("Pixelcopter-PLE-v0", num_envs=n)
    obs, _ = env.reset(seed=seed)
    for bits in actions:
        assert np.isfinite(obs).all() and env.observation_space.contains(obs)
        obs, reward, *_ = env.step(np.array([(bits >> i) & 1 for i in range(n)], np.int64))
        assert np.isfinite(reward).all()
