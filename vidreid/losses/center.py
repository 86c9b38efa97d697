"""Center loss (Wen et al., "A Discriminative Feature Learning Approach for Deep Face
Recognition", ECCV 2016)."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from vidreid.losses import LOSSES
from vidreid.losses.criterion import LossTerm


@LOSSES.register("center")
class CenterLoss(LossTerm):
    """Reads ``outputs["features"]`` ``[B, feat_dim]`` and ``pids`` in ``0..num_classes-1``.

    ``L_C = 1/2 * mean_i ||x_i - c_{y_i}||^2`` (Wen et al.'s 1/2, averaged over the batch).
    The centers ``[num_classes, feat_dim]`` are a parameter learned by gradient descent (the
    criterion's ``.parameters()`` includes them); Bag-of-Tricks trains them with their own
    SGD (lr 0.5) and a loss weight of 0.0005.
    """

    def __init__(self, num_classes: int, feat_dim: int) -> None:
        super().__init__()
        self.centers = nn.Parameter(torch.randn(num_classes, feat_dim))

    def forward(self, outputs: Mapping[str, torch.Tensor], pids: torch.Tensor) -> torch.Tensor:
        features = self.read(outputs, "features")
        num_classes, feat_dim = self.centers.shape
        if features.shape[1] != feat_dim:
            raise ValueError(
                f"center loss was built with feat_dim={feat_dim} but the features are "
                f"{features.shape[1]}-d; set feat_dim to the model's feature_dim"
            )
        if pids.numel() and (int(pids.min()) < 0 or int(pids.max()) >= num_classes):
            raise ValueError(
                f"center loss: pids must be in 0..{num_classes - 1}, got "
                f"{int(pids.min())}..{int(pids.max())}"
            )
        diff = features - self.centers[pids]  # [B, D]
        return 0.5 * diff.pow(2).sum(dim=1).mean()
