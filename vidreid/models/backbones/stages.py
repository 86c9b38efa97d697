"""The stage protocol: how methods find where to insert modules in any backbone.

A *staged* backbone has

- ``stem``: the layers before the first stage;
- ``stage_names``: the attribute names of its stages, in order (``("layer1", ..., "layer4")``
  for every backbone of this package), each stage an ``nn.Sequential`` of blocks;
- ``stage_channels``: the output channels of each stage;

and its ``forward`` is ``stem`` followed by the stages. Methods insert their modules *into*
the stage Sequentials under new names (``layer3.cosam``, ``layer2.nonlocal1``), so the keys of
the backbone's own tensors never change and pretrained weights and checkpoints keep loading.
The stages are found by name rather than kept in an ``nn.ModuleList``: a second registration
of the same modules would duplicate every key of the state dict.

Placement is by stage index: COSAM after the last two stages, non-local blocks inside the
middle ones (:mod:`vidreid.models.cosam`, :mod:`vidreid.models.nonlocal_block`).
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

#: Stage names of every backbone of this package (ResNet's; MobileNetV2 groups its blocks
#: into four stages of the same strides, /4 /8 /16 /32).
STAGE_NAMES = ("layer1", "layer2", "layer3", "layer4")


def stage_names(backbone: nn.Module, what: str) -> tuple[str, ...]:
    """The backbone's stage names, or a ``ValueError`` saying ``what`` needs them."""
    names = getattr(backbone, "stage_names", None)
    channels = getattr(backbone, "stage_channels", None)
    if not names or channels is None or len(names) != len(channels) or not all(
        isinstance(getattr(backbone, n, None), nn.Sequential) for n in names
    ):
        raise ValueError(
            f"{what} needs a backbone with stages (stem, stage_names, stage_channels, each "
            f"stage an nn.Sequential: see vidreid/models/backbones/stages.py); "
            f"{type(backbone).__name__} has none"
        )
    return tuple(names)


def block_out_channels(block: nn.Module) -> int:
    """Output channels of one block of a stage: the width of its last BatchNorm.

    Holds for every block of our backbones (ResNet basic / bottleneck blocks, whose
    ``downsample`` BN has the block's output width too, SE bottlenecks, MobileNetV2's
    inverted residuals and final 1x1 conv, ``tiny``'s conv-BN-ReLU).
    """
    norms = [m for m in block.modules() if isinstance(m, nn.BatchNorm2d)]
    if not norms:
        raise ValueError(f"cannot tell the output channels of block {type(block).__name__}")
    return norms[-1].num_features


def insert_after_blocks(
    stage: nn.Sequential, after: dict[int, tuple[str, nn.Module]]
) -> nn.Sequential:
    """A new Sequential: ``stage``'s children, each ``after[i]`` = (name, module) following
    the ``i``-th original child. Original children keep their names (hence their keys)."""
    items: list[tuple[str, nn.Module]] = []
    for i, (name, block) in enumerate(stage.named_children()):
        items.append((name, block))
        if i in after:
            items.append(after[i])
    return nn.Sequential(OrderedDict(items))


def default_block_positions(num_blocks: int) -> tuple[int, ...]:
    """Every other block (0-based 1, 3, 5, ...), or the only block of a one-block stage.

    Wang et al. put non-local blocks after every other residual block; for ResNet-50 this
    gives TKP's positions (layer2: 1, 3; layer3: 1, 3, 5).
    """
    return (0,) if num_blocks == 1 else tuple(range(1, num_blocks, 2))


__all__ = [
    "STAGE_NAMES",
    "block_out_channels",
    "default_block_positions",
    "insert_after_blocks",
    "stage_names",
]
