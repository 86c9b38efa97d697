"""Benchmark loaders; importing this package registers them all in ``DATASETS``."""

from vidreid.data.datasets import dukev, folder, ilidsvid, lsvid, mars, prid2011  # noqa: F401
from vidreid.data.datasets.common import DATASETS, build_dataset

__all__ = ["DATASETS", "build_dataset"]
