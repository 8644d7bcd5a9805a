"""``reinforce record``: the replay mp4 of either env, decoded again: one frame per step + 1,
frames that show something, Pixelcopter enlarged, the --max-frames cap, and bad input."""

from __future__ import annotations

from pathlib import Path

import gymnasium
import imageio.v2 as imageio
import numpy as np
import pytest
import torch
from run_folders import error_line, run_main, write_run

import reinforce  # noqa: F401  (registers the gymnasium ids)
from reinforce.app.runs import RunFolder
from reinforce.app.video import upscale

#: decoding starts ffmpeg (fork + exec at once), which JAX warns about
pytestmark = pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")
#: gymnasium ids of our own envs (``CartPole-v1`` alone is gymnasium's implementation)
GYM_IDS = {"CartPole-v1": "reinforce/CartPole-v1", "Pixelcopter-PLE-v0": "Pixelcopter-PLE-v0"}


def decode(path: Path) -> list[np.ndarray]:
    with imageio.get_reader(path, format="FFMPEG") as reader:
        return [np.asarray(frame) for frame in reader]


def replay_by_hand(folder: RunFolder, seed: int) -> tuple[int, np.ndarray]:
    """The episode the video should show, played through gymnasium: (length, first frame)."""
    policy = folder.policy()
    env = gymnasium.make(GYM_IDS[folder.cfg.env_id], render_mode="rgb_array")
    generator = torch.Generator().manual_seed(seed)
    obs, _ = env.reset(seed=seed)
    first = env.render()
    steps, done = 0, False
    while not done:
        obs, _, terminated, truncated, _ = env.step(policy.act(obs, generator))
        steps += 1
        done = terminated or truncated
    return steps, first


@pytest.mark.parametrize(("env_id", "backend", "size"), [
    ("CartPole-v1", "torch", (400, 600)),
    ("Pixelcopter-PLE-v0", "jax", (480, 480)),
], ids=["CartPole-v1", "Pixelcopter-PLE-v0"])
def test_record_writes_one_frame_per_step_plus_one(tmp_path, env_id, backend, size):
    run = write_run(tmp_path / "run", env_id, backend)
    out = tmp_path / "videos" / "replay.mp4"
    code, printed, err = run_main(["record", str(run.path), "--out", str(out), "--seed", "5",
                                   "--fps", "25"])
    assert code == 0, err
    length, first = replay_by_hand(run, seed=5)
    assert 1 <= length < 200  # the episode ended before the cap
    frames = decode(out)
    assert len(frames) == length + 1
    assert f"{length + 1} frames at 25 fps, {length} steps" in printed
    for frame in frames:
        assert frame.shape == (*size, 3)
        assert frame.std() > 5 and len(np.unique(frame.reshape(-1, 3), axis=0)) > 1
    # the first frame is the env's own drawing of the reset state, enlarged (up to the codec)
    assert np.abs(frames[0].astype(float) - upscale(first).astype(float)).mean() < 8
    assert not list(out.parent.glob(".*partial*"))  # no temporary file left


def test_max_frames_caps_the_video_and_default_path_is_in_the_run(tmp_path):
    run = write_run(tmp_path / "run", "CartPole-v1", "torch")
    code, printed, err = run_main(["record", str(run.path), "--max-frames", "4"])
    assert code == 0, err
    assert len(decode(run.path / "replay.mp4")) == 4
    assert "3 steps" in printed and "cut at --max-frames" in printed


def test_upscale_is_nearest_neighbour_with_even_sides():
    small = np.arange(48 * 48 * 3, dtype=np.uint8).reshape(48, 48, 3)
    big = upscale(small)
    assert big.shape == (480, 480, 3)
    np.testing.assert_array_equal(big[::10, ::10], small)
    np.testing.assert_array_equal(big[9::10, 9::10], small)
    cart = np.zeros((400, 600, 3), np.uint8)
    assert upscale(cart).shape == (400, 600, 3)
    assert upscale(np.zeros((5, 7, 3), np.uint8), min_side=1).shape == (6, 8, 3)


@pytest.mark.parametrize(("argv", "message"), [
    (["--out", "{tmp}/replay.gif"], "must be an .mp4 file"),
    (["--fps", "0"], "must be at least 1"),
    (["--max-frames", "-3"], "must be at least 1"),
], ids=["not-mp4", "fps", "max-frames"])
def test_record_bad_input_exits_2_one_line(tmp_path, argv, message):
    run = write_run(tmp_path / "run", "CartPole-v1", "torch")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    code, _, err = run_main(["record", str(run.path), *argv])
    assert code == 2, err
    assert message in error_line(err)
    assert not list(tmp_path.rglob("*.mp4")) and not list(tmp_path.rglob("*.gif"))
