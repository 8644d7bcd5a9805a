"""Sharing a run on the Hugging Face Hub: the repository folder, and its upload.

``push`` evaluates a run's best policy (with ``reinforce evaluate``'s code path, so the card's
numbers are the ones ``reinforce evaluate RUN_DIR --episodes N --seed S`` prints), builds the
repository folder and uploads it:

    README.md             model card; its metadata (tags, model-index) written by huggingface_hub
    config.json           policy architecture (+ env id, training backend)
    model.safetensors     the weights, torch layout: ``Policy.from_pretrained`` loads the folder
    hyperparameters.json  the training configuration of the exported run
    results.json          env_id, mean_reward, std_reward, n_evaluation_episodes, eval_datetime
    replay.mp4            one episode of the policy (see ``reinforce.app.video``)
    learning_curve.png    the run's learning curve, and
    logs/                 its TensorBoard logs (the Hub's "Training metrics"), when the run has them

The folder is ``RUN_DIR/hub/`` for an upload and the given folder for a dry run
(``local_dir``), which needs neither token nor network. It is kept whatever happens, so a
failed upload can be retried (``hf upload USER/NAME RUN_DIR/hub``). A folder holding files
other than these is refused rather than overwritten.

A run trained with JAX is converted to the torch policy (``reinforce_jax.policy.to_export``)
before it is exported: the torch policy is the export format.

The token comes from huggingface_hub (``HF_TOKEN`` or a cached ``hf auth login``), never from
the command line; it is handed to ``HfApi`` and nowhere else, and scrubbed from any error.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from reinforce.app.backends import BACKENDS
from reinforce.app.backends import get as get_backend
from reinforce.app.evaluation import evaluate_run
from reinforce.app.lock import run_folder_lock
from reinforce.app.runs import LOGS_DIR, RunFolder
from reinforce.app.video import DEFAULT_FPS, VideoError, default_max_frames, record_policy
from reinforce.checkpoint import CheckpointError, disk_full, make_writable_dir, read_json
from reinforce.config import CERTIFICATION
from reinforce.envs import draws, source
from reinforce.envs.foreign import name_of
from reinforce.evaluation import EvalResult, certification_line

DEFAULT_EPISODES = 100
DEFAULT_SEED = 12345  # the same default as ``reinforce evaluate``
HUB_DIR = "hub"
HUB_FILES = ("README.md", "config.json", "model.safetensors", "hyperparameters.json",
             "results.json", "replay.mp4")
#: What a run folder adds to the repository folder when it has them: the learning curve and the
#: TensorBoard logs.
HUB_EXTRAS = ("learning_curve.png", LOGS_DIR)
TAGS = ("reinforce", "reinforcement-learning", "custom-implementation", "deep-rl-class")
#: Shown in a dry run's card when no ``--repo-id`` was given.
PLACEHOLDER_REPO_ID = "USER/NAME"


class HubError(Exception):
    """A push that cannot go on; one line. ``exit_code`` 2: bad input (repo id, no token, the
    output folder); 1: the Hub or the network failed (the built folder is kept)."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


# --- the run ---------------------------------------------------------------------------------


def check_repo_id(repo_id: str) -> str:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    expected = ("expected USER/NAME: letters, digits, '-', '_' and '.', no '--' or '..', "
                "at most 96 characters")
    if repo_id.count("/") != 1:
        raise HubError(f"malformed repo id {repo_id!r}; {expected}", exit_code=2)
    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        raise HubError(f"malformed repo id {repo_id!r}; {expected}", exit_code=2) from None
    return repo_id


def find_token() -> str | None:
    """The Hugging Face token (``HF_TOKEN`` or a cached login), or None."""
    from huggingface_hub import get_token

    return get_token() or None


def no_token_error(out: Path, repo_id: str) -> HubError:
    return HubError(f"no Hugging Face token: log in with `hf auth login` or set HF_TOKEN to a "
                    f"token with write access and run again; the folder is built and kept at "
                    f"{out} (upload it with `hf upload {repo_id} {out}`; for a dry run use "
                    f"--local-dir DIR)", exit_code=2)


def check_out_dir(path: Path) -> Path:
    """``path`` may be missing, empty or a folder built before (only our files in it)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise HubError(f"{path} exists and is not a folder", exit_code=2)
    if path.is_dir():
        foreign = sorted(p.name for p in path.iterdir()
                         if p.name not in HUB_FILES + HUB_EXTRAS
                         and not p.name.startswith("."))
        if foreign:
            raise HubError(f"{path} holds files that are not part of a Hub folder "
                           f"({', '.join(foreign[:3])}); choose an empty or new folder",
                           exit_code=2)
    try:
        make_writable_dir(path)
    except OSError as exc:
        raise HubError(f"cannot write to {path}: {exc.strerror}", exit_code=2) from None
    return path


# --- the folder ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Evaluation:
    result: EvalResult
    backend: str
    seed: int
    eval_datetime: str


def hyperparameters(folder: RunFolder) -> dict:
    """The training configuration of the exported (best) run, with its own seed and
    settings."""
    best = min(folder.best_run() if len(folder.runs) > 1 else 0, len(folder.runs) - 1)
    return {
        **folder.run_config(best).to_dict(),
        "seed": folder.runs[best].seed,
        "trained_with": folder.backend,
        **folder.arch.to_dict(),
    }


def results(env_id: str, evaluation: Evaluation) -> dict:
    r = evaluation.result
    return {
        "env_id": env_id,
        "mean_reward": r.mean_reward,
        "std_reward": r.std_reward,
        "score": r.score,
        "n_evaluation_episodes": r.n_episodes,
        "eval_datetime": evaluation.eval_datetime,
        "eval_seed": evaluation.seed,
        "eval_backend": evaluation.backend,
    }


def metric_value(result: EvalResult) -> str:
    """The model-index value the leaderboard reads: ``"{mean:.2f} +/- {std:.2f}"``."""
    return f"{result.mean_reward:.2f} +/- {result.std_reward:.2f}"


def gym_make_args(cfg) -> str:
    """The arguments of ``gymnasium.make`` that give what a policy of ``cfg`` sees."""
    args = [f'"{name_of(cfg.env_id)}"']
    if cfg.obs != "features":
        args += [f'obs="{cfg.obs}"', f"frame_stack={cfg.frame_stack}"]
    return ", ".join(args)


def play_code(cfg, repo_id: str) -> str:
    """The card's Python that plays one episode of the policy: through gymnasium, or, for a
    gymnax env (no gymnasium view), through our functional env."""
    head = ("from reinforce_torch.policy import Policy\n\n"
            f"policy = Policy.from_pretrained(\"{repo_id}\")\n")
    if source(cfg.env_id) == "gymnax":
        return ("import jax\nimport numpy as np\nfrom reinforce.envs import make\n" + head + f"""\
env, params = make("{cfg.env_id}")  # gymnax's env behind reinforce's functional API
key, reset_key = jax.random.split(jax.random.key(0))
obs, state = env.reset(reset_key, params)
episode_return, done = 0.0, False
while not done:
    key, step_key = jax.random.split(key)
    action = policy.act(np.asarray(obs))
    obs, state, reward, terminated, truncated, _ = env.step(step_key, state, action, params)
    episode_return += float(reward)
    done = bool(terminated or truncated)
print("return:", episode_return)""")
    if source(cfg.env_id) == "gymnasium":
        make_env = (f"env = FlattenObservation(gymnasium.make({gym_make_args(cfg)}))  "
                    f"# observations as a vector")
        imports = "import gymnasium\nfrom gymnasium.wrappers import FlattenObservation\n"
    else:
        make_env = f"env = gymnasium.make({gym_make_args(cfg)})"
        imports = ("import gymnasium\nimport reinforce  # registers Pixelcopter-PLE-v0 with "
                   "gymnasium\n")
    return imports + head + make_env + """
obs, info = env.reset(seed=0)
episode_return, done = 0.0, False
while not done:
    obs, reward, terminated, truncated, info = env.step(policy.act(obs))
    episode_return += reward
    done = terminated or truncated
print("return:", episode_return)"""


def model_card(folder: RunFolder, evaluation: Evaluation, repo_id: str, hparams: dict):
    """A ``huggingface_hub.ModelCard``: metadata from ``ModelCardData``, body in markdown."""
    from huggingface_hub import EvalResult as HubEvalResult
    from huggingface_hub import ModelCard, ModelCardData

    env_id, r = folder.cfg.env_id, evaluation.result
    data = ModelCardData(
        library_name="reinforce",
        model_name=f"Reinforce-{env_id}",
        tags=[env_id, *TAGS],
        eval_results=[HubEvalResult(
            task_type="reinforcement-learning", task_name="reinforcement-learning",
            dataset_type=env_id, dataset_name=env_id,
            metric_type="mean_reward", metric_name="mean_reward",
            metric_value=metric_value(r),
        )],
    )
    body = card_body(folder, evaluation, repo_id, hparams)
    return ModelCard(f"---\n{data.to_yaml()}\n---\n{body}")


def card_body(folder: RunFolder, evaluation: Evaluation, repo_id: str, hparams: dict) -> str:
    env_id, r = folder.cfg.env_id, evaluation.result
    if folder.cfg.obs == "pixels":
        make_args = gym_make_args(folder.cfg)
        sees = (f"It sees what a player sees: the last {folder.cfg.frame_stack} frame(s) of the "
                f"screen, {folder.arch.observation_shape[0]} x "
                f"{folder.arch.observation_shape[1]} pixels in gray (`gymnasium.make({make_args})` "
                "gives them), through a small CNN")
    elif folder.arch.convs:
        sees = (f"It sees the env's own {'x'.join(map(str, folder.arch.observation_shape))} "
                "image, through a small CNN")
    else:
        sees = (f"It sees the env's {folder.arch.observation_size}-value observation vector, "
                "through an MLP")
    threshold = CERTIFICATION.get(env_id)
    verdict = ""
    if threshold is not None:
        reached = "reached" if r.score >= threshold else "not reached"
        verdict = (f" The course's certification asks for a score of at least {threshold:g}: "
                   f"{reached}.")
    rows = "\n".join(f"| `{k}` | `{json.dumps(v)}` |" for k, v in hparams.items())
    replay = ("`replay.mp4` shows one episode;" if draws(env_id) else
              "there is no `replay.mp4`: gymnax envs draw no frames here;")
    baseline = ("a learned value baseline, trained beside it and not shared"
                if folder.cfg.baseline == "value" else "no value function")
    return f"""
# REINFORCE on {env_id}

A policy-gradient agent (REINFORCE: Monte Carlo returns, {baseline}) that plays
**{env_id}**. It was trained from scratch with the `reinforce` package (the
{folder.backend} backend) and is shared as a PyTorch policy ({folder.arch.describe()}) that
turns an observation into action probabilities, from which actions are sampled. {sees}.

## Score

Evaluated on {r.n_episodes} episodes with sampled actions (seed {evaluation.seed},
{evaluation.backend} evaluation): mean reward **{r.mean_reward:.2f}**, standard deviation
{r.std_reward:.2f}, score (mean - std) **{r.score:.2f}**.{verdict}

## Play an episode

With the `reinforce` package installed:

```python
{play_code(folder.cfg, repo_id)}
```

`Policy.from_pretrained` reads `config.json` and `model.safetensors` (no pickle); {replay}
`results.json` holds the evaluation and `hyperparameters.json` the training
settings. `reinforce evaluate {repo_id}` and `reinforce record {repo_id}` evaluate it and
film it from the command line.

{training_section(folder, repo_id)}
## Training hyper-parameters

| name | value |
| --- | --- |
{rows}
"""


def training_section(folder: RunFolder, repo_id: str) -> str:
    """The card's account of the training: the command, its machine and wall time, how to
    train it again, the learning curve and the logs (what the run folder has of them)."""
    lines = ["## Training", ""]
    try:
        evaluation = read_json(folder.path / "eval.json")
    except CheckpointError:
        evaluation = {}
    wall, machine = evaluation.get("wall_seconds"), evaluation.get("machine")
    runs = f"its {len(folder.runs)} runs" if len(folder.runs) > 1 else "it"
    if isinstance(wall, int | float):
        where = f" ({machine})" if machine else ""
        lines += [f"Training {runs} took {wall:.0f} s, compiling included{where}.", ""]
    if folder.command:
        lines += ["The command that trained it:", "", "```bash", folder.command, "```", ""]
    name = repo_id.split("/")[-1]
    lines += [
        "To train it again (the settings and seed of `hyperparameters.json`, with the backend "
        "that trained it; other options override them):", "", "```bash",
        f"hf download {repo_id} hyperparameters.json --local-dir {name}",
        f"reinforce train --config {name}/hyperparameters.json", "```", ""]
    if (folder.path / "learning_curve.png").is_file():
        lines += ["![Learning curve](learning_curve.png)", ""]
    if (folder.path / LOGS_DIR).is_dir():
        lines += [f"TensorBoard logs of every update (return, episode length, losses, learning "
                  f"rate, env steps per second) are in `{LOGS_DIR}/`: the Hub shows them under "
                  f"\"Training metrics\"; locally, `tensorboard --logdir {LOGS_DIR}`.", ""]
    return "\n".join(lines)


def copy_extras(folder: RunFolder, out: Path) -> None:
    """The run's learning curve and TensorBoard logs into the repository folder (replacing
    those of an earlier build), when the run has them."""
    curve = folder.path / "learning_curve.png"
    if curve.is_file():
        shutil.copyfile(curve, out / curve.name)
    logs = folder.path / LOGS_DIR
    if logs.is_dir():
        shutil.rmtree(out / LOGS_DIR, ignore_errors=True)
        shutil.copytree(logs, out / LOGS_DIR)


def build_folder(folder: RunFolder, out: Path, evaluation: Evaluation, repo_id: str, *,
                 fps: int, max_frames: int | None, device: str = "cpu") -> list[Path]:
    """Write every file of the repository folder into ``out`` (the replay computed on torch's
    ``device``); the paths written."""
    from reinforce_torch.devices import torch_device

    env_id = folder.cfg.env_id
    policy = folder.policy().to(torch_device(device))
    policy.save_pretrained(out, config={**policy.architecture(), "env_id": env_id,
                                        "trained_with": folder.backend})
    hparams = hyperparameters(folder)
    (out / "hyperparameters.json").write_text(json.dumps(hparams, indent=2))
    (out / "results.json").write_text(json.dumps(results(env_id, evaluation), indent=2))
    model_card(folder, evaluation, repo_id, hparams).save(out / "README.md")
    copy_extras(folder, out)
    if draws(env_id):
        record_policy(policy, env_id, out / "replay.mp4", fps=fps, seed=evaluation.seed,
                      obs=folder.cfg.obs, frame_stack=folder.cfg.frame_stack,
                      max_frames=max_frames if max_frames is not None
                      else default_max_frames(folder))
    return [out / name for name in (*HUB_FILES, *HUB_EXTRAS) if (out / name).exists()]


# --- the upload ------------------------------------------------------------------------------


def connection_errors() -> tuple[type[BaseException], ...]:
    """Transport errors of whichever HTTP library this huggingface_hub uses (already loaded)."""
    import sys

    errors: list[type[BaseException]] = [OSError, ConnectionError, TimeoutError]
    for module, name in (("httpx2", "TransportError"), ("httpx", "TransportError"),
                         ("requests", "RequestException")):
        error = getattr(sys.modules.get(module), name, None)
        if isinstance(error, type) and issubclass(error, BaseException):
            errors.append(error)
    return tuple(errors)


def _one_line(text: str, token: str | None) -> str:
    if token:
        text = text.replace(token, "***")
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[0] if lines else ""


def upload(out: Path, repo_id: str, token: str, *, private: bool = False,
           commit_message: str = "Upload REINFORCE agent") -> str:
    """Create the repo (if needed) and upload the folder's files; the commit URL."""
    from huggingface_hub import HfApi, constants
    from huggingface_hub.utils import HfHubHTTPError

    api = HfApi(token=token)
    kept = (f"the upload did not complete; the folder is kept at {out} (retry, or: "
            f"hf upload {repo_id} {out})")
    try:
        api.create_repo(repo_id, repo_type="model", exist_ok=True,
                        **({"private": True} if private else {}))
        info = api.upload_folder(repo_id=repo_id, repo_type="model", folder_path=str(out),
                                 allow_patterns=[*HUB_FILES, "learning_curve.png",
                                                 f"{LOGS_DIR}/**"],
                                 commit_message=commit_message)
    except HfHubHTTPError as exc:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if status == 401:
            why = ("the Hub rejected the token (401 Unauthorized); log in again with "
                   "`hf auth login` or set HF_TOKEN")
        elif status == 403:
            why = f"the token may not write to {repo_id} (403 Forbidden); use a write token"
        else:
            why = f"the Hub answered {status or 'an error'}: {_one_line(str(exc), token)}"
        raise HubError(f"upload to {repo_id} failed: {why}; {kept}") from None
    except connection_errors() as exc:
        why = _one_line(str(exc), token) or type(exc).__name__
        raise HubError(f"could not reach the Hub at {constants.ENDPOINT} ({why}); {kept}"
                       ) from None
    return str(getattr(info, "commit_url", None) or info)


# --- the whole push --------------------------------------------------------------------------


def push(run_dir: str | Path, *, repo_id: str | None = None, local_dir: str | Path | None = None,
         n_episodes: int = DEFAULT_EPISODES, seed: int = DEFAULT_SEED, backend: str | None = None,
         fps: int = DEFAULT_FPS, max_frames: int | None = None, private: bool = False,
         echo=print, device: str = "auto") -> Path:
    """Evaluate, build the folder and upload it (``local_dir``: build it there, no upload).

    Everything that can be checked offline (repo id, run folder, output folder) is checked
    before the evaluation. Without a token the folder is still built (nothing trained or
    evaluated is lost) and the error names it. Returns the folder.
    """
    if backend is not None:  # first, as the command line checks its options
        get_backend(backend).check_device(device)
    dry_run = local_dir is not None
    if repo_id is None and not dry_run:
        raise HubError("push needs --repo-id USER/NAME (or --local-dir DIR for a dry run)",
                       exit_code=2)
    if repo_id is not None:
        check_repo_id(repo_id)
    token = None if dry_run else find_token()
    folder = RunFolder.load_finished(run_dir)
    with run_folder_lock(folder.path, f"reinforce push {folder.path}"):  # one writer
        backend = backend or folder.backend
        if backend not in BACKENDS:
            raise HubError(f"unknown backend {backend!r}; choose jax or torch", exit_code=2)
        folder.load_weights()  # a corrupt weights file fails here, before anything is written
        out = check_out_dir(Path(local_dir) if dry_run else folder.path / HUB_DIR)

        result = evaluate_run(folder, backend, n_episodes, seed, device)
        echo(f"{folder.cfg.env_id} ({backend}, {folder.path}): "
             f"{certification_line(folder.cfg.env_id, result)}")
        evaluation = Evaluation(result, backend, seed,
                                datetime.now(UTC).isoformat(timespec="seconds"))
        try:
            build_folder(folder, out, evaluation, repo_id or PLACEHOLDER_REPO_ID, fps=fps,
                         max_frames=max_frames, device=device)
        except (OSError, VideoError) as exc:
            why = disk_full(exc, out) if isinstance(exc, OSError) else exc
            raise HubError(f"could not build the Hub folder ({why}); what was written is kept "
                           f"at {out}") from None
        if dry_run:
            built = [name for name in (*HUB_FILES, *HUB_EXTRAS) if (out / name).exists()]
            echo(f"dry run: built {out} ({', '.join(built)}); nothing uploaded")
            return out
        if token is None:
            raise no_token_error(out, repo_id)
        echo(f"built {out}; uploading to {repo_id}")
        url = upload(out, repo_id, token, private=private)
        echo(f"uploaded to {repo_id}: {url}")
        return out
