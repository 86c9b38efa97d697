"""Ground truth the synthetic generator writes beside every dataset, and its loaders.

Format, under ``<dataset folder>/ground_truth/`` (the dataset folder is e.g. ``OUT/mars``;
for the ``folder`` layout it is ``OUT`` itself):

- ``<frame path relative to the dataset folder, extension replaced>.mask.png``: one 8-bit
  grey PNG per frame; bit 0 (value 1) = person silhouette *including* the part an occluder
  hides, bit 1 (value 2) = occluder. So ``mask & 1`` is the full person, ``mask & 2`` the
  occluder and ``(mask & 1) & ~(mask >> 1 & 1)`` the visible person.
- ``<same stem>.clean.png``: the frame rendered without its occluder, only for occluded frames.
- ``tracklets.jsonl``: one JSON object per tracklet on disk, in generation order, with keys
  ``index``, ``split`` (``train``/``test`` for MARS and LS-VID, ``train``/``query``/``gallery``
  for Duke and folder, ``all`` for iLIDS-VID and PRID whose splits live in their split files),
  ``pid`` (as the layout writes it: 0 distractor, -1 junk on MARS; the person folder number
  on iLIDS-VID / PRID), ``camid`` (0-based), ``identity`` (the rendered person, the key of
  ``attributes.csv``), ``is_query``, ``frames`` (relative paths in temporal order, ``/``
  separated) and ``occluded`` (one bool per frame).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from vidreid.data.errors import DatasetError

GROUND_TRUTH_DIR = "ground_truth"
TRACKLET_TABLE = "tracklets.jsonl"
MASK_SUFFIX = ".mask.png"
CLEAN_SUFFIX = ".clean.png"
SILHOUETTE_BIT = 1
OCCLUDER_BIT = 2


@dataclass
class FrameTruth:
    """Per-frame truth: ``silhouette`` / ``occluder`` ``[H, W]`` bool, ``clean`` ``[H, W, 3]``
    uint8 (the unoccluded render) or None when the frame is not occluded."""

    silhouette: np.ndarray
    occluder: np.ndarray
    clean: np.ndarray | None


def ground_truth_root(dataset_root: str | os.PathLike) -> str:
    """The ``ground_truth`` folder of a synthetic dataset.

    ``dataset_root`` may be the dataset folder (``VideoDataset.root``) or the output root
    passed to ``build_dataset`` when it holds exactly one synthetic dataset.
    """
    root = Path(dataset_root).expanduser().resolve()
    direct = root / GROUND_TRUTH_DIR
    if direct.is_dir():
        return str(direct)
    found = sorted(p for p in root.glob(f"*/{GROUND_TRUTH_DIR}") if p.is_dir())
    if len(found) == 1:
        return str(found[0])
    raise FileNotFoundError(
        f"no {GROUND_TRUTH_DIR}/ folder in {root} or in exactly one of its sub-folders "
        f"(found {len(found)}); ground truth exists only for data made by `vidreid synth`"
    )


def truth_stem(gt_root: str, rel_frame: str) -> str:
    """Path of a frame's truth files without suffix (``.mask.png`` / ``.clean.png``)."""
    return os.path.join(gt_root, os.path.splitext(rel_frame)[0])


def encode_mask(silhouette: np.ndarray, occluder: np.ndarray) -> np.ndarray:
    """Pack ``[H, W]`` bool masks into the uint8 mask image."""
    return silhouette.astype(np.uint8) * SILHOUETTE_BIT | occluder.astype(np.uint8) * OCCLUDER_BIT


def _find_dataset_dir(frame: Path) -> Path:
    for parent in frame.parents:
        if (parent / GROUND_TRUTH_DIR / TRACKLET_TABLE).is_file():
            return parent
    raise FileNotFoundError(
        f"no {GROUND_TRUTH_DIR}/{TRACKLET_TABLE} above {frame}: ground truth exists only for "
        "frames made by `vidreid synth`"
    )


def load_frame_truth(frame_path: str | os.PathLike) -> FrameTruth:
    """Load the silhouette, occluder and (if occluded) clean render of a synthetic frame."""
    frame = Path(frame_path).expanduser().resolve()
    ddir = _find_dataset_dir(frame)
    stem = truth_stem(str(ddir / GROUND_TRUTH_DIR), str(frame.relative_to(ddir)))
    mask_path = stem + MASK_SUFFIX
    if not os.path.isfile(mask_path):
        raise FileNotFoundError(f"no mask {mask_path} for frame {frame}")
    with Image.open(mask_path) as im:
        mask = np.asarray(im.convert("L"))
    clean = None
    if os.path.isfile(stem + CLEAN_SUFFIX):
        with Image.open(stem + CLEAN_SUFFIX) as im:
            clean = np.asarray(im.convert("RGB"))
    return FrameTruth(
        silhouette=(mask & SILHOUETTE_BIT) > 0, occluder=(mask & OCCLUDER_BIT) > 0, clean=clean
    )


def load_tracklet_table(dataset_root: str | os.PathLike) -> list[dict]:
    """Read ``tracklets.jsonl`` (see the module doc for the keys)."""
    path = os.path.join(ground_truth_root(dataset_root), TRACKLET_TABLE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"missing ground-truth tracklet table {path}")
    rows = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise DatasetError(f"{path}, line {lineno}: not JSON ({exc})") from None
    return rows
