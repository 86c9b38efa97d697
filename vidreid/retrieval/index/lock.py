"""One writer at a time per index file: an ``fcntl.flock`` on ``INDEX.lock`` beside it.

Writers (``vidreid index add|remove|build``) take the lock, then read the index, change it,
save it atomically and release the lock; so two concurrent writers run one after the other
and the second sees the first one's update (without the lock both read the same old file and
the later save drops the earlier update). Readers (``search``, ``info``) need no lock: saves
replace the file atomically.

The lock file is never deleted (deleting it would let a waiter lock an unlinked file while a
newcomer locks a fresh one); it holds a line naming the current holder (pid, host, start
time, command) for the timeout message. ``flock`` is released by the kernel when the holder
exits or is killed, so a crashed writer never leaves the index locked. Not for NFS, where
``flock`` may not be shared between machines.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timezone

LOCK_SUFFIX = ".lock"
#: Default wait for another writer: a save of a 1M-vector index takes tens of seconds.
DEFAULT_LOCK_TIMEOUT_S = 120.0
_POLL_S = 0.05
_HOLDER_MAX_BYTES = 4096


class IndexLockTimeout(ValueError):
    """Another writer held the index lock for longer than the timeout."""


def lock_path(index_path: str | os.PathLike[str]) -> str:
    """``INDEX.lock`` next to ``INDEX``."""
    return os.fspath(index_path) + LOCK_SUFFIX


def _holder_line() -> str:
    since = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    command = " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv))
    return f"pid {os.getpid()} on {socket.gethostname()} since {since} ({command})\n"


@contextlib.contextmanager
def index_write_lock(
    index_path: str | os.PathLike[str], timeout: float = DEFAULT_LOCK_TIMEOUT_S
) -> Iterator[None]:
    """Hold the writer lock of ``index_path`` (waiting up to ``timeout`` seconds for it).

    Raises :class:`IndexLockTimeout` naming the index and the holder when it is not free in
    time, and ``ValueError`` when the lock file cannot be created.
    """
    path = lock_path(index_path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"folder {folder} for the index file does not exist")
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise ValueError(
            f"cannot open the writer lock {path} of index {index_path} ({exc.strerror}); "
            "writing the index needs write access to its folder"
        ) from None
    try:
        deadline = time.monotonic() + max(0.0, float(timeout))
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, _HOLDER_MAX_BYTES, 0).decode("utf-8", "replace")
                    holder = holder.strip() or "unknown holder"
                    raise IndexLockTimeout(
                        f"index {index_path} is locked by another writer ({holder}) and was "
                        f"not released within {timeout:g} s; wait for it to finish or raise "
                        f"--lock-timeout (lock file {path})"
                    ) from None
                time.sleep(_POLL_S)
        line = _holder_line().encode("utf-8")
        os.ftruncate(fd, 0)
        os.pwrite(fd, line, 0)
        yield
    finally:
        os.close(fd)  # closing the only descriptor releases the flock
