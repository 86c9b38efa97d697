"""Gallery index benchmark: build time, query latency and recall@10 of IVF / HNSW vs flat.

Data: a Gaussian mixture, not uniform noise (on uniform random vectors every point is about
equally far from every other, a pathological case where no approximate index can be both
fast and accurate). ``--clusters`` (default N/1000) centres are drawn from N(0, I_D); each gallery vector and
each query is a random centre plus N(0, spread^2 I_D) noise, like re-ID features where the
tracklets of one identity sit around one point. Queries are fresh samples, not gallery rows.

Recall@10 = |top-10 of the index  ∩  exact top-10 of flat| / 10, averaged over queries.
Latency: "batch-1" sends queries one at a time (``--single`` of them); "batched" sends all
``--queries`` at once and divides by their number.

Run: ``python benchmarks/bench_index.py`` (1,000,000 x 512, a few GB of RAM, ~15 min on
2 cores) or ``--n 100000 --dim 128`` for a quick run.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import platform
import sys
import time

import faiss
import numpy as np

from vidreid.retrieval.index import GalleryIndex, TrackletRecord

TOP_K = 10
VECTORS_PER_CLUSTER = 1000  # default mixture: ~1000 gallery vectors around each centre
GENERATION_CHUNK = 100_000


def gaussian_mixture(
    n: int, dim: int, centres: np.ndarray, spread: float, rng: np.random.Generator
) -> np.ndarray:
    """``n`` float32 samples ``[n, dim]``: a random centre plus isotropic Gaussian noise."""
    out = np.empty((n, dim), np.float32)
    for start in range(0, n, GENERATION_CHUNK):
        stop = min(start + GENERATION_CHUNK, n)
        which = rng.integers(0, len(centres), stop - start)
        noise = rng.standard_normal((stop - start, dim), dtype=np.float32)
        out[start:stop] = centres[which] + spread * noise
    return out


def progress(msg: str) -> None:
    """Progress on stderr, so the table on stdout stays clean."""
    print(msg, file=sys.stderr, flush=True)


def load_average() -> str:
    """1-minute load average (other processes on the machine skew the timings)."""
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "n/a"


def ids_of(hits: list) -> list[list[int]]:
    return [[int(h.tracklet_id) for h in row] for row in hits]


def recall_at_k(found: list[list[int]], exact: list[list[int]]) -> float:
    return float(
        np.mean([len(set(f) & set(e)) / len(e) for f, e in zip(found, exact, strict=True)])
    )


def time_queries(
    index: GalleryIndex, queries: np.ndarray, n_single: int, **search_kw: int
) -> tuple[list[list[int]], float, float]:
    """(batched top-k ids, ms/query batched, ms/query batch-1)."""
    t0 = time.perf_counter()
    hits = index.search(queries, TOP_K, **search_kw)
    batched_ms = (time.perf_counter() - t0) * 1e3 / len(queries)
    t0 = time.perf_counter()
    for q in queries[:n_single]:
        index.search(q[None], TOP_K, **search_kw)
    single_ms = (time.perf_counter() - t0) * 1e3 / max(1, min(n_single, len(queries)))
    return ids_of(hits), batched_ms, single_ms


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="gallery vectors")
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--single", type=int, default=100, help="queries timed one at a time")
    ap.add_argument(
        "--clusters", type=int, default=None, help="mixture components (default: n / 1000)"
    )
    ap.add_argument("--spread", type=float, default=1.0, help="noise std around a centre")
    ap.add_argument("--nprobe", type=int, nargs="+", default=[4, 16, 64])
    ap.add_argument("--ef-search", type=int, nargs="+", default=[32, 64, 128, 256])
    ap.add_argument("--hnsw-m", type=int, default=32)
    ap.add_argument("--kinds", nargs="+", default=["flat", "ivf", "hnsw"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None, help="FAISS OpenMP threads")
    args = ap.parse_args(argv)
    if args.threads:
        faiss.omp_set_num_threads(args.threads)

    if args.clusters is None:
        args.clusters = max(1, args.n // VECTORS_PER_CLUSTER)
    rng = np.random.default_rng(args.seed)
    centres = rng.standard_normal((args.clusters, args.dim), dtype=np.float32)
    t0 = time.perf_counter()
    gallery = gaussian_mixture(args.n, args.dim, centres, args.spread, rng)
    queries = gaussian_mixture(args.queries, args.dim, centres, args.spread, rng)
    records = [TrackletRecord(str(i), i % args.clusters, 0) for i in range(args.n)]
    print(
        f"data: {args.n:,} x {args.dim} float32 gallery ({gallery.nbytes / 2**30:.2f} GiB), "
        f"{args.queries} queries; Gaussian mixture of {args.clusters} centres ~ N(0, I), "
        f"noise std {args.spread}; generated in {time.perf_counter() - t0:.1f} s"
    )
    print(
        f"machine: {platform.processor() or platform.machine()}, faiss {faiss.__version__}, "
        f"{faiss.omp_get_max_threads()} threads; metric euclidean; top-{TOP_K}; "
        f"load average at start {load_average()}"
    )

    rows: list[tuple[str, str, float, float, float, float]] = []
    t0 = time.perf_counter()
    flat = GalleryIndex.build(gallery, records, "flat")
    build_s = time.perf_counter() - t0
    progress(f"flat built in {build_s:.1f} s; exact search ...")
    exact, batched_ms, single_ms = time_queries(flat, queries, args.single)
    if "flat" in args.kinds:
        rows.append(("flat", "exact", build_s, batched_ms, single_ms, 1.0))
    del flat
    gc.collect()

    if "ivf" in args.kinds:
        t0 = time.perf_counter()
        ivf = GalleryIndex.build(gallery, records, "ivf")
        build_s = time.perf_counter() - t0
        progress(f"ivf built in {build_s:.1f} s")
        nlist = ivf.params["nlist"]
        train = ivf.params["train_size"]
        for nprobe in args.nprobe:
            found, batched_ms, single_ms = time_queries(ivf, queries, args.single, nprobe=nprobe)
            rows.append(
                (
                    f"ivf nlist={nlist} (train {train:,})",
                    f"nprobe={nprobe}",
                    build_s,
                    batched_ms,
                    single_ms,
                    recall_at_k(found, exact),
                )
            )
        del ivf
        gc.collect()

    if "hnsw" in args.kinds:
        t0 = time.perf_counter()
        hnsw = GalleryIndex.build(gallery, records, "hnsw", M=args.hnsw_m)
        build_s = time.perf_counter() - t0
        progress(f"hnsw built in {build_s:.1f} s")
        efc = hnsw.params["ef_construction"]
        for ef in args.ef_search:
            found, batched_ms, single_ms = time_queries(hnsw, queries, args.single, ef_search=ef)
            rows.append(
                (
                    f"hnsw M={args.hnsw_m} efC={efc}",
                    f"efSearch={ef}",
                    build_s,
                    batched_ms,
                    single_ms,
                    recall_at_k(found, exact),
                )
            )
        del hnsw
        gc.collect()

    header = ("index", "search", "build s", "ms/q batched", "ms/q batch-1", "recall@10")
    widths = [max(len(header[0]), *(len(r[0]) for r in rows)), 14, 9, 13, 13, 9]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    for name, search, build_s, bms, sms, rec in rows:
        cells = (
            name,
            search,
            f"{build_s:.1f}",
            f"{bms:.3f}",
            f"{sms:.3f}",
            f"{rec:.3f}" if not math.isnan(rec) else "-",
        )
        print("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip())
    print(f"load average at end {load_average()}")


if __name__ == "__main__":
    main()
