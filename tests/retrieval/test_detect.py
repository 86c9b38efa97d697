"""Detectors: one interface, background subtraction on rendered scenes, HOG, ONNX."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from vidreid.data.synth.scene import render_scene
from vidreid.retrieval.detect import OnnxDetector, build_detector
from vidreid.retrieval.track import iou_matrix

# Measured on this scene (240x320, 60 frames, 4 people, seed 1): bgsub recall ~0.85 and
# precision ~0.9 at IoU 0.5 (people merged while they cross are the misses).
BGSUB_RECALL_FLOOR = 0.7
BGSUB_PRECISION_FLOOR = 0.75


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    d = tmp_path_factory.mktemp("scene")
    s = render_scene(d / "v.avi", d / "v.csv", num_frames=60, people=4, seed=1)
    cap = cv2.VideoCapture(s.video)
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    return s, frames


def _xyxy(truth: np.ndarray) -> np.ndarray:
    return np.column_stack([truth[:, 2], truth[:, 3], truth[:, 2] + truth[:, 4],
                            truth[:, 3] + truth[:, 5]])


def test_bgsub_finds_the_rendered_people(scene):
    s, frames = scene
    det = build_detector("bgsub")
    hits = found = detections = 0
    for f, frame in enumerate(frames):
        boxes = det(frame)
        assert boxes.dtype == np.float32 and boxes.shape[1] == 5
        assert ((boxes[:, 4] > 0) & (boxes[:, 4] <= 1)).all()
        truth = _xyxy(s.boxes[s.boxes[:, 0] == f])
        iou = iou_matrix(truth, boxes)
        hits += int((iou.max(axis=1, initial=0) >= 0.5).sum())
        found += int((iou.max(axis=0, initial=0) >= 0.5).sum())
        detections += len(boxes)
    recall, precision = hits / len(s.boxes), found / max(detections, 1)
    assert recall >= BGSUB_RECALL_FLOOR, recall
    assert precision >= BGSUB_PRECISION_FLOOR, precision


def test_bgsub_sees_nothing_on_a_static_view(scene):
    _, frames = scene
    det = build_detector("bgsub")
    still = frames[0]
    rng = np.random.default_rng(0)
    counts = []
    for _ in range(15):
        noisy = np.clip(still + rng.normal(0, 2, still.shape), 0, 255).astype(np.uint8)
        counts.append(len(det(noisy)))
    assert sum(counts[3:]) == 0


def test_hog_contract_and_empty_frame():
    det = build_detector("hog", upscale=1.0)
    blank = np.full((160, 96, 3), 128, np.uint8)
    boxes = det(blank)
    assert boxes.shape == (0, 5) and boxes.dtype == np.float32


def test_hog_without_opencv_hog_says_what_to_install(monkeypatch):
    monkeypatch.delattr(cv2, "HOGDescriptor", raising=False)
    monkeypatch.delattr(cv2, "xobjdetect", raising=False)
    with pytest.raises(ValueError, match="opencv-python-headless<5"):
        build_detector("hog")


def test_bad_names_options_and_frames():
    with pytest.raises(ValueError, match="unknown detector 'yolo'.*bgsub"):
        build_detector("yolo")
    with pytest.raises(ValueError, match="bad options"):
        build_detector("bgsub", nonsense=1)
    with pytest.raises(ValueError, match="uint8"):
        build_detector("bgsub")(np.zeros((10, 10), np.uint8))
    with pytest.raises(FileNotFoundError, match="--onnx-weights"):
        build_detector("onnx", weights="missing.onnx")


def _constant_model(path, output: np.ndarray, size: int = 64) -> None:
    """An ONNX 'detector' with a fixed prediction (its image input is ignored)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    node = helper.make_node("Constant", [], ["output"],
                            value=numpy_helper.from_array(output.astype(np.float32)))
    graph = helper.make_graph(
        [node], "const",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, list(output.shape))],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))


# A frame of H 128 x W 64 letterboxed into 64 x 64: gain 0.5, 16 px of padding left.
FRAME = np.zeros((128, 64, 3), np.uint8)
EXPECTED = [16.0, 32.0, 48.0, 96.0]  # the person box (cx 32, cy 32, 16 x 32) in the frame


def test_onnx_yolov5_layout(tmp_path):
    rows = np.array([
        [32, 32, 16, 32, 0.9, 0.9, 0.1],  # a person: score 0.81
        [20, 20, 10, 10, 0.9, 0.1, 0.9],  # another class
        [40, 40, 10, 20, 0.2, 0.9, 0.1],  # a weak person: score 0.18
        *[[0] * 7] * 7,  # empty anchors: real models have far more anchors than channels
    ])[None]
    _constant_model(tmp_path / "v5.onnx", rows)
    boxes = OnnxDetector(tmp_path / "v5.onnx", score_threshold=0.4)(FRAME)
    assert boxes.shape == (1, 5)
    np.testing.assert_allclose(boxes[0, :4], EXPECTED, atol=1e-4)
    assert boxes[0, 4] == pytest.approx(0.81)


def test_onnx_yolov8_layout(tmp_path):
    anchors = np.zeros((6, 8))  # [4 + C, N] with C = 2 classes, 8 anchors
    anchors[:, 0] = [32, 32, 16, 32, 0.7, 0.1]  # person
    anchors[:, 1] = [33, 32, 16, 32, 0.6, 0.1]  # a duplicate: removed by NMS
    anchors[:, 2] = [10, 10, 8, 8, 0.1, 0.9]  # another class
    _constant_model(tmp_path / "v8.onnx", anchors[None])
    boxes = build_detector("onnx", weights=str(tmp_path / "v8.onnx"))(FRAME)
    assert boxes.shape == (1, 5)
    np.testing.assert_allclose(boxes[0, :4], EXPECTED, atol=1e-4)
    assert boxes[0, 4] == pytest.approx(0.7)
