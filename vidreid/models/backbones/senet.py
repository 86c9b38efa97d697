"""SE-ResNet-50 (Hu et al., "Squeeze-and-Excitation Networks", CVPR 2018).

A ResNet-50 whose bottleneck rescales its residual branch's channels by a gate computed from
the branch's global average (squeeze: GAP; excitation: 1x1 conv C -> C/16, ReLU, 1x1 conv
C/16 -> C, sigmoid) before the identity is added.

Module names follow the common pretrained file (Cadene's ``pretrainedmodels``
``se_resnet50-ce0d4300.pth``: ``layer0.conv1``, ``layer1.0.se_module.fc1``,
``downsample.0/1``, ``last_linear``) except that ``layer0`` is called ``stem`` like our other
ResNets; :meth:`SEResNet50.remap_state_dict` does that rename. As in that file (Caffe
style), a strided block puts its stride on the first 1x1 conv, not the 3x3 one as
torchvision's ResNet v1.5 does: the pretrained weights were trained that way.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from vidreid.models import BACKBONES
from vidreid.models.backbones.stages import STAGE_NAMES

SE_REDUCTION = 16  # Hu et al.: bottleneck ratio r of the excitation MLP
EXPANSION = 4  # bottleneck output channels = 4 x planes
STEM_CHANNELS = 64
LAYER_PLANES = (64, 128, 256, 512)
LAYER_BLOCKS = (3, 4, 6, 3)  # ResNet-50 depth


class SEModule(nn.Module):
    """Squeeze-and-excitation gate: ``x * sigmoid(fc2(relu(fc1(GAP(x)))))``; fc = 1x1 convs."""

    def __init__(self, channels: int, reduction: int = SE_REDUCTION) -> None:
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, channels // reduction, kernel_size=1)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(channels // reduction, channels, kernel_size=1)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.sigmoid(self.fc2(self.relu(self.fc1(self.avg_pool(x)))))  # [N, C, 1, 1]
        return x * gate


class SEBottleneck(nn.Module):
    """1x1 (stride) -> 3x3 -> 1x1 (x4) bottleneck with an SE gate on the residual branch."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        out = planes * EXPANSION
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, stride=stride, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        self.se_module = SEModule(out)
        self.downsample: nn.Module | None = None
        if stride != 1 or inplanes != out:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, out, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(out),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(self.se_module(out) + identity)


class SEResNet50(nn.Module):
    """SE-ResNet-50 without classifier: ``[N,3,H,W] -> [N,2048,H/s,W/s]``, s = 16 or 32."""

    pretrained_name = "se_resnet50"

    def __init__(self, last_stride: int = 1) -> None:
        super().__init__()
        if last_stride not in (1, 2):
            raise ValueError(f"last_stride must be 1 or 2, got {last_stride!r}")
        self.stem = nn.Sequential(
            OrderedDict(
                conv1=nn.Conv2d(3, STEM_CHANNELS, 7, stride=2, padding=3, bias=False),
                bn1=nn.BatchNorm2d(STEM_CHANNELS),
                relu1=nn.ReLU(inplace=True),
                pool=nn.MaxPool2d(3, stride=2, ceil_mode=True),
            )
        )
        strides = (1, 2, 2, last_stride)
        inplanes = STEM_CHANNELS
        layers = []
        for planes, blocks, stride in zip(LAYER_PLANES, LAYER_BLOCKS, strides, strict=True):
            seq = [SEBottleneck(inplanes, planes, stride)]
            inplanes = planes * EXPANSION
            seq += [SEBottleneck(inplanes, planes) for _ in range(blocks - 1)]
            layers.append(nn.Sequential(*seq))
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.stage_names: tuple[str, ...] = STAGE_NAMES  # the stage protocol (stages.py)
        self.stage_channels: tuple[int, ...] = tuple(p * EXPANSION for p in LAYER_PLANES)
        self.out_channels: int = inplanes
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @staticmethod
    def remap_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Cadene ``pretrainedmodels`` keys -> ours: ``layer0.*`` becomes ``stem.*``."""
        return {
            ("stem." + k[len("layer0.") :] if k.startswith("layer0.") else k): v
            for k, v in state_dict.items()
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)  # [N, 64, H/4, W/4]
        x = self.layer1(x)  # [N, 256, H/4, W/4]
        x = self.layer2(x)  # [N, 512, H/8, W/8]
        x = self.layer3(x)  # [N, 1024, H/16, W/16]
        return self.layer4(x)  # [N, 2048, H/s, W/s]


@BACKBONES.register("se_resnet50")
def se_resnet50(last_stride: int = 1) -> SEResNet50:
    """SE-ResNet-50 (2048 channels), Cadene-compatible weights layout."""
    return SEResNet50(last_stride)
