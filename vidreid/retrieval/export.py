"""ONNX export of a model's frame encoder, temporal head or whole clip forward, with a parity
check against PyTorch through onnxruntime.

Parts (``part=``):

- ``frames``: the frame encoder ``[N, 3, H, W] -> [N, ...]`` (``model.encode_frames``), for
  models whose frames are encoded independently (``model.can_encode_frames()``);
- ``head``: the temporal head ``[B, T, ...] -> [B, D]`` (``model.aggregate``) on the frame
  encoder's outputs; batch and time axes are dynamic;
- ``clip``: the whole eval forward ``[B, T, 3, H, W] -> [B, D]`` (``model(clips)["features"]``),
  for every model; the clip length T is fixed at export time (non-local and co-attention
  blocks reshape by it), the batch axis is dynamic.

Export uses the TorchScript-based exporter (``dynamo=False``): the dynamo exporter needs
``onnxscript``, which vidreid does not depend on.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

PARTS = ("frames", "head", "clip")
DEFAULT_OPSET = 17
DEFAULT_NUM_FRAMES = 4
EXAMPLE_BATCH = 2
RGB = 3


class _FrameEncoder(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.model.encode_frames(frames)


class _TemporalHead(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, frame_feats: torch.Tensor) -> torch.Tensor:
        return self.model.aggregate(frame_feats)


class _ClipModel(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        return self.model(clips)["features"]


def _check_part(model: nn.Module, part: str) -> None:
    if part not in PARTS:
        raise ValueError(f"part must be one of {PARTS}, got {part!r}")
    if part != "clip" and not getattr(model, "can_encode_frames", lambda: False)():
        raise ValueError(
            f"{type(model).__name__} has no separate frame encoder / temporal head (its frames "
            f"interact inside the backbone); export part='clip' instead of {part!r}"
        )


def example_input(
    model: nn.Module, part: str, input_size: tuple[int, int], num_frames: int = DEFAULT_NUM_FRAMES,
    batch: int = EXAMPLE_BATCH, seed: int = 0,
) -> torch.Tensor:
    """A random input of ``part`` (frames: ``batch * num_frames`` of them)."""
    _check_part(model, part)
    gen = torch.Generator().manual_seed(seed)
    h, w = input_size
    frames = torch.randn(batch * num_frames, RGB, h, w, generator=gen)
    if part == "frames":
        return frames
    if part == "clip":
        return frames.unflatten(0, (batch, num_frames))
    with torch.inference_mode():
        feats = model.encode_frames(frames)  # [B*T, ...]
    return feats.clone().unflatten(0, (batch, num_frames))


def _wrap(model: nn.Module, part: str) -> nn.Module:
    return {"frames": _FrameEncoder, "head": _TemporalHead, "clip": _ClipModel}[part](model)


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike[str],
    input_size: tuple[int, int],
    *,
    part: str = "frames",
    num_frames: int = DEFAULT_NUM_FRAMES,
    batch: int = EXAMPLE_BATCH,
    dynamic: bool | None = None,
    opset: int = DEFAULT_OPSET,
) -> Path:
    """Write ``part`` of ``model`` (in eval mode, fp32) to ``path`` as ONNX, atomically.

    ``input_size`` is the model's ``(height, width)``; ``num_frames`` the clip length of the
    ``clip`` part (and of the example used to trace ``head``); ``batch`` the example's batch
    (clips; ``frames``: ``batch * num_frames`` frames). ``dynamic`` (default: all parts but
    ``clip``, whose backbone call traces the frame count as a constant) makes the batch (and
    the head's time) axis dynamic; otherwise the graph takes exactly the example's shape.
    Some ops export only with static shapes (the TA head's adaptive pooling): retry with
    ``dynamic=False``. The graph has one input ``input`` and one output ``features``.
    """
    _check_part(model, part)
    was_training = model.training
    model.eval()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    example = example_input(model, part, input_size, num_frames, batch)
    if dynamic is None:
        dynamic = part != "clip"
    axes: dict[int, str] = {0: "batch"}
    if part == "head":
        axes[1] = "time"
    dynamic_axes = {"input": axes, "features": {0: "batch"}} if dynamic else None
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # shape values traced as constants: expected; check_onnx_parity verifies the graph
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            torch.onnx.export(
                _wrap(model, part), (example,), tmp, dynamo=False, input_names=["input"],
                output_names=["features"], dynamic_axes=dynamic_axes, opset_version=opset,
            )
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except Exception as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, (ValueError, OSError)):
            raise
        raise ValueError(
            f"cannot export part {part!r} of {type(model).__name__} to ONNX (opset {opset}): "
            f"{type(exc).__name__}: {exc}"
        ) from None
    finally:
        model.train(was_training)
    return path


def onnx_session(path: str | os.PathLike[str]) -> Any:
    """An onnxruntime CPU session for ``path``, with clear errors."""
    import onnxruntime as ort

    if not Path(path).is_file():
        raise FileNotFoundError(f"ONNX file not found: {path}")
    try:
        return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ValueError(f"{path}: not a loadable ONNX model ({exc})") from None


def run_onnx(path: str | os.PathLike[str], x: np.ndarray) -> np.ndarray:
    """Run an exported graph on CPU through onnxruntime."""
    session = onnx_session(path)
    return session.run(None, {session.get_inputs()[0].name: x.astype(np.float32)})[0]


def check_onnx_parity(
    model: nn.Module,
    path: str | os.PathLike[str],
    input_size: tuple[int, int],
    *,
    part: str = "frames",
    num_frames: int = DEFAULT_NUM_FRAMES,
    batch: int = EXAMPLE_BATCH + 1,
    atol: float = 1e-4,
    rtol: float = 1e-3,
) -> dict[str, Any]:
    """Compare the ONNX graph at ``path`` with ``model`` (fp32, eval) on a random input.

    With a dynamic batch axis the batch differs from the export example's, so that axis is
    checked too; a static graph gets its own input shape. Returns ``{"max_abs_diff", "max_abs_ref", "ok"}``; raises ValueError when any element
    differs by more than ``atol + rtol * max|reference|``.
    """
    dim0 = onnx_session(path).get_inputs()[0].shape[0]
    if isinstance(dim0, int):  # static graph: its own batch
        if part == "frames":
            num_frames, batch = (num_frames, dim0 // num_frames) if dim0 % num_frames == 0 \
                else (1, dim0)
        else:
            batch = dim0
    was_training = model.training
    model.eval()
    try:
        x = example_input(model, part, input_size, num_frames, batch, seed=1)
        with torch.inference_mode():
            ref = _wrap(model, part)(x).float().numpy()
    finally:
        model.train(was_training)
    got = run_onnx(path, x.numpy())
    if got.shape != ref.shape:
        raise ValueError(f"{path}: ONNX output shape {got.shape} != PyTorch {ref.shape}")
    diff = float(np.abs(got - ref).max())
    scale = float(np.abs(ref).max())
    report = {"max_abs_diff": diff, "max_abs_ref": scale, "ok": diff <= atol + rtol * scale}
    if not report["ok"]:
        raise ValueError(
            f"{path}: ONNX and PyTorch outputs differ by up to {diff:.3g} (reference values up "
            f"to {scale:.3g}; allowed {atol} + {rtol} x that)"
        )
    return report
