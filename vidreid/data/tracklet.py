"""The in-memory form every benchmark is loaded into."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple


class Tracklet(NamedTuple):
    """One video tracklet: frame paths in temporal order, identity and 0-based camera."""

    frames: tuple[str, ...]
    pid: int
    camid: int


@dataclass
class VideoDataset:
    """Train / query / gallery tracklet lists of one benchmark split.

    ``junk_pids`` lists gallery pids that evaluation must skip (official MARS: -1).
    ``attributes_file`` points to the per-identity attribute table when one exists.
    """

    name: str
    root: str
    train: list[Tracklet]
    query: list[Tracklet]
    gallery: list[Tracklet]
    junk_pids: tuple[int, ...] = ()
    attributes_file: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def num_train_pids(self) -> int:
        return len({t.pid for t in self.train})

    @property
    def num_train_cams(self) -> int:
        return len({t.camid for t in self.train})
