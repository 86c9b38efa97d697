"""Attribute-driven feature disentangling and temporal aggregation (Zhao et al., CVPR 2019).

"Attribute-Driven Feature Disentangling and Temporal Aggregation for Video Person
Re-Identification" (Zhao, Shen, Jin, Lu, Chi). No public code exists; this follows the
paper's description (methods.md section 4):

1. **Feature disentangling.** A frame CNN gives a frame vector ``f_t`` ``[C]`` (GAP of the
   last map). It is split into ``K`` *sub-features*, one per semantic attribute group
   (``groups: synth``, the synthetic renderer's: ``body`` = gender/build/height/skin,
   ``head``, ``upper``, ``lower``, ``accessories``; ``groups: mars``, MARS-Attribute's
   columns: ``body`` = gender/Age, ``head`` = hat/hair, ``upper`` = Tops.c/Tops.l,
   ``lower`` = Bottoms.c/Bottoms.l/Bottoms.t, ``accessories`` = bags): ``s_{t,k} = ReLU(BN(W_k f_t))`` ``[d]``.
2. **Attribute recognition.** Each group has one linear classifier per attribute of the
   group on its own sub-feature, per frame (``p_{t,a} = softmax(V_a s_{t,k})``), trained by
   the attribute loss (:mod:`vidreid.losses.attribute`) with the identity's labels.
3. **Temporal aggregation.** The confidence of group ``k`` on frame ``t`` is
   ``c_{t,k} = mean_{a in k} (1 - H(p_{t,a}) / log n_a)`` in [0, 1] (1: one value certain,
   0: uniform); the frame weights are ``w_{t,k} = c_{t,k} / sum_t c_{t,k}`` (each in [0, 1],
   summing to 1 over time) and the group's clip feature is ``sum_t w_{t,k} s_{t,k}``.
   A frame where a group's attributes are not recognisable (e.g. its body part occluded)
   therefore counts less for that group only.
4. **Representation.** ``[g ; a_1 ; ... ; a_K]`` where ``g`` is the global feature (temporal
   average of ``f_t``); identity losses (label-smoothed CE through a BNNeck + batch-hard
   triplet) act on it, the BN'd vector is the test descriptor.

**Our choices (the paper is silent or we depart):** the sub-feature branch is a linear layer
on the GAP'd frame vector (equal to a 1x1 conv before GAP, up to the BN / ReLU order) with
``group_dim = 256``; the confidence is one minus the normalised entropy (the paper says
"confidence of attribute recognition" without a formula); the weights are normalised by
their sum with a small epsilon (uniform when no frame is confident); by default the
confidence is detached (``detach_confidence``) so the identity loss cannot make the
attribute classifiers over-confident: the weights learn only through the attribute loss;
the global feature is temporal average pooling; the BNNeck is the project's baseline neck.

Outputs: ``features`` ``[B, C + K*d]``, ``logits`` (training), ``attr_logits``
``[B, T, A]`` (every attribute's per-frame logits concatenated in group order; always
returned, so attribute recognition can be evaluated). ``return_extras=True`` adds
``extras["temporal_weights"]`` ``[B, K, T]``, ``extras["temporal_weight_labels"]`` (the
group names), ``extras["group_confidence"]`` ``[B, K, T]`` and ``extras["attr_probs"]``
``[B, A]`` (per attribute, the group-weighted mean over time of the frame probabilities).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from vidreid.data.attributes import attribute_groups
from vidreid.models import MODELS, build_backbone
from vidreid.models.base import VideoReIDModel
from vidreid.models.baseline import VideoBaseline
from vidreid.models.bnneck import BNNeck

GROUP_DIM = 256  # d: width of each group's sub-feature (our choice)
CONFIDENCE_EPS = 1e-6  # keeps the weights defined (uniform) when no frame is confident


def attribute_confidence(logits: torch.Tensor) -> torch.Tensor:
    """Recognition confidence ``1 - H(softmax(logits)) / log(n)`` over the last axis, in [0, 1]."""
    n = logits.shape[-1]
    logp = F.log_softmax(logits.float(), dim=-1)
    entropy = -(logp.exp() * logp).sum(dim=-1)
    return (1.0 - entropy / math.log(n)).clamp(0.0, 1.0)


class SubFeatureBranch(nn.Module):
    """Disentangling of one attribute group: frame vectors ``[N, C] -> [N, d]``."""

    def __init__(self, in_dim: int, group_dim: int) -> None:
        super().__init__()
        self.fc = nn.Linear(in_dim, group_dim, bias=False)
        self.bn = nn.BatchNorm1d(group_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.fc(x)))


class AttributeClassifiers(nn.Module):
    """One linear classifier per attribute of a group: ``[..., d] -> [..., sum n_a]``."""

    def __init__(self, group_dim: int, sizes: Sequence[int]) -> None:
        super().__init__()
        self.sizes = tuple(int(n) for n in sizes)
        self.fc = nn.Linear(group_dim, sum(self.sizes))  # the classifiers side by side

    def forward(self, sub: torch.Tensor) -> torch.Tensor:
        return self.fc(sub)


class ConfidenceTemporalAggregation(nn.Module):
    """Weights frames by the group's attribute confidence and sums over time.

    ``forward(sub [B, T, d], logits [B, T, sum n_a], sizes)`` returns the group's clip feature
    ``[B, d]``, the weights ``w [B, T]`` (in [0, 1], summing to 1 over T) and the per-frame
    confidence ``c [B, T]``.
    """

    def __init__(self, detach_confidence: bool = True) -> None:
        super().__init__()
        self.detach_confidence = detach_confidence

    def forward(
        self, sub: torch.Tensor, logits: torch.Tensor, sizes: Sequence[int]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.detach_confidence:
            logits = logits.detach()
        per_attr = [attribute_confidence(z) for z in logits.split(list(sizes), dim=-1)]
        conf = torch.stack(per_attr, dim=-1).mean(dim=-1)  # [B, T]
        score = conf + CONFIDENCE_EPS
        weights = score / score.sum(dim=1, keepdim=True)  # [B, T]
        feat = (sub * weights.unsqueeze(-1).to(sub.dtype)).sum(dim=1)  # [B, d]
        return feat, weights, conf


@MODELS.register("attribute")
class AttributeDrivenReID(VideoReIDModel):
    """Frame CNN -> global + K attribute-group sub-features -> confidence-weighted pooling.

    Args:
        num_classes: training identities.
        backbone, weights, last_stride: the frame CNN (a registered backbone, its local
            pretrained file, layer4 stride).
        groups: group name -> its attributes, or a named set: ``"synth"`` (the renderer's
            five groups, the default) or ``"mars"`` (MARS-Attribute's columns in five groups,
            :data:`vidreid.data.attributes.MARS_ATTRIBUTE_GROUPS`).
        attribute_values: attribute -> its values in code order (default: the renderer's
            vocabularies); only the number of values matters to the model.
        group_dim: width ``d`` of each sub-feature.
        detach_confidence: stop the identity loss's gradient through the weights.
        neck_feat: BNNeck test feature, ``"after"`` or ``"before"`` BN.
        frame_chunk: backbone frames per pass (memory bound at test time).
    """

    frame_maps = VideoBaseline.frame_maps  # [B, T, 3, H, W] -> [B, T, C, h, w], chunked

    def __init__(
        self,
        num_classes: int,
        backbone: str = "resnet50",
        weights: str | None = None,
        last_stride: int = 1,
        groups: Mapping[str, Sequence[str]] | str | None = None,
        attribute_values: Mapping[str, Sequence[str]] | None = None,
        group_dim: int = GROUP_DIM,
        detach_confidence: bool = True,
        neck_feat: str = "after",
        frame_chunk: int | None = None,
    ) -> None:
        super().__init__()
        if group_dim < 1:
            raise ValueError(f"group_dim must be positive, got {group_dim}")
        if frame_chunk is not None and frame_chunk < 1:
            raise ValueError(f"frame_chunk must be a positive number of frames, got {frame_chunk}")
        self.groups, values = attribute_groups(groups, attribute_values)
        self.group_names = list(self.groups)
        self.attribute_names = list(values)  # order of attr_logits / attr_probs
        self.attribute_sizes = [len(values[a]) for a in self.attribute_names]
        self.num_classes = num_classes
        self.frame_chunk = frame_chunk
        self.backbone = build_backbone(backbone, weights=weights, last_stride=last_stride)
        channels = self.backbone.out_channels  # C
        self.branches = nn.ModuleDict(
            {g: SubFeatureBranch(channels, group_dim) for g in self.group_names})
        self.classifiers = nn.ModuleDict({
            g: AttributeClassifiers(group_dim, [len(values[a]) for a in attrs])
            for g, attrs in self.groups.items()
        })
        self.aggregation = ConfidenceTemporalAggregation(detach_confidence)
        self.feature_dim = channels + len(self.group_names) * group_dim
        self.neck = BNNeck(self.feature_dim, num_classes, neck_feat)

    def forward(self, clips: torch.Tensor, return_extras: bool = False) -> dict[str, torch.Tensor]:
        frames = self.frame_maps(clips).mean(dim=(3, 4))  # f_t: [B, T, C]
        return self.temporal_head(frames, return_extras)

    def can_encode_frames(self) -> bool:
        """Frames are encoded independently; the groups' temporal weighting mixes them."""
        return True

    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """``[N, 3, H, W] -> [N, C]``: backbone + GAP per frame."""
        return self.frame_maps(frames.unsqueeze(1)).mean(dim=(3, 4)).squeeze(1)

    def aggregate(self, frame_feats: torch.Tensor) -> torch.Tensor:
        """``[B, T, C] -> [B, D]``: the eval-mode descriptor from per-frame features."""
        return self.temporal_head(frame_feats)["features"]

    def temporal_head(
        self, frames: torch.Tensor, return_extras: bool = False
    ) -> dict[str, torch.Tensor]:
        """Frame features ``[B, T, C]`` -> sub-features, attribute logits, weighted pooling."""
        b, t = frames.shape[:2]
        global_feat = frames.mean(dim=1)  # g: [B, C]
        flat = frames.flatten(0, 1)  # [B*T, C]
        parts, weights, confs, logits_all, probs = [], [], [], [], []
        for g in self.group_names:
            sub = self.branches[g](flat).reshape(b, t, -1)  # s_{t,k}: [B, T, d]
            head = self.classifiers[g]
            logits = head(sub)  # [B, T, sum n_a]
            feat, w, c = self.aggregation(sub, logits, head.sizes)  # [B, d], [B, T], [B, T]
            parts.append(feat)
            weights.append(w)
            confs.append(c)
            logits_all.append(logits)
            if return_extras:
                p = torch.cat([z.float().softmax(-1) for z in logits.split(head.sizes, -1)], -1)
                probs.append((p * w.unsqueeze(-1)).sum(dim=1))  # [B, sum n_a]
        out = self.neck(torch.cat([global_feat, *parts], dim=1))  # [B, C + K*d]
        out["attr_logits"] = torch.cat(logits_all, dim=-1)  # [B, T, A]
        if return_extras:
            out["extras"] = {
                "temporal_weights": torch.stack(weights, dim=1),  # [B, K, T]
                "temporal_weight_labels": list(self.group_names),
                "group_confidence": torch.stack(confs, dim=1),  # [B, K, T]
                "attr_probs": torch.cat(probs, dim=-1),  # [B, A]
            }
        return out
