"""ResNet-18/34/50 backbones from torchvision, with the re-ID "last stride 1" option.

The torchvision network is reorganised as ``stem`` (conv1, bn1, relu, maxpool) followed by
``layer1`` .. ``layer4`` so that methods can insert modules between stages or blocks;
``forward`` returns the layer4 feature map. Torchvision's ImageNet ``.pth`` files load via
:meth:`ResNetBackbone.remap_state_dict` (``conv1.*`` -> ``stem.conv1.*``, ``fc.*`` ignored).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import torch
from torch import nn
from torchvision import models as tvm
from torchvision.models.resnet import Bottleneck

from vidreid.models import BACKBONES
from vidreid.models.backbones.stages import STAGE_NAMES


def set_last_stride(layer4: nn.Sequential, stride: int) -> None:
    """Set the stride of layer4's first block (its strided conv and its downsample).

    ``stride=1`` is the re-ID convention (Luo et al. 2019, "Bag of Tricks"): the final map is
    16x8 instead of 8x4 for a 256x128 input, at the cost of 4x the layer4 FLOPs.
    """
    if stride not in (1, 2):
        raise ValueError(f"last_stride must be 1 or 2, got {stride!r}")
    first = layer4[0]
    # torchvision puts the stride on conv2 in Bottleneck (ResNet v1.5), on conv1 in BasicBlock.
    strided = first.conv2 if isinstance(first, Bottleneck) else first.conv1
    strided.stride = (stride, stride)
    if first.downsample is not None:
        first.downsample[0].stride = (stride, stride)


def _block_out_channels(block: nn.Module) -> int:
    return block.bn3.num_features if isinstance(block, Bottleneck) else block.bn2.num_features


class ResNetBackbone(nn.Module):
    """A torchvision ResNet without its classifier: ``[N,3,H,W] -> [N,C,H/s,W/s]``.

    ``s`` is 16 with ``last_stride=1``, 32 with ``last_stride=2``; ``C`` is 2048 for
    ResNet-50 and 512 for ResNet-18/34.
    """

    def __init__(
        self, arch: Callable[..., tvm.ResNet], pretrained_name: str, last_stride: int = 1
    ) -> None:
        super().__init__()
        net = arch(weights=None)  # weights come only from local files (load_pretrained)
        self.pretrained_name = pretrained_name
        self.stem = nn.Sequential(
            OrderedDict(conv1=net.conv1, bn1=net.bn1, relu=net.relu, maxpool=net.maxpool)
        )
        self.layer1, self.layer2, self.layer3, self.layer4 = (
            net.layer1,
            net.layer2,
            net.layer3,
            net.layer4,
        )
        set_last_stride(self.layer4, last_stride)
        self.stage_names: tuple[str, ...] = STAGE_NAMES  # the stage protocol (stages.py)
        self.stage_channels: tuple[int, ...] = tuple(
            _block_out_channels(layer[-1])
            for layer in (self.layer1, self.layer2, self.layer3, self.layer4)
        )
        self.out_channels: int = self.stage_channels[-1]

    @staticmethod
    def remap_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Torchvision ResNet keys -> ours: ``conv1.*`` and ``bn1.*`` move under ``stem.``."""
        out = {}
        for key, value in state_dict.items():
            if key.startswith(("conv1.", "bn1.")):
                key = "stem." + key
            out[key] = value
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)  # [N, 64, H/4, W/4]
        x = self.layer1(x)  # [N, 64 or 256, H/4, W/4]
        x = self.layer2(x)  # [N, 128 or 512, H/8, W/8]
        x = self.layer3(x)  # [N, 256 or 1024, H/16, W/16]
        return self.layer4(x)  # [N, C, H/s, W/s]


@BACKBONES.register("resnet50")
def resnet50(last_stride: int = 1) -> ResNetBackbone:
    """ResNet-50 (2048 channels)."""
    return ResNetBackbone(tvm.resnet50, "resnet50", last_stride)


@BACKBONES.register("resnet34")
def resnet34(last_stride: int = 1) -> ResNetBackbone:
    """ResNet-34 (512 channels)."""
    return ResNetBackbone(tvm.resnet34, "resnet34", last_stride)


@BACKBONES.register("resnet18")
def resnet18(last_stride: int = 1) -> ResNetBackbone:
    """ResNet-18 (512 channels)."""
    return ResNetBackbone(tvm.resnet18, "resnet18", last_stride)


__all__ = ["ResNetBackbone", "set_last_stride", "resnet50", "resnet34", "resnet18"]
