"""GLTR: Global-Local Temporal Representations for video person re-ID.

Li, Wang, Zhang, Tian, Zhang: "Global-Local Temporal Representations for Video Person
Re-Identification", ICCV 2019. Authors' code: ``kanei1024/GLTR`` (``resnet.py``, ``train.py``).

Pipeline (Fig. 2 of the paper), shapes for a batch of ``B`` clips of ``T`` frames:

1. frame features: backbone (ResNet-50, last stride 1) + global average pooling, then a linear
   reduction to ``d = 128``: ``[B, T, 2048] -> [B, T, d]``;
2. Dilated Temporal Pyramid (DTP, local / short-term cues): parallel temporal convolutions of
   kernel 3 with dilation rates ``r_1..r_N`` over the ``d x T`` sequence, ``same`` padding, no
   bias; the input and the ``N`` outputs are concatenated: ``[B, (N+1) d, T]``;
3. Temporal Self-Attention (TSA, global / long-term cues): a non-local block over time,
   ``theta, phi, g`` 1x1 convolutions ``4d -> 2d``, ``softmax(theta^T phi)`` over frames,
   output 1x1 convolution ``2d -> 4d`` followed by a BatchNorm initialised to zero, residual;
4. GLTR = mean over time: ``[B, 4d] = [B, 512]``; training head: BN, ReLU, dropout 0.5,
   linear classifier (softmax loss only).

What follows the authors' code (``kanei1024/GLTR`` on GitHub): ``d = 128``,
dilations ``(1, 2, 3)``, bias-free DTP convolutions, concatenation of the input with the
pyramid outputs, TSA inner width ``2d`` on the ``4d`` map, zero-initialised output BN, the
BN-ReLU-dropout-linear training head.

Where we depart or where the paper is silent and the default is ours:

- the dilation list is an option (the paper speaks of a pyramid of rates without fixing it);
  the TSA widths follow the concatenated width ``(N + 1) d``, so ``d = 128`` and three rates
  give the paper's 512-d descriptor;
- the reduction ``2048 -> d`` is a plain linear layer (no normalisation or activation);
- ``features`` (used by the evaluation and by any metric loss a config adds) is the 512-d GLTR
  before the head's BN; the paper ranks L2-normalised GLTRs with Euclidean distance: the
  normalisation is the evaluation config's ``normalize`` flag, not part of the model;
- the paper trains the 2D CNN first (image classification) and then DTP + TSA; the authors'
  public ``train.py`` trains the whole network end to end in one stage. Both are configs:
  ``configs/gltr/mars_stage1.yaml`` + ``mars.yaml`` (the paper's two stages, joined by
  ``train.init_from`` / ``train.init_modules``) and ``mars_e2e.yaml`` (the authors' code);
- initialisation follows the authors' ``resnet.py:72-94``: DTP weights N(0, 0.001), the
  reduction layer kaiming-normal (fan-out) with zero bias, the classifier N(0, 0.001) with zero
  bias, BatchNorm weight 1 / bias 0; the TSA convolutions keep PyTorch's default (the authors'
  ``NonLocalBlock1D`` is built after their init loop);
- the synthetic configs (``configs/gltr/synth.yaml``, ``bench_gltr.yaml``: the ``tiny``
  backbone from scratch, ~80 steps) depart from the paper's recipe: PK batches of 8
  identities x 2 tracklets x 8 frames and softmax + triplet. With the paper's one 16-frame
  tracklet per identity and softmax only, that budget left the features camera-dominated
  (R1 near chance, the averaged backbone features alike); the model is the same;
- test time processes the whole tracklet in one pass as the paper does (test clip strategy
  ``all``); in eval mode ``frame_chunk`` runs the backbone over at most that many frames at
  a time, so a 900-frame MARS tracklet does not hold 900 frames of backbone activations at
  once (exact: eval-mode BatchNorm uses running statistics). Training runs the backbone in
  one pass, so BatchNorm statistics cover the whole batch (chunking would not save memory
  there anyway: back-propagation keeps every chunk's activations);
- with ``return_extras=True`` the model returns ``extras["temporal_attention"]`` (the TSA
  matrix ``[B, T, T]``, rows = attending frame ``i``, columns = attended frame ``j``, each row
  sums to 1) and ``extras["temporal_weights"]`` ``[B, T]``: the attention *received* by frame
  ``j``, the column mean ``(1/T) sum_i A[i, j]`` (sums to 1 over frames).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from vidreid.models import HEADS, MODELS, build_backbone
from vidreid.models.base import VideoReIDModel
from vidreid.models.heads import PooledFramesHead, frame_vectors

# Paper / authors' code constants.
REDUCED_DIM = 128  # d: frame feature width after the linear reduction
DILATIONS = (1, 2, 3)  # temporal dilation rates of the DTP branches (authors' code)
DTP_KERNEL_SIZE = 3  # temporal kernel of every DTP branch
TSA_REDUCTION = 2  # TSA inner width = input width / 2 (4d -> 2d)
DROPOUT = 0.5  # dropout of the training head
INIT_STD = 0.001  # std of the DTP and classifier weights (authors' resnet.py:83, 92-94)


class DilatedTemporalPyramid(nn.Module):
    """DTP: parallel dilated temporal convolutions, concatenated with their input.

    Input ``[B, d, T]``, output ``[B, (1 + len(dilations)) * d, T]`` (same length: ``same``
    padding ``r * (k - 1) / 2``, zeros outside the clip; no bias, as the authors' code).
    """

    def __init__(
        self,
        channels: int,
        dilations: Sequence[int] = DILATIONS,
        kernel_size: int = DTP_KERNEL_SIZE,
    ) -> None:
        super().__init__()
        dilations = tuple(int(r) for r in dilations)
        if not dilations or any(r < 1 for r in dilations):
            raise ValueError(
                f"DTP dilations must be a non-empty list of integers >= 1, got {dilations}"
            )
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"DTP kernel_size must be odd (same padding), got {kernel_size}")
        self.dilations = dilations
        self.branches = nn.ModuleList(
            nn.Conv1d(
                channels,
                channels,
                kernel_size,
                dilation=r,
                padding=r * (kernel_size - 1) // 2,
                bias=False,
            )
            for r in dilations
        )
        self.out_channels = channels * (1 + len(dilations))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: [B, d, T] -> each branch [B, d, T] -> concatenation [B, (N+1) d, T]
        return torch.cat([x, *(branch(x) for branch in self.branches)], dim=1)


class TemporalSelfAttention(nn.Module):
    """TSA: a non-local block over time (embedded Gaussian), residual, zero-init output BN.

    Input ``[B, C, T]``; ``z = x + BN(W y)`` with ``y_i = sum_j softmax_j(theta_i . phi_j) g_j``.
    Because the output BN starts with weight and bias 0 the block starts as the identity.
    ``forward`` returns ``(z [B, C, T], attention [B, T, T])``.

    ``scaled``: divide the logits by ``sqrt(C')`` (the Transformer's scaled dot product).
    Not in the paper nor the authors' ``NonLocalBlock1D`` (unscaled, the default here). Why
    it exists: trained on our synthetic sets (ImageNet MobileNetV2, 8 epochs), the unscaled
    logits of a row spanned ~140 (mean over test tracklets), so each row's softmax was one-hot
    (mean row entropy 0.04 of uniform's): every frame received the same single frame, picked
    regardless of occlusion (see ``benchmarks/results/effects.md``).
    """

    def __init__(self, channels: int, inner_channels: int | None = None,
                 scaled: bool = False) -> None:
        super().__init__()
        inner = inner_channels or max(1, channels // TSA_REDUCTION)
        self.scale = inner ** -0.5 if scaled else 1.0
        self.theta = nn.Conv1d(channels, inner, 1)
        self.phi = nn.Conv1d(channels, inner, 1)
        self.g = nn.Conv1d(channels, inner, 1)
        self.W = nn.Sequential(nn.Conv1d(inner, channels, 1), nn.BatchNorm1d(channels))
        nn.init.zeros_(self.W[1].weight)
        nn.init.zeros_(self.W[1].bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        theta = self.theta(x).transpose(1, 2)  # [B, T, C']
        phi = self.phi(x)  # [B, C', T]
        g = self.g(x).transpose(1, 2)  # [B, T, C']
        logits = torch.bmm(theta, phi) * self.scale  # [B, T(i), T(j)]
        attention = F.softmax(logits, dim=-1)  # rows sum to 1
        y = torch.bmm(attention, g).transpose(1, 2)  # [B, C', T]
        return x + self.W(y), attention


class GLTRHead(nn.Module):
    """Frame features ``[B, T, C]`` -> GLTR ``[B, (N+1) d]`` (+ the TSA matrix ``[B, T, T]``)."""

    def __init__(
        self,
        in_channels: int,
        reduced_dim: int = REDUCED_DIM,
        dilations: Sequence[int] = DILATIONS,
        tsa_inner_dim: int | None = None,
        use_dtp: bool = True,
        use_tsa: bool = True,
        tsa_scaled: bool = False,
    ) -> None:
        super().__init__()
        self.reduction = nn.Linear(in_channels, reduced_dim)
        self.dtp = DilatedTemporalPyramid(reduced_dim, dilations) if use_dtp else None
        width = self.dtp.out_channels if self.dtp is not None else reduced_dim
        self.tsa = (TemporalSelfAttention(width, tsa_inner_dim, scaled=tsa_scaled) if use_tsa
                    else None)
        self.out_dim = width

    def init_as_authors(self) -> None:
        """DTP weights N(0, 0.001), the reduction kaiming-normal (fan-out) with zero bias
        (authors' ``resnet.py:72-94``); TSA keeps PyTorch's default."""
        for branch in self.dtp.branches if self.dtp is not None else ():
            nn.init.normal_(branch.weight, std=INIT_STD)
        nn.init.kaiming_normal_(self.reduction.weight, mode="fan_out")
        nn.init.zeros_(self.reduction.bias)

    def forward(self, frame_features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.reduction(frame_features).transpose(1, 2)  # [B, d, T]
        local = self.dtp(f) if self.dtp is not None else f  # [B, 4d, T] (or [B, d, T])
        if self.tsa is None:  # ablation: uniform weights over frames
            t = f.shape[2]
            uniform = f.new_full((f.shape[0], t, t), 1.0 / t)  # [B, T, T]
            return local.mean(dim=2), uniform
        global_local, attention = self.tsa(local)  # [B, 4d, T], [B, T, T]
        return global_local.mean(dim=2), attention  # [B, 4d]


@MODELS.register("gltr")
class GLTR(VideoReIDModel):
    """Backbone + GAP per frame, then the GLTR head (DTP + TSA + temporal mean).

    Args:
        num_classes: training identities (classifier width).
        backbone: a registered backbone name (``resnet50`` in the paper; ``tiny`` for tests).
        weights: optional ImageNet weights file for the backbone (never downloaded).
        last_stride: 1 as in the authors' code.
        reduced_dim: ``d`` (128).
        dilations: DTP dilation rates (``(1, 2, 3)`` as in the authors' code).
        tsa_inner_dim: TSA inner width (default ``(N+1) d / 2``).
        dropout: dropout before the classifier (0.5).
        frame_chunk: in eval mode, run the backbone over at most this many frames at a time
            (None = all at once).
        use_dtp, use_tsa: the paper's ablation (its Table of components): without DTP the
            reduced frame features go to TSA directly; without TSA the (local) features are
            averaged over time with uniform weights. Both off = the paper's baseline: the
            same network and training, temporal average pooling of the reduced features.
        tsa_scaled: TSA logits divided by ``sqrt(C')`` (ours, off by default: see
            :class:`TemporalSelfAttention`).
    """

    def __init__(
        self,
        num_classes: int,
        backbone: str = "resnet50",
        weights: str | None = None,
        last_stride: int = 1,
        reduced_dim: int = REDUCED_DIM,
        dilations: Sequence[int] = DILATIONS,
        tsa_inner_dim: int | None = None,
        dropout: float = DROPOUT,
        frame_chunk: int | None = None,
        use_dtp: bool = True,
        use_tsa: bool = True,
        tsa_scaled: bool = False,
    ) -> None:
        super().__init__()
        if frame_chunk is not None and frame_chunk < 1:
            raise ValueError(
                f"frame_chunk must be a positive number of frames or None, got {frame_chunk}"
            )
        self.backbone = build_backbone(backbone, weights=weights, last_stride=last_stride)
        self.head = GLTRHead(self.backbone.out_channels, reduced_dim, dilations, tsa_inner_dim,
                             use_dtp=use_dtp, use_tsa=use_tsa, tsa_scaled=tsa_scaled)
        self.feature_dim = self.head.out_dim
        self.frame_chunk = frame_chunk
        # Training head (authors' code): BN, ReLU, dropout, linear classifier.
        self.classifier = nn.Sequential(
            nn.BatchNorm1d(self.feature_dim),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(self.feature_dim, num_classes),
        )
        self._init_as_authors()

    def _init_as_authors(self) -> None:
        """The authors' initialisation of the layers after the backbone (``resnet.py:72-94``)."""
        self.head.init_as_authors()
        linear = self.classifier[-1]
        nn.init.normal_(linear.weight, std=INIT_STD)
        nn.init.zeros_(linear.bias)

    def frame_features(self, frames: torch.Tensor) -> torch.Tensor:
        """Backbone + GAP of ``[N, 3, H, W]`` frames -> ``[N, C]`` (chunked in eval mode)."""
        chunk = frames.shape[0] if self.training else (self.frame_chunk or frames.shape[0])
        pooled = [
            self.backbone(frames[start : start + chunk]).mean(dim=(2, 3))  # [n, C, h, w] -> [n, C]
            for start in range(0, frames.shape[0], chunk)
        ]
        return torch.cat(pooled, dim=0)

    def forward(self, clips: torch.Tensor, return_extras: bool = False) -> dict[str, torch.Tensor]:
        if clips.dim() != 5:
            raise ValueError(f"GLTR expects clips [B, T, 3, H, W], got shape {tuple(clips.shape)}")
        b, t = clips.shape[:2]
        frame_features = self.frame_features(clips.flatten(0, 1)).view(b, t, -1)  # [B, T, C]
        gltr, attention = self.head(frame_features)  # [B, 4d], [B, T, T]
        out: dict[str, torch.Tensor] = {"features": gltr}
        if self.training:
            out["logits"] = self.classifier(gltr)  # [B, num_classes]
        if return_extras:
            out["extras"] = {
                "temporal_attention": attention,
                "temporal_weights": attention.mean(dim=1),  # received by frame j: column mean
            }
        return out

    def can_encode_frames(self) -> bool:
        """Frames are encoded independently (backbone + GAP); DTP and TSA mix them."""
        return True

    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """``[N, 3, H, W] -> [N, C]``: backbone + GAP per frame."""
        return self.frame_features(frames)

    def aggregate(self, frame_feats: torch.Tensor) -> torch.Tensor:
        """``[B, T, C] -> [B, 4d]``: the GLTR head (eval-mode descriptor)."""
        return self.head(frame_feats)[0]


@HEADS.register("gltr")
class GLTRTemporalHead(PooledFramesHead):
    """GLTR's temporal module (reduction, DTP, TSA, temporal mean) as a temporal head of
    ``video_baseline``, so GLTR trains with the baselines' recipe (BNNeck, label-smoothed
    softmax + triplet) and differs from the TP row in the temporal module only.

    Ours, not the paper's: the paper trains GLTR with its own BN-ReLU-dropout head
    (:class:`GLTR`); on the effects benchmark that head trained the backbone so much worse
    than TP's recipe (the temporal mean of GLTR's own backbone features 59.8 R1 vs TP's 78.2)
    that a GLTR-vs-TP difference said nothing about DTP and TSA. On TP's recipe this head
    still lost 18.8 R1 [-40.7, 3.1] to TP (3 seeds, heavy occlusion set): the backbone trained
    through the 128-d reduction learned less in 104 steps (its own averaged features 48.1 R1 vs
    TP's 62.3, seed 1), so the gap is the backbone's, not DTP's or TSA's (see
    ``benchmarks/results/effects.md``). Same layers and initialisation as :class:`GLTRHead`. ``[B, T, C, h, w] -> [B, (N+1) d]``; extras as
    :class:`GLTR`'s: ``temporal_attention`` ``[B, T, T]``, ``temporal_weights`` ``[B, T]``.
    """

    def __init__(
        self,
        in_channels: int,
        reduced_dim: int = REDUCED_DIM,
        dilations: Sequence[int] = DILATIONS,
        tsa_inner_dim: int | None = None,
        tsa_scaled: bool = False,
    ) -> None:
        super().__init__()
        self.gltr = GLTRHead(in_channels, reduced_dim, dilations, tsa_inner_dim,
                             tsa_scaled=tsa_scaled)
        self.gltr.init_as_authors()
        self.out_dim = self.gltr.out_dim

    def aggregate(self, fmaps: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        feats, attention = self.gltr(frame_vectors(fmaps))  # [B, 4d], [B, T, T]
        return feats, {"temporal_attention": attention,
                       "temporal_weights": attention.mean(dim=1)}  # received by frame j
