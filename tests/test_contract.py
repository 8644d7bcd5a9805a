"""One set of tests for what both backends promise (``reinforce.backend``), run on each.

A divergence between the backends fails here: the layout of a rollout, what the metrics mean,
the result of ``train_many``, determinism, the evaluation seeding rule, resuming a stopped
training, and that updates learn. The algorithm is reached through a small adapter per
backend (:class:`Side`); everything else through the contract itself.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import numpy as np
import pytest
import torch

from reinforce.app import backends
from reinforce.architecture import architecture
from reinforce.backend import (
    METRIC_NAMES,
    Metrics,
    Supervisor,
    TrainingStopped,
    TrainResult,
    evaluation_seed,
)
from reinforce.checkpoint import CheckpointError, TrainingCheckpoint
from reinforce.config import RunSpec, TrainConfig, grid, preset
from reinforce.envs import CartPole
from reinforce.envs.batched import BatchedEnv
from reinforce_jax import algorithm as jt
from reinforce_jax.policy import init_params, make_policy
from reinforce_torch import algorithm as tt
from reinforce_torch.policy import Policy

ENV = CartPole()


class Played(NamedTuple):
    """A rollout time-major ``[T, B]`` in numpy, ``T`` the steps the backend computed."""

    obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    dones: np.ndarray
    valid: np.ndarray


class Side:
    """The algorithm of one backend, seen the same way for both."""

    name: str
    #: Computed steps per env come in multiples of this (JAX: chunks; torch: single steps).
    granularity: int

    def collect(self, B: int, horizon: int, seed: int) -> Played:
        raise NotImplementedError

    def fixed_batch_losses(self, cfg: TrainConfig, n_updates: int) -> np.ndarray:
        """The losses of ``n_updates`` updates that all learn from one recorded batch."""
        raise NotImplementedError


class JaxSide(Side):
    name, granularity = "jax", 16

    def collect(self, B, horizon, seed):
        policy = make_policy((16,), ENV.num_actions)
        params = init_params(policy, jax.random.key(seed), ENV.observation_size)
        rollout, n_played = jax.jit(lambda p, k: jt.collect(
            ENV, ENV.default_params(), policy, p, k, B, horizon, self.granularity))(
                params, jax.random.key(seed + 1))
        assert not np.asarray(rollout.valid)[int(n_played):].any()
        flat = jax.tree.map(np.asarray, rollout.flat())
        return Played(*(x[:int(n_played) * rollout.valid.shape[1]] for x in flat))

    def fixed_batch_losses(self, cfg, n_updates):
        trainer = jt.Trainer(cfg)
        state = trainer.init(jax.random.key(0))
        batch = jax.jit(trainer.collect, static_argnums=2)(state.params, jax.random.key(1),
                                                            cfg.batch_episodes)
        trainer.collect = lambda params, key, n: batch
        _, metrics = jax.jit(lambda s: trainer.run(s, n_updates))(state)
        return np.asarray(metrics.policy_loss)


class TorchSide(Side):
    name, granularity = "torch", 1

    def collect(self, B, horizon, seed):
        generator = tt.seed_everything(seed)
        rollout = tt.collect(BatchedEnv("CartPole-v1", B, seed), Policy(4, 2, (16,)), horizon,
                             generator)
        return Played(rollout.obs, rollout.actions, rollout.rewards, rollout.dones,
                      rollout.valid)

    def fixed_batch_losses(self, cfg, n_updates):
        batch = tt.collect(BatchedEnv("CartPole-v1", cfg.batch_episodes, 1),
                           Policy(4, 2, cfg.hidden_sizes), 500, tt.seed_everything(1))
        original, tt.collect = tt.collect, lambda env, policy, horizon, generator: batch
        try:
            return np.array([m.policy_loss for m in tt.Trainer(cfg, seed=0).run(n_updates)])
        finally:
            tt.collect = original


SIDES = {"jax": JaxSide(), "torch": TorchSide()}


@pytest.fixture(params=list(SIDES))
def side(request) -> Side:
    return SIDES[request.param]


# --- the rollout ------------------------------------------------------------------------------


def check_rollout(played: Played, B: int, granularity: int) -> np.ndarray:
    """The layout both backends' rollouts share; the episode lengths."""
    T = played.valid.shape[0]
    assert played.obs.shape == (T, B, 4) and played.obs.dtype == np.float32
    assert played.actions.shape == (T, B) and np.issubdtype(played.actions.dtype, np.integer)
    assert played.rewards.dtype == np.float32
    assert played.valid.dtype == bool and played.dones.dtype == bool
    lengths = played.valid.sum(axis=0)
    assert np.all(lengths >= 1)
    # each column: one episode from step 0, closed by one done on its last step
    np.testing.assert_array_equal(played.valid, np.arange(T)[:, None] < lengths[None, :])
    np.testing.assert_array_equal(played.dones.sum(axis=0), np.ones(B))
    np.testing.assert_array_equal(played.dones.argmax(axis=0), lengths - 1)
    # rewards 1 per step of an episode (CartPole), zero on padding; obs zero on padding
    np.testing.assert_array_equal(played.rewards, played.valid.astype(np.float32))
    assert not played.obs[~played.valid].any()
    assert np.all(np.abs(played.obs[0]) <= 0.05)
    assert set(np.unique(played.actions[played.valid])) <= {0, 1}
    # play stops once every episode has ended: at the longest one, rounded to the granularity
    assert -(-lengths.max() // granularity) * granularity == T
    return lengths


def test_a_rollout_holds_one_episode_per_column(side):
    lengths = check_rollout(side.collect(B=6, horizon=500, seed=0), 6, side.granularity)
    assert len(set(lengths.tolist())) > 1 and lengths.max() < 500


def test_episodes_are_cut_at_the_horizon(side):
    # CartPole cannot fall within 5 steps of a reset, so every episode is cut by the horizon.
    played = side.collect(B=3, horizon=5, seed=0)
    np.testing.assert_array_equal(check_rollout(played, 3, min(side.granularity, 5)), [5, 5, 5])


def test_updates_on_one_fixed_batch_lower_its_loss(side):
    """Probe: Adam steps on one recorded batch must lower that batch's REINFORCE loss."""
    cfg = TrainConfig(env_id="CartPole-v1", hidden_sizes=(16,), lr=1e-2, gamma=1.0,
                      n_training_episodes=80, batch_episodes=4)
    loss = side.fixed_batch_losses(cfg, 20)
    assert np.all(np.isfinite(loss))
    assert loss[-1] < loss[0] - 0.5 * abs(loss[0]) - 1.0, (
        f"loss went {loss[0]:.3f} -> {loss[-1]:.3f}")
    assert np.sum(np.diff(loss) < 0) >= 15, f"loss not decreasing: {np.round(loss, 3)}"


# --- train_many through the contract ------------------------------------------------------------

B = 3
CFG = TrainConfig(env_id="CartPole-v1", hidden_sizes=(16,), lr=1e-2, gamma=1.0,
                  n_training_episodes=8 * B, batch_episodes=B, n_evaluation_episodes=6,
                  chunk_updates=2)
SEEDS, LRS = [0, 1], [1e-2, 3e-2]


def _runs(seeds=SEEDS, lrs=LRS) -> list[RunSpec]:
    return [RunSpec.of(seed, lr=lr) for seed, lr in zip(seeds, lrs, strict=True)]


def _train(name: str, seeds=SEEDS, lrs=LRS, **kwargs) -> TrainResult:
    return backends.get(name).train_many(CFG, _runs(seeds, lrs), device="cpu", **kwargs)


@pytest.fixture(scope="module")
def results() -> dict[str, tuple[TrainResult, TrainResult, TrainResult]]:
    """Per backend: the two runs, the same again, and the runs with the seeds swapped."""
    return {name: (_train(name), _train(name), _train(name, seeds=SEEDS[::-1]))
            for name in SIDES}


def _assert_same(a: TrainResult, b: TrainResult) -> None:
    for name in METRIC_NAMES:
        np.testing.assert_array_equal(getattr(a.metrics, name), getattr(b.metrics, name),
                                      err_msg=name)
    for wa, wb in zip(a.weights, b.weights, strict=True):
        assert wa.keys() == wb.keys()
        for k in wa:
            np.testing.assert_array_equal(wa[k], wb[k], err_msg=k)
    np.testing.assert_array_equal(a.eval_returns, b.eval_returns)


def test_train_many_returns_the_shared_result(results, side):
    result = results[side.name][0]
    R, U = len(SEEDS), CFG.n_updates
    assert isinstance(result, TrainResult) and isinstance(result.metrics, Metrics)
    shapes = architecture(CFG).expected_shapes()
    for weights in result.weights:
        assert {k: v.shape for k, v in weights.items()} == shapes
        assert all(v.dtype == np.float32 for v in weights.values())
    for name in METRIC_NAMES:
        values = np.asarray(getattr(result.metrics, name), np.float64)
        assert values.shape == (R, U) and np.all(np.isfinite(values)), name
    assert result.wall.shape == (R, U) and np.all(np.diff(result.wall, axis=1) >= 0)
    assert result.eval_returns.shape == (R, CFG.n_evaluation_episodes)


def test_metrics_mean_the_same_in_both_backends(results, side):
    m = results[side.name][0].metrics
    np.testing.assert_allclose(m.env_steps, np.asarray(m.episode_length) * B)
    np.testing.assert_allclose(m.episodic_return, m.episode_length)  # reward 1 per step
    assert np.all(m.padded_steps >= 0)
    computed = np.asarray(m.env_steps) + np.asarray(m.padded_steps)
    # every env computes whole multiples of the granularity, at least its longest episode
    granularity = jt.Trainer(CFG).chunk_len if side.name == "jax" else side.granularity
    assert np.all(computed % (granularity * B) == 0)
    assert np.all(computed >= np.asarray(m.episode_length) * B)


def test_the_same_seed_gives_the_same_numbers(results, side):
    first, again, swapped = results[side.name]
    _assert_same(first, again)
    # a run's numbers are its own seed's (and lr's), whatever else trains beside it
    assert not np.array_equal(first.metrics.policy_loss[0], first.metrics.policy_loss[1])
    assert not np.array_equal(first.metrics.policy_loss[0], swapped.metrics.policy_loss[0])


def test_the_final_evaluation_plays_from_the_evaluation_seed(results, side):
    result = results[side.name][0]
    backend = backends.get(side.name)
    for i, seed in enumerate(SEEDS):
        cfg = CFG.replace(lr=LRS[i])
        again = backend.evaluate(cfg, result.weights[i], CFG.n_evaluation_episodes,
                                 evaluation_seed(seed), "cpu")
        np.testing.assert_array_equal(again, result.eval_returns[i])


class Recorder(Supervisor):
    """Keeps the last checkpoint in memory, as a run folder's session keeps it on disk."""

    checkpoint: TrainingCheckpoint | None = None

    def save(self, arrays, total_done, label, status="running"):
        super().save(arrays, total_done, label, status)
        self.checkpoint = TrainingCheckpoint(arrays(), {
            "backend": self.backend_name, "total_updates_done": int(total_done),
            "total_updates": self.total_updates, "at": label})


def test_a_stopped_training_resumes_to_the_same_numbers(results, side):
    backend = backends.get(side.name)
    total = backends.total_updates(backend, CFG, len(SEEDS))
    stop_at = total // 2 + 1  # inside the second chunk of the first half
    stopping = Recorder.for_runs(_runs(), total, stop_after=stop_at, every_seconds=1e9)
    stopping.backend_name = side.name
    with pytest.raises(TrainingStopped):
        _train(side.name, supervisor=stopping)
    checkpoint = stopping.checkpoint
    assert 0 < checkpoint.progress["total_updates_done"] < total
    backend.check_checkpoint(CFG, _runs(), checkpoint, "in memory")
    resuming = Recorder.for_runs(_runs(), total, resume=checkpoint)
    resuming.backend_name = side.name
    _assert_same(_train(side.name, supervisor=resuming), results[side.name][0])


@pytest.mark.slow
def test_learns_cartpole_with_the_course_settings(side):
    """150 episodes of the course's settings, seed 0 (a random policy averages ~22)."""
    cfg = preset("notebook", "CartPole-v1").replace(n_training_episodes=150,
                                                     n_evaluation_episodes=10)
    torch.manual_seed(0)
    returns = backends.get(side.name).train_many(cfg, [RunSpec.of(0, lr=cfg.lr)],
                                                 device="cpu").metrics.episodic_return[0]
    first, last = returns[:50].mean(), returns[-50:].mean()
    message = (f"{side.name}: mean return of the first 50 updates {first:.1f}, of the last 50 "
               f"{last:.1f}")
    print(message)
    assert last >= 100, message
    assert last >= 2 * first, message


# --- the value baseline, entropy and clipping; a sweep of them ---------------------------------

SWEEP_CFG = CFG.replace(baseline="value", max_grad_norm=0.5)
SWEEP = {"entropy_coef": [0.0, 0.05], "value_coef": [0.5, 2.0]}


def _sweep_runs() -> list[RunSpec]:
    cfg, runs = grid(SWEEP_CFG, [0], SWEEP)
    assert cfg == SWEEP_CFG.replace(entropy_coef=0.0, value_coef=0.5) and len(runs) == 4
    return runs


@pytest.fixture(scope="module")
def sweeps() -> dict[str, TrainResult]:
    return {name: backends.get(name).train_many(SWEEP_CFG, _sweep_runs(), device="cpu")
            for name in SIDES}


def test_each_run_of_a_sweep_trains_with_its_own_settings(sweeps, side):
    """A run of a sweep gives the numbers of the same config trained alone, and the settings
    change them."""
    result, runs = sweeps[side.name], _sweep_runs()
    assert np.all(result.metrics.value_loss > 0) and np.all(result.metrics.entropy > 0)
    alone = backends.get(side.name).train_many(runs[3].config(SWEEP_CFG),
                                               [RunSpec.of(0, lr=CFG.lr)], device="cpu")
    # The same episodes; losses and weights to float32 rounding (a program of 4 runs sums
    # in another order than a program of one).
    np.testing.assert_array_equal(alone.metrics.episode_length[0],
                                  result.metrics.episode_length[3])
    np.testing.assert_allclose(alone.metrics.policy_loss[0], result.metrics.policy_loss[3],
                               rtol=1e-4, atol=1e-4)
    for a, b in zip(alone.weights[0].values(), result.weights[3].values(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    first = result.weights[0]["layers.0.weight"]
    for other in result.weights[1:]:
        assert np.abs(other["layers.0.weight"] - first).max() > 1e-6, "a setting changed nothing"


def test_a_stopped_sweep_with_a_value_baseline_resumes_to_the_same_numbers(sweeps, side):
    backend, runs = backends.get(side.name), _sweep_runs()
    total = backends.total_updates(backend, SWEEP_CFG, len(runs))
    stopping = Recorder.for_runs(runs, total, stop_after=total // 2 + 1, every_seconds=1e9)
    stopping.backend_name = side.name
    with pytest.raises(TrainingStopped):
        backend.train_many(SWEEP_CFG, runs, supervisor=stopping, device="cpu")
    checkpoint = stopping.checkpoint
    assert any("value" in name for name in checkpoint.arrays), "no value network saved"
    backend.check_checkpoint(SWEEP_CFG, runs, checkpoint, "in memory")
    with pytest.raises(CheckpointError):  # the same checkpoint without a value network
        backend.check_checkpoint(SWEEP_CFG.replace(baseline="none"), runs, checkpoint, "here")
    resuming = Recorder.for_runs(runs, total, resume=checkpoint)
    resuming.backend_name = side.name
    _assert_same(backend.train_many(SWEEP_CFG, runs, supervisor=resuming, device="cpu"),
                 sweeps[side.name])
