"""``vidreid viz masks|attention``: draw what a trained model looks at on one tracklet.

Both sub-commands load a trained run (``RUN``, or ``CONFIG --weights W``), read the frames of a tracklet folder (sorted
by the numbers in their names, so ``f2.jpg`` comes before ``f10.jpg``), run the model in eval
mode with ``return_extras=True`` on the whole tracklet as one clip, and plot:

- ``masks``: ``extras["spatial_masks"]`` (``{module: [B, T, h, w]}``) over the frames, with
  :func:`vidreid.viz.masks.draw_masks`;
- ``attention``: ``extras["temporal_weights"]`` (``[B, T]`` or ``[B, G, T]``, optional
  ``extras["temporal_weight_labels"]``) under the frame strip, with
  :func:`vidreid.viz.attention.draw_temporal_weights`.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

FRAME_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")


def _natural_key(path: Path) -> list[Any]:
    """``img10.jpg`` after ``img9.jpg``: digit runs compare as numbers."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def tracklet_frame_paths(
    folder: str, max_frames: int | None = None, pattern: str = "*"
) -> list[str]:
    """Image files of a tracklet folder in numeric order (an evenly spaced subset if capped).

    ``pattern`` (a glob on file names) picks one tracklet in a folder holding several, e.g.
    ``0001C1T0003F*`` in a MARS identity folder.
    """
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"--max-frames must be a positive number of frames, got {max_frames}")
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"tracklet folder not found: {folder}")
    paths = sorted(
        (p for p in root.glob(pattern) if p.is_file() and p.suffix.lower() in FRAME_EXTENSIONS),
        key=_natural_key,
    )
    if not paths:
        raise ValueError(
            f"no frames matching {pattern!r} in {folder}: expected image files "
            f"({', '.join(FRAME_EXTENSIONS)})"
        )
    if max_frames is not None and len(paths) > max_frames:
        keep = np.linspace(0, len(paths) - 1, max_frames).round().astype(int)
        paths = [paths[i] for i in keep]
    return [str(p) for p in paths]


def run_on_tracklet(
    config: str | None,
    overrides: list[str],
    weights: str | None,
    tracklet: str,
    max_frames: int | None,
    pattern: str = "*",
) -> tuple[list[np.ndarray], dict[str, Any]]:
    """The tracklet's frames (``H x W x 3`` uint8) and the model's ``extras`` for them.

    ``config`` is a run folder (or checkpoint) when ``weights`` is None, else the config the
    ``weights`` were trained with (the older form)."""
    from vidreid.build import build_transform, load_trained
    from vidreid.data.video_dataset import read_frames

    paths = tracklet_frame_paths(tracklet, max_frames, pattern)
    source, config = (weights, config) if weights is not None else (config, None)
    trained = load_trained(source, config, overrides)
    cfg, model = trained.config, trained.model
    raw = read_frames(paths)  # uint8 [T, 3, H, W]
    clip = build_transform(cfg, train=False)(raw).unsqueeze(0)  # [1, T, 3, h, w]
    with torch.no_grad():
        out = model(clip, return_extras=True)
    extras = out.get("extras")
    if not extras:
        raise ValueError(f"model {cfg.model.name!r} returns no extras to visualise")
    frames = [f.permute(1, 2, 0).numpy() for f in raw]
    return frames, extras


def _to_numpy(x: Any) -> Any:
    return x.detach().float().cpu().numpy() if isinstance(x, torch.Tensor) else x


def cmd_masks(args: argparse.Namespace) -> int:
    from vidreid.viz.masks import draw_masks

    frames, extras = run_on_tracklet(
        args.config, args.overrides, args.weights, args.tracklet, args.max_frames, args.pattern
    )
    masks = extras.get("spatial_masks")
    if not masks:
        raise ValueError(
            f"the model of {args.config} returns no extras['spatial_masks']; "
            "`viz masks` needs a model with spatial masks (e.g. cosam)"
        )
    draw_masks(frames, {name: _to_numpy(m)[0] for name, m in masks.items()}, args.out)
    print(f"wrote {args.out}")
    return 0


def cmd_attention(args: argparse.Namespace) -> int:
    from vidreid.viz.attention import draw_temporal_weights

    frames, extras = run_on_tracklet(
        args.config, args.overrides, args.weights, args.tracklet, args.max_frames, args.pattern
    )
    if "temporal_weights" not in extras:
        raise ValueError(
            f"the model of {args.config} returns no extras['temporal_weights']; "
            "`viz attention` needs a model with temporal weights (e.g. gltr)"
        )
    weights = _to_numpy(extras["temporal_weights"])[0]  # [T] or [G, T]
    labels = extras.get("temporal_weight_labels")
    draw_temporal_weights(frames, weights, args.out, labels=list(labels) if labels else None)
    print(f"wrote {args.out}")
    return 0


DEFAULT_RANK_QUERIES = 10
DEFAULT_TOP_K = 10
DEFAULT_STRIP_FRAMES = 6


def cmd_ranks(args: argparse.Namespace) -> int:
    """Top-k gallery strips of sampled queries (torchreid's ``visrank``, for tracklets)."""
    from vidreid import build as B
    from vidreid.metrics.distance import pairwise_distance
    from vidreid.retrieval.extractor import FeatureExtractor
    from vidreid.retrieval.index import SearchHit
    from vidreid.retrieval.report import write_report

    extractor = FeatureExtractor.from_run(args.run, args.overrides, args.device)
    cfg = extractor.cfg
    dataset = B.build_dataset(cfg)
    query, gallery = list(dataset.query), list(dataset.gallery)
    if not query or not gallery:
        raise ValueError(f"{cfg.data.name} at {cfg.data.root}: no query or gallery tracklets")
    rng = np.random.default_rng(args.seed)
    picked = sorted(rng.choice(len(query), min(args.num_queries, len(query)), replace=False))
    qf = extractor.tracklets([query[i] for i in picked])
    gf = extractor.tracklets(gallery)
    dist = pairwise_distance(qf, gf, cfg.eval.metric, cfg.eval.normalize)
    junk = set(getattr(dataset, "junk_pids", ()))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for row, qi in enumerate(picked):
        q = query[qi]
        # as in evaluation: the same person seen by the same camera is not a retrieval
        order = [int(j) for j in torch.argsort(dist[row])
                 if gallery[j].pid not in junk
                 and not (gallery[j].pid == q.pid and gallery[j].camid == q.camid)]
        hits = [SearchHit(f"gallery/{j:06d}", int(gallery[j].pid), int(gallery[j].camid),
                          float(dist[row, j]), tuple(gallery[j].frames))
                for j in order[: args.k]]
        page = out / f"query-{qi:06d}.html"
        write_report(list(q.frames), hits, page, query_label=int(q.pid),
                     png=page.with_suffix(".png"), max_frames=args.max_frames,
                     title=f"{cfg.name}: query {qi} (pid {q.pid}, camera {q.camid})")
    print(f"{len(picked)} ranked lists -> {out}")
    return 0


def register(subparsers: Any) -> None:
    """Add ``viz masks`` and ``viz attention`` to the ``vidreid`` command."""
    viz = subparsers.add_parser(
        "viz", help="visualise a model's masks, temporal weights or ranked lists")
    sub = viz.add_subparsers(dest="viz_command", required=True, metavar="WHAT")
    for name, func, help_text, default_out in (
        (
            "masks",
            cmd_masks,
            "spatial masks over the frames (extras['spatial_masks'])",
            "masks.png",
        ),
        (
            "attention",
            cmd_attention,
            "temporal weights under the frame strip (extras['temporal_weights'])",
            "attention.png",
        ),
    ):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("config", metavar="RUN|CONFIG",
                       help="a run folder of vidreid train, or a config given with --weights")
        p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides")
        p.add_argument(
            "--weights", help="with a CONFIG: checkpoint (last.pt / best.pt) or state dict"
        )
        p.add_argument(
            "--tracklet", required=True, metavar="DIR", help="folder of one tracklet's frames"
        )
        p.add_argument("--out", default=default_out, help=f"PNG to write (default {default_out})")
        p.add_argument(
            "--max-frames",
            type=int,
            default=None,
            help="use an evenly spaced subset of at most this many frames",
        )
        p.add_argument(
            "--pattern",
            default="*",
            help="glob on frame file names selecting one tracklet, e.g. '0001C1T0003F*'",
        )
        p.set_defaults(func=func)

    p = sub.add_parser(
        "ranks", help="top-k gallery tracklets of sampled queries, green if the same person",
        description="For a few queries of the run's dataset, draws the query and its top-k"
                    " gallery tracklets (a strip of frames each), with a green border when"
                    " the person is the query's and a red one otherwise. Writes one HTML page"
                    " and one PNG per query.")
    p.add_argument("run", metavar="RUN", help="a run folder of vidreid train")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="config overrides, e.g. data.root=DATA")
    p.add_argument("--out", default="ranks", help="folder for the pages (default ranks)")
    p.add_argument("--num-queries", type=int, default=DEFAULT_RANK_QUERIES,
                   help=f"queries drawn at random (default {DEFAULT_RANK_QUERIES})")
    p.add_argument("-k", type=int, default=DEFAULT_TOP_K,
                   help=f"gallery tracklets per query (default {DEFAULT_TOP_K})")
    p.add_argument("--max-frames", type=int, default=DEFAULT_STRIP_FRAMES,
                   help=f"frames per strip (default {DEFAULT_STRIP_FRAMES})")
    p.add_argument("--seed", type=int, default=0, help="which queries are drawn")
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=cmd_ranks)
