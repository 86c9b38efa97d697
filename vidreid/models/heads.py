"""Temporal heads: frame feature maps ``[B, T, C, h, w]`` -> clip descriptor ``[B, D]``.

The baselines compared by Gao & Nevatia, "Revisiting Temporal Modeling for Video-based
Person ReID" (2018): temporal average pooling (``tp``), temporal max pooling (``tmp``),
temporal attention (``ta``) and an RNN (``rnn``). Every head works for any ``T >= 1``; a head
called with ``return_extras=True`` returns ``(descriptor, extras)`` where ``extras`` holds its
interpretable tensors (e.g. attention weights), otherwise just the descriptor.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vidreid.models import HEADS

# Gao & Nevatia's TA: 2048 -> 256 spatial conv whose 7x4 kernel spans the whole layer4 map
# of a 224x112 input (last stride 2).
TA_MIDDLE_DIM = 256
TA_SPATIAL_GRID = (7, 4)
TA_TEMPORAL_KERNEL = 3
RNN_HIDDEN_DIM = 512


class TemporalHead(nn.Module):
    """Base class: subclasses set ``out_dim`` and implement :meth:`aggregate`."""

    out_dim: int

    def aggregate(self, fmaps: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError

    def summarize_frames(self, maps: torch.Tensor) -> torch.Tensor:
        """The smallest per-frame input the head gives the same result from.

        ``[N, C, h, w] -> [N, C, h', w']``; the identity here, the GAP (1x1 maps) for heads
        that only see GAP'd frames. Lets an extractor keep frame features compact.
        """
        return maps

    def forward(
        self, fmaps: torch.Tensor, return_extras: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if fmaps.dim() != 5:
            raise ValueError(
                f"{type(self).__name__} expects frame maps [B, T, C, h, w], "
                f"got shape {tuple(fmaps.shape)}"
            )
        feats, extras = self.aggregate(fmaps)
        return (feats, extras) if return_extras else feats


def frame_vectors(fmaps: torch.Tensor) -> torch.Tensor:
    """Global average pooling of each frame: ``[B, T, C, h, w] -> [B, T, C]``."""
    return fmaps.mean(dim=(3, 4))


class PooledFramesHead(TemporalHead):
    """A head that only sees GAP'd frames: 1x1 frame maps are enough input."""

    def summarize_frames(self, maps: torch.Tensor) -> torch.Tensor:
        return maps.mean(dim=(2, 3), keepdim=True)  # [N, C, h, w] -> [N, C, 1, 1]


@HEADS.register("tp")
class TemporalAvgPool(PooledFramesHead):
    """TP: mean over time of the GAP'd frame features."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.out_dim = in_channels

    def aggregate(self, fmaps: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return frame_vectors(fmaps).mean(dim=1), {}  # [B, C]


@HEADS.register("tmp")
class TemporalMaxPool(PooledFramesHead):
    """TMP: element-wise max over time of the GAP'd frame features."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.out_dim = in_channels

    def aggregate(self, fmaps: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return frame_vectors(fmaps).amax(dim=1), {}  # [B, C]


@HEADS.register("ta")
class TemporalAttention(TemporalHead):
    """TA: attention-weighted mean over time (Gao & Nevatia 2018).

    Per frame, a spatial conv (``in_channels -> middle_dim``, kernel = the whole 7x4 map) and
    ReLU give a vector; a temporal conv1d (``middle_dim -> 1``, kernel 3) over the T vectors
    and ReLU give a score per frame; ``softmax`` over T gives the weights ``a [B, T]``
    (or ``sigmoid`` then L1-normalisation with ``att_gen="sigmoid"``, their other option);
    the descriptor is ``sum_t a_t * GAP(frame_t)``.

    Their 7x4 kernel ties the layer to a 224x112 input; ours first average-pools the map
    to the 7x4 grid (``spatial_grid``), which is the identity at their resolution and lets
    any resolution through. Returned extras: ``temporal_attention`` ``[B, T]``.
    """

    def __init__(
        self,
        in_channels: int,
        middle_dim: int = TA_MIDDLE_DIM,
        spatial_grid: tuple[int, int] = TA_SPATIAL_GRID,
        att_gen: str = "softmax",
    ) -> None:
        super().__init__()
        if att_gen not in ("softmax", "sigmoid"):
            raise ValueError(f"att_gen must be 'softmax' or 'sigmoid', got {att_gen!r}")
        self.out_dim = in_channels
        self.spatial_grid = tuple(spatial_grid)
        self.att_gen = att_gen
        self.spatial_conv = nn.Conv2d(in_channels, middle_dim, kernel_size=self.spatial_grid)
        self.temporal_conv = nn.Conv1d(
            middle_dim, 1, kernel_size=TA_TEMPORAL_KERNEL, padding=TA_TEMPORAL_KERNEL // 2
        )

    def aggregate(self, fmaps: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        b, t = fmaps.shape[:2]
        grid = F.adaptive_avg_pool2d(fmaps.flatten(0, 1), self.spatial_grid)  # [BT, C, 7, 4]
        a = F.relu(self.spatial_conv(grid)).reshape(b, t, -1)  # [B, T, middle]
        a = F.relu(self.temporal_conv(a.transpose(1, 2))).reshape(b, t)  # [B, T]
        if self.att_gen == "softmax":
            a = F.softmax(a, dim=1)
        else:
            a = F.normalize(torch.sigmoid(a), p=1, dim=1)
        feats = (frame_vectors(fmaps) * a.unsqueeze(-1)).sum(dim=1)  # [B, C]
        return feats, {"temporal_attention": a}


@HEADS.register("rnn")
class TemporalRNN(PooledFramesHead):
    """RNN: an LSTM over the GAP'd frame features, outputs averaged over time (Gao & Nevatia)."""

    def __init__(
        self, in_channels: int, hidden_dim: int = RNN_HIDDEN_DIM, num_layers: int = 1
    ) -> None:
        super().__init__()
        self.out_dim = hidden_dim
        self.lstm = nn.LSTM(in_channels, hidden_dim, num_layers=num_layers, batch_first=True)

    def aggregate(self, fmaps: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        outputs, _ = self.lstm(frame_vectors(fmaps))  # [B, T, hidden]
        return outputs.mean(dim=1), {}  # [B, hidden]
