"""What every ``python -m benchmarks.<name>`` command does with bad input and interruptions:
one line on stderr and an exit code (2 bad input, 1 a failed measurement, 130 Ctrl-C)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from reinforce.app.cli import UsageError
from reinforce.checkpoint import make_writable_dir


def run_command(prog: str, body: Callable[[], int],
                bad_input: tuple[type[Exception], ...] = (UsageError,),
                failures: tuple[type[Exception], ...] = ()) -> int:
    """``body()``'s exit code; a ``bad_input`` exception is ``prog: error: ...`` and exit 2, a
    ``failures`` one the same line and exit 1, Ctrl-C ``prog: interrupted`` and exit 130."""
    try:
        return body()
    except bad_input as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except failures as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


def writable_out_dir(path: Path) -> None:
    """Create ``--out-dir`` if needed; ``UsageError`` (one line) when it cannot be written."""
    try:
        make_writable_dir(path)
    except OSError as exc:
        raise UsageError(f"--out-dir: cannot write to {path}: {exc.strerror}") from None
