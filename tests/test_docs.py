"""The README and docs/ hold together: every relative link names a file that is there, and every
anchor a heading of that file (GitHub's anchors)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _prose(text: str) -> str:
    """``text`` without its fenced code blocks (their lines are code, not links or headings)."""
    return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)


def anchors(page: Path) -> set[str]:
    """GitHub's anchors of ``page``'s headings: lower case, punctuation dropped, spaces as -."""
    out = set()
    for line in _prose(page.read_text()).splitlines():
        match = re.match(r"#{1,6} (.*)", line)
        if match:
            title = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower())
            out.add(title.replace(" ", "-"))
    return out


def links(page: Path) -> list[str]:
    return [t for t in LINK.findall(_prose(page.read_text())) if not re.match(r"[a-z]+:", t)]


def test_the_readme_is_short_and_the_docs_have_an_index():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 200
    index = (ROOT / "docs" / "README.md").read_text()
    for page in PAGES[1:]:
        if page.name != "README.md":
            assert f"({page.name})" in index, f"docs/README.md does not link {page.name}"


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_every_relative_link_and_anchor_resolves(page):
    broken = []
    for target in links(page):
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{target}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(f"{target}: no heading with that anchor")
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)


def test_the_anchor_rule_is_githubs():
    page = ROOT / "docs" / "benchmarks.md"
    assert "speed-and-scores-python--m-benchmarkscompare" in anchors(page)


def python_blocks() -> list[tuple[str, str]]:
    """Every fenced Python block of the README and docs/, with a name for it."""
    blocks = []
    for page in PAGES:
        found = re.findall(r"^```python\n(.*?)^```", page.read_text(), flags=re.S | re.M)
        blocks += [(f"{page.relative_to(ROOT)}:{i}", code) for i, code in enumerate(found)]
    return blocks


BLOCKS = python_blocks()


@pytest.mark.parametrize("code", [c for _, c in BLOCKS], ids=[n for n, _ in BLOCKS])
def test_every_python_block_runs(code, tmp_path):
    """As written, except that a Hub repo id names a local run folder (no network in tests)."""
    import subprocess
    import sys

    from run_folders import write_run

    if "USER/NAME" in code:
        write_run(tmp_path / "agent", "Pixelcopter-PLE-v0", "torch", seed=1)
        code = code.replace('"USER/NAME"', repr(str(tmp_path / "agent")))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_the_blocks_are_found():
    assert len(BLOCKS) >= 4
