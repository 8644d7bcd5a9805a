"""Training configuration: one frozen dataclass, validated on construction, and the presets."""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import math
import numbers
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from reinforce.envs import ENV_CHOICES, UnknownEnvError, check_id, source
from reinforce.returns import BASELINES

#: The course's certification threshold on score = mean - std, per env.
CERTIFICATION = {"CartPole-v1": 350.0, "Pixelcopter-PLE-v0": 5.0}


#: Segment mode: ended episodes are replaced by new ones at every multiple of this many steps.
SEGMENT_BLOCK = 64
#: Segment mode: the discounted weight (relative to the step's own reward) of the rewards that a
#: learned step's return may miss because the segment ended; sets how many steps are not learned.
SEGMENT_TOLERANCE = 0.01


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_)


def segment_cut(gamma: float) -> int:
    """Steps at the end of a segment that are played but not learned from: the least ``k`` with
    ``gamma ** k <= SEGMENT_TOLERANCE`` (90 for gamma 0.95, 459 for 0.99)."""
    if gamma <= 0.0:
        return 0
    if gamma >= 1.0:
        raise ValueError("segments need gamma < 1")
    return math.ceil(math.log(SEGMENT_TOLERANCE) / math.log(gamma) - 1e-9)


#: The largest entropy or value-loss weight a config takes (beyond it the policy loss is noise).
MAX_COEF = 1e3

#: What the policy sees: the env's feature vector, or its rendered frames.
OBS_MODES = ("features", "pixels")
#: The envs whose frames are small enough to learn from.
PIXEL_ENV_IDS = ("Pixelcopter-PLE-v0",)

#: Where a backend computes (``--device``): ``auto`` is the accelerator when there is one.
DEVICES = ("auto", "cpu", "cuda")


class ConfigError(ValueError):
    """A hyper-parameter or option that cannot be used; the message says which and why."""


# --- how a setting is written on the command line ------------------------------------------
# The CLI makes one option per field of TrainConfig (``reinforce.app.cli``): its flag, its help
# (the field's text) and how its value is read come from the field's metadata.


def float_text(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def float_list(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {text!r}"
                                         ) from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one number")
    return values


def int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers separated by commas, got {text!r}"
                                         ) from None


def _doc(text: str, *, flag: str | None = None, parse: Callable[[str], Any] | None = None,
         metavar: str | None = None, sweep: bool = False, **kwargs: Any) -> Any:
    """A field with its help text and, for the command line, its ``flag`` (default
    ``--field-name``), how its text is read (``parse``; default by the field's type) and its
    ``metavar``. A ``sweep`` field is a number the trainers take per run (``SWEEPABLE``): the
    command line reads a comma-separated list and trains every value."""
    if sweep:
        text += "; a comma-separated list trains every value (one program with JAX)"
    return field(metadata={"help": text, "flag": flag, "parse": float_list if sweep else parse,
                           "metavar": metavar, "sweep": sweep}, **kwargs)


def _check_env(env_id: str) -> None:
    """:func:`reinforce.envs.check_id`, its refusal as a ``ConfigError``."""
    try:
        check_id(env_id)
    except UnknownEnvError as exc:
        raise ConfigError(str(exc)) from None


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a REINFORCE training run (one seed, one learning rate)."""

    env_id: str = _doc(f"environment: {ENV_CHOICES}", flag="--env",
                       default="CartPole-v1")
    obs: str = _doc(
        "what the policy sees: features (the env's observation vector) or pixels (the frames "
        "the env renders, in gray, through a small CNN; Pixelcopter-PLE-v0)",
        default="features",
    )
    frame_stack: int = _doc("pixels: the last N frames the policy sees", metavar="N", default=1)
    normalize_obs: bool = _doc(
        "features: the policy first maps each observation value from the range the env plays "
        "in to [-1, 1] (Pixelcopter: its 48 px screen), a fixed step of the network, so that "
        "the exported policy still takes the env's own observations (frames are always scaled "
        "to [0, 1])", default=False,
    )
    hidden_sizes: tuple[int, ...] = _doc(
        "hidden layer widths of the policy MLP (ReLU between layers, softmax at the end), "
        "e.g. 16 or 64,128", flag="--hidden", parse=int_list, default=(16,),
    )
    lr: float = _doc("Adam learning rate", sweep=True, default=1e-2)
    gamma: float = _doc("discount factor, in [0, 1]", sweep=True, default=1.0)
    n_training_episodes: int = _doc("episodes played during training", flag="--episodes",
                                    default=1000)
    max_t: int = _doc("longest episode played during training and evaluation", default=1000)
    batch_episodes: int = _doc(
        "complete episodes per update (1 = the course's one-episode update)", default=1
    )
    lr_decay: bool = _doc(
        "anneal the learning rate linearly to 0 over the updates", default=False
    )
    lr_warmup: int = _doc(
        "0: none; N > 0: the learning rate rises linearly over the first N updates (update u "
        "uses (u + 1) / N of it), then follows lr_decay; keeps a high learning rate from "
        "collapsing the policy early",
        metavar="N", default=0,
    )
    normalize_returns: bool = _doc(
        "normalize the reward-to-go by its mean and std over the batch", default=True
    )
    baseline: str = _doc(
        "subtracted from the reward-to-go before normalizing: none (the course's), time (the "
        "mean return-to-go of the batch's other episodes at the same step; 0, as none, with "
        "one episode per batch) or value (a learned state value V(s), its own network of the "
        "policy's shape, fitted by least squares to the same batch's reward-to-go)",
        default="none",
    )
    value_coef: float = _doc(
        "baseline value: the weight of the value loss 0.5 * sum (V(s) - G)^2 / B beside the "
        "policy loss (it matters through --max-grad-norm and Adam's epsilon)",
        sweep=True, default=0.5,
    )
    entropy_coef: float = _doc(
        "weight of the entropy bonus: the loss subtracts it times the policy's entropy "
        "summed over the learned steps, / B (0: none, the course's)",
        sweep=True, default=0.0,
    )
    max_grad_norm: float = _doc(
        "0: no clipping; > 0: the gradient (policy and value together) is scaled down to this "
        "global norm when it is longer",
        sweep=True, default=0.0,
    )
    segment_steps: int = _doc(
        "0: every update plays batch_episodes complete episodes (the course's REINFORCE); N > 0: "
        "every update plays batch_episodes envs for N steps each (a multiple of 64), starting new "
        "episodes as they end, and learns from all but the last steps of each (whose returns "
        "would miss more than 1 percent of their discounted weight); needs gamma < 1; "
        "n_training_episodes then counts segments",
        metavar="N", default=0,
    )
    n_evaluation_episodes: int = _doc("episodes of the final evaluation", flag="--eval-episodes",
                                      default=100)
    chunk_updates: int = _doc(
        "updates between progress reports (JAX: compiled into one call)", default=50
    )

    def __post_init__(self) -> None:
        self._check_types()
        _check_env(self.env_id)
        if not self.hidden_sizes or any(h < 1 for h in self.hidden_sizes):
            raise ConfigError(f"hidden sizes must be positive integers, got {self.hidden_sizes}")
        if not (self.lr > 0) or self.lr == float("inf"):
            raise ConfigError(f"learning rate must be a positive number, got {self.lr}")
        if not (0.0 <= self.gamma <= 1.0):
            raise ConfigError(f"gamma must be in [0, 1], got {self.gamma}")
        for name, low, high in (("entropy_coef", 0.0, MAX_COEF), ("value_coef", 0.0, MAX_COEF),
                                ("max_grad_norm", 0.0, float("inf"))):
            value = getattr(self, name)
            if not low <= value < high:
                raise ConfigError(f"{name} must be a number in [{low:g}, {high:g}), got "
                                  f"{value}")
        for name in ("n_training_episodes", "max_t", "batch_episodes", "n_evaluation_episodes",
                     "chunk_updates"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.baseline not in BASELINES:
            raise ConfigError(f"unknown baseline {self.baseline!r}; choose one of "
                              f"{', '.join(BASELINES)}")
        self._check_segments()
        self._check_obs()
        if int(self.lr_warmup) < 0:
            raise ConfigError(f"lr_warmup must be 0 or more updates, got {self.lr_warmup}")
        if self.batch_episodes > self.n_training_episodes:
            raise ConfigError(
                f"batch_episodes ({self.batch_episodes}) exceeds n_training_episodes "
                f"({self.n_training_episodes})"
            )
        if self.lr_warmup >= self.n_updates:
            raise ConfigError(f"lr_warmup ({self.lr_warmup} updates) must be shorter than the "
                              f"training ({self.n_updates} updates)")

    def _check_types(self) -> None:
        """Every field has its type (a config.json may hold anything): integers are integers,
        numbers are real numbers (stored as float), switches are booleans."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.type == "int" and not _is_int(value):
                raise ConfigError(f"{f.name} must be an integer, got {value!r}")
            if f.type == "float":
                if isinstance(value, bool) or not isinstance(value, numbers.Real):
                    raise ConfigError(f"{f.name} must be a number, got {value!r}")
                object.__setattr__(self, f.name, float(value))
            if f.type == "bool" and not isinstance(value, bool | np.bool_):
                raise ConfigError(f"{f.name} must be true or false, got {value!r}")
            if f.type == "str" and not isinstance(value, str):
                raise ConfigError(f"{f.name} must be a string, got {value!r}")
        hidden = self.hidden_sizes
        if not isinstance(hidden, tuple | list) or not all(_is_int(h) for h in hidden):
            raise ConfigError(f"hidden sizes must be positive integers, got {hidden!r}")
        object.__setattr__(self, "hidden_sizes", tuple(int(h) for h in hidden))

    def _check_obs(self) -> None:
        if self.obs not in OBS_MODES:
            raise ConfigError(f"unknown observation mode {self.obs!r}; choose one of "
                              f"{', '.join(OBS_MODES)}")
        if self.frame_stack < 1:
            raise ConfigError(f"frame_stack must be at least 1, got {self.frame_stack}")
        if self.obs == "pixels" and self.env_id not in PIXEL_ENV_IDS:
            raise ConfigError(f"obs pixels is for {', '.join(PIXEL_ENV_IDS)} (48 x 48 frames), "
                              f"not {self.env_id}")
        if self.frame_stack > 1 and self.obs != "pixels":
            raise ConfigError("frame_stack stacks frames: it needs obs pixels")
        if self.segment_steps and source(self.env_id) == "gymnasium":
            raise ConfigError(f"segments are for our envs and gymnax's, not {self.env_id}")


    def _check_segments(self) -> None:
        n = int(self.segment_steps)
        if n == 0:
            return
        if n < 0 or n % SEGMENT_BLOCK:
            raise ConfigError(f"segment_steps must be 0 or a positive multiple of "
                              f"{SEGMENT_BLOCK}, got {n}")
        if self.gamma >= 1.0:
            raise ConfigError("segment_steps needs gamma < 1 (a segment's last returns are cut "
                              "short; with gamma 1 no step's return would be complete)")
        if self.baseline == "time":
            raise ConfigError(f"baseline {self.baseline!r} needs complete episodes that start "
                              "together; use segment_steps 0, or baseline none or value")
        cut = segment_cut(self.gamma)
        if n <= cut:
            least = -(-(cut + 1) // SEGMENT_BLOCK) * SEGMENT_BLOCK
            raise ConfigError(f"segment_steps {n} is too short for gamma {self.gamma}: its last "
                              f"{cut} steps are not learned from; use at least {least}")

    @property
    def segment_learned(self) -> int:
        """Segment mode: the steps at the start of each segment that are learned from."""
        return self.segment_steps - segment_cut(self.gamma) if self.segment_steps else 0

    @property
    def n_updates(self) -> int:
        """Number of policy updates: the training episodes in batches of `batch_episodes`."""
        return self.n_training_episodes // self.batch_episodes

    def lr_factor(self, update: int) -> float:
        """Multiplier of the learning rate at update ``update`` (0-based): the warm-up
        ``min(1, (update + 1) / lr_warmup)`` times the decay ``1 - update / n_updates``. The JAX
        trainer computes the same in float32."""
        factor = 1.0 - update / self.n_updates if self.lr_decay else 1.0
        if self.lr_warmup:
            factor *= min(1.0, (update + 1) / self.lr_warmup)
        return factor

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["hidden_sizes"] = list(self.hidden_sizes)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ConfigError(f"unknown config keys: {', '.join(sorted(unknown))}")
        data = dict(data)
        if "hidden_sizes" in data:
            data["hidden_sizes"] = tuple(data["hidden_sizes"])
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


def flag_of(f: dataclasses.Field) -> str:
    """The command-line flag of a TrainConfig field."""
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


#: The settings each run of a training may have its own value of (numbers the trainers take
#: per run, so the JAX backend trains a grid of them in one program).
SWEEPABLE = tuple(f.name for f in dataclasses.fields(TrainConfig) if f.metadata.get("sweep"))


@dataclass(frozen=True)
class RunSpec:
    """One run of a training: its seed and its values of the settings that vary between runs
    (``SWEEPABLE``), as ``(name, value)`` pairs that always include ``lr``."""

    seed: int
    settings: tuple[tuple[str, float], ...]

    def __post_init__(self) -> None:
        names = [name for name, _ in self.settings]
        unknown = sorted(set(names) - set(SWEEPABLE))
        if unknown or "lr" not in names or len(set(names)) != len(names):
            raise ConfigError(f"a run's own settings are {', '.join(SWEEPABLE)} (lr always, "
                              f"each once), got {', '.join(names) or 'none'}")
        order = {name: i for i, name in enumerate(SWEEPABLE)}
        settings = sorted(((n, float(v)) for n, v in self.settings), key=lambda p: order[p[0]])
        object.__setattr__(self, "seed", int(self.seed))
        object.__setattr__(self, "settings", tuple(settings))

    @classmethod
    def of(cls, seed: int, **settings: float) -> RunSpec:
        return cls(seed, tuple(settings.items()))

    @property
    def lr(self) -> float:
        return dict(self.settings)["lr"]

    def config(self, base: TrainConfig) -> TrainConfig:
        """``base`` with this run's settings (validated)."""
        return base.replace(**dict(self.settings))

    def label(self, sep: str = "=", join: str = " ") -> str:
        """``seed=0 lr=0.05 entropy_coef=0.01`` (for messages and legends)."""
        parts = [("seed", str(self.seed))] + [(n, f"{v:g}") for n, v in self.settings]
        return join.join(f"{n}{sep}{v}" for n, v in parts)

    def to_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, **dict(self.settings)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunSpec:
        data = dict(data)
        return cls(int(data.pop("seed")), tuple(data.items()))


def grid(base: TrainConfig, seeds: list[int], values: dict[str, list[float]]
         ) -> tuple[TrainConfig, list[RunSpec]]:
    """Every combination of the swept ``values`` (``SWEEPABLE`` names; lr defaults to
    ``base.lr``), each trained with every seed (seeds inner): the runs, each config checked,
    and ``base`` with the first combination's settings."""
    unknown = sorted(set(values) - set(SWEEPABLE))
    if unknown:
        raise ConfigError(f"{', '.join(unknown)} cannot vary between runs; only "
                          f"{', '.join(SWEEPABLE)} can")
    names = [n for n in SWEEPABLE if n in values or n == "lr"]
    lists = [list(values.get(n, [getattr(base, n)])) for n in names]
    combos = [tuple(zip(names, combo, strict=True)) for combo in itertools.product(*lists)]
    for settings in combos:
        base.replace(**dict(settings))  # validates every combination
    return base.replace(**dict(combos[0])), [RunSpec(seed, settings) for settings in combos
                                             for seed in seeds]


# --- presets -------------------------------------------------------------------------------

#: Pixelcopter's fast preset, which its long preset trains for longer.
_PIXELCOPTER_FAST = TrainConfig(
    env_id="Pixelcopter-PLE-v0", hidden_sizes=(64, 128), normalize_obs=True, lr=6e-3,
    gamma=0.97, n_training_episodes=32 * 2500, max_t=10000, batch_episodes=32, lr_decay=True,
    baseline="value", entropy_coef=0.01, max_grad_norm=0.5, segment_steps=1024,
    chunk_updates=100,
)

PRESETS: dict[str, dict[str, TrainConfig]] = {
    # The course's hyper-parameters (Deep RL course, Unit 4), one episode per update.
    "notebook": {
        "CartPole-v1": TrainConfig(
            env_id="CartPole-v1", hidden_sizes=(16,), lr=1e-2, gamma=1.0,
            n_training_episodes=1000, max_t=1000, batch_episodes=1,
        ),
        "Pixelcopter-PLE-v0": TrainConfig(
            env_id="Pixelcopter-PLE-v0", hidden_sizes=(64, 128), lr=1e-4, gamma=0.99,
            n_training_episodes=50000, max_t=10000, batch_episodes=1, chunk_updates=500,
        ),
    },
    # Tuned: batches of episodes per update, fewer updates, reaches the top score fast.
    "fast": {
        # 32 episodes per update with the time baseline: every seed certifies in seconds.
        "CartPole-v1": TrainConfig(
            env_id="CartPole-v1", hidden_sizes=(16,), lr=7e-2, gamma=1.0,
            n_training_episodes=1920, max_t=500, batch_episodes=32, lr_decay=True,
            baseline="time", chunk_updates=10,
        ),
        # A learned value baseline on scaled inputs, entropy, clipping: certifies in minutes.
        "Pixelcopter-PLE-v0": _PIXELCOPTER_FAST,
    },
    # Pixelcopter: the fast preset trained 7 times longer, for the lowest crash rate.
    "long": {
        "Pixelcopter-PLE-v0": _PIXELCOPTER_FAST.replace(n_training_episodes=32 * 18000),
    },
    # Pixelcopter through its frames (a CNN on the last 2 gray frames), for a 2-core CPU:
    # small batches, so that many updates fit in well under an hour (docs/pixels.md).
    "pixels": {
        "Pixelcopter-PLE-v0": TrainConfig(
            env_id="Pixelcopter-PLE-v0", obs="pixels", frame_stack=2, hidden_sizes=(64,),
            lr=1e-3, gamma=0.95, n_training_episodes=16 * 6000, max_t=10000,
            batch_episodes=16, lr_decay=True, lr_warmup=250, segment_steps=256,
            chunk_updates=50,
        ),
    },
    # The same for one GPU: hundreds of envs per update (a warm-up keeps the higher lr).
    "pixels-gpu": {
        "Pixelcopter-PLE-v0": TrainConfig(
            env_id="Pixelcopter-PLE-v0", obs="pixels", frame_stack=2, hidden_sizes=(64,),
            lr=3e-3, gamma=0.95, n_training_episodes=256 * 2500, max_t=10000,
            batch_episodes=256, lr_decay=True, lr_warmup=250, segment_steps=1024,
            chunk_updates=50,
        ),
    },
}

DEFAULT_PRESET = "fast"

#: The fast preset of an env that is not ours and has none of its own: the time baseline and
#: normalized returns (blind to the reward's scale), a little entropy, 16 episodes per update.
FOREIGN_FAST = TrainConfig(
    hidden_sizes=(64, 64), lr=1e-2, gamma=0.99, n_training_episodes=16 * 300, max_t=10000,
    batch_episodes=16, lr_decay=True, baseline="time", entropy_coef=0.01, chunk_updates=25,
)
#: Settings over FOREIGN_FAST for some envs that are not ours (kept as settings: a config of a
#: gymnax env would import gymnax with this module).
FOREIGN_PRESETS: dict[str, dict[str, Any]] = {
    # Scaled inputs, twice the lr, 200 updates: 32 seeds near -90 in well under a minute.
    "gymnax:Acrobot-v1": dict(normalize_obs=True, lr=2e-2, n_training_episodes=16 * 200),
    # A learned value baseline, lr 0.01, entropy 0.05: less keeps seeds on fixed plays.
    "gymnax:Breakout-MinAtar": dict(baseline="value", lr=1e-2, entropy_coef=0.05),
}


def preset(name: str, env_id: str) -> TrainConfig:
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    _check_env(env_id)
    if name == DEFAULT_PRESET and env_id not in PRESETS[name] and source(env_id) != "ours":
        return FOREIGN_FAST.replace(env_id=env_id, **FOREIGN_PRESETS.get(env_id, {}))
    if env_id not in PRESETS[name]:
        raise ConfigError(f"preset {name} is for {', '.join(PRESETS[name])} only, not "
                          f"{env_id}")
    return PRESETS[name][env_id]


# --- the compilation cache -------------------------------------------------------------

#: The environment variable naming the compilation cache folder ("off" disables the cache).
COMPILE_CACHE_ENV = "REINFORCE_COMPILE_CACHE"


def compile_cache_dir() -> Path | None:
    """Where compiled programs are kept between processes: ``$REINFORCE_COMPILE_CACHE``, else
    ``$XDG_CACHE_HOME/reinforce/jax`` (``~/.cache/reinforce/jax``); None when it says ``off``."""
    value = os.environ.get(COMPILE_CACHE_ENV)
    if value is not None:
        value = value.strip()
        return None if value.lower() in ("", "off", "0", "false", "no") else Path(value)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "reinforce" / "jax"
