"""OSNet (Zhou et al., "Omni-Scale Feature Learning for Person Re-Identification", ICCV 2019)
as a frame backbone, with torchreid's module names so that its checkpoints load as they are.

Architecture (the paper's Table 1): a 7x7 conv and a max-pool (/4), three stages of two
omni-scale (OS) blocks, the first two followed by a 1x1 conv and a 2x2 average pool
(transition, /2 each), a 1x1 conv (``conv5``), then global average pooling and a fully
connected layer (Linear, BatchNorm1d, ReLU) to a 512-d feature. An OS block has four
streams of 1, 2, 3 and 4 "lite" 3x3 convolutions (1x1 linear + depthwise 3x3) on a 1x1
reduction to a quarter of the channels, fused by a channel gate shared by the streams,
and a residual 1x1 projection.

Departure from the usual backbone contract (maps ``[N, C, h, w]``): with ``fc_dim`` set (the
default, 512 as in torchreid) the output is torchreid's frame feature
``fc(GAP(conv5))`` shaped ``[N, fc_dim, 1, 1]``, so a torchreid checkpoint is the whole frame
encoder (its ``fc.*`` layer included) and a temporal head such as ``tp`` averages torchreid's
frame features over time. ``fc_dim=None`` returns the ``conv5`` maps (16x downsampled) for
methods that need spatial maps; torchreid's ``fc.*`` tensors then have no place.

Total stride is 16, like ResNet-50 with ``last_stride=1``; only ``last_stride=1`` is accepted.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn
from torch.nn import functional as F

from vidreid.models import BACKBONES

# Width multipliers of torchreid's osnet_x1_0 and osnet_x0_25: stem, stage 1..3 channels.
OSNET_CHANNELS = {"osnet_x1_0": (64, 256, 384, 512), "osnet_x0_25": (16, 64, 96, 128)}
BLOCKS_PER_STAGE = 2
STREAMS = 4  # lite-conv depths 1..4: receptive fields 3, 5, 7, 9
BOTTLENECK_REDUCTION = 4
GATE_REDUCTION = 16
FC_DIM = 512


def _conv_bn(in_ch: int, out_ch: int, kernel: int = 1, stride: int = 1, padding: int = 0,
             relu: bool = True) -> nn.Module:
    """conv (no bias), BN, optional ReLU, named ``conv`` / ``bn`` as in torchreid."""
    layers = OrderedDict(conv=nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=padding,
                                        bias=False),
                         bn=nn.BatchNorm2d(out_ch))
    if relu:
        layers["relu"] = nn.ReLU(inplace=True)
    return nn.Sequential(layers)


class LiteConv3x3(nn.Module):
    """1x1 linear conv then depthwise 3x3 conv, BN, ReLU (``conv1``, ``conv2``, ``bn``)."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 1, bias=False)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False, groups=out_ch)
        self.bn = nn.BatchNorm2d(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv2(self.conv1(x))))


class ChannelGate(nn.Module):
    """The unified aggregation gate: GAP -> 1x1 (C/16) -> ReLU -> 1x1 (C) -> sigmoid, a
    per-channel weight of its input (``fc1``, ``fc2``)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, channels // GATE_REDUCTION, 1)
        self.fc2 = nn.Conv2d(channels // GATE_REDUCTION, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = F.adaptive_avg_pool2d(x, 1)
        return x * torch.sigmoid(self.fc2(F.relu(self.fc1(w))))


class OSBlock(nn.Module):
    """Omni-scale residual block: four lite-conv streams (depth 1..4) sharing one gate."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        mid = out_ch // BOTTLENECK_REDUCTION
        self.conv1 = _conv_bn(in_ch, mid)
        self.conv2a = LiteConv3x3(mid, mid)
        self.conv2b = nn.Sequential(*(LiteConv3x3(mid, mid) for _ in range(2)))
        self.conv2c = nn.Sequential(*(LiteConv3x3(mid, mid) for _ in range(3)))
        self.conv2d = nn.Sequential(*(LiteConv3x3(mid, mid) for _ in range(STREAMS)))
        self.gate = ChannelGate(mid)
        self.conv3 = _conv_bn(mid, out_ch, relu=False)
        self.downsample = _conv_bn(in_ch, out_ch, relu=False) if in_ch != out_ch else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.conv1(x)
        fused = sum(self.gate(stream(x1)) for stream in
                    (self.conv2a, self.conv2b, self.conv2c, self.conv2d))
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(self.conv3(fused) + identity)


def _stage(in_ch: int, out_ch: int, transition: bool) -> nn.Sequential:
    blocks: list[nn.Module] = [OSBlock(in_ch, out_ch)]
    blocks += [OSBlock(out_ch, out_ch) for _ in range(BLOCKS_PER_STAGE - 1)]
    if transition:  # 1x1 conv + 2x2 average pool
        blocks.append(nn.Sequential(_conv_bn(out_ch, out_ch), nn.AvgPool2d(2, stride=2)))
    return nn.Sequential(*blocks)


class OSNetBackbone(nn.Module):
    """``[N,3,H,W] -> [N, fc_dim, 1, 1]`` (torchreid's frame feature) or, with
    ``fc_dim=None``, the ``conv5`` maps ``[N, C, H/16, W/16]``."""

    def __init__(self, arch: str, last_stride: int = 1, fc_dim: int | None = FC_DIM) -> None:
        super().__init__()
        if last_stride != 1:
            raise ValueError(f"{arch}: its stride is fixed (16, like last_stride=1); got "
                             f"last_stride={last_stride}")
        stem, c1, c2, c3 = OSNET_CHANNELS[arch]
        self.pretrained_name = arch
        self.conv1 = _conv_bn(3, stem, kernel=7, stride=2, padding=3)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.conv2 = _stage(stem, c1, transition=True)
        self.conv3 = _stage(c1, c2, transition=True)
        self.conv4 = _stage(c2, c3, transition=False)
        self.conv5 = _conv_bn(c3, c3)
        self.fc: nn.Module | None = None
        if fc_dim is not None:
            self.fc = nn.Sequential(nn.Linear(c3, fc_dim), nn.BatchNorm1d(fc_dim),
                                    nn.ReLU(inplace=True))
        self.out_channels: int = fc_dim if fc_dim is not None else c3
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv5(self.conv4(self.conv3(self.conv2(self.maxpool(self.conv1(x))))))
        if self.fc is None:
            return x
        v = self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))  # [N, fc_dim]
        return v[:, :, None, None]


@BACKBONES.register("osnet_x1_0")
def osnet_x1_0(last_stride: int = 1, fc_dim: int | None = FC_DIM) -> OSNetBackbone:
    """OSNet at width x1.0 (2.2 M parameters without classifier); torchreid's key layout."""
    return OSNetBackbone("osnet_x1_0", last_stride, fc_dim)


@BACKBONES.register("osnet_x0_25")
def osnet_x0_25(last_stride: int = 1, fc_dim: int | None = FC_DIM) -> OSNetBackbone:
    """OSNet at width x0.25 (0.2 M parameters without classifier); torchreid's key layout."""
    return OSNetBackbone("osnet_x0_25", last_stride, fc_dim)
