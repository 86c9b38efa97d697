"""Batch-hard triplet loss (Hermans, Beyer & Leibe, "In Defense of the Triplet Loss", 2017)."""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F

from vidreid.losses import LOSSES
from vidreid.losses.criterion import LossTerm


def batch_hard(
    features: torch.Tensor, pids: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per anchor: distance to its hardest positive and hardest negative, and a validity mask.

    Euclidean distances ``[B, B]``; hardest positive = farthest same-pid sample (the anchor
    itself counts, at distance 0, so an identity with one sample is its own positive);
    hardest negative = nearest other-pid sample. Anchors without any negative are invalid.
    """
    dist = torch.cdist(features, features)  # [B, B]
    same = pids.unsqueeze(0) == pids.unsqueeze(1)  # [B, B]
    hardest_pos = dist.masked_fill(~same, float("-inf")).amax(dim=1)  # [B]
    hardest_neg = dist.masked_fill(same, float("inf")).amin(dim=1)  # [B]
    valid = (~same).any(dim=1)
    return hardest_pos, hardest_neg, valid


@LOSSES.register("triplet")
class TripletLoss(LossTerm):
    """Reads ``outputs["features"]`` ``[B, D]`` (pre-BNNeck in training) and ``pids``.

    ``mean(relu(d(a, p) - d(a, n) + margin))`` over anchors with batch-hard mining, or the
    soft margin ``mean(softplus(d(a, p) - d(a, n)))`` when ``margin=None`` or ``soft=True``.
    ``normalize_feature`` L2-normalises the features first. Anchors whose identity fills
    the whole batch (no negative) are skipped; a batch without any negative gives 0.
    """

    def __init__(
        self, margin: float | None = 0.3, soft: bool = False, normalize_feature: bool = False
    ) -> None:
        super().__init__()
        self.margin = None if soft else margin
        self.normalize_feature = normalize_feature

    def forward(self, outputs: Mapping[str, torch.Tensor], pids: torch.Tensor) -> torch.Tensor:
        features = self.read(outputs, "features")
        if self.normalize_feature:
            features = F.normalize(features, dim=1)
        d_pos, d_neg, valid = batch_hard(features, pids)
        if not bool(valid.any()):
            return features.sum() * 0.0  # keeps the graph; no information in this batch
        diff = d_pos[valid] - d_neg[valid]
        if self.margin is None:
            return F.softplus(diff).mean()
        return F.relu(diff + self.margin).mean()
