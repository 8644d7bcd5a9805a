"""Envs that are not ours: a gymnax env trains, evaluates and is pushed (dry run) on JAX, a
gymnasium env on torch; the gymnax adapter plays gymnax's own steps; unknown ids, continuous
actions and a backend that cannot play an env are refused in one line, exit 2."""

from __future__ import annotations

import json
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

gymnax = pytest.importorskip("gymnax")  # the [gymnax] extra; the dev extra installs it

import reinforce  # noqa: E402
from reinforce.backend import TrainingStopped  # noqa: E402
from reinforce.checkpoint import load_weights  # noqa: E402
from reinforce.config import preset  # noqa: E402
from reinforce.envs import make  # noqa: E402
from tests.run_folders import error_line, run_main  # noqa: E402

TINY = dict(episodes=32, batch_episodes=16, eval_episodes=10)


@pytest.mark.parametrize("name", ["Acrobot-v1", "Catch-bsuite", "Breakout-MinAtar"])
def test_the_adapter_plays_gymnax_own_steps(name):
    """Our view of a gymnax env, stepped with the same keys and actions as gymnax's
    ``step_env``, gives its observations (a vector, or 0/255 frames), rewards and ends."""
    ours, params = make(f"gymnax:{name}")
    theirs, their_params = gymnax.make(name)
    key = jax.random.key(3)
    obs, state = ours.reset(key, params)
    their_obs, their_state = theirs.reset_env(key, their_params)
    frames = name.endswith("MinAtar")
    assert ours.observation_shape == ((10, 10, 4) if frames else (their_obs.size,))
    assert obs.dtype == (jnp.uint8 if frames else jnp.float32)
    step, their_step = jax.jit(ours.step), jax.jit(theirs.step_env)
    ended = 0
    for t in range(200):
        key, step_key, action_key = jax.random.split(key, 3)
        action = jax.random.randint(action_key, (), 0, ours.num_actions)
        obs, state, reward, terminated, truncated, _ = step(step_key, state, action, params)
        their_obs, their_state, their_reward, done, _ = their_step(
            step_key, their_state, action, their_params)
        want = np.asarray(their_obs, np.float32)
        want = np.round(want * 255).astype(np.uint8) if frames else want.reshape(-1)
        np.testing.assert_array_equal(np.asarray(obs), want, err_msg=f"step {t}")
        assert float(reward) == float(their_reward)
        assert bool(terminated | truncated) == bool(done), f"step {t}"
        if done:
            ended += 1
            key, reset_key = jax.random.split(key)
            obs, state = ours.reset(reset_key, params)
            their_obs, their_state = theirs.reset_env(reset_key, their_params)
    assert ended >= (1 if name != "Acrobot-v1" else 0)


@pytest.mark.parametrize(("argv", "message"), [
    (["--env", "gymnax:Pendulum-v1"], "gymnax:Pendulum-v1 has a Box action space; REINFORCE "
                                      "here takes discrete actions only"),
    (["--env", "gymnasium:MountainCarContinuous-v0"], "has a Box action space"),
    (["--env", "gymnax:Nope-v0"], "unknown gymnax env 'Nope-v0'; gymnax has CartPole-v1, "),
    (["--env", "gymnasium:Nope-v0"], "unknown gymnasium env 'Nope-v0'"),
    (["--env", "Acrobot-v1"], "unknown env 'Acrobot-v1' (gymnasium's: gymnasium:Acrobot-v1); "
                              "choose CartPole-v1, Pixelcopter-PLE-v0, gymnax:NAME"),
    (["--env", "gymnasium:Acrobot-v1", "--backend", "jax"],
     "gymnasium:Acrobot-v1 is a gymnasium env: it plays with --backend torch"),
    (["--env", "gymnasium:Acrobot-v1", "--segment-steps", "64", "--gamma", "0.9",
      "--baseline", "none"],
     "segments are for our envs and gymnax's, not gymnasium:Acrobot-v1"),
    (["--env", "gymnax:Breakout-MinAtar", "--normalize-obs"], "gives no observation range"),
])
def test_envs_that_cannot_be_trained_are_refused_in_one_line(tmp_path, argv, message):
    out = tmp_path / "run"
    code, _, err = run_main(["train", *argv, "--out", str(out)])
    assert code == 2
    assert message in error_line(err)
    assert not out.exists()


def test_a_gymnasium_env_whose_package_is_missing_is_refused_in_one_line(tmp_path,
                                                                        monkeypatch):
    """As LunarLander without Box2D: gymnasium's DependencyNotInstalled, named in one line."""
    import gymnasium

    from reinforce.envs.foreign import gymnasium_info

    def make(name, **kwargs):
        raise gymnasium.error.DependencyNotInstalled(
            'Box2D is not installed, you can install it by run `pip install swig` followed by '
            '`pip install "gymnasium[box2d]"`\nsecond line')

    monkeypatch.setattr(gymnasium, "make", make)
    gymnasium_info.cache_clear()
    out = tmp_path / "run"
    try:
        code, _, err = run_main(["train", "--env", "gymnasium:LunarLander-v3", "--out", str(out)])
    finally:
        gymnasium_info.cache_clear()
    assert code == 2
    assert error_line(err) == ("reinforce: error: gymnasium:LunarLander-v3 needs a package that "
                               "is not installed: Box2D is not installed, you can install it by "
                               "run `pip install swig` followed by `pip install "
                               "\"gymnasium[box2d]\"`")
    assert not out.exists()


def _play_code(card: str, folder) -> str:
    """The card's Python, reading the policy from ``folder`` instead of the Hub."""
    code = re.search(r"```python\n(.*?)```", card, re.S).group(1)
    return re.sub(r'from_pretrained\("[^"]+"\)', f'from_pretrained("{folder}")', code)


def _push_and_play(run, tmp_path, capsys) -> tuple[list[str], str]:
    hub = run.push("user/agent", local_dir=tmp_path / "hub", episodes=5, max_frames=20,
                   echo=lambda line: None)
    card = (hub / "README.md").read_text()
    assert run.env_id in card
    assert json.loads((hub / "results.json").read_text())["env_id"] == run.env_id
    capsys.readouterr()
    exec(_play_code(card, hub), {})  # noqa: S102 - the card's own example, on the pushed folder
    assert re.fullmatch(r"return: -?[0-9.]+\n", capsys.readouterr().out)
    return sorted(p.name for p in hub.iterdir()), card


def test_a_gymnax_env_trains_evaluates_and_pushes_on_jax(tmp_path, capsys):
    run = reinforce.train("gymnax:Catch-bsuite", out=tmp_path / "run", progress=False, **TINY)
    assert (run.backend, run.env_id) == ("jax", "gymnax:Catch-bsuite")
    assert run.metrics["episodic_return"].shape == (1, 2)
    assert -1 <= run.results[0].mean_reward <= 1  # one ball per episode: -1 or +1
    assert run.evaluate(7).n_episodes == 7
    assert run.evaluate(7, backend="torch").n_episodes == 7  # torch plays it through JAX
    files, card = _push_and_play(run, tmp_path, capsys)
    assert "replay.mp4" not in files and "model.safetensors" in files
    assert "there is no `replay.mp4`: gymnax envs draw no frames here" in card
    code, _, err = run_main(["record", str(run.path)])
    assert code == 2
    assert "gymnax:Catch-bsuite draws no frames" in error_line(err)
    assert not (run.path / "replay.mp4").exists()


def test_a_default_run_folder_is_one_portable_name(tmp_path):
    from reinforce.app.runs import new_run_path

    path = new_run_path(tmp_path, "gymnasium:ALE/Pong-v5", "torch")
    assert path.parent == tmp_path
    assert path.name.startswith("gymnasium-ALE-Pong-v5-torch-"), path.name


def test_a_minatar_env_trains_through_the_small_cnn_on_both_backends(tmp_path):
    for backend in ("jax", "torch"):
        run = reinforce.train("gymnax:Breakout-MinAtar", backend, out=tmp_path / backend,
                              progress=False, episodes=4, batch_episodes=2, eval_episodes=2,
                              max_t=50)
        config = json.loads((run.path / "config.json").read_text())
        assert config["convs"] == [[16, 3, 1]]
        assert config["observation_shape"] == [10, 10, 4]
        assert np.isfinite(run.scores).all()


def test_a_gymnasium_env_trains_evaluates_and_pushes_on_torch(tmp_path, capsys):
    run = reinforce.train("gymnasium:FrozenLake-v1", out=tmp_path / "run", progress=False,
                          **TINY)
    assert run.backend == "torch"  # the default for a gymnasium env
    config = json.loads((run.path / "config.json").read_text())
    assert config["observation_shape"] == [16]  # Discrete(16), one-hot
    assert 0 <= run.results[0].mean_reward <= 1
    with pytest.raises(Exception, match="plays with --backend torch"):
        run.evaluate(5, backend="jax")
    files, card = _push_and_play(run, tmp_path, capsys)
    assert "replay.mp4" in files
    assert "FlattenObservation(gymnasium.make(\"FrozenLake-v1\"))" in card


def test_a_stopped_gymnasium_run_resumes_to_the_uninterrupted_numbers(tmp_path):
    settings = dict(episodes=64, batch_episodes=16, eval_episodes=10, progress=False)
    whole = reinforce.train("gymnasium:CartPole-v1", out=tmp_path / "whole", **settings)
    with pytest.raises(TrainingStopped):
        reinforce.train("gymnasium:CartPole-v1", out=tmp_path / "part", stop_after=2,
                        **settings)
    resumed = reinforce.resume(tmp_path / "part", progress=False)
    assert resumed.scores == whole.scores
    np.testing.assert_array_equal(resumed.metrics["policy_loss"], whole.metrics["policy_loss"])
    ours, theirs = (load_weights(r.path / "model.safetensors") for r in (resumed, whole))
    for name in ours:
        np.testing.assert_array_equal(ours[name], theirs[name], err_msg=name)


def test_envs_without_a_preset_of_their_own_take_the_foreign_one():
    catch, acrobot = preset("fast", "gymnax:Catch-bsuite"), preset("fast", "gymnax:Acrobot-v1")
    assert catch.env_id == "gymnax:Catch-bsuite" and catch.baseline == "time"
    assert acrobot.normalize_obs and acrobot.lr == 2 * catch.lr


@pytest.mark.slow
def test_catch_is_learned_on_jax(tmp_path):
    """The foreign preset (300 updates of 16 balls): the policy catches nearly every ball
    (1.0 over 100 episodes for both seeds here)."""
    run = reinforce.train("gymnax:Catch-bsuite", seeds=2, out=tmp_path / "run",
                          progress=False, eval_episodes=100)
    means = [r.mean_reward for r in run.results]
    assert min(means) >= 0.8, means  # a random paddle scores about -0.5
