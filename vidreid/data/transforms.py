"""Clip-consistent spatial transforms: one random crop / flip / erasing for all T frames.

Built on ``torchvision.transforms.v2``: a v2 transform called on a ``[T, C, H, W]`` video
tensor samples its random parameters once per call and applies them to every frame (the
leading T axis is treated like a batch of identical geometry). So a clip stays spatially
coherent, which frame-wise transforms (the original Video-Person-ReID code) do not give.

``per_frame=True`` draws the random parameters for every frame independently instead, as
the authors' frame-wise transforms do: COSAM's loader calls ``Random2DTranslation`` and
``RandomHorizontalFlip`` once per image (InnovArul/vidreid_cosegmentation
``src/video_loader.py:61-66``, ``src/main_video_person_reid.py:126-131``), so each frame of a
snippet gets its own translation and flip.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Random2DTranslation (Video-Person-ReID / COSAM): with probability 1/2 enlarge the frame by
# 1/8 and take a random crop of the target size; otherwise just resize.
TRANSLATE_SCALE = 1.125
TRANSLATE_PROB = 0.5
FLIP_PROB = 0.5


class ClipTransform:
    """Applies a v2 pipeline to a uint8 ``[T, 3, H, W]`` clip; returns a plain float tensor.

    Picklable, so it works inside DataLoader worker processes.
    """

    def __init__(self, pipeline: v2.Transform, per_frame: bool = False) -> None:
        self.pipeline = pipeline
        self.per_frame = per_frame

    def __call__(self, clip: torch.Tensor) -> torch.Tensor:
        if clip.ndim != 4 or clip.shape[1] != 3:
            raise ValueError(f"expected a clip of shape [T, 3, H, W], got {tuple(clip.shape)}")
        if clip.dtype != torch.uint8:
            raise ValueError(f"expected a uint8 clip (as read_frames returns), got {clip.dtype}")
        if self.per_frame:  # new random parameters for every frame (the authors' COSAM)
            return torch.cat([
                self.pipeline(tv_tensors.Video(frame)).as_subclass(torch.Tensor)
                for frame in clip.split(1)
            ])
        out = self.pipeline(tv_tensors.Video(clip))
        return out.as_subclass(torch.Tensor)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.pipeline!r}, per_frame={self.per_frame})"


def build_transforms(
    height: int,
    width: int,
    *,
    train: bool,
    random_crop: bool = False,
    pad: int = 10,
    translate: bool = False,
    flip: bool = True,
    erasing_prob: float = 0.0,
    resize_crop: tuple[int, int] | None = None,
    per_frame: bool = False,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> Callable[[torch.Tensor], torch.Tensor]:
    """uint8 ``[T, 3, H, W]`` clip -> normalised float ``[T, 3, height, width]``.

    Train-only augmentations (each the same for every frame of a clip):
    ``random_crop``: zero-pad by ``pad`` pixels then random crop back (BoT / fastreid);
    ``translate``: Random2DTranslation (enlarge by 1/8 with p=0.5, random crop; COSAM);
    ``flip``: horizontal flip with p=0.5; ``erasing_prob``: random erasing of one rectangle,
    filled with 0 after normalisation, i.e. the mean pixel.
    ``resize_crop=(h0, w0)``: resize to h0 x w0 then random crop (train) or centre crop
    (test) to height x width (the attribute paper's recipe); otherwise resize directly.
    At test time only the resizing / centre crop and normalisation are applied.
    ``per_frame``: draw the random augmentations for every frame independently (the
    frame-wise transforms of COSAM's code) instead of once per clip (ours).
    """
    if height < 1 or width < 1:
        raise ValueError(f"height and width must be positive, got {height}x{width}")
    if not 0.0 <= erasing_prob <= 1.0:
        raise ValueError(f"erasing_prob must be in [0, 1], got {erasing_prob}")
    if resize_crop is not None:
        if resize_crop[0] < height or resize_crop[1] < width:
            raise ValueError(
                f"resize_crop {tuple(resize_crop)} must be at least the output size "
                f"{height}x{width}"
            )
    size = [height, width]
    steps: list[v2.Transform] = []
    if resize_crop is not None:
        steps.append(v2.Resize(list(resize_crop), antialias=True))
        steps.append(v2.RandomCrop(size) if train else v2.CenterCrop(size))
    elif train and translate:
        enlarged = [round(height * TRANSLATE_SCALE), round(width * TRANSLATE_SCALE)]
        steps.append(
            v2.RandomApply(
                [v2.Resize(enlarged, antialias=True), v2.RandomCrop(size)], p=TRANSLATE_PROB
            )
        )
        steps.append(v2.Resize(size, antialias=True))  # no-op when the crop was taken
    else:
        steps.append(v2.Resize(size, antialias=True))
    if train:
        if random_crop:
            steps.append(v2.RandomCrop(size, padding=pad))
        if flip:
            steps.append(v2.RandomHorizontalFlip(p=FLIP_PROB))
    steps.append(v2.ToDtype(torch.float32, scale=True))
    steps.append(v2.Normalize(mean=list(mean), std=list(std)))
    if train and erasing_prob > 0:
        steps.append(v2.RandomErasing(p=erasing_prob, value=0))
    return ClipTransform(v2.Compose(steps), per_frame=train and per_frame)
