"""Benchmark loaders. Every module of this package is imported here, so a loader registers
itself in ``DATASETS`` (``@DATASETS.register("name")``) with no edit elsewhere."""

import importlib
import pkgutil

from vidreid.data.datasets.common import DATASETS, build_dataset

for _info in pkgutil.iter_modules(__path__):
    if not _info.name.startswith("_") and _info.name != "common":
        importlib.import_module(f"{__name__}.{_info.name}")

__all__ = ["DATASETS", "build_dataset"]
