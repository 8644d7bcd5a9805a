"""What the parity tests do with both trainers: hand the torch trainer the JAX trainer's rollout,
and run updates on both, comparing as they go."""

from __future__ import annotations

import numpy as np
import pytest

from reinforce_jax.policy import to_export
from reinforce_torch import algorithm as tt


def torch_rollout(flat, cut: bool = True) -> tt.Rollout:
    """A flat JAX rollout (``Rollout.flat()``) as the torch trainer's; ``cut``: without the
    padding after the last step any episode played (torch keeps none)."""
    T = int(np.asarray(flat.valid).any(axis=1).nonzero()[0].max()) + 1 if cut else None
    return tt.Rollout(obs=np.array(flat.obs)[:T], actions=np.array(flat.actions)[:T].astype(
        np.int64), rewards=np.array(flat.rewards)[:T], dones=np.array(flat.dones)[:T],
        valid=np.array(flat.valid)[:T])


def assert_updates_match(j_update, state, t_trainer, rtol: float, atol: float,
                         metric_names: tuple[str, ...] = (), n: int = 3):
    """``n`` updates of the jitted JAX ``j_update`` from ``state`` and of ``t_trainer``: after
    each, equal weights (export format) and policy losses, and equal ``metric_names``. Returns
    the last JAX weights and torch metrics."""
    for i in range(n):
        state, j_metrics = j_update(state)
        t_metrics = t_trainer.update()
        j_new = to_export(state.params)
        for name, value in t_trainer.policy.export().items():
            np.testing.assert_allclose(value, j_new[name], rtol=rtol, atol=atol,
                                       err_msg=f"update {i}, {name}")
        np.testing.assert_allclose(t_metrics.policy_loss, float(j_metrics.policy_loss),
                                   rtol=1e-4, atol=1e-5)
        for key in metric_names:
            assert getattr(t_metrics, key) == pytest.approx(float(getattr(j_metrics, key))), key
    return j_new, t_metrics
