"""The baseline video model: frame CNN -> temporal head -> (embedding) -> BNNeck / classifier.

``video_baseline`` covers Gao & Nevatia's image-level baselines (TP, TMP, TA, RNN heads on
any registered backbone); ``nonlocal`` is the non-local video network used by TKP and VRSTC
(ResNet-50 with non-local blocks after layer2 blocks 1, 3 and layer3 blocks 1, 3, 5,
temporal average pooling).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from vidreid.models import HEADS, MODELS, build_backbone, build_head, check_kwargs
from vidreid.models.base import VideoReIDModel, clip_length, uses_clip_length
from vidreid.models.bnneck import BNNeck
from vidreid.models.nonlocal_block import insert_nonlocal


@MODELS.register("video_baseline")
class VideoBaseline(VideoReIDModel):
    """``clips [B,T,3,H,W]`` -> backbone per frame -> head -> features / logits.

    Args:
        num_classes: training identities (classifier width).
        backbone: registered backbone name; ``weights``: its local pretrained file or None;
            ``last_stride``: 1 (re-ID convention) or 2.
        head: registered temporal head name; ``head_kwargs`` go to it (e.g. ``hidden_dim``).
        bnneck: BNNeck between feature and classifier (else a plain linear classifier and
            the same feature for training and test).
        neck_feat: which feature BNNeck returns at test time, ``"after"`` or ``"before"`` BN.
        embed_dim: optional linear reduction of the head's output before the neck.
        frame_chunk: in eval mode, run the backbone over at most this many frames at a time
            (bounds test memory on long tracklets); backbones that mix frames of a clip
            (non-local) are chunked by whole clips. Training never chunks: batch norm must
            see the whole batch, as in the authors' code, not ghost batches of a few clips.
    """

    def __init__(
        self,
        num_classes: int,
        backbone: str = "resnet50",
        head: str = "tp",
        weights: str | None = None,
        last_stride: int = 1,
        bnneck: bool = True,
        neck_feat: str = "after",
        embed_dim: int | None = None,
        frame_chunk: int | None = None,
        **head_kwargs: Any,
    ) -> None:
        super().__init__()
        if frame_chunk is not None and frame_chunk < 1:
            raise ValueError(f"frame_chunk must be a positive number of frames, got {frame_chunk}")
        self.num_classes = num_classes
        self.frame_chunk = frame_chunk
        self.backbone = build_backbone(backbone, weights=weights, last_stride=last_stride)
        try:  # a mistyped model argument lands in head_kwargs: say so
            check_kwargs(HEADS.get(head), head_kwargs, f"head {head!r}", ("in_channels",))
        except ValueError as exc:
            raise ValueError(
                f"{type(self).__name__}: {exc}; arguments that are not the model's go to the head"
            ) from None
        self.head = build_head(head, self.backbone.out_channels, **head_kwargs)
        dim = self.head.out_dim
        self.embedding: nn.Module = nn.Identity()
        if embed_dim is not None:
            self.embedding = nn.Linear(dim, embed_dim)
            dim = embed_dim
        self.feature_dim = dim
        self.neck: BNNeck | None = BNNeck(dim, num_classes, neck_feat) if bnneck else None
        self.classifier: nn.Linear | None = None if bnneck else nn.Linear(dim, num_classes)

    def frame_maps(self, clips: torch.Tensor) -> torch.Tensor:
        """Backbone over every frame: ``[B, T, 3, H, W] -> [B, T, C, h, w]``."""
        if clips.dim() != 5 or clips.shape[2] != 3:
            raise ValueError(f"expected clips [B, T, 3, H, W], got shape {tuple(clips.shape)}")
        b, t = clips.shape[:2]
        frames = clips.flatten(0, 1)  # [B*T, 3, H, W]; keeps a channels_last layout
        step = frames.shape[0]
        if self.frame_chunk is not None and not self.training:
            mixes_frames = uses_clip_length(self.backbone)
            step = max(1, self.frame_chunk // t) * t if mixes_frames else self.frame_chunk
        with clip_length(self.backbone, t):
            chunks = [self.backbone(chunk) for chunk in frames.split(step)]
        maps = chunks[0] if len(chunks) == 1 else torch.cat(chunks)
        return maps.reshape(b, t, *maps.shape[1:])  # [B, T, C, h, w]

    def _outputs(self, feat: torch.Tensor) -> dict[str, torch.Tensor]:
        """Head output ``[B, D_head]`` -> embedding -> neck / classifier outputs."""
        feat = self.embedding(feat)  # [B, D]
        if self.neck is not None:
            return self.neck(feat)
        out = {"features": feat}
        if self.training:
            out["logits"] = self.classifier(feat)
        return out

    def forward(self, clips: torch.Tensor, return_extras: bool = False) -> dict[str, torch.Tensor]:
        maps = self.frame_maps(clips)  # [B, T, C, h, w]
        feat, extras = self.head(maps, return_extras=True)  # [B, D_head]
        out = self._outputs(feat)
        if return_extras:
            out["extras"] = extras
        return out

    def can_encode_frames(self) -> bool:
        """Frames are independent unless a subclass changes ``forward`` or the backbone mixes
        the frames of a clip (non-local blocks)."""
        return type(self).forward is VideoBaseline.forward and not uses_clip_length(self.backbone)

    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """``[N, 3, H, W] -> [N, C, h', w']``: backbone maps, GAP'd if the head allows."""
        return self.head.summarize_frames(self.backbone(frames))

    def aggregate(self, frame_feats: torch.Tensor) -> torch.Tensor:
        """``[B, T, C, h', w'] -> [B, D]``: the test-time descriptor of ``forward``."""
        return self._outputs(self.head(frame_feats))["features"]


@MODELS.register("nonlocal")
class NonLocalBaseline(VideoBaseline):
    """ResNet-50 + non-local blocks (Wang et al. 2018) + temporal average pooling.

    Blocks go after the given 0-based blocks of the middle stages (layer2 and layer3; None =
    every other block, TKP's positions on ResNet-50), on any staged backbone; the
    backbone's pretrained weights are loaded before the insertion, and the blocks start as
    the identity, so at initialisation this equals the TP baseline.
    """

    def __init__(
        self,
        num_classes: int,
        backbone: str = "resnet50",
        head: str = "tp",
        weights: str | None = None,
        last_stride: int = 1,
        layer2_blocks: Sequence[int] | None = None,
        layer3_blocks: Sequence[int] | None = None,
        nonlocal_sub_sample: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            num_classes, backbone=backbone, head=head, weights=weights,
            last_stride=last_stride, **kwargs,
        )
        insert_nonlocal(
            self.backbone,
            None if layer2_blocks is None else tuple(layer2_blocks),
            None if layer3_blocks is None else tuple(layer3_blocks),
            sub_sample=nonlocal_sub_sample,
        )
