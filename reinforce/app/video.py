"""Replay videos: one episode of a policy, drawn by the env's own renderer, as an mp4.

The replay plays the policy the way it is evaluated and trained: actions are *sampled* from its
probabilities (a stochastic policy's greedy action is not what was scored), from one seed, so a
replay is reproducible. One frame is drawn after ``reset`` and one after every step, so an
episode of ``L`` steps gives ``L + 1`` frames; ``max_frames`` caps long episodes (the default
cap is the run's horizon, ``max_t`` or the env's own limit, + 1).

Frames come from the functional env's ``render`` (through the gymnasium view, ``render_mode=
"rgb_array"``) and are enlarged by nearest-neighbour repetition to at least 480 pixels on the
short side (Pixelcopter's 48 x 48 screen becomes 480 x 480; CartPole's 600 x 400 stays), then
written with imageio's ffmpeg writer (H.264, yuv420p, which needs even sizes). The file is
written next to its destination and renamed into place, so a failed recording leaves no
half-written video behind.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reinforce.app.runs import RunFolder
from reinforce.checkpoint import disk_full
from reinforce.envs import env_horizon

DEFAULT_FPS = 30
#: Frames are enlarged by an integer factor until their short side is at least this.
MIN_SIDE = 480


class VideoError(Exception):
    """A replay that cannot be written; ``exit_code`` 2 for a bad destination, 1 otherwise."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class Replay:
    path: Path
    n_frames: int
    episode_length: int  # steps played (the video has episode_length + 1 frames)
    episode_return: float
    episode_over: bool  # False when max_frames cut the episode short


def upscale(frame: np.ndarray, min_side: int = MIN_SIDE) -> np.ndarray:
    """``uint8[H, W, 3]`` enlarged by nearest neighbour, with even height and width."""
    frame = np.asarray(frame, np.uint8)
    h, w = frame.shape[:2]
    k = max(1, min_side // min(h, w))
    if k > 1:
        frame = np.repeat(np.repeat(frame, k, axis=0), k, axis=1)
    pad_h, pad_w = frame.shape[0] % 2, frame.shape[1] % 2
    if pad_h or pad_w:
        frame = np.pad(frame, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    return frame


@contextmanager
def _quiet_fork() -> Iterator[None]:
    """Silence JAX's warning about ``os.fork``: ffmpeg is started by fork + exec at once."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called",
                                category=RuntimeWarning)
        yield


class _Mp4:
    """An mp4 written frame by frame to a temporary name, renamed into place on success."""

    def __init__(self, path: Path, fps: int):
        self.path = Path(path)
        self.tmp = self.path.with_name(f".{self.path.stem}.partial.mp4")
        self.fps = int(fps)
        self.writer = None
        self.n_frames = 0

    def __enter__(self) -> _Mp4:
        import imageio.v2 as imageio

        try:
            with _quiet_fork():
                self.writer = imageio.get_writer(
                    self.tmp, format="FFMPEG", mode="I", fps=self.fps, codec="libx264",
                    pixelformat="yuv420p", macro_block_size=2, quality=8,
                    ffmpeg_log_level="error",
                )
        except RuntimeError as exc:  # imageio-ffmpeg finds no ffmpeg binary
            raise VideoError(f"cannot start ffmpeg to write {self.path}: {exc}") from None
        return self

    def append(self, frame: np.ndarray) -> None:
        with _quiet_fork():  # the writer starts ffmpeg with the first frame
            self.writer.append_data(upscale(frame))
        self.n_frames += 1

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self.writer.close()
        except Exception:
            if exc_type is None:
                raise
        if exc_type is None:
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)


def record_policy(policy, env_id: str, out: str | Path, *, fps: int = DEFAULT_FPS,
                  seed: int = 0, max_frames: int, obs: str = "features",
                  frame_stack: int = 1) -> Replay:
    """Play one episode of ``policy`` (a ``reinforce_torch`` ``Policy``) and write it to ``out``.

    The environment is reset with ``seed`` and actions are drawn by ``policy.act`` from a torch
    generator seeded with ``seed``: the same loop a user writes with ``gymnasium.make``. A
    policy that sees frames (``obs="pixels"``) is shown what it saw: its newest gray frame;
    otherwise the video is the env's own screen.
    """
    import gymnasium
    import torch

    from reinforce.envs import draws, gym_id, source
    from reinforce.envs.foreign import gymnasium_env

    if not draws(env_id):
        raise VideoError(f"{env_id} draws no frames (gymnax envs have no renderer here): there "
                         f"is nothing to film", exit_code=2)
    if max_frames < 1:
        raise VideoError(f"max_frames must be at least 1, got {max_frames}", exit_code=2)
    out = Path(out)
    if out.suffix.lower() != ".mp4":
        raise VideoError(f"the video must be an .mp4 file, got {out}", exit_code=2)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise VideoError(f"cannot write the video to {out}: {exc.strerror}",
                         exit_code=2) from None

    if obs == "pixels":
        env = gymnasium.make(gym_id(env_id), obs=obs, frame_stack=frame_stack)

        def frame(observation):  # what the policy saw: its newest frame, gray
            return np.repeat(observation[..., -1:], 3, axis=-1)
    else:
        with _drawing(env_id):
            env = (gymnasium_env(env_id, render_mode="rgb_array")
                   if source(env_id) == "gymnasium"
                   else gymnasium.make(gym_id(env_id), render_mode="rgb_array"))

        def frame(observation):
            with _drawing(env_id):
                return env.render()

    generator = torch.Generator().manual_seed(int(seed))
    observation, _ = env.reset(seed=int(seed))
    steps, total, over = 0, 0.0, False
    try:
        with _Mp4(out, fps) as video:
            video.append(frame(observation))
            while video.n_frames < max_frames:
                observation, reward, terminated, truncated, _ = env.step(
                    policy.act(observation, generator))
                steps += 1
                total += reward
                video.append(frame(observation))
                if terminated or truncated:
                    over = True
                    break
            n_frames = video.n_frames
    except OSError as exc:  # the disk, or the ffmpeg process
        raise VideoError(f"could not write the video {out}: {disk_full(exc, out)}") from None
    return Replay(out, n_frames, steps, total, over)


@contextmanager
def _drawing(env_id: str) -> Iterator[None]:
    """Turns gymnasium's DependencyNotInstalled (pygame, Box2D) into a one-line VideoError."""
    import gymnasium

    try:
        yield
    except gymnasium.error.DependencyNotInstalled as exc:
        raise VideoError(f"{env_id} cannot draw: {str(exc).splitlines()[0]}",
                         exit_code=2) from None


def default_max_frames(folder: RunFolder) -> int:
    """The run's horizon (``max_t``, or the env's own limit if shorter) + 1."""
    return env_horizon(folder.cfg.env_id, folder.cfg.max_t) + 1


def record_folder(folder: RunFolder, out: str | Path, *, fps: int = DEFAULT_FPS, seed: int = 0,
                  max_frames: int | None = None, device: str = "auto") -> Replay:
    """The replay of the best policy of ``folder`` (a run folder, or a pushed agent's) into
    ``out``."""
    from reinforce_torch.devices import torch_device

    if max_frames is None:
        max_frames = default_max_frames(folder)
    return record_policy(folder.policy().to(torch_device(device)), folder.cfg.env_id, Path(out),
                         fps=fps, seed=seed, max_frames=max_frames, obs=folder.cfg.obs,
                         frame_stack=folder.cfg.frame_stack)
