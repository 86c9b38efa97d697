import numpy as np
import pytest
import torch

from vidreid.metrics.rerank import re_ranking, rerank_memory_bytes


def dense_reference(qf, gf, k1=20, k2=6, lambda_value=0.3):
    """Zhong et al.'s re_ranking, transcribed with dense N x N arrays (stable argsort)."""
    feats = torch.cat([qf, gf]).double().numpy()
    nq, n = len(qf), len(feats)
    dist = ((feats[:, None] - feats[None]) ** 2).sum(-1)
    dist = (dist / dist.max(axis=1, keepdims=True)).astype(np.float32)
    rank = np.argsort(dist, axis=1, kind="stable")
    v = np.zeros_like(dist)
    half = int(np.around(k1 / 2.0))
    for i in range(n):
        fwd = rank[i, :k1 + 1]
        recip = fwd[np.where(rank[fwd, :k1 + 1] == i)[0]]
        expansion = recip
        for c in recip:
            c_fwd = rank[c, :half + 1]
            c_recip = c_fwd[np.where(rank[c_fwd, :half + 1] == c)[0]]
            if len(np.intersect1d(c_recip, recip)) > 2.0 / 3 * len(c_recip):
                expansion = np.append(expansion, c_recip)
        expansion = np.unique(expansion)
        w = np.exp(-dist[i, expansion])
        v[i, expansion] = w / w.sum()
    if k2 != 1:
        v = np.stack([v[rank[i, :k2]].mean(axis=0) for i in range(n)])
    jac = np.zeros((nq, n), dtype=np.float32)
    for i in range(nq):
        shared = np.minimum(v[i][None], v).sum(axis=1)
        jac[i] = 1 - shared / (2 - shared)
    final = jac * (1 - lambda_value) + dist[:nq] * lambda_value
    return final[:, nq:]


@pytest.mark.parametrize("k1,k2", [(20, 6), (5, 1), (4, 3)])
def test_matches_dense_reference(k1, k2):
    torch.manual_seed(0)
    centres = torch.randn(12, 16)  # clustered features: non-trivial neighbour sets
    feats = centres[torch.randint(0, 12, (90,))] + 0.3 * torch.randn(90, 16)
    qf, gf = feats[:25], feats[25:]
    ours = re_ranking(qf, gf, k1=k1, k2=k2, chunk_size=7)
    ref = dense_reference(qf, gf, k1, k2)
    assert ours.shape == (25, 65)
    np.testing.assert_allclose(ours.numpy(), ref, atol=1e-5)


def test_memory_bound_is_enforced_with_the_estimate_in_the_error():
    qf, gf = torch.randn(4, 3), torch.randn(6, 3)
    need = rerank_memory_bytes(4, 6)
    with pytest.raises(ValueError, match=r"needs about .* GB"):
        re_ranking(qf, gf, max_memory_gb=need / 1024**3 / 2)
    # MARS-sized: the bound stays far below the dense original's ~20 N^2 bytes
    n = 1980 + 9330
    assert rerank_memory_bytes(1980, 9330) < 20 * n * n / 2


def test_bad_arguments():
    with pytest.raises(ValueError, match="metric"):
        re_ranking(torch.randn(2, 3), torch.randn(3, 3), metric="manhattan")
    with pytest.raises(ValueError, match="dimension"):
        re_ranking(torch.randn(2, 3), torch.randn(3, 4))
