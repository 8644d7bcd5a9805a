"""Where the JAX trainer runs: devices, sharding of the runs axis, several processes, and the
compiled programs' options and cache.

On a CPU, :func:`use_host_cores` exposes every core as a host device (XLA runs a program of
small ops on one core), so the runs of ``reinforce_jax.run.train_many`` spread over the cores;
a GPU or TPU is used as it is. :func:`platform_devices` maps the ``--device`` values to JAX's
devices; :func:`shard_runs` puts the runs axis on them; :func:`init_distributed`,
:func:`to_host` and :func:`any_process` let one training span several processes.
"""

from __future__ import annotations

import os
from functools import cache, partial
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils

from reinforce.config import DEVICES, ConfigError, compile_cache_dir


def use_host_cores(n: int | None = None) -> None:
    """Expose the CPU's cores to XLA as ``n`` host devices (default: all of them).

    XLA runs one small-op program on one core; as ``n`` devices, the runs of ``train_many``
    are spread over the cores. Must be called before JAX creates its CPU backend (before the
    first array op); an ``XLA_FLAGS`` that already sets the count is left alone. It changes
    nothing on a GPU/TPU, where the accelerators are the devices.
    """
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
    def one(x):
        if isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
            x = jax.random.key_data(x)
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            return np.asarray(multihost_utils.process_allgather(x, tiled=True))
        return np.asarray(x)

    return jax.tree.map(one, tree)


def any_process(flag: bool) -> bool:
    """``flag`` of this process, or-ed over all processes (a collective when there are several),
    so that every process takes the same branch."""
    if jax.process_count() == 1:
        return bool(flag)
    return bool(np.asarray(multihost_utils.process_allgather(np.asarray(flag))).any())


#: A program whose runs play at most this many env steps each (counted to the horizon) is
#: compiled for a quick start rather than for speed (:func:`compiler_options`).
QUICK_START_STEPS = 4_000_000

#: XLA's CPU option that picks its older code generator (docs/scale.md, "Compilation").
_OLDER_CODEGEN = {"xla_cpu_use_fusion_emitters": False}


def compiler_options(platform: str | None = None, steps: int | None = None
                     ) -> dict[str, Any] | None:
    """XLA options for the trainer's programs. On the CPU: LLVM optimization level 1, which
    compiles faster than the default level and runs as fast; and for a program that plays at
    most :data:`QUICK_START_STEPS` env steps per run (``steps``; None: no bound), XLA's older
    code generator, which compiles in about half the time and runs about 15% slower (docs/scale.md,
    "Compilation"), where this jaxlib has it. Other platforms keep their defaults.
    ``platform`` defaults to JAX's default.
    """
    if (platform or jax.default_backend()) != "cpu":
        return None
    options: dict[str, Any] = {"xla_backend_optimization_level": 1}
    if steps is not None and steps <= QUICK_START_STEPS and _has_older_codegen():
        options.update(_OLDER_CODEGEN)
    return options


@cache
def _has_older_codegen() -> bool:
    """Whether this jaxlib's CPU compiler knows :data:`_OLDER_CODEGEN` (checked once, on a
    tiny program)."""
    cpu = jax.sharding.SingleDeviceSharding(jax.devices("cpu")[0])
    try:
        jax.jit(lambda x: x, compiler_options=_OLDER_CODEGEN).lower(
            jax.ShapeDtypeStruct((), jnp.float32, sharding=cpu)).compile()
    except jax.errors.JaxRuntimeError:  # "No such compile option": another jaxlib
        return False
    return True
