"""BNNeck (Luo et al., "Bag of Tricks and a Strong Baseline for Deep Person Re-ID", 2019).

A BatchNorm1d (bias frozen at 0) between the feature and the bias-free classifier: the
triplet loss works on the feature before BN (free Euclidean space), the ID loss on the
normalised feature after BN (near a hypersphere), which lets the two losses stop
fighting each other. At test time the post-BN feature is used (``neck_feat="after"``).
"""

from __future__ import annotations

import torch
from torch import nn

CLASSIFIER_INIT_STD = 0.001  # Luo et al.'s weights_init_classifier


class BNNeck(nn.Module):
    """``feature [B, D] -> {"features": [B, D], "logits": [B, K]}`` (logits only in training).

    Training returns the pre-BN feature (for triplet / center losses) and logits of the
    post-BN feature; evaluation returns the post-BN feature (``neck_feat="after"``) or the
    pre-BN one (``"before"``).
    """

    def __init__(self, in_dim: int, num_classes: int, neck_feat: str = "after") -> None:
        super().__init__()
        if neck_feat not in ("after", "before"):
            raise ValueError(f"neck_feat must be 'after' or 'before', got {neck_feat!r}")
        self.neck_feat = neck_feat
        self.bn = nn.BatchNorm1d(in_dim)
        self.bn.bias.requires_grad_(False)  # no shift: keeps the BN feature centred
        nn.init.ones_(self.bn.weight)
        nn.init.zeros_(self.bn.bias)
        self.classifier = nn.Linear(in_dim, num_classes, bias=False)
        nn.init.normal_(self.classifier.weight, std=CLASSIFIER_INIT_STD)

    def forward(self, feat: torch.Tensor) -> dict[str, torch.Tensor]:
        bn_feat = self.bn(feat)  # [B, D]
        if self.training:
            return {"features": feat, "logits": self.classifier(bn_feat)}
        return {"features": bn_feat if self.neck_feat == "after" else feat}
