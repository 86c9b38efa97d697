"""Benchmark ``vidreid.metrics.evaluate_rank`` against fastreid's Cython evaluator.

Default mode: a MARS-sized problem (1,980 queries x 9,330 gallery, 50 ranks, MARS-like
labels), timed in the same run for both evaluators, with an equality check of CMC, mAP and
mINP (|difference| <= 1e-6). Distances come from random 128-d float features and are replaced
by their within-row rank (exact float32 integers), so the problem is tie-free by construction:
fastreid's quicksort argsort and our stable order then rank identically.

The peer is fastreid 1.4.0's ``evaluation/rank_cylib/rank_cy.pyx`` (the ``bench`` extra:
``pip install --no-deps fastreid==1.4.0 Cython``; ``--no-deps`` because fastreid pins
torch 1.13). It is compiled into a temporary folder here; nothing is written to the repo.
If it is unavailable the reason is printed and a torchreid-style Python evaluator written in
this file is used as the peer instead (``--python-peer`` forces that one).

``--scale``: how the cost grows. Query x gallery sizes from ``--scale-sizes`` (default
1,000 x 20,000, 3,000 x 60,000, 10,000 x 200,000: 1x, 9x, 100x the query-gallery pairs) of
random 128-d features through ``evaluate_features`` (distances computed chunk-wise, never the
full matrix), each in a fresh child process so that its peak RSS is its own; prints time,
peak RSS and their growth against the number of pairs. The largest size must stay under
4 GB.

Run: ``.venv/bin/python benchmarks/bench_eval.py [--repeats 3] [--scale [--scale-sizes
1000x20000,10000x200000]]``
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import sys
import tempfile
import time
import warnings
from pathlib import Path
from types import ModuleType

import numpy as np
import torch

from vidreid.metrics import evaluate_features, evaluate_rank

TOLERANCE = 1e-6
REQUIRED_SPEEDUP = 4.0


def mars_like_problem(seed: int = 0, num_query: int = 1980, num_gallery: int = 9330,
                      num_ids: int = 634, num_distractors: int = 3000, num_cams: int = 6,
                      dim: int = 128):
    """Random features with MARS-like labels; returns a tie-free float32 distmat + labels."""
    rng = np.random.default_rng(seed)
    q_pids = rng.integers(1, num_ids + 1, num_query)
    q_camids = rng.integers(0, num_cams, num_query)
    g_pids = np.concatenate([np.zeros(num_distractors, np.int64),  # pid 0: distractors
                             rng.integers(1, num_ids + 1, num_gallery - num_distractors)])
    g_camids = rng.integers(0, num_cams, num_gallery)
    qf = rng.standard_normal((num_query, dim))
    gf = rng.standard_normal((num_gallery, dim))
    d = (qf**2).sum(1)[:, None] + (gf**2).sum(1)[None] - 2 * qf @ gf.T  # float64
    # within-row rank: same order as the float64 distances, all values distinct
    ranks = np.empty_like(d, dtype=np.float32)
    np.put_along_axis(ranks, np.argsort(d, axis=1),
                      np.arange(num_gallery, dtype=np.float32)[None], axis=1)
    return ranks, q_pids, g_pids, q_camids, g_camids


def build_fastreid_cython(workdir: Path) -> tuple[ModuleType | None, str]:
    """Compile fastreid's rank_cy.pyx in ``workdir``; return (module, "") or (None, reason)."""
    spec = importlib.util.find_spec("fastreid")  # does not import fastreid (torch 1.13 pin)
    if spec is None or not spec.submodule_search_locations:
        return None, "fastreid is not installed (pip install --no-deps fastreid==1.4.0)"
    pyx = Path(spec.submodule_search_locations[0]) / "evaluation" / "rank_cylib" / "rank_cy.pyx"
    if not pyx.is_file():
        return None, f"{pyx} not found in the installed fastreid"
    try:
        from Cython.Build import cythonize
        from setuptools import Extension
        from setuptools import setup as st_setup
    except ImportError as exc:
        return None, f"cannot build rank_cy: {exc} (pip install Cython setuptools)"
    src = workdir / "rank_cy.pyx"
    src.write_text(pyx.read_text())
    ext = Extension("rank_cy", [str(src)], include_dirs=[np.get_include()])
    cwd = os.getcwd()
    os.chdir(workdir)  # keep setuptools away from the project's pyproject.toml
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            st_setup(name="rank_cy",
                     ext_modules=cythonize([ext], language_level=3, quiet=True),
                     script_args=["-q", "build_ext", "--build-lib", str(workdir),
                                  "--build-temp", str(workdir / "build")])
    except (SystemExit, Exception) as exc:  # a compiler failure is reported, not fatal
        return None, f"compiling {pyx} failed: {exc}"
    finally:
        os.chdir(cwd)
    built = sorted(workdir.glob("rank_cy*.so")) + sorted(workdir.glob("rank_cy*.pyd"))
    if not built:
        return None, "the Cython build produced no extension module"
    mod_spec = importlib.util.spec_from_file_location("rank_cy", built[0])
    module = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(module)
    return module, ""


def python_peer(distmat, q_pids, g_pids, q_camids, g_camids, max_rank):
    """torchreid's ``eval_market1501`` Python path, as written there (argsort per matrix)."""
    indices = np.argsort(distmat, axis=1)
    matches = (g_pids[indices] == q_pids[:, np.newaxis]).astype(np.int32)
    all_cmc, all_ap, all_inp = [], [], []
    for q_idx in range(len(q_pids)):
        order = indices[q_idx]
        remove = (g_pids[order] == q_pids[q_idx]) & (g_camids[order] == q_camids[q_idx])
        raw_cmc = matches[q_idx][np.invert(remove)]
        if not np.any(raw_cmc):
            continue
        cmc = raw_cmc.cumsum()
        last = np.where(raw_cmc == 1)[0].max()
        all_inp.append(cmc[last] / (last + 1.0))
        cmc[cmc > 1] = 1
        all_cmc.append(cmc[:max_rank])
        tmp = raw_cmc.cumsum() / (np.arange(len(raw_cmc)) + 1.0) * raw_cmc
        all_ap.append(tmp.sum() / raw_cmc.sum())
    return np.asarray(all_cmc, np.float32).mean(0), all_ap, all_inp


def timed(fn, repeats: int):
    """(best wall time over ``repeats``, last result)."""
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def run_compare(args: argparse.Namespace) -> int:
    d, qp, gp, qc, gc = mars_like_problem(args.seed)
    print(f"problem: {d.shape[0]} queries x {d.shape[1]} gallery, max_rank {args.max_rank}, "
          f"tie-free float32 distances; torch threads {torch.get_num_threads()}")
    with tempfile.TemporaryDirectory() as tmp:
        peer_name, peer = "fastreid 1.4.0 rank_cy (Cython)", None
        if not args.python_peer:
            module, reason = build_fastreid_cython(Path(tmp))
            if module is None:
                print(f"fastreid Cython peer SKIPPED: {reason}")
            else:
                peer = module.evaluate_cy
        if peer is None:
            peer_name, peer = "torchreid-style Python evaluator (in this file)", python_peer
        t_peer, (p_cmc, p_ap, p_inp) = timed(
            lambda: peer(d, qp, gp, qc, gc, args.max_rank), args.repeats)
    t_ours, res = timed(lambda: evaluate_rank(d, qp, gp, qc, gc, max_rank=args.max_rank),
                        args.repeats)
    diffs = {"CMC": float(np.abs(np.asarray(p_cmc, np.float64) - res.cmc).max()),
             "mAP": abs(float(np.mean(p_ap)) - res.mAP),
             "mINP": abs(float(np.mean(p_inp)) - res.mINP)}
    equal = all(v <= TOLERANCE for v in diffs.values()) and len(p_ap) == res.num_valid_queries
    ratio = t_peer / t_ours
    print(f"peer  {peer_name}: {t_peer:.3f} s (best of {args.repeats})")
    print(f"ours  vidreid.metrics.evaluate_rank: {t_ours:.3f} s (best of {args.repeats})")
    print(f"speed-up: {ratio:.1f}x (required >= {REQUIRED_SPEEDUP:.0f}x)")
    print(f"R1 {res.cmc[0]:.6f}  mAP {res.mAP:.6f}  mINP {res.mINP:.6f}  "
          f"valid queries {res.num_valid_queries} (peer {len(p_ap)})")
    print("max |difference|: " + ", ".join(f"{k} {v:.2e}" for k, v in diffs.items()))
    print(f"equality (<= {TOLERANCE:g}): {'PASS' if equal else 'FAIL'}")
    return 0 if equal and ratio >= REQUIRED_SPEEDUP else 1


SCALE_SIZES = "1000x20000,3000x60000,10000x200000"
SCALE_PEAK_LIMIT_GB = 4.0
SCALE_DIM, SCALE_CAMS = 128, 6
SCALE_GALLERY_PER_ID = 20  # ids = gallery / 20: a few true matches per query


def run_scale_one(nq: int, ng: int, args: argparse.Namespace) -> dict:
    """One size, in this (fresh) process: seconds, peak RSS, R1 / mAP."""
    dim, num_cams = SCALE_DIM, SCALE_CAMS
    num_ids = max(1, ng // SCALE_GALLERY_PER_ID)
    gen = torch.Generator().manual_seed(args.seed)
    qf, gf = torch.randn(nq, dim, generator=gen), torch.randn(ng, dim, generator=gen)
    qp = torch.randint(0, num_ids, (nq,), generator=gen).numpy()
    gp = torch.randint(0, num_ids, (ng,), generator=gen).numpy()
    qc = torch.randint(0, num_cams, (nq,), generator=gen).numpy()
    gc = torch.randint(0, num_cams, (ng,), generator=gen).numpy()
    start = time.perf_counter()
    res = evaluate_features(qf, gf, qp, gp, qc, gc, metric="euclidean",
                            max_rank=args.max_rank)
    elapsed = time.perf_counter() - start
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux
    return {"queries": nq, "gallery": ng, "ids": num_ids, "seconds": elapsed,
            "peak_gb": peak_kb / 2**20, "R1": float(res.cmc[0]), "mAP": float(res.mAP),
            "valid": int(res.num_valid_queries)}


def run_scale(args: argparse.Namespace) -> int:
    """Each size in a child process; a table of time and peak RSS against the pairs."""
    import subprocess

    sizes = [tuple(int(v) for v in item.lower().split("x"))
             for item in args.scale_sizes.split(",")]
    print(f"scale: {SCALE_DIM}-d random features, {SCALE_CAMS} cameras, torch threads "
          f"{torch.get_num_threads()}; each size in a fresh process")
    print(f"{'queries':>8} {'gallery':>8} {'pairs':>8} {'time s':>8} {'peak GB':>8} "
          f"{'t/pairs':>10} {'R1':>7} {'mAP':>7}")
    rows, first = [], None
    for nq, ng in sizes:
        cmd = [sys.executable, __file__, "--scale-one", f"{nq}x{ng}",
               "--max-rank", str(args.max_rank), "--seed", str(args.seed)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True)
        row = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append(row)
        pairs = nq * ng
        first = first or (pairs, row["seconds"])
        growth = (row["seconds"] / first[1]) / (pairs / first[0])
        print(f"{nq:8d} {ng:8d} {pairs / 1e6:8.0f}M {row['seconds']:8.1f} "
              f"{row['peak_gb']:8.2f} {growth:10.2f} {row['R1']:7.4f} {row['mAP']:7.4f}",
              flush=True)
    print("t/pairs: seconds per query-gallery pair relative to the first size (1.00 = "
          "linear in the pairs)")
    peak = rows[-1]["peak_gb"]
    print(f"largest size peak RSS {peak:.2f} GB (limit {SCALE_PEAK_LIMIT_GB:g} GB: "
          f"{'met' if peak < SCALE_PEAK_LIMIT_GB else 'NOT met'})")
    return 0 if peak < SCALE_PEAK_LIMIT_GB else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-rank", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--python-peer", action="store_true",
                        help="compare with the torchreid-style Python evaluator (slow)")
    parser.add_argument("--scale", action="store_true",
                        help="growing sizes from features: time and peak memory")
    parser.add_argument("--scale-sizes", default=SCALE_SIZES,
                        help="comma-separated QUERIESxGALLERY sizes for --scale")
    parser.add_argument("--scale-one", help=argparse.SUPPRESS)  # a child of --scale
    args = parser.parse_args(argv)
    if args.scale_one:
        nq, ng = (int(v) for v in args.scale_one.lower().split("x"))
        print(json.dumps(run_scale_one(nq, ng, args)))
        return 0
    return run_scale(args) if args.scale else run_compare(args)


if __name__ == "__main__":
    sys.exit(main())
