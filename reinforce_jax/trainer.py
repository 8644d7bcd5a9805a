"""REINFORCE in JAX: the whole training run as one pure, jittable function.

``make_train(cfg)`` builds a :class:`Trainer`; ``trainer.train(key)`` (or the function
``make_train(cfg)`` returns) runs init and every update in one compiled program, so
``jax.jit(jax.vmap(train))`` trains many seeds (and learning rates: the learning rate is traced,
not static) at once. The CLI instead calls :meth:`Trainer.run` on chunks of updates to report
progress between compiled calls.

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
* :func:`compute_weights` turns rewards into the normalized reward-to-go with the shared
  ``reinforce.returns`` scan, chunk by chunk from the last one (less the baseline, if the
  config asks for one).
* :func:`policy_gradient` accumulates the gradient of
  ``loss = -sum(log pi(a|s) * G) / B`` over the same chunks, then Adam updates the weights.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from reinforce import envs, returns
from reinforce.config import SEGMENT_BLOCK, TrainConfig, compile_cache_dir
from reinforce_jax.policy import Policy, init_params, log_probs, make_policy

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


class TrainState(NamedTuple):
    params: Any
    opt_state: Any
    key: jax.Array
    lr: jax.Array
    update: jax.Array  # updates done so far


class Metrics(NamedTuple):
    """Per update; identical names in the torch backend."""

    episodic_return: jax.Array  # mean undiscounted return of the batch's episodes
    episode_length: jax.Array  # mean length of the batch's episodes
    policy_loss: jax.Array
    env_steps: jax.Array  # live steps (steps of episodes) in this update
    padded_steps: jax.Array  # steps computed for envs whose episode had already ended


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
            obs=jnp.where(alive[:, None], obs, 0.0),
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
        obs=jnp.zeros((*shape, env.observation_size), jnp.float32),
        actions=jnp.zeros(shape, jnp.int32),
        rewards=jnp.zeros(shape, jnp.float32),
        dones=jnp.zeros(shape, bool),
        valid=jnp.zeros(shape, bool),
    )
    one_step = _policy_step(env, env_params, policy, params, horizon)

    def play_chunk(loop):
        i, carry, buffer = loop
        draws = _chunk_draws(key, i, chunk_len, n_episodes)
        carry, chunk = jax.lax.scan(one_step, carry, draws)
        buffer = jax.tree.map(lambda b, c: b.at[i].set(c), buffer, chunk)
        return i + 1, carry, buffer

    def any_alive(loop):
        i, carry, _ = loop
        return (i < n_chunks) & any_run(carry[2].any(), runs_axis)

    alive = jnp.ones((n_episodes,), bool)
    carry = (obs, state, alive, jnp.zeros((n_episodes,), jnp.int32))
    n_played, _, buffer = jax.lax.while_loop(
        any_alive, play_chunk, (jnp.zeros((), jnp.int32), carry, buffer)
    )
    return buffer, n_played


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

    def play_chunk(loop):
        i, carry, total = loop
        draws = _chunk_draws(key, i, chunk_len, n_episodes)
        carry, rewards = jax.lax.scan(rewards_only, carry, draws)
        return i + 1, carry, total + rewards.sum(axis=0)

    def any_alive(loop):
        i, carry, _ = loop
        return (i < n_chunks) & any_run(carry[2].any(), runs_axis)

    carry = (obs, state, jnp.ones((n_episodes,), bool), jnp.zeros((n_episodes,), jnp.int32))
    _, _, total = jax.lax.while_loop(
        any_alive, play_chunk, (jnp.zeros((), jnp.int32), carry, jnp.zeros((n_episodes,)))
    )
    return total


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


def compute_weights(
    rollout: Rollout, n_played: jax.Array, gamma: float, normalize: bool, baseline: str = "none"
) -> jax.Array:
    """Reward-to-go of every step, less the baseline, normalized if asked,
    ``[n_chunks, chunk_len, B]``.

    On a CPU the returns are scanned chunk by chunk from the last chunk played, so chunks that
    were never played cost nothing; elsewhere one parallel scan covers the whole rollout (the
    chunks not played are zeros and change no return).
    """
    G = jax.lax.platform_dependent(rollout.rewards, rollout.dones, n_played, gamma,
                                   cpu=returns_by_chunks, default=returns_at_once)
    return returns.weigh(G, rollout.valid, normalize, baseline)


def returns_by_chunks(rewards: jax.Array, dones: jax.Array, n_played: jax.Array, gamma
                      ) -> jax.Array:
    """The discounted returns of a chunked rollout ``[n_chunks, chunk_len, B]``, chunk by chunk
    from the last one played (the CPU's way: chunks never played cost nothing)."""

    def backward(loop):
        i, next_return, out = loop
        chunk_returns = returns.discounted_returns(rewards[i], dones[i], gamma, next_return)
        return i - 1, chunk_returns[0], out.at[i].set(chunk_returns)

    _, _, G = jax.lax.while_loop(
        lambda loop: loop[0] >= 0,
        backward,
        (n_played - 1, jnp.zeros_like(rewards[0, 0]), jnp.zeros_like(rewards)),
    )
    return G


def returns_at_once(rewards: jax.Array, dones: jax.Array, n_played: jax.Array, gamma
                    ) -> jax.Array:
    """The same in one scan over the whole rollout (an accelerator's way: one parallel scan;
    the chunks not played are zeros and change no return)."""
    del n_played
    flat = returns.discounted_returns(rewards.reshape(-1, *rewards.shape[2:]),
                                      dones.reshape(-1, *dones.shape[2:]), gamma)
    return flat.reshape(rewards.shape)


def reinforce_loss(
    policy: Policy, params: Any, obs, actions, weights, valid, n_episodes: int
) -> jax.Array:
    """-sum over valid steps of log pi(a|s) * G, divided by the number of episodes."""
    logp = log_probs(policy, params, obs, actions)
    return -jnp.sum(jnp.where(valid, logp * weights, 0.0)) / n_episodes


def policy_gradient(
    policy: Policy, params: Any, rollout: Rollout, weights: jax.Array, n_played: jax.Array
) -> tuple[jax.Array, Any]:
    """Loss and gradient, accumulated over the played chunks only."""
    n_episodes = rollout.actions.shape[-1]
    grad_fn = jax.value_and_grad(partial(reinforce_loss, policy), argnums=0)

    def accumulate(loop):
        i, loss, grads = loop
        chunk_loss, chunk_grads = grad_fn(
            params, rollout.obs[i], rollout.actions[i], weights[i], rollout.valid[i], n_episodes
        )
        return i + 1, loss + chunk_loss, jax.tree.map(jnp.add, grads, chunk_grads)

    zeros = jax.tree.map(jnp.zeros_like, params)
    _, loss, grads = jax.lax.while_loop(
        lambda loop: loop[0] < n_played, accumulate, (jnp.zeros((), jnp.int32), 0.0, zeros)
    )
    return loss, grads


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
        self.env, self.env_params = envs.make(cfg.env_id)
        self.policy = make_policy(cfg.hidden_sizes, self.env.num_actions)
        self.horizon = envs.horizon(self.env_params, cfg.max_t)
        # Equal chunks that cover the horizon with the least padding (500 -> 8 x 63).
        n_chunks = -(-self.horizon // chunk_len)
        self.chunk_len = -(-self.horizon // n_chunks)
        self.optimizer = optax.scale_by_adam()  # Adam's moments; the lr is applied by hand

    def init(self, key: jax.Array, lr: float | jax.Array | None = None) -> TrainState:
        key, init_key = jax.random.split(key)
        params = init_params(self.policy, init_key, self.env.observation_size)
        lr = self.cfg.lr if lr is None else lr
        return TrainState(
            params=params,
            opt_state=self.optimizer.init(params),
            key=key,
            lr=jnp.asarray(lr, jnp.float32),
            update=jnp.zeros((), jnp.int32),
        )

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
        cfg = self.cfg
        if cfg.segment_steps:
            played = self.collect_segments(state.params, rollout_key)
            n_played = jnp.asarray(played.obs.shape[0], jnp.int32)
            rollout = played._replace(valid=learn_mask(played.valid, cfg.segment_learned))
        else:
            rollout, n_played = self.collect(state.params, rollout_key, cfg.batch_episodes)
            played = rollout
        weights = compute_weights(rollout, n_played, cfg.gamma, cfg.normalize_returns,
                                  cfg.baseline)
        loss, grads = policy_gradient(self.policy, state.params, rollout, weights, n_played)
        updates, opt_state = self.optimizer.update(grads, state.opt_state, state.params)
        lr = state.lr * self.lr_factor(state.update)
        updates = jax.tree.map(lambda u: -lr * u, updates)
        params = optax.apply_updates(state.params, updates)
        live = played.valid.sum()
        if cfg.segment_steps:
            flat = played.flat()
            mean_return, mean_length = returns.segment_means(
                returns.segment_episodes(flat.rewards, flat.dones, flat.valid))
        else:
            ep_return, ep_length = episode_stats(rollout)
            mean_return, mean_length = ep_return.mean(), ep_length.mean()
        metrics = Metrics(
            episodic_return=mean_return,
            episode_length=mean_length,
            policy_loss=loss,
            env_steps=live,
            padded_steps=self.steps_computed(played) - live,
        )
        state = state._replace(
            params=params, opt_state=opt_state, key=key, update=state.update + 1
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

    def train(self, key: jax.Array, lr: float | jax.Array | None = None):
        """The whole run: init, then every update."""
        return self.run(self.init(key, lr), self.cfg.n_updates)

    def evaluate(self, params, key: jax.Array, n_episodes: int) -> jax.Array:
        """Undiscounted returns of ``n_episodes`` episodes of the stochastic policy."""
        return play_returns(self.env, self.env_params, self.policy, params, key, n_episodes,
                            self.horizon, self.chunk_len, self.runs_axis)


def make_train(cfg: TrainConfig):
    """``train(key, lr=cfg.lr) -> (TrainState, Metrics)``, pure: jit it, vmap it."""
    return Trainer(cfg).train


# --- many runs at once ---------------------------------------------------------------------


def use_host_cores(n: int | None = None) -> None:
    """Expose the CPU's cores to XLA as ``n`` host devices (default: all of them).

    XLA runs one small-op program on one core; as ``n`` devices, the runs of ``train_many``
    are spread over the cores. Must be called before JAX creates its CPU backend (before the
    first array op); an ``XLA_FLAGS`` that already sets the count is left alone. It changes
    nothing on a GPU/TPU, where the accelerators are the devices.
    """
    import os

    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_force_host_platform_device_count" in flags:
        return
    n = n or os.cpu_count() or 1
    os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={n}".strip()


#: Programs that compile faster than this are not written to the compilation cache.
CACHE_MIN_COMPILE_SECONDS = 0.1


def use_compile_cache(path: Path | None = None) -> Path | None:
    """Keep the programs XLA compiles in a folder (JAX's persistent compilation cache), so that
    a later process training the same config loads them instead of compiling again.

    ``path`` defaults to :func:`~reinforce.config.compile_cache_dir`. Call it before the first
    compile. Returns the folder in use, or None when the cache is off or the folder cannot be
    created or written (then everything compiles as usual). Entries are keyed by the program,
    the compiler options and the JAX version, so a stale entry is never used; deleting the
    folder is always safe.
    """
    path = compile_cache_dir() if path is None else path
    if path is None:
        return None
    import os

    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    if not os.access(path, os.W_OK | os.X_OK):
        return None
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", CACHE_MIN_COMPILE_SECONDS)
    return path


def init_distributed(coordinator: str | None = None, num_processes: int | None = None,
                     process_id: int | None = None) -> None:
    """Join a training over several processes (hosts) with ``jax.distributed``.

    Call it in every process before anything else touches JAX; ``coordinator`` is
    ``host:port`` of process 0. (Left out, the arguments are found on Slurm and Cloud TPU.)
    ``jax.devices()`` then lists the devices of every process, ``train_many`` shards its runs
    over all of them and gathers the results in every process. CPU processes exchange data
    through gloo.
    """
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes,
                               process_id=process_id)


#: JAX's platform for each ``--device`` value but ``auto`` (JAX's default platform).
PLATFORMS = {"cpu": "cpu", "cuda": "gpu"}


def platform_devices(device: str = "auto") -> list:
    """The devices of a ``--device`` value (``reinforce.config.DEVICES``): ``auto``, JAX's
    default platform (a GPU when there is one); ``cpu``; ``cuda``, the GPUs (``ConfigError``
    when JAX sees none)."""
    from reinforce.config import DEVICES, ConfigError

    if device not in DEVICES:
        raise ConfigError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")
    if device == "auto":
        return jax.devices()
    try:
        return jax.devices(PLATFORMS[device])
    except RuntimeError:
        raise ConfigError(f"--device {device}: JAX sees no such device (jax {jax.__version__} "
                          f"runs on {jax.default_backend()}); use --device cpu or auto"
                          ) from None


def run_devices(n_runs: int, device: str = "auto") -> list:
    """The devices ``n_runs`` runs are spread over: all of the platform's, but no more than
    runs."""
    devices = platform_devices(device)
    if jax.process_count() > 1:  # every process takes part (the runs axis is padded)
        return devices
    return devices[: max(1, min(len(devices), n_runs))]


def shard_runs(tree: Any, devices: list | None = None) -> Any:
    """Spread the leading (runs) axis over ``devices`` (default all) when there are several.

    With one device the arrays are put on it. With ``n`` devices the runs axis must be a
    multiple of ``n`` (``train_many`` pads it); ``jit`` then runs each device's share of runs
    there.
    """
    devices = jax.devices() if devices is None else devices
    if len(devices) == 1:
        return jax.device_put(tree, devices[0])
    mesh = jax.sharding.Mesh(devices, ("runs",))
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("runs"))
    if jax.process_count() == 1:
        return jax.device_put(tree, sharding)
    return jax.tree.map(partial(_global_array, sharding), tree)


def _global_array(sharding: jax.sharding.Sharding, x: Any) -> jax.Array:
    """``x``, the same in every process, as one array over the devices of all processes (each
    process puts its own share on its own devices)."""
    import numpy as np

    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        return jax.device_put(x, sharding)  # already global
    if isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
        data = _global_array(sharding, jax.random.key_data(x))
        return jax.random.wrap_key_data(data, impl=jax.random.key_impl(x))
    host = np.asarray(x)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def to_host(tree: Any) -> Any:
    """numpy copies of a tree of arrays (typed PRNG keys as their raw data).

    An array spread over the devices of several processes (``jax.distributed``) is gathered
    from all of them, which is a collective: every process must call this at the same point.
    """
    import numpy as np

    def one(x):
        if isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
            x = jax.random.key_data(x)
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            from jax.experimental import multihost_utils

            return np.asarray(multihost_utils.process_allgather(x, tiled=True))
        return np.asarray(x)

    return jax.tree.map(one, tree)


def any_process(flag: bool) -> bool:
    """``flag`` of this process, or-ed over all processes (a collective when there are several),
    so that every process takes the same branch."""
    if jax.process_count() == 1:
        return bool(flag)
    import numpy as np
    from jax.experimental import multihost_utils

    return bool(np.asarray(multihost_utils.process_allgather(np.asarray(flag))).any())


class ManyResult(NamedTuple):
    params: Any  # stacked over runs
    metrics: Metrics  # numpy, [runs, updates]
    wall: Any  # numpy [updates]: seconds since start when each update's chunk finished
    eval_returns: Any  # numpy [runs, n_eval]


def train_many(
    cfg: TrainConfig,
    seeds: list[int],
    lrs: list[float],
    on_progress=None,
    session=None,
    device: str = "auto",
) -> ManyResult:
    """Train ``len(seeds)`` runs (run i: seed ``seeds[i]``, lr ``lrs[i]``) in one program, on
    the devices of ``device`` (:func:`platform_devices`).

    Updates run in compiled chunks of ``cfg.chunk_updates``; ``on_progress(updates_done,
    mean_recent_return)`` is called between chunks. The runs axis is vmapped and, with several
    devices, sharded over them. Then every run is evaluated on ``cfg.n_evaluation_episodes``.

    Between chunks (a compiled call cannot be interrupted) the loss, weights and optimizer
    moments are checked (:class:`~reinforce.session.TrainingError` if one is not finite) and,
    with a :class:`~reinforce.session.Session`, a checkpoint is saved at update 0, when
    ``session.due()``, on a stop request (then :class:`~reinforce.session.TrainingStopped`) and
    at the end. ``session.resume`` continues a checkpoint: chunks always start at multiples of
    ``cfg.chunk_updates``, so a resumed run runs the very chunks of an uninterrupted one and
    ends with the same numbers.
    """
    import time

    import numpy as np

    from reinforce.session import Session

    start = time.perf_counter()
    n_runs = len(seeds)
    devices = run_devices(n_runs, device)
    trainer, init, run_chunk, evaluate = _programs(cfg, devices[0].platform)
    session = session or Session.plain("jax", seeds, lrs, cfg.n_updates)
    n_dev = len(devices)
    padded = -(-n_runs // n_dev) * n_dev  # pad the runs axis to a multiple of the devices
    seeds_p = shard_runs(np.asarray(list(seeds) + [seeds[-1]] * (padded - n_runs), np.uint32),
                         devices)
    lrs_p = shard_runs(np.asarray(list(lrs) + [lrs[-1]] * (padded - n_runs), np.float32),
                       devices)
    chunks: list[Metrics] = []
    wall: list[float] = []
    done = 0 if session.resume is None else int(session.resume.progress["updates_done"])
    # Every program this run needs compiles in the background from the start (XLA compiles a
    # program on about one and a half cores): the chunk programs while the state is
    # initialised, the evaluation while training runs.
    compiling = _compile_ahead(cfg, seeds_p, lrs_p, devices, done)
    if session.resume is None:
        state = init(seeds_p, lrs_p)
    else:
        host, chunks, wall = restore_many(_state_template(trainer, n_runs), session.resume,
                                          n_runs)
        host = jax.tree.map(lambda x: np.concatenate([x] + [x[-1:]] * (padded - n_runs)), host)
        state = host._replace(key=jax.random.wrap_key_data(host.key))
    state = shard_runs(state, devices)
    if on_progress is not None and done:
        on_progress(done, float(chunks[-1].episodic_return[:, -1].mean()))

    def label(u: int) -> str:
        return f"update {u}/{cfg.n_updates}"

    # The state on the host, taken at the same points in every process (with several processes
    # this gathers); checkpoints are written from it, so saving never touches the devices.
    host = to_host(state)

    def save(status: str = "running") -> None:
        session.save(lambda: many_arrays(host, chunks, wall, n_runs), done, label(done),
                     status, updates_done=done)

    if session.last_saved is None:
        save()  # the first checkpoint: training has started
    while done < cfg.n_updates:
        stop_here = session.should_stop(done)
        if any_process(stop_here):
            if not stop_here:  # another process was interrupted (Ctrl-C): so is this one
                session.stop_flag.set()
            if session.last_saved != done:
                save("interrupted" if session.stop_flag.is_set() else "stopped")
            raise session.stopped(label(done))
        n = min(cfg.chunk_updates, cfg.n_updates - done)
        compiling.wait(("chunk", n))
        new_state, metrics = run_chunk(state, n)
        metrics = jax.tree.map(lambda x: x[:n_runs], to_host(metrics))  # waits for it
        host = to_host(new_state)
        check_finite(session, host, metrics, n_runs, done, cfg.n_updates)
        # The same sharding in every chunk's input (jit may return a leaf replicated), so the
        # chunk program compiles once.
        state = shard_runs(new_state, devices)
        chunks.append(metrics)
        done += n
        wall += [session.wall_offset + time.perf_counter() - start] * n
        if on_progress is not None:
            on_progress(done, float(metrics.episodic_return[:, -max(1, n // 5):].mean()))
        if session.due() and done < cfg.n_updates:
            save()
    if session.last_saved != done:
        save("trained")
    metrics = jax.tree.map(lambda *xs: np.concatenate(xs, axis=1), *chunks)

    compiling.wait(("evaluate",))
    eval_returns = to_host(evaluate(state.params, seeds_p, cfg.n_evaluation_episodes))[:n_runs]
    params = jax.tree.map(lambda x: x[:n_runs], host.params)
    return ManyResult(params, metrics, np.asarray(wall), eval_returns)


_PROGRAMS: dict[tuple[TrainConfig, str], tuple] = {}
#: The axis name of the runs in ``train_many``'s programs.
RUNS_AXIS = "runs"


def compiler_options(platform: str | None = None) -> dict[str, Any] | None:
    """XLA options for the trainer's programs: on the CPU, LLVM optimization level 1.

    On the CPU, compiling is most of a short run's time: level 1 compiles the CartPole chunk
    program in about 60% of the time of the default level, and the program runs as fast (its
    time is in small matrix products and loop control that LLVM's heavier passes do not
    improve). Other platforms keep their defaults. ``platform`` defaults to JAX's default.
    """
    if (platform or jax.default_backend()) == "cpu":
        return {"xla_backend_optimization_level": 1}
    return None


def eval_key(seed: jax.Array) -> jax.Array:
    """The key a run's final evaluation plays from, given the run's seed."""
    return jax.random.fold_in(jax.random.key(seed), 1)


def _programs(cfg: TrainConfig, platform: str | None = None) -> tuple:
    """``(trainer, init, run_chunk, evaluate)`` of ``train_many``, jitted once per config, so
    that a run resumed (or trained again) in the same process compiles nothing new:
    ``init(seeds, lrs)``, ``run_chunk(state, n)``, ``evaluate(params, seeds, n_episodes)``, all
    over the runs axis (seeds are ``uint32``; keys are made inside the programs).

    ``train_many`` always passes the learning rates (they are traced), so configs that differ
    only in ``lr`` share their programs. ``platform`` (default: JAX's) sets the compiler
    options."""
    cfg = cfg.replace(lr=1.0)
    platform = platform or jax.default_backend()
    if (cfg, platform) not in _PROGRAMS:
        if len(_PROGRAMS) >= 8:
            _PROGRAMS.pop(next(iter(_PROGRAMS)))
        trainer = Trainer(cfg, runs_axis=RUNS_AXIS)
        jit = partial(jax.jit, compiler_options=compiler_options(platform))
        _PROGRAMS[cfg, platform] = (
            trainer,
            jit(jax.vmap(_seed_init(trainer))),
            jit(jax.vmap(trainer.run, in_axes=(0, None), axis_name=RUNS_AXIS),
                static_argnums=1),
            jit(jax.vmap(lambda params, seed, n: trainer.evaluate(params, eval_key(seed), n),
                         in_axes=(0, 0, None), axis_name=RUNS_AXIS), static_argnums=2),
        )
    return _PROGRAMS[cfg, platform]


def _seed_init(trainer: Trainer):
    """``trainer.init`` from a seed (``uint32``) rather than a key."""
    return lambda seed, lr: trainer.init(jax.random.key(seed), lr)


class _CompileAhead:
    """Programs compiling in background threads; :meth:`wait` before calling one, so that it is
    not compiled twice (a jitted function called after its ``lower(...).compile()`` reuses the
    compiled program)."""

    def __init__(self, jobs: dict[tuple, Any]):
        from concurrent.futures import ThreadPoolExecutor

        self._pool = ThreadPoolExecutor(max_workers=max(1, len(jobs)),
                                        thread_name_prefix="reinforce-compile")
        self._futures = {name: self._pool.submit(job) for name, job in jobs.items()}
        self._pool.shutdown(wait=False)

    def wait(self, name: tuple) -> None:
        future = self._futures.pop(name, None)
        if future is not None:
            future.result()


def _compile_ahead(cfg: TrainConfig, seeds, lrs, devices: list, done: int) -> _CompileAhead:
    """Start compiling the chunk programs (one per chunk length still to run) and the
    evaluation of ``train_many`` for these (sharded) seeds and learning rates."""
    _, init, run_chunk, evaluate = _programs(cfg, devices[0].platform)
    state = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=seeds.sharding),
        jax.eval_shape(init, seeds, lrs))
    lengths = {min(cfg.chunk_updates, cfg.n_updates - d)
               for d in range(done, cfg.n_updates, cfg.chunk_updates)}
    jobs = {("chunk", n): partial(lambda n: run_chunk.lower(state, n).compile(), n)
            for n in sorted(lengths)}
    jobs[("evaluate",)] = lambda: evaluate.lower(state.params, seeds,
                                                 cfg.n_evaluation_episodes).compile()
    return _CompileAhead(jobs)


# --- checkpoints of many runs: named numpy arrays, no pickle --------------------------------


def state_arrays(host: TrainState, n_runs: int | None = None) -> dict[str, Any]:
    """Every array of a stacked ``TrainState`` on the host (:func:`to_host`: the key as its raw
    data), its first ``n_runs`` runs, by key path.

    Names are ``jax.tree_util.keystr`` paths: ``state.params['params']['layers_0']['bias']``,
    ``state.opt_state.mu[...]``, ``state.key`` (the raw key data), ``state.lr``, ...
    """
    leaves = jax.tree_util.tree_flatten_with_path(host)[0]
    return {"state" + jax.tree_util.keystr(path): leaf[:n_runs] for path, leaf in leaves}


def state_from_arrays(template: TrainState, arrays: dict[str, Any], source: str) -> TrainState:
    """The inverse of :func:`state_arrays` (key left raw), rebuilt by the tree structure of
    ``template`` (shapes and dtypes, e.g. from ``jax.eval_shape``); every array is checked."""
    from reinforce.checkpoint import CheckpointError, take

    leaves, treedef = jax.tree_util.tree_flatten_with_path(template)
    names = ["state" + jax.tree_util.keystr(path) for path, _ in leaves]
    unexpected = sorted(set(k for k in arrays if k.startswith("state")) - set(names))
    if unexpected:
        raise CheckpointError(f"{source} holds arrays this JAX trainer does not have "
                              f"({', '.join(unexpected[:3])}); a checkpoint of another version?")
    values = [take(arrays, name, source, leaf.shape, leaf.dtype)
              for name, (_, leaf) in zip(names, leaves, strict=True)]
    return jax.tree_util.tree_unflatten(treedef, values)


def many_arrays(host: TrainState, chunks: list[Metrics], wall: list[float], n_runs: int
                ) -> dict[str, Any]:
    """A checkpoint of :func:`train_many`: the state (on the host), the metrics so far, their
    wall times."""
    import numpy as np

    out = state_arrays(host, n_runs)
    for name in Metrics._fields:
        series = [getattr(c, name) for c in chunks]
        out[f"metrics/{name}"] = (np.concatenate(series, axis=1) if series
                                  else np.zeros((n_runs, 0), np.float32))
    out["wall"] = np.asarray(wall, np.float64)
    return out


def restore_many(template: TrainState, checkpoint, n_runs: int, source: str = "the checkpoint"):
    """``(state with raw key, [metrics so far], wall)`` from a checkpoint of ``train_many``."""
    import numpy as np

    from reinforce.checkpoint import CheckpointError, take

    progress, arrays = checkpoint.progress, checkpoint.arrays
    if progress.get("backend") != "jax":
        raise CheckpointError(f"{source} holds {progress.get('backend')} training state, not "
                              "jax; a training state resumes only on its own backend")
    state = state_from_arrays(template, arrays, source)
    done = int(np.asarray(state.update)[0])
    if progress.get("updates_done") != done or not (state.update == done).all():
        raise CheckpointError(f"{source}: the update counter and the progress record disagree")
    series = {name: take(arrays, f"metrics/{name}", source) for name in Metrics._fields}
    wall = take(arrays, "wall", source, (done,))
    for name, value in series.items():
        if value.shape != (n_runs, done):
            raise CheckpointError(f"{source}: metrics/{name} has shape {value.shape}, "
                                  f"expected {(n_runs, done)}")
    chunks = [Metrics(**series)] if done else []
    return state, chunks, [float(w) for w in wall]


def check_finite(session, host: TrainState, metrics: Metrics, n_runs: int, done: int,
                 n_updates: int) -> None:
    """Raise the session's ``TrainingError`` if a chunk left a non-finite loss, weight or
    optimizer moment (the gradients go into the moments) in any run (``host``: the state on the
    host, from :func:`to_host`)."""
    import numpy as np

    from reinforce.session import first_non_finite

    bad = ~np.isfinite(metrics.policy_loss)  # [runs, n]
    if bad.any():
        u = int(bad.any(axis=0).argmax())
        raise session.non_finite("policy loss", f"update {done + u + 1}/{n_updates}",
                                 int(bad[:, u].argmax()))
    n = metrics.policy_loss.shape[1]
    for what, tree in (("weight", host.params), ("gradient (Adam moment)", host.opt_state)):
        leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
        found = first_non_finite({jax.tree_util.keystr(p): x[:n_runs]
                                  for p, x in leaves})
        if found is not None:
            name, run = found
            raise session.non_finite(f"{what} {name}",
                                     f"updates {done + 1}-{done + n}/{n_updates}", run)


def check_checkpoint(cfg: TrainConfig, seeds: list[int], lrs: list[float], checkpoint,
                     source: str = "the checkpoint") -> None:
    """Raise ``CheckpointError`` unless :func:`train_many` can resume ``checkpoint`` (this
    compiles and runs nothing: the template comes from ``jax.eval_shape``)."""
    restore_many(_state_template(Trainer(cfg), len(seeds)), checkpoint, len(seeds), source)


def _state_template(trainer: Trainer, n_runs: int) -> TrainState:
    """Shapes and dtypes of the stacked state of ``n_runs`` runs as a checkpoint stores it (the
    key as its raw data)."""

    def init(seeds, lrs):
        state = jax.vmap(_seed_init(trainer))(seeds, lrs)
        return state._replace(key=jax.random.key_data(state.key))

    return jax.eval_shape(init, jax.ShapeDtypeStruct((n_runs,), jnp.uint32),
                          jax.ShapeDtypeStruct((n_runs,), jnp.float32))
