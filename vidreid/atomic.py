"""Atomic file writes, shared by every writer in the package.

Checkpoints, configs, indexes, feature shards, figures and generated datasets are written to a
temp file in the target's folder and renamed over the target with ``os.replace``: readers see
the old file or the new one, never half of one, and on any error the temp file is removed and
the target is untouched. The temp name keeps the target's extension last, because some writers
(``scipy.io.savemat``, OpenCV, matplotlib) choose or append a format by it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

#: Permissions of written files: mkstemp creates 0600, outputs are meant to be shared.
FILE_MODE = 0o644


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], *, mode: int = FILE_MODE) -> Iterator[str]:
    """Yield a temp path beside ``path``; on success give it ``mode`` and move it onto ``path``."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    name = os.path.basename(path)
    fd, tmp = tempfile.mkstemp(
        dir=folder, prefix=f".{name}.", suffix=f".tmp{os.path.splitext(name)[1]}"
    )
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        if isinstance(exc, OSError) and exc.errno is not None and exc.filename in (None, tmp):
            # a failed write (ENOSPC, EFBIG...) names no file or the temp one: name the target
            raise OSError(exc.errno, exc.strerror, path) from exc
        raise


def temp_pattern(name: str) -> str:
    """The glob of the temp files :func:`atomic_path` creates for target ``name`` (which may
    itself be a glob, e.g. ``shard-*.npz``)."""
    return f".{name}.*.tmp{os.path.splitext(name)[1]}"


def remove_stale_temps(folder: str | os.PathLike[str], *names: str) -> list[str]:
    """Remove temp files left beside targets ``names`` (globs allowed) by a writer that was
    killed mid-write (``kill -9`` and default-handled signals run no cleanup).

    Only for folders with a single writer: a concurrent writer's live temp file would go too.
    Returns the removed paths.
    """
    import glob

    removed = []
    for name in names:
        for tmp in glob.glob(os.path.join(glob.escape(os.fspath(folder)), temp_pattern(name))):
            with contextlib.suppress(FileNotFoundError):
                os.remove(tmp)
                removed.append(tmp)
    return removed


def write_bytes(
    path: str | os.PathLike[str], write: Callable[[BinaryIO], Any], *, fsync: bool = False
) -> None:
    """Call ``write(fileobj)`` on a temp file beside ``path``, then rename it over ``path``."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        write(fh)
        if fsync:
            fh.flush()
            os.fsync(fh.fileno())


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write a UTF-8 text file atomically (``\\n`` line ends)."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(text)
