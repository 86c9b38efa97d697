"""VRSTC's STCnet training and the dataset completion pipeline (plain arguments only).

STCnet is a GAN; it trains on the generic trainer with its own step (:class:`STCStep`).
One step (:func:`train_stc`):

1. take unoccluded frames (the occlusion locator found no occluded stripe) of training
   tracklets, hide random stripes (the same stripes the locator scores, in the patterns of
   1..R stripes that completion meets: the paper's "synthetic region masks"), and give the
   generator the masked frame and source frames of the tracklet: the nearest ones that
   show the hidden stripes (their likely-occluded stripes, under ``source_tau``, hidden;
   :func:`neighbour_indices`: as in completion);
2. discriminator step: the local discriminator sees the hidden stripe (real) and its
   completion (fake), the global one the whole frames; non-saturating BCE;
3. generator step: ``L = w_rec * L1(hole) + w_local * adv_local + w_global * adv_global +
   w_id * CE(ID guider)``.

The loss weights (:class:`STCLossWeights`) are our choice: the paper does not give them for
this setting. The reconstruction term is an L1 over the hole pixels only; the adversarial
and identity terms are small (0.01) so that they refine, not drive, the completion.

:func:`complete_dataset` runs the locator over every tracklet of a dataset, completes the
occluded stripes and writes a new dataset root with the same layout: every file of the
dataset folder is hard-linked (copied across file systems), completed frames keep their own
size and format, only the rows of their occluded stripes change, and they atomically replace
their link, so the input is never modified. PNG / BMP frames keep every other pixel exactly;
JPEG frames are re-encoded at quality 100 with 4:4:4 chroma (``JPEG_QUALITY``), which keeps
the other pixels within a few levels (see ``JPEG_QUALITY``). ``build_dataset(same name, NEWROOT)`` then gives the same tracklets (paths
rebased). A finished output holds ``vrstc_completion.json`` and is never overwritten.
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
import shutil
import tempfile
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torchvision.transforms.v2 import functional as TF

from vidreid.data.errors import DatasetError
from vidreid.data.tracklet import Tracklet
from vidreid.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from vidreid.data.video_dataset import read_frames
from vidreid.engine.checkpoint import atomic_torch_save, safe_load
from vidreid.engine.trainer import Hook
from vidreid.models.base import VideoReIDModel
from vidreid.models.vrstc import (
    DEFAULT_NUM_REGIONS,
    OCCLUSION_TAU,
    GlobalDiscriminator,
    IDGuider,
    LocalDiscriminator,
    OcclusionLocator,
    STCGenerator,
    stripe_bounds,
    stripe_mask,
)

log = logging.getLogger(__name__)

#: Source frames the generator attends to (ours: 4; the nearest in time that show the
#: target's hole, see :func:`neighbour_indices`).
DEFAULT_NUM_NEIGHBOURS = 4
FINISHED_MARKER = "vrstc_completion.json"
IN_PROGRESS_MARKER = ".vrstc_incomplete"
#: JPEG quality and chroma subsampling (0 = 4:4:4) of re-encoded completed frames (ours).
#: A completed JPEG frame must be re-encoded whole; at q100 4:4:4 its pixels outside the
#: completed rows stay within a few levels of the input (measured on 40 synthetic q90-95
#: frames: mean |diff| 0.16, max 3; q95 4:2:0: mean 1.7, max 36). PNG / BMP stay exact.
JPEG_QUALITY = 100
JPEG_SUBSAMPLING = 0
PIL_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".bmp": "BMP"}
STC_CHECKPOINT_VERSION = 1
#: Decoded tracklets an :class:`STCTrainSamples` keeps per loader worker (ours; 0: decode
#: only each sample's target and neighbours. At 256x128 a 400-frame tracklet is ~39 MB).
DEFAULT_CACHE_TRACKLETS = 0
#: Occluded frames sent through the generator at once in completion (ours; ~220 MiB of
#: activations per frame at 256x128 with 4 neighbours).
DEFAULT_BATCH_FRAMES = 8
#: sigma = MAD_TO_SIGMA * MAD for normal data (the consistency constant of the MAD).
MAD_TO_SIGMA = 1.4826


@dataclass
class STCLossWeights:
    """Weights of the generator's loss terms (our choice; see the module doc)."""

    reconstruction: float = 1.0
    adversarial_local: float = 0.01
    adversarial_global: float = 0.01
    identity: float = 0.01


# ----------------------------------------------------------------------------- frames
def to_unit(frames: torch.Tensor) -> torch.Tensor:
    """uint8 ``[..., 3, H, W]`` -> float in [-1, 1] (the generator's pixel space)."""
    return frames.float() / 127.5 - 1.0


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """float in [-1, 1] -> uint8 (rounded, clamped)."""
    return ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def reid_normalise(unit: torch.Tensor) -> torch.Tensor:
    """[-1, 1] frames ``[..., 3, H, W]`` -> the re-ID network's ImageNet normalisation."""
    mean = torch.tensor(IMAGENET_MEAN, device=unit.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=unit.device).view(3, 1, 1)
    return ((unit + 1) / 2 - mean) / std


def decode_each(frames: Sequence[str]) -> list[torch.Tensor]:
    """Every frame decoded at its own size: uint8 ``[3, H_t, W_t]`` (DukeV's sizes vary)."""
    return [read_frames([p])[0] for p in frames]


def resize_each(frames: Sequence[str] | Sequence[torch.Tensor], height: int,
                width: int) -> torch.Tensor:
    """Frames (paths or uint8 ``[3, H_t, W_t]``) each resized from its own size: uint8
    ``[T, 3, height, width]``."""
    images = decode_each(frames) if frames and isinstance(frames[0], str) else frames
    return torch.stack([TF.resize(im, [height, width], antialias=True) for im in images])


def load_tracklet(frames: Sequence[str], height: int,
                  width: int) -> tuple[list[torch.Tensor], torch.Tensor]:
    """The original uint8 frames (each ``[3, H_t, W_t]`` at its own size) and the working
    copy ``[T, 3, H, W]`` in [-1, 1]."""
    original = decode_each(frames)
    return original, to_unit(resize_each(original, height, width))


def locator_input(original: torch.Tensor | Sequence[torch.Tensor],
                  size: Sequence[int]) -> torch.Tensor:
    """uint8 frames (``[T, 3, H0, W0]`` or a list of ``[3, H_t, W_t]``) -> the re-ID
    network's input ``[T, 3, *size]``.

    The locator runs at the re-ID network's own input size, which may differ from the
    generator's working size (a small generator is much cheaper to train).
    """
    return reid_normalise(to_unit(resize_each(list(original), size[0], size[1])))


def neighbour_indices(length: int, t: int, num_neighbours: int,
                      blocked: Sequence[int] | None = None) -> list[int]:
    """The ``num_neighbours`` source frames of target ``t``: the frames nearest to ``t`` in
    time (``t`` excluded, earlier first on ties); short tracklets repeat the nearest ones; a
    one-frame tracklet returns ``[t, ...]`` (its caller hides those copies completely).

    ``blocked[i]`` (optional): how many of the target's hole stripes are hidden in frame
    ``i``; frames that show more of the hole come first, nearest first among equals. (ours,
    a departure from the paper's adjacent frames) An occlusion event spans a run of frames,
    so the nearest frames often hide the same stripe: the temporal branch then has nothing
    to read, while a frame a little further away shows it (:func:`source_blocking`).
    """
    def key(i: int) -> tuple[int, int, int]:
        return (0 if blocked is None else int(blocked[i]), abs(i - t), i)

    others = sorted((i for i in range(length) if i != t), key=key)
    if not others:
        return [t] * num_neighbours
    return [others[i % len(others)] for i in range(num_neighbours)]


def source_blocking(hidden: torch.Tensor | np.ndarray,
                    holes: torch.Tensor | np.ndarray) -> np.ndarray:
    """``[T]``: how many of the target's hole stripes (``holes [R]`` bool) each frame hides
    (``hidden [T, R]`` bool: the stripes that may not be a source); the ``blocked`` of
    :func:`neighbour_indices`."""
    hidden = np.asarray(hidden, dtype=bool)
    return (hidden & np.asarray(holes, dtype=bool)[None, :]).sum(axis=1)


def neighbour_batch(
    work: torch.Tensor, holes: torch.Tensor, targets: Sequence[int], num_neighbours: int,
    hidden: torch.Tensor | None = None, occluded: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Neighbours ``[N, M, 3, H, W]`` and their hole masks ``[N, M, 1, H, W]`` for ``targets``.

    ``work [T, 3, H, W]``, ``holes [T, 1, H, W]`` (the pixels no frame may be read at).
    With ``hidden [T, R]`` (the same as stripe flags) and ``occluded [T, R]`` (each target's
    hole stripes), the neighbours are the frames that show the target's hole, nearest first
    (:func:`neighbour_indices`); without them, the nearest frames.
    """
    frames, masks = [], []
    for t in targets:
        blocked = None if hidden is None or occluded is None else source_blocking(
            hidden, occluded[t])
        idx = neighbour_indices(work.shape[0], t, num_neighbours, blocked)
        mask = holes[idx].clone()
        if work.shape[0] == 1:
            mask.fill_(1.0)  # no other frame: nothing to read
        frames.append(work[idx])
        masks.append(mask)
    return torch.stack(frames), torch.stack(masks)


# ----------------------------------------------------------------------------- locator
@torch.no_grad()
def locate_tracklets(
    reid: VideoReIDModel,
    tracklets: Sequence[Tracklet],
    *,
    height: int,
    width: int,
    num_regions: int = DEFAULT_NUM_REGIONS,
    tau: float = OCCLUSION_TAU,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> list[dict[str, np.ndarray]]:
    """Locator output for every tracklet: ``scores [T, R]`` and ``occluded [T, R]`` (bool).

    ``height`` x ``width`` is the re-ID network's input size.
    """
    from tqdm import tqdm

    locator = OcclusionLocator(reid.to(device).eval(), num_regions=num_regions, tau=tau)
    out = []
    for t in tqdm(tracklets, desc="locate", disable=not progress):
        r = locator(locator_input(read_frames(list(t.frames)), (height, width)).to(device))
        out.append({"scores": r["scores"].cpu().numpy(), "occluded": r["occluded"].cpu().numpy()})
    return out


def calibrate_tau(scores: Sequence[np.ndarray], k: float = 3.0,
                  source_k: float = 2.0) -> tuple[float, float]:
    """``(tau, source_tau)`` from the locator's scores of the training tracklets (no labels).

    (ours, a departure from the paper's fixed tau = 0.89, which is for its ResNet-50 on MARS:
    the cosine of a stripe to its tracklet's mean depends on the network and the data) Most
    stripes are unoccluded, so an occluded one is an outlier below the bulk: a robust z-score
    rule, ``tau = median - k * sigma`` with ``sigma = 1.4826 * MAD`` (the normal-consistent
    median absolute deviation) over every training stripe's score; ``source_tau`` the same
    with the softer ``source_k <= k`` (neighbour stripes likely occluded are no source).
    """
    if source_k > k:
        raise ValueError(f"source_k ({source_k}) must be <= k ({k}): source_tau >= tau")
    flat = np.concatenate([np.asarray(s, dtype=np.float64).ravel() for s in scores]) \
        if len(scores) else np.zeros(0)
    if flat.size == 0:
        raise ValueError("calibrate_tau needs the locator's scores of at least one frame")
    median = float(np.median(flat))
    sigma = MAD_TO_SIGMA * float(np.median(np.abs(flat - median)))
    return median - k * sigma, median - source_k * sigma


def locator_report(scores: np.ndarray, truth: np.ndarray, tau: float) -> dict[str, float]:
    """How well the locator's stripe scores (``[N, R]``) find truly occluded stripes
    (``truth``, bool, same shape) at ``tau`` (flagged: score < tau): precision, recall, and
    the separation of the two score distributions whatever the threshold: ROC AUC (the
    chance that an occluded stripe scores below a clean one; 0.5 = inseparable), the median
    score of each class and the share of clean stripes under tau."""
    from scipy.stats import mannwhitneyu

    scores, truth = np.asarray(scores, dtype=np.float64).ravel(), np.asarray(truth, bool).ravel()
    pred = scores < tau
    tp = int((pred & truth).sum())
    occ, clean = scores[truth], scores[~truth]
    auc = float("nan")
    if occ.size and clean.size:
        auc = float(mannwhitneyu(clean, occ).statistic) / (clean.size * occ.size)
    return {"precision": tp / max(int(pred.sum()), 1), "recall": tp / max(int(truth.sum()), 1),
            "auc": auc, "median_occluded": float(np.median(occ)) if occ.size else float("nan"),
            "median_clean": float(np.median(clean)) if clean.size else float("nan"),
            "clean_under_tau": float((clean < tau).mean()) if clean.size else float("nan"),
            "occluded": int(truth.sum()), "stripes": int(truth.size)}


# ----------------------------------------------------------------------------- training data
def source_hidden(scores: np.ndarray | torch.Tensor, source_tau: float) -> torch.Tensor:
    """Stripes that may not serve as a source of content for another frame: ``scores [T, R]
    < source_tau`` (bool).

    (ours) The paper hides only the stripes under tau (0.89). A neighbour's stripe that is
    occluded but scored just above tau would let the temporal branch copy the occluder
    back into the completed frame (37% of such slots on a small synthetic set), so sources
    use a softer threshold ``source_tau >= tau``.
    """
    return torch.as_tensor(np.asarray(scores)) < source_tau


class HiddenStripeSampler:
    """Draws the stripes to hide in a training frame from the distribution of occlusion
    patterns that completion meets: the rows of the locator's ``occluded [T, R]`` flags with
    at least one stripe set (so 1..R stripes, at the positions they are found), each pattern
    with its frequency among the occluded frames.

    (ours) The paper trains with "synthetic region masks" and does not say which; without
    any occluded frame to learn from, one stripe is drawn uniformly.
    """

    def __init__(self, occluded: Sequence[np.ndarray], num_regions: int) -> None:
        rows = [np.asarray(o, dtype=bool).reshape(-1, num_regions) for o in occluded]
        flagged = np.concatenate([r[r.any(axis=1)] for r in rows]) if rows else np.zeros(
            (0, num_regions), dtype=bool)
        if len(flagged):
            patterns, counts = np.unique(flagged, axis=0, return_counts=True)
        else:
            patterns, counts = np.eye(num_regions, dtype=bool), np.ones(num_regions)
        self.patterns = torch.from_numpy(patterns.astype(bool))  # [P, R]
        self.probs = torch.from_numpy(counts / counts.sum()).float()  # [P]

    def sample(self) -> torch.Tensor:
        """One pattern ``[R]`` (bool), drawn with torch's RNG (seeded by the loader / worker)."""
        return self.patterns[int(torch.multinomial(self.probs, 1))].clone()


class STCTrainSamples(torch.utils.data.Dataset):
    """Training samples for STCnet: an unoccluded frame with random stripes hidden.

    Item: ``frame [3,H,W]``, ``mask [1,H,W]``, ``stripes [R]`` (bool, the hidden ones),
    ``neighbours [M,3,H,W]``, ``neighbour_mask [M,1,H,W]``, ``pid``. ``scores[i]`` is
    tracklet ``i``'s locator scores ``[T, R]``: frames without a stripe under ``tau`` are
    targets; the hidden stripes follow :class:`HiddenStripeSampler` (the patterns the
    locator flags at ``tau``); neighbours' stripes under ``source_tau`` are hidden from the
    temporal branch (:func:`source_hidden`), as in completion.

    Memory stays bounded: by default (``cache_tracklets=0``) a sample decodes only its
    target and its ``M`` neighbours. ``cache_tracklets=N`` keeps the last ``N`` decoded
    tracklets whole at the working size as uint8 (``T * 3 * H * W`` bytes each; each
    DataLoader worker holds its own), least recently used evicted first: worth it only
    when samples of a tracklet come close together (short tracklets, small sets); caching
    every tracklet would hold the whole training set (~50 GB per worker for MARS at 256x128).
    """

    def __init__(
        self,
        tracklets: Sequence[Tracklet],
        scores: Sequence[np.ndarray],
        *,
        height: int,
        width: int,
        tau: float = OCCLUSION_TAU,
        source_tau: float | None = None,
        num_neighbours: int = DEFAULT_NUM_NEIGHBOURS,
        cache_tracklets: int = DEFAULT_CACHE_TRACKLETS,
    ) -> None:
        if cache_tracklets < 0:
            raise ValueError(f"cache_tracklets must be >= 0, got {cache_tracklets}")
        if len(tracklets) != len(scores):
            raise ValueError(f"{len(tracklets)} tracklets but {len(scores)} locator results")
        source_tau = tau if source_tau is None else source_tau
        check_source_tau(tau, source_tau)
        self.tracklets = list(tracklets)
        self.scores = [np.asarray(s, dtype=np.float32) for s in scores]
        self.occluded = [s < tau for s in self.scores]
        self.hidden_sources = [source_hidden(s, source_tau) for s in self.scores]
        self.height, self.width, self.num_neighbours = height, width, num_neighbours
        self.num_regions = self.scores[0].shape[1] if self.scores else DEFAULT_NUM_REGIONS
        self.sampler = HiddenStripeSampler(self.occluded, self.num_regions)
        self.items = [(i, t) for i, occ in enumerate(self.occluded)
                      for t in np.flatnonzero(~occ.any(axis=1))]
        if not self.items:
            raise ValueError("no unoccluded frame to train STCnet on (is tau too high?)")
        self.cache_tracklets = cache_tracklets
        self._frames: OrderedDict[int, torch.Tensor] = OrderedDict()  # LRU: uint8 [T,3,H,W]

    def working_frames(self, i: int) -> torch.Tensor:
        """Tracklet ``i`` at the working size in [-1, 1], ``[T, 3, H, W]`` (LRU-cached)."""
        frames = self._frames.get(i)
        if frames is None:
            frames = resize_each(self.tracklets[i].frames, self.height, self.width)
            if self.cache_tracklets:
                self._frames[i] = frames
                while len(self._frames) > self.cache_tracklets:
                    self._frames.popitem(last=False)  # least recently used
        else:
            self._frames.move_to_end(i)
        return to_unit(frames)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        i, t = self.items[index]
        length = len(self.tracklets[i].frames)
        flags = self.sampler.sample()
        blocked = source_blocking(self.hidden_sources[i], flags)  # as in completion
        idx = [int(t), *neighbour_indices(length, int(t), self.num_neighbours, blocked)]
        if self.cache_tracklets:
            work = self.working_frames(i)[idx]  # [1 + M, 3, H, W]
        else:  # decode only the target and its neighbours
            paths = self.tracklets[i].frames
            work = to_unit(resize_each([paths[j] for j in idx], self.height, self.width))
        sources = stripe_mask(self.hidden_sources[i][idx], self.height, self.width)
        nb_mask = sources[1:].clone()
        if length == 1:
            nb_mask.fill_(1.0)  # no other frame: nothing to read
        return {
            "frame": work[0], "mask": stripe_mask(flags, self.height, self.width),
            "stripes": flags, "neighbours": work[1:], "neighbour_mask": nb_mask,
            "pid": self.tracklets[i].pid,
        }


def check_source_tau(tau: float, source_tau: float) -> None:
    """``source_tau`` must be at least ``tau`` (a source is at least as clean as a kept stripe)."""
    if source_tau < tau:
        raise ValueError(f"locator.source_tau ({source_tau}) must be >= locator.tau ({tau}): "
                         "neighbour stripes under tau are occluded and never a source")


def crop_stripes(images: torch.Tensor, stripes: torch.Tensor, num_regions: int) -> torch.Tensor:
    """Each image's hidden region (the rows from its first to its last hidden stripe,
    ``stripes [N, R]`` bool), resized to one stripe's height: ``[N,3,H,W] ->
    [N,3,round(H/R),W]`` (the local discriminator's input)."""
    h, w = images.shape[-2:]
    bounds = stripe_bounds(h, num_regions)
    size = [max(1, round(h / num_regions)), w]
    crops = []
    for n in range(images.shape[0]):
        hidden = torch.nonzero(stripes[n]).flatten()
        top, bottom = bounds[int(hidden[0])][0], bounds[int(hidden[-1])][1]
        crops.append(F.interpolate(images[n : n + 1, :, top:bottom], size=size,
                                   mode="bilinear", align_corners=False))
    return torch.cat(crops)


# ----------------------------------------------------------------------------- training
def _bce(logits: torch.Tensor, real: bool) -> torch.Tensor:
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    return F.binary_cross_entropy_with_logits(logits, target)


def build_stc(base_channels: int, paste: bool = False) -> dict[str, nn.Module]:
    """A fresh generator (``paste``: see :class:`STCGenerator`) and the two discriminators."""
    return {"generator": STCGenerator(base_channels, paste=paste), "local": LocalDiscriminator(),
            "global": GlobalDiscriminator()}


class STCStep:
    """One STCnet step on the generic :class:`~vidreid.engine.trainer.Trainer` (whose model
    is the generator): update the discriminators, then return the generator's loss
    ``w_rec * L1(hole) + w_local * adv_local + w_global * adv_global + w_id * CE(ID guider)``
    for the trainer to back-propagate. The discriminators and their optimiser are this
    step's state (saved in every checkpoint)."""

    def __init__(self, discriminators: nn.ModuleDict, d_optimizer: torch.optim.Optimizer,
                 guider: IDGuider, weights: STCLossWeights, num_regions: int) -> None:
        self.discriminators, self.d_optimizer = discriminators, d_optimizer
        self.guider, self.weights, self.num_regions = guider, weights, num_regions

    def __call__(self, trainer: Any, batch: dict[str, Any]) -> tuple[torch.Tensor, dict]:
        device, w = trainer.device, self.weights
        d_local, d_global = self.discriminators["local"], self.discriminators["global"]
        frame, mask = batch["frame"].to(device), batch["mask"].to(device)
        stripes, pids = batch["stripes"], batch["pid"].to(device)
        with trainer.autocast():
            out = trainer.net(frame, mask, batch["neighbours"].to(device),
                              batch["neighbour_mask"].to(device))
            completed = out["completed"]  # [N, 3, H, W]
            real_local = crop_stripes(frame, stripes, self.num_regions)
            fake_local = crop_stripes(completed, stripes, self.num_regions)
            d_loss = (_bce(d_local(real_local), True)
                      + _bce(d_local(fake_local.detach()), False)
                      + _bce(d_global(frame), True) + _bce(d_global(completed.detach()), False))
        self.d_optimizer.zero_grad(set_to_none=True)
        d_loss.backward()
        self.d_optimizer.step()
        with trainer.autocast():
            hole = mask.expand_as(frame)
            rec = (out["raw"] - frame).abs().mul(hole).sum() / hole.sum().clamp_min(1.0)
            adv_l = _bce(d_local(fake_local), True)
            adv_g = _bce(d_global(completed), True)
            ident = self.guider(completed, pids)
            g_loss = (w.reconstruction * rec + w.adversarial_local * adv_l
                      + w.adversarial_global * adv_g + w.identity * ident)
        trainer.batch_items = frame.shape[0]
        return g_loss, {"rec": rec.detach(), "adv_local": adv_l.detach(),
                        "adv_global": adv_g.detach(), "id": ident.detach(),
                        "d": d_loss.detach()}

    def state_dict(self) -> dict[str, Any]:
        return {"discriminators": self.discriminators.state_dict(),
                "optimizer": self.d_optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.discriminators.load_state_dict(state["discriminators"])
        self.d_optimizer.load_state_dict(state["optimizer"])


class _History(Hook):
    """The generator loss and its terms, averaged over every ``every`` steps (and over the
    steps up to the last one): ``records[i]`` holds the means over the steps since the
    previous record (``n`` of them) and the step it was taken at; ``last`` the last step's
    values. Means, not one step's values, so that two windows of records compare the mean
    loss over their steps (a GAN step's loss is noisy: single steps would not tell whether
    the loss has flattened)."""

    def __init__(self, every: int, steps: int) -> None:
        self.every, self.steps = every, steps
        self.records: list[dict[str, float]] = []
        self.last: dict[str, float] = {}
        self._sums: dict[str, float] = {}
        self._count = 0

    def after_step(self, trainer: Any, loss: float, parts: dict[str, Any]) -> None:
        step = trainer.global_step
        values = {"g": float(loss), **{k: float(v) for k, v in parts.items()}}
        self.last = {"step": step, **values}
        for k, v in values.items():
            self._sums[k] = self._sums.get(k, 0.0) + v
        self._count += 1
        if step % self.every == 0 or step == self.steps:
            self.records.append({"step": step, "n": self._count,
                                 **{k: v / self._count for k, v in self._sums.items()}})
            self._sums, self._count = {}, 0


def train_stc(
    reid: VideoReIDModel,
    tracklets: Sequence[Tracklet],
    out_path: str | os.PathLike[str],
    *,
    height: int,
    width: int,
    num_regions: int = DEFAULT_NUM_REGIONS,
    tau: float = OCCLUSION_TAU,
    num_neighbours: int = DEFAULT_NUM_NEIGHBOURS,
    base_channels: int = 32,
    paste: bool = False,
    steps: int = 1000,
    batch_size: int = 16,
    lr: float = 2e-4,
    betas: tuple[float, float] = (0.5, 0.999),
    weights: STCLossWeights | None = None,
    seed: int = 1,
    num_workers: int = 0,
    device: torch.device | str = "cpu",
    amp: str = "off",
    log_every: int = 50,
    progress: bool = False,
    locator_scores: Sequence[np.ndarray] | None = None,
    reid_size: tuple[int, int] | None = None,
    resume: bool = False,
    cache_tracklets: int = DEFAULT_CACHE_TRACKLETS,
    source_tau: float | None = None,
    guider: VideoReIDModel | None = None,
    calibrate: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """Train STCnet on ``tracklets`` (training split) and save it to ``out_path``.

    ``reid`` is the trained re-ID network (training identities = ``tracklets``' pids): it is
    the locator's feature extractor and the frozen ID guider. ``locator_scores`` (``[T, R]``
    per tracklet) skips the locating pass. ``source_tau`` (default ``tau``): neighbour
    stripes scored under it are hidden from the temporal branch (:func:`source_hidden`).
    ``guider``: the ID guider's network (the paper's frame-level ResNet-50 CE), seeing frames
    at ``reid_size``; None: ``reid`` serves (ours). ``height`` x ``width`` is the generator's
    working size; ``reid_size`` the re-ID network's input size (default: the same), at which
    the locator and the ID guider see frames. ``calibrate=(k, source_k)`` replaces ``tau``
    and ``source_tau`` by :func:`calibrate_tau` of the training stripes' scores (ours; the
    values used are in the checkpoint's meta, which completion reads). Training runs on the generic trainer, which
    keeps ``last.pt`` beside ``out_path`` (``resume=True`` continues from it). Returns the
    last logged losses, their history and the path.
    """
    from vidreid.engine.trainer import Trainer, TrainOptions

    w = weights or STCLossWeights()
    device = torch.device(device)
    torch.manual_seed(seed)
    reid_size = tuple(reid_size or (height, width))
    source_tau = tau if source_tau is None else source_tau
    check_source_tau(tau, source_tau)
    if locator_scores is None:
        located = locate_tracklets(reid, tracklets, height=reid_size[0], width=reid_size[1],
                                   num_regions=num_regions, tau=tau, device=device,
                                   progress=progress)
        locator_scores = [r["scores"] for r in located]
    if calibrate is not None:
        tau, source_tau = calibrate_tau(locator_scores, *calibrate)
        log.info("locator thresholds calibrated on %d training tracklets (k %s, source_k %s): "
                 "tau %.4f, source_tau %.4f", len(locator_scores), *calibrate, tau, source_tau)
    samples = STCTrainSamples(tracklets, locator_scores, height=height, width=width, tau=tau,
                              source_tau=source_tau, num_neighbours=num_neighbours,
                              cache_tracklets=cache_tracklets)
    loader = torch.utils.data.DataLoader(
        samples, batch_size=batch_size, shuffle=True, drop_last=len(samples) >= batch_size,
        num_workers=num_workers, generator=torch.Generator().manual_seed(seed))
    nets = build_stc(base_channels, paste)
    discriminators = nn.ModuleDict({"local": nets["local"], "global": nets["global"]})
    discriminators.to(device).train()
    id_guider = IDGuider(guider if guider is not None else reid, IMAGENET_MEAN, IMAGENET_STD,
                         size=reid_size).to(device)
    g = nets["generator"]
    opt_g = torch.optim.Adam(g.parameters(), lr=lr, betas=betas)
    opt_d = torch.optim.Adam(discriminators.parameters(), lr=lr, betas=betas)
    step = STCStep(discriminators, opt_d, id_guider, w, num_regions)
    history = _History(log_every, steps)
    run_dir = Path(out_path).parent
    options = TrainOptions(
        epochs=math.ceil(steps / len(loader)), max_steps=steps, run_dir=run_dir, device=device,
        amp=amp, channels_last=False, log_every=log_every, tensorboard=False,
        progress=progress, checkpoint_every=1,
    )
    trainer = Trainer(g, None, loader, opt_g, None, options, step=step, hooks=[history],
                      resume=run_dir if resume else None)
    result = trainer.fit()
    if result.interrupted:
        raise KeyboardInterrupt(f"STCnet training stopped; resume it from {run_dir}")
    meta = {"height": height, "width": width, "reid_size": list(reid_size),
            "num_regions": num_regions, "tau": tau, "source_tau": source_tau,
            "tau_rule": "paper (fixed)" if calibrate is None else
            f"calibrated: median - k * sigma, (k, source_k) = {tuple(calibrate)}",
            "num_neighbours": num_neighbours, "base_channels": base_channels,
            "paste": bool(paste), "weights": asdict(w), "steps": steps,
            "guider": "reid network" if guider is None else type(guider).__name__}
    atomic_torch_save({"version": STC_CHECKPOINT_VERSION, "meta": meta,
                       **{k: net.state_dict() for k, net in nets.items()}}, out_path)
    return {"last": history.last, "history": history.records, "path": str(out_path),
            "train_frames": len(samples)}


def load_stc_generator(path: str | os.PathLike[str]) -> tuple[STCGenerator, dict[str, Any]]:
    """The generator and its settings (``meta``) from a :func:`train_stc` checkpoint."""
    path = Path(path)
    ckpt = safe_load(path, what="STCnet weights",
                     missing="STCnet weights (made by `vrstc train-stc`) not found")
    if not isinstance(ckpt, dict) or "generator" not in ckpt or "meta" not in ckpt:
        raise ValueError(f"{path}: not an STCnet checkpoint (written by `vidreid vrstc "
                         "train-stc`); did you pass the re-ID weights instead?")
    meta = dict(ckpt["meta"])
    g = STCGenerator(int(meta["base_channels"]), paste=bool(meta.get("paste", False)))
    g.load_state_dict(ckpt["generator"])
    return g.eval(), meta


# ----------------------------------------------------------------------------- completion
@torch.no_grad()
def complete_tracklet(
    generator: STCGenerator,
    original: torch.Tensor | Sequence[torch.Tensor],
    work: torch.Tensor,
    occluded: torch.Tensor,
    num_neighbours: int = DEFAULT_NUM_NEIGHBOURS,
    batch_frames: int = DEFAULT_BATCH_FRAMES,
    hidden_sources: torch.Tensor | None = None,
) -> dict[int, torch.Tensor]:
    """Complete the occluded stripes of one tracklet, ``batch_frames`` target frames at a time
    (bounded memory; the result does not depend on it, up to float rounding: the
    generator has no batch-coupled layer in eval mode).

    ``original``: the uint8 frames at their own sizes (``[T,3,H0,W0]`` or a list of
    ``[3, H_t, W_t]``), ``work`` ``[T,3,H,W]`` in [-1, 1], ``occluded [T,R]`` bool. Returns
    ``{t: uint8 [3, H_t, W_t]}`` for every frame with an occluded stripe, at that frame's own
    size: its original pixels outside the occluded stripes' rows, exactly, and the
    generator's output (resized to the frame's size) inside them. ``hidden_sources [T, R]``
    (bool, default ``occluded``): the neighbours' stripes the temporal branch may not read
    (:func:`source_hidden`; must include ``occluded``).
    """
    targets = [int(t) for t in torch.nonzero(occluded.any(dim=1)).flatten()]
    if not targets:
        return {}
    if batch_frames < 1:
        raise ValueError(f"batch_frames must be >= 1, got {batch_frames}")
    device = next(generator.parameters()).device
    h, w = work.shape[-2:]
    holes = stripe_mask(occluded, h, w)  # [T, 1, H, W]
    hidden = occluded if hidden_sources is None else hidden_sources | occluded
    sources = stripe_mask(hidden, h, w)
    done: dict[int, torch.Tensor] = {}
    for start in range(0, len(targets), batch_frames):
        chunk = targets[start : start + batch_frames]
        nb, nb_mask = neighbour_batch(work, sources, chunk, num_neighbours, hidden, occluded)
        out = generator(work[chunk].to(device), holes[chunk].to(device), nb.to(device),
                        nb_mask.to(device))["completed"].cpu()  # [n, 3, H, W]
        for n, t in enumerate(chunk):
            done[t] = merge_stripes(original[t], out[n], occluded[t])
    return done


def merge_stripes(original: torch.Tensor, completed: torch.Tensor,
                  occluded: torch.Tensor) -> torch.Tensor:
    """``original`` uint8 ``[3, H0, W0]`` with the rows of its ``occluded [R]`` stripes taken
    from ``completed`` (``[3, H, W]`` in [-1, 1], resized to ``H0 x W0``); the other rows are
    the original's, untouched."""
    h0, w0 = original.shape[-2:]
    big = to_uint8(TF.resize(completed, [h0, w0], antialias=True))
    rows = stripe_mask(occluded, h0, w0)[0, :, 0].bool()  # [H0]
    merged = original.clone()
    merged[:, rows] = big[:, rows]
    return merged


def _save_frame(path: Path, image: torch.Tensor, jpeg_quality: int) -> None:
    """Encode ``image`` (uint8 ``[3,H,W]``) in ``path``'s format, write atomically."""
    fmt = PIL_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"cannot re-encode {path}: unknown image format {path.suffix!r}")
    buf = io.BytesIO()
    opts = {"quality": jpeg_quality, "subsampling": JPEG_SUBSAMPLING} if fmt == "JPEG" else {}
    Image.fromarray(image.permute(1, 2, 0).numpy()).save(buf, format=fmt, **opts)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(buf.getbuffer())
        os.replace(tmp, path)  # replaces the hard link, never the input's file
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _link_or_copy(src: Path, dst: Path) -> None:
    """Hard-link ``src`` at ``dst`` (copy across file systems), atomically."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.parent / f".{dst.name}.{os.getpid()}.tmp"
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copy2(src, tmp)
    os.replace(tmp, dst)


def prepare_output(root: Path, out: Path) -> None:
    """Refuse an output inside / around the input or over a finished or foreign folder."""
    if out == root or root in out.parents or out in root.parents:
        raise ValueError(f"output {out} overlaps the input dataset root {root}: the input is "
                         "never modified; choose a folder outside it")
    if (out / FINISHED_MARKER).exists():
        raise ValueError(f"{out} already holds a finished completion ({FINISHED_MARKER}); "
                         "choose another --out or delete it")
    if out.exists() and any(out.iterdir()) and not (out / IN_PROGRESS_MARKER).exists():
        raise ValueError(f"{out} exists and is not empty; choose a new folder for --out")
    out.mkdir(parents=True, exist_ok=True)
    (out / IN_PROGRESS_MARKER).touch()


def complete_dataset(
    name: str,
    root: str | os.PathLike[str],
    out: str | os.PathLike[str],
    reid: VideoReIDModel,
    generator: STCGenerator,
    *,
    height: int,
    width: int,
    options: dict[str, Any] | None = None,
    num_regions: int = DEFAULT_NUM_REGIONS,
    tau: float = OCCLUSION_TAU,
    num_neighbours: int = DEFAULT_NUM_NEIGHBOURS,
    jpeg_quality: int = JPEG_QUALITY,
    device: torch.device | str = "cpu",
    progress: bool = False,
    reid_size: tuple[int, int] | None = None,
    batch_frames: int = DEFAULT_BATCH_FRAMES,
    source_tau: float | None = None,
    stripe_masks: Callable[[tuple[str, ...]], np.ndarray] | None = None,
) -> dict[str, Any]:
    """Write the completed copy of dataset ``name`` at ``root`` to ``out``; returns a summary.

    The output has the input's layout (the dataset folder mirrored by hard links / copies)
    with the completed frames replaced; ``build_dataset(name, out, **options)`` loads it.
    ``height`` x ``width`` is the generator's working size, ``reid_size`` the locator's
    (the re-ID network's input size; default the same).

    ``stripe_masks`` (not the paper's pipeline): a tracklet's frame paths -> its ``[T, R]``
    bool stripes to complete, used instead of the locator's flags (and as the hidden
    sources), e.g. the generator's ground truth, to judge completion apart from detection.
    """
    from tqdm import tqdm

    from vidreid.data import build_dataset

    dataset = build_dataset(name, root, **(options or {}))
    root_abs, out_abs = Path(root).resolve(), Path(out).resolve()
    ddir = Path(dataset.root).resolve()
    prepare_output(root_abs, out_abs)
    out_ddir = out_abs / ddir.relative_to(root_abs) if ddir != root_abs else out_abs
    for folder, _, files in os.walk(ddir):
        for f in files:
            src = Path(folder) / f
            _link_or_copy(src, out_ddir / src.relative_to(ddir))
    device = torch.device(device)
    reid = reid.to(device).eval()
    generator = generator.to(device).eval()
    locator = OcclusionLocator(reid, num_regions=num_regions, tau=tau)
    unique = list(dict.fromkeys(t.frames for t in
                                (*dataset.train, *dataset.query, *dataset.gallery)))
    reid_size = tuple(reid_size or (height, width))
    source_tau = tau if source_tau is None else source_tau
    check_source_tau(tau, source_tau)
    frames_done = regions_done = frames_seen = 0
    for frames in tqdm(unique, desc="complete", disable=not progress):
        rel = []
        for p in frames:
            path = Path(p).resolve()
            if ddir not in path.parents:
                raise DatasetError(f"frame {p} lies outside the dataset folder {ddir}")
            rel.append(path.relative_to(ddir))
        original, work = load_tracklet(frames, height, width)
        if stripe_masks is None:
            located = locator(locator_input(original, reid_size).to(device))
            occluded = located["occluded"].cpu()
            hidden = source_hidden(located["scores"].cpu(), source_tau)
        else:
            occluded = torch.as_tensor(np.asarray(stripe_masks(frames), dtype=bool))
            if occluded.shape != (len(frames), num_regions):
                raise ValueError(f"stripe_masks gave {tuple(occluded.shape)} for a tracklet of "
                                 f"{len(frames)} frames ({frames[0]}), expected "
                                 f"({len(frames)}, {num_regions})")
            hidden = occluded
        done = complete_tracklet(generator, original, work, occluded, num_neighbours,
                                 batch_frames=batch_frames, hidden_sources=hidden)
        for t, image in done.items():
            _save_frame(out_ddir / rel[t], image, jpeg_quality)
        frames_seen += len(frames)
        frames_done += len(done)
        regions_done += int(occluded.sum())
    summary = {"dataset": name, "input": str(root_abs), "output": str(out_abs),
               "tracklets": len(unique), "frames": frames_seen, "frames_completed": frames_done,
               "regions_completed": regions_done, "num_regions": num_regions, "tau": tau,
               "source_tau": source_tau, "stripe_masks": stripe_masks is not None,
               "height": height, "width": width, "reid_size": list(reid_size),
               "num_neighbours": num_neighbours}
    fd, tmp = tempfile.mkstemp(prefix=f".{FINISHED_MARKER}.", dir=out_abs)
    with os.fdopen(fd, "w") as fh:
        json.dump(summary, fh, indent=2)
    os.replace(tmp, out_abs / FINISHED_MARKER)
    (out_abs / IN_PROGRESS_MARKER).unlink(missing_ok=True)
    return summary
