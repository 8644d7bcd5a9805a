"""CartPole-v1 as pure JAX functions, equal to gymnasium's ``CartPole-v1``.

The dynamics are gymnasium's (Euler integration, tau = 0.02, force +-10 N, termination when
|x| > 2.4 or |theta| > 12 degrees, reward 1.0 on every step including the terminating one)
and the 500-step time limit of its ``TimeLimit`` wrapper is part of the state here.

With JAX's 64-bit mode on, the state evolves in float64 exactly as gymnasium's numpy code
does; in the default 32-bit mode it evolves in float32 (observations agree to float32
precision). The reset draw comes from a JAX key, so the initial states differ from
gymnasium's for the same integer seed; everything that follows from a state does not.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from reinforce.envs.core import Environment, float_dtype, int_dtype


@struct.dataclass
class CartPoleParams:
    gravity: float = 9.8
    masscart: float = 1.0
    masspole: float = 0.1
    length: float = 0.5  # half the pole's length
    force_mag: float = 10.0
    tau: float = 0.02
    x_threshold: float = 2.4
    theta_threshold_radians: float = 12 * 2 * math.pi / 360
    max_steps_in_episode: int = 500

    @property
    def total_mass(self) -> float:
        return self.masspole + self.masscart

    @property
    def polemass_length(self) -> float:
        return self.masspole * self.length


@struct.dataclass
class CartPoleState:
    x: jax.Array
    x_dot: jax.Array
    theta: jax.Array
    theta_dot: jax.Array
    time: jax.Array  # steps taken in this episode


class CartPole(Environment[CartPoleState, CartPoleParams]):
    id = "CartPole-v1"
    observation_size = 4
    num_actions = 2
    #: The cart's position and the pole's angle up to where an episode ends; the velocities
    #: within about 3.
    observation_range = ((-2.4, -3.0, -0.21, -3.0), (2.4, 3.0, 0.21, 3.0))

    def default_params(self) -> CartPoleParams:
        return CartPoleParams()

    def reset(self, key: jax.Array, params: CartPoleParams) -> tuple[jax.Array, CartPoleState]:
        init = jax.random.uniform(key, (4,), dtype=float_dtype(), minval=-0.05, maxval=0.05)
        state = CartPoleState(
            x=init[0], x_dot=init[1], theta=init[2], theta_dot=init[3],
            time=jnp.zeros((), int_dtype()),
        )
        return self.observation(state), state

    def step(
        self, key: jax.Array, state: CartPoleState, action: jax.Array, params: CartPoleParams
    ) -> tuple[jax.Array, CartPoleState, jax.Array, jax.Array, jax.Array, dict[str, Any]]:
        del key  # deterministic dynamics
        force = jnp.where(action == 1, params.force_mag, -params.force_mag)
        costheta = jnp.cos(state.theta)
        sintheta = jnp.sin(state.theta)
        temp = (force + params.polemass_length * state.theta_dot**2 * sintheta) / params.total_mass
        thetaacc = (params.gravity * sintheta - costheta * temp) / (
            params.length * (4.0 / 3.0 - params.masspole * costheta**2 / params.total_mass)
        )
        xacc = temp - params.polemass_length * thetaacc * costheta / params.total_mass
        new = CartPoleState(
            x=state.x + params.tau * state.x_dot,
            x_dot=state.x_dot + params.tau * xacc,
            theta=state.theta + params.tau * state.theta_dot,
            theta_dot=state.theta_dot + params.tau * thetaacc,
            time=state.time + 1,
        )
        terminated = (
            (new.x < -params.x_threshold)
            | (new.x > params.x_threshold)
            | (new.theta < -params.theta_threshold_radians)
            | (new.theta > params.theta_threshold_radians)
        )
        truncated = new.time >= params.max_steps_in_episode
        reward = jnp.ones((), float_dtype())
        return self.observation(new), new, reward, terminated, truncated, {}

    @staticmethod
    def observation(state: CartPoleState) -> jax.Array:
        return jnp.stack([state.x, state.x_dot, state.theta, state.theta_dot]).astype(jnp.float32)

    def render(self, state: CartPoleState, params: CartPoleParams) -> jax.Array:
        """A 600x400 RGB frame in gymnasium's layout: track, cart, pole and axle."""
        width, height = 600, 400
        world_width = params.x_threshold * 2
        scale = width / world_width
        pole_len = scale * (2 * params.length)
        cart_w, cart_h, pole_w = 50.0, 30.0, 10.0
        track_y = 100.0  # from the bottom
        ys, xs = jnp.meshgrid(
            jnp.arange(height, dtype=jnp.float32), jnp.arange(width, dtype=jnp.float32),
            indexing="ij",
        )
        up = (height - 1) - ys  # y axis pointing up, as in gymnasium's drawing
        cart_x = state.x.astype(jnp.float32) * scale + width / 2.0
        axle_y = track_y + cart_h / 4.0
        cart = (jnp.abs(xs - cart_x) <= cart_w / 2) & (up >= track_y - cart_h / 2) & (
            up <= track_y + cart_h / 2
        )
        # The pole is a rectangle rotated by -theta around the axle.
        theta = state.theta.astype(jnp.float32)
        dx, dy = xs - cart_x, up - axle_y
        along = dx * jnp.sin(theta) + dy * jnp.cos(theta)
        across = dx * jnp.cos(theta) - dy * jnp.sin(theta)
        pole = (along >= -pole_w / 2) & (along <= pole_len - pole_w / 2) & (
            jnp.abs(across) <= pole_w / 2
        )
        axle = dx**2 + dy**2 <= (pole_w / 2) ** 2
        track = jnp.abs(up - track_y) < 0.5
        frame = jnp.full((height, width, 3), 255, jnp.uint8)
        frame = jnp.where(track[..., None], jnp.uint8(0), frame)
        frame = jnp.where(cart[..., None], jnp.uint8(0), frame)
        frame = jnp.where(pole[..., None], jnp.array([202, 152, 101], jnp.uint8), frame)
        frame = jnp.where(axle[..., None], jnp.array([129, 132, 203], jnp.uint8), frame)
        return frame
