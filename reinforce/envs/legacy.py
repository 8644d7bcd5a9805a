"""The old gym API around any env, so code written for the course notebook's loop runs as is.

    env = LegacyEnv("Pixelcopter-PLE-v0")     # an id, or any gymnasium.Env instance
    state = env.reset()                       # obs only
    state, reward, done, info = env.step(a)   # done = terminated or truncated

``info["TimeLimit.truncated"]`` tells a truncation from a termination, as old gym did.
``seed(n)`` seeds the next reset; ``render(mode="rgb_array")`` is accepted for old code.
"""

from __future__ import annotations

from typing import Any

import gymnasium


class LegacyEnv:
    def __init__(self, env: str | gymnasium.Env, **make_kwargs: Any):
        if isinstance(env, str):
            import reinforce  # noqa: F401  (registers our ids)

            make_kwargs.setdefault("render_mode", "rgb_array")
            env = gymnasium.make(env, **make_kwargs)
        self.env = env
        self.observation_space = env.observation_space
        self.action_space = env.action_space
        self._next_seed: int | None = None

    def seed(self, seed: int | None = None) -> list[int | None]:
        self._next_seed = seed
        return [seed]

    def reset(self):
        obs, _ = self.env.reset(seed=self._next_seed)
        self._next_seed = None
        return obs

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        info = dict(info)
        info["TimeLimit.truncated"] = bool(truncated and not terminated)
        return obs, float(reward), bool(terminated or truncated), info

    def render(self, mode: str = "rgb_array"):
        if mode != "rgb_array":
            raise ValueError(f"only mode='rgb_array' is supported, got {mode!r}")
        return self.env.render()

    def close(self) -> None:
        self.env.close()

    @property
    def unwrapped(self):
        return self.env.unwrapped
