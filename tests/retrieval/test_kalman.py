"""Our constant-velocity Kalman filter (vidreid/retrieval/kalman.py) against DeepSORT's."""

from __future__ import annotations

import numpy as np
import pytest

from vidreid.retrieval.kalman import KalmanFilter


def test_a_box_moving_at_constant_velocity_is_followed() -> None:
    kf = KalmanFilter()
    velocity = np.array([3.0, -1.0, 0.0, 0.5])
    box = np.array([100.0, 200.0, 0.5, 80.0])
    mean, cov = kf.initiate(box)
    for _ in range(30):
        box = box + velocity
        mean, cov = kf.predict(mean, cov)
        mean, cov = kf.update(mean, cov, box)
    np.testing.assert_allclose(mean[4:], velocity, atol=0.05)  # learnt the velocity
    predicted, _ = kf.predict(mean, cov)
    np.testing.assert_allclose(predicted[:4], box + velocity, atol=0.1)
    far = box + np.array([60.0, 0, 0, 0])
    near, distant = kf.gating_distance(mean, cov, np.stack([box, far]))
    assert near < 9.4877 < distant  # the chi-square gate of 4 dof


def test_same_numbers_as_deep_sort_realtime() -> None:
    ds = pytest.importorskip("deep_sort_realtime.deep_sort.kalman_filter",
                             reason="reference implementation (optional package)")
    ours, ref = KalmanFilter(), ds.KalmanFilter()
    rng = np.random.default_rng(0)
    box = np.array([50.0, 60.0, 0.4, 120.0])
    m1, c1 = ours.initiate(box)
    m2, c2 = ref.initiate(box)
    for _ in range(10):
        m1, c1 = ours.predict(m1, c1)
        m2, c2 = ref.predict(m2, c2)
        meas = m1[:4] + rng.normal(0, [2, 2, 0.01, 2])
        m1, c1 = ours.update(m1, c1, meas)
        m2, c2 = ref.update(m2, c2, meas)
        np.testing.assert_allclose(m1, m2, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(c1, c2, rtol=1e-9, atol=1e-9)
    probes = m1[:4] + rng.normal(0, 5, (4, 4))
    np.testing.assert_allclose(ours.gating_distance(m1, c1, probes),
                               ref.gating_distance(m2, c2, probes), rtol=1e-9)
