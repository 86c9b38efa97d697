"""Attribute model on held-out synthetic tracklets: attribute accuracy and occlusion weights.

    .venv/bin/python benchmarks/attribute_eval.py RUN [--data-root ROOT] [--out FILE.md]

``RUN`` is a run folder of the attribute model (e.g. the ``bench_attribute`` row of
``benchmarks/accuracy.py``) or one of its checkpoints; the data is the run's own
``data.root`` unless ``--data-root`` is given: a synthetic set made by ``vidreid synth``
(the ground truth gives every test tracklet's rendered identity, hence its attributes, and
its per-frame occluder masks). Every held-out tracklet (query and gallery, test identities
and distractors) is fed whole as one clip, then:

1. **Attribute recognition**: per attribute, accuracy of the clip prediction
   (``extras["attr_probs"]``: the group-weighted frame probabilities) against the table,
   beside the majority-value baseline of the training identities.
2. **Occlusion**: a body part of a frame is *occluded* when at least ``--occluded`` of its
   silhouette pixels are behind the occluder and *clear* when at most ``--clear`` are; parts
   are horizontal bands of the silhouette's box at the renderer's proportions (head + neck,
   torso, legs; our approximation, arms and bags are ignored). For every tracklet with both
   occluded and clear frames of a part, the ratio ``mean w(occluded) / mean w(clear)`` of
   each group's temporal weights; the table gives the mean (and the share of tracklets with
   ratio < 1) per (occluded part, group). Below 1 on the part's own group means occluded
   frames count less for that group, as the method intends.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

#: Occluded body part -> the attribute group that describes it.
PART_GROUP = {"head": "head", "upper": "upper", "lower": "lower"}
OCCLUDED_FRACTION = 0.3
CLEAR_FRACTION = 0.02


def part_bands() -> dict[str, tuple[float, float]]:
    """Vertical bands of the figure (fractions of its height) from the renderer's proportions."""
    from vidreid.data.synth.render import HEAD_H, NECK_H, TORSO_H

    head_end = HEAD_H + NECK_H
    return {"head": (0.0, head_end), "upper": (head_end, head_end + TORSO_H),
            "lower": (head_end + TORSO_H, 1.0)}


def occluded_fractions(frame_path: str) -> dict[str, float] | None:
    """Per body part, the fraction of its silhouette pixels behind the occluder."""
    from vidreid.data.synth.ground_truth import load_frame_truth

    truth = load_frame_truth(frame_path)
    rows = np.nonzero(truth.silhouette.any(axis=1))[0]
    if rows.size == 0:
        return None
    top, height = rows[0], rows[-1] - rows[0] + 1
    out = {}
    for part, (a, b) in part_bands().items():
        band = np.zeros_like(truth.silhouette)
        band[top + int(round(a * height)): top + int(round(b * height))] = True
        sil = truth.silhouette & band
        n = int(sil.sum())
        out[part] = float((sil & truth.occluder).sum() / n) if n else 0.0
    return out


def majority_baseline(table, train_raw_pids: list[int]) -> np.ndarray:
    """Most frequent code of every attribute over the training identities."""
    with np.errstate(all="ignore"):
        labels = table.labels(train_raw_pids, what="train identities")
    out = np.zeros(labels.shape[1], dtype=np.int64)
    for j in range(labels.shape[1]):
        col = labels[:, j][labels[:, j] >= 0]
        out[j] = np.bincount(col).argmax() if col.size else 0
    return out


def measure(model: torch.nn.Module, cfg, dataset, occluded: float, clear: float,
            max_tracklets: int | None) -> dict:
    """Attribute accuracy (model and majority baseline, per attribute) and the temporal-weight
    ratios occluded / clear per (occluded part, group), on the held-out tracklets."""
    from vidreid.build import build_transform
    from vidreid.data.attributes import attribute_groups, load_attribute_table
    from vidreid.data.synth.ground_truth import load_tracklet_table
    from vidreid.data.video_dataset import read_frames
    from vidreid.engine.config import to_container

    model.eval()
    spec = to_container(cfg.model)
    groups, values = attribute_groups(spec.get("groups"), spec.get("attribute_values"))
    names = list(values)
    table = load_attribute_table(dataset.attributes_file, names, values)
    baseline = majority_baseline(table, list(dataset.extra["train_raw_pids"]))
    ddir = dataset.root
    truth = {tuple(r["frames"]): r for r in load_tracklet_table(ddir)}
    transform = build_transform(cfg, train=False)

    seen, tracklets = set(), []
    for t in dataset.query + dataset.gallery:
        if t.frames not in seen:
            seen.add(t.frames)
            tracklets.append(t)
    tracklets = tracklets[:max_tracklets] if max_tracklets else tracklets
    correct = np.zeros(len(names))
    base_correct = np.zeros(len(names))
    counted = np.zeros(len(names))
    ratios: dict[tuple[str, str], list[float]] = defaultdict(list)
    sizes = model.attribute_sizes
    for t in tracklets:
        rel = tuple(os.path.relpath(f, ddir).replace(os.sep, "/") for f in t.frames)
        row = truth[rel]
        with torch.no_grad():
            clip = transform(read_frames(list(t.frames))).unsqueeze(0)
            ex = model(clip, return_extras=True)["extras"]
        probs = ex["attr_probs"][0].split(sizes)
        pred = np.array([int(p.argmax()) for p in probs])
        label = table.codes.get(row["identity"])
        if label is not None:
            ok = label >= 0
            correct += (pred == label) & ok
            base_correct += (baseline == label) & ok
            counted += ok
        if not any(row["occluded"]):
            continue
        w = ex["temporal_weights"][0].numpy()  # [K, T]
        fracs = [occluded_fractions(f) for f in t.frames]
        for part in PART_GROUP:
            occ = [i for i, f in enumerate(fracs) if f is not None and f[part] >= occluded]
            clr = [i for i, f in enumerate(fracs) if f is not None and f[part] <= clear]
            if occ and clr:
                for k, g in enumerate(model.group_names):
                    ratios[(part, g)].append(float(w[k, occ].mean() / w[k, clr].mean()))
    return {"names": names, "groups": groups, "sizes": sizes, "correct": correct,
            "base_correct": base_correct, "counted": counted, "ratios": ratios,
            "tracklets": len(tracklets), "root": ddir, "group_names": list(model.group_names)}


def evaluate(run: str, data_root: str | None, occluded: float, clear: float,
             max_tracklets: int | None) -> str:
    from vidreid import build as B
    from vidreid.engine.config import load_config

    ckpt = run if os.path.isfile(run) else os.path.join(run, "last.pt")
    saved = os.path.join(os.path.dirname(ckpt), "config.yaml")
    cfg = load_config(saved, [f"data.root={data_root}"] if data_root else [])
    dataset = B.build_dataset(cfg)
    model = B.load_trained(ckpt, cfg).model
    m = measure(model, cfg, dataset, occluded, clear, max_tracklets)
    names, groups, sizes, ratios = m["names"], m["groups"], m["sizes"], m["ratios"]
    correct, base_correct, counted = m["correct"], m["base_correct"], m["counted"]
    tracklets, ddir = m["tracklets"], m["root"]

    lines = [f"## Attribute model `{cfg.name}` ({ckpt}) on {tracklets} held-out "
             f"tracklets of {ddir}", "",
             "| attribute | group | values | accuracy % | majority baseline % | n |",
             "|---|---|---:|---:|---:|---:|"]
    group_of = {a: g for g, attrs in groups.items() for a in attrs}
    for j, a in enumerate(names):
        n = max(counted[j], 1)
        lines.append(f"| {a} | {group_of[a]} | {sizes[j]} | {100 * correct[j] / n:.1f} |"
                     f" {100 * base_correct[j] / n:.1f} | {int(counted[j])} |")
    total = max(counted.sum(), 1)
    lines.append(f"| **mean** | | | {100 * (correct / np.maximum(counted, 1)).mean():.1f} |"
                 f" {100 * (base_correct / np.maximum(counted, 1)).mean():.1f} | {int(total)} |")
    lines += ["", f"Occluded (>= {occluded:.0%} of the part hidden) vs clear (<= {clear:.0%})"
              " frames of the same tracklet: mean w(occluded) / mean w(clear) per group"
              " (share of tracklets with ratio < 1; n tracklets)", "",
              "| occluded part | n | " + " | ".join(model.group_names) + " |",
              "|---|---:|" + "---:|" * len(model.group_names)]
    for part, own in PART_GROUP.items():
        n = len(ratios[(part, own)])
        if not n:
            lines.append(f"| {part} | 0 | " + " | ".join("-" for _ in model.group_names) + " |")
            continue
        cells = []
        for g in model.group_names:
            r = np.array(ratios[(part, g)])
            cell = f"{r.mean():.3f} ({(r < 1).mean():.0%})"
            cells.append(f"**{cell}**" if g == own else cell)
        lines.append(f"| {part} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="run folder (uses last.pt) or checkpoint of the attribute model")
    parser.add_argument("--data-root", help="synthetic data root (default: the run's data.root)")
    parser.add_argument("--occluded", type=float, default=OCCLUDED_FRACTION)
    parser.add_argument("--clear", type=float, default=CLEAR_FRACTION)
    parser.add_argument("--max-tracklets", type=int, help="evaluate only the first N")
    parser.add_argument("--out", type=Path, help="markdown file (default RUN/attribute_eval.md)")
    args = parser.parse_args(argv)
    table = evaluate(args.run, args.data_root, args.occluded, args.clear, args.max_tracklets)
    print(table)
    out = args.out or Path(args.run if os.path.isdir(args.run) else os.path.dirname(args.run)) \
        / "attribute_eval.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    with os.fdopen(fd, "w") as fh:
        fh.write(table)
    os.replace(tmp, out)
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
