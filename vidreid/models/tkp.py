"""TKP: Temporal Knowledge Propagation for image-to-video person re-ID.

Gu, Ma, Chang, Shan, Chen: "Temporal Knowledge Propagation for Image-to-Video Person
Re-identification", ICCV 2019. Authors' code: ``guxinqian/TKP`` (``models/ResNet.py``,
``models/non_local.py``, ``utils/losses.py``, ``train.py``).

Two networks share one identity classifier (shapes for ``B`` clips of ``T`` frames):

- **image representation network**: ResNet-50 (last stride 1) + global average pooling, run on
  every frame independently: ``[B*T, 3, H, W] -> [B*T, 2048]``;
- **video representation network**: the same architecture (separate weights) with non-local
  blocks after layer2 blocks 1, 3 and layer3 blocks 1, 3, 5 (0-based; embedded Gaussian,
  inner width C/2, (1, 2, 2) max-pool on phi and g, zero-initialised BN on W), so the frames of
  a clip exchange information; per-frame pooled features ``[B, T, 2048]`` and their temporal
  mean, the video feature ``[B, 2048]``;
- **shared classifier**: one linear layer ``2048 -> num_classes`` applied to video features and
  to image features alike (the paper's "two shared weights classifiers").

TKP then makes the image network fit the video network's per-frame features (TKP_F) and
their within-batch distances (TKP_D): see :mod:`vidreid.losses.tkp`.

Outputs of ``forward(clips)``:

- training: ``features`` ``[B, D]`` (video feature), ``logits`` ``[B, K]`` (shared classifier on
  it), ``image_features`` ``[B, T, D]`` (image network on every frame), ``image_logits``
  ``[B, T, K]``, ``video_frame_features`` ``[B, T, D]`` (video network, before the temporal
  mean);
- evaluation: ``features`` = video feature (the video side of every protocol);
  :meth:`TKP.encode_image` = image network (the image side: i2v, v2i, i2i queries/galleries).

Following the authors' code: no BNNeck and no embedding, the raw pooled 2048-d features feed
the losses and the ranking; the classifier has a bias and weights drawn from N(0, 0.001^2);
the non-local theta / phi / g / W convolutions are He-initialised with fan-out (the paper
initialises the blocks "as in [33]"; the authors' ``non_local.py`` does this), their output BN
starts at zero so each block starts as the identity; both ResNets are ImageNet-initialised
(``weights``).

Where we depart or where the paper is silent and the default is ours:

- the backbone is any registered backbone with stages (``backbone``), so tests and CPU runs
  can use ``tiny`` or an ImageNet MobileNetV2; the non-local positions are options, by
  default every other block of the two middle stages (one block for ``tiny``'s one-block
  stages);
- the video network is the same registered backbone with
  :func:`vidreid.models.nonlocal_block.insert_nonlocal` (frames batched as ``[B*T, C, H, W]``,
  the blocks restore the time axis) rather than the authors' inflated 3D ResNet: the
  computation is the same, their inflated convolutions having temporal size 1;
- ``return_extras=True`` adds an empty ``extras`` dict (TKP has no attention maps to show).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from vidreid.models import MODELS, build_backbone
from vidreid.models.base import VideoReIDModel, clip_length
from vidreid.models.nonlocal_block import NonLocalBlock, insert_nonlocal

CLASSIFIER_INIT_STD = 0.001  # authors' weights_init_classifier


def init_nonlocal_convs(module: nn.Module) -> None:
    """He (fan-out) init of every non-local block's theta / phi / g / W convolutions.

    Wang et al.'s initialisation (the authors' ``non_local.py``); the zero init of the BN on W
    (done by :class:`NonLocalBlock`) is untouched, so the blocks still start as identities.
    """
    for block in module.modules():
        if isinstance(block, NonLocalBlock):
            for conv in (block.theta, block.phi, block.g, block.W[0]):
                nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")


def _blocks(blocks: Sequence[int] | None) -> tuple[int, ...] | None:
    return None if blocks is None else tuple(blocks)


@MODELS.register("tkp")
class TKP(VideoReIDModel):
    """Image network + non-local video network + one shared classifier (see module docstring).

    Args:
        num_classes: training identities (width of the shared classifier).
        backbone: registered backbone of both networks with the stage protocol (paper:
            ``resnet50``; any of ours, e.g. ``mobilenetv2``, ``tiny``).
        weights: local pretrained file loaded into both backbones (ImageNet), or None.
        last_stride: stride of layer4 (paper: 1).
        layer2_blocks, layer3_blocks: 0-based blocks of the middle stages (stage 1 and 2,
            ResNet's layer2 / layer3) followed by a non-local block in the video network;
            None (default) = every other block: the paper's (1, 3) and (1, 3, 5) on ResNet-50.
        nonlocal_sub_sample: (1, 2, 2) max-pool on phi and g (paper: True).
    """

    def __init__(
        self,
        num_classes: int,
        backbone: str = "resnet50",
        weights: str | None = None,
        last_stride: int = 1,
        layer2_blocks: Sequence[int] | None = None,
        layer3_blocks: Sequence[int] | None = None,
        nonlocal_sub_sample: bool = True,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.image_net = build_backbone(backbone, weights=weights, last_stride=last_stride)
        self.video_net = build_backbone(backbone, weights=weights, last_stride=last_stride)
        insert_nonlocal(
            self.video_net, _blocks(layer2_blocks), _blocks(layer3_blocks),
            sub_sample=nonlocal_sub_sample,
        )
        init_nonlocal_convs(self.video_net)
        self.feature_dim = self.image_net.out_channels
        self.classifier = nn.Linear(self.feature_dim, num_classes)  # shared by both networks
        nn.init.normal_(self.classifier.weight, std=CLASSIFIER_INIT_STD)
        nn.init.zeros_(self.classifier.bias)
        self.pool = nn.AdaptiveAvgPool2d(1)

    @staticmethod
    def _check(clips: torch.Tensor) -> None:
        if clips.dim() != 5 or clips.shape[2] != 3:
            raise ValueError(f"expected clips [B, T, 3, H, W], got shape {tuple(clips.shape)}")

    def image_frame_features(self, frames: torch.Tensor) -> torch.Tensor:
        """Image network: ``[N, 3, H, W] -> [N, D]`` (frames independent)."""
        return self.pool(self.image_net(frames)).flatten(1)

    def video_frame_features(self, clips: torch.Tensor) -> torch.Tensor:
        """Video network per frame: ``[B, T, 3, H, W] -> [B, T, D]`` (frames of a clip mixed)."""
        b, t = clips.shape[:2]
        with clip_length(self.video_net, t):
            maps = self.video_net(clips.flatten(0, 1))  # [B*T, D, h, w]
        return self.pool(maps).flatten(1).reshape(b, t, -1)  # [B, T, D]

    def forward(self, clips: torch.Tensor, return_extras: bool = False) -> dict[str, torch.Tensor]:
        self._check(clips)
        b, t = clips.shape[:2]
        frame_feats = self.video_frame_features(clips)  # [B, T, D]
        video_feat = frame_feats.mean(dim=1)  # [B, D] temporal average pooling
        out: dict[str, torch.Tensor] = {"features": video_feat}
        if self.training:
            image_feats = self.image_frame_features(clips.flatten(0, 1))  # [B*T, D]
            image_feats = image_feats.reshape(b, t, -1)  # [B, T, D]
            out.update(
                logits=self.classifier(video_feat),  # [B, K]
                image_features=image_feats,
                image_logits=self.classifier(image_feats),  # [B, T, K]
                video_frame_features=frame_feats,
            )
        if return_extras:
            out["extras"] = {}
        return out

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """Image-side descriptor ``[B, 3, H, W] -> [B, D]`` (the image network)."""
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images [B, 3, H, W], got shape {tuple(images.shape)}")
        return self.image_frame_features(images)
