"""Benchmark ``vidreid.FeatureExtractor``, eager and compiled, against the bare network and
torchreid, in one process.

Every measurement uses the same network (default ResNet-50, last stride 2, 256x128), batches
of ``--batch-frames`` frames, channels_last, the autocast dtype of ``--amp`` (bf16 on a CPU
with native bf16) and the same torch threads, interleaved round by round so that load from
other processes hits them alike; the median round of each is reported:

- end-to-end eager / compiled: ``FeatureExtractor(config, None[, compile=True])`` on the
  gallery tracklets of a synthetic folder-layout set (JPEG files written by the generator
  behind ``vidreid synth`` to a temp folder, ``--frames`` frames): decoding in ``--workers``
  loader processes, resizing and normalising, the frame encoder, the temporal head per
  tracklet; frames/s counts the frames decoded and encoded;
- bare eager / compiled forward: the frame encoder alone (``model.encode_frames``, eager, and
  the extractor's compiled one) on a random ``[batch_frames, 3, H, W]`` tensor under
  ``torch.inference_mode``, i.e. what the network alone can do with the same batches;
- torchreid: ``torchreid.utils.FeatureExtractor('resnet50')`` (its own ResNet-50, last stride
  2, fp32, its own PIL preprocessing) on the same JPEG files, ``--batch-frames`` paths per
  call, when ``torchreid`` is importable. Install it for the benchmark only, without its
  dependencies, e.g. ``pip install --no-deps --target /tmp/torchreid torchreid`` and
  ``PYTHONPATH=/tmp/torchreid``; its weights are its random initialisation saved to a temp
  file (no download). ``gdown`` (used by torchreid only to download datasets) is replaced by
  an empty module when it is not installed.

The compile (first compiled call) time is reported separately, with whether inductor's
on-disk cache had it (see :mod:`vidreid.engine.compile`).

Targets (issue 18): compiled end-to-end >= 0.9 x bare compiled forward, and >= 3.5x torchreid.

``--lengths 8,64,512,2048``: how the cost grows with the tracklet length instead. One
tracklet of L JPEG frames (the first L of one synthetic sequence) per fresh child process
(so each peak RSS is its own), through ``FeatureExtractor`` (``--compile`` for the compiled
encoder) after a warm-up call on 8 frames; prints seconds, frames/s, peak RSS and the peak's
growth over the RSS before the timed call.

Run: ``.venv/bin/python benchmarks/bench_extract.py [--backbone resnet50] [--frames 256]
[--batch-frames 32] [--workers 1] [--amp auto] [--rounds 3] [--no-torchreid]
[--lengths 8,64,512,2048 [--compile]]``
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Callable
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TARGET_VS_BARE = 0.9
TARGET_VS_TORCHREID = 3.5
TORCHREID_ARCH = "resnet50"  # last stride 2, as ours with last_stride=2


def make_config(backbone: str, size: tuple[int, int], seq_len: int, last_stride: int) -> dict:
    return {
        "data": {"height": size[0], "width": size[1], "seq_len": seq_len,
                 "test_sampling": "dense"},
        "model": {"name": "video_baseline", "backbone": backbone, "head": "tp",
                  "last_stride": last_stride},
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


def torchreid_extractor(size: tuple[int, int], tmp: str) -> Callable[[list[str]], torch.Tensor] | None:
    """torchreid's FeatureExtractor on its randomly initialised ResNet-50, or None."""
    if "gdown" not in sys.modules:
        try:
            import gdown  # noqa: F401
        except ImportError:  # only torchreid's dataset downloaders use it
            sys.modules["gdown"] = types.ModuleType("gdown")
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from torchreid.reid.models import build_model
            from torchreid.reid.utils import FeatureExtractor as TorchreidExtractor
    except ImportError as exc:
        print(f"torchreid not importable ({exc}): skipped (see the module docstring)")
        return None
    model = build_model(TORCHREID_ARCH, num_classes=1, pretrained=False)
    weights = os.path.join(tmp, "torchreid-resnet50.pt")
    torch.save(model.state_dict(), weights)
    return TorchreidExtractor(model_name=TORCHREID_ARCH, model_path=weights,
                              image_size=size, device="cpu", verbose=False)


WARMUP_FRAMES = 8


def write_sequence(folder: str, n: int, size: tuple[int, int]) -> list[str]:
    """``n`` JPEG frames of a moving, noisy figure (a stand-in for one long tracklet)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    os.makedirs(folder, exist_ok=True)
    h, w = size
    paths = []
    for i in range(n):
        img = rng.integers(90, 160, (h, w, 3), dtype=np.uint8)
        top = (i * 3) % max(1, h // 4)
        img[top : top + h // 2, w // 4 : 3 * w // 4] = (200, 40 + i % 150, 60)
        path = os.path.join(folder, f"{i:05d}.jpg")
        Image.fromarray(img).save(path, quality=90)
        paths.append(path)
    return paths


def rss_gb() -> float:
    """Current resident set size (Linux /proc), in GB."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**30


def one_length(args: argparse.Namespace, cfg: dict) -> dict:
    """Child of ``--lengths``: extract one tracklet of ``args.one_length`` frames."""
    from vidreid.retrieval.extractor import FeatureExtractor

    frames = sorted(os.path.join(args.frames_dir, f) for f in os.listdir(args.frames_dir))
    frames = frames[: args.one_length]
    ex = FeatureExtractor(cfg, None, batch_frames=args.batch_frames, amp=args.amp,
                          channels_last=not args.no_channels_last, num_workers=args.workers,
                          compile=args.compile)
    ex.tracklet(frames[:WARMUP_FRAMES])  # model warm-up (and the compile, with --compile)
    before = rss_gb()
    start = time.perf_counter()
    feat = ex.tracklet(frames)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # kB -> GB
    assert feat.shape == (ex.feature_dim,)
    return {"frames": len(frames), "seconds": seconds, "peak_gb": peak, "before_gb": before}


def run_lengths(args: argparse.Namespace) -> int:
    """Each tracklet length in a child process; a table of time and memory."""
    lengths = [int(v) for v in args.lengths.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench_extract-len-") as tmp:
        h, w = (int(v) for v in args.size.lower().split("x"))
        folder = os.path.join(tmp, "sequence")
        write_sequence(folder, max(lengths), (h, w))
        print(f"{args.backbone} (last stride {args.last_stride}) {h}x{w}, batch "
              f"{args.batch_frames}, amp {args.amp}, compile {args.compile}, workers "
              f"{args.workers}, test clips dense T={args.seq_len}; one tracklet per process, "
              f"after a {WARMUP_FRAMES}-frame warm-up call")
        print(f"{'frames':>7} {'time s':>8} {'frames/s':>9} {'peak GB':>8} "
              f"{'peak - before':>14}")
        for n in lengths:
            cmd = [sys.executable, __file__, "--one-length", str(n), "--frames-dir", folder,
                   "--backbone", args.backbone, "--last-stride", str(args.last_stride),
                   "--size", args.size, "--batch-frames", str(args.batch_frames),
                   "--seq-len", str(args.seq_len), "--workers", str(args.workers),
                   "--amp", args.amp] + (["--compile"] if args.compile else []) + (
                   ["--no-channels-last"] if args.no_channels_last else []) + (
                   ["--threads", str(args.threads)] if args.threads else [])
            out = subprocess.run(cmd, capture_output=True, text=True)
            if out.returncode:
                raise SystemExit(f"the {n}-frame child failed (exit {out.returncode}):\n"
                                 f"{out.stderr[-3000:]}")
            row = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{row['frames']:7d} {row['seconds']:8.2f} "
                  f"{row['frames'] / row['seconds']:9.2f} {row['peak_gb']:8.2f} "
                  f"{row['peak_gb'] - row['before_gb']:14.3f}", flush=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--last-stride", type=int, default=2)
    parser.add_argument("--size", default="256x128", help="HEIGHTxWIDTH")
    parser.add_argument("--frames", type=int, default=256, help="gallery frames per round")
    parser.add_argument("--batch-frames", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=4, help="test clip length T")
    parser.add_argument("--workers", type=int, default=1, help="decoding processes")
    parser.add_argument("--amp", default="auto", help="auto | off | bf16")
    parser.add_argument("--no-channels-last", action="store_true")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-torchreid", action="store_true")
    parser.add_argument("--lengths", help="comma-separated tracklet lengths: cost growth mode")
    parser.add_argument("--compile", action="store_true", help="with --lengths: compiled")
    parser.add_argument("--one-length", type=int, help=argparse.SUPPRESS)  # --lengths child
    parser.add_argument("--frames-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.lengths:
        return run_lengths(args)
    if args.one_length:
        if args.threads:
            torch.set_num_threads(args.threads)
        h, w = (int(v) for v in args.size.lower().split("x"))
        cfg = make_config(args.backbone, (h, w), args.seq_len, args.last_stride)
        print(json.dumps(one_length(args, cfg)))
        return 0

    from torch._dynamo.utils import counters

    from vidreid.engine.compile import compile_cache_dir
    from vidreid.retrieval.extractor import FeatureExtractor

    if args.threads:
        torch.set_num_threads(args.threads)
    h, w = (int(v) for v in args.size.lower().split("x"))
    cfg = make_config(args.backbone, (h, w), args.seq_len, args.last_stride)
    channels_last = not args.no_channels_last
    common = dict(batch_frames=args.batch_frames, amp=args.amp, channels_last=channels_last,
                  num_workers=args.workers)
    torch.manual_seed(0)
    eager = FeatureExtractor(cfg, None, **common)
    torch.manual_seed(0)
    fast = FeatureExtractor(cfg, None, **common, compile=True)
    x = torch.randn(args.batch_frames, 3, h, w)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)

    with tempfile.TemporaryDirectory(prefix="bench_extract-") as tmp:
        gallery = synth_gallery(tmp, args.frames, (h, w), args.seq_len)
        paths = [f for t in gallery for f in t.frames]
        n_frames = len(paths)
        n_batches = -(-n_frames // args.batch_frames)
        print(f"{args.backbone} (last stride {args.last_stride}) {h}x{w}, batch "
              f"{args.batch_frames} frames, autocast {eager.dtype}, channels_last "
              f"{channels_last}, torch threads {torch.get_num_threads()}, workers "
              f"{args.workers}, CPUs {os.cpu_count()}; {len(gallery)} tracklets, {n_frames} "
              f"JPEG frames; compile cache {compile_cache_dir()}", flush=True)
        reid = None if args.no_torchreid else torchreid_extractor((h, w), tmp)

        def bare(encode: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[], float]:
            def run() -> float:
                with torch.inference_mode(), eager._autocast():
                    start = time.perf_counter()
                    for _ in range(n_batches):
                        encode(x).float()
                    return n_batches * args.batch_frames / (time.perf_counter() - start)
            return run

        def end_to_end(ex: FeatureExtractor) -> Callable[[], float]:
            def run() -> float:
                start = time.perf_counter()
                feats = ex(gallery)
                elapsed = time.perf_counter() - start
                assert feats.shape == (len(gallery), ex.feature_dim)
                return n_frames / elapsed
            return run

        def torchreid_run() -> float:
            start = time.perf_counter()
            for i in range(0, n_frames, args.batch_frames):
                reid(paths[i : i + args.batch_frames])  # type: ignore[misc]
            return n_frames / (time.perf_counter() - start)

        hits = counters["inductor"]["fxgraph_cache_hit"]
        start = time.perf_counter()
        with torch.inference_mode(), eager._autocast():
            fast._frame_encoder(x)  # the compile
        compile_s = time.perf_counter() - start
        cached = counters["inductor"]["fxgraph_cache_hit"] > hits
        compiled_ok = fast._frame_encoder.fn.active
        print(f"compile: {compile_s:.1f} s ({'from the on-disk cache' if cached else 'cold'}); "
              f"compiled path {'active' if compiled_ok else 'FELL BACK to eager'}", flush=True)
        feats_e, feats_c = eager(gallery), fast(gallery)
        cos = torch.nn.functional.cosine_similarity(feats_e, feats_c).min()
        dtype, eager.dtype = eager.dtype, None  # full precision, for scale: a random-init
        feats_32 = eager(gallery)  # network's features are ill-conditioned in bf16
        eager.dtype = dtype
        cos_32 = torch.nn.functional.cosine_similarity(feats_e, feats_32).min()
        print(f"features, min cosine over tracklets: compiled vs eager {cos:.5f} (eager "
              f"{dtype} vs eager float32: {cos_32:.5f})", flush=True)
        bare(eager.model.encode_frames)()  # warm-up: allocator, oneDNN kernels

        runs: dict[str, Callable[[], float]] = {
            "end-to-end eager": end_to_end(eager),
            "end-to-end compiled": end_to_end(fast),
            "bare eager forward": bare(eager.model.encode_frames),
            "bare compiled forward": bare(fast._frame_encoder),
        }
        if reid is not None:
            torchreid_run()  # warm-up
            runs["torchreid FeatureExtractor"] = torchreid_run
        results: dict[str, list[float]] = {k: [] for k in runs}
        for r in range(args.rounds):
            for name, run in runs.items():
                results[name].append(run())
            print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.2f}" for k, v in
                                                  results.items()) + " frames/s", flush=True)
    med = {k: statistics.median(v) for k, v in results.items()}
    for name, value in med.items():
        print(f"{name:28s} {value:8.2f} frames/s (median of {args.rounds} rounds)")
    ratio = med["end-to-end compiled"] / med["bare compiled forward"]
    print(f"compiled end-to-end / bare compiled forward: {ratio:.3f} (target >= "
          f"{TARGET_VS_BARE}: {'met' if ratio >= TARGET_VS_BARE else 'NOT met'})")
    print(f"end-to-end eager / bare eager forward: "
          f"{med['end-to-end eager'] / med['bare eager forward']:.3f}")
    print(f"compiled / eager: end-to-end {med['end-to-end compiled'] / med['end-to-end eager']:.3f}"
          f", bare {med['bare compiled forward'] / med['bare eager forward']:.3f}")
    if reid is not None:
        speedup = med["end-to-end compiled"] / med["torchreid FeatureExtractor"]
        print(f"compiled end-to-end / torchreid: {speedup:.2f}x (target >= "
              f"{TARGET_VS_TORCHREID}: {'met' if speedup >= TARGET_VS_TORCHREID else 'NOT met'})"
              f"; eager end-to-end / torchreid: "
              f"{med['end-to-end eager'] / med['torchreid FeatureExtractor']:.2f}x")
    else:
        print("torchreid: not measured (not importable)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
