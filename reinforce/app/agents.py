"""An agent to evaluate or film, wherever it is: a run folder, a pushed folder, a Hub repo.

``reinforce evaluate`` and ``reinforce record`` take any of

* a run folder (what ``reinforce train`` writes);
* a pushed folder (what ``reinforce push`` builds: ``config.json``, ``hyperparameters.json``,
  ``model.safetensors``), e.g. a ``--local-dir`` or a clone of a Hub repo;
* a Hub repo id, ``USER/NAME``, when no folder of that name is here: its three files are
  downloaded into huggingface_hub's cache (with ``HF_HUB_OFFLINE=1``, read from it).

A repo's files are untrusted input. Only those three are read (JSON and safetensors, never a
pickle); the two JSON files first, checked as a run's config is (the env, the settings, an
architecture that fits the env) and against the memory estimate of the command line, and only
then are the weights downloaded and checked against the architecture.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path

from reinforce.app import backends
from reinforce.app.hub import HubError, check_repo_id, connection_errors
from reinforce.app.runs import RunFolder
from reinforce.architecture import Architecture, architecture
from reinforce.checkpoint import CheckpointError, read_json
from reinforce.config import ConfigError, RunSpec, TrainConfig

#: A pushed folder's files, in the order they are read (the weights last).
PUSHED_FILES = ("config.json", "hyperparameters.json", "model.safetensors")
_REPO_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


@dataclass(frozen=True)
class Agent:
    """A policy and the settings it was trained with, as a run folder (``folder.path`` is
    where its files are: for a Hub repo, in the cache), and where it came from."""

    folder: RunFolder
    source: str  # as given: a folder or a repo id
    repo_id: str | None  # set when it came from the Hub
    is_run: bool = False  # a run folder (not a pushed folder or a repo)

    def default_replay(self) -> Path:
        """Where ``record`` writes by default: ``replay.mp4`` in a folder; ``NAME-replay.mp4``
        here for a Hub repo (never into the cache)."""
        if self.repo_id is not None:
            return Path(f"{self.repo_id.split('/')[-1]}-replay.mp4")
        return self.folder.path / "replay.mp4"


def open_agent(source: str | Path, device: str = "auto") -> Agent:
    """The agent at ``source``: a run folder, a pushed folder or a Hub repo id (see the
    module's docstring). ``CheckpointError`` or ``ConfigError`` for files that are not an
    agent's, ``HubError`` for a repo that cannot be had."""
    path = Path(source)
    if path.is_dir():
        if (path / "config.json").is_file() and not (path / "hyperparameters.json").is_file():
            return Agent(RunFolder.load(path), str(source), None, is_run=True)
        return Agent(pushed_folder(path, str(path), device), str(source), None)
    if (path.exists() or not _REPO_ID.match(str(source)) or str(source).startswith(".")
            or path.parent.is_dir()):  # a folder here that lacks this run: not a repo id
        return Agent(RunFolder.load(path), str(source), None, is_run=True)  # its own error
    repo_id = check_repo_id(str(source))
    return Agent(_download(repo_id, device), str(source), repo_id)


def pushed_folder(path: Path, name: str, device: str = "auto",
                  weights: Path | None = None) -> RunFolder:
    """A pushed folder as a run folder of one run (its weights ``model.safetensors``), its two
    JSON files checked; the memory its settings need checked on ``device``."""
    config = read_json(path / "config.json")
    hparams = read_json(path / "hyperparameters.json")
    if not isinstance(config, dict) or not isinstance(hparams, dict):
        raise CheckpointError(f"{name} is not an agent of this project (its config.json and "
                              "hyperparameters.json must be JSON objects)")
    names = {f.name for f in fields(TrainConfig)}
    try:
        cfg = TrainConfig.from_dict({k: v for k, v in hparams.items() if k in names})
        backend = backends.get(hparams.get("trained_with", "torch")).name
        seed = int(hparams.get("seed", 0))
    except (TypeError, ValueError, ConfigError) as exc:
        raise CheckpointError(f"{name}: hyperparameters.json is not a training's settings "
                              f"({exc})") from None
    arch = Architecture.from_dict(config, f"{name}: config.json")
    if arch != architecture(cfg):
        raise CheckpointError(f"{name}: config.json describes {arch.describe()}, but its "
                              f"settings train {architecture(cfg).describe()} on {cfg.env_id}")
    backends.get(backend).memory(cfg, 1, device).check()
    return RunFolder(path, cfg, backend, [RunSpec.of(seed, lr=cfg.lr)], arch)


def _download(repo_id: str, device: str) -> RunFolder:
    """The pushed files of ``repo_id`` from the Hub (or the cache): the JSON files, checked,
    then the weights."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    def fetch(filename: str) -> Path:
        try:
            return Path(hf_hub_download(repo_id, filename, repo_type="model"))
        except RepositoryNotFoundError:
            raise HubError(f"no model repo {repo_id} on the Hub (nor a folder of that name "
                           "here); a private repo needs a token (HF_TOKEN or `hf auth login`)",
                           exit_code=2) from None
        except LocalEntryNotFoundError:  # before EntryNotFoundError, its base
            if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
                why = "HF_HUB_OFFLINE is set and it is not in the local cache"
            else:
                why = "the Hub could not be reached and it is not in the local cache"
            raise HubError(f"cannot get {filename} of {repo_id}: {why}") from None
        except (EntryNotFoundError, RevisionNotFoundError):
            raise HubError(f"{repo_id} is not an agent of this project (no {filename})",
                           exit_code=2) from None
        except HfHubHTTPError as exc:
            raise HubError(f"cannot get {filename} of {repo_id}: the Hub answered "
                           f"{str(exc).splitlines()[0][:200]}") from None
        except connection_errors() as exc:
            raise HubError(f"cannot reach the Hub for {repo_id} "
                           f"({str(exc).splitlines()[0][:200] or type(exc).__name__})"
                           ) from None

    with _quiet_hub_logs():  # its retries say so in warnings; the error says it once
        files = {name: fetch(name) for name in PUSHED_FILES[:2]}
        folder = files["config.json"].parent
        if files["hyperparameters.json"].parent != folder:
            raise HubError(f"{repo_id}: its files came from two revisions; try again")
        checked = pushed_folder(folder, repo_id, device)  # before the weights are downloaded
        fetch(PUSHED_FILES[2])
    return checked


@contextmanager
def _quiet_hub_logs() -> Iterator[None]:
    from huggingface_hub.utils import logging

    level = logging.get_verbosity()
    logging.set_verbosity_error()
    try:
        yield
    finally:
        logging.set_verbosity(level)
