"""Real footage: ``vidreid ingest``'s default pipeline on a video, with per-stage speed.

    .venv/bin/python benchmarks/ingest_real.py --video ../shared/data/vtest.avi --reference

Runs the ingest as the CLI does by default (ssdlite detector on frame + 2x2 tiles on every
2nd frame, boxes interpolated between, reid tracker with the fast ImageNet MobileNetV2
appearance encoder, appearance-jump and merged-box cuts, one torch thread) and prints, as
JSON lines:

- ``stages``: wall and CPU seconds and frames/s of each stage (decode, detect, encode,
  track, write[, draw]) and end to end, with ``uptime``'s load average before and after
  (the machine may be shared: compare CPU seconds too);
- with ``--reference``: ``reference_stages``, the same frames through the previous
  pipeline (detector on every frame, torch's default threads, the autocast
  FeatureExtractor as encoder), and ``speedup`` (reference / default, CPU and wall, per
  stage and end to end), measured in the same run;
- ``interpolation``: on a run with ``--every 1`` (``--reference`` gives one), IoU between
  each tracklet box and the interpolation of its two neighbours two frames apart: what
  ``--every 2`` puts where the detector did not run;
- ``--encoder-sizes``: ``encoder_size``: how well the appearance encoder (the former one,
  and the default at three input sizes) separates one person's boxes (matched across
  consecutive frames at IoU >= 0.7) from two people's side by side in one frame (ROC AUC),
  and its CPU ms per crop;
- ``--detector-views``: ``detector_views``: one-view alternatives (larger inputs) against
  the five-view output: recall of its boxes at IoU 0.5 and CPU ms per frame;
- ``--view-fusion``: ``view_fusion``: on every 10th frame, the boxes the detector's view
  merge keeps with the full frame yielding to the tiles (the default) and with plain NMS
  across views, and the boxes only one of them has (pictures in ``OUT/fusion/``);
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

from vidreid.retrieval.ingest import (  # noqa: E402
    DEFAULT_EVERY,
    DEFAULT_THREADS,
    ingest_video,
    read_manifest,
)
from vidreid.retrieval.ingest_commands import (  # noqa: E402
    CropEncoder,
    appearance_thresholds,
    imagenet_encoder,
)
from vidreid.retrieval.track import iou_matrix  # noqa: E402

SHEET_COLS = 8
SHEET_ROWS = 3
CELL = (128, 64)  # H, W of a crop on a sheet
INDEX_CROPS = 6
FUSION_STEP = 10  # --view-fusion looks at every 10th frame


def default_video() -> str:
    """$VIDREID_VTEST, else ``shared/data/vtest.avi`` beside the checkout (main or a
    worktree under ``wt/``)."""
    if os.environ.get("VIDREID_VTEST"):
        return os.environ["VIDREID_VTEST"]
    for base in (ROOT.parent, ROOT.parent.parent):
        if (base / "shared" / "data" / "vtest.avi").is_file():
            return str(base / "shared" / "data" / "vtest.avi")
    return str(ROOT.parent / "shared" / "data" / "vtest.avi")


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


def reference_encoder():
    """The previous default encoder: the FeatureExtractor (autocast bf16, unfolded BN,
    torchvision transforms per crop) on ImageNet MobileNetV2 at 128 x 64."""
    from vidreid.models.backbones.weights import imagenet_weights_path
    from vidreid.retrieval.extractor import FeatureExtractor

    cfg = {"data": {"name": "folder", "height": 128, "width": 64, "seq_len": 1,
                    "test_sampling": "evenly"},
           "model": {"name": "video_baseline", "backbone": "mobilenetv2", "head": "tp",
                     "weights": imagenet_weights_path("mobilenetv2"), "last_stride": 2}}
    return CropEncoder(FeatureExtractor(cfg, None, "cpu", num_workers=0)), "reference"


def run_ingest(video: str, out: Path, args: argparse.Namespace, *, every: int,
               threads: int | None, encoder, encoder_id: str, draw: bool) -> dict:
    """One ingest run; its per-stage and end-to-end figures."""
    load0 = load()
    t0, c0 = time.perf_counter(), time.process_time()
    limits = appearance_thresholds(encoder)
    tracker_options = {"max_age": 10}
    if limits["max_appearance_distance"] is not None:
        tracker_options["max_appearance_distance"] = limits["max_appearance_distance"]
    s = ingest_video(video, out, 0, detector="ssdlite",
                     detector_options={"tiles": args.tiles}, every=every,
                     tracker="reid", tracker_options=tracker_options, encoder=encoder,
                     encoder_id=encoder_id, start=args.start, max_frames=args.max_frames,
                     batch_frames=args.batch, threads=threads, max_jump=limits["max_jump"],
                     max_outlier=limits["max_outlier"],
                     max_lower_body_outlier=limits["max_lower_body_outlier"],
                     draw=out.parent / f"{out.name}.mp4" if draw else None)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    stages = {k: {"wall_s": round(v, 2), "cpu_s": round(s.stage_cpu_seconds[k], 2),
                  "frames_per_s_wall": round(s.frames_decoded / v, 1) if v else None}
              for k, v in s.stage_seconds.items()}
    return {"frames": s.frames_decoded, "frames_detected": s.frames_detected, "every": every,
            "torch_threads": threads or torch_threads(), "stages": stages,
            "end_to_end_wall_s": round(wall, 2), "end_to_end_cpu_s": round(cpu, 2),
            "end_to_end_frames_per_s_wall": round(s.frames_decoded / wall, 2),
            "cpu_ms_per_frame": round(cpu / s.frames_decoded * 1000, 1),
            "end_to_end_frames_per_s_if_2_cores_were_ours": round(s.frames_decoded / cpu * 2,
                                                                   2),
            "load_before": load0, "load_after": load(), "_summary": s}


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def tracklet_report(s) -> dict:
    lengths = np.asarray(s.tracklet_lengths)
    return {"detections": s.detections, "tracks": s.tracks, "tracklets": s.tracklets,
            "crops": s.crops, "length_min_q1_median_q3_max": [
                int(lengths.min()), *(float(np.percentile(lengths, q)) for q in (25, 50, 75)),
                int(lengths.max())],
            "lengths": [int(x) for x in lengths]}


def interpolation_iou(out: Path, every: int = DEFAULT_EVERY) -> dict:
    """IoU between each tracklet box and the interpolation of its neighbours ``every``
    frames either side (on an output where every frame was detected)."""
    boxes: dict[tuple[str, int], np.ndarray] = {}
    for r in read_manifest(out):
        boxes[(r.path.rsplit("/", 1)[0], r.frame)] = np.array([r.x, r.y, r.x + r.w, r.y + r.h])
    ious = []
    for (key, f), b in boxes.items():
        if f % every == 0:
            continue
        lo, hi = f - f % every, f - f % every + every
        if (key, lo) in boxes and (key, hi) in boxes:
            t = (f - lo) / every
            mid = (1 - t) * boxes[(key, lo)] + t * boxes[(key, hi)]
            ious.append(float(iou_matrix(b[None], mid[None])[0, 0]))
    ious = np.asarray(ious)
    return {"every": every, "boxes": len(ious),
            "iou_pct_5_25_50": [round(float(np.percentile(ious, q)), 3) for q in (5, 25, 50)]
            if len(ious) else None,
            "share_iou_ge_0.5": round(float((ious >= 0.5).mean()), 4) if len(ious) else None}


def read_frames(video: str, wanted: set[int]) -> dict[int, np.ndarray]:
    import cv2

    cap = cv2.VideoCapture(video)
    out, i = {}, 0
    while i <= max(wanted):
        ok, frame = cap.read()
        if not ok:
            break
        if i in wanted:
            out[i] = frame
        i += 1
    cap.release()
    return out


def detector_views(video: str, args: argparse.Namespace) -> list[dict]:
    """One-view alternatives against the five-view output (recall at IoU 0.5)."""
    import torch

    from vidreid.retrieval.ssdlite import SSDLiteDetector

    torch.set_num_threads(DEFAULT_THREADS)
    frames = read_frames(video, set(range(0, 795, 8)))
    keys = sorted(frames)
    ref_det = SSDLiteDetector(tiles=2)
    ref = {}
    for i in range(0, len(keys), 4):
        part = keys[i:i + 4]
        ref.update(zip(part, ref_det.detect_batch([frames[k] for k in part]), strict=True))
    rows = []
    for kw in [dict(tiles=2), dict(tiles=0), dict(tiles=0, input_size=(384, 384)),
               dict(tiles=0, input_size=(432, 432)), dict(tiles=0, input_size=(432, 576))]:
        det = SSDLiteDetector(**kw)
        det.detect_batch([frames[keys[0]]])
        c0 = time.process_time()
        hit = total = extra = 0
        for i in range(0, len(keys), 4):
            part = keys[i:i + 4]
            for k, b in zip(part, det.detect_batch([frames[k] for k in part]), strict=True):
                r = ref[k]
                total += len(r)
                if len(r) and len(b):
                    m = iou_matrix(r[:, :4], b[:, :4])
                    hit += int((m.max(1) >= 0.5).sum())
                    extra += int((m.max(0) < 0.5).sum())
                else:
                    extra += len(b)
        rows.append({"views": len(det.views(frames[keys[0]])), **{k: v for k, v in kw.items()},
                     "cpu_ms_per_frame": round((time.process_time() - c0) / len(keys) * 1000, 1),
                     "recall_of_5_views": round(hit / max(total, 1), 3),
                     "boxes_not_in_5_views": extra, "frames": len(keys)})
    return rows


def view_fusion(video: str, out: Path) -> dict:
    """The merge of the detector's five views with and without the full frame yielding to
    the tiles (``ssdlite.FULL_FRAME_YIELD``) on every 10th frame: boxes each keeps, and the
    boxes of one with no box of the other at IoU 0.5 (their pictures, the kept boxes in
    green, in ``out/fusion/`` for a look)."""
    import cv2
    import torch

    from vidreid.retrieval.ssdlite import SSDLiteDetector, merge_views

    torch.set_num_threads(DEFAULT_THREADS)
    frames = read_frames(video, set(range(1, 795, FUSION_STEP)))
    det = SSDLiteDetector(tiles=2)
    counts = {"frames": len(frames), "plain_nms": 0, "full_frame_yields": 0,
              "only_plain_nms": 0, "only_full_frame_yields": 0}
    dest = out / "fusion"
    dest.mkdir(parents=True, exist_ok=True)
    for k in sorted(frames):
        views = det.view_boxes([frames[k]])[0]
        plain = merge_views(views, frames[k].shape, full_frame_yield=None)
        new = merge_views(views, frames[k].shape)
        counts["plain_nms"] += len(plain)
        counts["full_frame_yields"] += len(new)
        for a, b, key in ((plain, new, "only_plain_nms"), (new, plain, "only_full_frame_yields")):
            miss = a if not len(b) else a[iou_matrix(a[:, :4], b[:, :4]).max(1) < 0.5]
            counts[key] += len(miss)
            for box in miss:
                pic = frames[k].copy()
                for q in new:
                    cv2.rectangle(pic, (int(q[0]), int(q[1])), (int(q[2]), int(q[3])),
                                  (0, 255, 0), 1)
                cv2.rectangle(pic, (int(box[0]), int(box[1])), (int(box[2]), int(box[3])),
                              (0, 0, 255), 1)
                x1, y1 = max(int(box[0]) - 60, 0), max(int(box[1]) - 30, 0)
                cv2.imwrite(str(dest / f"{key}_{k:04d}_{int(box[0])}.png"),
                            pic[y1:int(box[3]) + 30, x1:int(box[2]) + 60])
    return counts


def encoder_sizes(video: str) -> list[dict]:
    """Separation of one person's boxes from two people's by the appearance encoder."""
    import cv2
    import torch

    from vidreid.retrieval.appearance import ImageNetCropEncoder
    from vidreid.retrieval.ssdlite import SSDLiteDetector

    torch.set_num_threads(DEFAULT_THREADS)
    starts = list(range(0, 794, 8))
    frames = read_frames(video, {f for s in starts for f in (s, s + 1)})
    det = SSDLiteDetector(tiles=2)
    boxes = {f: det(frames[f]) for f in sorted(frames)}
    crops, index = [], {}
    for f in sorted(frames):
        for j, b in enumerate(boxes[f]):
            x1, y1, x2, y2 = (int(v) for v in b[:4])
            index[(f, j)] = len(crops)
            crops.append(cv2.cvtColor(frames[f][max(y1, 0):y2, max(x1, 0):x2],
                                      cv2.COLOR_BGR2RGB))
    same, near = [], []
    for s in starts:
        a, b = boxes[s], boxes[s + 1]
        if len(a) and len(b):
            m = iou_matrix(a[:, :4], b[:, :4])
            for i in range(len(a)):
                j = int(m[i].argmax())
                if m[i, j] >= 0.7 and int(m[:, j].argmax()) == i:
                    same.append((index[(s, i)], index[(s + 1, j)]))
        m = iou_matrix(a[:, :4], a[:, :4]) if len(a) else None
        for i in range(len(a)):
            for j in range(i + 1, len(a)):
                ci, cj = (a[i, :2] + a[i, 2:4]) / 2, (a[j, :2] + a[j, 2:4]) / 2
                w, h = a[i, 2] - a[i, 0], a[i, 3] - a[i, 1]
                if m[i, j] < 0.3 and abs(ci[0] - cj[0]) < 1.5 * w and abs(ci[1] - cj[1]) < h / 2:
                    near.append((index[(s, i)], index[(s, j)]))
    rows = []
    candidates = [("former: last layer GAP, autocast extractor", (128, 64), reference_encoder()[0])]
    candidates += [("default: layer2 stripes + HSV stripes", size, ImageNetCropEncoder(size))
                   for size in [(128, 64), (96, 48), (64, 32)]]
    for name, size, enc in candidates:
        enc(crops[:16])
        c0 = time.process_time()
        e = np.concatenate([enc(crops[i:i + 16]) for i in range(0, len(crops), 16)])
        ms = (time.process_time() - c0) / len(crops) * 1000
        e /= np.linalg.norm(e, axis=1, keepdims=True)
        ds = np.array([1 - e[a] @ e[b] for a, b in same])
        dn = np.array([1 - e[a] @ e[b] for a, b in near])
        auc = float((dn[None, :] > ds[:, None]).mean())
        rows.append({"encoder": name, "size": size, "cpu_ms_per_crop": round(ms, 2), "same_pairs": len(ds),
                     "near_different_pairs": len(dn), "same_median": round(float(np.median(ds)), 3),
                     "near_different_median": round(float(np.median(dn)), 3),
                     "auc_same_vs_near_different": round(auc, 3)})
    return rows


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
    p.add_argument("--video", default=default_video(),
                   help="default: $VIDREID_VTEST, else shared/data/vtest.avi beside the checkout")
    p.add_argument("--out", default=str(ROOT / "runs" / "ingest_real"))
    p.add_argument("--start", type=int, default=0)
    p.add_argument("--max-frames", type=int)
    p.add_argument("--every", type=int, default=DEFAULT_EVERY)
    p.add_argument("--threads", type=int, default=DEFAULT_THREADS,
                   help="torch threads of the default run")
    p.add_argument("--tiles", type=int, default=2)
    p.add_argument("--batch", type=int, default=4, help="frames per detector call")
    p.add_argument("--draw", action="store_true", help="also write OUT/tracklets.mp4")
    p.add_argument("--reference", action="store_true",
                   help="also run the previous pipeline on the same frames (speedup, "
                   "interpolation IoU)")
    p.add_argument("--encoder-sizes", action="store_true")
    p.add_argument("--detector-views", action="store_true")
    p.add_argument("--view-fusion", action="store_true",
                   help="also compare the detector's view merge with plain NMS across views")
    p.add_argument("--no-appearance-stats", action="store_true")
    p.add_argument("--existing", help="report on this finished ingest output instead")
    args = p.parse_args()
    if args.existing:
        return report_existing(Path(args.existing), Path(args.out), args)

    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    print("machine: " + json.dumps({"cpus": os.cpu_count(), "load": load()}), flush=True)
    if args.encoder_sizes:
        for row in encoder_sizes(args.video):
            print("encoder_size: " + json.dumps(row), flush=True)
    if args.detector_views:
        for row in detector_views(args.video, args):
            print("detector_views: " + json.dumps(row), flush=True)
    if args.view_fusion:
        print("view_fusion: " + json.dumps(view_fusion(args.video, out)), flush=True)

    encoder, encoder_id = imagenet_encoder()
    run = run_ingest(args.video, out / "tracklets", args, every=args.every,
                     threads=args.threads, encoder=encoder, encoder_id=encoder_id,
                     draw=args.draw)
    s = run.pop("_summary")
    print("stages: " + json.dumps(run), flush=True)
    print("tracklets: " + json.dumps(tracklet_report(s)), flush=True)
    if args.reference:
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(os.cpu_count() or 1)  # torch's own default
        ref_encoder, ref_id = reference_encoder()
        ref = run_ingest(args.video, out / "reference", args, every=1, threads=None,
                         encoder=ref_encoder, encoder_id=ref_id, draw=False)
        torch.set_num_threads(threads)
        ref_summary = ref.pop("_summary")
        print("reference_stages: " + json.dumps(ref), flush=True)
        print("reference_tracklets: " + json.dumps(tracklet_report(ref_summary)), flush=True)
        speed = {k: {"cpu": round(v["cpu_s"] / run["stages"][k]["cpu_s"], 2)
                     if run["stages"].get(k, {}).get("cpu_s") else None,
                     "wall": round(v["wall_s"] / run["stages"][k]["wall_s"], 2)
                     if run["stages"].get(k, {}).get("wall_s") else None}
                 for k, v in ref["stages"].items()}
        speed["end_to_end"] = {"cpu": round(ref["end_to_end_cpu_s"] / run["end_to_end_cpu_s"], 2),
                               "wall": round(ref["end_to_end_wall_s"]
                                             / run["end_to_end_wall_s"], 2)}
        print("speedup_reference_over_default: " + json.dumps(speed), flush=True)
        print("interpolation: " + json.dumps(interpolation_iou(out / "reference",
                                                               max(args.every, 2))), flush=True)
    names = contact_sheets(out / "tracklets", out / "sheets")
    print(f"contact sheets: {len(names)} in {out / 'sheets'}")
    if not args.no_appearance_stats:
        print("appearance: " + json.dumps(appearance_stats(out / "tracklets", encoder)))
    print("load_end: " + load())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
