"""Pixel observations (``--obs pixels``): the frames, the gymnasium view, and a pixel run folder
through everything downstream (evaluate, record, push, from_pretrained, resume)."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium
import jax
import numpy as np
import pytest
from run_folders import run_main

from reinforce.app.runs import RunFolder
from reinforce.architecture import CNN, architecture
from reinforce.config import ConfigError, TrainConfig, preset
from reinforce.envs import make
from reinforce.envs.pixels import first_stack, grayscale, push_frame
from reinforce_torch.policy import Policy

PIXELS = ["--env", "Pixelcopter-PLE-v0", "--obs", "pixels", "--frame-stack", "2", "--hidden",
          "16", "--segment-steps", "0", "--gamma", "0.99", "--batch-episodes", "2",
          "--episodes", "4", "--max-t", "120", "--eval-episodes", "3", "--quiet"]


def test_gray_frames_are_integer_arithmetic_the_same_in_numpy_and_jax():
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3)).astype(np.uint8)
    r, g, b = (rgb[..., i].astype(int) for i in range(3))
    want = (299 * r + 587 * g + 114 * b) // 1000
    np.testing.assert_array_equal(grayscale(rgb), want)
    np.testing.assert_array_equal(np.asarray(grayscale(jax.numpy.asarray(rgb))), want)
    stack = first_stack(grayscale(rgb), 3)
    assert stack.shape == (5, 7, 3) and (stack == want[..., None]).all()
    pushed = push_frame(stack, np.zeros((5, 7), np.uint8))
    assert (pushed[..., :2] == want[..., None]).all() and not pushed[..., 2].any()


def test_the_functional_env_sees_its_own_rendered_frames():
    env, params = make("Pixelcopter-PLE-v0", "pixels", 3)
    assert env.observation_shape == (48, 48, 3) and env.observation_dtype == np.uint8
    obs, state = jax.jit(env.reset)(jax.random.key(0), params)
    first = np.asarray(grayscale(env.render(state, params)))
    assert (np.asarray(obs) == first[..., None]).all()
    step = jax.jit(env.step)
    for i in range(5):
        previous = np.asarray(obs)
        obs, state, *_ = step(jax.random.key(i), state, i % 2, params)
        np.testing.assert_array_equal(np.asarray(obs)[..., :2], previous[..., 1:])
        np.testing.assert_array_equal(np.asarray(obs)[..., 2],
                                      np.asarray(grayscale(env.render(state, params))))


def test_the_gymnasium_view_gives_the_same_kind_of_frames():
    env = gymnasium.make("Pixelcopter-PLE-v0", obs="pixels", frame_stack=2)
    assert env.observation_space == gymnasium.spaces.Box(0, 255, (48, 48, 2), np.uint8)
    obs, _ = env.reset(seed=3)
    assert env.observation_space.contains(obs)
    for action in (0, 1, 1, 0):
        previous = obs
        obs, *_ = env.step(action)
        np.testing.assert_array_equal(obs[..., 0], previous[..., 1])
        np.testing.assert_array_equal(obs[..., 1], grayscale(env.render()))
    with pytest.raises(ValueError, match="frame_stack stacks frames"):
        gymnasium.make("Pixelcopter-PLE-v0", frame_stack=2)


@pytest.mark.parametrize(("changes", "message"), [
    ({"obs": "voxels"}, "unknown observation mode 'voxels'"),
    ({"obs": "pixels", "env_id": "CartPole-v1"}, "obs pixels is for Pixelcopter-PLE-v0"),
    ({"frame_stack": 2}, "frame_stack stacks frames: it needs obs pixels"),
    ({"obs": "pixels", "frame_stack": 0}, "frame_stack must be at least 1"),
])
def test_bad_observation_settings_are_refused(changes, message):
    base = TrainConfig(env_id="Pixelcopter-PLE-v0", gamma=0.99)
    with pytest.raises(ConfigError, match=message):
        base.replace(**changes)


def test_the_pixel_presets_are_for_pixelcopter():
    for name in ("pixels", "pixels-gpu"):
        cfg = preset(name, "Pixelcopter-PLE-v0")
        assert cfg.obs == "pixels" and architecture(cfg).convs == CNN
        with pytest.raises(ConfigError, match=f"preset {name} is for Pixelcopter-PLE-v0"):
            preset(name, "CartPole-v1")


def test_the_long_preset_is_the_fast_one_trained_longer():
    fast, long = preset("fast", "Pixelcopter-PLE-v0"), preset("long", "Pixelcopter-PLE-v0")
    assert long.n_updates > 5 * fast.n_updates
    assert long.replace(n_training_episodes=fast.n_training_episodes) == fast
    with pytest.raises(ConfigError, match="preset long is for Pixelcopter-PLE-v0"):
        preset("long", "CartPole-v1")


@pytest.fixture(scope="module", params=["jax", "torch"])
def pixel_run(request, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pixels") / "run"
    code, _, err = run_main(["train", "--backend", request.param, "--out", str(out), *PIXELS])
    assert code == 0, err
    return out


def test_a_pixel_run_folder_describes_its_cnn(pixel_run):
    config = json.loads((pixel_run / "config.json").read_text())
    assert config["observation_shape"] == [48, 48, 2] and config["convs"] == [list(c)
                                                                               for c in CNN]
    assert config["train"]["obs"] == "pixels" and config["train"]["frame_stack"] == 2
    folder = RunFolder.load(pixel_run)
    assert folder.arch.convs == CNN
    assert folder.policy().export().keys() == folder.arch.expected_shapes().keys()


def test_a_pixel_run_evaluates_on_both_backends(pixel_run):
    for backend in ("jax", "torch"):
        code, out, err = run_main(["evaluate", str(pixel_run), "--episodes", "3", "--backend",
                                   backend])
        assert code == 0, err
        assert "over 3 episodes" in out


def test_a_pixel_replay_shows_the_frames_the_agent_saw(pixel_run, tmp_path):
    import imageio.v3 as iio

    video = tmp_path / "replay.mp4"
    code, out, err = run_main(["record", str(pixel_run), "--out", str(video), "--max-frames",
                               "20"])
    assert code == 0, err
    frames = iio.imread(video)
    assert frames.shape[1:3] == (480, 480)  # 48 x 48, enlarged
    # gray frames (the agent's view), not the screen's green terrain
    middle = frames[len(frames) // 2].astype(int)
    assert np.abs(middle[..., 0] - middle[..., 1]).max() < 16


def test_a_pixel_agent_pushes_and_loads_with_from_pretrained(pixel_run, tmp_path):
    hub = tmp_path / "hub"
    code, _, err = run_main(["push", str(pixel_run), "--local-dir", str(hub), "--episodes",
                             "2", "--max-frames", "10"])
    assert code == 0, err
    card = (hub / "README.md").read_text()
    assert "gray" in card and 'obs="pixels", frame_stack=2' in card
    policy = Policy.from_pretrained(hub)
    assert policy.arch == RunFolder.load(pixel_run).arch
    env = gymnasium.make("Pixelcopter-PLE-v0", obs="pixels", frame_stack=2)
    obs, _ = env.reset(seed=0)
    assert policy.act(obs) in (0, 1)


def test_a_stopped_pixel_run_resumes(tmp_path):
    out = tmp_path / "run"
    code, _, err = run_main(["train", "--backend", "jax", "--out", str(out), "--stop-after", "1",
                             "--chunk-updates", "1", *PIXELS])
    assert code == 0, err
    assert not (out / "model.safetensors").exists()
    code, _, err = run_main(["train", "--resume", str(out), "--quiet"])
    assert code == 0, err
    assert (out / "model.safetensors").exists()
