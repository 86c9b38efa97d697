"""Bounded memory of STCnet training samples and completion (issue 21, part 1)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vidreid.data.tracklet import Tracklet
from vidreid.methods.vrstc.stc import (
    JPEG_QUALITY,
    HiddenStripeSampler,
    STCTrainSamples,
    _save_frame,
    complete_tracklet,
    crop_stripes,
    load_tracklet,
    source_hidden,
    to_unit,
)
from vidreid.models.vrstc import STCGenerator, stripe_mask

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
    scores = [np.ones((3, 3), dtype=np.float32) for _ in tracklets]  # all clean
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
    assert len(uncached._frames) == 0
    for key in ("frame", "mask", "stripes", "neighbours", "neighbour_mask"):
        assert torch.equal(a[key], b[key]), key
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
            # identical up to float rounding: convolutions of another batch size may sum in
            # another order, which can move a pixel across a rounding boundary (one level)
            diff = (parts[k].int() - whole[k].int()).abs()
            assert diff.max() <= 1 and (diff > 0).float().mean() < 0.01, (batch, k)
    with pytest.raises(ValueError, match="batch_frames"):
        complete_tracklet(g, original, work, occluded, 4, batch_frames=0)


# ----------------------------------------------------------------------------- part 2: sources
def test_likely_occluded_neighbour_stripes_are_no_source(tmp_path: Path) -> None:
    """A neighbour stripe scored between tau and source_tau is hidden from the temporal
    branch in training items and in completion: changing its pixels changes nothing."""
    tau, source_tau = 0.89, 0.95
    tracklets = _tracklets(tmp_path, 1, 3)
    scores = np.ones((3, 3), dtype=np.float32)
    scores[1, 2] = 0.92  # frame 1, stripe 2: above tau (not flagged), below source_tau
    samples = STCTrainSamples(tracklets, [scores], height=H, width=W, tau=tau,
                              source_tau=source_tau)
    item = samples[0]  # target frame 0; neighbours [1, 2, 1, 2]
    rows = slice(16, 24)  # stripe 2 of 24 rows
    nb_mask = item["neighbour_mask"][:, 0]  # [M, H, W]
    assert nb_mask[0, rows].eq(1).all() and nb_mask[0, :16].eq(0).all()
    assert nb_mask[1].eq(0).all()  # frame 2 is clean everywhere
    # at source_tau = tau (the paper's rule) the same stripe would be a source
    plain = STCTrainSamples(tracklets, [scores], height=H, width=W, tau=tau, source_tau=tau)
    assert plain[0]["neighbour_mask"].eq(0).all()
    with pytest.raises(ValueError, match="source_tau"):
        STCTrainSamples(tracklets, [scores], height=H, width=W, tau=tau, source_tau=0.5)

    # completion: frame 0 stripe 0 occluded; its neighbour frame 1 has the likely-occluded
    # stripe 2; its content must not matter
    torch.manual_seed(0)
    g = STCGenerator(8).eval()
    original = torch.randint(0, 256, (3, 3, H, W), dtype=torch.uint8)
    occluded = torch.zeros(3, 3, dtype=torch.bool)
    occluded[0, 0] = True
    hidden = source_hidden(torch.from_numpy(scores), source_tau)
    changed = original.clone()
    changed[1, :, rows] = 255 - changed[1, :, rows]  # "the occluder"

    def run(frames: torch.Tensor, hidden_sources: torch.Tensor | None) -> torch.Tensor:
        return complete_tracklet(g, frames, to_unit(frames), occluded, 2,
                                 hidden_sources=hidden_sources)[0]

    assert torch.equal(run(original, hidden), run(changed, hidden))
    # with the paper's rule alone the occluder would reach the completion
    assert not torch.equal(run(original, None), run(changed, None))


# ----------------------------------------------------------------------------- part 6: masks
def test_training_hides_the_stripe_patterns_completion_meets(tmp_path: Path) -> None:
    """Patterns of 1..3 stripes, drawn with the frequencies the locator flags them."""
    occ = np.zeros((200, 3), dtype=bool)
    occ[:60] = [True, False, False]  # 60 frames: one stripe (head)
    occ[60:90] = [False, True, True]  # 30 frames: two stripes
    occ[90:100] = [True, True, True]  # 10 frames: the whole frame
    sampler = HiddenStripeSampler([occ[:120], occ[120:]], 3)  # two tracklets
    torch.manual_seed(0)
    n = 20000
    drawn = torch.stack([sampler.sample() for _ in range(n)])
    patterns, counts = torch.unique(drawn, dim=0, return_counts=True)
    freq = {tuple(p.tolist()): c / n for p, c in zip(patterns, counts.tolist(), strict=True)}
    expected = {(True, False, False): 0.6, (False, True, True): 0.3, (True, True, True): 0.1}
    assert freq.keys() == expected.keys()
    for k, p in expected.items():  # binomial sd <= 0.0035 at n = 20000
        assert abs(freq[k] - p) < 0.015, (k, freq[k])
    sizes = drawn.sum(dim=1)
    assert sizes.min() == 1 and sizes.max() == 3
    # no occluded frame at all: one stripe, uniformly
    uniform = HiddenStripeSampler([np.zeros((5, 3), dtype=bool)], 3)
    one = torch.stack([uniform.sample() for _ in range(3000)])
    assert one.sum(dim=1).eq(1).all()
    assert (one.float().mean(dim=0) - 1 / 3).abs().max() < 0.04
    # a training item's mask is its drawn pattern
    tracklets = _tracklets(tmp_path, 1, 4)
    scores = np.ones((4, 3), dtype=np.float32)
    scores[3] = [0.5, 0.5, 1.0]  # the only occluded frame: stripes 0 and 1
    samples = STCTrainSamples(tracklets, [scores], height=H, width=W, tau=0.89)
    item = samples[0]
    assert item["stripes"].tolist() == [True, True, False]
    assert item["mask"][0, :16].eq(1).all() and item["mask"][0, 16:].eq(0).all()
    crop = crop_stripes(torch.rand(2, 3, H, W), torch.tensor([[True, True, False],
                                                             [False, False, True]]), 3)
    assert crop.shape == (2, 3, 8, W)


# ----------------------------------------------------------------------------- part 5: pixels
#: JPEG re-encoding tolerance outside the completed rows (q100 4:4:4 re-encode of a q90 frame).
JPEG_MAX_DIFF, JPEG_MEAN_DIFF = 6, 0.5


def test_completion_keeps_frame_sizes_and_pixels_outside_the_stripes(tmp_path: Path) -> None:
    """Frames of different sizes (as in DukeV) keep their size; only the completed stripes'
    rows change: exactly for PNG, within the stated tolerance for JPEG."""
    rng = np.random.default_rng(0)
    sizes = [(48, 24), (60, 30), (36, 20), (48, 24)]  # (H, W) per frame
    yy = np.linspace(0, 1, 64)
    for ext, fmt in ((".png", "PNG"), (".jpg", "JPEG")):
        paths = []
        for t, (h, w) in enumerate(sizes):  # smooth images (JPEG-friendly) + some noise
            base = np.stack([np.outer(yy[:h], np.ones(w)) * 200 + 20 * c for c in range(3)], -1)
            im = (base + rng.normal(0, 8, base.shape)).clip(0, 255).astype(np.uint8)
            p = tmp_path / f"{t}{ext}"
            Image.fromarray(im).save(p, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
            paths.append(str(p))
        original, work = load_tracklet(paths, H, W)
        assert [tuple(o.shape[-2:]) for o in original] == sizes
        occluded = torch.zeros(4, 3, dtype=torch.bool)
        occluded[1, 2] = occluded[2, 0] = True
        torch.manual_seed(0)
        done = complete_tracklet(STCGenerator(8).eval(), original, work, occluded, 2)
        assert done.keys() == {1, 2}
        for t, image in done.items():
            out = tmp_path / f"out{t}{ext}"
            _save_frame(out, image, JPEG_QUALITY)
            before = np.asarray(Image.open(paths[t]).convert("RGB")).astype(int)
            after = np.asarray(Image.open(out).convert("RGB")).astype(int)
            assert after.shape == before.shape  # the frame's own size
            rows = stripe_mask(occluded[t], *before.shape[:2])[0, :, 0].bool().numpy()
            outside = np.abs(after[~rows] - before[~rows])
            if fmt == "PNG":
                assert outside.max() == 0
            else:
                assert outside.max() <= JPEG_MAX_DIFF and outside.mean() <= JPEG_MEAN_DIFF, \
                    (outside.max(), outside.mean())
            assert np.abs(after[rows] - before[rows]).mean() > 5  # the stripe was completed
