"""Real footage: ``vidreid ingest``'s default pipeline on a video, with per-stage speed.

    .venv/bin/python benchmarks/ingest_real.py --video ../shared/data/vtest.avi

Runs the ingest as the CLI does by default (ssdlite detector on frame + 2x2 tiles, reid
tracker with the ImageNet MobileNetV2 appearance encoder, appearance-jump and merged-box
cuts) and prints, as JSON lines:

- ``stages``: wall and CPU seconds and frames/s of each stage (decode, detect, encode,
  track, write[, draw]) and end to end, with ``uptime``'s load average before and after
  (the machine may be shared: compare CPU seconds too);
- ``detector_forward``: the detector alone on ``--batch`` frames per call (ms per frame);
- ``tracklets``: count, length distribution (min, quartiles, max);
- ``appearance``: cosine distances of the encoder between the two halves of each tracklet
  (same person if the tracklet is clean) and between tracklets seen in the same frame
  (surely different people): the data behind ``--max-jump`` and
  ``--max-appearance-distance``.

Writes ``OUT/sheets/<pid>_<cam>_<no>.png``: a contact sheet per tracklet (sampled crops in
a grid, frame numbers underneath), to look at every tracklet; ``OUT/sheets/index.png`` puts
a few crops of every tracklet on one image. ``--draw`` also writes the video with boxes.
``--existing DIR`` skips the runs and reports on a finished ``vidreid ingest`` output (its
``ingest.json`` holds the stage timings), e.g. one made with the CLI's defaults:
``vidreid ingest vtest.avi --camera 0 --out DIR --draw DIR.mp4``.
"""

from __future__ import annotations

import argparse
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
from vidreid.retrieval.ingest_commands import imagenet_encoder  # noqa: E402

SHEET_COLS = 8
SHEET_ROWS = 3
CELL = (128, 64)  # H, W of a crop on a sheet
INDEX_CROPS = 6


def load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def tracklet_groups(out: Path) -> dict[str, list]:
    groups: dict[str, list] = {}
    for r in read_manifest(out):
        groups.setdefault(r.path.rsplit("/", 1)[0], []).append(r)
    return groups


def _cell(path: Path, label: str):
    import cv2

    img = cv2.imread(str(path))
    img = cv2.resize(img, (CELL[1], CELL[0]))
    canvas = np.full((CELL[0] + 14, CELL[1], 3), 255, np.uint8)
    canvas[:CELL[0]] = img
    cv2.putText(canvas, label, (2, CELL[0] + 11), cv2.FONT_HERSHEY_SIMPLEX, 0.33, (0, 0, 0), 1,
                cv2.LINE_AA)
    return canvas


def contact_sheets(out: Path, dest: Path) -> list[str]:
    """One PNG per tracklet plus an index of all; returns the tracklet names."""
    import cv2

    dest.mkdir(parents=True, exist_ok=True)
    groups = tracklet_groups(out)
    rows_index = []
    for rel, recs in sorted(groups.items(), key=lambda kv: kv[1][0].frame):
        n = min(SHEET_COLS * SHEET_ROWS, len(recs))
        pick = np.linspace(0, len(recs) - 1, n).round().astype(int)
        cells = [_cell(out / recs[i].path, str(recs[i].frame)) for i in pick]
        cells += [np.full_like(cells[0], 255)] * (-len(cells) % SHEET_COLS)
        grid = np.vstack([np.hstack(cells[i:i + SHEET_COLS])
                          for i in range(0, len(cells), SHEET_COLS)])
        name = rel.split("/", 1)[1].replace("/", "_")
        head = np.full((18, grid.shape[1], 3), 255, np.uint8)
        cv2.putText(head, f"{rel}: {len(recs)} crops, frames {recs[0].frame}-{recs[-1].frame}",
                    (2, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        cv2.imwrite(str(dest / f"{name}.png"), np.vstack([head, grid]))
        pick = np.linspace(0, len(recs) - 1, INDEX_CROPS).round().astype(int)
        row = [_cell(out / recs[i].path, str(recs[i].frame)) for i in pick]
        label = np.full((row[0].shape[0], 90, 3), 255, np.uint8)
        cv2.putText(label, name, (2, 60), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 1,
                    cv2.LINE_AA)
        rows_index.append(np.hstack([label, *row]))
    per_image = 12
    for k in range(0, len(rows_index), per_image):
        cv2.imwrite(str(dest / f"index-{k // per_image:02d}.png"),
                    np.vstack(rows_index[k:k + per_image]))
    return list(groups)


def appearance_stats(out: Path, encoder) -> dict:
    """Cosine distance of mean embeddings: halves of one tracklet vs co-occurring tracklets."""
    import cv2

    groups = tracklet_groups(out)
    means, halves, frames = {}, [], {}
    for rel, recs in groups.items():
        crops = [cv2.cvtColor(cv2.imread(str(out / r.path)), cv2.COLOR_BGR2RGB) for r in recs]
        e = encoder(crops)
        e /= np.linalg.norm(e, axis=1, keepdims=True)
        h = len(e) // 2
        a, b = e[:h].mean(0), e[h:].mean(0)
        halves.append(1 - a @ b / np.linalg.norm(a) / np.linalg.norm(b))
        m = e.mean(0)
        means[rel] = m / np.linalg.norm(m)
        frames[rel] = {r.frame for r in recs}
    names = list(groups)
    between = [1 - means[a] @ means[b] for i, a in enumerate(names) for b in names[i + 1:]
               if frames[a] & frames[b]]
    pct = (5, 25, 50, 75, 95)
    return {"within_tracklet_halves_pct": {p: round(float(np.percentile(halves, p)), 3)
                                           for p in pct},
            "between_cooccurring_pct": {p: round(float(np.percentile(between, p)), 3)
                                        for p in pct} if between else None,
            "pairs": len(between)}


def stage_report(summary: dict) -> dict:
    """Per-stage wall/CPU seconds and frames/s from an ``ingest.json``."""
    n = summary["frames_decoded"]
    wall, cpu = summary["stage_seconds"], summary["stage_cpu_seconds"]
    total_wall, total_cpu = sum(wall.values()), sum(cpu.values())
    return {"frames": n, "stages": {k: {"wall_s": round(v, 2), "cpu_s": round(cpu[k], 2),
                                        "frames_per_s_wall": round(n / v, 1) if v else None}
                                    for k, v in wall.items()},
            "sum_of_stages_wall_s": round(total_wall, 2),
            "sum_of_stages_cpu_s": round(total_cpu, 2),
            "frames_per_s_wall": round(n / total_wall, 2),
            "frames_per_s_if_2_cores_were_ours": round(n / total_cpu * 2, 2)}


def report_existing(src: Path, out: Path, args: argparse.Namespace) -> int:
    summary = json.loads((src / "ingest.json").read_text())
    print("stages: " + json.dumps({**stage_report(summary), "load_now": load()}))
    lengths = np.asarray(summary["tracklet_lengths"])
    print("tracklets: " + json.dumps({
        "detections": summary["detections"], "tracks": summary["tracks"],
        "tracklets": summary["tracklets"], "crops": summary["crops"],
        "length_min_q1_median_q3_max": [
            int(lengths.min()), *(float(np.percentile(lengths, q)) for q in (25, 50, 75)),
            int(lengths.max())]}), flush=True)
    names = contact_sheets(src, out / "sheets")
    print(f"contact sheets: {len(names)} in {out / 'sheets'}")
    if not args.no_appearance_stats:
        encoder, _ = imagenet_encoder()
        print("appearance: " + json.dumps(appearance_stats(src, encoder)))
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--video", default=str(ROOT.parent / "shared" / "data" / "vtest.avi"))
    p.add_argument("--out", default=str(ROOT / "runs" / "ingest_real"))
    p.add_argument("--max-frames", type=int)
    p.add_argument("--every", type=int, default=1)
    p.add_argument("--tiles", type=int, default=2)
    p.add_argument("--batch", type=int, default=4, help="frames per detector call")
    p.add_argument("--draw", action="store_true", help="also write OUT/drawn.mp4")
    p.add_argument("--no-appearance-stats", action="store_true")
    p.add_argument("--existing", help="report on this finished ingest output instead")
    args = p.parse_args()
    if args.existing:
        return report_existing(Path(args.existing), Path(args.out), args)

    import cv2
    import torch

    from vidreid.retrieval.ssdlite import SSDLiteDetector

    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)

    # Detector alone (the video's first frames).
    cap = cv2.VideoCapture(args.video)
    frames = [cap.read()[1] for _ in range(3 * args.batch)]
    cap.release()
    det = SSDLiteDetector(tiles=args.tiles)
    det.detect_batch(frames[: args.batch])  # warm-up
    load0 = load()
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(args.batch, len(frames), args.batch):
        det.detect_batch(frames[i:i + args.batch])
    n = len(frames) - args.batch
    print("detector_forward: " + json.dumps({
        "views_per_frame": len(det.views(frames[0])), "precision": det.precision,
        "threads": torch.get_num_threads(), "batch_frames": args.batch,
        "ms_per_frame_wall": round((time.perf_counter() - t0) / n * 1000, 1),
        "ms_per_frame_cpu": round((time.process_time() - c0) / n * 1000, 1),
        "load_before": load0, "load_after": load()}), flush=True)

    encoder, encoder_id = imagenet_encoder()
    load0 = load()
    t0, c0 = time.perf_counter(), time.process_time()
    s = ingest_video(args.video, out / "tracklets", 0, detector="ssdlite",
                     detector_options={"tiles": args.tiles}, every=args.every,
                     tracker="reid", tracker_options={"max_age": 10}, encoder=encoder,
                     encoder_id=encoder_id, max_frames=args.max_frames,
                     batch_frames=args.batch, draw=out / "drawn.mp4" if args.draw else None)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    stages = {k: {"wall_s": round(v, 2), "cpu_s": round(s.stage_cpu_seconds[k], 2),
                  "frames_per_s_wall": round(s.frames_decoded / v, 1) if v else None}
              for k, v in s.stage_seconds.items()}
    print("stages: " + json.dumps({
        "frames": s.frames_decoded, "frames_detected": s.frames_detected, "stages": stages,
        "end_to_end_wall_s": round(wall, 2), "end_to_end_cpu_s": round(cpu, 2),
        "end_to_end_frames_per_s_wall": round(s.frames_decoded / wall, 2),
        "end_to_end_frames_per_s_if_2_cores_were_ours": round(s.frames_decoded / cpu * 2, 2),
        "load_before": load0, "load_after": load()}), flush=True)
    lengths = np.asarray(s.tracklet_lengths)
    print("tracklets: " + json.dumps({
        "detections": s.detections, "tracks": s.tracks, "tracklets": s.tracklets,
        "crops": s.crops, "length_min_q1_median_q3_max": [
            int(lengths.min()), *(float(np.percentile(lengths, q)) for q in (25, 50, 75)),
            int(lengths.max())]}), flush=True)
    names = contact_sheets(out / "tracklets", out / "sheets")
    print(f"contact sheets: {len(names)} in {out / 'sheets'}")
    if not args.no_appearance_stats:
        print("appearance: " + json.dumps(appearance_stats(out / "tracklets", encoder)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
