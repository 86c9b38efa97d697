"""``tiny``: a small CPU-friendly CNN for tests and the demo.

Laid out like our ResNets (``stem``, ``layer1`` .. ``layer4``, each layer an ``nn.Sequential``
of blocks) so that code written for ResNet stages also runs on it, just with one block per
layer. Each block is conv3x3-BN-ReLU.

Cost (measured with :mod:`vidreid.models.profile`): 0.40 M parameters (ResNet-50: 23.5 M);
at 256x128 with ``last_stride=1`` (16x8 map, like ResNet-50 with last stride 1) 0.165
GFLOPs per frame (torch's count, 2 per multiply-add) against 8.1 for ResNet-50; at 128x64,
0.041.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from vidreid.models import BACKBONES
from vidreid.models.backbones.stages import STAGE_NAMES

STEM_CHANNELS = 32
STAGE_CHANNELS = (32, 64, 128, 256)  # output channels of layer1..layer4


def conv_bn_relu(in_ch: int, out_ch: int, stride: int = 1) -> nn.Sequential:
    """3x3 conv (no bias: BN follows), BatchNorm, ReLU."""
    return nn.Sequential(
        OrderedDict(
            conv=nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False),
            bn=nn.BatchNorm2d(out_ch),
            relu=nn.ReLU(inplace=True),
        )
    )


class TinyBackbone(nn.Module):
    """``[N,3,H,W] -> [N,256,H/s,W/s]`` with s = 16 (``last_stride=1``) or 32 (``=2``)."""

    pretrained_name = "tiny"

    def __init__(self, last_stride: int = 1) -> None:
        super().__init__()
        if last_stride not in (1, 2):
            raise ValueError(f"last_stride must be 1 or 2, got {last_stride!r}")
        # Stem: /4 like ResNet's (conv stride 2 + max-pool stride 2).
        self.stem = nn.Sequential(
            conv_bn_relu(3, STEM_CHANNELS, stride=2), nn.MaxPool2d(3, stride=2, padding=1)
        )
        strides = (1, 2, 2, last_stride)
        in_ch = STEM_CHANNELS
        layers = []
        for out_ch, stride in zip(STAGE_CHANNELS, strides, strict=True):
            layers.append(nn.Sequential(conv_bn_relu(in_ch, out_ch, stride)))
            in_ch = out_ch
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.stage_names: tuple[str, ...] = STAGE_NAMES  # the stage protocol (stages.py)
        self.stage_channels: tuple[int, ...] = STAGE_CHANNELS
        self.out_channels: int = STAGE_CHANNELS[-1]
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)  # [N, 32, H/4, W/4]
        x = self.layer1(x)  # [N, 32, H/4, W/4]
        x = self.layer2(x)  # [N, 64, H/8, W/8]
        x = self.layer3(x)  # [N, 128, H/16, W/16]
        return self.layer4(x)  # [N, 256, H/s, W/s]


@BACKBONES.register("tiny")
def tiny(last_stride: int = 1) -> TinyBackbone:
    """The small test/demo CNN (256 channels)."""
    return TinyBackbone(last_stride)
