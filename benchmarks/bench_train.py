"""Engine overhead: training clips/s of ``vidreid.engine.trainer.train`` (real PK loader
reading JPEG frames, augmentation, logging, checkpoints) vs a bare forward + loss +
backward + step loop of the same model on random tensors of the same shape, with the same
precision settings (bf16 autocast + channels_last on CPU by default). Target ratio >= 0.85.

``--compile`` also measures, in the same run, the engine with ``train.compile`` (the
train-mode forward through ``torch.compile``, :mod:`vidreid.engine.compile`) and the bare
loop with the compiled forward, and prints the compiled / eager ratios and the compile time
(the first compiled step, minus an eager step).

    .venv/bin/python benchmarks/bench_train.py [--backbone resnet50] [--size 256x128]
        [--batch 8] [--seq-len 4] [--steps 6] [--workers 2] [--amp auto] [--compile]

Both measurements skip a warm-up (the engine's first epoch; the bare loop's first steps).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

WARMUP_STEPS = 2


def bare_loop(model, criterion, optimizer, clips, pids, steps, amp_dtype,
              first_step: list[float] | None = None) -> float:
    """Clips/s of forward + loss + backward + step on fixed random tensors (the first step's
    seconds appended to ``first_step``)."""
    model.train()
    ctx = (lambda: torch.autocast("cpu", dtype=amp_dtype)) if amp_dtype else contextlib.nullcontext
    t0 = start = time.perf_counter()
    for i in range(WARMUP_STEPS + steps):
        if i == 1 and first_step is not None:
            first_step.append(time.perf_counter() - start)
        if i == WARMUP_STEPS:
            t0 = time.perf_counter()
        with ctx():
            loss, _ = criterion(model(clips), pids)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return steps * clips.shape[0] / (time.perf_counter() - t0)


def engine_rate(result) -> tuple[float, float]:
    """Clips/s over the epochs after the first (warm-up) one, and their seconds."""
    measured = result.history[1:]
    seconds = sum(r["time_s"] for r in measured)
    return sum(r["clips_per_s"] * r["time_s"] for r in measured) / seconds, seconds


def main(argv: list[str] | None = None) -> int:
    from vidreid import build as B
    from vidreid.data.synth import generate
    from vidreid.engine.config import load_config
    from vidreid.engine.optim import build_optimizer
    from vidreid.engine.trainer import autocast_dtype, prepare_model, train

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--size", default="256x128")
    parser.add_argument("--batch", type=int, default=8, help="clips per step (PK: P x 4)")
    parser.add_argument("--seq-len", type=int, default=4)
    parser.add_argument("--steps", type=int, default=6, help="measured steps")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--amp", default="auto")
    parser.add_argument("--no-channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true",
                        help="also measure train.compile and the compiled bare loop")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    h, w = (int(x) for x in args.size.split("x"))
    torch.set_num_threads(B.compute_threads(None, args.workers))  # as `vidreid train` does
    channels_last = not args.no_channels_last
    k = 4 if args.batch % 4 == 0 else 2
    ids_needed = 2 * (args.batch // k)  # train ids = half of the generated ids

    with tempfile.TemporaryDirectory() as tmp:
        root = generate(Path(tmp) / "data", "mars", max(2 * ids_needed, 8), 2, 0, size=(h, w),
                        max_len=24)
        cfg = load_config(REPO / "configs" / "baselines" / "tp_synth.yaml", [
            f"data.root={root}", f"data.height={h}", f"data.width={w}",
            f"data.batch_size={args.batch}", f"data.num_instances={k}",
            f"data.seq_len={args.seq_len}", f"data.num_workers={args.workers}",
            f"model.backbone={args.backbone}", f"train.amp={args.amp}",
            f"train.channels_last={channels_last}", "train.tensorboard=false",
            "train.progress=false", "sched.name=none", "sched.warmup_epochs=0",
        ])
        dataset = B.build_dataset(cfg)
        n = dataset.num_train_pids
        loader = B.build_train_loader(cfg, dataset.train)
        per_epoch = len(loader)
        epochs = 1 + -(-args.steps // per_epoch)  # a warm-up epoch, then >= steps

        def engine_run(compile: bool):
            torch.manual_seed(0)
            model = B.build_model(cfg, n)
            criterion = B.build_criterion(cfg, n, model.feature_dim)
            optimizer = build_optimizer(model.parameters(), "adam", lr=3e-4)
            result = train(model, criterion, loader, optimizer, None, epochs=epochs,
                           run_dir=Path(tmp) / f"run-{compile}", device="cpu", amp=args.amp,
                           channels_last=channels_last, checkpoint_every=1, tensorboard=True,
                           progress=False, log_every=1, compile=compile)
            return model, criterion, optimizer, result

        model, criterion, optimizer, result = engine_run(False)
        engine, engine_s = engine_rate(result)
        engine_c = None
        if args.compile:
            _, _, _, result_c = engine_run(True)
            engine_c, engine_c_s = engine_rate(result_c)
            first_epoch_c = result_c.history[0]["time_s"]

    device = torch.device("cpu")
    amp_dtype = autocast_dtype(args.amp, device)
    prepare_model(model, device, channels_last)
    clips = torch.randn(args.batch, args.seq_len, 3, h, w)
    pids = torch.arange(args.batch // k).repeat_interleave(k) % n
    first: list[float] = []
    bare = bare_loop(model, criterion, optimizer, clips, pids, args.steps, amp_dtype, first)
    bare_c = None
    if args.compile:
        from vidreid.engine.compile import compile_training_forward

        fallback = compile_training_forward(model)
        bare_c = bare_loop(model, criterion, optimizer, clips, pids, args.steps, amp_dtype, first)
    print(f"model video_baseline/{args.backbone}/tp, clips {args.batch}x{args.seq_len}x3x{h}x{w},"
          f" amp={args.amp}, channels_last={channels_last}, workers={args.workers},"
          f" torch threads={torch.get_num_threads()}")
    print(f"engine  : {engine:7.2f} clips/s ({engine_s:.1f}s measured, {per_epoch} steps/epoch)")
    print(f"bare    : {bare:7.2f} clips/s ({args.steps} steps)")
    print(f"ratio   : {engine / bare:.3f} (target >= 0.85)")
    if args.compile:
        state = "active" if fallback.active else f"FELL BACK to eager ({fallback.failed})"
        print(f"compiled engine : {engine_c:7.2f} clips/s ({engine_c_s:.1f}s measured; first "
              f"epoch with the compile {first_epoch_c:.1f}s)")
        print(f"compiled bare   : {bare_c:7.2f} clips/s (compiled path {state}; first step "
              f"{first[1]:.1f}s vs eager {first[0]:.1f}s)")
        print(f"compiled / eager: engine {engine_c / engine:.3f}, bare {bare_c / bare:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
