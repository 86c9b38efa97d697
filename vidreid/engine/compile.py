"""Optional ``torch.compile`` (inductor) for extraction, evaluation and training.

Extraction / evaluation (``FeatureExtractor(compile=True)``, ``vidreid extract --compile``,
``eval.compile: true``): the frame encoder (``model.encode_frames`` of models whose
``can_encode_frames()``) is compiled with static shapes for ONE batch size,
:class:`FixedBatch` pads a short batch to it and splits a long one, so a whole extraction
compiles once (per input size, dtype and model) however many frames the tracklets have.

Training (``train.compile: true``): :func:`compile_training_forward` compiles the model's
forward for train mode; eval-mode calls (periodic evaluation) stay eager.

The compile is cached on disk: inductor's FX graph cache (the generated C++ kernels, the
compiled shared objects and the wrapper code, keyed by the traced graph, input
shapes/strides/dtypes, inductor config and torch version) and the AOTAutograd cache (the
joint forward/backward graphs) live in :func:`compile_cache_dir`
(``$VIDREID_COMPILE_CACHE``, else ``$TORCHINDUCTOR_CACHE_DIR`` when set to another folder
than inductor's default in /tmp, else ``$XDG_CACHE_HOME/vidreid/inductor`` =
``~/.cache/vidreid/inductor``), so a second run with
the same model and shapes only re-traces the Python (Dynamo, a few seconds) and loads the
kernels. What is not cached: Dynamo's bytecode tracing itself.

When compiling is unavailable (Dynamo unsupported on this Python, no C++ compiler) or fails,
the eager function runs instead, with one logged warning per compiled function.
"""

from __future__ import annotations

import logging
import os
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

log = logging.getLogger(__name__)

CACHE_ENV = "VIDREID_COMPILE_CACHE"
INDUCTOR_CACHE_ENV = "TORCHINDUCTOR_CACHE_DIR"
CACHE_SUBDIR = ("vidreid", "inductor")

# model -> {(batch, dtype, channels_last): FixedBatch}: one compile per model and shape,
# shared by every evaluation of the model (query, gallery, each epoch's evaluation)
_ENCODERS: weakref.WeakKeyDictionary[nn.Module, dict[tuple[Any, ...], FixedBatch]] = (
    weakref.WeakKeyDictionary()
)


def compile_cache_dir() -> Path:
    """Where compiled kernels are cached (see the module docstring for the order).

    ``$TORCHINDUCTOR_CACHE_DIR`` counts only when it is not inductor's own default
    (``/tmp/torchinductor_<user>``), which inductor writes into the environment itself the
    first time it looks for its cache."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    inductor = os.environ.get(INDUCTOR_CACHE_ENV)
    if inductor:
        from torch._inductor.runtime.cache_dir_utils import default_cache_dir

        if os.path.abspath(inductor) != os.path.abspath(default_cache_dir()):
            return Path(inductor).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base, *CACHE_SUBDIR)


def enable_compile_cache() -> Path:
    """Point inductor's on-disk caches at :func:`compile_cache_dir` and switch them on."""
    path = compile_cache_dir()
    path.mkdir(parents=True, exist_ok=True)
    os.environ[INDUCTOR_CACHE_ENV] = str(path)  # read by inductor at every cache access
    import torch._functorch.config as functorch_config
    import torch._inductor.config as inductor_config

    inductor_config.fx_graph_cache = True
    functorch_config.enable_autograd_cache = True
    return path


def compile_unavailable_reason() -> str | None:
    """Why ``torch.compile`` cannot run here, or None when it can be tried."""
    try:
        from torch._dynamo.eval_frame import is_dynamo_supported

        if not is_dynamo_supported():
            return "torch.compile (Dynamo) is not supported on this Python / platform"
    except ImportError as exc:  # pragma: no cover - torch without Dynamo
        return f"torch.compile is unavailable ({exc})"
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300] if text else ''}"


class Fallback:
    """Call ``compiled``; if compiling it is unavailable or fails, log one warning and call
    ``eager`` from then on. An error the eager function raises too propagates unchanged."""

    def __init__(self, compiled: Callable[..., Any] | None, eager: Callable[..., Any],
                 name: str, reason: str | None = None) -> None:
        self.compiled, self.eager, self.name = compiled, eager, name
        self.failed = reason
        if compiled is None or reason is not None:
            self._give_up(reason or "compile not requested")

    def _give_up(self, reason: str) -> None:
        self.failed = reason
        self.compiled = None
        log.warning("%s runs eager: %s", self.name, reason)

    @property
    def active(self) -> bool:
        """Whether calls still go to the compiled function."""
        return self.compiled is not None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.compiled is None:
            return self.eager(*args, **kwargs)
        try:
            return self.compiled(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - any compile failure -> eager
            out = self.eager(*args, **kwargs)  # an input error raises here, as eager would
            self._give_up(f"torch.compile failed ({_first_line(exc)})")
            return out


class FixedBatch:
    """``fn(x [N, ...]) -> [N, ...]`` run on batches of exactly ``batch`` rows (the last one
    padded by repeating its last row, padding outputs dropped), so a static-shape compile of
    ``fn`` is traced once. Rows must be independent (frames through a frame encoder)."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor], batch: int) -> None:
        if batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        self.fn, self.batch = fn, int(batch)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        if n == 0:
            raise ValueError("an empty batch has no frames to encode")
        outs = []
        for start in range(0, n, self.batch):
            chunk = x[start : start + self.batch]
            short = self.batch - chunk.shape[0]
            if short:
                pad = chunk[-1:].expand(short, *chunk.shape[1:])
                chunk = torch.cat([chunk, pad]).contiguous(memory_format=_layout(chunk))
            out = self.fn(chunk)
            outs.append(out[: self.batch - short] if short else out)
        return outs[0] if len(outs) == 1 else torch.cat(outs)


def _layout(x: torch.Tensor) -> torch.memory_format:
    if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not (
        x.is_contiguous()
    ):
        return torch.channels_last
    return torch.contiguous_format


def warn_no_frame_encoder(model: nn.Module) -> None:
    """Log (once per model) that compiling does not apply to a model without a separate frame
    encoder, which therefore runs eager."""
    per_model = _ENCODERS.setdefault(model, {})
    if "warned" not in per_model:
        per_model["warned"] = None  # type: ignore[assignment]
        log.warning("%s runs eager: compile applies to frame encoders and this model has none "
                    "(can_encode_frames() is False)", type(model).__name__)


def compiled_frame_encoder(model: nn.Module, batch: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """``model.encode_frames`` compiled for ``batch``-frame batches (padding / splitting any
    other count), with the eager fallback; one per model and batch, reused."""
    per_model = _ENCODERS.setdefault(model, {})
    encoder = per_model.get(batch)
    if encoder is None:
        name = f"{type(model).__name__}.encode_frames"
        reason = compile_unavailable_reason()
        compiled = None
        if reason is None:
            enable_compile_cache()
            compiled = _InferenceMode(torch.compile(model.encode_frames, dynamic=False))
        encoder = per_model[batch] = FixedBatch(
            Fallback(compiled, model.encode_frames, name, reason), batch)
    return encoder


class _InferenceMode:
    """Run ``fn(x)`` under ``torch.inference_mode`` on an inference tensor whatever the
    caller's grad mode (``no_grad`` in evaluation, ``inference_mode`` in the extractor), so
    both share one compiled graph: Dynamo guards on the grad mode and on whether the input
    is an inference tensor. A normal input is copied once (a batch of frames: cheap next to
    the encoder)."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.fn = fn

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return self.fn(x if x.is_inference() else x.clone())


def compile_training_forward(model: nn.Module) -> Fallback:
    """Compile ``model.forward`` for training (static shapes); eval-mode calls stay eager.

    The model keeps its parameters and ``state_dict`` keys (no ``_orig_mod.`` prefix): the
    compiled function is installed as the instance's ``forward``. Returns the
    :class:`Fallback` (``.active`` tells whether compiled calls are still made).
    """
    eager = model.forward
    reason = compile_unavailable_reason()
    compiled = None
    if reason is None:
        enable_compile_cache()
        compiled = torch.compile(eager, dynamic=False)
    train_fn = Fallback(compiled, eager, f"{type(model).__name__}.forward (training)", reason)

    def forward(*args: Any, **kwargs: Any) -> Any:
        return train_fn(*args, **kwargs) if model.training else eager(*args, **kwargs)

    model.forward = forward  # type: ignore[method-assign]
    return train_fn
