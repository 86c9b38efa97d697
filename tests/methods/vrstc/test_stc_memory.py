"""Bounded memory of STCnet training samples and completion (issue 21, part 1)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vidreid.data.tracklet import Tracklet
from vidreid.methods.vrstc.stc import STCTrainSamples, complete_tracklet, to_unit
from vidreid.models.vrstc import STCGenerator

H, W = 24, 12


def _tracklets(folder: Path, count: int, length: int) -> list[Tracklet]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(count):
        paths = []
        for t in range(length):
            p = folder / f"{i:03d}_{t:02d}.png"
            Image.fromarray(rng.integers(0, 255, (H, W, 3), dtype=np.uint8)).save(p)
            paths.append(str(p))
        out.append(Tracklet(tuple(paths), i, 0))
    return out


def test_training_cache_never_holds_more_than_its_size(tmp_path: Path) -> None:
    tracklets = _tracklets(tmp_path, 7, 3)
    scores = [np.zeros((3, 3), dtype=bool) for _ in tracklets]  # no occluded stripe
    samples = STCTrainSamples(tracklets, scores, height=H, width=W, cache_tracklets=3)
    order = [0, 1, 2, 0, 3, 4, 5, 6, 0, 1, 6]  # tracklets touched
    sizes = []
    for i in order:
        samples[3 * i]  # first frame of tracklet i
        sizes.append(len(samples._frames))
        assert next(reversed(samples._frames)) == i  # the last touched is the newest
    assert max(sizes) == 3 and sizes[:3] == [1, 2, 3]
    # LRU, not FIFO: 0 was touched again before 3 came in, so 1 was evicted, not 0
    assert list(samples._frames) == [0, 1, 6]
    # a cache of 0 keeps nothing; items are the same either way
    uncached = STCTrainSamples(tracklets, scores, height=H, width=W, cache_tracklets=0)
    torch.manual_seed(0)
    a = uncached[4]
    torch.manual_seed(0)
    b = samples[4]
    assert len(uncached._frames) == 0 and torch.equal(a["frame"], b["frame"])
    with pytest.raises(ValueError, match="cache_tracklets"):
        STCTrainSamples(tracklets, scores, height=H, width=W, cache_tracklets=-1)


def test_completion_is_identical_batched_and_unbatched() -> None:
    torch.manual_seed(0)
    g = STCGenerator(8).eval()
    t = 9
    original = torch.randint(0, 256, (t, 3, 2 * H, 2 * W), dtype=torch.uint8)
    work = to_unit(torch.randint(0, 256, (t, 3, H, W), dtype=torch.uint8))
    occluded = torch.zeros(t, 3, dtype=torch.bool)
    occluded[[0, 2, 3, 5, 6, 8], [0, 1, 2, 0, 1, 2]] = True
    occluded[3, 0] = True  # two stripes of one frame
    whole = complete_tracklet(g, original, work, occluded, 4, batch_frames=t)
    for batch in (1, 2, 4):
        parts = complete_tracklet(g, original, work, occluded, 4, batch_frames=batch)
        assert parts.keys() == whole.keys() == {0, 2, 3, 5, 6, 8}
        for k in whole:
            assert torch.equal(parts[k], whole[k]), (batch, k)
    with pytest.raises(ValueError, match="batch_frames"):
        complete_tracklet(g, original, work, occluded, 4, batch_frames=0)
