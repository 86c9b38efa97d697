"""Torch datasets turning tracklets into clips: train (random clip), test (all clips), image.

Frames are decoded with ``torchvision.io.decode_image`` (about twice as fast as PIL on
re-ID crops; PIL is the fallback for formats it does not read) into uint8 ``[T, 3, H, W]``;
spatial work (resize, crop, normalise) is the transform's job, see
``vidreid.data.transforms``.
"""

from __future__ import annotations

import re
import threading
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image
from torchvision.io import ImageReadMode, decode_image
from torchvision.transforms.v2 import functional as F

from vidreid.data.errors import DatasetError
from vidreid.data.sampling import SAMPLING, TEST_CLIPS, sample_indices, test_clips
from vidreid.data.tracklet import Tracklet

ON_ERROR = ("raise", "skip")
#: Extra seed word of the transform's generator in :class:`TrainClipDataset`, so its stream
#: differs from the frame-choice one seeded by (seed, epoch, index).
TRANSFORM_STREAM = 1
IMAGE_FRAMES = ("first", "middle", "random")

Transform = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class SkipCounter:
    """Counts frames ``read_frames`` skipped in ``on_error="skip"`` mode.

    Counts are per process: with DataLoader workers each worker counts its own copy.
    """

    count: int = 0
    last_paths: list[str] = field(default_factory=list)  # the most recent few, for messages
    keep: int = 10
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, path: str) -> None:
        with self._lock:
            self.count += 1
            self.last_paths = (self.last_paths + [path])[-self.keep :]

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        del state["_lock"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()


#: Default counter for ``read_frames`` calls that pass none.
SKIPPED_FRAMES = SkipCounter()


def _decode(path: str) -> torch.Tensor:
    """One frame as uint8 ``[3, H, W]``; ValueError naming the path if it cannot be read.

    16-bit PNGs (decoded as uint16) are scaled to 8 bits like any viewer shows them."""
    try:
        # torchvision 0.29 deprecates its decoders in favour of TorchCodec, but they are
        # still ~2x faster than PIL on re-ID crops; keep them while they exist.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            frame = decode_image(path, mode=ImageReadMode.RGB)
        if frame.dtype != torch.uint8:
            frame = F.to_dtype(frame, torch.uint8, scale=True)
        return frame
    except RuntimeError as tv_error:
        # torchvision prefixes "<function>, <source file>:<line>, "; keep the message.
        reason = re.sub(r"^\w+, \S+:\d+, ", "", str(tv_error).strip())
    try:  # formats torchvision does not decode (e.g. BMP) go through PIL
        with Image.open(path) as img:
            array = np.asarray(img.convert("RGB"))
        return torch.from_numpy(array.copy()).permute(2, 0, 1)
    except FileNotFoundError:
        raise FileNotFoundError(f"frame not found: {path}") from None
    except (OSError, ValueError) as pil_error:
        raise DatasetError(
            f"cannot read frame {path}: {reason} ({pil_error}); re-extract or remove this "
            "frame, or read with on_error='skip'"
        ) from None


def _read(
    paths: Sequence[str], on_error: str, counter: SkipCounter | None
) -> tuple[torch.Tensor, np.ndarray]:
    """Decoded frames and the positions in ``paths`` they came from."""
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    if len(paths) == 0:
        raise ValueError("read_frames got no frame paths")
    counter = SKIPPED_FRAMES if counter is None else counter
    frames: list[torch.Tensor] = []
    kept: list[int] = []
    for position, path in enumerate(paths):
        try:
            frame = _decode(path)
        except (DatasetError, FileNotFoundError):
            if on_error == "raise":
                raise
            counter.add(path)
            continue
        if frames and frame.shape[1:] != frames[0].shape[1:]:
            frame = F.resize(frame, list(frames[0].shape[1:]), antialias=True)
        frames.append(frame)
        kept.append(position)
    if not frames:
        raise DatasetError(
            f"none of the {len(paths)} frames could be read (first: {paths[0]}); "
            "check the dataset's frame files"
        )
    return torch.stack(frames), np.asarray(kept, dtype=np.int64)


def read_frames(
    paths: Sequence[str], *, on_error: str = "raise", counter: SkipCounter | None = None
) -> torch.Tensor:
    """Decode frames to uint8 ``[T, 3, H, W]`` (frames resized to the first one's size).

    ``on_error="raise"``: an unreadable / corrupt image raises ValueError (DatasetError)
    naming its path, a missing one FileNotFoundError. ``on_error="skip"``: such frames are
    left out and counted in ``counter`` (default ``SKIPPED_FRAMES``); if no frame can be
    read, DatasetError.
    """
    return _read(paths, on_error, counter)[0]


def _read_indices(
    frames: Sequence[str], indices: np.ndarray, on_error: str, counter: SkipCounter
) -> torch.Tensor:
    """The clip ``frames[indices]``, decoding each distinct frame once.

    Skipped frames are replaced by cycling the readable ones so the clip keeps its length.
    """
    unique, inverse = np.unique(indices, return_inverse=True)
    decoded, kept = _read([frames[i] for i in unique], on_error, counter)
    if len(kept) < len(unique):  # some skipped: map every slot to a readable frame
        source = np.full(len(unique), -1, dtype=np.int64)
        source[kept] = np.arange(len(kept))
        missing = source < 0
        source[missing] = np.arange(int(missing.sum())) % len(kept)
        inverse = source[inverse]
    return decoded[torch.from_numpy(np.asarray(inverse, dtype=np.int64).reshape(-1))]


def _check_tracklets(tracklets: Sequence[Tracklet]) -> list[Tracklet]:
    tracklets = list(tracklets)
    for i, t in enumerate(tracklets):
        if len(t.frames) == 0:
            raise DatasetError(
                f"tracklet {i} (pid {t.pid}, camid {t.camid}) has no frames; "
                "the dataset loader must drop empty tracklets"
            )
    return tracklets


def _apply(transform: Transform | None, clip: torch.Tensor) -> torch.Tensor:
    return clip if transform is None else transform(clip)


class TrainClipDataset(torch.utils.data.Dataset):
    """One random clip per tracklet: ``(clip [T,3,H,W], pid, camid)``, plus the tracklet's
    targets ``{name: row}`` as a 4th item when ``targets`` (``{name: [len(tracklets), ...]}``,
    e.g. the attribute term's per-tracklet labels) is given.

    Frame choice and the transform's random draws (crop, flip, erasing) come from
    generators seeded by (seed, epoch, index), not from a loader worker's RNG, so a clip is
    reproducible, independent of the worker count and of which worker loads it, the same
    after a resume (whose new workers start from fresh RNG states) and different each
    epoch. The epoch lives
    in shared memory: ``set_epoch`` before iterating reaches DataLoader workers too, even
    persistent ones.
    """

    def __init__(
        self,
        tracklets: Sequence[Tracklet],
        *,
        seq_len: int,
        strategy: str,
        transform: Transform | None,
        seed: int = 0,
        on_error: str = "raise",
        targets: dict[str, np.ndarray] | None = None,
        **strategy_opts: object,
    ) -> None:
        SAMPLING.get(strategy)  # fail now, with the list of known names
        for name, rows in (targets or {}).items():
            if len(rows) != len(tracklets):
                raise ValueError(f"targets[{name!r}] has {len(rows)} rows for "
                                 f"{len(tracklets)} tracklets")
        self.targets = {k: torch.as_tensor(np.asarray(v)) for k, v in (targets or {}).items()}
        if on_error not in ON_ERROR:
            raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
        self.tracklets = _check_tracklets(tracklets)
        self.seq_len = seq_len
        self.strategy = strategy
        self.strategy_opts = strategy_opts
        self.transform = transform
        self.seed = seed
        self.on_error = on_error
        self.skipped = SkipCounter()
        self._epoch = torch.zeros(1, dtype=torch.int64).share_memory_()
        # Validate seq_len and options once, on a throwaway generator.
        sample_indices(1, strategy, seq_len, np.random.default_rng(0), **strategy_opts)

    @property
    def epoch(self) -> int:
        return int(self._epoch.item())

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose frame choices ``__getitem__`` returns."""
        self._epoch.fill_(epoch)

    def __len__(self) -> int:
        return len(self.tracklets)

    def frame_indices(self, index: int) -> np.ndarray:
        """The frame indices ``__getitem__(index)`` uses this epoch."""
        rng = np.random.default_rng([self.seed, self.epoch, index])
        num_frames = len(self.tracklets[index].frames)
        return sample_indices(num_frames, self.strategy, self.seq_len, rng, **self.strategy_opts)

    def __getitem__(self, index: int) -> tuple:
        tracklet = self.tracklets[index]
        clip = _read_indices(
            tracklet.frames, self.frame_indices(index), self.on_error, self.skipped
        )
        if self.transform is not None:
            seed = np.random.default_rng([self.seed, self.epoch, index, TRANSFORM_STREAM])
            # fork: the caller's (main process's, with num_workers=0) torch RNG is untouched
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(seed.integers(np.iinfo(np.int64).max)))
                clip = self.transform(clip)
        if self.targets:
            row = {k: v[index] for k, v in self.targets.items()}
            return clip, tracklet.pid, tracklet.camid, row
        return clip, tracklet.pid, tracklet.camid


class TestClipDataset(torch.utils.data.Dataset):
    """Every test clip of every tracklet, flattened: ``(clip [T,3,H,W], tracklet_index)``.

    ``clips_per_tracklet[i]`` is how many clips tracklet i yields (in order), so clip
    features can be averaged back per tracklet. ``max_clip_len`` splits longer clips into
    consecutive pieces (the last may be shorter) to bound memory, e.g. for ``all``.
    Clips of unequal length (``all``, ``dense`` with ``pad="none"``) need batch_size 1.
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        tracklets: Sequence[Tracklet],
        *,
        seq_len: int,
        strategy: str,
        transform: Transform | None,
        max_clip_len: int | None = None,
        on_error: str = "raise",
        **strategy_opts: object,
    ) -> None:
        TEST_CLIPS.get(strategy)
        if max_clip_len is not None and max_clip_len < 1:
            raise ValueError(f"max_clip_len must be >= 1 or None, got {max_clip_len}")
        if on_error not in ON_ERROR:
            raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
        self.tracklets = _check_tracklets(tracklets)
        self.transform = transform
        self.on_error = on_error
        self.skipped = SkipCounter()
        self.clips: list[np.ndarray] = []
        owners: list[int] = []
        counts: list[int] = []
        for i, tracklet in enumerate(self.tracklets):
            clips = test_clips(len(tracklet.frames), strategy, seq_len, **strategy_opts)
            if max_clip_len is not None:
                clips = [
                    clip[start : start + max_clip_len]
                    for clip in clips
                    for start in range(0, len(clip), max_clip_len)
                ]
            self.clips.extend(clips)
            owners.extend([i] * len(clips))
            counts.append(len(clips))
        self.clip_tracklet = np.asarray(owners, dtype=np.int64)
        self.clips_per_tracklet = np.asarray(counts, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        owner = int(self.clip_tracklet[index])
        frames = self.tracklets[owner].frames
        clip = _read_indices(frames, self.clips[index], self.on_error, self.skipped)
        return _apply(self.transform, clip), owner


class ImageDataset(torch.utils.data.Dataset):
    """One frame per tracklet as a one-frame clip: ``(clip [1,3,H,W], tracklet_index)``.

    The query side of the image-to-video protocols. Same item shape as TestClipDataset
    (``clips_per_tracklet`` is all ones) so one feature extractor serves both. ``frame``:
    ``"first"``, ``"middle"`` (index n // 2) or ``"random"`` (fixed by (seed, index)).
    """

    def __init__(
        self,
        tracklets: Sequence[Tracklet],
        *,
        frame: str = "first",
        transform: Transform | None,
        seed: int = 0,
        on_error: str = "raise",
    ) -> None:
        if frame not in IMAGE_FRAMES:
            raise ValueError(f"frame must be one of {IMAGE_FRAMES}, got {frame!r}")
        if on_error not in ON_ERROR:
            raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
        self.tracklets = _check_tracklets(tracklets)
        self.frame = frame
        self.transform = transform
        self.seed = seed
        self.on_error = on_error
        self.skipped = SkipCounter()
        self.clips_per_tracklet = np.ones(len(self.tracklets), dtype=np.int64)

    def __len__(self) -> int:
        return len(self.tracklets)

    def frame_index(self, index: int) -> int:
        """Which frame of tracklet ``index`` is used."""
        num_frames = len(self.tracklets[index].frames)
        if self.frame == "first":
            return 0
        if self.frame == "middle":
            return num_frames // 2
        return int(np.random.default_rng([self.seed, index]).integers(num_frames))

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        frames = self.tracklets[index].frames
        indices = np.asarray([self.frame_index(index)], dtype=np.int64)
        clip = _read_indices(frames, indices, self.on_error, self.skipped)
        return _apply(self.transform, clip), index
