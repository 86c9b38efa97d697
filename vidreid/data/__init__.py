"""Datasets: the in-memory tracklet form, the benchmark loaders and the synthetic generator."""

from vidreid.data.datasets import DATASETS, build_dataset
from vidreid.data.errors import DatasetError
from vidreid.data.tracklet import Tracklet, VideoDataset

__all__ = ["DATASETS", "DatasetError", "Tracklet", "VideoDataset", "build_dataset"]
