"""VRSTC on ``synth-occluded``: occlusion detection, completion quality, re-ID raw vs completed.

    .venv/bin/python benchmarks/vrstc_occlusion.py [--reid-run RUN] [--stc-steps N]
        [--epochs N] [--tau T] [--out FILE.md]

About 8 minutes on 2 CPU cores (re-ID ~1.3 min twice, STCnet 300 steps ~4 min). STCnet
works at 64x32 (``configs/vrstc/stc/synth.yaml``); the locator and the ID guider see 128x64.

``synth-occluded`` (``benchmarks/accuracy.py``) is the synthetic MARS layout with an occlusion
event in half the tracklets; its generator records, per frame, the person's silhouette, the
occluder's pixels, the clean render and an ``occluded`` flag
(``vidreid/data/synth/ground_truth.py``). With that truth we measure the three parts of VRSTC:

1. **Occlusion detection** (the locator, tau = 0.89 on 3 stripes of the re-ID network's map):
   precision / recall of the frame flag against the generator's ``occluded`` flag, and of the
   stripe flags against stripe truth (a stripe is occluded when the occluder hides at least
   ``STRIPE_TRUTH_FRACTION`` of the person's pixels in it; our definition); and the stripe
   precision / recall at other thresholds (``TAU_SWEEP``) on the train and test splits.
2. **Completion quality** on occluded test frames, holes = the truly occluded stripes (oracle
   masks, so that completion is judged apart from detection): PSNR and SSIM
   (``skimage.metrics``) of the hole against the clean render, for STCnet and two plain
   baselines: *copy* (the same stripe of the nearest frame with no occluded stripe) and *mean*
   (the hole filled with the mean colour of the frame's visible pixels); *input* is the
   occluded frame itself.
3. **Re-ID**: the VRSTC re-ID network (``configs/vrstc/bench_vrstc.yaml``, the accuracy
   benchmark's budget) trained and tested on the raw data, then on the dataset completed by
   the whole pipeline (detected masks, ``complete_dataset``).

Without ``--reid-run`` the raw re-ID network is trained first (it is the locator and the ID
guider); with it, the run folder's ``last.pt`` is evaluated instead.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

BENCH = "synth-occluded"
REID_CONFIG = REPO / "configs" / "vrstc" / "bench_vrstc.yaml"
STC_CONFIG = REPO / "configs" / "vrstc" / "stc" / "synth.yaml"
#: A stripe is truly occluded when the occluder hides at least this share of its person pixels.
STRIPE_TRUTH_FRACTION = 0.2
MAX_QUALITY_FRAMES = 400  # occluded test frames scored for completion quality
#: Thresholds of the detection sweep (the run itself uses the config's tau or --tau).
TAU_SWEEP = (0.89, 0.93, 0.95, 0.96, 0.97, 0.98)


def precision_recall(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    tp = int((pred & truth).sum())
    return {"precision": tp / max(int(pred.sum()), 1), "recall": tp / max(int(truth.sum()), 1),
            "predicted": int(pred.sum()), "true": int(truth.sum()), "total": int(truth.size)}


def stripe_truth(frames: tuple[str, ...], num_regions: int) -> np.ndarray:
    """``[T, R]`` bool stripe truth and the clean renders of one tracklet."""
    from vidreid.data.synth.ground_truth import load_frame_truth
    from vidreid.models.vrstc import stripe_bounds

    rows = []
    for p in frames:
        ft = load_frame_truth(p)
        hidden = ft.silhouette & ft.occluder
        flags = []
        for top, bottom in stripe_bounds(hidden.shape[0], num_regions):
            person = ft.silhouette[top:bottom].sum()
            flags.append(person > 0 and hidden[top:bottom].sum() >= STRIPE_TRUTH_FRACTION * person)
        rows.append(flags)
    return np.asarray(rows, dtype=bool)


def hole_scores(pred: np.ndarray, clean: np.ndarray, flags: np.ndarray) -> tuple[float, float]:
    """PSNR, SSIM over the flagged stripes (uint8 ``[H, W, 3]`` images)."""
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    from vidreid.models.vrstc import stripe_bounds

    bounds = stripe_bounds(pred.shape[0], len(flags))
    rows = np.concatenate([np.arange(*bounds[r]) for r in np.flatnonzero(flags)])
    a, b = clean[rows], pred[rows]
    psnr = peak_signal_noise_ratio(a, b, data_range=255)
    ssim = structural_similarity(a, b, channel_axis=2, data_range=255)
    return float(min(psnr, 100.0)), float(ssim)


def completion_quality(generator, dataset, truths: dict, num_regions: int, num_neighbours: int,
                       height: int, width: int) -> dict[str, dict[str, float]]:
    from vidreid.data.synth.ground_truth import load_frame_truth
    from vidreid.methods.vrstc.stc import complete_tracklet, load_tracklet
    from vidreid.models.vrstc import stripe_mask

    scores: dict[str, list[tuple[float, float]]] = {"input": [], "mean": [], "copy": [],
                                                    "stcnet": []}
    copy_fallbacks = 0
    tracklets = list(dict.fromkeys(t.frames for t in (*dataset.query, *dataset.gallery)))
    for frames in tracklets:
        flags = truths[frames]
        if not flags.any() or len(scores["stcnet"]) >= MAX_QUALITY_FRAMES:
            continue
        original, work = load_tracklet(frames, height, width)
        done = complete_tracklet(generator, original, work, torch.from_numpy(flags),
                                 num_neighbours)
        clean_frames = [t for t in range(len(frames)) if not flags[t].any()]
        for t, image in done.items():
            clean = load_frame_truth(frames[t]).clean
            if clean is None or len(scores["stcnet"]) >= MAX_QUALITY_FRAMES:
                continue
            orig = original[t].permute(1, 2, 0).numpy()
            hole = stripe_mask(torch.from_numpy(flags[t]), *orig.shape[:2])[0].numpy() > 0
            mean_fill = orig.copy()
            mean_fill[hole] = orig[~hole].mean(axis=0).round().astype(np.uint8) \
                if (~hole).any() else 128
            if clean_frames:
                near = min(clean_frames, key=lambda i: (abs(i - t), i))
                copy = orig.copy()
                copy[hole] = original[near].permute(1, 2, 0).numpy()[hole]
            else:
                copy, copy_fallbacks = mean_fill, copy_fallbacks + 1
            for key, pred in (("input", orig), ("mean", mean_fill), ("copy", copy),
                              ("stcnet", image.permute(1, 2, 0).numpy())):
                scores[key].append(hole_scores(pred, clean, flags[t]))
    out = {k: {"PSNR": float(np.mean([s[0] for s in v])), "SSIM": float(np.mean([s[1] for s in v])),
               "frames": len(v)} for k, v in scores.items()}
    out["copy"]["fallback_to_mean"] = copy_fallbacks
    return out


def reid_row(root: str, epochs: int, runs_dir: Path) -> dict:
    from accuracy import run_row

    return run_row(REID_CONFIG, root, epochs, runs_dir)


def evaluate_run(run: Path, root: str) -> tuple[dict, torch.nn.Module]:
    """Evaluate a finished bench_vrstc run folder on ``root``; returns metrics and the model."""
    from vidreid import build as B
    from vidreid.engine.config import load_config
    from vidreid.engine.inference import summarize_results

    cfg = load_config(run / "config.yaml", [f"data.root={root}", "data.options={}"])
    dataset = B.build_dataset(cfg)
    model = B.load_trained(str(run / "last.pt"), cfg).model
    m = summarize_results(B.evaluate(cfg, model, dataset, torch.device("cpu")))
    return {"v2v/R1": m["v2v/R1"], "v2v/mAP": m["v2v/mAP"], "run_dir": str(run)}, model


def main(argv: list[str] | None = None) -> int:
    from accuracy import BENCHMARKS, dataset_root

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench", default=BENCH, choices=sorted(BENCHMARKS),
                        help="synthetic set (synth-smoke checks the script in seconds)")
    parser.add_argument("--reid-run", type=Path, help="a finished bench_vrstc run on raw data")
    parser.add_argument("--epochs", type=int, help="re-ID budget (default: the benchmark's)")
    parser.add_argument("--stc-steps", type=int, help="STCnet steps (default: stc/synth.yaml)")
    parser.add_argument("--tau", type=float,
                        help="locator threshold (default: stc/synth.yaml's, the paper's 0.89)")
    parser.add_argument("--data-dir", default="runs/bench-data", type=Path)
    parser.add_argument("--runs-dir", default="runs/bench", type=Path)
    parser.add_argument("--out", type=Path, help="markdown (default runs/bench/vrstc.md)")
    args = parser.parse_args(argv)

    from vidreid.data import build_dataset
    from vidreid.methods.vrstc.config import load_stc_config, reid_input_size
    from vidreid.methods.vrstc.stc import complete_dataset, locate_tracklets, train_stc

    stc_cfg = load_stc_config(STC_CONFIG, [f"locator.tau={args.tau}"] if args.tau else [])
    regions, tau = stc_cfg.locator.num_regions, stc_cfg.locator.tau
    # generator working size; the locator / ID guider run at the re-ID network's size
    h, w, nn_ = stc_cfg.data.height, stc_cfg.data.width, stc_cfg.generator.num_neighbours
    reid_size = reid_input_size(stc_cfg)
    epochs = args.epochs or BENCHMARKS[args.bench]["epochs"]
    root = dataset_root(args.bench, args.data_dir, None)
    runs = args.runs_dir / "vrstc"
    t0 = time.perf_counter()
    if args.reid_run is None:
        row = reid_row(root, epochs, runs)
        raw, reid = evaluate_run(Path(row["run_dir"]), root)
    else:
        raw, reid = evaluate_run(args.reid_run, root)
    print(f"raw re-ID: {raw}", flush=True)
    reid.eval()

    # 1. detection
    dataset = build_dataset("mars", root)
    unique = list(dict.fromkeys(t.frames for t in (*dataset.train, *dataset.query,
                                                   *dataset.gallery)))
    from vidreid.data.tracklet import Tracklet

    t_locate = time.perf_counter()
    located = locate_tracklets(reid, [Tracklet(f, 0, 0) for f in unique], height=reid_size[0],
                               width=reid_size[1], num_regions=regions, tau=tau)
    print(f"located {len(unique)} tracklets in {time.perf_counter() - t_locate:.0f} s",
          flush=True)
    truths = {f: stripe_truth(f, regions) for f in unique}
    from vidreid.data.synth.ground_truth import load_tracklet_table

    ddir = Path(dataset.root)
    frame_flag = {str((ddir / p).resolve()): o for r in load_tracklet_table(root)
                  for p, o in zip(r["frames"], r["occluded"], strict=True)}
    pred_r = np.concatenate([x["occluded"] for x in located])
    true_r = np.concatenate([truths[f] for f in unique])
    pred_f = pred_r.any(axis=1)
    true_f = np.asarray([frame_flag[str(Path(p).resolve())] for f in unique for p in f])
    detection = {"frame": precision_recall(pred_f, true_f),
                 "stripe": precision_recall(pred_r, true_r)}
    print(f"detection: {detection}", flush=True)
    # the same scores at other thresholds, on the train split (where a tau may be chosen)
    # and on the test split
    train_set = {t.frames for t in dataset.train}
    sweep = {}
    for split in ("train", "test"):
        keep = [i for i, f in enumerate(unique) if (f in train_set) == (split == "train")]
        scores = np.concatenate([located[i]["scores"] for i in keep])
        truth = np.concatenate([truths[unique[i]] for i in keep])
        sweep[split] = {t: precision_recall(scores < t, truth) for t in TAU_SWEEP}

    # 2. STCnet training (train split, locator masks) and completion quality (oracle masks)
    train_located = [x["scores"] for f, x in zip(unique, located, strict=True)
                     if f in train_set]
    stc_path = runs / f"stc-{int(time.time())}.pt"
    t1 = time.perf_counter()
    stc = train_stc(
        reid, dataset.train, stc_path, height=h, width=w, num_regions=regions, tau=tau,
        num_neighbours=nn_, base_channels=stc_cfg.generator.base_channels,
        steps=args.stc_steps or stc_cfg.train.steps, batch_size=stc_cfg.train.batch_size,
        lr=stc_cfg.train.lr, betas=tuple(stc_cfg.train.betas), seed=stc_cfg.train.seed,
        locator_scores=train_located, source_tau=stc_cfg.locator.source_tau, reid_size=reid_size,
    )
    stc_minutes = (time.perf_counter() - t1) / 60
    print(f"STCnet: {stc['last']} ({stc_minutes:.1f} min)", flush=True)
    from vidreid.methods.vrstc.stc import load_stc_generator

    generator, _ = load_stc_generator(stc_path)
    quality = completion_quality(generator, dataset, truths, regions, nn_, h, w)
    print(f"quality: {quality}", flush=True)

    # 3. re-ID on the completed data
    completed_root = str(runs / f"completed-{int(time.time())}")
    summary = complete_dataset("mars", root, completed_root, reid, generator, height=h,
                               width=w, num_regions=regions, tau=tau, num_neighbours=nn_,
                               reid_size=reid_size)
    print(f"completion: {summary}", flush=True)
    done = reid_row(completed_root, epochs, runs)
    total = (time.perf_counter() - t0) / 60

    lines = [
        f"## VRSTC on {args.bench} (generator {h}x{w}, re-ID / locator"
        f" {reid_size[0]}x{reid_size[1]}, tiny backbone; re-ID {epochs} epochs,"
        f" STCnet {stc_cfg.train.steps if not args.stc_steps else args.stc_steps} steps;"
        f" {total:.1f} min in all)", "",
        f"Occlusion detection (tau {tau}, {regions} stripes):", "",
        "| level | precision | recall | predicted | true | total |", "|---|---:|---:|---:|---:|---:|",
    ]
    for level, d in detection.items():
        lines.append(f"| {level} | {100 * d['precision']:.1f} | {100 * d['recall']:.1f} |"
                     f" {d['predicted']} | {d['true']} | {d['total']} |")
    lines += ["", "Stripe detection at other thresholds (precision / recall, %):", "",
              "| split | " + " | ".join(f"tau {t}" for t in TAU_SWEEP) + " |",
              "|---|" + "---:|" * len(TAU_SWEEP)]
    for split, row in sweep.items():
        lines.append(f"| {split} | " + " | ".join(
            f"{100 * d['precision']:.0f} / {100 * d['recall']:.0f}" for d in row.values()) + " |")
    lines += ["", "Completion of truly occluded stripes of test frames (vs the clean render):",
              "", "| fill | PSNR (dB) | SSIM | frames |", "|---|---:|---:|---:|"]
    for k, q in quality.items():
        lines.append(f"| {k} | {q['PSNR']:.2f} | {q['SSIM']:.3f} | {q['frames']} |")
    lines += ["", f"Completed dataset: {summary['frames_completed']} of {summary['frames']}"
              f" frames, {summary['regions_completed']} stripes.", "",
              "| re-ID data | R1 | mAP |", "|---|---:|---:|",
              f"| raw | {raw['v2v/R1']:.1f} | {raw['v2v/mAP']:.1f} |",
              f"| completed | {done['v2v/R1']:.1f} | {done['v2v/mAP']:.1f} |"]
    table = "\n".join(lines) + "\n"
    print(table)
    out = args.out or args.runs_dir / "vrstc.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    with os.fdopen(fd, "w") as fh:
        fh.write(table)
    os.replace(tmp, out)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.stem}.", dir=out.parent)
    with os.fdopen(fd, "w") as fh:
        json.dump({"detection": detection, "tau_sweep": sweep, "quality": quality, "raw": raw,
                   "completed": {k: done[k] for k in ("v2v/R1", "v2v/mAP", "run_dir")},
                   "completion": summary, "stc": stc["last"], "stc_minutes": stc_minutes}, fh,
                  indent=1)
    os.replace(tmp, out.with_suffix(".json"))
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
