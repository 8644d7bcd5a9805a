"""Code written for the old gym API (the course notebook's loop) runs on our envs unchanged."""

from collections import deque

import gymnasium
import numpy as np
import pytest
import torch

from reinforce.envs.gym_wrapper import CartPoleEnv, PixelcopterEnv
from reinforce.envs.legacy import LegacyEnv
from reinforce_torch.policy import Policy


def notebook_style_episode_loop(env, policy, n_episodes, max_t, seed):
    """The course's loop shape: reset() -> obs, step(a) -> (obs, reward, done, info)."""
    generator = torch.Generator().manual_seed(seed)
    scores, lengths = deque(), []
    for _ in range(n_episodes):
        rewards = []
        state = env.reset()
        for _t in range(max_t):
            action = policy.act(state, generator)
            state, reward, done, _ = env.step(action)
            rewards.append(reward)
            if done:
                break
        scores.append(sum(rewards))
        lengths.append(len(rewards))
    return list(scores), lengths


@pytest.mark.parametrize(("env_id", "host_class"), [("Pixelcopter-PLE-v0", PixelcopterEnv),
                                                    ("reinforce/CartPole-v1", CartPoleEnv)])
def test_course_loop_runs_unchanged(env_id, host_class):
    env = LegacyEnv(env_id)
    assert type(env.unwrapped) is host_class  # the host env, stepped in plain Python
    obs_size = env.observation_space.shape[0]
    policy = Policy(obs_size, env.action_space.n, (16,))
    env.seed(0)
    scores, lengths = notebook_style_episode_loop(env, policy, n_episodes=5, max_t=1000, seed=0)
    assert len(scores) == 5
    assert all(1 <= n <= 1000 for n in lengths)
    if env_id == "Pixelcopter-PLE-v0":
        # every Pixelcopter episode of a random-ish policy ends with the -5 game-over reward
        assert all(s < 20 for s in scores), scores
    else:
        assert all(s == n for s, n in zip(scores, lengths, strict=True))  # +1 per step
    frame = env.render(mode="rgb_array")
    assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.any()


def test_seed_makes_reset_reproducible_and_done_covers_truncation():
    env = LegacyEnv(gymnasium.make("CartPole-v1", max_episode_steps=5))
    env.seed(3)
    first = env.reset()
    env.seed(3)
    assert np.array_equal(first, env.reset())
    done, info, steps = False, {}, 0
    while not done:
        # alternate pushes keep the pole up for 5 steps: the episode is truncated, not terminated
        _, _, done, info = env.step(steps % 2)
        steps += 1
    assert steps == 5 and info["TimeLimit.truncated"] is True


def test_render_rejects_human_mode():
    env = LegacyEnv("Pixelcopter-PLE-v0")
    env.reset()
    with pytest.raises(ValueError, match="rgb_array"):
        env.render(mode="human")
