"""Temporal frame sampling: which frame indices of a tracklet form a clip.

Every strategy the papers use lives here, by name, so a config picks one with a string:

Train time (``sample_indices``, one random clip per call, registry ``SAMPLING``):

- ``consecutive`` (Video-Person-ReID, COSAM, GLTR): ``seq_len`` adjacent frames from a
  uniformly random start; a tracklet shorter than ``seq_len`` is looped (0, 1, 2, 0, 1, ...).
- ``random`` (torchreid): ``seq_len`` indices drawn without replacement and sorted; a
  tracklet shorter than ``seq_len`` is drawn *with* replacement (sorted, so repeats are
  adjacent), as torchreid does.
- ``evenly`` (torchreid): stride ``n // seq_len`` from frame 0, the tail ``n % seq_len``
  ignored; a short tracklet keeps all its frames and repeats the last one. Deterministic.
- ``stride`` (TKP): ``seq_len`` frames (paper: 4) spaced ``stride`` apart (paper: 8) from a
  random window; a tracklet shorter than ``seq_len * stride`` is first duplicated (looped)
  to that length, as the TKP paper says ("we duplicate it to meet the length").
  ``short="random"`` instead reproduces the TKP code release, which for short tracklets
  draws sorted random indices (without replacement if ``n >= seq_len``, else with).
- ``all``: every frame, ``seq_len`` ignored.

Test time (``test_clips``, deterministic list of clips, registry ``TEST_CLIPS``):

- ``dense`` (Video-Person-ReID / COSAM, and TKP / AP3D with ``seq_len=32``): consecutive
  non-overlapping clips covering every frame once; the last clip is padded by cycling its
  own frames (``pad="cycle"``, the authors' code) or left short (``pad="none"``).
- ``evenly``: one clip, the torchreid ``evenly`` indices.
- ``all`` (GLTR): one clip of the whole tracklet.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import numpy as np

from vidreid.registry import Registry

SAMPLING = Registry("frame sampling")
TEST_CLIPS = Registry("test clip sampling")

# TKP's training recipe: 4 frames, 8 frames apart.
TKP_SEQ_LEN = 4
TKP_STRIDE = 8


def _check(num_frames: int, seq_len: int) -> None:
    if num_frames < 1:
        raise ValueError(
            f"cannot sample frames from a tracklet with {num_frames} frames; "
            "drop empty tracklets when loading the dataset"
        )
    if seq_len < 1:
        raise ValueError(f"seq_len must be >= 1, got {seq_len}")


def _loop(num_frames: int, length: int) -> np.ndarray:
    """Indices 0..n-1 repeated cyclically to ``length`` (0, 1, 2, 0, 1, 2, ...)."""
    return np.arange(length, dtype=np.int64) % num_frames


def _check_opts(fn: Callable[..., np.ndarray], strategy: str, opts: dict) -> None:
    """Reject options a strategy does not take, naming the ones it does."""
    params = inspect.signature(fn).parameters
    accepted = [p.name for p in params.values() if p.kind is inspect.Parameter.KEYWORD_ONLY]
    unknown = sorted(set(opts) - set(accepted))
    if unknown:
        raise ValueError(
            f"sampling strategy {strategy!r} does not take option(s) {unknown}; "
            f"it accepts {accepted or 'no options'}"
        )


# ---------------------------------------------------------------- train-time strategies


@SAMPLING.register("consecutive")
def consecutive(num_frames: int, seq_len: int, rng: np.random.Generator) -> np.ndarray:
    """``seq_len`` adjacent frames from a uniform random start; short tracklets looped.

    The start is uniform over every valid position (the Video-Person-ReID code never picks
    the very last one, an off-by-one we do not copy).
    """
    if num_frames < seq_len:
        return _loop(num_frames, seq_len)
    start = int(rng.integers(0, num_frames - seq_len + 1))
    return np.arange(start, start + seq_len, dtype=np.int64)


@SAMPLING.register("random")
def random_sorted(num_frames: int, seq_len: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted random choice; with replacement only when the tracklet is shorter than seq_len."""
    replace = num_frames < seq_len
    return np.sort(rng.choice(num_frames, size=seq_len, replace=replace)).astype(np.int64)


@SAMPLING.register("evenly")
def evenly(num_frames: int, seq_len: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """torchreid ``evenly``: stride ``n // seq_len`` from 0, tail ignored; short: repeat last."""
    if num_frames < seq_len:
        pad = np.full(seq_len - num_frames, num_frames - 1, dtype=np.int64)
        return np.concatenate([np.arange(num_frames, dtype=np.int64), pad])
    step = num_frames // seq_len
    return np.arange(0, step * seq_len, step, dtype=np.int64)


@SAMPLING.register("stride")
def strided(
    num_frames: int,
    seq_len: int,
    rng: np.random.Generator,
    *,
    stride: int = TKP_STRIDE,
    short: str = "loop",
) -> np.ndarray:
    """TKP: ``seq_len`` frames ``stride`` apart from a random window.

    Tracklets shorter than ``seq_len * stride`` are looped to that length first
    (``short="loop"``, the paper) or sampled as sorted random indices (``short="random"``,
    the code release).
    """
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    if short not in ("loop", "random"):
        raise ValueError(f"short must be 'loop' or 'random', got {short!r}")
    needed = seq_len * stride
    if num_frames < needed and short == "random":
        return random_sorted(num_frames, seq_len, rng)
    frames = _loop(num_frames, max(num_frames, needed))
    span = (seq_len - 1) * stride + 1  # frames covered from the first to the last pick
    start = int(rng.integers(0, len(frames) - span + 1))
    return frames[start : start + span : stride]


@SAMPLING.register("all")
def all_frames(num_frames: int, seq_len: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """Every frame in order (``seq_len`` ignored)."""
    return np.arange(num_frames, dtype=np.int64)


def sample_indices(
    num_frames: int, strategy: str, seq_len: int, rng: np.random.Generator, **opts: object
) -> np.ndarray:
    """Frame indices (int64, temporal order unless looped) of one training clip.

    ``strategy`` is a name in ``SAMPLING``; ``opts`` are that strategy's options
    (``stride``: ``stride``, ``short``). Raises ValueError for an empty tracklet.
    """
    fn = SAMPLING.get(strategy)
    _check_opts(fn, strategy, opts)
    _check(num_frames, seq_len)
    return fn(num_frames, seq_len, rng, **opts)


# ----------------------------------------------------------------- test-time strategies


@TEST_CLIPS.register("dense")
def dense(num_frames: int, seq_len: int, *, pad: str = "cycle") -> list[np.ndarray]:
    """Consecutive non-overlapping clips covering every frame exactly once (before padding).

    ``pad="cycle"`` fills the last clip by cycling its own frames (Video-Person-ReID);
    ``pad="none"`` leaves it short.
    """
    if pad not in ("cycle", "none"):
        raise ValueError(f"pad must be 'cycle' or 'none', got {pad!r}")
    clips = [
        np.arange(start, min(start + seq_len, num_frames), dtype=np.int64)
        for start in range(0, num_frames, seq_len)
    ]
    last = clips[-1]
    if pad == "cycle" and len(last) < seq_len:
        clips[-1] = last[_loop(len(last), seq_len)]
    return clips


@TEST_CLIPS.register("evenly")
def evenly_clip(num_frames: int, seq_len: int) -> list[np.ndarray]:
    """One clip: the torchreid ``evenly`` indices."""
    return [evenly(num_frames, seq_len)]


@TEST_CLIPS.register("all")
def all_clip(num_frames: int, seq_len: int) -> list[np.ndarray]:
    """One clip of the whole tracklet (``seq_len`` ignored)."""
    return [np.arange(num_frames, dtype=np.int64)]


def test_clips(num_frames: int, strategy: str, seq_len: int, **opts: object) -> list[np.ndarray]:
    """Deterministic list of test clips (index arrays) for one tracklet.

    ``strategy`` is a name in ``TEST_CLIPS``; ``opts`` are its options (``dense``: ``pad``).
    Raises ValueError for an empty tracklet.
    """
    fn = TEST_CLIPS.get(strategy)
    _check_opts(fn, strategy, opts)
    _check(num_frames, seq_len)
    return fn(num_frames, seq_len, **opts)


# pytest would otherwise collect ``test_clips`` as a test when this module is imported there.
test_clips.__test__ = False  # type: ignore[attr-defined]
