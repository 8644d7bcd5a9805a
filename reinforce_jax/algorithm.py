"""REINFORCE in JAX, the algorithm: the whole training run as one pure, jittable function.

``make_train(cfg)`` builds a :class:`Trainer`; ``trainer.train(key)`` (or the function
``make_train(cfg)`` returns) runs init and every update in one compiled program, so
``jax.jit(jax.vmap(train))`` trains many seeds at once, and many settings: a run's own settings
(learning rate, gamma, entropy and value-loss weights, clipping norm: :class:`Hyper`) are traced
values, not static ones. ``reinforce_jax.run`` instead calls :meth:`Trainer.run` on chunks of
updates, to report progress and checkpoint between compiled calls.

One update has three phases, each a module-level function a test can call alone:

* :func:`collect` plays ``B`` complete episodes with ``vmap`` over envs and ``lax.scan`` over
  time. Time is cut into chunks of ``chunk_len`` steps; a ``while_loop`` over chunks stops as
  soon as every episode has ended, so an update costs (longest episode in the batch, rounded
  up to a chunk) x B steps, not the horizon ``max_t`` x B. Episodes that reach ``max_t`` are
  cut there (as the course's ``max_t`` loop does); steps after an episode's end are padding,
  masked out of everything.
* :func:`collect_segments` instead (``cfg.segment_steps > 0``) plays ``B`` envs for exactly
  ``segment_steps`` steps, starting new episodes every 64 steps where one ended; the update
  learns from the first ``cfg.segment_learned`` steps only (:func:`learn_mask`), whose returns
  miss at most 1% of their discounted weight. No update waits for a batch's longest episode.
* :func:`compute_returns` turns rewards into the reward-to-go G with the shared
  ``reinforce.returns`` scan, chunk by chunk from the last one; ``returns.weigh`` subtracts the
  baseline, if the config asks for one (the learned state value V(s) of :func:`chunk_values`
  for ``baseline="value"``), and normalizes.
* :func:`loss_gradient` accumulates the gradient of :func:`update_loss` over the same chunks:
  ``-sum(log pi(a|s) * weight) / B`` (the course's loss), less ``entropy_coef`` times the
  policy's entropy, plus ``value_coef`` times the value network's least-squares loss against G;
  :func:`clip_gradient` bounds its global norm (``max_grad_norm``), then Adam updates both
  networks. The policy's target stays the Monte Carlo return: the value only centres it.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from reinforce import envs, returns
from reinforce.architecture import architecture
from reinforce.backend import Metrics
from reinforce.config import SEGMENT_BLOCK, SWEEPABLE, TrainConfig
from reinforce_jax.policy import (
    Policy,
    init_params,
    log_probs_and_entropy,
    policy_for,
    state_values,
)

#: Steps per time chunk of a rollout (the granularity of early stopping).
CHUNK_LEN = 64


class Rollout(NamedTuple):
    """Episodes in time chunks: arrays ``[n_chunks, chunk_len, B, ...]``."""

    obs: jax.Array  # float32 [..., B, S], zero on padding
    actions: jax.Array  # int32 [..., B]
    rewards: jax.Array  # float32 [..., B], zero on padding
    dones: jax.Array  # bool [..., B], True on the last step of each episode
    valid: jax.Array  # bool [..., B], True on the steps of an episode

    def flat(self) -> Rollout:
        """The same data time-major ``[n_chunks * chunk_len, B, ...]``."""
        return jax.tree.map(lambda x: x.reshape(-1, *x.shape[2:]), self)


class Hyper(NamedTuple):
    """A run's own settings (``reinforce.config.SWEEPABLE``) as traced values, and what follows
    from them: the runs of one program may each have their own (a sweep is a ``vmap``)."""

    lr: jax.Array
    gamma: jax.Array
    value_coef: jax.Array
    entropy_coef: jax.Array
    max_grad_norm: jax.Array
    learned: jax.Array  # int32, segments: the steps learned from (``cfg.segment_learned``)

    @classmethod
    def of(cls, cfg: TrainConfig) -> Hyper:
        """The values of a config (numpy, so that they can be stacked for many runs)."""
        return cls(**{name: np.float32(getattr(cfg, name)) for name in SWEEPABLE},
                   learned=np.int32(cfg.segment_learned))


class TrainState(NamedTuple):
    """Everything a run's next update depends on; ``value_params`` and ``value_opt_state`` are
    None unless the config's baseline is ``value``."""

    params: Any
    opt_state: Any
    key: jax.Array
    hyper: Hyper
    update: jax.Array  # updates done so far
    value_params: Any = None
    value_opt_state: Any = None


def sample_actions(logits: jax.Array, uniform: jax.Array) -> jax.Array:
    """Sample ``a ~ softmax(logits)`` by inverting the CDF at ``uniform`` (in [0, 1)).

    The same distribution as ``jax.random.categorical``; it needs one uniform per state instead
    of one Gumbel per action, so a whole chunk's draws can be made in one vectorized call.
    """
    cdf = jnp.cumsum(jax.nn.softmax(logits, axis=-1), axis=-1)
    return jnp.sum(cdf[..., :-1] <= uniform[..., None], axis=-1).astype(jnp.int32)


def _policy_step(env: envs.Environment, env_params: Any, policy: Policy, params: Any,
                 horizon: int):
    """The scan body of both collectors: sample every env's action, step the envs, record.

    Carry ``(obs, state, alive, t)``, ``t`` each env's step in its episode; inputs one uniform
    and one env key per env. An episode ends when it terminates, truncates or reaches
    ``horizon`` steps; the steps of envs whose episode is over are recorded as zeros.
    """
    batched_step = jax.vmap(env.step, in_axes=(0, 0, 0, None))

    def one_step(carry, draws):
        obs, state, alive, t = carry
        uniform, step_keys = draws
        action = sample_actions(policy.apply(params, obs), uniform)
        next_obs, state, reward, terminated, truncated, _ = batched_step(
            step_keys, state, action, env_params
        )
        done = alive & (terminated | truncated | (t + 1 >= horizon))
        record = Rollout(
            obs=envs.where_alive(alive, obs),
            actions=action,
            rewards=jnp.where(alive, reward, 0.0).astype(jnp.float32),
            dones=done,
            valid=alive,
        )
        return (next_obs, state, alive & ~done, t + alive), record

    return one_step


def collect(
    env: envs.Environment,
    env_params: Any,
    policy: Policy,
    params: Any,
    key: jax.Array,
    n_episodes: int,
    horizon: int,
    chunk_len: int = CHUNK_LEN,
    runs_axis: str | None = None,
) -> tuple[Rollout, jax.Array]:
    """Play ``n_episodes`` episodes from fresh resets with actions sampled from the policy.

    Returns the rollout and the number of chunks played (the rest is zeros). Under
    ``jax.vmap(..., axis_name=runs_axis)`` chunks are played until the episodes of *every* run
    have ended (:func:`any_run`), so the loop is the same for all runs; a run whose episodes
    ended earlier plays padding, zeros that change nothing.
    """
    chunk_len = min(chunk_len, horizon)
    n_chunks = -(-horizon // chunk_len)
    key, (obs, state) = _fresh_episodes(env, env_params, key, n_episodes)
    shape = (n_chunks, chunk_len, n_episodes)
    buffer = Rollout(
        obs=jnp.zeros((*shape, *env.observation_shape), env.observation_dtype),
        actions=jnp.zeros(shape, jnp.int32),
        rewards=jnp.zeros(shape, jnp.float32),
        dones=jnp.zeros(shape, bool),
        valid=jnp.zeros(shape, bool),
    )
    one_step = _policy_step(env, env_params, policy, params, horizon)

    def absorb(buffer, i, chunk):
        return jax.tree.map(lambda b, c: b.at[i].set(c), buffer, chunk)

    n_played, buffer = _play_chunks(one_step, key, (obs, state), n_chunks, chunk_len,
                                    runs_axis, buffer, absorb)
    return buffer, n_played


def _play_chunks(one_step, key: jax.Array, start: tuple, n_chunks: int, chunk_len: int,
                 runs_axis: str | None, acc: Any, absorb) -> tuple[jax.Array, Any]:
    """Play chunks of ``chunk_len`` steps from ``start = (obs, state)`` of fresh episodes until
    every episode has ended (under ``runs_axis``: every run's, :func:`any_run`) or
    ``n_chunks`` were played; ``absorb(acc, i, records)`` keeps what the caller needs of chunk
    ``i``. Returns the number of chunks played and ``acc``."""
    n = start[0].shape[0]

    def play_chunk(loop):
        i, carry, acc = loop
        carry, chunk = jax.lax.scan(one_step, carry, _chunk_draws(key, i, chunk_len, n))
        return i + 1, carry, absorb(acc, i, chunk)

    def any_alive(loop):
        i, carry, _ = loop
        return (i < n_chunks) & any_run(carry[2].any(), runs_axis)

    carry = (*start, jnp.ones((n,), bool), jnp.zeros((n,), jnp.int32))
    n_played, _, acc = jax.lax.while_loop(any_alive, play_chunk,
                                          (jnp.zeros((), jnp.int32), carry, acc))
    return n_played, acc


def any_run(flag: jax.Array, runs_axis: str | None) -> jax.Array:
    """``flag`` or-ed over the runs vmapped under the axis name ``runs_axis`` (unchanged when
    None). A loop whose condition is the same for every run keeps an unbatched counter: no
    per-run select of the whole loop state after each iteration, and slices instead of
    gathers and scatters, which is less to compile and less to run."""
    if runs_axis is None:
        return flag
    return jax.lax.psum(flag.astype(jnp.int32), runs_axis) > 0


def _fresh_episodes(env: envs.Environment, env_params: Any, key: jax.Array, n: int):
    """``(key for the rest, (obs, state))``: ``n`` envs reset from one split of ``key``."""
    reset_key, key = jax.random.split(key)
    return key, jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(reset_key, n),
                                                        env_params)


def _chunk_draws(key: jax.Array, i: jax.Array, chunk_len: int, n: int):
    """The random numbers of chunk ``i``: one uniform (the action) and one env key per step and
    env, in two vectorized draws rather than two key splits per step."""
    action_key, env_key = jax.random.split(jax.random.fold_in(key, i))
    return (jax.random.uniform(action_key, (chunk_len, n)),
            jax.random.split(env_key, (chunk_len, n)))


def play_returns(
    env: envs.Environment,
    env_params: Any,
    policy: Policy,
    params: Any,
    key: jax.Array,
    n_episodes: int,
    horizon: int,
    chunk_len: int = CHUNK_LEN,
    runs_axis: str | None = None,
) -> jax.Array:
    """The undiscounted return of each of ``n_episodes`` episodes played as :func:`collect`
    plays them (the same random numbers, so the same episodes), keeping nothing but the running
    returns: memory ``O(n_episodes)`` whatever the horizon."""
    chunk_len = min(chunk_len, horizon)
    n_chunks = -(-horizon // chunk_len)
    key, (obs, state) = _fresh_episodes(env, env_params, key, n_episodes)
    one_step = _policy_step(env, env_params, policy, params, horizon)

    def rewards_only(carry, draws):
        carry, record = one_step(carry, draws)
        return carry, record.rewards

    def absorb(total, i, rewards):
        return total + rewards.sum(axis=0)

    return _play_chunks(rewards_only, key, (obs, state), n_chunks, chunk_len, runs_axis,
                        jnp.zeros((n_episodes,)), absorb)[1]


def collect_segments(
    env: envs.Environment,
    env_params: Any,
    policy: Policy,
    params: Any,
    key: jax.Array,
    n_envs: int,
    n_blocks: int,
    horizon: int,
    block_len: int = SEGMENT_BLOCK,
) -> Rollout:
    """Play ``n_envs`` envs for ``n_blocks * block_len`` steps each, with new episodes.

    Every env starts a fresh episode; at the start of every block of ``block_len`` steps, the
    envs whose episode has ended (terminated, truncated or ``horizon`` steps long) start a new
    one, so an ended episode leaves at most ``block_len - 1`` padding steps behind (``valid``
    False, zeros). A column of the rollout holds several episodes one after the other, each
    closed by ``done``; the episode still running at the end has no ``done``
    (``reinforce.returns.segment_episodes`` tells them apart).
    """
    one_step = _policy_step(env, env_params, policy, params, horizon)
    key, (obs, state) = _fresh_episodes(env, env_params, key, n_envs)

    def play_block(carry, i):
        obs, state, alive, t = carry
        new_key, action_key, env_key = jax.random.split(jax.random.fold_in(key, i), 3)
        # The envs whose episode ended start a new one (one vectorized reset per block).
        obs, state = envs.reset_where(env, jax.random.split(new_key, n_envs), obs, state, alive,
                                      env_params)
        t = jnp.where(alive, t, 0)
        draws = (jax.random.uniform(action_key, (block_len, n_envs)),
                 jax.random.split(env_key, (block_len, n_envs)))
        return jax.lax.scan(one_step, (obs, state, jnp.ones_like(alive), t), draws)

    carry = (obs, state, jnp.ones((n_envs,), bool), jnp.zeros((n_envs,), jnp.int32))
    _, rollout = jax.lax.scan(play_block, carry, jnp.arange(n_blocks))
    return rollout


def learn_mask(valid: jax.Array, n_learned: int) -> jax.Array:
    """``valid`` ``[n_blocks, block_len, B]`` on the first ``n_learned`` steps of every segment,
    False after them."""
    steps = jnp.arange(valid.shape[0] * valid.shape[1]).reshape(valid.shape[:2])[..., None]
    return valid & (steps < n_learned)


def compute_returns(rollout: Rollout, n_played: jax.Array, gamma: float | jax.Array
                    ) -> jax.Array:
    """The discounted reward-to-go of every step, ``[n_chunks, chunk_len, B]``.

    On a CPU the returns are scanned chunk by chunk from the last chunk played, so chunks that
    were never played cost nothing; elsewhere one parallel scan covers the whole rollout (the
    chunks not played are zeros and change no return).
    """
    return jax.lax.platform_dependent(rollout.rewards, rollout.dones, n_played, gamma,
                                      cpu=returns_by_chunks, default=returns_at_once)


def compute_weights(
    rollout: Rollout, n_played: jax.Array, gamma: float | jax.Array, normalize: bool,
    baseline: str = "none", values: jax.Array | None = None, G: jax.Array | None = None,
) -> jax.Array:
    """Reward-to-go of every step (``G`` if already computed), less the baseline (``values``:
    V(s) of every step, for the value baseline), normalized if asked,
    ``[n_chunks, chunk_len, B]``."""
    G = compute_returns(rollout, n_played, gamma) if G is None else G
    return returns.weigh(G, rollout.valid, normalize, baseline, values)


def chunk_values(value_net: Policy, value_params: Any, obs: jax.Array, n_played: jax.Array
                 ) -> jax.Array:
    """V(s) of every step of the played chunks of a rollout, ``[n_chunks, chunk_len, B]``
    (zeros in the chunks not played), a chunk at a time as the gradient is."""

    def chunk(loop):
        i, out = loop
        return i + 1, out.at[i].set(state_values(value_net, value_params, obs[i]))

    _, values = jax.lax.while_loop(lambda loop: loop[0] < n_played, chunk,
                                   (jnp.zeros((), jnp.int32), jnp.zeros(obs.shape[:3])))
    return values


def returns_by_chunks(rewards: jax.Array, dones: jax.Array, n_played: jax.Array, gamma
                      ) -> jax.Array:
    """The discounted returns of a chunked rollout ``[n_chunks, chunk_len, B]``, chunk by chunk
    from the last one played (the CPU's way: chunks never played cost nothing)."""

    def backward(loop):
        i, next_return, out = loop
        chunk_returns = returns.discounted_returns_scan(rewards[i], dones[i], gamma,
                                                        next_return)
        return i - 1, chunk_returns[0], out.at[i].set(chunk_returns)

    _, _, G = jax.lax.while_loop(
        lambda loop: loop[0] >= 0,
        backward,
        (n_played - 1, jnp.zeros_like(rewards[0, 0]), jnp.zeros_like(rewards)),
    )
    return G


def returns_at_once(rewards: jax.Array, dones: jax.Array, n_played: jax.Array, gamma
                    ) -> jax.Array:
    """The same in one parallel scan over the whole rollout (an accelerator's way; the chunks
    not played are zeros and change no return)."""
    del n_played
    flat = returns.discounted_returns_associative(rewards.reshape(-1, *rewards.shape[2:]),
                                                  dones.reshape(-1, *dones.shape[2:]), gamma)
    return flat.reshape(rewards.shape)


class LossTerms(NamedTuple):
    """The terms of an update's loss, each summed over the learned steps and divided by B."""

    policy_loss: jax.Array  # -sum log pi(a|s) * weight
    entropy: jax.Array  # sum of the policy's entropy
    value_loss: jax.Array  # 0.5 * sum (V(s) - G)^2 (0 without a value network)


def update_loss(policy: Policy, value_net: Policy | None, params: Any, value_params: Any,
                obs, actions, weights, targets, valid, n_episodes: int,
                entropy_coef: jax.Array, value_coef: jax.Array) -> tuple[jax.Array, LossTerms]:
    """``policy_loss - entropy_coef * entropy + value_coef * value_loss`` (:class:`LossTerms`)
    and its terms. ``weights`` are constants (the baseline was subtracted from the returns
    before), so the policy's target stays the Monte Carlo return; the value network is fitted
    to ``targets``, the reward-to-go."""
    logp, entropy = log_probs_and_entropy(policy, params, obs, actions)
    terms = LossTerms(
        policy_loss=-jnp.sum(jnp.where(valid, logp * weights, 0.0)) / n_episodes,
        entropy=jnp.sum(jnp.where(valid, entropy, 0.0)) / n_episodes,
        value_loss=jnp.zeros(()),
    )
    if value_net is not None:
        error = state_values(value_net, value_params, obs) - targets
        terms = terms._replace(
            value_loss=0.5 * jnp.sum(jnp.where(valid, error * error, 0.0)) / n_episodes)
    total = terms.policy_loss - entropy_coef * terms.entropy + value_coef * terms.value_loss
    return total, terms


def reinforce_loss(
    policy: Policy, params: Any, obs, actions, weights, valid, n_episodes: int
) -> jax.Array:
    """-sum over valid steps of log pi(a|s) * G, divided by the number of episodes."""
    return update_loss(policy, None, params, None, obs, actions, weights, None, valid,
                       n_episodes, 0.0, 0.0)[1].policy_loss


def loss_gradient(policy: Policy, value_net: Policy | None, params: Any, value_params: Any,
                  rollout: Rollout, weights: jax.Array, targets: jax.Array, n_played: jax.Array,
                  entropy_coef: jax.Array, value_coef: jax.Array) -> tuple[LossTerms, Any]:
    """The loss terms and the gradient of :func:`update_loss` with respect to
    ``(params, value_params)``, accumulated over the played chunks only."""
    n_episodes = rollout.actions.shape[-1]

    def loss(both, obs, actions, chunk_weights, chunk_targets, valid):
        return update_loss(policy, value_net, both[0], both[1], obs, actions, chunk_weights,
                           chunk_targets, valid, n_episodes, entropy_coef, value_coef)

    grad_fn = jax.grad(loss, has_aux=True)

    def accumulate(loop):
        i, terms, grads = loop
        chunk_grads, chunk_terms = grad_fn((params, value_params), rollout.obs[i],
                                           rollout.actions[i], weights[i], targets[i],
                                           rollout.valid[i])
        return (i + 1, jax.tree.map(jnp.add, terms, chunk_terms),
                jax.tree.map(jnp.add, grads, chunk_grads))

    zeros = jax.tree.map(jnp.zeros_like, (params, value_params))
    terms = LossTerms(*(jnp.zeros(()) for _ in LossTerms._fields))
    _, terms, grads = jax.lax.while_loop(
        lambda loop: loop[0] < n_played, accumulate, (jnp.zeros((), jnp.int32), terms, zeros)
    )
    return terms, grads


def policy_gradient(
    policy: Policy, params: Any, rollout: Rollout, weights: jax.Array, n_played: jax.Array
) -> tuple[jax.Array, Any]:
    """The course's loss and its gradient, accumulated over the played chunks only."""
    terms, (grads, _) = loss_gradient(policy, None, params, None, rollout, weights,
                                      jnp.zeros_like(weights), n_played, 0.0, 0.0)
    return terms.policy_loss, grads


#: Added to the gradient's norm before dividing by it, as ``torch.nn.utils.clip_grad_norm_``.
CLIP_EPS = 1e-6


def clip_gradient(grads: Any, max_norm: jax.Array) -> Any:
    """``grads`` scaled by ``min(1, max_norm / (norm + 1e-6))``, ``norm`` their global
    (Euclidean) norm, as ``torch.nn.utils.clip_grad_norm_`` scales them; unchanged when
    ``max_norm`` is 0."""
    norm = jnp.sqrt(sum(jnp.sum(g * g) for g in jax.tree.leaves(grads)))
    scale = jnp.where(max_norm > 0, jnp.minimum(1.0, max_norm / (norm + CLIP_EPS)), 1.0)
    return jax.tree.map(lambda g: g * scale, grads)


def adam_step(optimizer: optax.GradientTransformation, grads: Any, opt_state: Any, params: Any,
              lr: jax.Array) -> tuple[Any, Any]:
    """New ``(params, opt_state)``: Adam's direction (``optimizer``, ``scale_by_adam``) times
    ``-lr``, so that the learning rate can be a traced value."""
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, jax.tree.map(lambda u: -lr * u, updates)), opt_state


def episode_stats(rollout: Rollout) -> tuple[jax.Array, jax.Array]:
    """Undiscounted return and length of each episode of a rollout, ``[B]`` each."""
    axes = tuple(range(rollout.rewards.ndim - 1))
    return rollout.rewards.sum(axis=axes), rollout.valid.sum(axis=axes)


class Trainer:
    """The pieces of a run for one config; every method is pure and jittable."""

    def __init__(self, cfg: TrainConfig, chunk_len: int = CHUNK_LEN, runs_axis: str | None = None):
        self.cfg = cfg
        #: The axis name under which the caller vmaps runs (see :func:`any_run`), if any.
        self.runs_axis = runs_axis
        self.env, self.env_params = envs.make(cfg.env_id, cfg.obs, cfg.frame_stack)
        arch = architecture(cfg)
        self.policy = policy_for(arch)
        #: The state-value network of the value baseline (the policy's shape, one output).
        self.value_net = policy_for(arch.value()) if cfg.baseline == "value" else None
        self.horizon = envs.horizon(self.env_params, cfg.max_t)
        # Equal chunks that cover the horizon with the least padding (500 -> 8 x 63).
        n_chunks = -(-self.horizon // chunk_len)
        self.chunk_len = -(-self.horizon // n_chunks)
        self.optimizer = optax.scale_by_adam()  # Adam's moments; the lr is applied by hand

    def steps_per_update(self) -> int:
        """The most env steps one update plays: whole segments, or every episode to the
        horizon."""
        return self.cfg.batch_episodes * (self.cfg.segment_steps or self.horizon)

    def training_steps(self) -> int:
        """The most env steps a run plays in training (every update's)."""
        return self.cfg.n_updates * self.steps_per_update()

    def evaluation_steps(self, n_episodes: int) -> int:
        """The most env steps an evaluation of ``n_episodes`` episodes plays."""
        return n_episodes * self.horizon

    def init(self, key: jax.Array, hyper: Hyper | None = None) -> TrainState:
        """A run's first state: fresh networks (the value network's from its own split of the
        init key) and Adam moments; ``hyper`` defaults to the config's."""
        key, init_key = jax.random.split(key)
        params = init_params(self.policy, init_key, self.env.observation_shape)
        state = TrainState(
            params=params,
            opt_state=self.optimizer.init(params),
            key=key,
            hyper=jax.tree.map(jnp.asarray, Hyper.of(self.cfg) if hyper is None else hyper),
            update=jnp.zeros((), jnp.int32),
        )
        if self.value_net is not None:
            value_params = init_params(self.value_net, jax.random.fold_in(init_key, 1),
                                       self.env.observation_shape)
            state = state._replace(value_params=value_params,
                                   value_opt_state=self.optimizer.init(value_params))
        return state

    def lr_factor(self, update: jax.Array) -> jax.Array:
        """Multiplier of the learning rate at an update: :meth:`TrainConfig.lr_factor` (the
        warm-up times the decay) in float32."""
        u = jnp.asarray(update).astype(jnp.float32)
        factor = 1.0 - u / self.cfg.n_updates if self.cfg.lr_decay else jnp.ones((), jnp.float32)
        if self.cfg.lr_warmup:
            factor = factor * jnp.minimum(1.0, (u + 1.0) / self.cfg.lr_warmup)
        return factor

    def collect(self, params, key, n_episodes: int) -> tuple[Rollout, jax.Array]:
        return collect(self.env, self.env_params, self.policy, params, key, n_episodes,
                       self.horizon, self.chunk_len, self.runs_axis)

    def collect_segments(self, params, key) -> Rollout:
        return collect_segments(self.env, self.env_params, self.policy, params, key,
                                self.cfg.batch_episodes, self.cfg.segment_steps // SEGMENT_BLOCK,
                                self.horizon)

    def update(self, state: TrainState) -> tuple[TrainState, Metrics]:
        """One REINFORCE update: collect -> returns -> update."""
        key, rollout_key = jax.random.split(state.key)
        cfg, hyper = self.cfg, state.hyper
        if cfg.segment_steps:
            played = self.collect_segments(state.params, rollout_key)
            n_played = jnp.asarray(played.obs.shape[0], jnp.int32)
            rollout = played._replace(valid=learn_mask(played.valid, hyper.learned))
        else:
            rollout, n_played = self.collect(state.params, rollout_key, cfg.batch_episodes)
            played = rollout
        G = compute_returns(rollout, n_played, hyper.gamma)
        values = (None if self.value_net is None else
                  chunk_values(self.value_net, state.value_params, rollout.obs, n_played))
        weights = compute_weights(rollout, n_played, hyper.gamma, cfg.normalize_returns,
                                  cfg.baseline, values, G)
        terms, grads = loss_gradient(self.policy, self.value_net, state.params,
                                     state.value_params, rollout, weights, G, n_played,
                                     hyper.entropy_coef, hyper.value_coef)
        grads, value_grads = clip_gradient(grads, hyper.max_grad_norm)
        lr = hyper.lr * self.lr_factor(state.update)
        params, opt_state = adam_step(self.optimizer, grads, state.opt_state, state.params, lr)
        state = state._replace(params=params, opt_state=opt_state, key=key,
                               update=state.update + 1)
        if self.value_net is not None:
            value_params, value_opt_state = adam_step(self.optimizer, value_grads,
                                                      state.value_opt_state,
                                                      state.value_params, lr)
            state = state._replace(value_params=value_params, value_opt_state=value_opt_state)
        live = played.valid.sum()
        if cfg.segment_steps:
            flat = played.flat()
            mean_return, mean_length = returns.segment_means(
                returns.segment_episodes(flat.rewards, flat.dones, flat.valid))
        else:
            ep_return, ep_length = episode_stats(rollout)
            mean_return, mean_length = ep_return.mean(), ep_length.mean()
        learned = jnp.maximum(rollout.valid.sum(), 1)
        metrics = Metrics(
            episodic_return=mean_return,
            episode_length=mean_length,
            policy_loss=terms.policy_loss,
            env_steps=live,
            padded_steps=self.steps_computed(played) - live,
            entropy=terms.entropy * cfg.batch_episodes / learned,
            value_loss=terms.value_loss,
        )
        return state, metrics

    def steps_computed(self, played: Rollout) -> jax.Array:
        """Env steps this run needed to compute for its rollout: whole segments, or whole
        chunks until its own last episode ended (chunks played only because other runs'
        episodes went on are not counted)."""
        n_chunks, chunk_len, n_envs = played.valid.shape
        if self.cfg.segment_steps:
            return jnp.asarray(n_chunks * chunk_len * n_envs, jnp.int32)
        longest = played.valid.sum(axis=(0, 1)).max()
        return -(-longest // chunk_len) * chunk_len * n_envs

    def run(self, state: TrainState, n_updates: int) -> tuple[TrainState, Metrics]:
        """``n_updates`` updates in one ``lax.scan``; metrics stacked ``[n_updates]``."""
        return jax.lax.scan(lambda s, _: self.update(s), state, None, length=n_updates)

    def train(self, key: jax.Array, hyper: Hyper | None = None):
        """The whole run: init, then every update."""
        return self.run(self.init(key, hyper), self.cfg.n_updates)

    def evaluate(self, params, key: jax.Array, n_episodes: int) -> jax.Array:
        """Undiscounted returns of ``n_episodes`` episodes of the stochastic policy."""
        return play_returns(self.env, self.env_params, self.policy, params, key, n_episodes,
                            self.horizon, self.chunk_len, self.runs_axis)


def program_config(cfg: TrainConfig) -> TrainConfig:
    """``cfg`` with the settings a run takes as traced values (``SWEEPABLE``, :class:`Hyper`)
    at fixed ones: the configs that differ only in those share their compiled programs, which
    never read them from the config."""
    return cfg.replace(**{name: 1.0 if name == "lr" else 0.0 for name in SWEEPABLE})


def make_train(cfg: TrainConfig):
    """``train(key, hyper=Hyper.of(cfg)) -> (TrainState, Metrics)``, pure: jit it, vmap it
    (over keys, and over ``hyper`` for a sweep)."""
    return Trainer(cfg).train
