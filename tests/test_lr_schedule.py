"""The learning-rate schedule (warm-up, decay): one definition, the same in both backends."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from reinforce.app.session import check_resumable
from reinforce.config import ConfigError, TrainConfig
from reinforce_jax.algorithm import Trainer
from reinforce_torch.algorithm import Trainer as TorchTrainer

CFG = TrainConfig(env_id="CartPole-v1", n_training_episodes=40, batch_episodes=4, lr=0.1)


@pytest.mark.parametrize("schedule, expected", [
    ({}, [1.0] * 10),
    ({"lr_decay": True}, [1 - u / 10 for u in range(10)]),
    ({"lr_warmup": 4}, [0.25, 0.5, 0.75] + [1.0] * 7),
    ({"lr_warmup": 4, "lr_decay": True},
     [0.25 * 1.0, 0.5 * 0.9, 0.75 * 0.8] + [1 - u / 10 for u in range(3, 10)]),
])
def test_both_backends_follow_the_schedule(schedule, expected):
    cfg = CFG.replace(**schedule)
    assert [cfg.lr_factor(u) for u in range(10)] == pytest.approx(expected)
    jax_trainer = Trainer(cfg)
    jax_factors = [float(jax_trainer.lr_factor(jnp.asarray(u))) for u in range(10)]
    np.testing.assert_allclose(jax_factors, expected, rtol=1e-6)
    torch_trainer = TorchTrainer(cfg, seed=0)
    torch_lrs = []
    for _ in range(10):  # the lr each update uses, as the scheduler steps after every update
        torch_lrs.append(torch_trainer.optimizer.param_groups[0]["lr"])
        torch_trainer.optimizer.step()
        torch_trainer.scheduler.step()
    np.testing.assert_allclose(torch_lrs, np.asarray(expected) * 0.1, rtol=1e-12)


@pytest.mark.parametrize("warmup, message", [
    (-1, "lr_warmup must be 0 or more updates, got -1"),
    (10, "lr_warmup (10 updates) must be shorter than the training (10 updates)"),
])
def test_bad_warmup_is_refused(warmup, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        CFG.replace(lr_warmup=warmup)


class _Checkpoint:
    def __init__(self, config):
        self.progress = {"backend": "jax", "config": config, "total_updates_done": 0,
                         "total_updates": 10}


def test_a_checkpoint_without_the_newer_setting_still_resumes():
    identity = {"backend": "jax", "train": CFG.to_dict()}
    older = {"backend": "jax", "train": {k: v for k, v in CFG.to_dict().items()
                                         if k != "lr_warmup"}}
    check_resumable(_Checkpoint(older), identity, "ck")  # the default fills the gap
    changed = {"backend": "jax", "train": CFG.replace(lr_warmup=3).to_dict()}
    with pytest.raises(ValueError, match=r"train\.lr_warmup differ"):
        check_resumable(_Checkpoint(changed), identity, "ck")
