"""The runs axis sharded over 4 forced host devices gives the results of one device."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

SCRIPT = r"""
import json, sys
import jax, numpy as np
from reinforce.config import RunSpec, preset
from reinforce_jax.run import train_many
cfg = preset("fast", "CartPole-v1").replace(n_training_episodes=48, batch_episodes=4,
                                            chunk_updates=4, n_evaluation_episodes=8)
seeds = [0, 1, 2, 3, 4, 5]  # 6 runs: padded to 8 on 4 devices
lrs = [0.05, 0.02, 0.05, 0.02, 0.05, 0.02]
r = train_many(cfg, [RunSpec.of(s, lr=lr) for s, lr in zip(seeds, lrs)])
print(json.dumps({
    "devices": len(jax.devices()),
    "metrics": {k: np.asarray(v).tolist() for k, v in r.metrics._asdict().items()},
    "params": [[w[k].tolist() for k in sorted(w)] for w in r.weights],
    "eval": np.asarray(r.eval_returns).tolist(),
}))
"""


def _run(n_devices: int) -> dict:
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={n_devices}",
               JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                         text=True, timeout=300, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def one_and_four():
    return _run(1), _run(4)


def test_four_devices_are_used(one_and_four):
    one, four = one_and_four
    assert (one["devices"], four["devices"]) == (1, 4)


def test_same_metrics_params_and_evaluation(one_and_four):
    one, four = one_and_four
    _assert_same_results(four, one)


def _assert_same_results(got: dict, expected: dict) -> None:
    """Metrics, weights and evaluation returns equal to float tolerance."""
    for name, values in expected["metrics"].items():
        np.testing.assert_allclose(got["metrics"][name], values, rtol=1e-5, atol=1e-5,
                                   err_msg=name)
    for run_a, run_b in zip(expected["params"], got["params"], strict=True):
        for a, b in zip(run_a, run_b, strict=True):
            np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got["eval"], expected["eval"], rtol=1e-6)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _run_two_processes() -> list[dict]:
    """The same script in two processes of 2 forced host devices each, joined by
    ``jax.distributed`` on this machine: 4 devices in all, 2 of them in each process."""
    port = _free_port()
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2",
               JAX_PLATFORMS="cpu")
    procs = []
    for i in range(2):
        init = (f"from reinforce_jax.devices import init_distributed\n"
                f"init_distributed('localhost:{port}', 2, {i})\n")
        procs.append(subprocess.Popen([sys.executable, "-c", init + SCRIPT], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outs = []
    for p in procs:
        try:
            stdout, stderr = p.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
        assert p.returncode == 0, stderr[-2000:]
        outs.append(json.loads(stdout.strip().splitlines()[-1]))
    return outs


def test_two_processes_give_the_results_of_one_device(one_and_four):
    one, _ = one_and_four
    outs = _run_two_processes()
    for out in outs:  # every process sees all 4 devices and gets every run's results
        assert out["devices"] == 4
        _assert_same_results(out, one)
