"""The course-loop baseline (``benchmarks.notebook_loop``) on the envs it times: the fastest
single env a course user has (gymnasium's own ``CartPole-v1``, our host ``Pixelcopter-PLE-v0``),
and our ``reinforce/CartPole-v1`` (variant ``notebook-ours``)."""

from __future__ import annotations

import gymnasium
import pytest
from gymnasium.envs.classic_control.cartpole import CartPoleEnv as GymnasiumCartPole

from benchmarks import notebook_loop
from reinforce.config import preset
from reinforce.envs import UnknownEnvError
from reinforce.envs.gym_wrapper import CartPoleEnv, PixelcopterEnv


@pytest.mark.parametrize(("env_id", "ours", "env_class"), [
    ("Pixelcopter-PLE-v0", False, PixelcopterEnv),
    ("Pixelcopter-PLE-v0", True, PixelcopterEnv),
    ("CartPole-v1", False, GymnasiumCartPole),
    ("CartPole-v1", True, CartPoleEnv),
])
def test_loop_trains_on_the_host_envs(env_id, ours, env_class):
    assert type(gymnasium.make(notebook_loop.gym_id(env_id, ours)).unwrapped) is env_class
    cfg = preset("notebook", env_id).replace(n_training_episodes=4, max_t=60)
    result = notebook_loop.train(cfg, seed=0, ours=ours)
    assert len(result.episodic_return) == len(result.policy_loss) == 4
    assert all(1 <= n <= 60 for n in result.episode_length)
    again = notebook_loop.train(cfg, seed=0, ours=ours)
    assert again.episodic_return == result.episodic_return  # seeded: the same episodes


def test_an_unknown_env_is_refused():
    with pytest.raises(UnknownEnvError):
        notebook_loop.gym_id("Pong-v5")
