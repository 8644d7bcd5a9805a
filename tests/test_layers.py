"""Dependencies point one way: core (config, envs, returns, the backend contract) <- backends
(``reinforce_jax``, ``reinforce_torch``, independent of each other) <- application
(``reinforce.app``) <- ``benchmarks``; and no import cycles. The rule is the import-linter
contracts in ``pyproject.toml``; these tests run them on the code, and on copies of it with a
wrong import planted, which must fail."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("reinforce", "reinforce_jax", "reinforce_torch", "benchmarks")


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """import-linter on the packages under ``root`` with ``root``'s pyproject.toml."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports; "
                               "sys.exit(lint_imports(no_cache=True))"],
        cwd=root, env=env, capture_output=True, text=True, timeout=120)


def test_the_code_keeps_every_contract():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "2 kept, 0 broken" in result.stdout


@pytest.fixture
def copy(tmp_path) -> Path:
    """The packages and pyproject.toml, copied (sources only)."""
    for name in PACKAGES:
        shutil.copytree(ROOT / name, tmp_path / name,
                        ignore=shutil.ignore_patterns("__pycache__", "results"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    return tmp_path


PLANTED = {
    # a core module importing a backend
    "core imports a backend": ("reinforce/returns.py", "import reinforce_jax.algorithm\n",
                               "application -> backends -> core, never the other way BROKEN"),
    # a backend importing the application
    "backend imports the app": ("reinforce_torch/run.py", "import reinforce.app.session\n",
                                "application -> backends -> core, never the other way BROKEN"),
    # one backend importing the other
    "backends depend": ("reinforce_jax/policy.py", "import reinforce_torch.policy\n",
                        "application -> backends -> core, never the other way BROKEN"),
    # a cycle inside the application
    "a cycle": ("reinforce/app/video.py", "import reinforce.app.hub\n", "no import cycles BROKEN"),
}


@pytest.mark.parametrize("planted", PLANTED, ids=list(PLANTED))
def test_a_planted_wrong_import_breaks_a_contract(copy, planted):
    path, line, broken = PLANTED[planted]
    target = copy / path
    target.write_text(target.read_text() + "\n" + line)
    result = lint_imports(copy)
    assert result.returncode != 0, result.stdout[-2000:]
    assert broken in result.stdout, result.stdout[-3000:]
