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


# --- the `reinforce` commands of the README and docs/ -------------------------------------------

#: Settings appended to every documented `reinforce train`, so that it trains in seconds.
TINY = {"CartPole-v1": ["--episodes", "64", "--eval-episodes", "5"],
        "Pixelcopter-PLE-v0": ["--episodes", "16", "--batch-episodes", "8", "--segment-steps",
                               "256", "--lr-warmup", "0", "--eval-episodes", "5"]}
#: ... for a gymnax or gymnasium env.
TINY_OTHER = ["--episodes", "32", "--max-t", "50", "--eval-episodes", "5"]
#: ... and to the commands that evaluate.
FEWER_EPISODES = {"evaluate": ["--episodes", "5"], "push": ["--episodes", "5"]}
#: Documented commands that a test here cannot run, and why.
NOT_RUN = {"--coordinator host0:1234": "needs two hosts (tests/reinforce_jax/"
                                       "test_multiprocess_cli.py runs two processes on one)",
           "gymnasium:LunarLander-v3": "needs Box2D, which the dev extra does not install",
           "gymnax:Breakout-MinAtar": "its CNN's compile costs 10 s here; tests/"
                                      "test_foreign_envs.py trains it on both backends"}


def _is_synopsis(line: str) -> bool:
    return any(mark in line for mark in ("[", "|", "..."))


def commands() -> list[tuple[str, list[tuple[str, list[str]]]]]:
    """Per page, its `reinforce` commands in order, each with the output the page shows for it:
    in a transcript (a block whose commands start with ``$ ``), the lines after the command; a
    bare command in a block shows none. Synopses (options in brackets, alternatives, "...")
    are not commands."""
    pages = []
    for page in PAGES:
        found: list[tuple[str, list[str]]] = []
        for block in re.findall(r"^```\w*\n(.*?)^```", page.read_text(), flags=re.S | re.M):
            lines = block.replace("\\\n", " ").splitlines()
            transcript = any(line.startswith("$ ") for line in lines)
            current: list[str] | None = None
            for line in lines:
                command = (line[2:] if transcript else line).split("  #")[0].strip()
                if transcript and not line.startswith("$ "):
                    if current is not None and line.strip():
                        current.append(line)
                    continue
                current = None
                if command.startswith("reinforce ") and not _is_synopsis(command):
                    current = []
                    found.append((command, current))
        if found:
            pages.append((str(page.relative_to(ROOT)), found))
    return pages


COMMANDS = commands()

#: A number in a documented output line (escaped), and what the output may have in its place.
_NUMBER = re.compile(r"(?<![\w/])(?:\\-)?\d+(?:\\\.\d+)?")
_ANY_NUMBER = r"-?[\d.]+(?:e[-+]?\d+)?"


def _pattern(line: str) -> re.Pattern:
    """A documented output line as a pattern: any numbers, any run folder for ``runs/...``, one
    device or several, reached or not, best or not."""
    text = _NUMBER.sub(lambda m: _ANY_NUMBER, re.escape(line))
    for shown, allowed in ((re.escape("runs/..."), r"\S+"), ("device", "devices?"),
                           ("reached", "(?:not )?reached"),
                           (re.escape("  <- best"), "(?:  <- best)?")):
        text = text.replace(shown, allowed)
    return re.compile(text + "$")


def _tiny(command: str) -> list[str]:
    import shlex

    argv = shlex.split(command)[1:]
    if argv[0] == "train":
        env = argv[argv.index("--env") + 1] if "--env" in argv else "CartPole-v1"
        argv += TINY.get(env, TINY_OTHER) + ["--quiet"]
    return argv + FEWER_EPISODES.get(argv[0], [])


@pytest.mark.parametrize("page,found", COMMANDS, ids=[p for p, _ in COMMANDS])
def test_every_reinforce_command_runs_and_prints_what_the_page_shows(page, found, tmp_path):
    """Each page's commands run in order in one folder (a README's `evaluate` reads the run its
    `train` wrote), with tiny budgets; each prints lines of the shape the page shows."""
    import subprocess
    import sys

    for command, shown in found:
        if any(key in command for key in NOT_RUN):
            continue
        proc = subprocess.run([sys.executable, "-m", "reinforce", *_tiny(command)],
                              capture_output=True, text=True, timeout=600, cwd=tmp_path)
        printed = (proc.stderr + proc.stdout).splitlines()
        fails = "reinforce: error:" in "\n".join(shown)
        assert (proc.returncode != 0) == fails, f"{page}: {command}: {proc.stderr[-2000:]}"
        for line in shown:
            pattern = _pattern(line)
            assert any(pattern.search(out) for out in printed), \
                f"{page}: {command}: no line like {line!r} in:\n" + "\n".join(printed)


def test_the_commands_are_found_and_ci_runs_the_readmes_test_command():
    readme = dict(COMMANDS)["README.md"]
    assert [c.split()[1] for c, _ in readme] == ["train", "evaluate", "record", "push", "train"]
    assert all(shown for _, shown in readme)
    test_command = re.search(r"^```bash\n(.*pytest.*)\n```", (ROOT / "README.md").read_text(),
                             flags=re.M).group(1)
    assert test_command in (ROOT / ".ci" / "run").read_text()
