"""Cross-entropy ID loss with label smoothing (Szegedy et al. 2016; re-ID: Luo et al. 2019)."""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F

from vidreid.losses import LOSSES
from vidreid.losses.criterion import LossTerm


@LOSSES.register("cross_entropy")
class CrossEntropyLoss(LossTerm):
    """Reads ``outputs["logits"]`` ``[B, K]``; targets ``pids`` ``[B]`` in ``0..K-1``.

    With smoothing epsilon the target is ``(1 - eps) * onehot + eps / K`` (torch's
    ``label_smoothing``); epsilon 0.1 is the usual re-ID setting, 0 gives plain CE.
    """

    def __init__(self, label_smoothing: float = 0.1) -> None:
        super().__init__()
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self.label_smoothing = label_smoothing

    def forward(self, outputs: Mapping[str, torch.Tensor], pids: torch.Tensor) -> torch.Tensor:
        logits = self.read(outputs, "logits")
        num_classes = logits.shape[1]
        if pids.numel() and (int(pids.min()) < 0 or int(pids.max()) >= num_classes):
            raise ValueError(
                f"cross_entropy: pids must be train labels in 0..{num_classes - 1}, got "
                f"range {int(pids.min())}..{int(pids.max())}; relabel the train split or set "
                f"num_classes to the number of train identities"
            )
        return F.cross_entropy(logits, pids, label_smoothing=self.label_smoothing)
