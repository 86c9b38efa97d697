"""The constant-velocity Kalman filter of SORT / DeepSORT for boxes in image space.

State ``x, y, a, h, vx, vy, va, vh``: box centre, aspect ratio (width / height), height and
their velocities, one frame per step; the box ``x, y, a, h`` is observed directly. Noise
follows DeepSORT (Wojke et al. 2017, and its reference code): standard deviations
proportional to the box height (position 1/20, velocity 1/160 of it; aspect ratio fixed
small), so that the filter is scale-free.

Why our own (about 60 lines of NumPy) rather than deep-sort-realtime's: that package
declares a dependency on OpenCV's GUI build, which clashes with the headless build that
``vidreid[retrieval]`` installs; the filter is the only part SORT needs from it.
"""

from __future__ import annotations

import numpy as np

NDIM = 4  # x, y, a, h
STEP = 1.0  # one frame
POSITION_STD = 1.0 / 20  # x height
VELOCITY_STD = 1.0 / 160  # x height
ASPECT_STD = 1e-2
ASPECT_VELOCITY_STD = 1e-5
INIT_POSITION_SCALE = 2  # a new track is less certain
INIT_VELOCITY_SCALE = 10
MEASUREMENT_ASPECT_STD = 1e-1


class KalmanFilter:
    """``initiate``, ``predict``, ``update`` and ``gating_distance`` on ``(mean [8], cov
    [8, 8])``; measurements are ``[x, y, a, h]``."""

    def __init__(self) -> None:
        self.motion = np.eye(2 * NDIM)
        self.motion[:NDIM, NDIM:] = STEP * np.eye(NDIM)
        self.observe = np.eye(NDIM, 2 * NDIM)

    @staticmethod
    def _std(h: float, position: float, aspect: float) -> np.ndarray:
        return np.array([position * h, position * h, aspect, position * h])

    def initiate(self, measurement: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A new track at ``measurement`` with zero velocity."""
        h = measurement[3]
        std = np.r_[self._std(h, INIT_POSITION_SCALE * POSITION_STD, ASPECT_STD),
                    self._std(h, INIT_VELOCITY_SCALE * VELOCITY_STD, ASPECT_VELOCITY_STD)]
        return np.r_[measurement, np.zeros(NDIM)].astype(float), np.diag(std ** 2)

    def predict(self, mean: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One step of constant-velocity motion."""
        h = mean[3]
        std = np.r_[self._std(h, POSITION_STD, ASPECT_STD),
                    self._std(h, VELOCITY_STD, ASPECT_VELOCITY_STD)]
        return self.motion @ mean, self.motion @ cov @ self.motion.T + np.diag(std ** 2)

    def project(self, mean: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The state's distribution in measurement space (with measurement noise)."""
        std = self._std(mean[3], POSITION_STD, MEASUREMENT_ASPECT_STD)
        return self.observe @ mean, self.observe @ cov @ self.observe.T + np.diag(std ** 2)

    def update(self, mean: np.ndarray, cov: np.ndarray, measurement: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
        """Correct the state with an associated measurement."""
        projected, projected_cov = self.project(mean, cov)
        # numpy's solve, not scipy's cho_solve / solve_triangular as DeepSORT: on the shared
        # 2-core machine scipy's call into the threaded BLAS cost ~4 ms CPU (17 ms wall) per
        # 4x4 solve against ~20 us (measured), and the tracker makes thousands of them.
        gain = np.linalg.solve(projected_cov, (cov @ self.observe.T).T).T
        mean = mean + gain @ (measurement - projected)
        return mean, cov - gain @ projected_cov @ gain.T

    def gating_distance(self, mean: np.ndarray, cov: np.ndarray, measurements: np.ndarray
                        ) -> np.ndarray:
        """Squared Mahalanobis distance of each ``[x, y, a, h]`` row to the state."""
        projected, projected_cov = self.project(mean, cov)
        chol = np.linalg.cholesky(projected_cov)
        d = np.atleast_2d(measurements) - projected
        z = np.linalg.solve(chol, d.T)  # triangular, solved as a general 4x4 (see update)
        return np.sum(z * z, axis=0)
