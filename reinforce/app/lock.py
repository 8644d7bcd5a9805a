"""One writer per run folder: an exclusive OS lock held while a command writes to it.

``train`` (new or resumed), ``push`` and ``record`` hold :func:`run_folder_lock` on the run
folder for as long as they write to it; ``evaluate`` only reads and takes none. The lock is
``fcntl.flock`` on the folder itself: the operating system releases it when its process ends,
however it ends (``kill -9`` included), so a lock is never stale. While it holds the lock, a
process keeps a record of itself in ``RUN_DIR/.writer`` (process id, host, command, start
time), for the message that refuses a second writer, and removes it when it is done; a
refused command writes nothing.

Hand-written rather than the ``filelock`` package: filelock locks a file, which would stay in
the run folder (and it truncates that file on every attempt, so it cannot carry the record).
Unix only (``fcntl``), as the rest of the training code's signal handling.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import datetime
from pathlib import Path

from reinforce.checkpoint import CheckpointError, atomic_write_text

#: The record of the process that holds a run folder's lock (a dot file, there only while it
#: is held, or after its holder was killed).
WRITER_NAME = ".writer"


class FolderInUse(Exception):
    """Another process holds the run folder's lock; the message says which (exit 2)."""


def holder(path: Path) -> str:
    """Who holds the lock of the run folder ``path``, as its record says."""
    try:
        record = json.loads((Path(path) / WRITER_NAME).read_text())
        return (f"process {record['pid']} on {record['host']} ({record['command']}, started "
                f"{record['started']})")
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


@contextmanager
def run_folder_lock(path: str | Path, command: str | None = None) -> Iterator[None]:
    """Hold the run folder's lock while inside; :class:`FolderInUse` at once if another
    process holds it. ``command`` describes this one in the record (default: its argv)."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError as exc:
        raise CheckpointError(f"cannot open run folder {path}: {exc.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FolderInUse(f"run folder {path} is in use by {holder(path)}; wait for it to "
                              "end (one process writes to a run folder at a time)") from None
        record = {"pid": os.getpid(), "host": socket.gethostname(),
                  "command": command or " ".join(["reinforce", *sys.argv[1:]]),
                  "started": datetime.now().astimezone().isoformat(timespec="seconds")}
        try:
            atomic_write_text(path / WRITER_NAME, json.dumps(record))
        except OSError as exc:
            raise CheckpointError(f"cannot write to run folder {path}: {exc.strerror}"
                                  ) from None
        try:
            yield
        finally:
            with suppress(OSError):  # gone with the folder when a refused start removes it
                (path / WRITER_NAME).unlink()
    finally:
        os.close(fd)  # releases the lock
