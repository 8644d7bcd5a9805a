"""Every matrix product of the JAX policy runs at full float32 precision, on every platform.

GPUs and TPUs default to reduced precision for float32 matrix products (TF32 or bfloat16
passes); the policy asks for ``HIGHEST`` on the operation itself. A CPU computes float32
products in full either way, so these tests read the lowered program instead of its numbers:
each dot in the policy's forward pass, in its gradient and in a whole training update must
carry ``HIGHEST`` precision.
"""

from __future__ import annotations

import re
from functools import partial

import jax
import jax.numpy as jnp
import pytest

from reinforce.config import preset
from reinforce_jax import policy as jax_policy
from reinforce_jax.algorithm import Trainer, reinforce_loss

DOT = re.compile(r"stablehlo\.(dot_general|dot|convolution)\b[^\n]*")


def dots(lowered_text: str) -> list[str]:
    return [m.group(0) for m in DOT.finditer(lowered_text)]


def assert_full_precision(lowered_text: str) -> int:
    found = dots(lowered_text)
    assert found, "no matrix product in the lowered program"
    highest = ("precision = [HIGHEST, HIGHEST]",  # a dot
               "precision_config = [#stablehlo<precision HIGHEST>, "
               "#stablehlo<precision HIGHEST>]")  # a convolution
    reduced = [d for d in found if not any(h in d for h in highest)]
    assert not reduced, (f"{len(reduced)} of {len(found)} products at default precision: "
                         f"{reduced[0]}")
    return len(found)


@pytest.fixture(scope="module", params=["CartPole-v1", "Pixelcopter-PLE-v0", "pixels"])
def trainer(request):
    if request.param == "pixels":  # the CNN on frames
        return Trainer(preset("fast", "Pixelcopter-PLE-v0").replace(
            max_t=64, obs="pixels", frame_stack=2, segment_steps=0, gamma=0.99))
    return Trainer(preset("fast", request.param).replace(max_t=64))


def test_the_forward_pass_multiplies_at_full_precision(trainer):
    params = trainer.init(jax.random.key(0)).params
    obs = jnp.zeros((5, *trainer.env.observation_shape), trainer.env.observation_dtype)
    lowered = jax.jit(partial(jax_policy.log_probs, trainer.policy)).lower(
        params, obs, jnp.zeros(5, jnp.int32))
    # a dense layer is one product; a conv layer (k/s)**2 products (policy.conv_valid)
    convs = sum((kernel // stride) ** 2 for _, kernel, stride in trainer.policy.convs)
    assert assert_full_precision(lowered.as_text()) == len(trainer.cfg.hidden_sizes) + 1 + convs


def test_the_gradient_multiplies_at_full_precision(trainer):
    params = trainer.init(jax.random.key(0)).params
    n = 6
    grad = jax.jit(jax.grad(partial(reinforce_loss, trainer.policy), argnums=0),
                   static_argnums=5)
    lowered = grad.lower(params, jnp.zeros((n, *trainer.env.observation_shape),
                                           trainer.env.observation_dtype),
                         jnp.zeros(n, jnp.int32), jnp.ones(n), jnp.ones(n, bool), 2)
    # forward, then per layer the weight's gradient and (but for the first) the input's
    assert assert_full_precision(lowered.as_text()) >= 2 * len(trainer.cfg.hidden_sizes) + 1


def test_a_whole_update_and_the_evaluation_multiply_at_full_precision(trainer):
    state = trainer.init(jax.random.key(0))
    assert_full_precision(jax.jit(trainer.update).lower(state).as_text())
    assert_full_precision(jax.jit(trainer.evaluate, static_argnums=2)
                          .lower(state.params, jax.random.key(1), 3).as_text())


def test_the_check_catches_a_product_at_default_precision(monkeypatch, trainer):
    """Without the setting the same program carries default-precision products."""
    monkeypatch.setattr(jax_policy, "PRECISION", None)
    params = trainer.init(jax.random.key(0)).params
    lowered = jax.jit(trainer.policy.apply).lower(
        params, jnp.zeros(trainer.env.observation_shape, trainer.env.observation_dtype))
    with pytest.raises(AssertionError, match="at default precision"):
        assert_full_precision(lowered.as_text())
