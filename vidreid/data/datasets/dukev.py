"""DukeMTMC-VideoReID (Wu et al., CVPR 2018): 8 cameras, one folder per tracklet.

Layout (``ROOT/dukemtmc-vidreid``)::

    DukeMTMC-VideoReID/{train,query,gallery}/<pid4>/<tracklet4>/0001_C6_F0099_X30823.jpg

File names carry pid, camera (1-8), frame index within the tracklet and frame number in the
camera video; an older variant has no underscores (``0001C6F0099X30823.jpg``). Frames are
ordered by the ``F`` index and every frame on disk is kept (torchreid looks up F0001..F{n}
and so loses the last frame of tracklets that start at F0002). The gallery holds each query
again; evaluation's same pid + same camera rule removes it.
"""

from __future__ import annotations

import os
import re

from vidreid.data.datasets.common import (
    attributes_file,
    filter_min_len,
    list_images,
    register,
    relabel_train,
    require_dir,
    resolve_root,
    sorted_subdirs,
)
from vidreid.data.errors import DatasetError
from vidreid.data.tracklet import Tracklet, VideoDataset

NUM_CAMERAS = 8
FRAME_PATTERN = re.compile(r"(\d+)_?C(\d+)_?F(\d+)_?X(\d+)\.jpg")
SPLITS = ("train", "query", "gallery")


def _tracklet(folder: str, pid: int) -> Tracklet:
    parsed = []
    cams = set()
    for n in list_images(folder):
        m = FRAME_PATTERN.fullmatch(n)
        if not m:
            raise DatasetError(
                f"malformed DukeMTMC-VideoReID frame name {os.path.join(folder, n)}; expected "
                "e.g. 0001_C6_F0099_X30823.jpg or 0001C6F0099X30823.jpg"
            )
        if int(m.group(1)) != pid:
            raise DatasetError(
                f"frame {os.path.join(folder, n)} names pid {int(m.group(1))} but lies in the "
                f"folder of pid {pid}"
            )
        cams.add(int(m.group(2)))
        parsed.append((int(m.group(3)), n))
    if len(cams) != 1 or not 1 <= min(cams) <= NUM_CAMERAS:
        raise DatasetError(
            f"tracklet folder {folder} mixes or misnumbers cameras {sorted(cams)}; expected one "
            f"camera in 1..{NUM_CAMERAS}"
        )
    parsed.sort()
    return Tracklet(tuple(os.path.join(folder, n) for _, n in parsed), pid, cams.pop() - 1)


def _load_split(split_dir: str) -> list[Tracklet]:
    out = []
    for pfolder in sorted_subdirs(split_dir):
        if not pfolder.isdigit():
            raise DatasetError(
                f"unexpected folder {os.path.join(split_dir, pfolder)}; expected <pid4> folders"
            )
        pdir = os.path.join(split_dir, pfolder)
        tracklets = sorted_subdirs(pdir)
        if not tracklets:
            raise DatasetError(f"person folder {pdir} holds no tracklet folders")
        out.extend(_tracklet(os.path.join(pdir, t), int(pfolder)) for t in tracklets)
    return out


@register("dukev")
def load_dukev(root: str, min_seq_len: int = 0) -> VideoDataset:
    """Load DukeMTMC-VideoReID; ``min_seq_len`` drops shorter tracklets from every split."""
    ddir = resolve_root(root, "dukemtmc-vidreid", "DukeMTMC-VideoReID")
    base = os.path.join(ddir, "DukeMTMC-VideoReID")
    splits = {
        s: filter_min_len(
            _load_split(require_dir(os.path.join(base, s), f"DukeMTMC-VideoReID {s} set")),
            min_seq_len,
        )
        for s in SPLITS
    }
    train, raw = relabel_train(splits["train"])
    return VideoDataset(
        name="dukev",
        root=ddir,
        train=train,
        query=splits["query"],
        gallery=splits["gallery"],
        attributes_file=attributes_file(ddir),
        extra={"train_raw_pids": raw},
    )
