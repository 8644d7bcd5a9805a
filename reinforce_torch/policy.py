"""The policy as a ``torch.nn.Module``: an MLP from observation to action logits, after a small
CNN when the observations are frames (``reinforce.architecture``).

Its weights are the export format (``Architecture.expected_shapes``): every run
folder and Hub repository stores them, whichever backend trained them. Persistence is
huggingface_hub's ``PyTorchModelHubMixin``: ``save_pretrained(dir)`` writes ``config.json`` and
``model.safetensors``, ``Policy.from_pretrained(dir_or_repo_id)`` reads them back from a folder
or the Hub. Loading reads safetensors only (never a pickle, which the mixin would fall back to)
and checks the weights against the architecture in ``config.json``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from huggingface_hub import PyTorchModelHubMixin, hf_hub_download
from torch import nn

from reinforce.architecture import Architecture
from reinforce.checkpoint import CheckpointError, load_weights, read_json, save_weights

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
#: The architecture's keys that ``config.json`` must hold.
ARCHITECTURE = ("observation_size", "num_actions", "hidden_sizes")


class Policy(nn.Module, PyTorchModelHubMixin, library_name="reinforce",
             tags=["reinforce", "reinforcement-learning"]):
    """obs -> [conv layers ->] hidden_sizes[0] -> ... -> num_actions logits, ReLU in between.

    Frames (``convs`` given) are ``uint8 [..., H, W, C]``, scaled by 1/255; the conv output
    is flattened in height, width, channel order, as the JAX policy does. The arguments are
    those of ``reinforce.architecture.Architecture`` (and what ``config.json`` holds)."""

    def __init__(self, observation_size: int, num_actions: int, hidden_sizes: Sequence[int],
                 observation_shape: Sequence[int] | None = None,
                 convs: Sequence[Sequence[int]] = (), input_offset: Sequence[float] = (),
                 input_scale: Sequence[float] = ()):
        super().__init__()
        self.arch = Architecture(tuple(observation_shape or (observation_size,)),
                                 num_actions, tuple(hidden_sizes), tuple(convs),
                                 tuple(input_offset), tuple(input_scale))
        if self.arch.observation_size != int(observation_size):
            raise ValueError(f"observation_size {observation_size} and observation_shape "
                             f"{observation_shape} disagree")
        self.observation_size = self.arch.observation_size
        self.num_actions = self.arch.num_actions
        self.hidden_sizes = self.arch.hidden_sizes
        channels = self.arch.observation_shape[-1]
        self.convs = nn.ModuleList()
        for out, kernel, stride in self.arch.convs:
            self.convs.append(nn.Conv2d(channels, out, kernel, stride))
            channels = out
        widths = (self.arch.flat_size, *self.hidden_sizes, self.num_actions)
        pairs = zip(widths[:-1], widths[1:], strict=True)
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in pairs)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = obs
        if self.arch.input_scale:  # constants, not weights: config.json holds them
            offset, scale = (torch.tensor(v, dtype=torch.float32, device=x.device)
                             for v in (self.arch.input_offset, self.arch.input_scale))
            x = (x - offset) / scale
        if len(self.convs):
            lead = obs.shape[:-3]
            x = obs.reshape(-1, *obs.shape[-3:]).float().div(255.0).permute(0, 3, 1, 2)
            for conv in self.convs:
                x = torch.relu(conv(x))
            x = x.permute(0, 2, 3, 1).reshape(*lead, -1)
        for layer in self.layers[:-1]:
            x = torch.relu(layer(x))
        return self.layers[-1](x)

    def probabilities(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.forward(obs), dim=-1)

    def log_probs(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return self.log_probs_and_entropy(obs, actions)[0]

    def log_probs_and_entropy(self, obs: torch.Tensor, actions: torch.Tensor
                              ) -> tuple[torch.Tensor, torch.Tensor]:
        """log pi(a|s) and the entropy of pi(.|s), from one forward pass."""
        logp = torch.log_softmax(self.forward(obs), dim=-1)
        entropy = -(logp.exp() * logp).sum(dim=-1)
        return logp.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1), entropy

    def values(self, obs: torch.Tensor) -> torch.Tensor:
        """V(s) ``[...]``, for a network of one output (the value baseline's)."""
        return self.forward(obs).squeeze(-1)

    @property
    def device(self) -> torch.device:
        """Where the network's weights are."""
        return self.layers[0].weight.device

    @torch.no_grad()
    def host_probabilities(self, obs) -> torch.Tensor:
        """Action probabilities on the CPU for observations on the host (numpy or a CPU
        tensor), computed on the policy's device."""
        if not isinstance(obs, torch.Tensor):
            obs = torch.tensor(np.asarray(obs))  # a copy: numpy views may be read-only
        if not len(self.convs):
            obs = obs.float()
        return self.probabilities(obs.to(self.device)).cpu()

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
        """The constructor's arguments, as ``config.json`` holds them."""
        return self.arch.to_dict()

    def export(self) -> dict[str, np.ndarray]:
        """The weights in the export format (numpy float32, on the host)."""
        return {k: v.detach().cpu().numpy().copy() for k, v in self.state_dict().items()}

    @classmethod
    def build(cls, arch: Architecture) -> Policy:
        """A fresh policy of ``arch``."""
        return cls(**arch.to_dict())

    @classmethod
    def from_weights(cls, weights: dict[str, np.ndarray], arch: Architecture,
                     source: Path | str = "weights") -> Policy:
        """A policy (in eval mode) holding ``weights`` (export format), checked against the
        architecture (``CheckpointError`` otherwise)."""
        arch.check(weights, source)
        policy = cls.build(arch)
        policy.load_state_dict({k: torch.from_numpy(np.array(v, np.float32))
                                for k, v in weights.items()})
        return policy.eval()

    def _save_pretrained(self, save_directory: Path) -> None:
        save_weights(Path(save_directory) / WEIGHTS_NAME, self.export())

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | Path, **kwargs) -> Policy:
        """Load from a local folder (a run folder, a Hub folder) or a Hub repo id."""
        path = Path(pretrained_model_name_or_path)
        if path.is_dir():
            read_json(path / CONFIG_NAME)  # a missing or corrupt config.json: one clear error
        return super().from_pretrained(pretrained_model_name_or_path, **kwargs)

    @classmethod
    def _from_pretrained(cls, *, model_id: str, revision, cache_dir, force_download,
                         local_files_only, token, **config) -> Policy:
        """The mixin's loading step: ``model.safetensors`` only, checked."""
        missing = [key for key in ARCHITECTURE if key not in config]
        if missing:
            raise CheckpointError(f"the config.json of {model_id} does not describe a policy "
                                  f"(no {', '.join(missing)})")
        arch = Architecture.from_dict(config, f"the config.json of {model_id}")
        if Path(model_id).is_dir():
            file = Path(model_id) / WEIGHTS_NAME
        else:
            file = Path(hf_hub_download(model_id, WEIGHTS_NAME, revision=revision,
                                        cache_dir=cache_dir, force_download=force_download,
                                        local_files_only=local_files_only, token=token))
        return cls.from_weights(load_weights(file), arch, source=file)
