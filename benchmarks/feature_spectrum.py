"""How many directions re-ID features vary along between identities: the evidence behind
``bench_index.py --centre-dim`` and the ``pca_dim`` defaults of ``hnsw_pca``/``ivf_pca``.

For one or more features folders (``vidreid extract`` output with person ids; folders are
different splits, so their person ids are kept apart), the identity centres (mean of each
person's L2-normalised tracklet features) are centred and their PCA spectrum is printed as
the share of the between-identity variance in the top k components, with the participation
ratio (sum lambda)^2 / sum lambda^2 (the "effective" number of dims), beside an isotropic
control: as many N(0, I) centres in 512 and in the features' own dim. Also the ratio of
within-identity to between-identity variance.

    python benchmarks/feature_spectrum.py FEATS [FEATS ...]

Caveat: with few identities the spectrum can only show as many dims as identities - 1; the
control has the same count, so compare the two rows, not absolute values.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from vidreid.retrieval.features_file import read_features  # noqa: E402

TOP_K = (8, 16, 32, 64)
CONTROL_DIM = 512
PID_OFFSET = 10**9  # keeps the person ids of different folders apart


def spectrum(x: np.ndarray) -> tuple[list[float], float]:
    """Cumulative variance share in the top ``TOP_K`` components and the participation ratio."""
    ev = np.linalg.svd(x - x.mean(0), compute_uv=False) ** 2
    ev /= ev.sum()
    cum = np.cumsum(ev)
    return [float(cum[min(k, len(cum)) - 1]) for k in TOP_K], float(1 / np.sum(ev**2))


def row(name: str, x: np.ndarray) -> str:
    shares, ratio = spectrum(x)
    return f"| {name} | " + " | ".join(f"{s:.3f}" for s in shares) + f" | {ratio:.1f} |"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("feats", nargs="+", help="features folders (vidreid extract) with person ids")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    xs, pids = [], []
    for i, path in enumerate(args.feats):
        table = read_features(path)
        if (table.pids < 0).all():
            raise SystemExit(f"{path}: no person ids (-1): extract a labelled dataset split")
        xs.append(table.features.astype(np.float64))
        pids.append(table.pids + i * PID_OFFSET)
    x = np.concatenate(xs)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    pid = np.concatenate(pids)
    ids, inverse = np.unique(pid, return_inverse=True)
    centres = np.stack([x[inverse == j].mean(0) for j in range(len(ids))])
    within = ((x - centres[inverse]) ** 2).sum() / len(x)
    between = ((centres - centres.mean(0)) ** 2).sum() / len(centres)
    rng = np.random.default_rng(args.seed)
    print(f"{len(x)} tracklets, {len(ids)} identities, {x.shape[1]}-d; within/between "
          f"identity variance {within / between:.3f}\n")
    print("| centres | " + " | ".join(f"top {k}" for k in TOP_K) + " | participation ratio |")
    print("|---|" + "---:|" * (len(TOP_K) + 1))
    print(row("these features", centres))
    for d in sorted({CONTROL_DIM, x.shape[1]}):
        print(row(f"isotropic control, {d}-d", rng.standard_normal((len(ids), d))))


if __name__ == "__main__":
    main()
