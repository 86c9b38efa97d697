"""vidreid: video-based person re-identification on one shared, tested core."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vidreid.retrieval.extractor import FeatureExtractor

__version__ = "0.1.0"
__all__ = ["FeatureExtractor", "__version__"]

# Public names imported on first use, so ``import vidreid`` stays light (no torch).
_LAZY = {"FeatureExtractor": "vidreid.retrieval.extractor"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'vidreid' has no attribute {name!r}")
