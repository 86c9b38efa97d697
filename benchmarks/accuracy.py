"""Accuracy benchmark: train and evaluate every benchmark config on a named synthetic set.

    .venv/bin/python benchmarks/accuracy.py synth-mars-small [--methods tp,ta] [--out FILE.md]

Rows: every ``configs/<method>/bench_*.yaml`` (``name`` in the YAML labels the row), so a
method adds its row by adding its file. The benchmark (data and budget) lives here, so every
row gets the same data and the same budget: the set is generated from a fixed seed (cached
under ``--data-dir``), each config is trained for the benchmark's epochs with its own recipe
otherwise, and evaluated video-to-video (``--protocols`` adds e.g. ``i2v`` for the
image-to-video methods) on the torchreid MARS protocol. The table has R1, mAP, mINP (%) per
protocol, training minutes, parameters (M) and GFLOPs per frame at the config's input size; it
is printed and written (markdown) to ``--out``, rewritten after every finished row.

``--init``: ``scratch`` rows train the configs as written (the ``tiny`` backbone from random
weights); ``imagenet`` rows swap in the ImageNet-initialised MobileNetV2 (``model.backbone=
mobilenetv2 model.weights=imagenet``: the package's remapped file, nothing downloaded) with the
non-local blocks of TKP / VRSTC at the models' default positions for multi-block stages (the
configs' ``[0]`` is for tiny's one-block stages), bf16 and channels_last; ``both`` (default)
gives each config both rows. Seeds and intervals for the method-vs-baseline claims are
``benchmarks/effects.py``'s job; these rows are one seed each.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# name -> generator arguments (MARS layout) and the training budget (epochs) of every row
BENCHMARKS: dict[str, dict] = {
    "synth-mars-small": dict(ids=60, cameras=6, seed=11, size=(128, 64), max_len=32,
                             occlusion_rate=0.0, epochs=20),
    "synth-occluded": dict(ids=60, cameras=6, seed=12, size=(128, 64), max_len=32,
                           occlusion_rate=0.5, epochs=20),
    # a seconds-long smoke version, used to check the script itself
    "synth-smoke": dict(ids=20, cameras=3, seed=13, size=(64, 32), max_len=12,
                        occlusion_rate=0.2, epochs=3),  # > the recipes' 2 warmup epochs
}


IMAGENET_OVERRIDES = ["model.backbone=mobilenetv2", "model.weights=imagenet",
                      "train.amp=bf16", "train.channels_last=true"]
IMAGENET_LABEL = " (ImageNet MobileNetV2)"
INITS = {"scratch": ("scratch",), "imagenet": ("imagenet",), "both": ("scratch", "imagenet")}


def init_overrides(path: Path, init: str) -> list[str]:
    """Overrides that give ``path``'s row the ``init`` backbone (none for ``scratch``)."""
    if init == "scratch":
        return []
    from vidreid.engine.config import load_config

    model = load_config(path).model
    stages = [f"model.{k}=null" for k in ("layer2_blocks", "layer3_blocks") if k in model]
    return [*IMAGENET_OVERRIDES, *stages]


def row_name(name: str, init: str) -> str:
    """The config's row label, naming the ImageNet backbone instead of ``tiny`` when swapped."""
    if init != "imagenet":
        return name
    return name.replace(" (tiny)", IMAGENET_LABEL) if " (tiny)" in name else name + IMAGENET_LABEL


def bench_configs(methods: list[str] | None) -> list[Path]:
    paths = sorted((REPO / "configs").glob("*/bench_*.yaml"))
    if methods:
        paths = [p for p in paths
                 if p.parent.name in methods or p.stem.removeprefix("bench_") in methods]
    return paths


def dataset_root(bench: str, data_dir: Path, workers: int | None) -> str:
    from vidreid.data.synth import generate

    spec = BENCHMARKS[bench]
    out = data_dir / bench
    if (out / "mars" / "info").is_dir():
        return str(out)
    print(f"generating {bench} in {out} ...", flush=True)
    return generate(str(out), "mars", spec["ids"], spec["cameras"], spec["seed"],
                    size=spec["size"], max_len=spec["max_len"],
                    occlusion_rate=spec["occlusion_rate"], workers=workers)


def run_row(
    path: Path, root: str, epochs: int, runs_dir: Path, protocols: tuple[str, ...] = ("v2v",),
    init: str = "scratch",
) -> dict:
    from vidreid.engine.config import load_config
    from vidreid.engine.run import run_training
    from vidreid.models.profile import count_parameters, gflops_per_frame

    cfg = load_config(path, [
        f"data.root={root}", "data.name=mars", "data.options={}", f"train.epochs={epochs}",
        f"output_dir={runs_dir}", f"run_name={path.parent.name}-{path.stem}-{int(time.time())}",
        "train.tensorboard=false", "train.progress=false", "train.eval_every=0",
        f"eval.protocols=[{','.join(protocols)}]", *init_overrides(path, init),
    ])
    t0 = time.perf_counter()
    result, run_dir, model, _ = run_training(cfg)
    if not result.last_eval:  # e.g. stopped by SIGTERM: the trainer ends gracefully
        raise RuntimeError(f"{run_dir}: training of {path.name} ended without its final "
                           "evaluation (stopped by a signal?); no table is written")
    minutes = (time.perf_counter() - t0) / 60
    m = result.last_eval
    return {
        "name": row_name(cfg.name, init), "config": str(path.relative_to(REPO)),
        **{f"{p}/{k}": m.get(f"{p}/{k}", float("nan"))
           for p in protocols for k in ("R1", "mAP", "mINP")},
        "minutes": minutes,
        "params_m": count_parameters(model) / 1e6,
        "gflops": gflops_per_frame(model.cpu().float(), (cfg.data.height, cfg.data.width),
                                   cfg.data.seq_len),
        "run_dir": str(run_dir),
    }


def markdown(
    bench: str, rows: list[dict], epochs: int, protocols: tuple[str, ...] = ("v2v",)
) -> str:
    spec = BENCHMARKS[bench]
    prefix = (lambda p: "") if len(protocols) == 1 else (lambda p: f"{p} ")
    metrics = [(p, k) for p in protocols for k in ("R1", "mAP", "mINP")]
    lines = [
        f"## {bench}: {spec['ids']} ids, {spec['cameras']} cameras,"
        f" {spec['size'][0]}x{spec['size'][1]}, occlusion {spec['occlusion_rate']},"
        f" seed {spec['seed']}; {epochs} epochs per row; {', '.join(protocols)},"
        " torchreid MARS protocol",
        "",
        "| method | " + " | ".join(f"{prefix(p)}{k}" for p, k in metrics)
        + " | train min | params (M) | GFLOPs/frame | config |",
        "|---|" + "---:|" * (len(metrics) + 3) + "---|",
    ]
    for r in rows:
        values = " | ".join(f"{r[f'{p}/{k}']:.1f}" for p, k in metrics)
        lines.append(f"| {r['name']} | {values} |"
                     f" {r['minutes']:.1f} | {r['params_m']:.2f} | {r['gflops']:.3f} |"
                     f" `{r['config']}` |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bench", choices=sorted(BENCHMARKS))
    parser.add_argument("--methods", help="comma-separated method folders or bench_<x> names")
    parser.add_argument("--epochs", type=int, help="override the benchmark's budget")
    parser.add_argument("--data-dir", default="runs/bench-data", type=Path)
    parser.add_argument("--runs-dir", default="runs/bench", type=Path)
    parser.add_argument("--out", type=Path, help="markdown file (default runs/bench/<bench>.md)")
    parser.add_argument("--workers", type=int, help="generator processes")
    parser.add_argument("--protocols", default="v2v",
                        help="comma-separated subset of v2v,i2v,v2i,i2i (default v2v)")
    parser.add_argument("--init", choices=sorted(INITS), default="both",
                        help="scratch: configs as written; imagenet: ImageNet MobileNetV2 "
                             "backbone; both (default): a row of each per config")
    args = parser.parse_args(argv)
    paths = bench_configs(args.methods.split(",") if args.methods else None)
    protocols = tuple(p.strip() for p in args.protocols.split(",") if p.strip())
    from vidreid.engine.inference import needed_sides

    if not protocols:
        parser.error("--protocols needs at least one of v2v,i2v,v2i,i2i")
    needed_sides(protocols)  # unknown protocol names fail here, before any training
    if not paths:
        print("no configs/*/bench_*.yaml matched", file=sys.stderr)
        return 2
    epochs = args.epochs or BENCHMARKS[args.bench]["epochs"]
    root = dataset_root(args.bench, args.data_dir, args.workers)
    out = args.out or args.runs_dir / f"{args.bench}.md"
    rows: list[dict] = []
    for path in paths:
        for init in INITS[args.init]:
            print(f"== {path.relative_to(REPO)} ({init})", flush=True)
            rows.append(run_row(path, root, epochs, args.runs_dir / args.bench, protocols, init))
            write_table(out, markdown(args.bench, rows, epochs, protocols))  # rows so far
    print(markdown(args.bench, rows, epochs, protocols))
    print(f"written: {out}")
    return 0


def write_table(out: Path, table: str) -> None:
    """Write ``table`` to ``out`` atomically: after every row, so a run stopped later keeps
    the rows it finished and a reader never sees half a table."""
    from vidreid.atomic import write_text

    out.parent.mkdir(parents=True, exist_ok=True)
    write_text(out, table)


if __name__ == "__main__":
    sys.exit(main())
