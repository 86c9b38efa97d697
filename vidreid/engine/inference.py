"""Feature extraction for query / gallery tracklets and evaluation with the metrics module.

A tracklet's video feature is the mean of its test clips' features (clip strategy from the
config: ``dense`` clips, ``all`` frames, ``evenly``); its image feature is
``model.encode_image`` of one frame. Clips are batched by length (``all`` gives clips of
different lengths). Under DDP each rank extracts a contiguous share of the clips and the
per-tracklet sums are all-reduced, so every rank ends with the full feature matrix.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from vidreid.data.errors import unwrapped_worker_errors
from vidreid.engine import distributed as D
from vidreid.engine.precision import autocast_context, autocast_dtype, prepare_model

PROTOCOLS = ("v2v", "i2v", "v2i", "i2i")


def _collate_list(batch: list[Any]) -> list[Any]:
    return batch


@torch.no_grad()
def extract_features(
    model: nn.Module,
    dataset: Dataset,
    num_tracklets: int,
    *,
    image: bool = False,
    batch_size: int = 16,
    num_workers: int = 0,
    device: torch.device | str = "cpu",
    amp: str = "auto",
    channels_last: bool = True,
    progress: bool = False,
    compile: bool = False,
) -> torch.Tensor:
    """Per-tracklet features ``[num_tracklets, D]`` (float32, on CPU).

    ``dataset`` yields ``(clip [T,3,H,W], tracklet_index)``; a tracklet with several clips
    gets the mean of their features. ``image=True`` feeds single frames to
    ``model.encode_image`` instead of clips to ``model(...)``.

    ``compile=True`` (video side of models with ``can_encode_frames()``): clips go through
    ``model.aggregate(encode_frames(frames))`` with the frame encoder compiled for
    ``batch_size * T``-frame batches (:func:`vidreid.engine.compile.compiled_frame_encoder`);
    the image side and other models stay eager.
    """
    device = torch.device(device)
    dtype = autocast_dtype(amp, device)
    was_training = model.training
    prepare_model(model, device, channels_last)
    model.eval()
    share = Subset(dataset, list(D.shard_range(len(dataset))))  # type: ignore[arg-type]
    loader = DataLoader(
        share, batch_size=batch_size, shuffle=False, num_workers=num_workers,
        collate_fn=_collate_list,
    )
    encoder = None
    if compile and not image:
        encoder = _compiled_encoder(model, dataset, batch_size)
    sums: torch.Tensor | None = None
    counts = torch.zeros(num_tracklets, dtype=torch.float64)
    iterator: Any = loader
    if progress and D.is_main_process():
        from tqdm import tqdm

        iterator = tqdm(loader, desc="features", leave=False, dynamic_ncols=True)
    for batch in unwrapped_worker_errors(iterator):  # a corrupt frame: its one-line message
        by_len: dict[int, list[tuple[torch.Tensor, int]]] = defaultdict(list)
        for clip, index in batch:
            by_len[clip.shape[0]].append((clip, int(index)))
        for items in by_len.values():
            clips = torch.stack([c for c, _ in items]).to(device)
            index = torch.tensor([i for _, i in items])
            with autocast_context(dtype, device):
                if image:
                    feats = model.encode_image(clips[:, 0])
                elif encoder is not None:  # the compiled split of model(clips)["features"]
                    b, t = clips.shape[:2]
                    frames = clips.flatten(0, 1)
                    if channels_last:
                        frames = frames.contiguous(memory_format=torch.channels_last)
                    feats = model.aggregate(encoder(frames).unflatten(0, (b, t)))
                else:
                    feats = model(clips)["features"]
            feats = feats.float().cpu().double()
            if sums is None:
                sums = torch.zeros(num_tracklets, feats.shape[1], dtype=torch.float64)
            sums.index_add_(0, index, feats)
            counts.index_add_(0, index, torch.ones(len(index), dtype=torch.float64))
    if D.is_distributed():
        # a rank whose share was empty still joins the reduction with zeros
        dim = int(D.all_reduce_max(0 if sums is None else sums.shape[1]))
        if sums is None:
            sums = torch.zeros(num_tracklets, dim, dtype=torch.float64)
        D.all_reduce_sum(sums)
        D.all_reduce_sum(counts)
    if sums is None:
        raise ValueError("no clips to extract features from (empty query or gallery?)")
    missing = (counts == 0).nonzero().flatten()
    if len(missing):
        raise ValueError(f"{len(missing)} tracklet(s) got no clip, e.g. index {int(missing[0])}")
    model.train(was_training)
    return (sums / counts[:, None]).float()


def _compiled_encoder(model: nn.Module, dataset: Dataset, batch_size: int) -> Any:
    """The compiled frame encoder for ``batch_size`` clips of the first clip's length, or
    None (after one logged warning) for a model without a separate frame encoder."""
    from vidreid.engine.compile import compiled_frame_encoder, warn_no_frame_encoder

    if not getattr(model, "can_encode_frames", lambda: False)():
        warn_no_frame_encoder(model)
        return None
    clip_len = int(dataset[0][0].shape[0]) if len(dataset) else 1  # type: ignore[arg-type]
    return compiled_frame_encoder(model, batch_size * clip_len)


def needed_sides(protocols: Sequence[str]) -> tuple[set[str], set[str]]:
    """Which of ``video`` / ``image`` features the query and gallery need."""
    unknown = [p for p in protocols if p not in PROTOCOLS]
    if unknown:
        raise ValueError(f"unknown protocol {unknown[0]!r}; choose from {', '.join(PROTOCOLS)}")
    q = {"video" if p[0] == "v" else "image" for p in protocols}
    g = {"video" if p[2] == "v" else "image" for p in protocols}
    return q, g


def evaluate_model(
    model: nn.Module,
    query: Sequence[Any],
    gallery: Sequence[Any],
    *,
    transform: Callable[[torch.Tensor], torch.Tensor],
    seq_len: int,
    strategy: str = "dense",
    strategy_opts: dict[str, Any] | None = None,
    max_clip_len: int | None = None,
    image_frame: str = "middle",
    protocols: Sequence[str] = ("v2v",),
    metric: str = "euclidean",
    normalize: bool = False,
    ap: str = "standard",
    junk_pids: Sequence[int] = (),
    max_rank: int = 50,
    batch_size: int = 16,
    num_workers: int = 0,
    device: torch.device | str = "cpu",
    amp: str = "auto",
    channels_last: bool = True,
    progress: bool = False,
    compile: bool = False,
    rerank: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Extract the features the ``protocols`` need and rank them (``{protocol: RankResult}``);
    ``rerank``: k-reciprocal re-ranking options (:func:`vidreid.metrics.rerank.re_ranking`),
    None for plain distances."""
    from vidreid.data.video_dataset import ImageDataset, TestClipDataset
    from vidreid.metrics.protocols import FeatureSet, evaluate_protocols

    q_sides, g_sides = needed_sides(protocols)
    common = dict(batch_size=batch_size, num_workers=num_workers, device=device, amp=amp,
                  channels_last=channels_last, progress=progress, compile=compile)

    def side(tracklets: Sequence[Any], sides: set[str]) -> Any:
        video = image = None
        if "video" in sides:
            ds = TestClipDataset(tracklets, seq_len=seq_len, strategy=strategy,
                                 transform=transform, max_clip_len=max_clip_len,
                                 **(strategy_opts or {}))
            video = extract_features(model, ds, len(tracklets), **common)
        if "image" in sides:
            ds = ImageDataset(tracklets, frame=image_frame, transform=transform)
            image = extract_features(model, ds, len(tracklets), image=True, **common)
        pids = torch.tensor([t.pid for t in tracklets]).numpy()
        camids = torch.tensor([t.camid for t in tracklets]).numpy()
        return FeatureSet(video=video, image=image, pids=pids, camids=camids)

    q, g = side(query, q_sides), side(gallery, g_sides)
    return evaluate_protocols(q, g, protocols=tuple(protocols), metric=metric,
                              junk_pids=tuple(junk_pids), ap=ap, normalize=normalize,
                              max_rank=max_rank, rerank=rerank)


#: The per-protocol figures :func:`summarize_results` reports (``train.best_metric`` picks one).
SUMMARY_METRICS = ("R1", "mAP", "mINP")


def summary_names(protocols: Sequence[str]) -> list[str]:
    """The keys :func:`summarize_results` gives for ``protocols``: ``v2v/R1``, ``v2v/mAP``..."""
    return [f"{p}/{m}" for p in protocols for m in SUMMARY_METRICS]


def summarize_results(results: dict[str, Any]) -> dict[str, float]:
    """``{"v2v/R1": .., "v2v/mAP": .., "v2v/mINP": ..}`` in percent, for logs and best.pt."""
    out: dict[str, float] = {}
    for proto, res in results.items():
        values = (float(res.cmc[0]), float(res.mAP), float(res.mINP))
        for name, value in zip(SUMMARY_METRICS, values, strict=True):
            out[f"{proto}/{name}"] = 100.0 * value
    return out
