"""The policy as a ``torch.nn.Module``: an MLP from observation to action logits.

``save_pretrained(dir)`` writes ``model.safetensors`` and ``config.json``;
``Policy.from_pretrained(dir_or_repo_id)`` reads them back (from the Hub when given a repo id).
Nothing is ever unpickled.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"


class Policy(nn.Module):
    """obs -> hidden_sizes[0] -> ... -> num_actions logits, ReLU in between."""

    def __init__(self, observation_size: int, num_actions: int, hidden_sizes: Sequence[int]):
        super().__init__()
        self.observation_size = int(observation_size)
        self.num_actions = int(num_actions)
        self.hidden_sizes = tuple(int(h) for h in hidden_sizes)
        widths = (self.observation_size, *self.hidden_sizes, self.num_actions)
        pairs = zip(widths[:-1], widths[1:], strict=True)
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in pairs)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = obs
        for layer in self.layers[:-1]:
            x = torch.relu(layer(x))
        return self.layers[-1](x)

    def probabilities(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.forward(obs), dim=-1)

    def log_probs(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        logp = torch.log_softmax(self.forward(obs), dim=-1)
        return logp.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)

    @property
    def device(self) -> torch.device:
        """Where the network's weights are."""
        return self.layers[0].weight.device

    @torch.no_grad()
    def host_probabilities(self, obs) -> torch.Tensor:
        """Action probabilities on the CPU for observations on the host (numpy or a CPU
        tensor), computed on the policy's device."""
        if not isinstance(obs, torch.Tensor):
            obs = torch.tensor(obs, dtype=torch.float32)  # a copy: numpy views may be read-only
        return self.probabilities(obs.to(self.device, torch.float32)).cpu()

    def numpy_probabilities(self, obs: np.ndarray) -> np.ndarray:
        """Action probabilities ``[n, A]`` for observations ``[n, S]``, numpy in and out."""
        return self.host_probabilities(obs).numpy()

    def act(self, obs, generator: torch.Generator | None = None) -> int:
        """Sample one action for one observation (a numpy array or a tensor); ``generator``
        is a CPU generator (actions are drawn on the host)."""
        probs = self.host_probabilities(obs)
        return int(torch.multinomial(probs, 1, generator=generator).item())

    # --- persistence ---------------------------------------------------------------------

    def architecture(self) -> dict:
        return {
            "observation_size": self.observation_size,
            "num_actions": self.num_actions,
            "hidden_sizes": list(self.hidden_sizes),
        }

    def save_pretrained(self, directory: str | Path, extra_config: dict | None = None) -> Path:
        from reinforce.checkpoint import atomic_write_text, save_weights

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_weights(directory / WEIGHTS_NAME,
                     {k: v.detach().cpu().numpy() for k, v in self.state_dict().items()})
        config = {**self.architecture(), **(extra_config or {})}
        atomic_write_text(directory / CONFIG_NAME, json.dumps(config, indent=2))
        return directory

    @classmethod
    def from_pretrained(cls, dir_or_repo_id: str | Path, **hub_kwargs) -> Policy:
        """Load from a local folder, or download ``config.json`` + weights from a Hub repo."""
        from reinforce.checkpoint import load_policy_folder

        path = Path(dir_or_repo_id)
        if not path.is_dir():
            from huggingface_hub import snapshot_download

            path = Path(snapshot_download(
                str(dir_or_repo_id), allow_patterns=[CONFIG_NAME, WEIGHTS_NAME], **hub_kwargs
            ))
        return load_policy_folder(path)
