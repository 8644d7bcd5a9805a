"""Replay of the golden gymnasium ``CartPole-v1`` traces, one test per trace file.

Traces live in ``tests/data/cartpole/`` or, when ``REINFORCE_REFERENCE_DIR`` is set, in
``$REINFORCE_REFERENCE_DIR/cartpole/``. Each ``.npz`` row is one gymnasium step: the float64
``state`` before it, ``t`` (steps already taken in the episode), ``action``, and what gymnasium
returned (``next_obs``, ``reward``, ``terminated``, ``truncated``) with the float64
``next_state``. Every row is stepped by our env at once (``vmap``): in the default 32-bit mode
the observations agree to float32 precision, in 64-bit mode the states to 1e-12.
"""

from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from traces import trace_dir, trace_files

from reinforce.envs import CartPole, CartPoleState

TRACE_DIR = trace_dir("cartpole")
TRACES = trace_files("cartpole")
ENV = CartPole()
PARAMS = ENV.default_params()
KEYS = ("state", "action", "reward", "terminated", "truncated", "next_obs", "next_state", "t")


def test_traces_present():
    assert TRACES, f"no CartPole traces (*.npz) in {TRACE_DIR}"


def _step_all(data: dict[str, np.ndarray], dtype, int_dtype):
    state = np.asarray(data["state"])
    batch = CartPoleState(
        x=jnp.asarray(state[:, 0], dtype), x_dot=jnp.asarray(state[:, 1], dtype),
        theta=jnp.asarray(state[:, 2], dtype), theta_dot=jnp.asarray(state[:, 3], dtype),
        time=jnp.asarray(data["t"], int_dtype),
    )
    actions = jnp.asarray(data["action"], int_dtype)
    step = jax.jit(jax.vmap(ENV.step, in_axes=(None, 0, 0, None)))
    obs, new, reward, terminated, truncated, _ = step(None, batch, actions, PARAMS)
    new_state = np.stack([np.asarray(v) for v in (new.x, new.x_dot, new.theta, new.theta_dot)],
                         axis=1)
    return (np.asarray(obs), new_state, np.asarray(reward), np.asarray(terminated),
            np.asarray(truncated))


def _first_bad(mask: np.ndarray) -> str:
    rows = np.nonzero(mask)[0]
    return f"{rows.size} rows differ, first rows {rows[:5].tolist()}"


@pytest.mark.parametrize("path", TRACES, ids=[p.stem for p in TRACES])
def test_trace(path: Path):
    meta = json.loads(path.with_suffix(".json").read_text())
    data = dict(np.load(path))
    missing = [k for k in KEYS if k not in data]
    assert not missing, f"{path.name} lacks arrays {missing}"
    n = int(meta["n_rows"])
    assert all(data[k].shape[0] == n for k in KEYS)
    assert data["state"].dtype == np.float64 and data["next_state"].dtype == np.float64
    # The traces must exercise both ends of an episode.
    assert data["terminated"].any() and data["truncated"].any()
    assert n == sum(ep["length"] for ep in meta["episodes"])

    # Default 32-bit mode: float32 dynamics, observations to float32 precision.
    obs, _, reward, terminated, truncated = _step_all(data, jnp.float32, jnp.int32)
    assert obs.dtype == np.float32
    np.testing.assert_allclose(obs, data["next_obs"], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(reward, data["reward"])
    assert not (terminated != data["terminated"]).any(), _first_bad(
        terminated != data["terminated"])
    assert not (truncated != data["truncated"]).any(), _first_bad(truncated != data["truncated"])

    # 64-bit mode, scoped to this block (the conftest guard checks it does not leak).
    with jax.enable_x64(True):
        obs64, state64, reward64, terminated64, truncated64 = _step_all(
            data, jnp.float64, jnp.int64)
    assert not jax.config.read("jax_enable_x64")
    assert state64.dtype == np.float64
    np.testing.assert_allclose(state64, data["next_state"], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(obs64, data["next_obs"])
    np.testing.assert_array_equal(reward64, data["reward"])
    np.testing.assert_array_equal(terminated64, data["terminated"])
    np.testing.assert_array_equal(truncated64, data["truncated"])
