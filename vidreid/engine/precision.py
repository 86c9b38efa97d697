"""One mixed-precision and memory-format policy for training, evaluation and extraction.

``amp`` is one of :data:`AMP_MODES`:

- ``auto``: fp16 autocast on CUDA; bf16 on a CPU whose oneDNN has native bf16 kernels
  (AVX-512 BF16 / AMX: 3-6x faster convolutions than fp32 here); full precision elsewhere,
  where emulated bf16 would be slower than fp32;
- ``off``: full precision; ``bf16`` / ``fp16``: that dtype (fp16 needs CUDA).

Weights and inputs go channels_last (NHWC), which oneDNN and cuDNN convolve fastest.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

AMP_MODES = ("auto", "off", "bf16", "fp16")


def cpu_has_native_bf16() -> bool:
    """True when oneDNN runs bf16 natively on this CPU."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def autocast_dtype(amp: str, device: torch.device | str) -> torch.dtype | None:
    """The autocast dtype for ``amp`` on ``device`` (None = full precision)."""
    device = torch.device(device)
    if amp not in AMP_MODES:
        raise ValueError(f"train.amp={amp!r} is not one of {', '.join(AMP_MODES)}")
    if amp == "off":
        return None
    if amp == "auto":
        if device.type == "cuda":
            return torch.float16
        return torch.bfloat16 if device.type == "cpu" and cpu_has_native_bf16() else None
    if amp == "fp16" and device.type != "cuda":
        raise ValueError("train.amp=fp16 needs CUDA; use bf16 (or auto) on CPU")
    return torch.bfloat16 if amp == "bf16" else torch.float16


def autocast_context(
    dtype: torch.dtype | None, device: torch.device | str
) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for ``dtype`` on ``device``; a no-op for full precision."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)


def prepare_model(model: nn.Module, device: torch.device | str, channels_last: bool = True) -> nn.Module:
    """Move to ``device`` (channels_last when asked); parameters keep their identity."""
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    return model
