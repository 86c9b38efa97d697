"""Benchmark ``vidreid.FeatureExtractor``: end-to-end frames/s from JPEG files on disk next to
a bare model forward on random tensors of the same batch shape, and their ratio.

Both run in the same process with the same settings (model, batch of ``--batch-frames``
frames, channels_last, autocast dtype, torch threads), interleaved round by round so that
load from other processes hits both alike; the median round of each is reported.

- end-to-end: ``FeatureExtractor(config, None)`` on the gallery tracklets of a synthetic
  folder-layout set written by the generator behind ``vidreid synth`` to a temp folder
  (``--size`` frames, JPEG): decoding in ``--workers`` loader processes, resizing and
  normalising, the frame encoder, the temporal head per tracklet; frames/s counts the frames
  decoded and encoded;
- bare forward: ``model(clips)`` on a random ``[batch_frames / T, T, 3, H, W]`` tensor
  (T = the config's test clip length) under ``torch.inference_mode``, i.e. what the model
  alone can do with the same batches.

Target: ratio >= 0.9 with ResNet-50 at 256x128 (the default). On a 2-core machine the decoding
workers compete with the model for the CPU; ``--workers 0`` decodes in the main process.

Run: ``.venv/bin/python benchmarks/bench_extract.py [--backbone resnet50] [--frames 256]
[--batch-frames 32] [--workers 1] [--amp auto] [--rounds 3]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import torch

TARGET_RATIO = 0.9


def make_config(backbone: str, size: tuple[int, int], seq_len: int) -> dict:
    return {
        "data": {"height": size[0], "width": size[1], "seq_len": seq_len,
                 "test_sampling": "dense"},
        "model": {"name": "video_baseline", "backbone": backbone, "head": "tp"},
    }


def synth_gallery(out: str, frames: int, size: tuple[int, int], seq_len: int) -> list:
    """A synthetic folder-layout set with at least ``frames`` gallery frames, in whole clips
    (so the end-to-end run encodes exactly the frames it decodes, no cycled padding)."""
    from vidreid.data import build_dataset
    from vidreid.data.synth import generate

    ids = 4
    while True:
        root = os.path.join(out, f"synth-{ids}")
        generate(root, "folder", ids, 2, seed=0, size=size, max_len=4 * seq_len, workers=2)
        gallery = build_dataset("folder", root).gallery
        trimmed = [t._replace(frames=t.frames[: len(t.frames) // seq_len * seq_len])
                   for t in gallery]
        trimmed = [t for t in trimmed if t.frames]
        total = sum(len(t.frames) for t in trimmed)
        if total >= frames:
            kept, n = [], 0
            for t in trimmed:
                if n >= frames:
                    break
                kept.append(t)
                n += len(t.frames)
            return kept
        ids *= 2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--size", default="256x128", help="HEIGHTxWIDTH")
    parser.add_argument("--frames", type=int, default=256, help="gallery frames per round")
    parser.add_argument("--batch-frames", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=4, help="test clip length T")
    parser.add_argument("--workers", type=int, default=1, help="decoding processes")
    parser.add_argument("--amp", default="auto", help="auto | off | bf16")
    parser.add_argument("--no-channels-last", action="store_true")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from vidreid.retrieval.extractor import FeatureExtractor

    if args.threads:
        torch.set_num_threads(args.threads)
    h, w = (int(v) for v in args.size.lower().split("x"))
    cfg = make_config(args.backbone, (h, w), args.seq_len)
    channels_last = not args.no_channels_last
    ex = FeatureExtractor(cfg, None, batch_frames=args.batch_frames, amp=args.amp,
                          channels_last=channels_last, num_workers=args.workers)
    model, t = ex.model, args.seq_len
    clips_per_batch = max(1, args.batch_frames // t)
    frames_per_batch = clips_per_batch * t
    x = torch.randn(frames_per_batch, 3, h, w)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    clips = x.unflatten(0, (clips_per_batch, t))  # [B, T, 3, H, W], frames keep their layout

    with tempfile.TemporaryDirectory(prefix="bench_extract-") as tmp:
        gallery = synth_gallery(tmp, args.frames, (h, w), t)
        n_frames = sum(len(tr.frames) for tr in gallery)
        n_batches = -(-n_frames // frames_per_batch)
        print(f"{args.backbone} {h}x{w}, batch {frames_per_batch} frames (T={t}), "
              f"autocast {ex.dtype}, channels_last {channels_last}, torch threads "
              f"{torch.get_num_threads()}, workers {args.workers}, CPUs {os.cpu_count()}, "
              f"split encoder {ex.split}; {len(gallery)} tracklets, {n_frames} JPEG frames")

        def bare() -> float:
            with torch.inference_mode(), ex._autocast():
                start = time.perf_counter()
                for _ in range(n_batches):
                    model(clips)["features"].float()
                return n_batches * frames_per_batch / (time.perf_counter() - start)

        def end_to_end() -> float:
            start = time.perf_counter()
            feats = ex(gallery)
            elapsed = time.perf_counter() - start
            assert feats.shape == (len(gallery), ex.feature_dim)
            return n_frames / elapsed

        bare()  # warm-up: allocator, oneDNN kernels
        e2e, ref = [], []
        for r in range(args.rounds):
            e2e.append(end_to_end())
            ref.append(bare())
            print(f"round {r + 1}: end-to-end {e2e[-1]:.2f} frames/s, bare forward "
                  f"{ref[-1]:.2f} frames/s", flush=True)
    e, b = statistics.median(e2e), statistics.median(ref)
    paired = statistics.median(x / y for x, y in zip(e2e, ref, strict=True))
    ratio = e / b
    verdict = "met" if ratio >= TARGET_RATIO else "NOT met"
    print(f"end-to-end (JPEG on disk -> features): {e:.2f} frames/s (median of rounds)")
    print(f"bare model forward (random tensors):   {b:.2f} frames/s (median of rounds)")
    print(f"ratio: {ratio:.3f} (target >= {TARGET_RATIO}: {verdict}); median of the per-round "
          f"ratios {paired:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
