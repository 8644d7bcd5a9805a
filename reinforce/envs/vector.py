"""Vector envs for ``gymnasium.make_vec``: N copies of a functional env in one compiled call.

``gymnasium.make_vec("Pixelcopter-PLE-v0", num_envs=N)`` (and ``"reinforce/CartPole-v1"``)
returns a :class:`FunctionalVectorEnv`: numpy actions in, numpy observations, rewards,
terminations and truncations out, every step one jitted call of the JAX env's batched step
(``vmap``) with the autoreset, on the CPU device whatever else JAX has (the arrays come back to
numpy every step, so an accelerator would only add transfers).

Autoreset: ``AutoresetMode.NEXT_STEP`` (``metadata["autoreset_mode"]``), gymnasium's default.
The step after the one that ends an episode (``terminated`` or ``truncated``) starts that
env's next episode: it returns the new episode's first observation, reward 0 and neither flag,
and ignores the env's action. ``reset(options={"reset_mask": mask})`` starts new episodes in
the envs where ``mask`` is True only.

Random numbers: every env has its own JAX key, folded with the number of the step for each
step; ``reset(seed=s)`` derives the N keys from ``s`` (or from ``s[i]`` for a list of N
seeds), so the same seed and actions give the same steps. ``reset()`` without a seed draws one
from the vector env's ``np_random``.

The step is the env's :meth:`~reinforce.envs.core.Environment.autoreset_step`: for
Pixelcopter, every env advances and only the few that restart or spawn something draw random
numbers; the same numbers as its ``step`` and ``reset`` env by env.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from reinforce.envs.core import Environment, where_rows
from reinforce.host import host, on_host


def step_keys(keys: jax.Array, t: jax.Array) -> Callable[[jax.Array], jax.Array]:
    """``keys_of(idx)``: the keys of the envs ``idx`` for the vector env's step ``t``, each
    env's own key folded with ``t`` (computed for the envs that need one only)."""
    return lambda idx: jax.vmap(jax.random.fold_in, in_axes=(0, None))(keys[idx], t)


class _Programs:
    """The compiled reset, step and render of one (env, params, num_envs)."""

    def __init__(self, env: Environment, params: Any, num_envs: int):
        self.env, self.params, self.n = env, params, num_envs
        #: The envs that need it get a new episode (Pixelcopter: their random draws) this
        #: many at a time: a 16th of the envs.
        self.size = -(-num_envs // 16)
        self.reset = jax.jit(self._reset)
        self.reset_where = jax.jit(self._reset_where, donate_argnums=0)
        self.step = jax.jit(self._step, donate_argnums=0)
        self.render = jax.jit(jax.vmap(env.render, in_axes=(0, None)))

    # The carry: (keys, t, state, done): each env's own key, the steps since the reset (step
    # t's keys are the keys folded with t), the envs' states, and which episodes just ended.

    def _reset(self, keys):
        t = jnp.zeros((), jnp.uint32)
        sub = step_keys(keys, t)(jnp.arange(self.n))
        obs, state = jax.vmap(self.env.reset, in_axes=(0, None))(sub, self.params)
        return (keys, t + 1, state, jnp.zeros(self.n, bool)), obs

    def _reset_where(self, carry, keys, mask):
        keys_old, t, state_old, done = carry
        keys = where_rows(mask, keys, keys_old)
        obs, state = jax.vmap(self.env.reset, in_axes=(0, None))(
            step_keys(keys, t)(jnp.arange(self.n)), self.params)
        obs = jnp.where(mask[:, None], obs, 0)  # the caller keeps the others' observations
        return (keys, t + 1, where_rows(mask, state, state_old), done & ~mask), obs

    def _step(self, carry, actions):
        keys, t, state, done = carry
        # NEXT_STEP autoreset: the envs whose episode ended last step start a new one.
        obs, state, reward, terminated, truncated = self.env.autoreset_step(
            step_keys(keys, t), state, done, actions, self.params, self.size)
        reward = reward.astype(jnp.float32)
        return (keys, t + 1, state, terminated | truncated), (obs, reward, terminated, truncated)


@functools.cache
def _programs(env: Environment, params: Any, num_envs: int) -> _Programs:
    return _Programs(env, params, num_envs)


class FunctionalVectorEnv(VectorEnv):
    """``num_envs`` copies of a functional env, stepped together by one compiled call."""

    metadata = {"render_modes": ["rgb_array"], "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, env: Environment, num_envs: int, params: Any = None,
                 render_mode: str | None = None, max_episode_steps: int | None = None):
        if isinstance(num_envs, bool) or not isinstance(num_envs, int | np.integer) \
                or num_envs < 1:
            raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        params = env.default_params() if params is None else params
        if max_episode_steps is not None:
            if max_episode_steps < 1:
                raise ValueError(f"max_episode_steps must be at least 1, got {max_episode_steps}")
            params = params.replace(max_steps_in_episode=int(max_episode_steps))
        self.env, self.params = env, params
        self.num_envs = int(num_envs)
        self.render_mode = render_mode
        self.single_observation_space = gymnasium.spaces.Box(
            -np.inf, np.inf, (env.observation_size,), np.float32)
        self.single_action_space = gymnasium.spaces.Discrete(env.num_actions)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._programs = _programs(env, params, self.num_envs)
        self._carry: Any = None
        self._obs: Any = None  # the last observations (a JAX or numpy array)

    # -- seeding --------------------------------------------------------------------------

    def _keys(self, seed: int | list[int] | None) -> jax.Array:
        """One JAX key per env, from ``seed`` (an int, or one int per env) or ``np_random``."""
        if isinstance(seed, list | tuple):
            if len(seed) != self.num_envs:
                raise ValueError(f"a list of seeds needs one seed per env ({self.num_envs}), "
                                 f"got {len(seed)}")
            return jnp.stack([self._key(s) for s in seed])
        if seed is None:
            key = self._key(int(self.np_random.integers(0, 2**32)))
        else:
            key = self._key(seed)
            super().reset(seed=int(seed))  # the vector env's own np_random follows the seed
        return jax.random.split(key, self.num_envs)

    @staticmethod
    def _key(seed: int) -> jax.Array:
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
            raise ValueError(f"a seed must be a non-negative integer, got {seed!r}")
        # 32 bits of the seed's own SeedSequence: any non-negative integer, no truncation.
        return jax.random.key(int(np.random.SeedSequence(int(seed)).generate_state(1)[0]))

    # -- the gymnasium API ----------------------------------------------------------------

    def reset(self, *, seed: int | list[int] | None = None, options: dict | None = None):
        mask = None if options is None else options.get("reset_mask")
        if mask is not None:
            mask = np.asarray(mask)
            if mask.shape != (self.num_envs,) or mask.dtype != np.bool_:
                raise ValueError(f"options['reset_mask'] must be a bool array of shape "
                                 f"({self.num_envs},), got {mask.dtype} {mask.shape}")
            if self._carry is None:
                raise RuntimeError("reset with a reset_mask needs a reset of every env first")
        with host():
            # Committed to the CPU: every later call on the carry runs there.
            keys = on_host(self._keys(seed))
        if mask is None:
            self._carry, self._obs = self._programs.reset(keys)
        else:
            self._carry, obs = self._programs.reset_where(self._carry, keys, mask)
            self._obs = np.where(mask[:, None], np.asarray(obs), np.asarray(self._obs))
        return np.array(self._obs), {}

    def step(self, actions):
        if self._carry is None:
            raise RuntimeError("step() called before reset()")
        actions = np.asarray(actions)
        if actions.shape != (self.num_envs,) or actions.dtype.kind not in "iu" \
                or actions.min() < 0 or actions.max() >= self.env.num_actions:
            raise ValueError(f"actions must be {self.num_envs} integers in "
                             f"[0, {self.env.num_actions}), got {actions!r}")
        self._carry, out = self._programs.step(self._carry, actions.astype(np.int32))
        self._obs = out[0]  # kept for a reset_mask; the caller gets copies it may write to
        obs, reward, terminated, truncated = (np.array(a) for a in out)
        return obs, reward, terminated, truncated, {}

    def render(self) -> tuple[np.ndarray, ...] | None:
        """One frame per env (``render_mode="rgb_array"``)."""
        if self.render_mode != "rgb_array" or self._carry is None:
            return None
        frames = np.asarray(self._programs.render(self._carry[2], self.params))
        return tuple(frames)

    @property
    def state(self) -> Any:
        """The batch of functional env states (leading axis: the envs)."""
        return None if self._carry is None else self._carry[2]


class PixelcopterVectorEnv(FunctionalVectorEnv):
    """``gymnasium.make_vec("Pixelcopter-PLE-v0", num_envs=N)``."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 30,
                "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, num_envs: int = 1, render_mode: str | None = None,
                 max_episode_steps: int | None = None):
        from reinforce.envs.pixelcopter import Pixelcopter

        super().__init__(Pixelcopter(), num_envs, None, render_mode, max_episode_steps)


class CartPoleVectorEnv(FunctionalVectorEnv):
    """``gymnasium.make_vec("reinforce/CartPole-v1", num_envs=N)`` (time limit 500)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 50,
                "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, num_envs: int = 1, render_mode: str | None = None,
                 max_episode_steps: int | None = None):
        from reinforce.envs.cartpole import CartPole

        super().__init__(CartPole(), num_envs, None, render_mode, max_episode_steps)
