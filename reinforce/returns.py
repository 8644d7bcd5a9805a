"""Discounted reward-to-go and its normalization: the one definition both trainers use.

Arrays are time-major, ``[T, B]``: column ``b`` holds one or more episodes played one after the
other; ``done[t, b]`` is True on the last step of an episode (terminated or truncated) and
cuts the return there. ``valid[t, b]`` marks steps that belong to an episode at all (padding
after an episode's end is invalid and ignored by the normalization).

The numpy loops at the bottom are the test oracle, not used by the trainers.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

#: The normalization's epsilon, the float32 machine epsilon (as the course uses).
EPS = float(np.finfo(np.float32).eps)

#: What is subtracted from the reward-to-go before the normalization: ``"none"`` (the course's
#: REINFORCE), ``"time"`` (:func:`time_baseline`) or ``"value"`` (a learned state value
#: V(s_t), computed by the trainer and passed as ``values``).
BASELINES = ("none", "time", "value")


def _affine_inputs(rewards, dones, gamma, bootstrap):
    """``(rewards, continuation)`` with ``continuation = gamma * (1 - done)``, as arrays of the
    rewards' dtype, and the bootstrap (default 0)."""
    rewards = jnp.asarray(rewards)
    gamma = jnp.asarray(gamma, rewards.dtype)
    not_done = 1.0 - jnp.asarray(dones, rewards.dtype)
    carry = jnp.zeros_like(rewards[0]) if bootstrap is None else bootstrap.astype(rewards.dtype)
    return rewards, gamma, not_done, carry


def discounted_returns_scan(rewards, dones, gamma, bootstrap=None) -> jax.Array:
    """:func:`discounted_returns` by a reverse ``lax.scan``: ``T`` sequential steps over
    ``[B]`` rows. The fastest on a CPU (``benchmarks.device_check`` measures both)."""
    rewards, gamma, not_done, carry = _affine_inputs(rewards, dones, gamma, bootstrap)

    def backward(next_return, inputs):
        reward, cont = inputs
        ret = reward + gamma * next_return * cont
        return ret, ret

    _, returns = jax.lax.scan(backward, carry, (rewards, not_done), reverse=True)
    return returns


def discounted_returns_associative(rewards, dones, gamma, bootstrap=None) -> jax.Array:
    """:func:`discounted_returns` by a parallel (associative) scan: ``log2(T)`` passes over the
    whole ``[T, B]`` array. The fastest on a GPU, where a sequential scan runs one small kernel
    per step.

    Step ``t`` is the affine map ``x -> r[t] + c[t] * x`` with ``c[t] = gamma * (1 - done[t])``,
    and ``G[t]`` is the composition of the maps of steps ``t .. T-1`` applied to the bootstrap.
    Composition is associative: (earlier after later) is ``(c1 * c2, r1 + c1 * r2)``.
    """
    rewards, gamma, not_done, carry = _affine_inputs(rewards, dones, gamma, bootstrap)
    cont = gamma * not_done
    rewards = rewards.at[-1].add(cont[-1] * carry)  # G[T] = bootstrap enters through step T-1

    def compose(later, earlier):  # reverse scan: the accumulated later steps come first
        c_later, r_later = later
        c_earlier, r_earlier = earlier
        return c_earlier * c_later, r_earlier + c_earlier * r_later

    _, returns = jax.lax.associative_scan(compose, (cont, rewards), reverse=True)
    return returns


@jax.jit
def discounted_returns(
    rewards: jax.Array,
    dones: jax.Array,
    gamma: float | jax.Array,
    bootstrap: jax.Array | None = None,
) -> jax.Array:
    """G[t] = r[t] + gamma * G[t+1] * (1 - done[t]), over time-major ``[T, B]`` arrays.

    ``bootstrap`` (shape ``[B]``, default 0) is G[T], the return just after the last row; it
    lets a long rollout be processed in consecutive time chunks, last chunk first.

    The implementation is chosen per platform when the program is lowered
    (``jax.lax.platform_dependent``): the sequential scan on a CPU, the parallel scan
    elsewhere (GPU, TPU). Both agree with the float64 oracle to float32 rounding; which is
    faster where was measured (docs/scale.md, "Returns on each platform").
    """
    return jax.lax.platform_dependent(rewards, dones, gamma, bootstrap,
                                      cpu=discounted_returns_scan,
                                      default=discounted_returns_associative)


@partial(jax.jit, static_argnames=("axis",))
def normalize(returns: jax.Array, valid: jax.Array, axis=None) -> jax.Array:
    """(G - mean) / (std + EPS) over the valid steps; invalid steps become 0.

    ``std`` is the sample standard deviation (Bessel-corrected, as ``torch.Tensor.std``); with a
    single valid step it is taken as 0. ``axis=None`` pools every valid step of the batch, which
    is what one update of REINFORCE does.
    """
    valid = jnp.asarray(valid, returns.dtype)
    count = valid.sum(axis=axis, keepdims=True)
    mean = (returns * valid).sum(axis=axis, keepdims=True) / jnp.maximum(count, 1.0)
    sq = (((returns - mean) ** 2) * valid).sum(axis=axis, keepdims=True)
    std = jnp.sqrt(sq / jnp.maximum(count - 1.0, 1.0))
    return (returns - mean) / (std + EPS) * valid


@jax.jit
def time_baseline(returns: jax.Array, valid: jax.Array) -> jax.Array:
    """Leave-one-out baseline of a batch of episodes that all start at row 0, ``[..., T, B]``.

    ``b[t, i]`` is the mean reward-to-go at step ``t`` of the *other* episodes ``j != i`` still
    running at step ``t`` (0 when there are none). It depends on the other episodes only, so
    subtracting it leaves the policy gradient unbiased while removing what all episodes share:
    on CartPole, where every return-to-go of a 500-step episode is ``500 - t``, the plain
    normalized returns push late actions down just for being late, even in perfect episodes;
    with this baseline a batch of equal episodes gives no gradient at all.
    """
    valid = jnp.asarray(valid, returns.dtype)
    returns = returns * valid
    total = returns.sum(axis=-1, keepdims=True)
    count = valid.sum(axis=-1, keepdims=True)
    return (total - returns) / jnp.maximum(count - valid, 1.0) * valid


def reward_to_go(
    rewards: jax.Array, dones: jax.Array, valid: jax.Array, gamma: float, normalized: bool = True,
    baseline: str = "none", values: jax.Array | None = None,
) -> jax.Array:
    """The returns a REINFORCE update weighs its log-probabilities with: the discounted
    reward-to-go, less the baseline, normalized (if asked); 0 on invalid steps."""
    return weigh(discounted_returns(rewards, dones, gamma), valid, normalized, baseline, values)


def weigh(returns: jax.Array, valid: jax.Array, normalized: bool, baseline: str,
          values: jax.Array | None = None) -> jax.Array:
    """The last two steps of :func:`reward_to_go`, for returns computed in time chunks:
    subtract the baseline (``values``, the state values V(s_t) of every step, for baseline
    ``"value"``: constants here, the policy's target stays the Monte Carlo return), then
    normalize."""
    if baseline not in BASELINES:
        raise ValueError(f"unknown baseline {baseline!r}; choose one of {', '.join(BASELINES)}")
    if (values is not None) != (baseline == "value"):
        raise ValueError("state values are the value baseline's, and it needs them")
    if baseline == "time":
        returns = returns - time_baseline(returns, valid)
    elif baseline == "value":
        returns = returns - jnp.asarray(values, returns.dtype)
    return normalize(returns, valid) if normalized else returns * jnp.asarray(valid, returns.dtype)


class SegmentEpisodes(NamedTuple):
    """The episodes of a segment rollout (see :func:`segment_episodes`)."""

    ended: jax.Array  # number of episodes that ended within the segments
    ended_return: jax.Array  # sum of their undiscounted returns
    ended_length: jax.Array  # sum of their lengths
    cut_return: jax.Array  # [B] return so far of the episode each column was playing at the end
    cut_length: jax.Array  # [B] its length so far (0: the column's last episode ended)


@jax.jit
def segment_episodes(rewards: jax.Array, dones: jax.Array, valid: jax.Array) -> SegmentEpisodes:
    """Episodes of time-major ``[T, B]`` segments, columns of episodes played one after the
    other: a valid step belongs to an ended episode if a ``done`` follows it in its column, and
    to the column's cut episode (still running at ``T``) otherwise."""
    rewards = jnp.asarray(rewards, jnp.float32)
    dones = jnp.asarray(dones, bool)
    valid = jnp.asarray(valid, bool)
    ends_later = jnp.flip(jnp.cumsum(jnp.flip(dones, 0), axis=0), 0) > 0
    ended, cut = valid & ends_later, valid & ~ends_later
    return SegmentEpisodes(
        ended=dones.sum(),
        ended_return=jnp.where(ended, rewards, 0.0).sum(),
        ended_length=ended.sum(),
        cut_return=jnp.where(cut, rewards, 0.0).sum(axis=0),
        cut_length=cut.sum(axis=0),
    )


@jax.jit
def segment_means(episodes: SegmentEpisodes) -> tuple[jax.Array, jax.Array]:
    """Mean return and length of the episodes that ended in the segments; when none ended, of
    the episodes cut by the segments' end (their return so far)."""
    some = episodes.ended > 0
    count = jnp.maximum(episodes.ended, 1)
    n_cut = jnp.maximum((episodes.cut_length > 0).sum(), 1)
    ep_return = jnp.where(some, episodes.ended_return / count, episodes.cut_return.sum() / n_cut)
    ep_length = jnp.where(some, episodes.ended_length / count, episodes.cut_length.sum() / n_cut)
    return ep_return, ep_length.astype(jnp.float32)


# --- test oracles: plain loops, one episode at a time -----------------------------------------


def discounted_returns_reference(rewards, dones, gamma, bootstrap=None) -> np.ndarray:
    rewards = np.asarray(rewards, dtype=np.float64)
    dones = np.asarray(dones, dtype=bool)
    out = np.zeros_like(rewards)
    for b in range(rewards.shape[1]):
        running = 0.0 if bootstrap is None else float(bootstrap[b])
        for t in reversed(range(rewards.shape[0])):
            if dones[t, b]:
                running = 0.0
            running = rewards[t, b] + gamma * running
            out[t, b] = running
    return out


def time_baseline_reference(returns, valid) -> np.ndarray:
    returns = np.asarray(returns, dtype=np.float64)
    valid = np.asarray(valid, dtype=bool)
    out = np.zeros_like(returns)
    n_steps, n_episodes = returns.shape
    for t in range(n_steps):
        for i in range(n_episodes):
            others = [returns[t, j] for j in range(n_episodes) if j != i and valid[t, j]]
            if valid[t, i] and others:
                out[t, i] = sum(others) / len(others)
    return out


def normalize_reference(returns, valid) -> np.ndarray:
    returns = np.asarray(returns, dtype=np.float64)
    valid = np.asarray(valid, dtype=bool)
    values = returns[valid]
    std = values.std(ddof=1) if values.size > 1 else 0.0
    out = np.zeros_like(returns)
    out[valid] = (values - values.mean()) / (std + EPS)
    return out
