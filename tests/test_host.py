"""Host-side JAX (a batch of envs stepped from Python, a torch update's returns) runs on the CPU
device even when JAX's default device is another one: here a second CPU device stands in for
an accelerator."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import jax, numpy as np
    from reinforce.envs.batched import BatchedEnv
    from reinforce.host import host_device
    from reinforce_torch.algorithm import Rollout, compute_weights

    cpu0, other = jax.devices()
    assert host_device() == cpu0
    jax.config.update("jax_default_device", other)
    assert jax.numpy.zeros(1).devices() == {other}  # the default device is elsewhere
    env = BatchedEnv("CartPole-v1", 3, seed=0)
    env.reset()
    env.step(np.zeros(3, np.int32))
    env.renew(np.zeros((3, 4), np.float32), np.array([True, False, True]))
    placed = {d for leaf in jax.tree.leaves((env.key, env.state)) for d in leaf.devices()}
    assert placed == {cpu0}, placed
    env.key = jax.random.key(5)  # a key set from outside (a resumed checkpoint) moves too
    assert env.key.devices() == {cpu0}
    T = 4
    rollout = Rollout(np.zeros((T, 2, 4), np.float32), np.zeros((T, 2), np.int64),
                      np.ones((T, 2), np.float32), np.eye(T, 2, -2, dtype=bool),
                      np.ones((T, 2), bool))
    with jax.transfer_guard_device_to_device("disallow"):
        weights = compute_weights(rollout, 0.9, True)
    assert weights.shape == (T, 2)
    print("on the host")
""")


def test_host_side_jax_runs_on_the_cpu_device_whatever_the_default():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
           "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "on the host" in done.stdout
