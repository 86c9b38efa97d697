"""Synthetic video re-ID data written in the benchmarks' own layouts, with ground truth."""

from vidreid.data.synth.generate import DEFAULT_MAX_LEN, generate
from vidreid.data.synth.ground_truth import (
    FrameTruth,
    ground_truth_root,
    load_frame_truth,
    load_tracklet_table,
)
from vidreid.data.synth.layouts import LAYOUTS

__all__ = [
    "DEFAULT_MAX_LEN",
    "LAYOUTS",
    "FrameTruth",
    "generate",
    "ground_truth_root",
    "load_frame_truth",
    "load_tracklet_table",
]
