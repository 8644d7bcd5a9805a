"""REINFORCE in PyTorch: the course's algorithm, B complete episodes per update.

The environment is the shared functional one, stepped for the whole batch by
:class:`~reinforce.envs.batched.BatchedEnv`; the returns come from the shared
``reinforce.returns``. Phases mirror ``reinforce_jax.trainer``: :func:`collect` ->
:func:`compute_weights` -> :func:`reinforce_loss` + Adam. With ``batch_episodes=1`` this is
the course's loop: sample, reward-to-go, normalize, ``loss = -sum(log pi(a|s) * G)``, Adam.
With ``cfg.segment_steps > 0``, :func:`collect_segments` plays fixed-length segments instead,
as the JAX trainer does.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass

import jax
import numpy as np
import torch

from reinforce import envs, returns
from reinforce.config import SEGMENT_BLOCK, TrainConfig
from reinforce.envs.batched import BatchedEnv
from reinforce.host import host
from reinforce.runs import METRIC_NAMES
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
    record["obs"].append(np.where(alive[:, None], obs, 0.0).astype(np.float32))
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


def compute_weights(rollout: Rollout, gamma: float, normalize: bool, baseline: str = "none"
                    ) -> np.ndarray:
    """Reward-to-go of every step (less the baseline, normalized if asked), from the shared
    returns layer.

    Time is padded to a power of two so the compiled scan sees a handful of shapes only. It
    runs on the CPU device, where the rollout is.
    """
    length = rollout.rewards.shape[0]
    padded = max(16, 1 << (length - 1).bit_length())
    with host():  # numpy in, numpy out: no round trip through an accelerator
        G = returns.reward_to_go(
            _pad_time(rollout.rewards, padded), _pad_time(rollout.dones, padded),
            _pad_time(rollout.valid, padded), gamma, normalize, baseline,
        )
        return np.array(G[:length])


def reinforce_loss(
    policy: Policy, obs: torch.Tensor, actions: torch.Tensor, weights: torch.Tensor,
    valid: torch.Tensor, n_episodes: int,
) -> torch.Tensor:
    """-sum over valid steps of log pi(a|s) * G, divided by the number of episodes."""
    logp = policy.log_probs(obs, actions)
    return -torch.where(valid, logp * weights, torch.zeros_like(logp)).sum() / n_episodes


class Trainer:
    """One run (one seed, one learning rate) of the torch backend."""

    def __init__(self, cfg: TrainConfig, seed: int, lr: float | None = None,
                 device: str = "cpu"):
        self.cfg = cfg
        self.seed = seed
        self.lr = cfg.lr if lr is None else float(lr)
        self.device = torch_device(device)
        self.generator = seed_everything(seed)
        self.env = BatchedEnv(cfg.env_id, cfg.batch_episodes, seed)
        self.horizon = envs.horizon(self.env.params, cfg.max_t)
        self.policy = Policy(self.env.observation_size, self.env.num_actions,
                             cfg.hidden_sizes).to(self.device)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=self.lr)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda u: cfg.lr_factor(u)
        )
        self.updates_done = 0

    def update(self) -> dict[str, float]:
        """One REINFORCE update: collect -> returns -> update."""
        cfg = self.cfg
        if cfg.segment_steps:
            played = collect_segments(self.env, self.policy, cfg.segment_steps, self.horizon,
                                      self.generator)
            learn = played.valid & (np.arange(cfg.segment_steps) < cfg.segment_learned)[:, None]
            rollout = dataclasses.replace(played, valid=learn)
        else:
            rollout = played = collect(self.env, self.policy, self.horizon, self.generator)
        weights = compute_weights(rollout, cfg.gamma, cfg.normalize_returns, cfg.baseline)
        obs, actions, weights, valid = (torch.from_numpy(x).to(self.device) for x in (
            rollout.obs, rollout.actions, weights, rollout.valid))
        loss = reinforce_loss(self.policy, obs, actions, weights, valid, self.env.n)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        self.updates_done += 1
        live = int(played.valid.sum())
        if cfg.segment_steps:
            mean_return, mean_length = returns.segment_means(
                returns.segment_episodes(played.rewards, played.dones, played.valid))
        else:
            mean_return = float(played.rewards.sum(axis=0).mean())
            mean_length = float(played.valid.sum(axis=0).mean())
        return {
            "episodic_return": float(mean_return),
            "episode_length": float(mean_length),
            "policy_loss": float(loss.item()),
            "env_steps": live,
            "padded_steps": int(played.valid.size) - live,
        }

    def run(self, n_updates: int) -> list[dict[str, float]]:
        return [self.update() for _ in range(n_updates)]

    # --- checkpoints: named numpy arrays, no pickle ---------------------------------------

    def state_arrays(self) -> dict[str, np.ndarray]:
        """Everything the next update depends on: weights, Adam's moments and step counts,
        the action generator's state, the env's key and the update counter."""
        out = {f"policy/{k}": v.detach().cpu().numpy().copy()
               for k, v in self.policy.state_dict().items()}
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
        from reinforce.checkpoint import CheckpointError, take

        fresh = self.state_arrays()
        updates = int(take(arrays, "updates_done", source, (), np.int64))
        if not 0 <= updates <= self.cfg.n_updates:
            raise CheckpointError(f"{source}: updates_done {updates} is outside "
                                  f"0..{self.cfg.n_updates}")
        params = list(self.policy.state_dict())
        slots = ("step", "exp_avg", "exp_avg_sq")
        expected = set(fresh)  # Adam has no state before its first step
        if updates:
            expected |= {f"adam/{i}/{slot}" for i in range(len(params)) for slot in slots}
        if set(arrays) != expected:
            extra, missing = sorted(set(arrays) - expected), sorted(expected - set(arrays))
            parts = [f"missing {', '.join(missing[:4])}"] if missing else []
            parts += [f"unexpected {', '.join(extra[:4])}"] if extra else []
            raise CheckpointError(f"{source} is not a torch training state of this run "
                                  f"({'; '.join(parts)})")
        weights = {}
        for name, value in self.policy.state_dict().items():
            array = take(arrays, f"policy/{name}", source, tuple(value.shape), np.float32)
            weights[name] = torch.from_numpy(array.copy()).to(self.device)
        self.policy.load_state_dict(weights)
        optimizer = self.optimizer.state_dict()
        if updates:
            optimizer["state"] = {
                i: {"step": torch.from_numpy(take(arrays, f"adam/{i}/step", source, (),
                                                  np.float32).copy()),
                    **{slot: torch.from_numpy(take(arrays, f"adam/{i}/{slot}", source,
                                                   tuple(weights[name].shape),
                                                   np.float32).copy())
                       for slot in ("exp_avg", "exp_avg_sq")}}
                for i, name in enumerate(params)
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

    def non_finite(self, metrics: dict[str, float]) -> str | None:
        """What turned non-finite in the last update (loss, gradient, weight), or None."""
        if not np.isfinite(metrics["policy_loss"]):
            return "policy loss"
        params = list(self.policy.named_parameters())
        for name, p in params:
            if p.grad is not None and not torch.isfinite(p.grad).all():
                return f"gradient ({name})"
        for name, p in params:
            if not torch.isfinite(p).all():
                return f"weight ({name})"
        return None

    def evaluate(self, n_episodes: int, seed: int) -> np.ndarray:
        from reinforce.evaluate import play_episodes

        return play_episodes(self.cfg.env_id, self.policy.numpy_probabilities, n_episodes,
                             self.cfg.max_t, seed)


def train_many(cfg: TrainConfig, seeds: list[int], lrs: list[float], on_progress=None,
               session=None, device: str = "cpu"):
    """Train the runs one after the other on ``device`` (``reinforce_torch.devices``); same
    results layout as ``reinforce_jax``'s.

    Returns ``(states, metrics, wall, eval_returns)``: torch-layout weights per run, per-run
    dicts of per-update numpy series, per-run per-update wall seconds, ``[runs, n_eval]``.

    With a :class:`reinforce.session.Session`: a checkpoint at the start, after every run and
    every ``session.every_seconds`` (at chunk boundaries); a stop request is honoured between
    updates (checkpoint, then :class:`~reinforce.session.TrainingStopped`); a non-finite loss,
    gradient or weight raises :class:`~reinforce.session.TrainingError`; ``session.resume``
    continues a checkpoint, ending with exactly the numbers of an uninterrupted run.
    """
    import time

    from reinforce.session import Session

    start = time.perf_counter()
    n_runs, n_updates = len(seeds), cfg.n_updates
    session = session or Session.plain("torch", seeds, lrs, n_runs * n_updates)
    offset = session.wall_offset
    done_runs: list[dict[str, np.ndarray]] = []  # finished runs, as checkpoint arrays
    first_run, current = 0, None
    if session.resume is not None:
        first_run, done_runs, current = _restore_runs(session.resume, cfg, n_runs)
    total = first_run * n_updates + (len(current["wall"]) if current else 0)

    def label(r: int, u: int) -> str:
        return f"update {u}/{n_updates}" + (f" of run {r + 1}/{n_runs}" if n_runs > 1 else "")

    def save(r: int, trainer: Trainer | None, series, times, status="running") -> None:
        def arrays() -> dict[str, np.ndarray]:
            out = {f"runs/{i}/{k}": v for i, run in enumerate(done_runs) for k, v in run.items()}
            if trainer is not None:
                out.update({f"current/{k}": v
                            for k, v in _run_arrays(trainer, series, times).items()})
            return out

        session.save(arrays, total, label(r, len(series)) if trainer else
                     label(r - 1, n_updates), status, runs_done=len(done_runs))

    def report(series: list[dict[str, float]]) -> None:
        if on_progress is not None and series:
            recent = series[-max(1, min(len(series), cfg.chunk_updates) // 5):]
            on_progress(total, sum(m["episodic_return"] for m in recent) / len(recent))

    for r in range(first_run, n_runs):
        seed, lr = seeds[r], lrs[r]
        trainer = Trainer(cfg, seed, lr, device)
        series: list[dict[str, float]] = []
        times: list[float] = []
        if current is not None and r == first_run:
            trainer.load_state_arrays(_strip("state/", current), "the checkpoint")
            series = [{m: current[f"metrics/{m}"][u].item() for m in METRIC_NAMES}
                      for u in range(len(current["wall"]))]
            times = list(current["wall"])
            report(series)
        elif session.last_saved is None:
            save(r, trainer, series, times)  # the first checkpoint: training has started
        while len(series) < n_updates:
            if session.should_stop(total):
                if session.last_saved != total:
                    save(r, trainer, series, times,
                         "interrupted" if session.stop_flag.is_set() else "stopped")
                raise session.stopped(label(r, len(series)))
            try:
                m = trainer.update()
            except RuntimeError as exc:  # torch refuses some non-finite values itself
                if (what := _non_finite_error(exc)) is None:
                    raise
                raise session.non_finite(what, label(r, len(series) + 1), r) from None
            if (what := trainer.non_finite(m)) is not None:
                raise session.non_finite(what, label(r, len(series) + 1), r)
            series.append(m)
            times.append(offset + time.perf_counter() - start)
            total += 1
            if len(series) % cfg.chunk_updates == 0 or len(series) == n_updates:
                report(series)
                if session.due() and len(series) < n_updates:
                    save(r, trainer, series, times)
        run = _series_arrays(series, times)
        run.update({f"weights/{k}": v.detach().cpu().numpy().copy()
                    for k, v in trainer.policy.state_dict().items()})
        run["eval_returns"] = np.asarray(trainer.evaluate(cfg.n_evaluation_episodes,
                                                          seed + 10_000))
        done_runs.append(run)
        save(r + 1, None, series, times, "trained" if r + 1 == n_runs else "running")
    states = [_strip("weights/", run) for run in done_runs]
    metrics = [{name: run[f"metrics/{name}"] for name in METRIC_NAMES} for run in done_runs]
    wall = [run["wall"] for run in done_runs]
    return states, metrics, wall, np.stack([run["eval_returns"] for run in done_runs])


#: Errors torch raises on non-finite values, and what they mean.
_NON_FINITE_ERRORS = {
    "probability tensor contains": "action probabilities (the policy's outputs overflow)",
    "without overflow": "Adam step (learning rate x update overflows float32)",
}


def _non_finite_error(exc: RuntimeError) -> str | None:
    return next((what for text, what in _NON_FINITE_ERRORS.items() if text in str(exc)), None)


def _strip(prefix: str, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The arrays whose names start with ``prefix``, named without it."""
    return {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}


def _series_arrays(series: list[dict[str, float]], times: list[float]) -> dict[str, np.ndarray]:
    """One run's metrics so far and their wall times, as checkpoint arrays."""
    out = {f"metrics/{name}": np.asarray([m[name] for m in series]) if series else np.zeros(0)
           for name in METRIC_NAMES}
    out["wall"] = np.asarray(times, np.float64)
    return out


def _run_arrays(trainer: Trainer, series: list[dict[str, float]], times: list[float]
                ) -> dict[str, np.ndarray]:
    """One run's checkpoint arrays: its training state and its metrics so far."""
    return {**{f"state/{k}": v for k, v in trainer.state_arrays().items()},
            **_series_arrays(series, times)}


def _restore_runs(checkpoint, cfg: TrainConfig, n_runs: int, source: str = "the checkpoint"):
    """``(runs_done, finished runs' arrays, current run's arrays or None)`` of a checkpoint."""
    from reinforce.checkpoint import CheckpointError, take

    progress, arrays = checkpoint.progress, checkpoint.arrays
    if progress.get("backend") != "torch":
        raise CheckpointError(f"{source} holds {progress.get('backend')} training state, "
                              "not torch; a training state resumes only on its own backend")
    runs_done = progress.get("runs_done")
    if not isinstance(runs_done, int) or not 0 <= runs_done <= n_runs:
        raise CheckpointError(f"{source}: bad runs_done {runs_done!r} for {n_runs} run(s)")
    done_runs = []
    for r in range(runs_done):
        prefix = f"runs/{r}/"
        run = _strip(prefix, arrays)
        for name in (*(f"metrics/{m}" for m in METRIC_NAMES), "wall", "eval_returns"):
            take(arrays, prefix + name, source)
            if name != "eval_returns" and len(run[name]) != cfg.n_updates:
                raise CheckpointError(f"{source}: {prefix + name!r} has {len(run[name])} "
                                      f"entries, expected {cfg.n_updates}")
        done_runs.append(run)
    current = _strip("current/", arrays)
    if runs_done == n_runs or not current:
        return runs_done, done_runs, None
    for name in (*(f"metrics/{m}" for m in METRIC_NAMES), "wall"):
        take(arrays, "current/" + name, source)
    n = len(current["wall"])
    if int(current.get("state/updates_done", -1)) != n or any(
            len(current[f"metrics/{m}"]) != n for m in METRIC_NAMES):
        raise CheckpointError(f"{source}: the current run's metrics and state disagree")
    return runs_done, done_runs, current


def check_checkpoint(cfg: TrainConfig, seeds: list[int], lrs: list[float], checkpoint,
                     source: str = "the checkpoint") -> None:
    """Raise ``CheckpointError`` unless :func:`train_many` can resume ``checkpoint``."""
    runs_done, _, current = _restore_runs(checkpoint, cfg, len(seeds), source)
    if current is not None:
        trainer = Trainer(cfg, seeds[runs_done], lrs[runs_done])
        trainer.load_state_arrays(_strip("state/", current), source)
