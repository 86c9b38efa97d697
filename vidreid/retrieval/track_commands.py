"""``vidreid track-eval PRED GT``: MOTA, IDF1 and the other CLEAR-MOT / ID scores of a
tracking result against ground truth, both in the MOTChallenge text format.

Each line is ``frame, id, left, top, width, height[, conf|flag, class, visibility, ...]``
(comma-separated, 1-based frames). Ground-truth rows whose 7th column (the "consider"
flag) is 0, or whose 8th column (class) is not 1 (pedestrian), are left out, as in MOT16/17.
Departure from the official devkit: distractor classes are dropped rather than used to
discard the hypotheses matched to them, so false positives on distractors count.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

import numpy as np

MOT_BOX_COLUMNS = 6  # frame, id, left, top, width, height
GT_FLAG_COLUMN = 6
GT_CLASS_COLUMN = 7
PEDESTRIAN = 1
DEFAULT_IOU = 0.5


def read_mot(path: str | os.PathLike[str], ground_truth: bool = False) -> np.ndarray:
    """``[N, 6]`` rows ``frame, id, x, y, w, h`` of a MOTChallenge file (see module doc)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"MOT file not found: {path}")
    try:
        rows = np.loadtxt(path, delimiter=",", ndmin=2, dtype=np.float64)
    except ValueError as exc:
        raise ValueError(f"{path}: not a MOTChallenge text file (comma-separated numbers:"
                         f" frame, id, left, top, width, height, ...): {exc}") from None
    if rows.size and rows.shape[1] < MOT_BOX_COLUMNS:
        raise ValueError(f"{path}: {rows.shape[1]} columns, expected at least "
                         f"{MOT_BOX_COLUMNS} (frame, id, left, top, width, height)")
    if rows.size == 0:
        return np.zeros((0, MOT_BOX_COLUMNS))
    if ground_truth and rows.shape[1] > GT_FLAG_COLUMN:
        keep = rows[:, GT_FLAG_COLUMN] != 0
        if rows.shape[1] > GT_CLASS_COLUMN:
            keep &= rows[:, GT_CLASS_COLUMN] == PEDESTRIAN
        rows = rows[keep]
    return rows[:, :MOT_BOX_COLUMNS]


def _cmd_track_eval(args: argparse.Namespace) -> int:
    from vidreid.retrieval.track import evaluate_mot

    truth = read_mot(args.gt, ground_truth=True)
    if len(truth) == 0:
        raise ValueError(f"{args.gt}: no ground-truth boxes to score against")
    scores = evaluate_mot(truth, read_mot(args.pred), iou=args.iou)
    print("  ".join(f"{k} {100 * scores[k]:.1f}" for k in ("mota", "idf1", "precision", "recall")))
    print("  ".join(f"{k} {int(scores[k])}" for k in
                    ("num_switches", "num_false_positives", "num_misses", "num_objects")))
    return 0


def register(subparsers: Any) -> None:
    """Add ``track-eval`` to the ``vidreid`` parser."""
    p = subparsers.add_parser(
        "track-eval", help="MOTA and IDF1 of a tracking result against ground truth",
        description="Scores a tracking result against ground truth, both MOTChallenge text"
                    " files (frame, id, left, top, width, height, ... per line). Ground-truth"
                    " rows marked not to consider, or of a class other than pedestrian, are"
                    " left out.")
    p.add_argument("pred", help="tracking result, MOTChallenge text format")
    p.add_argument("gt", help="ground truth, MOTChallenge text format (e.g. gt/gt.txt)")
    p.add_argument("--iou", type=float, default=DEFAULT_IOU,
                   help=f"minimum overlap of a match (default {DEFAULT_IOU})")
    p.set_defaults(func=_cmd_track_eval)
