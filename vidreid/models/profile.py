"""Model cost: parameter count and FLOPs per frame (torch's own FLOP counter).

FLOPs follow ``torch.utils.flop_counter.FlopCounterMode``: a multiply-add counts as 2
FLOPs, and only matmul / convolution-like ops are counted (not BN, ReLU, pooling). Many
papers quote multiply-adds as "FLOPs" (ResNet-50 at 224x224: "4.1 GFLOPs"); halve our
figure to compare with those.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

GIGA = 1e9
PROFILE_BATCH = 2  # >1 so that BatchNorm1d in a neck accepts the batch in any mode


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (all, or only those with ``requires_grad``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def gflops_per_frame(
    model: nn.Module, input_size: tuple[int, int] = (256, 128), seq_len: int = 4
) -> float:
    """GFLOPs of one eval-mode forward over ``[B, seq_len, 3, H, W]`` clips, divided by B*T.

    The model is run in eval mode without gradients on zeros (cost does not depend on the
    values) and put back in its previous mode.
    """
    height, width = input_size
    device = next(model.parameters()).device
    clips = torch.zeros(PROFILE_BATCH, seq_len, 3, height, width, device=device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(clips)
    finally:
        model.train(was_training)
    return counter.get_total_flops() / (PROFILE_BATCH * seq_len) / GIGA
