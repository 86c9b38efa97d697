"""The contract every video re-ID model (baseline or method) follows.

A model maps a batch of clips to a dict, so methods can add outputs without changing
the engine:

- input ``clips``: float tensor ``[B, T, 3, H, W]`` (normalised frames of one clip each);
- ``model.train()``: returns at least ``features`` ``[B, D]`` (metric-learning feature, used
  by triplet / center losses) and ``logits`` ``[B, num_classes]``; methods may add more
  (e.g. ``attr_logits``, ``frame_features``);
- ``model.eval()``: returns at least ``features`` ``[B, D]``: the descriptor ranked by
  distance at test time;
- ``return_extras=True`` adds ``extras``: a dict of interpretable tensors (masks, attention
  weights) for visualisation.

``encode_image(images [B, 3, H, W]) -> [B, D]`` is the image-side descriptor used by the
image-to-video protocols; the default treats an image as a one-frame clip.

Optional split for fast extraction (``vidreid.retrieval.extractor``): a model whose frames
are encoded independently returns True from ``can_encode_frames()`` and implements
``encode_frames(frames [N, 3, H, W]) -> [N, ...]`` (per-frame features, whatever its head
needs) and ``aggregate(frame_feats [B, T, ...]) -> [B, D]`` (the eval-mode descriptor), with
``aggregate(encode_frames(x.flatten(0, 1)).unflatten(0, (B, T)))`` equal to
``forward(x)["features"]`` in eval mode. The extractor then batches frames of many
tracklets together; other models are run clip by clip.

Modules inserted into a frame-wise backbone that need the clip length (non-local blocks,
co-attention) subclass :class:`FrameBatchModule`; the model wraps its backbone call in
``with clip_length(backbone, T):``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


class VideoReIDModel(nn.Module):
    """Base class: subclasses set ``feature_dim`` and implement ``forward``."""

    feature_dim: int

    def forward(self, clips: torch.Tensor, return_extras: bool = False) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        return self(images.unsqueeze(1))["features"]

    def can_encode_frames(self) -> bool:
        """Whether :meth:`encode_frames` / :meth:`aggregate` split this model's forward."""
        return False

    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """Per-frame features ``[N, 3, H, W] -> [N, ...]`` (frames independent)."""
        raise NotImplementedError(f"{type(self).__name__} has no separate frame encoder")

    def aggregate(self, frame_feats: torch.Tensor) -> torch.Tensor:
        """Clip descriptors ``[B, T, ...] -> [B, D]`` from :meth:`encode_frames` outputs."""
        raise NotImplementedError(f"{type(self).__name__} has no separate temporal head")


class FrameBatchModule(nn.Module):
    """A module inside a frame-wise backbone (input ``[B*T, C, H, W]``) that needs ``T``.

    Backbones run over all frames of a batch at once; a module that mixes frames of a clip
    (a non-local block, a co-attention) must restore the time axis, so it needs the clip
    length. The model sets it for every such module with :func:`clip_length` around the
    backbone call; using the module outside that context is an error, not a silent guess.
    """

    num_frames: int | None = None

    def split_clips(self, x: torch.Tensor) -> torch.Tensor:
        """``[B*T, ...] -> [B, T, ...]`` using the current clip length."""
        t = self.num_frames
        if t is None:
            raise RuntimeError(
                f"{type(self).__name__} mixes the frames of a clip and needs the clip length: "
                f"run the backbone inside `with clip_length(model, T):`"
            )
        if x.shape[0] % t:
            raise ValueError(
                f"{type(self).__name__}: {x.shape[0]} frames is not a whole number of "
                f"{t}-frame clips"
            )
        return x.reshape(x.shape[0] // t, t, *x.shape[1:])


def uses_clip_length(model: nn.Module) -> bool:
    """Whether ``model`` contains a :class:`FrameBatchModule` (frames of a clip interact)."""
    return any(isinstance(m, FrameBatchModule) for m in model.modules())


@contextmanager
def clip_length(model: nn.Module, num_frames: int) -> Iterator[None]:
    """Tell every :class:`FrameBatchModule` in ``model`` that clips have ``num_frames`` frames."""
    if num_frames < 1:
        raise ValueError(f"clip length must be >= 1, got {num_frames}")
    modules = [m for m in model.modules() if isinstance(m, FrameBatchModule)]
    previous = [m.num_frames for m in modules]
    for m in modules:
        m.num_frames = num_frames
    try:
        yield
    finally:
        for m, prev in zip(modules, previous, strict=True):
            m.num_frames = prev
