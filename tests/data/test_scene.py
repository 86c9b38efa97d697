"""Scene videos: a static view with pedestrians crossing, and its ground truth."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from vidreid.data.synth.scene import TRUTH_COLUMNS, read_truth, render_scene

SIZE = (120, 160)
FRAMES = 30


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    d = tmp_path_factory.mktemp("scene")
    return render_scene(d / "v.avi", d / "v.csv", num_frames=FRAMES, size=SIZE, people=3,
                        seed=3)


def test_video_has_the_frames_and_size(scene):
    cap = cv2.VideoCapture(scene.video)
    n = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        assert frame.shape == (*SIZE, 3)
        n += 1
    cap.release()
    assert n == FRAMES


def test_truth_csv_round_trips_and_boxes_lie_in_the_image(scene):
    with open(scene.truth, encoding="utf-8") as f:
        assert f.readline().strip() == ",".join(TRUTH_COLUMNS)
    boxes = read_truth(scene.truth)
    np.testing.assert_allclose(boxes, scene.boxes, atol=0.05)
    h, w = SIZE
    assert set(boxes[:, 1].astype(int)) == {p.pid for p in scene.identities}
    assert (boxes[:, 2] >= 0).all() and (boxes[:, 2] + boxes[:, 4] <= w).all()
    assert (boxes[:, 3] >= 0).all() and (boxes[:, 3] + boxes[:, 5] <= h).all()
    assert (boxes[:, 0] < FRAMES).all() and (boxes[:, 4] > 0).all()


def test_people_are_drawn_inside_their_boxes(scene):
    """The pixels of a truth box differ from the empty background there (frame-to-frame
    noise is ~2 grey levels; a person changes the box by far more)."""
    cap = cv2.VideoCapture(scene.video)
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame.astype(np.float32))
    background = np.median(np.stack(frames), axis=0)
    for f, _, x, y, bw, bh in scene.boxes[:: max(1, len(scene.boxes) // 10)]:
        x0, y0, x1, y1 = int(x), int(y), int(x + bw), int(y + bh)
        diff = np.abs(frames[int(f)][y0:y1, x0:x1] - background[y0:y1, x0:x1]).mean()
        assert diff > 8.0, (f, diff)


def test_deterministic_and_same_people_in_another_view(tmp_path, scene):
    again = render_scene(tmp_path / "a.avi", tmp_path / "a.csv", num_frames=FRAMES, size=SIZE,
                         people=3, seed=3)
    np.testing.assert_array_equal(again.boxes, scene.boxes)
    other = render_scene(tmp_path / "b.avi", tmp_path / "b.csv", num_frames=FRAMES, size=SIZE,
                         people=scene.identities, seed=4)
    assert set(other.boxes[:, 1].astype(int)) == {p.pid for p in scene.identities}
    assert not np.array_equal(other.boxes, scene.boxes)


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(ValueError, match="num_frames"):
        render_scene(tmp_path / "v.avi", tmp_path / "v.csv", num_frames=1)
    with pytest.raises(ValueError, match="people"):
        render_scene(tmp_path / "v.avi", tmp_path / "v.csv", people=0)
    with pytest.raises(FileNotFoundError):
        read_truth(tmp_path / "missing.csv")
