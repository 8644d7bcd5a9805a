"""The course-loop baseline (``benchmarks.notebook_loop``) on the envs it times: our host
``Pixelcopter-PLE-v0`` and ``reinforce/CartPole-v1``, and gymnasium's own ``CartPole-v1``."""

from __future__ import annotations

import gymnasium
import pytest
from gymnasium.envs.classic_control.cartpole import CartPoleEnv as GymnasiumCartPole

from benchmarks import notebook_loop
from reinforce.config import preset
from reinforce.envs.gym_wrapper import CartPoleEnv, PixelcopterEnv


@pytest.mark.parametrize(("env_id", "native", "env_class"), [
    ("Pixelcopter-PLE-v0", False, PixelcopterEnv),
    ("CartPole-v1", False, CartPoleEnv),
    ("CartPole-v1", True, GymnasiumCartPole),
])
def test_loop_trains_on_the_host_envs(env_id, native, env_class):
    assert type(gymnasium.make(notebook_loop.gym_id(env_id, native)).unwrapped) is env_class
    cfg = preset("notebook", env_id).replace(n_training_episodes=4, max_t=60)
    result = notebook_loop.train(cfg, seed=0, native_gym=native)
    assert len(result.episodic_return) == len(result.policy_loss) == 4
    assert all(1 <= n <= 60 for n in result.episode_length)
    again = notebook_loop.train(cfg, seed=0, native_gym=native)
    assert again.episodic_return == result.episodic_return  # seeded: the same episodes


def test_no_native_pixelcopter():
    with pytest.raises(ValueError, match="no native"):
        notebook_loop.gym_id("Pixelcopter-PLE-v0", native=True)
