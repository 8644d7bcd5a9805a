"""``reinforce_jax.policy.conv_valid``: the convolution as matrix products of space-to-depth
blocks gives the convolution's values and gradients, to float32 rounding."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from reinforce_jax.policy import PRECISION, conv_valid


def reference(x, kernel, stride):
    return jax.lax.conv_general_dilated(x, kernel, (stride, stride), "VALID",
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                        precision=PRECISION)


@pytest.mark.parametrize("h, w, c, k, stride, f", [
    (48, 48, 2, 8, 4, 16),  # the pixel CNN's first layer
    (11, 11, 16, 4, 2, 32),  # its second: the last row and column are not read
    (13, 9, 3, 4, 2, 5),  # not square
    (10, 10, 3, 3, 1, 4),  # stride 1: kernel**2 products
    (7, 7, 1, 2, 2, 1),
    (12, 12, 2, 5, 2, 3),  # the stride does not divide the kernel: the convolution itself
])
def test_values_and_gradients_are_the_convolutions(h, w, c, k, stride, f):
    rng = np.random.default_rng(h * w + k)
    x = jnp.asarray(rng.normal(size=(3, h, w, c)), jnp.float32)
    kernel = jnp.asarray(rng.normal(size=(k, k, c, f)), jnp.float32)
    got, want = conv_valid(x, kernel, stride), reference(x, kernel, stride)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * float(jnp.abs(want).max()))
    cotangent = jnp.asarray(rng.normal(size=want.shape), jnp.float32)

    def pulled(fn):
        return jax.vjp(fn, x, kernel)[1](cotangent)

    for a, b in zip(pulled(lambda x, k_: conv_valid(x, k_, stride)),
                    pulled(lambda x, k_: reference(x, k_, stride)), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * float(jnp.abs(b).max()))


def test_the_pixel_layers_are_matrix_products_only():
    x = jnp.zeros((2, 48, 48, 2))
    text = jax.jit(conv_valid, static_argnums=2).lower(x, jnp.zeros((8, 8, 2, 16)), 4).as_text()
    assert "stablehlo.convolution" not in text and text.count("stablehlo.dot_general") == 4
