"""Suite-wide settings: the suite runs as 2 xdist workers on 2 cores, so each worker uses
one intra-op thread (otherwise 2 workers x 2 threads oversubscribe the CPU many-fold)."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)


import pytest  # noqa: E402

TEST_COMPILE_CACHE_ENV = "VIDREID_TEST_COMPILE_CACHE"


@pytest.fixture(scope="session")
def inductor_cache():
    """The on-disk compile cache of the tests that compile: ``$VIDREID_TEST_COMPILE_CACHE``,
    else ``tests`` below the user's vidreid cache (``~/.cache/vidreid/inductor/tests``), so
    only the first run on a machine pays the inductor compiles (~1-3 min on 2 loaded cores);
    the cache is keyed by graph, shapes, config and torch version, so sharing it is safe."""
    from pathlib import Path

    from vidreid.engine import compile as C

    path = os.environ.get(TEST_COMPILE_CACHE_ENV)
    mp = pytest.MonkeyPatch()
    mp.delenv(C.CACHE_ENV, raising=False)
    mp.delenv(C.INDUCTOR_CACHE_ENV, raising=False)
    cache = Path(path) if path else C.compile_cache_dir() / "tests"
    mp.setenv(C.CACHE_ENV, str(cache))
    mp.setenv(C.INDUCTOR_CACHE_ENV, str(cache))
    yield cache
    mp.undo()
