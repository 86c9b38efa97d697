"""Reading vidreid's versioned ``.npz`` / JSON files: one way to check format and version and
to turn a damaged archive into one clear error naming the file.

Shared by the features folder (:mod:`vidreid.retrieval.features_file`) and the gallery index
(:mod:`vidreid.retrieval.index`).
"""

from __future__ import annotations

import os
import zipfile
from typing import Any

import numpy as np


def first_line(exc: BaseException) -> str:
    """``Type: message`` of ``exc`` on one line (FAISS and zipfile errors span several)."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def check_format(
    path: str | os.PathLike[str],
    doc: Any,
    *,
    name: str,
    max_version: int,
    what: str,
    error: type[Exception],
    fix: str = "upgrade vidreid",
) -> None:
    """Refuse ``doc`` (a parsed header) unless its ``format`` is ``name`` and its ``version``
    an int no newer than ``max_version``."""
    found = doc.get("format") if isinstance(doc, dict) else None
    if found != name:
        raise error(f"{path} is not a vidreid {what} (format {found!r}, expected {name!r})")
    version = doc.get("version")
    if not isinstance(version, int) or version > max_version:
        raise error(
            f"{path} has {what} format version {version!r}; this vidreid reads up to "
            f"version {max_version}: {fix}"
        )


def read_npz(
    path: str | os.PathLike[str], *, error: type[Exception], label: str, fix: str
) -> dict[str, np.ndarray]:
    """Every array of the ``.npz`` at ``path`` (no pickles), or ``error`` naming ``label``.

    A truncated file, a bad zip CRC or a member numpy cannot parse all become
    ``error("<label> cannot be read (<reason>); <fix>")`` on one line.
    """
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise error(f"{label} cannot be read ({first_line(exc)}); {fix}") from None
