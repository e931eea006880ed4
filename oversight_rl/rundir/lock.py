"""Directories that one process at a time may write: a sweep's, a tuning's, a run's."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no flock; nothing is locked there
    fcntl = None


class DirectoryBusy(ValueError):
    """Another process is writing the same directory (a sweep, a tuning, a run being trained)."""


@contextmanager
def directory_lock(directory: Path, what: str = "sweep", setting: str = "--out") -> Iterator[None]:
    """Hold ``directory/<what>.lock`` (``sweep.lock``, ``tuning.lock``, ``run.lock``: an ``flock`` that the kernel
    releases when this process ends, however it ends, on a file that holds this process's id) for the block;
    :class:`DirectoryBusy` names the setting that chose the directory and the process that holds it. Where there is
    no flock (Windows), nothing is locked."""
    if fcntl is None:
        yield
        return
    fd = os.open(Path(directory) / f"{what}.lock", os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        named = f"{setting} {directory}" if setting else str(directory)
        raise DirectoryBusy(
            f"{named} is in use by another {what} (pid {holder}); wait for it to finish or stop it"
        ) from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)
