"""Detectors and trackers on rendered scene videos (vidreid.data.synth.scene), with truth.

    .venv/bin/python benchmarks/scene_tracking.py --seeds 0 1 2 3

For each seed, a 240x320, 80-frame scene of 4 people (crossings, a pole) is rendered; then

- each detector (``bgsub``, ``ssdlite``) is scored per frame against the truth boxes
  (recall, precision at IoU 0.5): ssdlite is a real-image pedestrian CNN and the people
  here are cartoons, so it is expected to do worse; it is reported, not tuned;
- each detector's boxes are tracked by ``sort`` and ``reid`` (appearance: the default
  ImageNet MobileNetV2 encoder of ``vidreid ingest``), cut by ingest's rules (min_len 8,
  max_gap 10, merged-box and appearance-jump cuts for reid) and scored with motmetrics
  (MOTA, IDF1) as tests/retrieval/test_track.py does.

Prints one JSON line per (seed, detector, tracker) and the means.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vidreid.data.synth.scene import render_scene  # noqa: E402
from vidreid.retrieval.detect import build_detector  # noqa: E402
from vidreid.retrieval.ingest import DEFAULT_MAX_JUMP, MAX_PERSON_WIDTH_RATIO  # noqa: E402
from vidreid.retrieval.track import (  # noqa: E402
    build_tracker,
    cut_tracklets,
    evaluate_mot,
    iou_matrix,
)

MATCH_IOU = 0.5


def detections(video: str, name: str):
    import cv2

    det = build_detector(name)
    cap = cv2.VideoCapture(video)
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    cap.release()
    return frames, [det(f) for f in frames]


def detector_scores(truth: np.ndarray, boxes: list[np.ndarray]) -> dict:
    tp = n_truth = n_det = 0
    for f, b in enumerate(boxes):
        g = truth[truth[:, 0] == f][:, 2:6]
        g = np.column_stack([g[:, 0], g[:, 1], g[:, 0] + g[:, 2], g[:, 1] + g[:, 3]])
        n_truth, n_det = n_truth + len(g), n_det + len(b)
        if len(g) and len(b):
            from scipy.optimize import linear_sum_assignment

            iou = iou_matrix(g, b)
            r, c = linear_sum_assignment(-iou)
            tp += int((iou[r, c] >= MATCH_IOU).sum())
    return {"recall": round(tp / max(n_truth, 1), 3), "precision": round(tp / max(n_det, 1), 3)}


def track(frames, boxes, tracker: str, encoder) -> np.ndarray:
    import cv2

    trk = build_tracker(tracker, max_age=10)
    rows, embeds = [], []
    for f, (frame, b) in enumerate(zip(frames, boxes, strict=True)):
        e = None
        if tracker == "reid" and len(b):
            crops = []
            for x in b:
                x1, y1 = max(0, int(x[0])), max(0, int(x[1]))
                crop = frame[y1:max(y1 + 1, int(np.ceil(x[3]))), x1:max(x1 + 1, int(np.ceil(x[2])))]
                crops.append(cv2.cvtColor(crop, cv2.COLOR_BGR2RGB))
            e = encoder(crops)
            embeds.append(e)
        ids = trk.update(b, e if tracker == "reid" else None)
        rows += [(f, i, x[0], x[1], x[2] - x[0], x[3] - x[1]) for x, i in zip(b, ids, strict=True)]
    rows_a = np.asarray(rows, float).reshape(-1, 6)
    emb = np.concatenate(embeds) if embeds else None
    keep = rows_a[:, 4] <= MAX_PERSON_WIDTH_RATIO * rows_a[:, 5]
    cuts = cut_tracklets(rows_a[:, 0], rows_a[:, 1], min_len=8, max_gap=10, keep=keep,
                         embeddings=emb, max_jump=DEFAULT_MAX_JUMP if emb is not None else None)
    if not cuts:
        return np.zeros((0, 6))
    return np.concatenate([np.column_stack([rows_a[c, 0], np.full(len(c), k + 1), rows_a[c, 2:]])
                           for k, c in enumerate(cuts)])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    p.add_argument("--detectors", default="bgsub,ssdlite")
    args = p.parse_args()
    from vidreid.retrieval.ingest_commands import imagenet_encoder

    encoder, _ = imagenet_encoder()
    results: dict[tuple[str, str], list[dict]] = {}
    det_results: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            s = render_scene(Path(tmp) / f"{seed}.avi", Path(tmp) / f"{seed}.csv",
                             num_frames=80, people=4, seed=seed)
            for name in args.detectors.split(","):
                frames, boxes = detections(s.video, name)
                ds = detector_scores(s.boxes, boxes)
                det_results.setdefault(name, []).append(ds)
                print(json.dumps({"seed": seed, "detector": name, **ds}), flush=True)
                for tracker in ("sort", "reid"):
                    hyp = track(frames, boxes, tracker, encoder)
                    m = evaluate_mot(s.boxes, hyp, frames=list(range(len(frames))))
                    res = {k: round(m[k], 3) for k in ("mota", "idf1", "num_switches")}
                    results.setdefault((name, tracker), []).append(res)
                    print(json.dumps({"seed": seed, "detector": name, "tracker": tracker,
                                      **res}), flush=True)
    for name, rs in det_results.items():
        print("mean " + json.dumps({"detector": name, **{k: round(float(np.mean(
            [r[k] for r in rs])), 3) for k in ("recall", "precision")}}))
    for (name, tracker), rs in results.items():
        print("mean " + json.dumps({"detector": name, "tracker": tracker, **{
            k: round(float(np.mean([r[k] for r in rs])), 3) for k in ("mota", "idf1")}}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
