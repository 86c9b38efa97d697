"""``vidreid`` CLI for racing writers (test helper).

``python _slow_index_cli.py BARRIER_DIR N PAUSE_S index add ...``: once imported, the
process waits until N processes have reached the same point (files in BARRIER_DIR), so all
start their edit within milliseconds of each other instead of seconds apart (imports under
load), and it pauses PAUSE_S after every gallery-index load. Without a writer lock every
writer then reads the same file and all but the last update are lost, every time.
"""

import os
import sys
import time
from pathlib import Path

from vidreid.cli import main
from vidreid.retrieval.index import GalleryIndex

BARRIER_TIMEOUT_S = 60.0
barrier, n_writers, pause_s = Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
_load = GalleryIndex.load.__func__


def _slow_load(cls, path):
    index = _load(cls, path)
    time.sleep(pause_s)
    return index


GalleryIndex.load = classmethod(_slow_load)
(barrier / str(os.getpid())).touch()
deadline = time.monotonic() + BARRIER_TIMEOUT_S
while len(list(barrier.iterdir())) < n_writers:
    if time.monotonic() > deadline:
        sys.exit(f"barrier: only {len(list(barrier.iterdir()))} of {n_writers} writers started")
    time.sleep(0.005)
sys.exit(main(sys.argv[4:]))
