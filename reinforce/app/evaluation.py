"""Evaluation of a run folder: what ``reinforce evaluate`` (and ``push``) compute."""

from __future__ import annotations

from reinforce.app import backends
from reinforce.app.runs import RunFolder
from reinforce.evaluation import EvalResult, summarize


def evaluate_run(folder: RunFolder, backend: str, n_episodes: int, seed: int,
                 device: str = "auto") -> EvalResult:
    """``n_episodes`` episodes of the run's best policy (stochastic, as trained), played by
    ``backend`` on ``device`` from ``seed``."""
    backend_ = backends.for_env(backend, folder.cfg.env_id)
    returns = backend_.evaluate(folder.cfg, folder.load_weights(), n_episodes, seed, device)
    return summarize(returns)
