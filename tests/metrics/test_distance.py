import numpy as np
import pytest
import torch

from vidreid.metrics.distance import iter_distance_chunks, pairwise_distance


def test_euclidean_and_squared_match_cdist():
    torch.manual_seed(0)
    qf, gf = torch.randn(13, 6), torch.randn(29, 6)
    ref = torch.cdist(qf.double(), gf.double()).float()
    torch.testing.assert_close(pairwise_distance(qf, gf, "euclidean", chunk_size=4), ref,
                               atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(pairwise_distance(qf, gf, "sqeuclidean"), ref**2,
                               atol=1e-4, rtol=1e-4)


def test_cosine_and_normalize():
    torch.manual_seed(1)
    qf, gf = torch.randn(5, 4), torch.randn(7, 4)
    cos = torch.nn.functional.cosine_similarity(qf[:, None], gf[None], dim=2)
    torch.testing.assert_close(pairwise_distance(qf, gf, "cosine"), 1 - cos, atol=1e-5,
                               rtol=0)
    unit = torch.cdist(torch.nn.functional.normalize(qf), torch.nn.functional.normalize(gf))
    torch.testing.assert_close(pairwise_distance(qf, gf, "euclidean", normalize=True), unit,
                               atol=1e-4, rtol=0)
    assert pairwise_distance(qf.numpy(), gf.numpy()).dtype == torch.float32


def test_chunks_cover_requested_rows_in_order():
    qf, gf = torch.randn(10, 3), torch.randn(4, 3)
    rows = np.array([7, 2, 9, 0, 5])
    got = list(iter_distance_chunks(qf, gf, chunk_size=2, rows=rows))
    assert [len(i) for i, _ in got] == [2, 2, 1]
    np.testing.assert_array_equal(np.concatenate([i for i, _ in got]), rows)
    full = pairwise_distance(qf, gf)
    torch.testing.assert_close(torch.cat([b for _, b in got]), full[rows])


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="unknown metric"):
        pairwise_distance(torch.randn(2, 3), torch.randn(2, 3), "l1")
    with pytest.raises(ValueError, match="dimension 3 but gallery features 4"):
        pairwise_distance(torch.randn(2, 3), torch.randn(2, 4))
    with pytest.raises(ValueError, match=r"2-D \[N, D\]"):
        pairwise_distance(torch.randn(3), torch.randn(2, 3))
