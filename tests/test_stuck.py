"""No seed may stay stuck: a Pixelcopter policy started in the crash-at-once state leaves it.

The state is what a collapsed seed looked like: every episode hits the ceiling within about 4
frames (return -5), because the policy all but always climbs (its last layer's biases favour
"up" by 5 logits: p(no-op) = 0.0067 per frame). Trained with the default preset's algorithm and
batch (the value baseline, the entropy bonus, clipping), both backends leave it within 25
updates (the test prints the episode lengths it saw).
The entropy bonus pushes the policy back towards uncertainty, so the no-ops that last longer get
sampled, and REINFORCE reinforces them. (A lead of 10 logits, p(no-op) = 4.5e-5, is still stuck
after 40 updates: the few no-ops sampled are too rare to move it in that time.)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from reinforce.config import preset
from reinforce_jax import algorithm as jt
from reinforce_torch import algorithm as tt

#: The logits' lead of "up" (action 0) over the no-op in the stuck policy.
LEAD = 5.0
N_UPDATES = 25


def _config():
    cfg = preset("fast", "Pixelcopter-PLE-v0")
    return cfg.replace(n_training_episodes=cfg.batch_episodes * N_UPDATES,
                       chunk_updates=N_UPDATES, lr_decay=False, lr_warmup=0)


def _jax_lengths(cfg) -> np.ndarray:
    trainer = jt.Trainer(cfg)
    state = trainer.init(jax.random.key(0))
    last = f"layers_{len(cfg.hidden_sizes)}"
    params = jax.tree.map(lambda x: x, state.params)
    params["params"][last]["bias"] = jnp.array([LEAD / 2, -LEAD / 2])
    _, metrics = jax.jit(lambda s: trainer.run(s, N_UPDATES))(state._replace(params=params))
    return np.asarray(metrics.episode_length)


def _torch_lengths(cfg) -> np.ndarray:
    trainer = tt.Trainer(cfg, seed=0)
    with torch.no_grad():
        trainer.policy.layers[-1].bias.copy_(torch.tensor([LEAD / 2, -LEAD / 2]))
    return np.array([m.episode_length for m in trainer.run(N_UPDATES)])


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_a_policy_that_crashes_at_once_leaves_that_state(backend):
    cfg = _config()
    assert cfg.entropy_coef > 0 and cfg.baseline == "value"
    lengths = (_jax_lengths if backend == "jax" else _torch_lengths)(cfg)
    first, last = lengths[:3].mean(), lengths[-5:].mean()
    message = (f"{backend}: mean episode length {first:.1f} frames over the first 3 updates, "
               f"{last:.1f} over the last 5")
    print(message)
    assert first < 6, message  # the crash-at-once state
    assert last > 40, message  # left: episodes reach the first blocks
