"""Does COSAM attend to the person and what they carry? Mask inside / outside the silhouette.

    .venv/bin/python benchmarks/cosam_masks.py [--weights RUN/best.pt] [--bench synth-mars-small]

The paper's claim: COSAM's spatial masks activate the person *and* their accessories
(co-segmentation of what the frames share). The synthetic generator writes each frame's
silhouette (person with bag, also where an occluder hides it). On held-out tracklets (the
test identities of the benchmark set, never seen in training) every tracklet is cut into
the model's 4-frame snippets (``dense``, as at test time); each inserted module's spatial
mask ``[T, h, w]`` is compared with the silhouette, downsampled to ``h x w`` by area
averaging (a cell's person fraction ``p``). Per module we print

    inside  = sum(mask * p) / sum(p)            (area-weighted mean mask on the person)
    outside = sum(mask * (1 - p)) / sum(1 - p)  (... on the background)
    ratio   = inside / outside                  (> 1: the mask prefers the person)

for the trained model and, as the reference, for the same architecture at initialisation
(same seed, untrained). Without ``--weights`` the model is first trained with ``--config``
(default ``configs/cosam/synth.yaml``) on the benchmark set, for ``--epochs`` epochs.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

DEFAULT_CONFIG = REPO / "configs" / "cosam" / "synth.yaml"
DEFAULT_TRACKLETS = 60  # held-out tracklets measured
DEFAULT_EPOCHS = 20  # the accuracy benchmark's budget


def silhouette_fraction(paths: list[str], size: tuple[int, int]) -> torch.Tensor:
    """Person fraction ``[T, h, w]`` of each frame's cells (area average of the silhouette)."""
    from vidreid.data.synth import load_frame_truth

    sil = np.stack([load_frame_truth(p).silhouette for p in paths]).astype(np.float32)
    return F.interpolate(torch.from_numpy(sil)[:, None], size=size, mode="area")[:, 0]


@torch.no_grad()
def mask_statistics(model: torch.nn.Module, tracklets: list, cfg) -> dict[str, dict[str, float]]:
    """Area-weighted sums of the masks inside / outside the silhouette, per inserted module."""
    from vidreid import build as B
    from vidreid.data.sampling import test_clips
    from vidreid.data.video_dataset import read_frames

    transform = B.build_transform(cfg, train=False)
    model.eval()
    sums: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for tracklet in tracklets:
        frames = read_frames(list(tracklet.frames))  # uint8 [n, 3, H, W]
        clip = transform(frames)  # [n, 3, height, width]
        for idx in test_clips(len(tracklet.frames), "dense", cfg.data.seq_len, pad="none"):
            out = model(clip[idx].unsqueeze(0), return_extras=True)
            paths = [tracklet.frames[i] for i in idx]
            for stage, mask in out["extras"]["spatial_masks"].items():
                m = mask[0].float()  # [T, h, w]
                p = silhouette_fraction(paths, tuple(m.shape[1:]))  # [T, h, w]
                s = sums[stage]
                s["mask_in"] += float((m * p).sum())
                s["area_in"] += float(p.sum())
                s["mask_out"] += float((m * (1 - p)).sum())
                s["area_out"] += float((1 - p).sum())
                s["frames"] += len(idx)
                s["snippets"] += 1
                s["h"], s["w"] = m.shape[1:]
    result = {}
    for stage, s in sums.items():
        inside, outside = s["mask_in"] / s["area_in"], s["mask_out"] / s["area_out"]
        cells = s["area_in"] + s["area_out"]
        result[stage] = {"inside": inside, "outside": outside, "ratio": inside / outside,
                         "person_fraction": s["area_in"] / cells, "frames": int(s["frames"]),
                         "snippets": int(s["snippets"]),
                         "size": f"{int(s['h'])}x{int(s['w'])}"}
    return result


def main(argv: list[str] | None = None) -> int:
    from accuracy import BENCHMARKS, dataset_root

    from vidreid import build as B
    from vidreid.engine.config import load_config
    from vidreid.engine.run import run_training

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(DEFAULT_CONFIG))
    parser.add_argument("--weights", help="trained checkpoint of --config (else: train first)")
    parser.add_argument("--bench", default="synth-mars-small", choices=sorted(BENCHMARKS))
    parser.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS)
    parser.add_argument("--tracklets", type=int, default=DEFAULT_TRACKLETS,
                        help="held-out tracklets measured (evenly spread over query+gallery)")
    parser.add_argument("--data-dir", default="runs/bench-data", type=Path)
    parser.add_argument("--runs-dir", default="runs/cosam-masks", type=Path)
    parser.add_argument("--workers", type=int, help="generator processes")
    args = parser.parse_args(argv)
    if args.tracklets < 1:
        parser.error(f"--tracklets must be >= 1, got {args.tracklets}")

    root = dataset_root(args.bench, args.data_dir, args.workers)
    cfg = load_config(args.config, [
        f"data.root={root}", "data.name=mars", "data.options={}", f"train.epochs={args.epochs}",
        f"output_dir={args.runs_dir}", "train.tensorboard=false", "train.progress=false",
        "train.eval_every=0", "eval.protocols=[v2v]",
    ])
    dataset = B.build_dataset(cfg)
    num_classes = dataset.num_train_pids
    if args.weights:
        model = B.load_trained(args.weights, cfg).model
        trained_by = args.weights
    else:
        t0 = time.perf_counter()
        result, run_dir, model, _ = run_training(cfg)
        trained_by = f"{run_dir} ({args.epochs} epochs, {(time.perf_counter() - t0) / 60:.1f} min,"
        trained_by += f" v2v R1 {result.last_eval.get('v2v/R1', float('nan')):.1f})"
    model = model.cpu().float()
    B.seed_everything(cfg.train.seed)
    untrained = B.build_model(cfg, num_classes)

    held_out = [t for t in list(dataset.query) + list(dataset.gallery) if t.pid > 0]
    keep = np.unique(np.linspace(0, len(held_out) - 1, min(args.tracklets, len(held_out)))
                     .round().astype(int))
    tracklets = [held_out[i] for i in keep]
    print(f"set {args.bench} ({root}); config {args.config}; model {trained_by}")
    print(f"{len(tracklets)} held-out tracklets (test identities), dense {cfg.data.seq_len}-frame"
          f" snippets; inside = silhouette incl. bag, area-weighted at mask resolution")
    print("| model | module | mask h x w | inside | outside | ratio | person area | frames |"
          " snippets |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for label, net in (("trained", model), ("untrained (init)", untrained)):
        for stage, s in mask_statistics(net, tracklets, cfg).items():
            print(f"| {label} | {stage} | {s['size']} | {s['inside']:.3f} | {s['outside']:.3f} |"
                  f" {s['ratio']:.3f} | {s['person_fraction']:.3f} | {s['frames']} |"
                  f" {s['snippets']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
