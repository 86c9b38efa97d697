"""Does GLTR's temporal self-attention look away from occluded frames?

    .venv/bin/python benchmarks/gltr_occlusion.py [--weights W] [--epochs N] [--out FILE.json]

The paper claims the long-term (TSA) relations "alleviate the occlusions and noises in video
sequences". We test it on ``synth-occluded`` (``benchmarks/accuracy.py``: the synthetic MARS
layout with occlusion events in half the tracklets) whose generator records, for every frame,
whether an occluder covers part of the person (``vidreid/data/synth/ground_truth.py``).

Attention received by frame ``j`` of a tracklet of ``T`` frames: the column mean
``a_j = (1/T) sum_i A[i, j]`` of the TSA matrix ``A = softmax(theta^T phi)`` (rows sum to 1),
i.e. the model's ``extras["temporal_weights"]``; we report ``T * a_j`` so that plain temporal
averaging gives 1 to every frame. For every test tracklet (real identities, ``pid > 0``) that
has both occluded and clean frames, the whole tracklet is fed in one pass (GLTR's test
setting) and we compute:

- pooled ratio: mean ``T * a_j`` over all occluded frames / the same over all clean frames;
- per-tracklet ratio (occluded mean / clean mean): its mean, median and the share of
  tracklets where it is below 1 (occluded frames receive less attention than clean ones).

A ratio below 1 supports the claim. The same numbers for the untrained model (same seed)
are the control: a random TSA is not uniform either.

Without ``--weights`` the script trains ``configs/gltr/bench_gltr.yaml`` on the benchmark's
data with the benchmark's budget first (a few minutes on 2 cores).
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
DEFAULT_CONFIG = REPO / "configs" / "gltr" / "bench_gltr.yaml"
REAL_IDENTITY_MIN_PID = 1  # MARS layout: 0 = distractor, -1 = junk


def occluded_test_tracklets(root: str) -> tuple[Path, list[dict]]:
    """The dataset folder and the test tracklets with both occluded and clean frames."""
    from vidreid.data.synth.ground_truth import ground_truth_root, load_tracklet_table

    dataset_dir = Path(ground_truth_root(root)).parent
    rows = [
        r
        for r in load_tracklet_table(root)
        if r["split"] != "train"
        and r["pid"] >= REAL_IDENTITY_MIN_PID
        and any(r["occluded"])
        and not all(r["occluded"])
    ]
    if not rows:
        raise ValueError(f"{root}: no test tracklet with both occluded and clean frames")
    return dataset_dir, rows


@torch.no_grad()
def attention_received(model: torch.nn.Module, transform, frame_paths: list[str]
                       ) -> tuple[np.ndarray, float]:
    """``T * a_j`` for every frame of one tracklet fed in one pass, and the mean entropy of
    the TSA rows over ``log T`` (1: uniform rows, 0: one-hot rows)."""
    from vidreid.data.video_dataset import read_frames

    clip = transform(read_frames(frame_paths)).unsqueeze(0)  # [1, T, 3, H, W]
    extras = model(clip, return_extras=True)["extras"]
    weights = extras["temporal_weights"][0]  # [T]
    rows = extras["temporal_attention"][0].double().clamp_min(1e-300)  # [T, T]
    t = len(frame_paths)
    entropy = float((-(rows * rows.log()).sum(1)).mean() / np.log(t)) if t > 1 else 1.0
    return weights.double().numpy() * t, entropy


def occlusion_stats(model: torch.nn.Module, transform, dataset_dir: Path, rows: list[dict]) -> dict:
    model.eval()
    occluded_all, clean_all, ratios, entropies = [], [], [], []
    for r in rows:
        received, entropy = attention_received(model, transform,
                                               [str(dataset_dir / f) for f in r["frames"]])
        entropies.append(entropy)
        mask = np.asarray(r["occluded"], dtype=bool)
        occluded_all.append(received[mask])
        clean_all.append(received[~mask])
        if received[~mask].mean() > 0:  # one-hot rows can leave every clean frame at 0
            ratios.append(received[mask].mean() / received[~mask].mean())
    occ, clean, ratios_a = np.concatenate(occluded_all), np.concatenate(clean_all), np.array(ratios)
    return {
        "tracklets": len(rows),
        "occluded_frames": int(occ.size),
        "clean_frames": int(clean.size),
        "mean_received_occluded": float(occ.mean()),
        "mean_received_clean": float(clean.mean()),
        "pooled_ratio": float(occ.mean() / clean.mean()),
        "row_entropy": float(np.mean(entropies)),
        "tracklets_without_ratio": len(rows) - len(ratios_a),
        "per_tracklet_ratio_mean": float(ratios_a.mean()),
        "per_tracklet_ratio_median": float(np.median(ratios_a)),
        "share_tracklets_ratio_below_1": float((ratios_a < 1).mean()),
    }


def format_stats(label: str, s: dict) -> str:
    return (
        f"{label:<10} tracklets {s['tracklets']:4d}  frames occ/clean "
        f"{s['occluded_frames']}/{s['clean_frames']}  "
        f"T*a occluded {s['mean_received_occluded']:.3f}"
        f"  clean {s['mean_received_clean']:.3f}  pooled ratio {s['pooled_ratio']:.3f}  "
        f"per-tracklet ratio mean {s['per_tracklet_ratio_mean']:.3f} median "
        f"{s['per_tracklet_ratio_median']:.3f}  ratio<1 in "
        f"{100 * s['share_tracklets_ratio_below_1']:.0f}% of tracklets"
    )


def main(argv: list[str] | None = None) -> int:
    from accuracy import BENCHMARKS, dataset_root

    from vidreid import build as B
    from vidreid.engine.config import load_config
    from vidreid.engine.run import run_training

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(DEFAULT_CONFIG))
    parser.add_argument("--bench", default=BENCH, help="synthetic benchmark (accuracy.py)")
    parser.add_argument("--weights", help="trained GLTR weights (default: train first)")
    parser.add_argument("--epochs", type=int, help="training budget (default: the benchmark's)")
    parser.add_argument("--data-dir", default="runs/bench-data", type=Path)
    parser.add_argument("--runs-dir", default="runs/bench", type=Path)
    parser.add_argument("--workers", type=int, help="generator processes")
    parser.add_argument("--out", type=Path, help="write the numbers as JSON")
    args = parser.parse_args(argv)

    bench = args.bench
    root = dataset_root(bench, args.data_dir, args.workers)
    epochs = args.epochs or BENCHMARKS[bench]["epochs"]
    cfg = load_config(
        args.config,
        [
            f"data.root={root}",
            "data.name=mars",
            "data.options={}",
            f"train.epochs={epochs}",
            f"output_dir={args.runs_dir / bench}",
            f"run_name=gltr-occlusion-{int(time.time())}",
            "train.tensorboard=false",
            "train.progress=false",
            "train.eval_every=0",
        ],
    )
    dataset_dir, rows = occluded_test_tracklets(root)
    transform = B.build_transform(cfg, train=False)

    B.seed_everything(cfg.train.seed)  # the control: the untrained model of the same seed
    from vidreid.data import build_dataset

    num_classes = build_dataset("mars", root).num_train_pids
    untrained = B.build_model(cfg, num_classes)
    results = {"untrained": occlusion_stats(untrained, transform, dataset_dir, rows)}
    if args.weights:
        model = B.load_trained(args.weights, cfg).model
        results["weights"] = args.weights
    else:
        result, run_dir, model, _ = run_training(cfg)
        results["weights"] = str(run_dir / "last.pt")
        results["eval_after_training"] = result.last_eval
    results["trained"] = occlusion_stats(model.cpu().float(), transform, dataset_dir, rows)
    results.update(benchmark=bench, epochs=epochs, config=str(args.config))

    print(f"{bench}: attention received (T * column mean of the TSA matrix; 1 = uniform)")
    print(format_stats("untrained", results["untrained"]))
    print(format_stats("trained", results["trained"]))
    if results.get("eval_after_training"):
        print(
            "trained model: "
            + "  ".join(f"{k} {v:.1f}" for k, v in results["eval_after_training"].items())
        )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{args.out.name}.", dir=args.out.parent)
        with os.fdopen(fd, "w") as fh:
            json.dump(results, fh, indent=2)
        os.replace(tmp, args.out)
        print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
