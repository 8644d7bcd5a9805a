"""A batch of functional envs driven from the host: numpy in, numpy out.

This is how code outside JAX (the torch trainer, any policy in `reinforce.evaluation`) uses the
one definition of the dynamics: one compiled call per step for the whole batch. The calls run
on the CPU device whatever JAX's default device is (``reinforce.host``): the batch's key and
state are committed there, so every step stays on the host.
"""

from __future__ import annotations

from functools import partial

import jax
import numpy as np

from reinforce import envs
from reinforce.host import HostKey


@partial(jax.jit, static_argnums=(0, 2))
def _reset(env, key, n, params):
    key, reset_key = jax.random.split(key)
    obs, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(reset_key, n), params)
    return key, obs, state


@partial(jax.jit, static_argnums=0)
def _step(env, key, state, actions, params):
    key, step_key = jax.random.split(key)
    n = actions.shape[0]
    obs, state, reward, terminated, truncated, _ = jax.vmap(
        env.step, in_axes=(0, 0, 0, None)
    )(jax.random.split(step_key, n), state, actions, params)
    return key, obs, state, reward, terminated, truncated


@partial(jax.jit, static_argnums=0)
def _renew(env, key, state, obs, alive, params):
    key, reset_key = jax.random.split(key)
    obs, state = envs.reset_where(env, jax.random.split(reset_key, alive.shape[0]), obs, state,
                                  alive, params)
    return key, obs, state


class BatchedEnv(HostKey):
    """``n`` copies of one env stepped together; the caller tracks which episodes are over."""

    def __init__(self, env_id: str, n: int, seed: int, obs: str = "features",
                 frame_stack: int = 1):
        self.env, self.params = envs.make(env_id, obs, frame_stack)
        self.n = int(n)
        super().__init__(seed)
        self.state = None

    @property
    def observation_size(self) -> int:
        return self.env.observation_size

    @property
    def num_actions(self) -> int:
        return self.env.num_actions

    def reset(self) -> np.ndarray:
        self._key, obs, self.state = _reset(self.env, self._key, self.n, self.params)
        return np.array(obs)

    def renew(self, obs: np.ndarray, alive: np.ndarray) -> np.ndarray:
        """Start a new episode in every slot where ``alive`` is False (the others go on);
        returns the observations, ``obs`` where alive."""
        self._key, obs, self.state = _renew(self.env, self._key, self.state,
                                           np.asarray(obs, self.env.observation_dtype),
                                           np.asarray(alive, bool), self.params)
        return np.array(obs)

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """obs ``[n, S]`` float32, reward ``[n]``, terminated ``[n]``, truncated ``[n]``."""
        self._key, obs, self.state, reward, terminated, truncated = _step(
            self.env, self._key, self.state, np.asarray(actions, np.int32), self.params
        )
        return (np.array(obs), np.asarray(reward, np.float32), np.asarray(terminated),
                np.asarray(truncated))
