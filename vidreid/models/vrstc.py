"""VRSTC: "VRSTC: Occlusion-Free Video Person Re-Identification" (Hou et al., CVPR 2019).

Two parts, both here:

- the re-ID network (``vrstc_reid``): ResNet-50 with non-local blocks in the earlier stages
  (after layer2 blocks 1, 3 and layer3 blocks 1, 3, 5, as in TKP's code), temporal average
  pooling (TP), cross-entropy; triplet is a config option. It also serves as the occlusion
  locator's feature extractor and as the ID guider of STCnet;
- STCnet, the spatial-temporal completion network: :class:`OcclusionLocator`,
  :class:`STCGenerator` (spatial-structure branch + temporal attention branch),
  :class:`LocalDiscriminator`, :class:`GlobalDiscriminator` and :class:`IDGuider`. Its
  training loop and the dataset completion are in :mod:`vidreid.methods.vrstc.stc`.

No public code exists; the design follows the paper's description. Our choices (the paper
is silent or we depart from it), each marked "(ours)" below:

- the locator scores stripes of the re-ID network's last feature map (not of pixels), by
  cosine similarity to the same stripe of the tracklet's mean map;
- the generator is a small encoder-decoder (two stride-2 stages, dilated bottleneck as in
  Iizuka et al. 2017); the temporal branch is dot-product attention from every position of
  the target frame to every *visible* position of the neighbouring frames (occluded
  neighbour regions are masked out), fused with the spatial features by a 1x1 conv;
- both discriminators are fully convolutional stacks of 4x4 stride-2 convs with spectral
  norm and LeakyReLU, pooled to one logit (the paper uses fully connected heads on fixed
  sizes; pooling lets one network take any frame size);
- the re-ID network uses a plain linear classifier (no BNNeck) by default, as the paper's
  CE-only network; ``bnneck=True`` is accepted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from vidreid.models import MODELS
from vidreid.models.base import clip_length
from vidreid.models.baseline import NonLocalBaseline, VideoBaseline

# ----------------------------------------------------------------------------- constants
#: Similarity threshold under which a region is occluded (the paper's tau).
OCCLUSION_TAU = 0.89
#: Horizontal stripes per frame scored by the locator (ours: 3 body parts, head/torso/legs).
DEFAULT_NUM_REGIONS = 3
#: Frames the locator feeds the re-ID network per forward pass (ours: bounds memory); each
#: frame is its own one-frame clip, so the chunking does not change any score.
LOCATOR_FRAME_CHUNK = 32
#: Generator feature width of the first stage (ours; doubles at each of the two stages).
GENERATOR_BASE_CHANNELS = 32
#: Dilation rates of the generator's bottleneck (Iizuka et al. 2017 use 2, 4, 8, 16).
BOTTLENECK_DILATIONS = (2, 4, 8)
#: Width of the first discriminator stage and number of stride-2 stages (ours).
DISCRIMINATOR_BASE_CHANNELS = 32
LOCAL_DISCRIMINATOR_STAGES = 3
GLOBAL_DISCRIMINATOR_STAGES = 4
LEAKY_SLOPE = 0.2
#: Generator input: RGB of the masked frame (in [-1, 1]) + the hole mask.
GENERATOR_IN_CHANNELS = 4
RGB = 3
#: Downsampling of the generator's encoders (two stride-2 stages): one attention position is
#: a block of ENCODER_STRIDE x ENCODER_STRIDE pixels, the block :func:`paste_patches` copies.
ENCODER_STRIDE = 4


# ----------------------------------------------------------------------------- re-ID network
@MODELS.register("vrstc_reid")
class VRSTCReID(NonLocalBaseline):
    """The VRSTC re-ID network: ResNet-50 + non-local blocks + TP, CE (triplet optional).

    Same as :class:`NonLocalBaseline` with the paper's defaults (plain classifier); adds what
    STCnet needs from it: :meth:`region_features` (the locator) and :meth:`logits` (the ID
    guider, valid in eval mode too).
    """

    def __init__(
        self,
        num_classes: int,
        backbone: str = "resnet50",
        head: str = "tp",
        weights: str | None = None,
        last_stride: int = 1,
        bnneck: bool = False,
        layer2_blocks: Sequence[int] | None = None,  # every other block: (1, 3) on ResNet-50
        layer3_blocks: Sequence[int] | None = None,  # (1, 3, 5) on ResNet-50
        nonlocal_sub_sample: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            num_classes, backbone=backbone, head=head, weights=weights, last_stride=last_stride,
            bnneck=bnneck, layer2_blocks=layer2_blocks, layer3_blocks=layer3_blocks,
            nonlocal_sub_sample=nonlocal_sub_sample, **kwargs,
        )

    def region_features(self, clips: torch.Tensor, num_regions: int) -> torch.Tensor:
        """Stripe features of every frame: ``[B, T, 3, H, W] -> [B, T, R, C]``."""
        return region_features(self.frame_maps(clips), num_regions)

    def logits(self, clips: torch.Tensor) -> torch.Tensor:
        """Identity logits ``[B, K]`` in train or eval mode (the ID guider's classifier)."""
        return classifier_logits(self, clips)


def region_features(maps: torch.Tensor, num_regions: int) -> torch.Tensor:
    """Average-pool ``num_regions`` horizontal stripes: ``[B, T, C, h, w] -> [B, T, R, C]``."""
    if num_regions < 1 or num_regions > maps.shape[-2]:
        raise ValueError(
            f"num_regions must be in 1..{maps.shape[-2]} (the feature map's height), "
            f"got {num_regions}"
        )
    b, t = maps.shape[:2]
    pooled = F.adaptive_avg_pool2d(maps.flatten(0, 1).float(), (num_regions, 1))  # [BT,C,R,1]
    return pooled.squeeze(-1).transpose(1, 2).reshape(b, t, num_regions, -1)  # [B, T, R, C]


def classifier_logits(model: VideoBaseline, clips: torch.Tensor) -> torch.Tensor:
    """Logits of a :class:`VideoBaseline` whatever its mode (eval-mode models give none)."""
    maps = model.frame_maps(clips)  # [B, T, C, h, w]
    feat = model.embedding(model.head(maps))  # [B, D]
    if model.neck is not None:
        return model.neck.classifier(model.neck.bn(feat))
    return model.classifier(feat)  # type: ignore[misc]


# ----------------------------------------------------------------------------- locator
def stripe_bounds(height: int, num_regions: int) -> list[tuple[int, int]]:
    """Pixel rows ``[start, end)`` of each of ``num_regions`` horizontal stripes."""
    if not 1 <= num_regions <= height:
        raise ValueError(f"cannot cut {height} rows into {num_regions} stripes")
    edges = [round(r * height / num_regions) for r in range(num_regions + 1)]
    return list(zip(edges[:-1], edges[1:], strict=True))


def stripe_mask(occluded: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Region flags ``[..., R]`` (bool) -> pixel hole mask ``[..., 1, H, W]`` (float, 1 = hole)."""
    bounds = stripe_bounds(height, occluded.shape[-1])
    mask = occluded.new_zeros((*occluded.shape[:-1], 1, height, width), dtype=torch.float32)
    for r, (top, bottom) in enumerate(bounds):
        mask[..., 0, top:bottom, :] = occluded[..., r, None, None].float()
    return mask


def score_regions(features: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of each frame's stripe to the tracklet's mean stripe.

    ``features [..., T, R, C] -> scores [..., T, R]``: the locator's score before the tau test.
    """
    mean = features.mean(dim=-3, keepdim=True)  # [..., 1, R, C] the tracklet's average
    return F.cosine_similarity(features, mean.expand_as(features), dim=-1)


class OcclusionLocator(nn.Module):
    """Finds occluded stripes: a stripe whose feature is far from the tracklet's mean is occluded.

    Paper: with a trained re-ID network, every frame is cut into regions; a region whose
    similarity to the tracklet's average region is below tau (0.89) is occluded; frames
    without such a region are unoccluded. ``feature_fn`` maps frames ``[N, 3, H, W]`` to
    feature maps ``[N, C, h, w]`` (default: ``reid.frame_maps`` of the re-ID network; a test
    can pass a fixed function). Every frame's feature is its own: the network runs with clip
    length 1, so the non-local blocks never mix other frames into a frame's map (as
    32-frame clips did, which lowered recall: 12% of occluded stripes at tau 0.89 on a small
    synthetic set). ``frame_chunk`` frames go through the network at a time (memory only);
    the mean is over all frames.
    """

    def __init__(
        self,
        reid: VideoBaseline | None = None,
        num_regions: int = DEFAULT_NUM_REGIONS,
        tau: float = OCCLUSION_TAU,
        feature_fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
        frame_chunk: int = LOCATOR_FRAME_CHUNK,
    ) -> None:
        super().__init__()
        if (reid is None) == (feature_fn is None):
            raise ValueError("OcclusionLocator needs exactly one of reid= or feature_fn=")
        if not -1.0 <= tau <= 1.0:
            raise ValueError(f"tau is a cosine similarity threshold in [-1, 1], got {tau}")
        self.reid = reid
        self.feature_fn = feature_fn
        self.num_regions = num_regions
        self.tau = tau
        self.frame_chunk = frame_chunk

    @torch.no_grad()
    def forward(self, tracklet: torch.Tensor) -> dict[str, torch.Tensor]:
        """``tracklet [T, 3, H, W]`` (the re-ID network's input normalisation) ->
        ``scores [T, R]``, ``occluded [T, R]`` (bool), ``frame_occluded [T]`` (bool)."""
        if tracklet.dim() != 4:
            raise ValueError(f"expected one tracklet [T, 3, H, W], got {tuple(tracklet.shape)}")
        maps = self.frame_maps(tracklet)  # [T, C, h, w]
        feats = region_features(maps.unsqueeze(0), self.num_regions)[0]  # [T, R, C]
        scores = score_regions(feats)  # [T, R]
        occluded = scores < self.tau
        return {"scores": scores, "occluded": occluded, "frame_occluded": occluded.any(dim=1)}

    @torch.no_grad()
    def frame_maps(self, frames: torch.Tensor) -> torch.Tensor:
        """Per-frame feature maps ``[T, C, h, w]`` of ``frames [T, 3, H, W]``: each frame is a
        one-frame clip (no cross-frame mixing), ``frame_chunk`` frames per pass."""
        if self.reid is None:
            return self.feature_fn(frames)  # type: ignore[misc]
        self.reid.eval()
        parts = []
        with clip_length(self.reid.backbone, 1):
            for chunk in frames.split(self.frame_chunk):
                parts.append(self.reid.backbone(chunk))  # [t, C, h, w]
        return torch.cat(parts)


# ----------------------------------------------------------------------------- generator
def _conv(in_ch: int, out_ch: int, k: int = 3, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    """conv -> InstanceNorm (ours: batch-size independent) -> ELU."""
    pad = dilation * (k - 1) // 2
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, k, stride=stride, padding=pad, dilation=dilation),
        nn.InstanceNorm2d(out_ch, affine=True),
        nn.ELU(inplace=True),
    )


class SpatialEncoder(nn.Module):
    """``[N, 4, H, W] -> [N, 4c, H/4, W/4]``: the masked frame's structure (two stride-2 stages
    then a dilated bottleneck that sees across the hole)."""

    def __init__(self, in_channels: int, base: int) -> None:
        super().__init__()
        self.down = nn.Sequential(
            _conv(in_channels, base, k=5),
            _conv(base, 2 * base, stride=2),
            _conv(2 * base, 2 * base),
            _conv(2 * base, 4 * base, stride=2),
        )
        self.dilated = nn.Sequential(*[_conv(4 * base, 4 * base, dilation=d)
                                       for d in BOTTLENECK_DILATIONS])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dilated(self.down(x))


class TemporalAttention(nn.Module):
    """The temporal branch: each position of the target frame attends to the visible positions
    of the neighbouring frames and reads their (encoded) content.

    ``query [B, C, h, w]``, ``keys / values [B, M, C, h, w]`` (M neighbours),
    ``visible [B, M, 1, h, w]`` (1 = usable) -> ``[B, C, h, w]`` and attention ``[B, hw, M*hw]``.
    Scaled dot-product (ours). A target whose neighbours are all hidden reads zeros (its
    returned attention is then uniform and unused).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.q = nn.Conv2d(channels, channels, 1)
        self.k = nn.Conv2d(channels, channels, 1)
        self.scale = channels ** -0.5

    def forward(
        self, query: torch.Tensor, neighbours: torch.Tensor, visible: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        b, m, c, h, w = neighbours.shape
        q = self.q(query).flatten(2).transpose(1, 2)  # [B, hw, C]
        k = self.k(neighbours.flatten(0, 1)).reshape(b, m, c, h * w)  # [B, M, C, hw]
        k = k.permute(0, 2, 1, 3).reshape(b, c, m * h * w)  # [B, C, M*hw]
        v = neighbours.permute(0, 2, 1, 3, 4).reshape(b, c, m * h * w)  # [B, C, M*hw]
        logits = (q @ k) * self.scale  # [B, hw, M*hw]: the largest tensor of STCnet
        usable = visible.reshape(b, 1, m * h * w) > 0.5  # [B, 1, M*hw]
        # In place and with a finite fill (memory: one [B, hw, M*hw] tensor fewer each, ~64 MB
        # per sample at 256x128): hidden positions get exactly zero weight whenever one
        # position is usable; a batch item with none reads zeros (``any_usable``).
        logits.masked_fill_(~usable, torch.finfo(logits.dtype).min)
        attn = torch.softmax(logits, dim=-1)
        any_usable = usable.any(dim=-1).to(attn.dtype).view(b, 1, 1, 1)
        out = (attn @ v.transpose(1, 2)).transpose(1, 2).reshape(b, c, h, w)  # [B, C, h, w]
        return out * any_usable, attn


def paste_patches(attn: torch.Tensor, neighbours: torch.Tensor,
                  patch: int = ENCODER_STRIDE) -> torch.Tensor:
    """Contextual attention's reconstruction, in pixels: every target position's ``patch x
    patch`` block is the attention-weighted sum of the neighbours' blocks.

    ``attn [B, hw, M*hw]`` (:class:`TemporalAttention`, rows over the neighbours' positions
    in (frame, row, column) order), ``neighbours [B, M, 3, H, W]`` with ``H = patch * h``,
    ``W = patch * w`` -> ``[B, 3, H, W]``. With a one-hot row the block is copied exactly.
    """
    b, m, c, height, width = neighbours.shape
    blocks = F.unfold(neighbours.flatten(0, 1), kernel_size=patch, stride=patch)  # [B*M, c*p*p, hw]
    hw = blocks.shape[-1]
    if attn.shape != (b, attn.shape[1], m * hw):
        raise ValueError(f"attention {tuple(attn.shape)} does not match {m} neighbours of "
                         f"{hw} blocks")
    blocks = blocks.reshape(b, m, -1, hw).permute(0, 1, 3, 2).reshape(b, m * hw, -1)
    pasted = attn.to(blocks.dtype) @ blocks  # [B, hw, c*p*p]
    return F.fold(pasted.transpose(1, 2), (height, width), kernel_size=patch, stride=patch)


class STCGenerator(nn.Module):
    """STCnet's generator: completes the hole of a target frame from the visible part of the
    same frame (spatial-structure branch) and from its neighbouring frames (temporal branch).

    ``forward(frame [B,3,H,W], mask [B,1,H,W], neighbours [B,M,3,H,W], neighbour_mask
    [B,M,1,H,W])``, images in [-1, 1], masks 1 = hole. Returns ``completed`` (the output
    inside the hole, the input pixels outside it, exactly), ``raw`` (the decoder's output
    everywhere) and ``attention``. H and W must be multiples of 4.

    The spatial-structure branch: the paper's text that we could check (its abstract and
    introduction, ar5iv 1907.08427, through the search tool; the method section was not
    reachable there) says only that the spatial structure of a frame is used to predict the
    occluded body parts from the unoccluded parts of the same frame. That is what
    :class:`SpatialEncoder` does: the masked frame and its mask go through an encoder whose
    dilated bottleneck's receptive field spans the frame, so every hole position sees the
    visible body parts; the decoder paints the hole from it. Left open by that text, and our
    choices: the layer counts and widths, that the spatial branch has no attention of its own
    (convolutions only), and the fusion of the two branches (concatenation + 1x1 conv).

    ``paste=True`` (ours, off in the paper configs): the temporal branch also copies
    pixels. Its attention, computed on features at 1/``ENCODER_STRIDE`` of the frame, pastes
    the neighbours' pixel blocks (:func:`paste_patches`: the reconstruction of Yu et al.'s
    contextual attention, which uses the background's patches as deconvolution filters,
    here on pixels), and a gate predicted by the decoder blends them with its own output:
    ``raw = g * pasted + (1 - g) * decoded``. Why: decoding the hole from 1/4-resolution
    features alone gave completions blurrier than copying the nearest visible frame
    (benchmarks/results/effects.md, vrstc rows); pasting keeps the neighbours' detail and
    the decoder still paints what no neighbour shows (where none is visible, ``g = 0``).
    """

    def __init__(self, base_channels: int = GENERATOR_BASE_CHANNELS, paste: bool = False) -> None:
        super().__init__()
        c = 4 * base_channels
        self.spatial = SpatialEncoder(GENERATOR_IN_CHANNELS, base_channels)
        self.temporal_encoder = SpatialEncoder(GENERATOR_IN_CHANNELS, base_channels)
        self.attention = TemporalAttention(c)
        self.fuse = _conv(2 * c, c, k=1)
        self.decoder = nn.Sequential(
            _conv(c, c),
            nn.Upsample(scale_factor=2, mode="nearest"),
            _conv(c, 2 * base_channels),
            nn.Upsample(scale_factor=2, mode="nearest"),
            _conv(2 * base_channels, base_channels),
            nn.Conv2d(base_channels, RGB, 3, padding=1),
            nn.Tanh(),
        )
        # blend of pasted and decoded pixels, from the decoder's last features (paste only)
        self.gate = nn.Conv2d(base_channels, 1, 3, padding=1) if paste else None

    def forward(
        self,
        frame: torch.Tensor,
        mask: torch.Tensor,
        neighbours: torch.Tensor,
        neighbour_mask: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        b, _, h, w = frame.shape
        if h % 4 or w % 4:
            raise ValueError(f"STCGenerator needs H and W divisible by 4, got {h}x{w}")
        if neighbours.dim() != 5 or neighbours.shape[0] != b or neighbours.shape[-2:] != (h, w):
            raise ValueError(
                f"neighbours must be [B={b}, M, 3, {h}, {w}], got {tuple(neighbours.shape)}"
            )
        m = neighbours.shape[1]
        target_in = torch.cat([frame * (1 - mask), mask], dim=1)  # [B, 4, H, W]
        spatial = self.spatial(target_in)  # [B, C, H/4, W/4]
        nb_in = torch.cat([neighbours * (1 - neighbour_mask), neighbour_mask], dim=2)
        nb_feat = self.temporal_encoder(nb_in.flatten(0, 1))  # [B*M, C, H/4, W/4]
        nb_feat = nb_feat.reshape(b, m, *nb_feat.shape[1:])  # [B, M, C, H/4, W/4]
        nb_visible = 1 - F.adaptive_max_pool2d(neighbour_mask.flatten(0, 1), nb_feat.shape[-2:])
        nb_visible = nb_visible.reshape(b, m, 1, *nb_feat.shape[-2:])  # [B, M, 1, h, w]
        temporal, attn = self.attention(spatial, nb_feat, nb_visible)  # [B, C, h, w]
        features = self.decoder[:-2](self.fuse(torch.cat([spatial, temporal], dim=1)))
        raw = self.decoder[-2:](features)  # [B, 3, H, W]
        if self.gate is not None:
            pasted = paste_patches(attn, neighbours * (1 - neighbour_mask))  # [B, 3, H, W]
            any_visible = (nb_visible.flatten(1).amax(1) > 0).to(raw.dtype).view(b, 1, 1, 1)
            g = torch.sigmoid(self.gate(features)) * any_visible  # [B, 1, H, W]
            raw = g * pasted.to(raw.dtype) + (1 - g) * raw
        completed = mask * raw + (1 - mask) * frame  # unmasked pixels pass through unchanged
        return {"completed": completed, "raw": raw, "attention": attn}


# ----------------------------------------------------------------------------- discriminators
def _disc_stack(stages: int, base: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    in_ch = RGB
    for i in range(stages):
        out_ch = base * 2 ** i
        layers += [spectral_norm(nn.Conv2d(in_ch, out_ch, 4, stride=2, padding=1)),
                   nn.LeakyReLU(LEAKY_SLOPE, inplace=True)]
        in_ch = out_ch
    layers += [spectral_norm(nn.Conv2d(in_ch, 1, 3, padding=1))]
    return nn.Sequential(*layers)


class _PatchDiscriminator(nn.Module):
    """``[N, 3, H, W] -> [N]`` real/fake logits (mean of a patch map)."""

    stages: int

    def __init__(self, base_channels: int = DISCRIMINATOR_BASE_CHANNELS) -> None:
        super().__init__()
        self.net = _disc_stack(self.stages, base_channels)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        min_side = 2 ** self.stages
        if images.dim() != 4 or min(images.shape[-2:]) < min_side:
            raise ValueError(f"{type(self).__name__} expects [N, 3, H, W] with H, W >= "
                             f"{min_side}, got {tuple(images.shape)}")
        return self.net(images).mean(dim=(1, 2, 3))  # [N]


class LocalDiscriminator(_PatchDiscriminator):
    """Judges the completed region alone (the crop of the hole): local consistency."""

    stages = LOCAL_DISCRIMINATOR_STAGES


class GlobalDiscriminator(_PatchDiscriminator):
    """Judges the whole completed frame: global coherence of the completion with its frame."""

    stages = GLOBAL_DISCRIMINATOR_STAGES


# ----------------------------------------------------------------------------- ID guider
class IDGuider(nn.Module):
    """The ID guider: the (frozen) re-ID network's identity loss on completed frames, so that
    a completion keeps the person's identity.

    ``forward(images [N, 3, H, W] in [-1, 1], pids [N]) -> CE`` (scalar). Frames are mapped to
    the re-ID network's normalisation (and resized to its input ``size`` when given, so a
    generator working at a smaller size is judged by the network as trained) and fed as
    one-frame clips; the network stays in eval mode with ``requires_grad=False`` (gradients
    flow to the images only).
    """

    def __init__(
        self,
        reid: VideoBaseline,
        mean: Sequence[float],
        std: Sequence[float],
        size: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        self.size = tuple(size) if size is not None else None
        self.reid = reid.eval().requires_grad_(False)
        self.register_buffer("mean", torch.tensor(mean).view(1, RGB, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, RGB, 1, 1))

    def train(self, mode: bool = True) -> IDGuider:
        super().train(mode)
        self.reid.eval()  # frozen: BN statistics and dropout stay in inference mode
        return self

    def forward(self, images: torch.Tensor, pids: torch.Tensor) -> torch.Tensor:
        if self.size is not None and tuple(images.shape[-2:]) != self.size:
            images = F.interpolate(images, size=self.size, mode="bilinear", align_corners=False)
        x = ((images + 1) / 2 - self.mean) / self.std  # [-1, 1] -> re-ID normalisation
        logits = classifier_logits(self.reid, x.unsqueeze(1))  # [N, K]
        return F.cross_entropy(logits, pids)
