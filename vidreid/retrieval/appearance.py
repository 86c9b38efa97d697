"""The tracker's default appearance encoder: what keeps two people out of one track, fast.

The tracker needs appearance to tell apart the few people near one box, many times per
frame; not a re-ID descriptor. The default encoder joins two cheap cues, each L2-normalised
and weighted equally (so a cosine distance is the mean of the two cues' distances):

- **CNN stripes**: the ImageNet MobileNetV2 (the weights shipped with vidreid, as the
  ``imagenet`` model) up to its stride-8 stage (``layer2``, 32 channels) on the crop at
  128 x 64, average-pooled into ``CNN_STRIPES`` horizontal stripes (head to feet);
- **colour**: HSV histograms (``HIST_BINS`` bins, square-rooted: Hellinger) of
  ``HIST_STRIPES`` horizontal stripes (upper and lower body) of the crop at 64 x 32.

Why these and not the network's last layer (global average pooled, 1280-d): measured on
vtest.avi (1064 boxes of 200 frames; same person = a box matched across consecutive frames
at IoU >= 0.7, 353 pairs; different people = two boxes side by side in one frame, 91 pairs;
``benchmarks/ingest_real.py --encoder-sizes`` repeats it), the last layer's GAP gives ROC AUC
0.986 and 8% of the different-people pairs closer than the 95th percentile of same-person
pairs: people walking side by side in dark clothes swap tracks. The stride-8 stripes give
AUC 0.997, the colour stripes 1.000, the two joined 0.9998 (same person: 50th / 95th / 99th
percentile 0.044 / 0.096 / 0.127; different people: 1st / 5th 0.132 / 0.155), at 0.8 + 0.07
CPU ms per crop instead of 1.5 (the network stops at a quarter of its depth). Layout (the
stripes) is what tells "red top, dark trousers" from "dark coat, jeans". Colour alone is
fragile under lighting changes and between people dressed alike, hence both.

The tracker's thresholds are in this encoder's distance, so the encoder carries them
(``TRACK_GATE``, ``MAX_JUMP``, ``MAX_OUTLIER``, ``MAX_LOWER_BODY_OUTLIER``; ``vidreid
ingest`` uses them unless told otherwise). BatchNorm is folded into the convolutions
(``torch.fx.experimental.optimization.fuse``), bf16 where the CPU has native bf16 (AMX /
AVX512-BF16), channels_last, ``torch.inference_mode``; all crops of a batch of frames go
in one call.

A trained re-ID model (``vidreid ingest --model RUN``) goes through
:class:`~vidreid.retrieval.ingest_commands.CropEncoder` instead.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

log = logging.getLogger(__name__)

#: Crop size (H, W) for the network (the re-ID crop shape).
DEFAULT_SIZE = (128, 64)
#: Horizontal stripes the stride-8 feature map is pooled into.
CNN_STRIPES = 4
#: Crop size (H, W) and stripes of the colour histograms; bins of H, S, V.
HIST_SIZE = (64, 32)
HIST_STRIPES = 2
HIST_BINS = (8, 4, 4)
#: ImageNet normalisation of torchvision's MobileNetV2.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ImageNetCropEncoder:
    """``encoder(crops) -> [N, D]`` float32, unit norm: CNN stripes + colour histograms of RGB
    uint8 crops of any size (see the module docstring).

    Args:
        size: network input (H, W) of every crop.
        precision: ``"bf16"``, ``"fp32"`` or ``"auto"`` (bf16 where the CPU runs it natively).
        weights: a MobileNetV2 ImageNet weights file (default: the one shipped with vidreid).
    """

    #: Thresholds of this encoder's cosine distance (see the module docstring's figures):
    #: a box never joins a track whose mean appearance is farther (between same-person
    #: 99th and different-people 5th percentiles) ...
    TRACK_GATE = 0.15
    #: ... a track is cut where the mean appearance of the crops before and after differ by
    #: more (means of several crops vary less than single crops) ...
    MAX_JUMP = 0.08
    #: ... and a crop farther than this from its tracklet's mean appearance is left out
    #: (a crop is closer to its own tracklet's mean than to another single crop). On the
    #: whole of vtest.avi, 0.08 / 0.1 (jump / outlier) left fewer crops of a second person
    #: at tracklet ends on the contact sheets than 0.1 / 0.12, for 72 tracklets instead of 74.
    MAX_OUTLIER = 0.1
    #: A crop whose lower-body colour (:meth:`lower_body`) is farther than this from its
    #: tracklet's median is left out, the tracklet not split (``cut_tracklets``'
    #: ``max_part_outlier``): someone walking in front of the person, nearer the camera, fills
    #: the lower half of the box while the upper half still shows the person, and the
    #: detector's box may be centred on them. Set on vtest.avi, the only real footage here
    #: (issue 16; ``benchmarks/results/ingest_real.md``): the 4 such detections in tracklets
    #: were 0.135-0.186 from their tracklets' median, the 98th percentile of all 789 is 0.126;
    #: at 0.12 it left out 22 (the 4, and mostly crops with a traffic cone or a bollard at
    #: the legs). Not checked on other footage.
    MAX_LOWER_BODY_OUTLIER = 0.12

    def __init__(self, size: tuple[int, int] = DEFAULT_SIZE, precision: str = "auto",
                 weights: str | None = None) -> None:
        import torch.fx.experimental.optimization as fx_opt

        from vidreid.engine.precision import cpu_has_native_bf16
        from vidreid.models import build_backbone
        from vidreid.models.backbones.weights import imagenet_weights_path

        if len(size) != 2 or min(size) < 16:
            raise ValueError(f"appearance encoder: size must be (H, W) >= 16, got {size}")
        if precision not in ("auto", "bf16", "fp32"):
            raise ValueError(f"appearance encoder: precision must be auto, bf16 or fp32, got "
                             f"{precision!r}")
        self.size = (int(size[0]), int(size[1]))
        self.weights = weights or imagenet_weights_path("mobilenetv2")
        backbone = build_backbone("mobilenetv2", weights=self.weights, last_stride=2).eval()
        net = torch.nn.Sequential(backbone.stem, backbone.layer1, backbone.layer2)
        net = fx_opt.fuse(net)  # Conv + BatchNorm -> Conv (eval mode)
        if precision == "auto":
            precision = "bf16" if cpu_has_native_bf16() else "fp32"
        self.precision = precision
        self.dtype = torch.bfloat16 if precision == "bf16" else torch.float32
        self.net = net.to(memory_format=torch.channels_last).to(self.dtype)
        channels = backbone.stage_channels[backbone.stage_names.index("layer2")]
        self.feature_dim = channels * CNN_STRIPES + int(np.prod(HIST_BINS)) * HIST_STRIPES
        self._mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255.0
        self._std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255.0

    @staticmethod
    def lower_body(embeddings: np.ndarray) -> np.ndarray:
        """The lower-body colour histogram (the last colour stripe) of embeddings of this
        encoder, ``[N, D]`` -> ``[N, bins]``, unit norm."""
        bins = int(np.prod(HIST_BINS))
        part = np.asarray(embeddings, np.float32)[:, -bins:]
        return part / np.maximum(np.linalg.norm(part, axis=1, keepdims=True), 1e-12)

    @property
    def identity(self) -> str:
        """What changes the embeddings (for resuming an ingest)."""
        return (f"imagenet-mobilenetv2-layer2x{CNN_STRIPES}+hsv{HIST_STRIPES}:"
                f"{self.size[0]}x{self.size[1]}:{self.precision}")

    def preprocess(self, crops: list[np.ndarray]) -> torch.Tensor:
        """RGB uint8 crops -> ``[N, 3, H, W]`` normalised, channels_last, in the net's dtype."""
        import cv2

        h, w = self.size
        batch = np.empty((len(crops), h, w, 3), np.uint8)
        for i, c in enumerate(crops):
            interp = cv2.INTER_AREA if c.shape[0] > h else cv2.INTER_LINEAR
            batch[i] = cv2.resize(c, (w, h), interpolation=interp)
        x = torch.from_numpy(batch).permute(0, 3, 1, 2).float()
        x = ((x - self._mean) / self._std).contiguous(memory_format=torch.channels_last)
        return x.to(self.dtype)

    @staticmethod
    def colour(crop: np.ndarray) -> np.ndarray:
        """Square-rooted HSV histograms of the crop's horizontal stripes, unit norm."""
        import cv2

        hsv = cv2.cvtColor(cv2.resize(crop, HIST_SIZE[::-1], interpolation=cv2.INTER_AREA),
                           cv2.COLOR_RGB2HSV)
        parts = []
        for rows in np.array_split(np.arange(HIST_SIZE[0]), HIST_STRIPES):
            hist = cv2.calcHist([np.ascontiguousarray(hsv[rows])], [0, 1, 2], None,
                                list(HIST_BINS), [0, 180, 0, 256, 0, 256]).ravel()
            parts.append(np.sqrt(hist / max(hist.sum(), 1.0)))
        v = np.concatenate(parts)
        return v / max(float(np.linalg.norm(v)), 1e-12)

    @torch.inference_mode()
    def __call__(self, crops: list[np.ndarray]) -> np.ndarray:
        if not crops:
            return np.zeros((0, self.feature_dim), np.float32)
        maps = self.net(self.preprocess(crops)).float()
        cnn = torch.nn.functional.adaptive_avg_pool2d(maps, (CNN_STRIPES, 1)).flatten(1)
        cnn = torch.nn.functional.normalize(cnn, dim=1).numpy()
        colour = np.stack([self.colour(c) for c in crops])
        return (np.concatenate([cnn, colour], 1) / np.sqrt(2.0)).astype(np.float32)


def imagenet_crop_encoder(size: tuple[int, int] = DEFAULT_SIZE,
                          **options: Any) -> tuple[ImageNetCropEncoder, str]:
    """The default tracker encoder and its identity (see :class:`ImageNetCropEncoder`)."""
    enc = ImageNetCropEncoder(size, **options)
    return enc, enc.identity
