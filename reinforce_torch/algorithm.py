"""REINFORCE in PyTorch, the algorithm: the course's, B complete episodes per update.

The environment is the shared functional one, stepped for the whole batch by
:class:`~reinforce.envs.batched.BatchedEnv`; the returns come from the shared
``reinforce.returns``. Phases mirror ``reinforce_jax.algorithm``: :func:`collect` ->
:func:`compute_returns` and :func:`compute_weights` (less the value network's V(s) for the
value baseline) -> :func:`update_loss` (the course's loss, the entropy bonus, the value loss),
clipping and Adam. With ``batch_episodes=1`` this is
the course's loop: sample, reward-to-go, normalize, ``loss = -sum(log pi(a|s) * G)``, Adam.
With ``cfg.segment_steps > 0``, :func:`collect_segments` plays fixed-length segments instead,
as the JAX trainer does.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from typing import NamedTuple

import jax
import numpy as np
import torch

from reinforce import envs, returns
from reinforce.architecture import architecture
from reinforce.backend import Metrics
from reinforce.checkpoint import CheckpointError, take
from reinforce.config import SEGMENT_BLOCK, TrainConfig
from reinforce.envs.batched import BatchedEnv
from reinforce.evaluation import play_episodes
from reinforce.host import host
from reinforce_torch.devices import torch_device
from reinforce_torch.policy import Policy


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch; returns a torch generator for action sampling."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


@dataclass
class Rollout:
    """Episodes time-major ``[T, B]`` (numpy); padding after an episode's end is zeros."""

    obs: np.ndarray  # float32 [T, B, S]
    actions: np.ndarray  # int64 [T, B]
    rewards: np.ndarray  # float32 [T, B]
    dones: np.ndarray  # bool [T, B]
    valid: np.ndarray  # bool [T, B]


FIELDS = ("obs", "actions", "rewards", "dones", "valid")


def _play_step(env: BatchedEnv, policy: Policy, generator: torch.Generator, obs: np.ndarray,
               alive: np.ndarray, t: np.ndarray | int, horizon: int,
               record: dict[str, list[np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """One step of both collectors: sample every slot's action, step the env, record (zeros
    for slots whose episode is over). ``t`` is each slot's step in its episode; an episode ends
    when it terminates, truncates or reaches ``horizon`` steps. Returns the next observations
    and ``done``."""
    probs = policy.host_probabilities(obs)  # drawn on the host, whatever the policy's device
    actions = torch.multinomial(probs, 1, generator=generator).squeeze(1).numpy()
    next_obs, reward, terminated, truncated = env.step(actions)
    done = alive & (terminated | truncated | (t + 1 >= horizon))
    record["obs"].append(envs.where_alive(alive, obs))
    record["actions"].append(actions)
    record["rewards"].append(np.where(alive, reward, 0.0).astype(np.float32))
    record["dones"].append(done)
    record["valid"].append(alive.copy())
    return next_obs, done


def collect(
    env: BatchedEnv, policy: Policy, horizon: int, generator: torch.Generator
) -> Rollout:
    """Play one episode in each of the env's ``B`` slots, until all have ended."""
    obs = env.reset()
    alive = np.ones(env.n, bool)
    record: dict[str, list[np.ndarray]] = {k: [] for k in FIELDS}
    for t in range(horizon):
        obs, done = _play_step(env, policy, generator, obs, alive, t, horizon, record)
        alive &= ~done
        if not alive.any():
            break
    return Rollout(**{k: np.stack(v) for k, v in record.items()})


def collect_segments(
    env: BatchedEnv, policy: Policy, n_steps: int, horizon: int, generator: torch.Generator,
    block_len: int = SEGMENT_BLOCK,
) -> Rollout:
    """Play the env's ``B`` slots for ``n_steps`` steps each, with new episodes: at the start of
    every block of ``block_len`` steps, the slots whose episode ended start a new one (the
    padding between is invalid zeros). The layout of the JAX trainer's ``collect_segments``."""
    obs = env.reset()
    alive = np.ones(env.n, bool)
    t = np.zeros(env.n, np.int64)
    record: dict[str, list[np.ndarray]] = {k: [] for k in FIELDS}
    for step in range(n_steps):
        if step % block_len == 0 and step and not alive.all():
            obs = env.renew(obs, alive)
            t[~alive] = 0
            alive[:] = True
        obs, done = _play_step(env, policy, generator, obs, alive, t, horizon, record)
        t += alive
        alive &= ~done
    return Rollout(**{k: np.stack(v) for k, v in record.items()})


def _pad_time(x: np.ndarray, length: int) -> np.ndarray:
    return np.concatenate([x, np.zeros((length - x.shape[0], *x.shape[1:]), x.dtype)])


def _padded_length(length: int) -> int:
    """Time is padded to a power of two so that the shared layer's compiled functions see a
    handful of shapes only."""
    return max(16, 1 << (length - 1).bit_length())


def compute_returns(rollout: Rollout, gamma: float) -> np.ndarray:
    """The discounted reward-to-go of every step ``[T, B]``, from the shared returns layer, on
    the CPU device, where the rollout is."""
    length = rollout.rewards.shape[0]
    padded = _padded_length(length)
    with host():  # numpy in, numpy out: no round trip through an accelerator
        G = returns.discounted_returns(_pad_time(rollout.rewards, padded),
                                       _pad_time(rollout.dones, padded), gamma)
        return np.array(G[:length])


def compute_weights(rollout: Rollout, gamma: float, normalize: bool, baseline: str = "none",
                    values: np.ndarray | None = None, G: np.ndarray | None = None
                    ) -> np.ndarray:
    """Reward-to-go of every step (``G`` if already computed), less the baseline (``values``:
    V(s) of every step, for the value baseline), normalized if asked, from the shared returns
    layer."""
    length = rollout.rewards.shape[0]
    padded = _padded_length(length)
    G = compute_returns(rollout, gamma) if G is None else G
    with host():
        weights = returns.weigh(_pad_time(G, padded), _pad_time(rollout.valid, padded),
                                normalize, baseline,
                                None if values is None else _pad_time(values, padded))
        return np.array(weights[:length])


def learn_mask(valid: np.ndarray, n_learned: int) -> np.ndarray:
    """``valid`` ``[T, B]`` on the first ``n_learned`` steps of the segment, False after."""
    return valid & (np.arange(valid.shape[0]) < n_learned)[:, None]


def episode_stats(rollout: Rollout) -> tuple[np.ndarray, np.ndarray]:
    """Undiscounted return and length of each episode of a rollout, ``[B]`` each."""
    return rollout.rewards.sum(axis=0), rollout.valid.sum(axis=0)


class LossTerms(NamedTuple):
    """The terms of an update's loss, each summed over the learned steps and divided by B."""

    policy_loss: torch.Tensor  # -sum log pi(a|s) * weight
    entropy: torch.Tensor  # sum of the policy's entropy
    value_loss: torch.Tensor  # 0.5 * sum (V(s) - G)^2 (0 without a value network)


def _masked_sum(x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    return torch.where(valid, x, torch.zeros_like(x)).sum()


def update_loss(policy: Policy, value_net: Policy | None, obs: torch.Tensor,
                actions: torch.Tensor, weights: torch.Tensor, targets: torch.Tensor | None,
                valid: torch.Tensor, n_episodes: int, entropy_coef: float, value_coef: float
                ) -> tuple[torch.Tensor, LossTerms]:
    """``policy_loss - entropy_coef * entropy + value_coef * value_loss`` (:class:`LossTerms`)
    and its terms. ``weights`` are constants (the baseline was subtracted from the returns
    before), so the policy's target stays the Monte Carlo return; the value network is fitted
    to ``targets``, the reward-to-go."""
    logp, entropy = policy.log_probs_and_entropy(obs, actions)
    terms = LossTerms(
        policy_loss=-_masked_sum(logp * weights, valid) / n_episodes,
        entropy=_masked_sum(entropy, valid) / n_episodes,
        value_loss=torch.zeros((), device=logp.device),
    )
    if value_net is not None:
        error = value_net.values(obs) - targets
        terms = terms._replace(value_loss=0.5 * _masked_sum(error * error, valid) / n_episodes)
    total = terms.policy_loss - entropy_coef * terms.entropy + value_coef * terms.value_loss
    return total, terms


def reinforce_loss(
    policy: Policy, obs: torch.Tensor, actions: torch.Tensor, weights: torch.Tensor,
    valid: torch.Tensor, n_episodes: int,
) -> torch.Tensor:
    """-sum over valid steps of log pi(a|s) * G, divided by the number of episodes."""
    return update_loss(policy, None, obs, actions, weights, None, valid, n_episodes, 0.0,
                       0.0)[1].policy_loss


class Trainer:
    """One run (one seed, one config: the run's own settings applied) of the torch backend."""

    def __init__(self, cfg: TrainConfig, seed: int, device: str = "cpu"):
        self.cfg = cfg
        self.seed = seed
        self.device = torch_device(device)
        self.generator = seed_everything(seed)
        self.env = envs.batch(cfg.env_id, cfg.batch_episodes, seed, cfg.obs,
                                cfg.frame_stack)
        self.horizon = envs.horizon(self.env.params, cfg.max_t)
        arch = architecture(cfg)
        self.policy = Policy.build(arch).to(self.device)
        #: The state-value network of the value baseline (the policy's shape, one output).
        self.value_net = (Policy.build(arch.value()).to(self.device)
                          if cfg.baseline == "value" else None)
        self.optimizer = torch.optim.Adam(self.parameters(), lr=cfg.lr)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda u: cfg.lr_factor(u)
        )
        self.updates_done = 0

    def networks(self) -> dict[str, Policy]:
        """The trained networks by checkpoint prefix: the policy, and the value network."""
        nets = {"policy": self.policy}
        if self.value_net is not None:
            nets["value"] = self.value_net
        return nets

    def parameters(self) -> list[torch.nn.Parameter]:
        """Every trained parameter, in Adam's order: the policy's, then the value network's."""
        return [p for net in self.networks().values() for p in net.parameters()]

    def update(self) -> Metrics:
        """One REINFORCE update: collect -> returns -> update."""
        cfg = self.cfg
        if cfg.segment_steps:
            played = collect_segments(self.env, self.policy, cfg.segment_steps, self.horizon,
                                      self.generator)
            rollout = dataclasses.replace(played, valid=learn_mask(played.valid,
                                                                   cfg.segment_learned))
        else:
            rollout = played = collect(self.env, self.policy, self.horizon, self.generator)
        G = compute_returns(rollout, cfg.gamma)
        obs, actions, targets, valid = (torch.from_numpy(x).to(self.device) for x in (
            rollout.obs, rollout.actions, G, rollout.valid))
        values = None
        if self.value_net is not None:
            with torch.no_grad():
                values = self.value_net.values(obs).cpu().numpy()
        weights = torch.from_numpy(compute_weights(
            rollout, cfg.gamma, cfg.normalize_returns, cfg.baseline, values, G)).to(self.device)
        loss, terms = update_loss(self.policy, self.value_net, obs, actions, weights, targets,
                                  valid, self.env.n, cfg.entropy_coef, cfg.value_coef)
        self.optimizer.zero_grad()
        loss.backward()
        if cfg.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.parameters(), cfg.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.updates_done += 1
        live = int(played.valid.sum())
        if cfg.segment_steps:
            with host():
                mean_return, mean_length = returns.segment_means(
                    returns.segment_episodes(played.rewards, played.dones, played.valid))
        else:
            ep_return, ep_length = episode_stats(played)
            mean_return, mean_length = ep_return.mean(), ep_length.mean()
        learned = max(int(rollout.valid.sum()), 1)
        return Metrics(
            episodic_return=float(mean_return),
            episode_length=float(mean_length),
            policy_loss=float(terms.policy_loss.item()),
            env_steps=live,
            padded_steps=int(played.valid.size) - live,
            entropy=float(terms.entropy.item()) * self.env.n / learned,
            value_loss=float(terms.value_loss.item()),
        )

    def run(self, n_updates: int) -> list[Metrics]:
        return [self.update() for _ in range(n_updates)]

    # --- checkpoints: named numpy arrays, no pickle ---------------------------------------

    def state_arrays(self) -> dict[str, np.ndarray]:
        """Everything the next update depends on: weights (``policy/...``, ``value/...``),
        Adam's moments and step counts, the action generator's state, the env's key and the
        update counter."""
        out = {f"{prefix}/{k}": v.detach().cpu().numpy().copy()
               for prefix, net in self.networks().items() for k, v in net.state_dict().items()}
        for i, slots in self.optimizer.state_dict()["state"].items():
            for slot, value in slots.items():
                out[f"adam/{i}/{slot}"] = torch.as_tensor(value).detach().cpu().numpy().copy()
        out["generator"] = self.generator.get_state().numpy().copy()
        out["env_key"] = np.asarray(jax.random.key_data(self.env.key)).copy()
        out["updates_done"] = np.asarray(self.updates_done, np.int64)
        return out

    def load_state_arrays(self, arrays: dict[str, np.ndarray], source: str = "checkpoint"
                          ) -> None:
        """The inverse of :meth:`state_arrays`, each array checked against this trainer's."""
        fresh = self.state_arrays()
        updates = int(take(arrays, "updates_done", source, (), np.int64))
        if not 0 <= updates <= self.cfg.n_updates:
            raise CheckpointError(f"{source}: updates_done {updates} is outside "
                                  f"0..{self.cfg.n_updates}")
        shapes = [tuple(p.shape) for p in self.parameters()]
        slots = ("step", "exp_avg", "exp_avg_sq")
        expected = set(fresh)  # Adam has no state before its first step
        if updates:
            expected |= {f"adam/{i}/{slot}" for i in range(len(shapes)) for slot in slots}
        if set(arrays) != expected:
            extra, missing = sorted(set(arrays) - expected), sorted(expected - set(arrays))
            parts = [f"missing {', '.join(missing[:4])}"] if missing else []
            parts += [f"unexpected {', '.join(extra[:4])}"] if extra else []
            raise CheckpointError(f"{source} is not a torch training state of this run "
                                  f"({'; '.join(parts)})")
        for prefix, net in self.networks().items():
            net.load_state_dict({
                name: torch.from_numpy(take(arrays, f"{prefix}/{name}", source,
                                            tuple(value.shape), np.float32).copy()
                                       ).to(self.device)
                for name, value in net.state_dict().items()})
        optimizer = self.optimizer.state_dict()
        if updates:
            optimizer["state"] = {
                i: {"step": torch.from_numpy(take(arrays, f"adam/{i}/step", source, (),
                                                  np.float32).copy()),
                    **{slot: torch.from_numpy(take(arrays, f"adam/{i}/{slot}", source, shape,
                                                   np.float32).copy())
                       for slot in ("exp_avg", "exp_avg_sq")}}
                for i, shape in enumerate(shapes)
            }
        self.optimizer.load_state_dict(optimizer)  # moves the moments to the weights' device
        # The schedule is a function of the update count: set it as LambdaLR.step() would.
        self.scheduler.last_epoch = updates
        for group, base, factor in zip(self.optimizer.param_groups, self.scheduler.base_lrs,
                                       self.scheduler.lr_lambdas, strict=True):
            group["lr"] = base * factor(updates)
        self.scheduler._last_lr = [group["lr"] for group in self.optimizer.param_groups]
        generator = take(arrays, "generator", source, fresh["generator"].shape, np.uint8)
        self.generator.set_state(torch.from_numpy(generator.copy()))
        key = take(arrays, "env_key", source, fresh["env_key"].shape, fresh["env_key"].dtype)
        self.env.key = jax.random.wrap_key_data(key.copy())
        self.updates_done = updates

    def non_finite(self, metrics: Metrics) -> str | None:
        """What turned non-finite in the last update (loss, gradient, weight), or None."""
        if not np.isfinite(metrics.policy_loss):
            return "policy loss"
        params = [(f"{prefix}.{name}", p) for prefix, net in self.networks().items()
                  for name, p in net.named_parameters()]
        for name, p in params:
            if p.grad is not None and not torch.isfinite(p.grad).all():
                return f"gradient ({name})"
        for name, p in params:
            if not torch.isfinite(p).all():
                return f"weight ({name})"
        return None

    def evaluate(self, n_episodes: int, seed: int) -> np.ndarray:
        """Undiscounted returns of ``n_episodes`` episodes of the policy, played from ``seed``."""
        return play_episodes(self.cfg, self.policy.numpy_probabilities, n_episodes, seed)
