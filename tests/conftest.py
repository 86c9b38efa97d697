"""Suite-wide settings: the suite runs as 2 xdist workers on 2 cores, so each worker uses
one intra-op thread (otherwise 2 workers x 2 threads oversubscribe the CPU many-fold)."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)
