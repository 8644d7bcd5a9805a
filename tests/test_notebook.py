"""The course's notebook (notebooks/unit4.ipynb) runs end to end in a fresh kernel, with the
tiny budgets of its QUICK parameter, and shows what it promises: the certification lines, the
learning curves, the replay videos and the Hub folders."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "unit4.ipynb"


def _outputs(cell) -> tuple[str, set[str]]:
    """A code cell's printed text and the kinds of rich output it displayed."""
    text, kinds = [], set()
    for out in cell.get("outputs", []):
        if out["output_type"] == "stream":
            text.append(out["text"])
        elif out["output_type"] in ("display_data", "execute_result"):
            kinds |= set(out["data"])
            text.append(out["data"].get("text/plain", ""))
    return "".join(text), kinds


def test_the_notebook_runs_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setenv("REINFORCE_NOTEBOOK_QUICK", "1")
    monkeypatch.setenv("HF_TOKEN", "")  # never logged in: the pushes are dry runs
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(sys.path))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [_outputs(c) for c in nb.cells if c.cell_type == "code"]
    text = "\n".join(t for t, _ in outputs)
    kinds = [k for _, k in outputs]
    assert text.count("(certification: score >= 350,") >= 1 + 1 + 2  # jax, torch, evaluations
    assert text.count("(certification: score >= 5,") >= 2 + 1  # two seeds, one evaluation
    assert sum("image/png" in k for k in kinds) == 3  # three learning curves
    assert sum("text/html" in k for k in kinds) == 2  # two replays, embedded
    assert "model.safetensors" in text  # the dry run's folder listing
    for folder in ("hub-cartpole", "hub-pixelcopter"):
        assert (tmp_path / folder / "README.md").is_file(), folder
    runs = sorted(p.name.split("-")[0] for p in (tmp_path / "runs").iterdir())
    assert runs == ["CartPole", "CartPole", "Pixelcopter"]
