"""TKP's loss terms (Gu et al., "Temporal Knowledge Propagation for Image-to-Video Person
Re-identification", ICCV 2019; authors' code ``guxinqian/TKP`` ``utils/losses.py``, ``train.py``).

The paper's objective is ``L = L_C + L_T + L_TKP^D + L_TKP^F`` with all weights 1; each part is
one term here, so a config weights (or drops, with weight 0) each one:

- ``tkp_cross_entropy`` (``L_C``): the shared classifier's cross-entropy on the video features
  plus on the image features of every frame;
- ``integrated_triplet`` (``L_T``): batch-hard triplet losses I2V + V2I + I2I + V2V in the shared
  space (anchors of one modality, positives / negatives of the other);
- ``tkp_feature`` (``L_TKP^F``): the image network fits the video network's per-frame features;
- ``tkp_distance`` (``L_TKP^D``): the image network's within-batch distance matrix fits the video
  network's.

The TKP terms do not back-propagate into the video network by default (the paper: updating
it by TKP would drive the non-local blocks to zero and destroy the temporal knowledge being
propagated); ``backprop_to_video=True`` lets the gradient through (the paper's ablation).

All terms read the outputs of :class:`vidreid.models.tkp.TKP` in training mode:
``features`` ``[B, D]`` (video), ``logits`` ``[B, K]``, ``image_features`` ``[B, T, D]``,
``image_logits`` ``[B, T, K]``, ``video_frame_features`` ``[B, T, D]``. Frame-level terms use the
clip's pid for each of its ``T`` frames. Distances are Euclidean and computed in float32 (the
terms may run under bf16 autocast).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F

from vidreid.losses import LOSSES
from vidreid.losses.criterion import LossTerm
from vidreid.losses.cross_entropy import CrossEntropyLoss

TRIPLET_MARGIN = 0.3  # paper and authors' code
TRIPLET_PAIRS = ("i2v", "v2i", "i2i", "v2v")  # anchor modality, then gallery modality


def frame_pids(pids: torch.Tensor, num_frames: int) -> torch.Tensor:
    """Each clip's pid repeated for its ``num_frames`` frames: ``[B] -> [B*T]`` (clip-major)."""
    return pids.repeat_interleave(num_frames)


def _flat_frames(term: LossTerm, outputs: Mapping[str, torch.Tensor], key: str) -> torch.Tensor:
    """``outputs[key]`` ``[B, T, D] -> [B*T, D]`` (float32), with a clear error on other shapes."""
    x = term.read(outputs, key)
    if x.dim() != 3:
        raise ValueError(
            f"loss term {type(term).__name__}: outputs[{key!r}] must be [B, T, D] per-frame "
            f"features, got shape {tuple(x.shape)}"
        )
    return x.flatten(0, 1).float()


def cross_batch_hard(
    anchors: torch.Tensor, anchor_pids: torch.Tensor, others: torch.Tensor, other_pids: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Heterogeneous batch-hard mining (Hermans et al. 2017 across two feature sets).

    For each anchor ``[M, D]``: the Euclidean distance to its farthest same-pid row of
    ``others`` ``[N, D]`` and to its nearest other-pid row, and whether it has both (valid).
    With ``others is anchors`` this is the usual batch-hard (the anchor is its own positive).
    """
    dist = torch.cdist(anchors, others)  # [M, N]
    same = anchor_pids.unsqueeze(1) == other_pids.unsqueeze(0)  # [M, N]
    hardest_pos = dist.masked_fill(~same, float("-inf")).amax(dim=1)  # [M]
    hardest_neg = dist.masked_fill(same, float("inf")).amin(dim=1)  # [M]
    valid = same.any(dim=1) & (~same).any(dim=1)
    return hardest_pos, hardest_neg, valid


@LOSSES.register("tkp_cross_entropy")
class TKPCrossEntropy(LossTerm):
    """``L_C = CE(logits, pids) + CE(image_logits, frame pids)`` (shared classifier on both).

    The authors use plain cross-entropy (``label_smoothing=0``, the default here). The image
    term averages over the ``B*T`` frames, as the authors' code.
    """

    def __init__(self, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.ce = CrossEntropyLoss(label_smoothing=label_smoothing)

    def forward(self, outputs: Mapping[str, torch.Tensor], pids: torch.Tensor) -> torch.Tensor:
        image_logits = _flat_frames(self, outputs, "image_logits")  # [B*T, K]
        num_frames = self.read(outputs, "image_logits").shape[1]
        video = self.ce({"logits": self.read(outputs, "logits")}, pids)
        image = self.ce({"logits": image_logits}, frame_pids(pids, num_frames))
        return video + image


@LOSSES.register("integrated_triplet")
class IntegratedTriplet(LossTerm):
    """``L_T = L_I2V + L_V2I + L_I2I + L_V2V``: batch-hard triplet losses across modalities.

    Images are the ``B*T`` frames' image features, videos the ``B`` video features. For
    ``"i2v"`` each image anchor mines its hardest positive / negative among the videos, and so
    on. Each part is ``mean(relu(d(a, p) - d(a, n) + margin))`` over its valid anchors (a batch
    of one identity has no negative and gives 0). ``pairs`` selects a subset (default: all four).
    """

    def __init__(
        self, margin: float = TRIPLET_MARGIN, pairs: Sequence[str] = TRIPLET_PAIRS
    ) -> None:
        super().__init__()
        bad = [p for p in pairs if p not in TRIPLET_PAIRS]
        if bad or not pairs:
            raise ValueError(
                f"integrated_triplet pairs must be a non-empty subset of {TRIPLET_PAIRS}, "
                f"got {list(pairs)}"
            )
        if margin < 0:
            raise ValueError(f"integrated_triplet margin must be >= 0, got {margin}")
        self.margin = margin
        self.pairs = tuple(pairs)

    def forward(self, outputs: Mapping[str, torch.Tensor], pids: torch.Tensor) -> torch.Tensor:
        video = self.read(outputs, "features").float()  # [B, D]
        image = _flat_frames(self, outputs, "image_features")  # [B*T, D]
        num_frames = image.shape[0] // max(video.shape[0], 1)
        sides = {"v": (video, pids), "i": (image, frame_pids(pids, num_frames))}
        total = video.sum() * 0.0 + image.sum() * 0.0  # keeps the graph if no anchor is valid
        for pair in self.pairs:
            (a, a_pids), (o, o_pids) = sides[pair[0]], sides[pair[2]]
            d_pos, d_neg, valid = cross_batch_hard(a, a_pids, o, o_pids)
            if bool(valid.any()):
                total = total + F.relu(d_pos[valid] - d_neg[valid] + self.margin).mean()
        return total


class _TKPTerm(LossTerm):
    """Shared part of TKP_F / TKP_D: read and check the two per-frame feature sets."""

    def __init__(self, backprop_to_video: bool = False) -> None:
        super().__init__()
        self.backprop_to_video = backprop_to_video

    def frame_features(
        self, outputs: Mapping[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(image [B*T, D], video [B*T, D])``; video detached unless ``backprop_to_video``."""
        image = _flat_frames(self, outputs, "image_features")
        video = _flat_frames(self, outputs, "video_frame_features")
        if image.shape != video.shape:
            raise ValueError(
                f"loss term {type(self).__name__}: image_features and video_frame_features "
                f"must have the same shape, got {tuple(image.shape)} and {tuple(video.shape)}"
            )
        if not self.backprop_to_video:
            video = video.detach()  # TKP teaches the image network only
        return image, video


@LOSSES.register("tkp_feature")
class TKPFeature(_TKPTerm):
    """``L_TKP^F = 1/(B*T) sum_i ||f_img(x_i) - f_vid(x_i)||_2^2`` over every frame ``x_i``."""

    def forward(self, outputs: Mapping[str, torch.Tensor], pids: torch.Tensor) -> torch.Tensor:
        image, video = self.frame_features(outputs)
        return (image - video).pow(2).sum(dim=1).mean()


@LOSSES.register("tkp_distance")
class TKPDistance(_TKPTerm):
    """``L_TKP^D = 1/(B*T)^2 sum_ij (D_img[i, j] - D_vid[i, j])^2`` over the batch's frames.

    ``D`` are the Euclidean distance matrices ``[B*T, B*T]`` of each network's per-frame
    features.
    """

    def forward(self, outputs: Mapping[str, torch.Tensor], pids: torch.Tensor) -> torch.Tensor:
        image, video = self.frame_features(outputs)
        return (torch.cdist(image, image) - torch.cdist(video, video)).pow(2).mean()
