"""Non-local block (Wang et al., "Non-local Neural Networks", CVPR 2018) for video re-ID.

``z = W(y) + x`` with ``y_i = sum_j softmax_j(theta(x_i) . phi(x_j)) g(x_j)`` over all
positions ``j`` of all frames of the clip (space-time). theta, phi, g are 1x1x1 convs to
``inner_channels`` (C/2); phi and g are max-pooled by (1, 2, 2) (``sub_sample``) to cut the
cost 4x; W is a 1x1x1 conv back to C followed by BatchNorm whose weight and bias start at
zero, so that a freshly inserted block is the identity and does not disturb a pretrained
backbone (as in TKP's code, ``guxinqian/TKP`` ``models/NonLocal.py``).

:func:`insert_nonlocal` places blocks after given blocks of the middle stages of any staged
backbone (TKP / VRSTC on ResNet-50: after layer2 blocks 1, 3 and layer3 blocks 1, 3, 5,
0-based; by default every other block of those stages, which is the same there). The
backbone keeps running on frames ``[B*T, C, H, W]``; each inserted :class:`FrameNonLocal`
restores the time axis using the clip length set by :func:`vidreid.models.base.clip_length`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vidreid.models.backbones.stages import (
    block_out_channels,
    default_block_positions,
    insert_after_blocks,
    stage_names,
)
from vidreid.models.base import FrameBatchModule

# Spatial (H, W) kernel of the max-pool on phi and g: Wang et al.'s (1, 2, 2), time kept.
SUB_SAMPLE_KERNEL = (2, 2)
MODES = ("embedded_gaussian", "dot_product")


def _tokens(maps: torch.Tensor, b: int, t: int) -> torch.Tensor:
    """Frame maps ``[B*T, C, h, w]`` -> space-time tokens ``[B, T*h*w, C]`` (t, y, x order)."""
    c = maps.shape[1]
    return maps.reshape(b, t, c, -1).transpose(2, 3).reshape(b, -1, c)


class NonLocalBlock(nn.Module):
    """Space-time non-local block over ``[B, C, T, H, W]`` (shape preserved).

    ``mode="embedded_gaussian"``: softmax over positions of ``theta^T phi``;
    ``mode="dot_product"``: ``theta^T phi / N`` (N = number of phi positions).

    The 1x1x1 convolutions act on each position independently, so they are stored as 1x1
    ``Conv2d`` applied frame by frame (and W's BatchNorm as ``BatchNorm2d`` over the B*T
    frames: the same statistics as ``BatchNorm3d``): the same function as Wang et al.'s
    Conv3d layers, but a backbone holding the block can still be converted to
    ``channels_last`` (PyTorch refuses that for 5-D weights). To load 3-D weights from TKP's
    code, squeeze the last dimension of its conv weights.
    """

    def __init__(
        self,
        in_channels: int,
        inner_channels: int | None = None,
        sub_sample: bool = True,
        mode: str = "embedded_gaussian",
    ) -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"non-local mode must be one of {', '.join(MODES)}, got {mode!r}")
        inner = inner_channels or max(in_channels // 2, 1)
        self.in_channels, self.inner_channels = in_channels, inner
        self.sub_sample, self.mode = sub_sample, mode
        self.theta = nn.Conv2d(in_channels, inner, kernel_size=1)
        self.phi = nn.Conv2d(in_channels, inner, kernel_size=1)
        self.g = nn.Conv2d(in_channels, inner, kernel_size=1)
        self.W = nn.Sequential(
            nn.Conv2d(inner, in_channels, kernel_size=1), nn.BatchNorm2d(in_channels)
        )
        nn.init.zeros_(self.W[1].weight)  # the block starts as the identity
        nn.init.zeros_(self.W[1].bias)

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        if not self.sub_sample:
            return x
        # Clamp the kernel to the map so 1-pixel-wide maps (tiny test inputs) still work.
        kernel = tuple(min(k, s) for k, s in zip(SUB_SAMPLE_KERNEL, x.shape[2:], strict=True))
        return F.max_pool2d(x, kernel_size=kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"NonLocalBlock({self.in_channels}) expects [B, {self.in_channels}, T, H, W], "
                f"got {tuple(x.shape)}"
            )
        b, c, t, h, w = x.shape
        frames = x.transpose(1, 2).reshape(b * t, c, h, w)  # [B*T, C, H, W]
        out = self.forward_frames(frames, t)
        return out.reshape(b, t, c, h, w).transpose(1, 2)  # [B, C, T, H, W]

    def forward_frames(self, frames: torch.Tensor, num_frames: int) -> torch.Tensor:
        """The block on frame-batched maps ``[B*T, C, H, W]`` of ``num_frames``-frame clips."""
        bt, _, h, w = frames.shape
        b, t, inner = bt // num_frames, num_frames, self.inner_channels
        theta = _tokens(self.theta(frames), b, t)  # [B, N, C'], N = T*H*W
        phi = _tokens(self._pool(self.phi(frames)), b, t).transpose(1, 2)  # [B, C', N']
        g = _tokens(self._pool(self.g(frames)), b, t)  # [B, N', C']
        f = theta @ phi  # [B, N, N'] pairwise affinities
        f = F.softmax(f, dim=-1) if self.mode == "embedded_gaussian" else f / f.shape[-1]
        y = (f @ g).reshape(b, t, h, w, inner).permute(0, 1, 4, 2, 3)  # [B, T, C', H, W]
        return frames + self.W(y.reshape(bt, inner, h, w))  # [B*T, C, H, W]


class FrameNonLocal(FrameBatchModule):
    """Applies a :class:`NonLocalBlock` to frame-batched maps ``[B*T, C, H, W]``."""

    def __init__(self, block: NonLocalBlock) -> None:
        super().__init__()
        self.block = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.split_clips(x).shape[1]  # checks that T is set and divides the batch
        return self.block.forward_frames(x, t)  # [B*T, C, H, W]


#: Stages holding non-local blocks, by index: the middle ones (ResNet: layer2 and layer3).
NONLOCAL_STAGES = (1, 2)


def insert_nonlocal(
    backbone: nn.Module,
    layer2_blocks: Sequence[int] | None = (1, 3),
    layer3_blocks: Sequence[int] | None = (1, 3, 5),
    **kw: Any,
) -> nn.Module:
    """Insert non-local blocks after the given (0-based) blocks of the middle stages, in place.

    ``backbone`` is any backbone with the stage protocol
    (:mod:`vidreid.models.backbones.stages`); ``layer2_blocks`` / ``layer3_blocks`` are the
    blocks of stages 1 and 2 (0-based; ResNet's layer2 / layer3) followed by a block, ``None``
    = every other block (:func:`~vidreid.models.backbones.stages.default_block_positions`:
    TKP's (1, 3) and (1, 3, 5) on ResNet-50). The blocks are added as ``layer2.nonlocal1``
    etc., so the original block keys (``layer2.1.conv1.weight``) are unchanged and checkpoints
    of the plain backbone still name the same tensors; positional indexing of ``layer2`` now
    counts the inserted blocks too. Each block's width is the output width of the block it
    follows. ``kw`` go to :class:`NonLocalBlock`. Returns ``backbone``.
    """
    names = stage_names(backbone, "insert_nonlocal")
    for index, blocks in zip(NONLOCAL_STAGES, (layer2_blocks, layer3_blocks), strict=True):
        name = names[index]
        layer = getattr(backbone, name)
        after = default_block_positions(len(layer)) if blocks is None else tuple(blocks)
        bad = sorted(i for i in after if not 0 <= i < len(layer))
        if bad:
            raise ValueError(
                f"{name} has blocks 0..{len(layer) - 1}; cannot insert a non-local block "
                f"after block(s) {bad}"
            )
        inserted = {
            i: (f"nonlocal{i}", FrameNonLocal(NonLocalBlock(block_out_channels(layer[i]), **kw)))
            for i in sorted(set(after))  # network order, as the blocks run
        }
        setattr(backbone, name, insert_after_blocks(layer, inserted))
    return backbone
