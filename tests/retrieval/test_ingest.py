"""``vidreid ingest``: rendered video -> tracklets on disk -> index -> search."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from _extract_data import tiny_config, write_model

from vidreid.cli import main
from vidreid.data import build_dataset
from vidreid.data.synth.render import sample_identities
from vidreid.data.synth.scene import render_scene
from vidreid.retrieval.detect import BackgroundSubtractionDetector
from vidreid.retrieval.ingest import (
    MANIFEST_COLUMNS,
    ingest_video,
    read_manifest,
    tracklet_boxes,
)
from vidreid.retrieval.track import iou_matrix

FRAMES = 60


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    """Two views (different backgrounds and paths) of the same 3 people."""
    d = tmp_path_factory.mktemp("scenes")
    people = sample_identities(3, np.random.default_rng(5), near_duplicate_rate=0.0)
    return [render_scene(d / f"{n}.avi", d / f"{n}.csv", num_frames=FRAMES, people=people,
                         seed=seed) for n, seed in (("a", 1), ("b", 2))]


@pytest.fixture(scope="module")
def ingested(scenes, tmp_path_factory):
    out = tmp_path_factory.mktemp("ingest") / "a"
    # bgsub: these tests are about the output; the rendered people are cartoons, which the
    # default (real-image) ssdlite detector is not meant for.
    summary = ingest_video(scenes[0].video, out, camera=0, detector="bgsub")
    return out, summary


def _groups(records):
    groups: dict[str, list] = {}
    for r in records:
        groups.setdefault(r.path.rsplit("/", 1)[0], []).append(r)
    return groups


def test_output_loads_as_a_folder_dataset(ingested):
    out, summary = ingested
    ds = build_dataset("folder", str(out))
    assert len(ds.gallery) == summary.tracklets >= 3
    assert len(ds.query) == len(ds.gallery)  # query mirrors gallery
    assert all(t.camid == 0 and len(t.frames) >= 8 for t in ds.gallery)
    assert sorted(len(t.frames) for t in ds.gallery) == summary.tracklet_lengths
    assert not os.path.exists(f"{out}.partial")
    info = json.loads((out / "ingest.json").read_text())
    assert info["crops"] == summary.crops and set(info["stage_seconds"]) >= {"decode", "detect"}


def test_manifest_round_trip(ingested, scenes):
    out, summary = ingested
    with open(out / "manifest.csv", encoding="utf-8") as f:
        assert f.readline().strip() == ",".join(MANIFEST_COLUMNS)
    records = read_manifest(out)
    assert len(records) == summary.crops
    files = sorted(str(p.relative_to(out)) for p in (out / "gallery").rglob("*.jpg"))
    assert sorted(r.path for r in records) == files
    ds = build_dataset("folder", str(out))
    by_dir = _groups(records)
    for t in ds.gallery:
        rel = os.path.relpath(os.path.dirname(t.frames[0]), out)
        assert [os.path.join(out, r.path) for r in by_dir[rel]] == list(t.frames)
        assert all(r.pid == t.pid and r.video == scenes[0].video for r in by_dir[rel])
    r = records[0]
    crop = cv2.imread(str(out / r.path))
    assert crop.shape[:2] == (int(round(r.y + r.h)) - int(r.y), int(round(r.x + r.w)) - int(r.x))
    # Crops are the detected people: most overlap a truth box of their frame.
    truth = scenes[0].boxes
    matched = 0
    for r in records:
        g = truth[truth[:, 0] == r.frame]
        gb = np.column_stack([g[:, 2], g[:, 3], g[:, 2] + g[:, 4], g[:, 3] + g[:, 5]])
        matched += iou_matrix(np.array([[r.x, r.y, r.x + r.w, r.y + r.h]]), gb).max(
            initial=0) >= 0.5
    assert matched / len(records) >= 0.8


def test_never_overwrites_a_finished_output(ingested, scenes):
    out, _ = ingested
    before = sorted(os.listdir(out))
    with pytest.raises(ValueError, match="already exists"):
        ingest_video(scenes[0].video, out, camera=0)
    assert sorted(os.listdir(out)) == before


class _Interrupting(BackgroundSubtractionDetector):
    """bgsub that raises after ``fail_after`` frames (a killed run)."""

    fail_after: int | None = None

    def __call__(self, frame):
        if self.fail_after is not None:
            self.fail_after -= 1
            if self.fail_after < 0:
                raise KeyboardInterrupt
        return super().__call__(frame)


def test_interrupted_ingest_resumes_to_the_same_output(scenes, tmp_path):
    video = scenes[0].video
    det = _Interrupting()
    det.fail_after = 45
    with pytest.raises(KeyboardInterrupt):
        ingest_video(video, tmp_path / "r", camera=0, detector=det, chunk_frames=20)
    assert not (tmp_path / "r").exists()
    assert len(os.listdir(tmp_path / "r.partial" / "chunks")) == 2
    resumed = ingest_video(video, tmp_path / "r", camera=0, detector=_Interrupting(),
                           chunk_frames=20)
    assert resumed.resumed_chunks == 2
    fresh = ingest_video(video, tmp_path / "f", camera=0, detector=_Interrupting(),
                         chunk_frames=20)
    strip = [(r.path, r.frame, r.x, r.y, r.w, r.h) for r in read_manifest(tmp_path / "r")]
    assert strip == [(r.path, r.frame, r.x, r.y, r.w, r.h) for r in read_manifest(tmp_path / "f")]
    assert fresh.resumed_chunks == 0
    # A partial run of other settings is refused, not mixed in.
    (tmp_path / "x.partial").mkdir()
    (tmp_path / "x.partial" / "state.json").write_text("{}")
    with pytest.raises(ValueError, match="other settings"):
        ingest_video(video, tmp_path / "x", camera=0)


def test_every_nth_frame(scenes, tmp_path):
    s = ingest_video(scenes[0].video, tmp_path / "e", camera=2, every=2, min_len=5, max_gap=5,
                     detector="bgsub", interpolate=False)
    frames = {r.frame for r in read_manifest(tmp_path / "e")}
    assert s.frames_detected == FRAMES // 2 and all(f % 2 == 0 for f in frames)
    assert all(t.camid == 2 for t in build_dataset("folder", str(tmp_path / "e")).gallery)
    # Interpolated: the skipped frames between two detections of a tracklet get crops too,
    # with boxes halfway between their neighbours' (same detections and tracklets).
    ingest_video(scenes[0].video, tmp_path / "i", camera=2, every=2, min_len=5, max_gap=5,
                 detector="bgsub")
    detected = _groups(read_manifest(tmp_path / "e"))
    filled = _groups(read_manifest(tmp_path / "i"))
    assert detected.keys() == filled.keys()
    for key, recs in filled.items():
        by_frame = {r.frame: r for r in recs}
        assert {r.frame for r in detected[key]} == {f for f in by_frame if f % 2 == 0}
        odd = [f for f in by_frame if f % 2]
        assert odd and all(f - 1 in by_frame and f + 1 in by_frame for f in odd)
        for f in odd:
            a, m, b = by_frame[f - 1], by_frame[f], by_frame[f + 1]
            assert m.x == pytest.approx((a.x + b.x) / 2, abs=0.11)
            assert m.h == pytest.approx((a.h + b.h) / 2, abs=0.11)


def test_tracklet_boxes_fill_only_skipped_frames():
    frames = np.array([0, 2, 4, 9])  # 4 -> 9 is a missed detection, not a skipped frame
    boxes = np.array([[0, 0, 10, 20, 0.9], [2, 0, 12, 20, 0.7], [4, 0, 14, 20, 0.8],
                      [9, 0, 19, 20, 0.9]], np.float32)
    out = tracklet_boxes(frames[::-1], boxes[::-1], every=2)  # any input order
    assert [f for f, _ in out] == [0, 1, 2, 3, 4, 9]
    np.testing.assert_allclose(out[1][1], [1, 0, 11, 20, 0.7])
    assert [f for f, _ in tracklet_boxes(frames, boxes, every=1)] == [0, 2, 4, 9]


def test_bad_videos_give_clear_errors_and_no_output(tmp_path, scenes):
    cases = {}
    (tmp_path / "text.avi").write_text("not a video")
    cases["text"] = tmp_path / "text.avi"
    writer = cv2.VideoWriter(str(tmp_path / "zero.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10,
                             (64, 64))
    writer.release()  # a video with no frame
    cases["zero"] = tmp_path / "zero.avi"
    empty = tmp_path / "empty.avi"  # a static view: no people
    writer = cv2.VideoWriter(str(empty), cv2.VideoWriter_fourcc(*"MJPG"), 10, (160, 120))
    rng = np.random.default_rng(0)
    for _ in range(30):
        writer.write(np.clip(100 + rng.normal(0, 2, (120, 160, 3)), 0, 255).astype(np.uint8))
    writer.release()
    cases["empty"] = empty
    expected = {"text": "cannot open|no frame", "zero": "cannot open|no frame",
                "empty": "no tracklet found"}
    for name, video in cases.items():
        out = tmp_path / f"out-{name}"
        with pytest.raises(ValueError, match=expected[name]):
            ingest_video(video, out, camera=0, detector="bgsub")
        assert not out.exists() and not Path(f"{out}.partial").exists(), name
    with pytest.raises(FileNotFoundError):
        ingest_video(tmp_path / "missing.avi", tmp_path / "o", camera=0)


def test_truncated_video_gives_complete_tracklets_or_nothing(scenes, tmp_path):
    data = Path(scenes[0].video).read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    out = tmp_path / "out"
    try:
        summary = ingest_video(cut, out, camera=0, detector="bgsub")
    except ValueError as exc:
        assert "no frame" in str(exc) or "cannot open" in str(exc) or "no tracklet" in str(exc)
        assert not out.exists()
        return
    assert summary.frames_decoded < FRAMES
    records = read_manifest(out)
    assert all((out / r.path).is_file() for r in records)
    assert all(len(t.frames) >= 8 for t in build_dataset("folder", str(out)).gallery)


def _majority_identity(records, truth: np.ndarray) -> int:
    votes: dict[int, int] = {}
    for r in records:
        g = truth[truth[:, 0] == r.frame]
        if len(g):
            gb = np.column_stack([g[:, 2], g[:, 3], g[:, 2] + g[:, 4], g[:, 3] + g[:, 5]])
            iou = iou_matrix(np.array([[r.x, r.y, r.x + r.w, r.y + r.h]]), gb)[0]
            if iou.max() >= 0.5:
                pid = int(g[iou.argmax(), 1])
                votes[pid] = votes.get(pid, 0) + 1
    return max(votes, key=votes.get) if votes else -1


def test_ingest_index_search_finds_the_same_person_in_the_other_video(scenes, tmp_path,
                                                                      capsys):
    """CLI end to end: ingest two views of the same 3 people, extract (untrained tiny CNN:
    the rendered people differ in colour), index view b, search with view a's tracklets."""
    cfg = tiny_config()
    cfg["data"].update(height=128, width=64)
    config, weights = write_model(tmp_path, cfg)
    outs = {}
    for name, scene, cam in (("a", scenes[0], 0), ("b", scenes[1], 1)):
        outs[name] = tmp_path / name
        assert main(["ingest", scene.video, "--camera", str(cam), "--out", str(outs[name]),
                     "--quiet", "--detector", "bgsub", "--tracker", "sort",
                     # 60 rendered frames: detect each one; bgsub boxes of a cartoon vary in
                     # width with its mask, which the widened-box rule (for CNN boxes) splits
                     "--every", "1", "--max-aspect-growth", "0"]) == 0
        assert main(["extract", str(config), "--weights", str(weights), "--data",
                     str(outs[name]), "--dataset", "folder", "--split", "gallery", "--out",
                     str(tmp_path / f"feats-{name}"), "--quiet", "--workers", "0"]) == 0
    assert "tracklets" in capsys.readouterr().out
    index = tmp_path / "b.index"
    assert main(["index", "build", str(tmp_path / "feats-b"), "--out", str(index)]) == 0
    hits_json = tmp_path / "hits.json"
    assert main(["index", "search", str(index), "--feats", str(tmp_path / "feats-a"), "-k", "1",
                 "--json", str(hits_json)]) == 0
    truth_of = {}
    for name, scene in (("a", scenes[0]), ("b", scenes[1])):
        ds = build_dataset("folder", str(outs[name]))
        groups = _groups(read_manifest(outs[name]))
        for i, t in enumerate(ds.gallery):
            rel = os.path.relpath(os.path.dirname(t.frames[0]), outs[name])
            truth_of[(name, f"gallery/{i:06d}")] = _majority_identity(groups[rel], scene.boxes)
    results = json.loads(hits_json.read_text())
    correct = [truth_of[("a", q["query"])] == truth_of[("b", q["hits"][0]["tracklet_id"])]
               for q in results]
    assert len(correct) >= 3 and np.mean(correct) >= 0.75, (correct, sorted(truth_of.items()))


def test_cli_errors(tmp_path, capsys):
    assert main(["ingest", str(tmp_path / "none.avi"), "--camera", "0", "--out",
                 str(tmp_path / "o")]) == 2
    assert "video file not found" in capsys.readouterr().err
    assert main(["ingest", str(tmp_path / "none.avi"), "--camera", "0", "--out",
                 str(tmp_path / "o"), "--detector", "onnx"]) == 2
    assert "--onnx-weights" in capsys.readouterr().err
    shutil.rmtree(tmp_path / "o", ignore_errors=True)


def test_start_max_frames_and_draw(scenes, tmp_path):
    """A piece of the video (frame numbers stay the video's) and the drawn video of it."""
    drawn = tmp_path / "drawn.mp4"
    s = ingest_video(scenes[0].video, tmp_path / "p", camera=0, detector="bgsub", start=10,
                     max_frames=40, min_len=5, draw=drawn)
    frames = [r.frame for r in read_manifest(tmp_path / "p")]
    assert frames and min(frames) >= 10 and max(frames) < 50
    assert s.frames_decoded == 40 and not s.truncated
    cap = cv2.VideoCapture(str(drawn))
    count = 0
    while cap.read()[0]:
        count += 1
    cap.release()
    assert count == 40
    assert not [p for p in os.listdir(tmp_path) if ".tmp-" in p]  # atomic: no leftovers
    with pytest.raises(ValueError, match="mp4"):
        ingest_video(scenes[0].video, tmp_path / "q", camera=0, detector="bgsub",
                     draw=tmp_path / "x.avi")
    with pytest.raises(ValueError, match="start"):
        ingest_video(scenes[0].video, tmp_path / "q", camera=0, detector="bgsub", start=-1)


def test_wide_boxes_are_left_out_of_tracklets(scenes, tmp_path):
    """Boxes wider than max_width_ratio x height (merged people) never reach a tracklet."""
    ratio = 0.5
    ingest_video(scenes[0].video, tmp_path / "w", camera=0, detector="bgsub", min_len=3,
                 max_width_ratio=ratio)
    rows = read_manifest(tmp_path / "w")
    assert rows and all(r.w <= ratio * r.h + 0.2 for r in rows)  # + rounding to 0.1 px
    everything = read_manifest(ingest_video(scenes[0].video, tmp_path / "a", camera=0,
                                            detector="bgsub", min_len=3,
                                            max_width_ratio=None).out)
    assert any(r.w > ratio * r.h for r in everything)  # the rule did remove some


def test_search_report_on_ingest_output(ingested, tmp_path, capsys):
    """Track ids are not identities: no match/mismatch colours; the query's own tracklet is
    not a result; tracklets are named by folder (<pid>/<cam>_<no>)."""
    out, _ = ingested
    cfg = tiny_config()
    cfg["data"].update(height=128, width=64)
    config, weights = write_model(tmp_path, cfg)
    feats = tmp_path / "feats"
    assert main(["extract", str(config), "--weights", str(weights), "--data", str(out),
                 "--dataset", "folder", "--split", "gallery", "--out", str(feats), "--quiet",
                 "--workers", "0"]) == 0
    index = tmp_path / "g.index"
    assert main(["index", "build", str(feats), "--out", str(index)]) == 0
    report, hits_json = tmp_path / "r.html", tmp_path / "h.json"
    capsys.readouterr()
    assert main(["index", "search", str(index), "--feats", str(feats), "--id",
                 "gallery/000000", "-k", "3", "--report", str(report), "--json",
                 str(hits_json)]) == 0
    printed = capsys.readouterr().out
    hits = json.loads(hits_json.read_text())[0]["hits"]
    assert hits and "gallery/000000" not in [h["tracklet_id"] for h in hits]
    page = report.read_text()
    assert "mismatch" not in page.replace(".mismatch", "") and "hit match" not in page
    assert "track" in printed and "pid" not in printed
    folders = {os.path.relpath(os.path.dirname(h["frames"][0]), out / "gallery")
               for h in hits}
    assert all(f in page for f in folders)


class _HalvesEncoder:
    """Test-only appearance: the mean colour of the upper and of the lower half of a crop."""

    def __call__(self, crops):
        halves = [(c[: len(c) // 2].mean((0, 1)), c[len(c) // 2:].mean((0, 1))) for c in crops]
        return np.asarray([np.concatenate(h) for h in halves], np.float32).reshape(-1, 6) + 1.0

    @staticmethod
    def lower_body(embeddings):
        return np.asarray(embeddings)[:, 3:]


def test_lower_body_outliers_leave_crops_not_tracklets(scenes, tmp_path):
    """With an encoder that has ``lower_body``, crops whose lower half is unlike their
    tracklet's leave it; no tracklet is lost to the rule, and the setting is recorded."""
    common = dict(camera=0, detector="bgsub", tracker="sort", min_len=3, max_jump=None,
                  max_outlier=None, encoder=_HalvesEncoder(), encoder_id="halves")
    plain = ingest_video(scenes[0].video, tmp_path / "plain", **common)
    strict = ingest_video(scenes[0].video, tmp_path / "strict", max_lower_body_outlier=1e-4,
                          **common)
    assert plain.settings["max_lower_body_outlier"] is None
    assert strict.settings["max_lower_body_outlier"] == 1e-4
    assert strict.tracklets == plain.tracklets and strict.crops < plain.crops
