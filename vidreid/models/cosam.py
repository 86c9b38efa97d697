"""COSAM: Co-segmentation inspired attention (Subramaniam, Nambiar & Mittal, ICCV 2019).

"Co-Segmentation Inspired Attention Networks for Video-Based Person Re-Identification".
A COSAM (CO-Segmentation based Attention Module) is inserted after stages of a frame CNN
and, for a *snippet* of ``T`` frames of one tracklet, activates what the frames have in
common (the person and what they carry) by mutual consensus, without any mask labels:

1. **Spatial mask** ``M_s`` ``[T, h, w]``: the frame maps are reduced (1x1 conv ``C -> C'``,
   BN, ReLU; ``C' = 256``, 64 when ``C <= 256``); every location's ``C'``-vector is normalised
   to zero mean / unit std (eps 1e-4); every location of a frame is correlated (normalised
   cross-correlation, dot product / ``C'``) with the locations of the *other* frames; the
   resulting cost volume is summarised by 1x1 conv -> 64, BN, ReLU, 1x1 conv -> 1, sigmoid.
   ``X_s = X * M_s``.
2. **Channel mask** ``M_c`` ``[C]``, shared by the snippet: per frame GAP of ``X_s``, Linear
   ``C -> C'``, tanh, Linear ``C' -> C``, sigmoid; averaged over the ``T`` frames so that the
   channels common to the group are selected. Output ``X_s + X_s * M_c``.

``cosam45`` (the paper's best) inserts modules after conv4_x and conv5_x (our ``layer3`` and
``layer4``); the frame maps then go to temporal average pooling (TP) like the baseline. On
any backbone with stages (:mod:`vidreid.models.backbones.stages`, e.g. MobileNetV2) the
default places them after the last two stages.

What follows the authors' code (``InnovArul/vidreid_cosegmentation``, ``src/models/cosam.py``):
the reduction / summary / channel layer sizes, unbiased std with eps 1e-4 added to it,
division by ``C'``, the channel mask averaged over the snippet, the default (PyTorch) init,
and no identity initialisation (a fresh module does rescale a pretrained backbone's maps).

**Where we depart (any T, any input size).** The authors' summary conv takes the raw cost
volume as ``(T-1)*H*W`` input channels, in a fixed order of the other frames: the module is
built for one ``T`` (4) and one map size (256x128 input). Ours first averages each other
frame's normalised vectors over a fixed grid of cells (:data:`COST_GRID`, 8x4, adaptive
average pooling) and averages the correlations over the other frames. Because pooling and
correlation are both linear in the other frame's vectors this equals the authors' cost
volume averaged over each cell's positions and over the other frames (their first summary
conv with its weights tied within a cell and across the other frames). It is computed as
``q_i . (sum_t k_t - k_self) / (T - 1)``, so memory and time are linear in ``T``. The summary
conv then has ``G = 8*4 = 32`` input channels whatever ``T`` and ``H x W``; its weights are
shared by the other frames, so a frame's mask does not depend on their order (the authors'
does). At 256x128 with last stride 1 (TP) the layer3 and layer4 maps are 16x8, so a cell
averages 2x2 positions; with last stride 2 the layer4 map is 8x4 and pooling is the identity.

**Snippets, short and long videos.** The paper splits a video into non-overlapping
snippets of N = 4 frames, describes each snippet and averages the snippet descriptors.
Here the model does that itself (``snippet_len``, default 4): a clip of ``T <= N`` frames is
one snippet; a longer clip is cut into N-frame snippets, the last one cycling its own frames
(6 frames -> 0,1,2,3 | 4,5,4,5), and the snippet descriptors are averaged, every snippet
weighing the same. In training the sampler gives ``T = seq_len = 4`` consecutive frames (one
snippet). At test time our configs use the engine's ``dense`` clips of 4 frames (``pad=
"cycle"``), whose features the engine averages: the same computation. The seed names two
weak spots of snippet averaging; what happens here:

- *very short* tracklets (1..3 frames, fewer than N): with ``dense`` / ``pad="cycle"`` the
  single snippet repeats the frames cyclically (2 frames -> 0,1,0,1), so a frame partly
  correlates with its own copy; with ``pad="none"`` it is one snippet of ``n < N`` frames,
  taken as is. ``T = 1`` (a one-frame tracklet with ``pad="none"``, or
  :meth:`encode_image`) has no other frame: the frame is correlated with *itself*, which
  gives exactly the output of a snippet made of copies of that frame (what ``pad="cycle"``
  feeds for a one-frame tracklet). So no crash, and the same function either way.
- *very long* tracklets (900 frames -> 225 snippets): each snippet only sees its own 4
  frames, and the mean weighs all snippets alike (the padded last one included); nothing
  attends across snippets, as in the paper. Memory is bounded by the engine's clips (or
  ``max_clip_len``) and by ``frame_chunk``; with ``snippet_len: null`` a whole tracklet is
  one snippet, which also works since the module's cost is linear in ``T``.

``return_extras=True`` returns the masks of every inserted module:
``extras["spatial_masks"][stage]`` ``[B, T, h, w]`` in [0, 1] and
``extras["channel_masks"][stage]`` ``[B, C]`` (``stage`` = ``"layer3"``, ...).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vidreid.models import MODELS
from vidreid.models.backbones.stages import insert_after_blocks, stage_names
from vidreid.models.base import FrameBatchModule
from vidreid.models.baseline import VideoBaseline

# Authors' code: C' = 256 reduced channels, 64 for maps of at most 256 channels.
REDUCED_CHANNELS = 256
REDUCED_CHANNELS_SMALL = 64
SMALL_MAP_CHANNELS = 256
SUMMARY_CHANNELS = 64  # hidden width of the cost-volume summary (authors' code)
NORM_EPS = 1e-4  # added to the std of each location's C'-vector (authors' code)
# Our choice: cells of the other frames' maps the cost volume is pooled to (rows, cols);
# the authors' layer4 map at 256x128 with last stride 2, half their layer3 map.
COST_GRID = (8, 4)
# After the last two stages (ResNet: conv4_x and conv5_x = layer3, layer4): the paper's best.
COSAM45 = (-2, -1)
PAPER_SNIPPET_LEN = 4  # N: frames per snippet


def reduced_channels(in_channels: int) -> int:
    """``C'`` of the authors' code: 256, or 64 for maps of at most 256 channels."""
    return REDUCED_CHANNELS_SMALL if in_channels <= SMALL_MAP_CHANNELS else REDUCED_CHANNELS


class COSAM(nn.Module):
    """One co-segmentation attention module over a snippet ``[B, T, C, h, w]`` (any T >= 1).

    ``forward`` returns ``(X_s + X_s * M_c, M_s [B, T, h, w], M_c [B, C])``.
    """

    def __init__(self, in_channels: int, cost_grid: tuple[int, int] = COST_GRID) -> None:
        super().__init__()
        if in_channels < 1:
            raise ValueError(f"COSAM needs a positive channel count, got {in_channels}")
        if len(cost_grid) != 2 or min(cost_grid) < 1:
            raise ValueError(f"cost_grid must be (rows, cols) >= 1, got {tuple(cost_grid)}")
        self.in_channels = in_channels
        self.mid_channels = reduced_channels(in_channels)
        self.cost_grid = (int(cost_grid[0]), int(cost_grid[1]))
        grid_cells = self.cost_grid[0] * self.cost_grid[1]
        self.dim_reduction = nn.Sequential(
            nn.Conv2d(in_channels, self.mid_channels, kernel_size=1),
            nn.BatchNorm2d(self.mid_channels),
            nn.ReLU(inplace=True),
        )
        self.spatial_mask_summary = nn.Sequential(
            nn.Conv2d(grid_cells, SUMMARY_CHANNELS, kernel_size=1),
            nn.BatchNorm2d(SUMMARY_CHANNELS),
            nn.ReLU(inplace=True),
            nn.Conv2d(SUMMARY_CHANNELS, 1, kernel_size=1),
        )
        self.channelwise_attention = nn.Sequential(
            nn.Linear(in_channels, self.mid_channels),
            nn.Tanh(),
            nn.Linear(self.mid_channels, in_channels),
            nn.Sigmoid(),
        )

    def mutual_correlation(self, x: torch.Tensor) -> torch.Tensor:
        """Cost volume ``[B, T, C, h, w] -> [B*T, G, h, w]``: every location of a frame
        correlated with the ``G`` grid cells of the other frames, averaged over them."""
        b, t, _, h, w = x.shape
        z = self.dim_reduction(x.flatten(0, 1))  # [BT, C', h, w]
        # Normalise and correlate in float32 (autocast would do it in bf16/fp16).
        with torch.autocast(device_type=z.device.type, enabled=False):
            z = z.float()
            z = z - z.mean(dim=1, keepdim=True)
            z = z / (z.std(dim=1, keepdim=True) + NORM_EPS)  # per-location zero mean, unit std
            keys = F.adaptive_avg_pool2d(z, self.cost_grid)  # [BT, C', Gh, Gw]
            keys = keys.reshape(b, t, self.mid_channels, -1)  # [B, T, C', G]
            if t > 1:  # mean over the T-1 other frames
                others = (keys.sum(dim=1, keepdim=True) - keys) / (t - 1)
            else:  # no other frame: the frame itself (= a snippet of copies of it)
                others = keys
            queries = z.reshape(b, t, self.mid_channels, h * w)  # [B, T, C', hw]
            cost = torch.einsum("btcg,btci->btgi", others, queries) / self.mid_channels
        return cost.reshape(b * t, -1, h, w)  # [BT, G, h, w]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if x.dim() != 5 or x.shape[2] != self.in_channels:
            raise ValueError(
                f"COSAM({self.in_channels}) expects a snippet [B, T, {self.in_channels}, h, w], "
                f"got shape {tuple(x.shape)}"
            )
        b, t, c, h, w = x.shape
        cost = self.mutual_correlation(x)  # [BT, G, h, w]
        spatial = torch.sigmoid(self.spatial_mask_summary(cost.to(x.dtype)))  # [BT, 1, h, w]
        spatial = spatial.reshape(b, t, 1, h, w)
        x_s = x * spatial  # [B, T, C, h, w]
        channel = self.channelwise_attention(x_s.mean(dim=(3, 4)))  # [B, T, C]
        channel = channel.mean(dim=1)  # [B, C]: one mask for the snippet
        out = x_s + x_s * channel[:, None, :, None, None]
        return out, spatial.reshape(b, t, h, w), channel


class FrameCOSAM(FrameBatchModule):
    """A :class:`COSAM` on frame-batched maps ``[B*T, C, h, w]`` inside a backbone stage.

    While ``record`` is on, each call appends ``(spatial [B,T,h,w], channel [B,C])`` to
    ``recorded`` (the model collects them for ``extras``).
    """

    def __init__(self, in_channels: int, cost_grid: tuple[int, int] = COST_GRID) -> None:
        super().__init__()
        self.cosam = COSAM(in_channels, cost_grid)
        self.record = False
        self.recorded: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, spatial, channel = self.cosam(self.split_clips(x))
        if self.record:
            self.recorded.append((spatial, channel))
        return out.reshape(x.shape)  # [B*T, C, h, w]


def resolve_stages(backbone: nn.Module, stages: Sequence[str | int]) -> list[str]:
    """Stage names (``layer3``) or indices (``-1`` = last) -> the backbone's stage names,
    in network order; a ``ValueError`` names a bad entry (key ``cosam_stages``)."""
    names = stage_names(backbone, "COSAM")
    resolved = []
    for stage in stages:
        is_index = isinstance(stage, int) and not isinstance(stage, bool)
        if is_index and -len(names) <= stage < len(names):
            resolved.append(names[stage])
        elif isinstance(stage, str) and stage in names:
            resolved.append(stage)
        else:
            resolved = []
            break
    if not resolved:
        raise ValueError(
            f"cosam_stages must be a non-empty list of stage names ({', '.join(names)}) or "
            f"indices (-2, -1 = the last two = cosam45), got {list(stages)}"
        )
    if len(set(resolved)) != len(resolved):
        raise ValueError(f"cosam_stages lists a stage twice: {list(stages)}")
    return sorted(resolved, key=names.index)


def insert_cosam(
    backbone: nn.Module,
    stages: Sequence[str | int] = COSAM45,
    cost_grid: tuple[int, int] = COST_GRID,
) -> dict[str, FrameCOSAM]:
    """Append a :class:`FrameCOSAM` to each given stage of a staged backbone, in place.

    ``stages``: stage names or indices (default: the last two, ``cosam45``); any backbone
    with the stage protocol (:mod:`vidreid.models.backbones.stages`). The module goes at the
    end of the stage (``layer3.cosam``), so the backbone's own keys (``layer3.0.conv1.weight``)
    are unchanged and pretrained weights still load. Returns ``{stage name: module}``.
    """
    names = stage_names(backbone, "COSAM")
    modules = {}
    for stage in resolve_stages(backbone, stages):
        layer = getattr(backbone, stage)
        module = FrameCOSAM(backbone.stage_channels[names.index(stage)], cost_grid)
        setattr(backbone, stage, insert_after_blocks(layer, {len(layer) - 1: ("cosam", module)}))
        modules[stage] = module
    return modules


def snippet_indices(num_frames: int, snippet_len: int) -> torch.Tensor:
    """Frame indices ``[S, snippet_len]`` of the non-overlapping snippets of a clip.

    The last snippet, if short, cycles its own frames (like ``dense`` test sampling with
    ``pad="cycle"``): 6 frames in snippets of 4 -> ``[0, 1, 2, 3], [4, 5, 4, 5]``.
    """
    starts = range(0, num_frames, snippet_len)
    rows = []
    for start in starts:
        length = min(snippet_len, num_frames - start)
        rows.append(start + torch.arange(snippet_len) % length)
    return torch.stack(rows)


@MODELS.register("cosam")
class COSAMNet(VideoBaseline):
    """Frame CNN with COSAMs after the given stages -> temporal head (TP) -> neck / classifier.

    Args (besides :class:`~vidreid.models.baseline.VideoBaseline`'s):
        cosam_stages: stages followed by a COSAM, by name or index; ``[layer3, layer4]`` or
            the default ``[-2, -1]`` (the last two stages) = the paper's ``cosam45`` (after
            conv4_x and conv5_x).
        cost_grid: (rows, cols) of the pooled cost volume (our choice, see module docstring).
        snippet_len: the paper's snippet length N (4). A clip of ``T <= N`` frames is one
            snippet; a longer clip is cut into non-overlapping N-frame snippets (the last one
            cycling its own frames), each snippet is attended and pooled on its own, and the
            snippet descriptors are averaged: the paper's video descriptor, whatever the test
            sampling (``dense`` clips of N frames make this a no-op, ``all`` relies on it).
            ``None``: the whole clip is one snippet.

    ``return_extras=True`` adds ``extras["spatial_masks"]`` (``{stage: [B, T, h, w]}``, one
    mask per input frame) and ``extras["channel_masks"]`` (``{stage: [B, C]}``, averaged over
    the snippets of a clip).
    """

    def __init__(
        self,
        num_classes: int,
        backbone: str = "resnet50",
        head: str = "tp",
        weights: str | None = None,
        last_stride: int = 1,
        cosam_stages: Sequence[str | int] = COSAM45,
        cost_grid: Sequence[int] = COST_GRID,
        snippet_len: int | None = PAPER_SNIPPET_LEN,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            num_classes, backbone=backbone, head=head, weights=weights,
            last_stride=last_stride, **kwargs,
        )
        grid = tuple(int(g) for g in cost_grid)
        if len(grid) != 2:
            raise ValueError(f"cost_grid must be [rows, cols], got {list(cost_grid)}")
        if snippet_len is not None and snippet_len < 1:
            raise ValueError(f"snippet_len must be a positive number of frames or null, "
                             f"got {snippet_len}")
        self.snippet_len = snippet_len
        # Inserted after the pretrained weights are loaded (by build_backbone above).
        self.cosams = insert_cosam(self.backbone, list(cosam_stages), grid)  # type: ignore

    def forward(self, clips: torch.Tensor, return_extras: bool = False) -> dict[str, Any]:
        if clips.dim() != 5:
            raise ValueError(f"expected clips [B, T, 3, H, W], got shape {tuple(clips.shape)}")
        b, t = clips.shape[:2]
        n = t if self.snippet_len is None else min(t, self.snippet_len)
        index = snippet_indices(t, n).to(clips.device)  # [S, N]
        s = index.shape[0]
        snippets = clips[:, index.flatten()].reshape(b * s, n, *clips.shape[2:])  # [BS, N, 3, H, W]
        for module in self.cosams.values():
            module.record, module.recorded = return_extras, []
        try:
            maps = self.frame_maps(snippets)  # [BS, N, C, h, w]
            recorded = {stage: m.recorded for stage, m in self.cosams.items()}
        finally:
            for module in self.cosams.values():
                module.record, module.recorded = False, []
        feat, head_extras = self.head(maps, return_extras=True)  # [BS, D_head]
        feat = self.embedding(feat).reshape(b, s, -1).mean(dim=1)  # [B, D]: snippet average
        if self.neck is not None:
            out = self.neck(feat)
        else:
            out = {"features": feat}
            if self.training:
                out["logits"] = self.classifier(feat)
        if return_extras:
            spatial, channel = {}, {}
            for stage, calls in recorded.items():
                # frame_chunk may have split the snippets over several backbone calls
                sp = torch.cat([m for m, _ in calls])  # [BS, N, h, w]
                spatial[stage] = sp.reshape(b, s * n, *sp.shape[2:])[:, :t]  # [B, T, h, w]
                ch = torch.cat([c for _, c in calls])  # [BS, C]
                channel[stage] = ch.reshape(b, s, -1).mean(dim=1)  # [B, C]
            out["extras"] = {**head_extras, "spatial_masks": spatial, "channel_masks": channel}
        return out
