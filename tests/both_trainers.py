"""What the parity tests do with both trainers: hand the torch trainer the JAX trainer's rollout,
and run updates on both, comparing as they go."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reinforce_jax.policy import to_export
from reinforce_torch import algorithm as tt


def torch_rollout(flat, cut: bool = True) -> tt.Rollout:
    """A flat JAX rollout (``Rollout.flat()``) as the torch trainer's; ``cut``: without the
    padding after the last step any episode played (torch keeps none)."""
    T = int(np.asarray(flat.valid).any(axis=1).nonzero()[0].max()) + 1 if cut else None
    return tt.Rollout(obs=np.array(flat.obs)[:T], actions=np.array(flat.actions)[:T].astype(
        np.int64), rewards=np.array(flat.rewards)[:T], dones=np.array(flat.dones)[:T],
        valid=np.array(flat.valid)[:T])


def same_start(state, t_trainer) -> None:
    """Give the torch trainer the JAX state's weights (the policy's, and the value network's
    if any)."""
    t_trainer.policy.load_state_dict({k: torch.from_numpy(np.array(v))
                                      for k, v in to_export(state.params).items()})
    if t_trainer.value_net is not None:
        t_trainer.value_net.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in
                                             to_export(state.value_params).items()})


def assert_updates_match(j_update, state, t_trainer, rtol: float, atol: float,
                         metric_names: tuple[str, ...] = (), n: int = 3):
    """``n`` updates of the jitted JAX ``j_update`` from ``state`` and of ``t_trainer``: after
    each, equal weights (export format; the value network's too, if any), equal loss terms
    (policy loss, entropy, value loss), and equal ``metric_names``. Returns the last JAX
    weights and torch metrics."""
    for i in range(n):
        state, j_metrics = j_update(state)
        t_metrics = t_trainer.update()
        j_new = to_export(state.params)
        pairs = [(t_trainer.policy.export(), j_new)]
        if t_trainer.value_net is not None:
            pairs.append((t_trainer.value_net.export(), to_export(state.value_params)))
        for t_weights, j_weights in pairs:
            assert sorted(t_weights) == sorted(j_weights)
            for name, value in t_weights.items():
                np.testing.assert_allclose(value, j_weights[name], rtol=rtol, atol=atol,
                                           err_msg=f"update {i}, {name}")
        for name in ("policy_loss", "entropy", "value_loss"):
            np.testing.assert_allclose(getattr(t_metrics, name), float(getattr(j_metrics, name)),
                                       rtol=1e-4, atol=1e-5, err_msg=name)
        for key in metric_names:
            assert getattr(t_metrics, key) == pytest.approx(float(getattr(j_metrics, key))), key
    return j_new, t_metrics
