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
"""

from __future__ import annotations

import torch
from torch import nn


class VideoReIDModel(nn.Module):
    """Base class: subclasses set ``feature_dim`` and implement ``forward``."""

    feature_dim: int

    def forward(self, clips: torch.Tensor, return_extras: bool = False) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        return self(images.unsqueeze(1))["features"]
