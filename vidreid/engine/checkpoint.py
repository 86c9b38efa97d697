"""Checkpoints: plain dicts of tensors and primitive values, saved atomically.

Everything in a checkpoint loads with ``torch.load(weights_only=True)``: the RNG states of
Python and NumPy are converted to lists / tensors, the config is stored as a YAML string.
A checkpoint is written to a temporary file in the same folder and renamed over the old
one, so a crash mid-write never leaves a truncated ``last.pt``.
"""

from __future__ import annotations

import errno
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidreid.atomic import atomic_path

FORMAT_VERSION = 1


def rng_state() -> dict[str, Any]:
    """Python, NumPy (global) and torch RNG states as weights_only-loadable values."""
    py_version, py_state, py_gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state: dict[str, Any] = {
        "python": [py_version, list(py_state), py_gauss],
        "numpy": {
            "name": str(np_name),
            "keys": torch.from_numpy(np.asarray(np_keys, dtype=np.int64)),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "cached_gaussian": float(np_gauss),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    version, py_state, gauss = state["python"]
    random.setstate((version, tuple(py_state), gauss))
    npst = state["numpy"]
    np.random.set_state(
        (
            npst["name"],
            npst["keys"].numpy().astype(np.uint32),
            npst["pos"],
            npst["has_gauss"],
            npst["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def atomic_torch_save(obj: Any, path: str | os.PathLike[str]) -> None:
    """``torch.save`` to a temp file in the same folder, then ``os.replace``.

    torch's zip writer reports a failed write (full disk, file size limit) as a
    ``RuntimeError: [enforce fail at inline_container.cc...]``: that becomes an ``OSError``
    naming ``path`` (the old file at ``path`` is untouched).
    """
    try:
        with atomic_path(path) as tmp:
            torch.save(obj, tmp)
    except RuntimeError as exc:
        if not _is_write_failure(exc):
            raise
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise OSError(errno.EIO, f"writing failed (disk full or not writable?): {reason}",
                      os.fspath(path)) from exc


#: Texts of torch's zip writer failing to write: the enforce in ``inline_container.cc`` and
#: the C++ stream error it may report first (seen under a file size limit).
WRITE_FAILURE_MARKERS = ("inline_container", "PytorchStreamWriter", "file write failed",
                         "basic_ios::clear")


def _is_write_failure(exc: BaseException | None) -> bool:
    """Whether ``exc`` (or the error it was raised while handling) is torch's zip writer
    failing to write, not a bug elsewhere."""
    while exc is not None:
        if isinstance(exc, RuntimeError) and any(m in str(exc) for m in WRITE_FAILURE_MARKERS):
            return True
        exc = exc.__context__
    return False


def _load_failure_reason(path: Path, exc: BaseException) -> str:
    """Why ``torch.load`` failed, never empty (``EOFError()`` of a 0-byte file says nothing)."""
    size = path.stat().st_size
    if size == 0:
        return "the file is empty (0 bytes): a copy or write of it never finished"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else f"{type(exc).__name__}, file of {size} bytes"


def safe_load(path: str | os.PathLike[str], *, missing: str, what: str) -> Any:
    """``torch.load(path, weights_only=True)`` on CPU with clear errors: ``missing`` names
    the file that is not there (and how to get it), ``what`` what it failed to load as."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{missing}: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, foreign or pickled-object files
        raise ValueError(f"{path}: cannot be loaded as {what}"
                         f" ({_load_failure_reason(path, exc)})") from None


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a checkpoint written by the trainer (``weights_only=True``), with clear errors."""
    path = Path(path)
    if path.is_dir():
        path = path / "last.pt"
    ckpt = safe_load(path, what="a vidreid checkpoint", missing="checkpoint not found (pass"
                     " a run folder holding last.pt, or a .pt file)")
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        raise ValueError(f"{path}: not a vidreid checkpoint (no 'model' entry)")
    return ckpt


def load_model_weights(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The model state dict from a trainer checkpoint or a bare state dict file."""
    path = Path(path)
    obj = safe_load(path, what="weights with weights_only=True", missing="weights file not found")
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        obj = obj["model"]
    elif isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{path}: expected a checkpoint or a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in obj.items()}
