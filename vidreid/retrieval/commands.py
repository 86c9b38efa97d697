"""``vidreid index build|add|remove|search|info``: the gallery index from the command line.

Queries come from a features folder (``--feats FEATS --id TRACKLET``), or from an image, a
folder of frames or a video file encoded by :func:`encode_query` with the model the gallery
was extracted with (``--model RUN``, ``--model imagenet`` or ``--config CONFIG --weights W``).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from vidreid.retrieval.features_file import FeatureTable, atomic_write_bytes, read_features
from vidreid.retrieval.index import (
    DEFAULT_LOCK_TIMEOUT_S,
    HNSW_DEFAULT_EF_CONSTRUCTION,
    HNSW_DEFAULT_EF_SEARCH,
    HNSW_DEFAULT_M,
    INDEX_BACKENDS,
    IVF_DEFAULT_NPROBE,
    IVF_MAX_NLIST,
    IVFPQ_DEFAULT_NPROBE,
    IVFPQ_MAX_NLIST,
    METRICS,
    GalleryIndex,
    SearchHit,
    index_write_lock,
    records_from_table,
)
from vidreid.retrieval.index.hnsw_pca import (
    HNSW_PCA_DEFAULT_EF_CONSTRUCTION,
    HNSW_PCA_DEFAULT_EF_SEARCH,
    HNSW_PCA_DEFAULT_M,
)
from vidreid.retrieval.index.ivf_pca import IVF_PCA_DEFAULT_NPROBE, IVF_PCA_MAX_NLIST
from vidreid.retrieval.ingest import ingest_root
from vidreid.retrieval.report import tracklet_name, write_report

QUERY_SOURCE_HELP = "an image, a folder of frames (one tracklet) or a video file"


def encode_query(
    source: str,
    index_meta: dict[str, Any],
    *,
    model: str | None = None,
    config: str | None = None,
    weights: str | None = None,
    overrides: list[str] | None = None,
    device: str = "cpu",
    force: bool = False,
    max_video_frames: int | None = None,
) -> tuple[np.ndarray, list[Any]]:
    """Encode a query image / frame folder / video into ``([1, D] features, frames)``.

    ``frames`` are the query's frame paths (image, folder) or decoded RGB arrays (video),
    for the report. The model must be the one the gallery was indexed with: its identity
    (config + weights hash) is checked against ``index_meta`` unless ``force``.
    """
    from vidreid.retrieval.extractor import DEFAULT_MAX_VIDEO_FRAMES, open_extractor, query_frames

    if model is None and (config is None or weights is None):
        raise ValueError(
            f"querying by {QUERY_SOURCE_HELP} needs the feature extractor's model (the one the "
            "gallery was extracted with): pass --model RUN (or --model imagenet, or --config "
            "CONFIG --weights W), or query with --feats FEATS --id ID"
        )
    frames = query_frames(source, max_video_frames or DEFAULT_MAX_VIDEO_FRAMES)
    if model is not None:
        extractor = open_extractor(model, None, overrides or [], device)
        given = f"--model {model}"
    else:
        extractor = open_extractor(config, weights, overrides or [], device)
        given = f"--config {config} / --weights {weights}"
    expected = index_meta.get("identity")
    if expected and extractor.identity != expected and not force:
        raise ValueError(
            f"{given} is not the model the index was built "
            f"with (identity {extractor.identity[:12]} vs {str(expected)[:12]}); distances "
            "would be meaningless. Use the gallery's model (run folder), or pass --force"
        )
    feats = extractor.tracklets([frames]).numpy()
    return feats, frames


def _build_params(args: argparse.Namespace) -> dict[str, Any]:
    """Index parameters given on the command line (GalleryIndex rejects ones foreign to --kind)."""
    names = {  # GalleryIndex parameter -> argparse attribute
        "nlist": "nlist",
        "nprobe": "nprobe",
        "M": "hnsw_m",
        "ef_construction": "ef_c",
        "ef_search": "ef_search",
        "pq_m": "pq_m",
        "pq_nbits": "pq_nbits",
        "refine": "refine",
        "pca_dim": "pca_dim",
    }
    return {k: getattr(args, v) for k, v in names.items() if getattr(args, v) is not None}


def _check_identity(index: GalleryIndex, table: FeatureTable, feats: str, force: bool) -> None:
    """Refuse features of a different model than the index's (unless ``force``)."""
    expected = index.meta.get("identity")
    if expected and table.identity != expected and not force:
        raise ValueError(
            f"{feats} was extracted with a different model/config (identity "
            f"{table.identity[:12]}) than the index ({str(expected)[:12]}); distances would be "
            "meaningless. Re-extract with the index's model, or pass --force"
        )


def _cmd_build(args: argparse.Namespace) -> int:
    table = read_features(args.feats)
    index = GalleryIndex.from_table(table, args.kind, args.metric, **_build_params(args))
    with index_write_lock(args.out, args.lock_timeout):  # not under a concurrent add/remove
        index.save(args.out)
    print(f"indexed {len(index)} tracklets ({args.kind}, {args.metric}) -> {args.out}")
    return 0


def _cmd_add(args: argparse.Namespace) -> int:
    table = read_features(args.feats)
    # Load under the writer lock: a concurrent add/remove finishes first and we build on it.
    with GalleryIndex.edit(args.index, lock_timeout=args.lock_timeout) as index:
        _check_identity(index, table, args.feats, args.force)
        index.add(table.features, records_from_table(table))
    print(f"added {len(table)} tracklets; the index now holds {len(index)} -> {args.index}")
    return 0


def _cmd_remove(args: argparse.Namespace) -> int:
    ids = list(args.ids)
    if args.ids_file:
        text = Path(args.ids_file).read_text(encoding="utf-8")
        ids += [line.strip() for line in text.splitlines() if line.strip()]
    if not ids:
        raise ValueError("give tracklet ids to remove (arguments or --ids-file)")
    with GalleryIndex.edit(args.index, lock_timeout=args.lock_timeout) as index:
        removed = index.remove(ids, missing_ok=args.missing_ok)
        if args.compact:
            index.compact()
    print(f"removed {removed} tracklets; the index now holds {len(index)} -> {args.index}")
    return 0


def _resolve(frames: tuple[str, ...], root: str | None) -> list[str]:
    if root is None:
        return list(frames)
    return [f if os.path.isabs(f) else os.path.join(root, f) for f in frames]


def _same_tracklet(query_id: str, query_frames: list[str], hit: SearchHit) -> bool:
    """Whether a hit is the query's own tracklet: same id, or the same frame files (ingest's
    ``query`` split links to the ``gallery`` folders, so paths differ but files do not)."""
    if hit.tracklet_id == query_id:
        return True
    if not query_frames or len(query_frames) != len(hit.frames):
        return False
    return ({os.path.realpath(f) for f in query_frames}
            == {os.path.realpath(f) for f in hit.frames})


def _hits_json(name: str, hits: list[SearchHit]) -> dict[str, Any]:
    return {"query": name, "hits": [h._asdict() for h in hits]}


def _cmd_search(args: argparse.Namespace) -> int:
    index = GalleryIndex.load(args.index)
    queries: list[tuple[str, np.ndarray, list[str], int | None]] = []  # name, [D], frames, pid
    if args.source is not None:
        if args.feats is not None:
            raise ValueError(f"give either a query {QUERY_SOURCE_HELP} or --feats, not both")
        feats, frames = encode_query(
            args.source, index.meta, model=args.model, config=args.config, weights=args.weights,
            overrides=args.set, device=args.device, force=args.force,
            max_video_frames=args.max_video_frames,
        )
        queries.append((args.source, np.asarray(feats).reshape(-1), frames, args.label))
    elif args.feats is not None:
        table = read_features(args.feats)
        _check_identity(index, table, args.feats, args.force)
        row_of = {t: i for i, t in enumerate(table.tracklet_ids)}
        wanted = args.id or table.tracklet_ids
        unknown = [t for t in wanted if t not in row_of]
        if unknown:
            raise ValueError(f"tracklet ids not in {args.feats}: {unknown[:5]}")
        for tid in wanted:
            i = row_of[tid]
            frames = _resolve(table.frame_paths[i], args.frames_root)
            queries.append((tid, table.features[i], frames, int(table.pids[i])))
    else:
        raise ValueError(f"give a query ({QUERY_SOURCE_HELP}) or --feats FEATS [--id ID ...]")

    # The query's own tracklet (searching an index with its own features) is no result.
    extra = 0 if args.include_self or args.feats is None else 1
    results = index.search(np.stack([q[1] for q in queries]), args.k + extra,
                           **_search_overrides(index, args))
    if extra:
        results = [[h for h in hits if not _same_tracklet(
            name, _resolve(tuple(frames), None), h._replace(
                frames=tuple(_resolve(h.frames, args.frames_root))))][: args.k]
                   for (name, _, frames, _), hits in zip(queries, results, strict=True)]
    # On ingest output the pids are track ids, not identities (unless --label says one).
    identity_labels = not any(ingest_root(f) for q in queries for f in q[2][:1])
    if not identity_labels and args.label is None:
        queries = [(n, f, fr, None) for n, f, fr, _ in queries]
    for (name, _, frames, pid), hits in zip(queries, results, strict=True):
        word = "pid" if identity_labels else "track"
        shown = tracklet_name(name, frames) if frames else name
        print(f"query {shown}" + (f" ({word} {pid})" if pid is not None else ""))
        for rank, h in enumerate(hits, start=1):
            hit_name = tracklet_name(h.tracklet_id, h.frames)
            print(f"  {rank:>3}  {hit_name:<24} {word} {h.pid:<6} cam {h.camid:<3} "
                  f"{h.distance:.4f}")
    if args.json:
        payload = [_hits_json(q[0], hits) for q, hits in zip(queries, results, strict=True)]
        text = json.dumps(payload, indent=2).encode("utf-8")
        atomic_write_bytes(args.json, lambda fh: fh.write(text))
    if args.report:
        out = Path(args.report)
        for qi, ((name, _, frames, pid), hits) in enumerate(zip(queries, results, strict=True)):
            html_path = out if len(queries) == 1 else out.with_name(f"{out.stem}-{qi}{out.suffix}")
            hits = [h._replace(frames=tuple(_resolve(h.frames, args.frames_root))) for h in hits]
            write_report(
                frames,
                hits,
                html_path,
                query_label=pid,
                png=html_path.with_suffix(".png"),
                max_frames=args.max_frames,
                title=f"vidreid search: {tracklet_name(name, frames) if frames else name}",
                identity_labels=identity_labels or args.label is not None,
            )
            print(f"report -> {html_path} (+ {html_path.with_suffix('.png').name})")
    return 0


def _search_overrides(index: GalleryIndex, args: argparse.Namespace) -> dict[str, int]:
    """``--nprobe`` / ``--ef-search`` of ``index search`` as per-call search settings; a flag the
    index's kind has no setting for is an error (it would otherwise be silently ignored)."""
    given = {name: getattr(args, name) for name in _SEARCH_FLAGS if getattr(args, name) is not None}
    for name, value in given.items():
        flag = _SEARCH_FLAGS[name]
        if name not in index.search_param_names:
            has = ", ".join(_SEARCH_FLAGS[n] for n in index.search_param_names) or "none"
            raise ValueError(
                f"{flag}: a {index.kind} index has no {name} setting ({index.kind} search "
                f"settings: {has}); drop {flag} or search an index of another kind"
            )
        if value <= 0:
            raise ValueError(f"{flag} must be positive, got {value}")
    return given


_SEARCH_FLAGS = {"nprobe": "--nprobe", "ef_search": "--ef-search"}  # search setting -> flag


def _cmd_info(args: argparse.Namespace) -> int:
    print(json.dumps(GalleryIndex.load(args.index).info(), indent=2, sort_keys=True))
    return 0


def _add_lock_timeout(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--lock-timeout", type=float, default=DEFAULT_LOCK_TIMEOUT_S, metavar="SECONDS",
        help="wait this long for another writer of the same index (INDEX.lock) before giving "
        f"up (default {DEFAULT_LOCK_TIMEOUT_S:g})",
    )


def register(subparsers: Any) -> None:
    """Add ``index`` and its sub-commands to the ``vidreid`` parser."""
    p_index = subparsers.add_parser("index", help="build, edit and search a gallery index")
    sub = p_index.add_subparsers(dest="index_command", required=True, metavar="ACTION")

    p = sub.add_parser("build", help="index a features folder (from vidreid extract)")
    p.add_argument("feats", help="features folder written by vidreid extract")
    p.add_argument("--out", required=True, help="index file to write")
    p.add_argument("--kind", choices=INDEX_BACKENDS.names(), default="flat",
                   help="flat = exact (default); ivf, ivf_pca, hnsw, hnsw_pca approximate "
                   "(ivf_pca: fastest build of a large gallery); ivfpq compressed")
    p.add_argument("--metric", choices=METRICS, default="euclidean")
    p.add_argument("--nlist", type=int,
                   help=f"ivf/ivfpq/ivf_pca: cells (default ~4*sqrt(N), at most {IVF_MAX_NLIST} / "
                   f"{IVFPQ_MAX_NLIST} / {IVF_PCA_MAX_NLIST})")
    p.add_argument("--nprobe", type=int,
                   help=f"ivf/ivfpq/ivf_pca: cells scanned per query (default {IVF_DEFAULT_NPROBE} "
                   f"/ {IVFPQ_DEFAULT_NPROBE} / {IVF_PCA_DEFAULT_NPROBE})")
    p.add_argument("--pq-m", type=int, help="ivfpq: sub-quantisers, divides the dim (default D/8)")
    p.add_argument("--pq-nbits", type=int, help="ivfpq: bits per sub-quantiser code (default 8)")
    p.add_argument("--refine", type=int, help="ivfpq: keep the float vectors and re-rank "
                   "REFINE*k PQ hits exactly (default 0: off, least memory); hnsw_pca, ivf_pca: "
                   "candidates re-ranked per top-k hit (default 5)")
    p.add_argument("--pca-dim", type=int, help="hnsw_pca, ivf_pca: principal components the "
                   "graph or cells are built on (default D/8, at least 64)")
    p.add_argument("--hnsw-m", type=int, help=f"hnsw, hnsw_pca: links per node (default "
                   f"{HNSW_DEFAULT_M} / {HNSW_PCA_DEFAULT_M})")
    p.add_argument("--ef-c", type=int, help=f"hnsw, hnsw_pca: efConstruction (default "
                   f"{HNSW_DEFAULT_EF_CONSTRUCTION} / {HNSW_PCA_DEFAULT_EF_CONSTRUCTION})")
    p.add_argument("--ef-search", type=int, help=f"hnsw, hnsw_pca: efSearch (default "
                   f"{HNSW_DEFAULT_EF_SEARCH} / {HNSW_PCA_DEFAULT_EF_SEARCH})")
    _add_lock_timeout(p)
    p.set_defaults(func=_cmd_build)

    p = sub.add_parser("add", help="add the tracklets of a features folder")
    p.add_argument("index")
    p.add_argument("feats")
    p.add_argument("--force", action="store_true", help="allow features of another model")
    _add_lock_timeout(p)
    p.set_defaults(func=_cmd_add)

    p = sub.add_parser("remove", help="remove tracklets by id")
    p.add_argument("index")
    p.add_argument("ids", nargs="*", help="tracklet ids")
    p.add_argument("--ids-file", help="file with one tracklet id per line")
    p.add_argument("--missing-ok", action="store_true", help="ignore ids not in the index")
    p.add_argument("--compact", action="store_true", help="hnsw: rebuild the graph now")
    _add_lock_timeout(p)
    p.set_defaults(func=_cmd_remove)

    p = sub.add_parser("search", help="top-k gallery tracklets for queries")
    p.add_argument("index")
    p.add_argument("source", nargs="?", help=f"query: {QUERY_SOURCE_HELP} (needs --model)")
    p.add_argument("--model", metavar="RUN|imagenet",
                   help="with a query source: the run folder (or imagenet) the gallery was"
                        " extracted with")
    p.add_argument("--config", help="older form of --model: the gallery's experiment config")
    p.add_argument("--weights", help="older form of --model: the gallery's model weights")
    p.add_argument("--set", nargs="+", metavar="KEY=VALUE", help="config overrides")
    p.add_argument("--device", default="cpu", help="with a query source: cpu, cuda, ...")
    p.add_argument("--max-video-frames", type=int, help="video query: frames decoded "
                   "(evenly spread; default 256)")
    p.add_argument("--feats", help="query features folder (from vidreid extract)")
    p.add_argument("--id", nargs="+", help="query tracklet ids in --feats (default: all)")
    p.add_argument("--label", type=int, help="query pid, if known (colours the report)")
    p.add_argument("--include-self", action="store_true",
                   help="--feats queries: keep the query's own tracklet among the results")
    p.add_argument("-k", type=int, default=10)
    p.add_argument("--force", action="store_true", help="allow features of another model")
    p.add_argument("--json", help="write the results as JSON here")
    p.add_argument("--report", help="write an HTML report here (and a PNG next to it)")
    p.add_argument("--frames-root", help="folder that relative frame paths are relative to")
    p.add_argument("--max-frames", type=int, default=8, help="thumbnails per tracklet")
    p.add_argument("--nprobe", type=int, help="ivf kinds: cells scanned per query, for this "
                   "search only (default: the index's; more = higher recall, slower)")
    p.add_argument("--ef-search", type=int, help="hnsw kinds: search beam width, for this "
                   "search only (default: the index's; more = higher recall, slower)")
    p.set_defaults(func=_cmd_search)

    p = sub.add_parser("info", help="print what an index holds")
    p.add_argument("index")
    p.set_defaults(func=_cmd_info)
