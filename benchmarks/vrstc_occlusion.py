"""VRSTC on ``synth-occluded``: occlusion detection, completion quality, re-ID raw vs completed.

    .venv/bin/python benchmarks/vrstc_occlusion.py [--reid-run RUN] [--stc-steps N]
        [--epochs N] [--tau T] [--seeds 1,2,3] [--out FILE.md]
    .venv/bin/python benchmarks/vrstc_occlusion.py --memory mars [--memory-steps 20]

The second form is the memory check alone (``--memory smoke`` checks the script): peak RSS
of ``vidreid vrstc train-stc`` and ``vidreid vrstc complete`` with the MARS configs on a
MARS-scale synthetic set (625 training identities, 6 cameras, tracklets up to 400 frames,
256x128), which must stay under 6 GB. It generates that set first (hours, tens of GB).
``--memory mars-peak`` is the CPU-affordable version: every tracklet at the 400-frame cap,
256x128, 6 identities: the per-tracklet and per-step peaks of MARS scale (the longest
tracklet's locator pass, the training / completion batches), not its identity count.
``--memory-complete-only STC_PT [--memory-tracklets N]`` measures ``complete`` alone with an
STCnet checkpoint of the MARS config and every stripe flagged (every frame goes through the
generator), ended after N tracklets (a tracklet costs minutes of CPU at 256x128).

About 8 minutes on 2 CPU cores (re-ID ~1.3 min twice, STCnet 300 steps ~4 min). STCnet
works at 64x32 (``configs/vrstc/stc/synth.yaml``); the locator and the ID guider see 128x64.

``synth-occluded`` (``benchmarks/accuracy.py``) is the synthetic MARS layout with an occlusion
event in half the tracklets; its generator records, per frame, the person's silhouette, the
occluder's pixels, the clean render and an ``occluded`` flag
(``vidreid/data/synth/ground_truth.py``). With that truth we measure the three parts of VRSTC:

1. **Occlusion detection** (the locator, tau = 0.89 on 3 stripes of the re-ID network's map):
   precision / recall of the frame flag against the generator's ``occluded`` flag, and of the
   stripe flags against stripe truth (a stripe is occluded when the occluder hides at least
   ``STRIPE_TRUTH_FRACTION`` of the person's pixels in it; our definition); and the stripe
   precision / recall at other thresholds (``TAU_SWEEP``) on the train and test splits.
2. **Completion quality** on occluded test frames, holes = the truly occluded stripes (oracle
   masks, so that completion is judged apart from detection): PSNR and SSIM
   (``skimage.metrics``) of the hole against the clean render, for STCnet and two plain
   baselines: *copy* (the same stripe of the nearest frame with no occluded stripe) and *mean*
   (the hole filled with the mean colour of the frame's visible pixels); *input* is the
   occluded frame itself.
   Whether STCnet's budget sufficed is reported: its hole L1 over the last quarter of the
   logged steps against the second quarter (``FLAT_TOLERANCE``).
3. **Re-ID**: the VRSTC re-ID network (``configs/vrstc/bench_vrstc.yaml``, the accuracy
   benchmark's budget) trained and tested on the raw data, then on the dataset completed by
   the whole pipeline (detected masks, ``complete_dataset``), once per ``--seeds`` seed
   (mean ± sd).
4. **Memory** (``--memory``): see above.

Without ``--reid-run`` the raw re-ID network is trained first (it is the locator and the ID
guider); with it, the run folder's ``last.pt`` is evaluated instead.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

BENCH = "synth-occluded"
REID_CONFIG = REPO / "configs" / "vrstc" / "bench_vrstc.yaml"
STC_CONFIG = REPO / "configs" / "vrstc" / "stc" / "synth.yaml"
#: A stripe is truly occluded when the occluder hides at least this share of its person pixels.
STRIPE_TRUTH_FRACTION = 0.2
MAX_QUALITY_FRAMES = 400  # occluded test frames scored for completion quality
#: Thresholds of the detection sweep (the run itself uses the config's tau or --tau).
TAU_SWEEP = (0.89, 0.93, 0.95, 0.96, 0.97, 0.98)
#: The STCnet reconstruction loss has flattened when its mean over the last quarter of the
#: logged steps is less than this much (relative) below the quarter before.
FLAT_TOLERANCE = 0.05
FLAT_RECORDS = 40  # STCnet losses logged over the run (for the flatness check)
#: Memory check: the MARS configs, the limit, RSS sampling period, loader workers.
MEMORY_STC_CONFIG = REPO / "configs" / "vrstc" / "stc" / "mars.yaml"
MEMORY_LIMIT_GB = 6.0
RSS_SAMPLE_S = 0.2
STOP_POLL_S = 2.0  # how often an early-stop condition is checked (it walks a folder)
#: ``--memory-complete-only``: completion settings that flag every stripe (the randomly
#: initialised locator flags next to none at the trained tau): the most completion batches.
FLAG_ALL = ["tau=1.0", "source_tau=1.0"]  # cosine scores are < 1 unless identical
MEMORY_WORKERS = 2
#: Synthetic sets of the memory check: ``mars`` is MARS-scale (MARS: 625 training ids,
#: 6 cameras, tracklets up to ~900 frames, 256x128); ``smoke`` checks the script.
MEMORY_SETS: dict[str, dict] = {
    "mars": dict(ids=1250, cameras=6, seed=21, size=(256, 128), max_len=400,
                 tracklets_per_camera=(1, 2)),
    "smoke": dict(ids=6, cameras=2, seed=22, size=(256, 128), max_len=40,
                  tracklets_per_camera=(1, 1)),
    # the per-tracklet peaks of MARS scale at a CPU cost we can pay: every tracklet at the
    # 400-frame cap (``all_max_len``), few identities (see memory_check)
    "mars-peak": dict(ids=6, cameras=2, seed=23, size=(256, 128), max_len=400,
                      tracklets_per_camera=(1, 1), all_max_len=True),
}


def precision_recall(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    tp = int((pred & truth).sum())
    return {"precision": tp / max(int(pred.sum()), 1), "recall": tp / max(int(truth.sum()), 1),
            "predicted": int(pred.sum()), "true": int(truth.sum()), "total": int(truth.size)}


def stripe_truth(frames: tuple[str, ...], num_regions: int) -> np.ndarray:
    """``[T, R]`` bool stripe truth and the clean renders of one tracklet."""
    from vidreid.data.synth.ground_truth import load_frame_truth
    from vidreid.models.vrstc import stripe_bounds

    rows = []
    for p in frames:
        ft = load_frame_truth(p)
        hidden = ft.silhouette & ft.occluder
        flags = []
        for top, bottom in stripe_bounds(hidden.shape[0], num_regions):
            person = ft.silhouette[top:bottom].sum()
            flags.append(person > 0 and hidden[top:bottom].sum() >= STRIPE_TRUTH_FRACTION * person)
        rows.append(flags)
    return np.asarray(rows, dtype=bool)


def hole_scores(pred: np.ndarray, clean: np.ndarray, flags: np.ndarray) -> tuple[float, float]:
    """PSNR, SSIM over the flagged stripes (uint8 ``[H, W, 3]`` images)."""
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    from vidreid.models.vrstc import stripe_bounds

    bounds = stripe_bounds(pred.shape[0], len(flags))
    rows = np.concatenate([np.arange(*bounds[r]) for r in np.flatnonzero(flags)])
    a, b = clean[rows], pred[rows]
    psnr = peak_signal_noise_ratio(a, b, data_range=255)
    ssim = structural_similarity(a, b, channel_axis=2, data_range=255)
    return float(min(psnr, 100.0)), float(ssim)


def completion_quality(generator, dataset, truths: dict, num_regions: int, num_neighbours: int,
                       height: int, width: int,
                       max_frames: int = MAX_QUALITY_FRAMES) -> dict[str, dict[str, float]]:
    """PSNR / SSIM of the truly occluded stripes of occluded test frames against the clean
    render (oracle masks), per fill: ``input`` (the occluded frame), ``mean``, ``copy``,
    ``stcnet`` and ``stcnet-spatial`` (the same generator with every neighbour hidden: its
    temporal branch reads nothing; a diagnostic of what the temporal branch adds). Per fill:
    the means, the frame count and the per-frame values (``per_frame_psnr`` /
    ``per_frame_ssim``, the same frames in the same order for every fill; ``per_frame_tracklet``:
    each frame's tracklet, for intervals over tracklets). With more than ``max_frames``
    occluded test frames, every k-th occluded tracklet is scored (spread over the split,
    not its first identities)."""
    from vidreid.data.synth.ground_truth import load_frame_truth
    from vidreid.methods.vrstc.stc import complete_tracklet, load_tracklet
    from vidreid.models.vrstc import stripe_mask

    scores: dict[str, list[tuple[float, float]]] = {"input": [], "mean": [], "copy": [],
                                                    "stcnet": [], "stcnet-spatial": []}
    copy_fallbacks = 0
    tracklets = [f for f in dict.fromkeys(t.frames for t in (*dataset.query, *dataset.gallery))
                 if truths[f].any()]
    total = sum(int(truths[f].any(axis=1).sum()) for f in tracklets)
    stride = max(1, math.ceil(total / max_frames))
    which: list[int] = []
    for index, frames in enumerate(tracklets[::stride]):
        flags = truths[frames]
        if len(scores["stcnet"]) >= max_frames:
            break
        original, work = load_tracklet(frames, height, width)
        occluded = torch.from_numpy(flags)
        done = complete_tracklet(generator, original, work, occluded, num_neighbours)
        spatial = complete_tracklet(generator, original, work, occluded, num_neighbours,
                                    hidden_sources=torch.ones_like(occluded))
        clean_frames = [t for t in range(len(frames)) if not flags[t].any()]
        for t, image in done.items():
            clean = load_frame_truth(frames[t]).clean
            if clean is None or len(scores["stcnet"]) >= max_frames:
                continue
            orig = original[t].permute(1, 2, 0).numpy()
            hole = stripe_mask(torch.from_numpy(flags[t]), *orig.shape[:2])[0].numpy() > 0
            mean_fill = orig.copy()
            mean_fill[hole] = orig[~hole].mean(axis=0).round().astype(np.uint8) \
                if (~hole).any() else 128
            if clean_frames:
                near = min(clean_frames, key=lambda i: (abs(i - t), i))
                copy = orig.copy()
                copy[hole] = original[near].permute(1, 2, 0).numpy()[hole]
            else:
                copy, copy_fallbacks = mean_fill, copy_fallbacks + 1
            for key, pred in (("input", orig), ("mean", mean_fill), ("copy", copy),
                              ("stcnet", image.permute(1, 2, 0).numpy()),
                              ("stcnet-spatial", spatial[t].permute(1, 2, 0).numpy())):
                scores[key].append(hole_scores(pred, clean, flags[t]))
            which.append(index)
    out = {k: {"PSNR": float(np.mean([s[0] for s in v])), "SSIM": float(np.mean([s[1] for s in v])),
               "frames": len(v), "per_frame_psnr": [s[0] for s in v],
               "per_frame_ssim": [s[1] for s in v]} for k, v in scores.items()}
    out["copy"]["fallback_to_mean"] = copy_fallbacks
    for q in out.values():
        q["per_frame_tracklet"] = which
    return out


def tau_comparison(completion_path: Path, taus: list[float],
                   max_frames: int = MAX_QUALITY_FRAMES) -> dict[str, dict[str, float]]:
    """Completion with the locator's masks at each ``tau`` (and the trained one), end to end,
    on occluded test tracklets (``max_frames`` truly occluded frames, spread as in
    :func:`completion_quality`), from a finished ``benchmarks/effects.py vrstc`` completion
    record (its STCnet, locator scores ``locator-STAMP.npz`` and raw set).

    Per tau: ``completed``: the share of truly occluded stripes flagged (so completed);
    ``PSNR occluded``: PSNR of every truly occluded stripe of the output against the clean
    render (unflagged ones keep their occluder); ``PSNR copy`` the same with
    copy-from-nearest-unflagged-frame as the fill and ``PSNR input`` without any fill;
    ``PSNR false flags``: the output against the frame on clean stripes flagged by mistake
    (what completion costs there). ``source_tau`` is the trained one (at least ``tau``)."""
    from vidreid.data import build_dataset
    from vidreid.data.synth.ground_truth import load_frame_truth
    from vidreid.methods.vrstc.stc import complete_tracklet, load_stc_generator, load_tracklet
    from vidreid.models.vrstc import stripe_mask

    record = json.loads(Path(completion_path).read_text())
    stamp = Path(completion_path).stem.split("-", 1)[1]
    npz = np.load(Path(completion_path).parent / f"locator-{stamp}.npz")
    generator, meta = load_stc_generator(record["stc"]["path"])
    nn_ = int(meta["num_neighbours"])
    h, w = int(meta["height"]), int(meta["width"])
    dataset = build_dataset("mars", record["completion"]["input"])
    unique = list(dict.fromkeys(t.frames for t in (*dataset.train, *dataset.query,
                                                   *dataset.gallery)))
    if sum(len(f) for f in unique) != len(npz["scores"]):
        raise ValueError(f"{completion_path}: its locator scores do not match the set "
                         f"{record['completion']['input']}")
    offsets = np.cumsum([0, *[len(f) for f in unique]])
    scores = {f: npz["scores"][offsets[i]:offsets[i + 1]] for i, f in enumerate(unique)}
    truth = {f: npz["truth"][offsets[i]:offsets[i + 1]] for i, f in enumerate(unique)}
    train = {t.frames for t in dataset.train}
    test = [f for f in unique if f not in train and truth[f].any()]
    stride = max(1, math.ceil(sum(int(truth[f].any(axis=1).sum()) for f in test) / max_frames))
    test = test[::stride]
    out = {}
    for tau in [float(meta["tau"]), *taus]:
        source_tau = max(float(meta["source_tau"]), tau)
        acc: dict[str, list[float]] = {"PSNR occluded": [], "PSNR copy": [], "PSNR input": [],
                                       "PSNR false flags": []}
        flagged_true = total_true = 0
        for frames in test:
            flags = scores[frames] < tau
            original, work = load_tracklet(frames, h, w)
            done = complete_tracklet(generator, original, work, torch.from_numpy(flags), nn_,
                                     hidden_sources=torch.from_numpy(scores[frames] < source_tau))
            unflagged = [i for i in range(len(frames)) if not flags[i].any()]
            for t in range(len(frames)):
                occ, false = truth[frames][t], flags[t] & ~truth[frames][t]
                if not occ.any() and not false.any():
                    continue
                orig = original[t].permute(1, 2, 0).numpy()
                pred = done[t].permute(1, 2, 0).numpy() if t in done else orig
                clean = load_frame_truth(frames[t]).clean
                reference = orig if clean is None else clean
                if false.any():
                    acc["PSNR false flags"].append(hole_scores(pred, reference, false)[0])
                if not occ.any():
                    continue
                flagged_true += int((flags[t] & occ).sum())
                total_true += int(occ.sum())
                copy = orig.copy()
                if flags[t].any() and unflagged:
                    near = min(unflagged, key=lambda i: (abs(i - t), i))
                    hole = stripe_mask(torch.from_numpy(flags[t]), *orig.shape[:2])[0].numpy() > 0
                    copy[hole] = original[near].permute(1, 2, 0).numpy()[hole]
                acc["PSNR occluded"].append(hole_scores(pred, reference, occ)[0])
                acc["PSNR copy"].append(hole_scores(copy, reference, occ)[0])
                acc["PSNR input"].append(hole_scores(orig, reference, occ)[0])
        out[f"tau {tau:.4f}"] = {
            "tau": tau, "source_tau": source_tau,
            "completed": flagged_true / max(total_true, 1), "occluded_stripes": total_true,
            **{k: float(np.mean(v)) if v else math.nan for k, v in acc.items()},
            "frames": len(acc["PSNR occluded"]), "false_flag_frames": len(acc["PSNR false flags"]),
            "PSNR occluded - copy": t_interval_frames(
                np.subtract(acc["PSNR occluded"], acc["PSNR copy"]))}
        print(f"tau {tau:.4f}: {out[f'tau {tau:.4f}']}", flush=True)
    return out


def t_interval_frames(values: np.ndarray) -> list[float]:
    """Mean and Student-t 95% interval of per-frame values."""
    from scipy import stats

    v = np.asarray(values, dtype=float)
    if v.size < 2:
        return [float(v.mean()) if v.size else math.nan, math.nan, math.nan]
    lo, hi = stats.t.interval(0.95, v.size - 1, loc=v.mean(), scale=stats.sem(v))
    return [float(v.mean()), float(lo), float(hi)]


def reid_row(root: str, epochs: int, runs_dir: Path, seed: int | None = None) -> dict:
    """The bench_vrstc re-ID row on ``root`` (seed: the config's unless given)."""
    from vidreid.engine.config import load_config
    from vidreid.engine.run import run_training

    cfg = load_config(REID_CONFIG, [
        f"data.root={root}", "data.name=mars", "data.options={}", f"train.epochs={epochs}",
        f"output_dir={runs_dir}", f"run_name=reid-{int(time.time() * 1000)}",
        "train.tensorboard=false", "train.progress=false", "train.eval_every=0",
        *([f"train.seed={seed}"] if seed is not None else [])])
    result, run_dir, _, _ = run_training(cfg)
    m = result.last_eval
    return {"v2v/R1": m["v2v/R1"], "v2v/mAP": m["v2v/mAP"], "run_dir": str(run_dir),
            "seed": int(cfg.train.seed)}


def loss_flatness(history: list[dict], key: str = "rec",
                  fraction: float | None = None) -> dict[str, float]:
    """Has the loss flattened? Mean of ``key`` over the last quarter of the logged steps vs
    the second quarter (half the run earlier: adjacent quarters of a noisy GAN loss differ
    too little to tell); with ``fraction``, the last ``fraction`` of the steps vs the
    ``fraction`` just before it. ``flat`` when it dropped by less than ``FLAT_TOLERANCE``
    (relative); ``ratio`` = last / before. A heuristic: a short run can pass it while far
    from converged."""
    values = [h[key] for h in history if key in h]
    q = int(len(values) * (fraction or 0.25))
    if q < 1 or 2 * q > len(values):
        return {"records": len(values), "flat": False, "relative_drop": float("nan"),
                "ratio": float("nan")}
    start = q if fraction is None else len(values) - 2 * q
    before, last = float(np.mean(values[start : start + q])), float(np.mean(values[-q:]))
    drop = (before - last) / max(abs(before), 1e-12)
    return {"records": len(values), "before": before, "last": last, "relative_drop": drop,
            "ratio": last / max(abs(before), 1e-12), "flat": bool(drop < FLAT_TOLERANCE)}


def mean_sd(rows: list[dict], key: str) -> str:
    v = np.asarray([r[key] for r in rows], dtype=float)
    return f"{v.mean():.1f} ± {v.std(ddof=1) if len(v) > 1 else 0.0:.1f}"


# ----------------------------------------------------------------------------- memory
def _tree_memory_bytes(root_pid: int) -> tuple[int, int]:
    """Resident memory of ``root_pid`` and all its descendants (/proc): the sum of their RSS
    (pages shared by forked loader workers counted once per process: an upper bound) and
    the sum of their PSS (each shared page split among its sharers: the tree's own memory)."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(d.name))
    rss = pss = 0
    todo = [root_pid]
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss += int(line.split()[1]) * 1024
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1]) * 1024
        except OSError:
            pass
    return rss, pss


def run_measured(cmd: list[str], log_path: Path,
                 stop_when: Callable[[], str | None] | None = None) -> dict:
    """Run ``cmd``; its exit code, wall and CPU time, the peak RSS of its process
    (``ru_maxrss``) and the peak summed RSS and PSS of its process tree (sampled every
    ``RSS_SAMPLE_S``; the limit applies to the PSS: forked loader workers share most of
    their RSS with the main process). ``stop_when`` (polled every ``STOP_POLL_S``) returns
    a reason to end the command early (SIGTERM), recorded as ``stopped``."""
    import signal
    import subprocess

    t0 = time.perf_counter()
    stopped = None
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONPATH": str(REPO)})
        peak_tree = peak_pss = 0
        last_poll = t0
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            rss, pss = _tree_memory_bytes(proc.pid)
            peak_tree, peak_pss = max(peak_tree, rss), max(peak_pss, pss)
            if stop_when is not None and stopped is None \
                    and time.perf_counter() - last_poll >= STOP_POLL_S:
                last_poll = time.perf_counter()
                stopped = stop_when()
                if stopped is not None:
                    proc.send_signal(signal.SIGTERM)
            time.sleep(RSS_SAMPLE_S)
    return {"cmd": " ".join(cmd), "returncode": os.waitstatus_to_exitcode(status),
            "stopped": stopped,
            "seconds": time.perf_counter() - t0, "cpu_seconds": usage.ru_utime + usage.ru_stime,
            "peak_rss_gb": usage.ru_maxrss * 1024 / 1e9,
            "peak_tree_rss_gb": peak_tree / 1e9, "peak_tree_pss_gb": peak_pss / 1e9,
            "log": str(log_path)}


def written_frames(out: Path) -> int:
    """Frames ``vrstc complete`` has written into ``out`` so far: files whose hard link to
    the input was replaced (one link left); hidden files (markers, temporaries) excluded."""
    count = 0
    for folder, _, files in os.walk(out):
        for f in files:
            if f.startswith("."):
                continue
            try:
                count += os.lstat(os.path.join(folder, f)).st_nlink == 1
            except OSError:
                pass
    return count


def memory_check(scale: str, data_dir: Path, runs: Path, stc_steps: int,
                 overrides: list[str] = (), stc_weights: Path | None = None,
                 complete_tracklets: int | None = None) -> dict:
    """Peak memory of ``vrstc train-stc`` and ``vrstc complete`` with the MARS configs
    (``configs/vrstc/stc/mars.yaml``: ResNet-50 non-local re-ID network, 256x128, the
    paper's frame-level ResNet-50 guider) on a synthetic set of ``MEMORY_SETS[scale]``.
    The networks are randomly initialised (memory does not depend on training).

    ``stc_weights`` (an STCnet checkpoint of the MARS config): skip ``train-stc`` and run
    ``complete`` alone with every stripe flagged (``FLAG_ALL``: every frame goes through
    the generator, ``complete.batch_frames`` at a time); ``complete_tracklets``: end it
    (SIGTERM) once that many tracklets' worth of frames (x the longest tracklet) are
    written, i.e. after whole locator passes and completion batches of that many tracklets
    (a tracklet's frames are written after all its batches)."""
    from vidreid.data import build_dataset
    from vidreid.data.synth import generate
    from vidreid.engine.config import load_config
    from vidreid.methods.vrstc.config import load_stc_config
    from vidreid.models import build_model

    spec = MEMORY_SETS[scale]
    out = data_dir / f"vrstc-memory-{scale}"
    if not (out / "mars" / "info").is_dir():
        print(f"generating {out} ...", flush=True)
        from unittest import mock

        # ``all_max_len``: every planned tracklet gets the cap's length (the generator's own
        # lengths are log-normal with median 36: a 400-frame tracklet is ~1 in 400). What
        # sets the peaks is the longest tracklet (the locator holds its T per-frame maps) and
        # the batch sizes; the identity count only sizes the index and the classifier rows.
        fixed = mock.patch("vidreid.data.synth.layouts._length",
                           lambda rng, max_len, min_len=None: int(max_len)) \
            if spec.get("all_max_len") else nullcontext()
        with fixed:
            generate(str(out), "mars", spec["ids"], spec["cameras"], spec["seed"],
                     size=spec["size"], max_len=spec["max_len"],
                     occlusion_rate=0.5, tracklets_per_camera=spec["tracklets_per_camera"])
    dataset = build_dataset("mars", str(out))
    lengths = [len(t.frames) for t in dataset.train]
    stc_cfg = load_stc_config(MEMORY_STC_CONFIG)
    runs.mkdir(parents=True, exist_ok=True)
    weights = {}
    for key, model in (("reid", load_config(REPO / "configs/vrstc/mars.yaml").model),
                       ("guider", stc_cfg.guider.model)):
        model = {k: v for k, v in dict(model).items() if k != "weights"}
        net = build_model(model.pop("name"), dataset.num_train_pids, **model)
        weights[key] = runs / f"memory-{key}.pt"
        torch.save({"model": net.state_dict(), "num_classes": dataset.num_train_pids},
                   weights[key])
    common = [f"data.root={out}", f"reid.weights={weights['reid']}",
              f"guider.weights={weights['guider']}", "train.progress=false",
              f"data.num_workers={MEMORY_WORKERS}", *overrides]
    stamp = int(time.time())
    cli = [sys.executable, "-m", "vidreid.cli", "vrstc"]
    result = {"set": {**spec, "train_tracklets": len(lengths), "train_frames": sum(lengths),
                      "max_len": max(lengths), "root": str(out)},
              "stc_steps": stc_steps, "limit_gb": MEMORY_LIMIT_GB,
              "overrides": list(overrides)}
    if stc_weights is None:
        result["train_stc"] = run_measured(
            [*cli, "train-stc", str(MEMORY_STC_CONFIG), *common, f"train.steps={stc_steps}",
             f"output_dir={runs}", f"run_name=memory-stc-{stamp}"],
            runs / f"memory-train-{stamp}.log")
        stc_weights = runs / f"memory-stc-{stamp}" / "stc.pt"
        flag = []
        if result["train_stc"]["returncode"] != 0:
            return result
    else:
        result["stc_weights"] = str(stc_weights)
        flag = [x for item in FLAG_ALL for x in ("--set", item)]
    completed = runs / f"memory-completed-{stamp}"
    stop = None
    if complete_tracklets:
        frames = complete_tracklets * max(lengths)
        result["complete_stop_after_frames"] = frames

        def stop() -> str | None:
            n = written_frames(completed)
            return f"{n} frames written (>= {frames})" if n >= frames else None

    result["complete"] = run_measured(
        [*cli, "complete", str(MEMORY_STC_CONFIG), "--weights", str(stc_weights), "--data",
         str(out), "--out", str(completed), *flag, *common],
        runs / f"memory-complete-{stamp}.log", stop_when=stop)
    return result


def evaluate_run(run: Path, root: str) -> tuple[dict, torch.nn.Module]:
    """Evaluate a finished bench_vrstc run folder on ``root``; returns metrics and the model."""
    from vidreid import build as B
    from vidreid.engine.config import load_config
    from vidreid.engine.inference import summarize_results

    cfg = load_config(run / "config.yaml", [f"data.root={root}", "data.options={}"])
    dataset = B.build_dataset(cfg)
    model = B.load_trained(str(run / "last.pt"), cfg).model
    m = summarize_results(B.evaluate(cfg, model, dataset, torch.device("cpu")))
    return {"v2v/R1": m["v2v/R1"], "v2v/mAP": m["v2v/mAP"], "run_dir": str(run)}, model


def main(argv: list[str] | None = None) -> int:
    from accuracy import BENCHMARKS, dataset_root

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench", default=BENCH, choices=sorted(BENCHMARKS),
                        help="synthetic set (synth-smoke checks the script in seconds)")
    parser.add_argument("--reid-run", type=Path, help="a finished bench_vrstc run on raw data")
    parser.add_argument("--epochs", type=int, help="re-ID budget (default: the benchmark's)")
    parser.add_argument("--stc-steps", type=int, help="STCnet steps (default: stc/synth.yaml)")
    parser.add_argument("--tau", type=float,
                        help="locator threshold (default: stc/synth.yaml's, the paper's 0.89)")
    parser.add_argument("--data-dir", default="runs/bench-data", type=Path)
    parser.add_argument("--runs-dir", default="runs/bench", type=Path)
    parser.add_argument("--out", type=Path, help="markdown (default runs/bench/vrstc.md)")
    parser.add_argument("--seeds", default="1",
                        help="re-ID seeds, comma-separated: raw and completed rows per seed")
    parser.add_argument("--memory", choices=sorted(MEMORY_SETS),
                        help="only the memory check of train-stc / complete on this set")
    parser.add_argument("--memory-steps", type=int, default=20,
                        help="STCnet steps of the memory check")
    parser.add_argument("--memory-complete-only", type=Path, metavar="STC_PT",
                        help="memory check of `complete` alone with this STCnet checkpoint "
                             "(MARS config) and every stripe flagged (no train-stc)")
    parser.add_argument("--memory-tracklets", type=int, metavar="N",
                        help="end `complete` after N tracklets' worth of frames are written")
    parser.add_argument("--tau-compare", type=Path, metavar="COMPLETION_JSON",
                        help="only: completion with the locator's masks at the trained tau "
                             "and --taus, from an effects.py vrstc completion record")
    parser.add_argument("--taus", default="0.89", help="thresholds of --tau-compare")
    parser.add_argument("--step-memory", type=int, metavar="BATCH",
                        help="only the peak RSS of one STCnet step at this batch size "
                             "(MARS STC config, random tensors)")
    parser.add_argument("--memory-overrides", nargs="*", default=[], metavar="KEY=VALUE",
                        help="STC config overrides of the memory check (both commands)")
    args = parser.parse_args(argv)
    seeds = [int(x) for x in args.seeds.split(",") if x]
    if args.step_memory:
        print(json.dumps(step_memory(args.step_memory)))
        return 0
    if args.memory:
        return memory_main(args)
    if args.tau_compare:
        result = tau_comparison(args.tau_compare, [float(x) for x in args.taus.split(",")])
        from vidreid.atomic import write_text

        out = args.out or args.tau_compare.with_name(f"tau-{args.tau_compare.stem}.json")
        write_text(out, json.dumps(result, indent=1))
        print(f"written: {out}")
        return 0

    from vidreid.data import build_dataset
    from vidreid.methods.vrstc.config import load_stc_config, reid_input_size
    from vidreid.methods.vrstc.stc import complete_dataset, locate_tracklets, train_stc

    stc_cfg = load_stc_config(STC_CONFIG, [f"locator.tau={args.tau}"] if args.tau else [])
    regions, tau = stc_cfg.locator.num_regions, stc_cfg.locator.tau
    # generator working size; the locator / ID guider run at the re-ID network's size
    h, w, nn_ = stc_cfg.data.height, stc_cfg.data.width, stc_cfg.generator.num_neighbours
    reid_size = reid_input_size(stc_cfg)
    epochs = args.epochs or BENCHMARKS[args.bench]["epochs"]
    root = dataset_root(args.bench, args.data_dir, None)
    runs = args.runs_dir / "vrstc"
    t0 = time.perf_counter()
    if args.reid_run is None:
        raw_rows = [reid_row(root, epochs, runs, seed) for seed in seeds]
        raw, reid = evaluate_run(Path(raw_rows[0]["run_dir"]), root)
    else:
        raw, reid = evaluate_run(args.reid_run, root)
        raw_rows = [raw, *[reid_row(root, epochs, runs, seed) for seed in seeds[1:]]]
    print(f"raw re-ID: {raw_rows}", flush=True)
    reid.eval()

    # 1. detection
    dataset = build_dataset("mars", root)
    unique = list(dict.fromkeys(t.frames for t in (*dataset.train, *dataset.query,
                                                   *dataset.gallery)))
    from vidreid.data.tracklet import Tracklet

    t_locate = time.perf_counter()
    located = locate_tracklets(reid, [Tracklet(f, 0, 0) for f in unique], height=reid_size[0],
                               width=reid_size[1], num_regions=regions, tau=tau)
    print(f"located {len(unique)} tracklets in {time.perf_counter() - t_locate:.0f} s",
          flush=True)
    truths = {f: stripe_truth(f, regions) for f in unique}
    from vidreid.data.synth.ground_truth import load_tracklet_table

    ddir = Path(dataset.root)
    frame_flag = {str((ddir / p).resolve()): o for r in load_tracklet_table(root)
                  for p, o in zip(r["frames"], r["occluded"], strict=True)}
    pred_r = np.concatenate([x["occluded"] for x in located])
    true_r = np.concatenate([truths[f] for f in unique])
    pred_f = pred_r.any(axis=1)
    true_f = np.asarray([frame_flag[str(Path(p).resolve())] for f in unique for p in f])
    detection = {"frame": precision_recall(pred_f, true_f),
                 "stripe": precision_recall(pred_r, true_r)}
    print(f"detection: {detection}", flush=True)
    # the same scores at other thresholds, on the train split (where a tau may be chosen)
    # and on the test split
    train_set = {t.frames for t in dataset.train}
    sweep = {}
    for split in ("train", "test"):
        keep = [i for i, f in enumerate(unique) if (f in train_set) == (split == "train")]
        scores = np.concatenate([located[i]["scores"] for i in keep])
        truth = np.concatenate([truths[unique[i]] for i in keep])
        sweep[split] = {t: precision_recall(scores < t, truth) for t in TAU_SWEEP}

    # 2. STCnet training (train split, locator masks) and completion quality (oracle masks)
    train_located = [x["scores"] for f, x in zip(unique, located, strict=True)
                     if f in train_set]
    stc_path = runs / f"stc-{int(time.time())}.pt"
    t1 = time.perf_counter()
    stc = train_stc(
        reid, dataset.train, stc_path, height=h, width=w, num_regions=regions, tau=tau,
        num_neighbours=nn_, base_channels=stc_cfg.generator.base_channels,
        steps=args.stc_steps or stc_cfg.train.steps, batch_size=stc_cfg.train.batch_size,
        lr=stc_cfg.train.lr, betas=tuple(stc_cfg.train.betas), seed=stc_cfg.train.seed,
        locator_scores=train_located, source_tau=stc_cfg.locator.source_tau,
        log_every=max(1, (args.stc_steps or stc_cfg.train.steps) // FLAT_RECORDS),
        reid_size=reid_size,
    )
    stc_minutes = (time.perf_counter() - t1) / 60
    flat = loss_flatness(stc["history"])
    print(f"STCnet: {stc['last']} ({stc_minutes:.1f} min); flattened: {flat}", flush=True)
    from vidreid.methods.vrstc.stc import load_stc_generator

    generator, _ = load_stc_generator(stc_path)
    quality = completion_quality(generator, dataset, truths, regions, nn_, h, w)
    print(f"quality: {quality}", flush=True)

    # 3. re-ID on the completed data
    completed_root = str(runs / f"completed-{int(time.time())}")
    summary = complete_dataset("mars", root, completed_root, reid, generator, height=h,
                               width=w, num_regions=regions, tau=tau, num_neighbours=nn_,
                               reid_size=reid_size)
    print(f"completion: {summary}", flush=True)
    done_rows = [reid_row(completed_root, epochs, runs, seed) for seed in seeds]
    total = (time.perf_counter() - t0) / 60

    lines = [
        f"## VRSTC on {args.bench} (generator {h}x{w}, re-ID / locator"
        f" {reid_size[0]}x{reid_size[1]}, tiny backbone; re-ID {epochs} epochs,"
        f" STCnet {stc_cfg.train.steps if not args.stc_steps else args.stc_steps} steps;"
        f" {total:.1f} min in all)", "",
        f"Occlusion detection (tau {tau}, {regions} stripes):", "",
        "| level | precision | recall | predicted | true | total |", "|---|---:|---:|---:|---:|---:|",
    ]
    for level, d in detection.items():
        lines.append(f"| {level} | {100 * d['precision']:.1f} | {100 * d['recall']:.1f} |"
                     f" {d['predicted']} | {d['true']} | {d['total']} |")
    lines += ["", "Stripe detection at other thresholds (precision / recall, %):", "",
              "| split | " + " | ".join(f"tau {t}" for t in TAU_SWEEP) + " |",
              "|---|" + "---:|" * len(TAU_SWEEP)]
    for split, row in sweep.items():
        lines.append(f"| {split} | " + " | ".join(
            f"{100 * d['precision']:.0f} / {100 * d['recall']:.0f}" for d in row.values()) + " |")
    lines += ["", "Completion of truly occluded stripes of test frames (vs the clean render):",
              "", "| fill | PSNR (dB) | SSIM | frames |", "|---|---:|---:|---:|"]
    for k, q in quality.items():
        lines.append(f"| {k} | {q['PSNR']:.2f} | {q['SSIM']:.3f} | {q['frames']} |")
    lines += ["", f"Completed dataset: {summary['frames_completed']} of {summary['frames']}"
              f" frames, {summary['regions_completed']} stripes.", "",
              f"STCnet reconstruction loss (hole L1): last quarter of the logged steps "
              f"{flat.get('last', float('nan')):.4f} vs the second quarter "
              f"{flat.get('before', float('nan')):.4f} (relative drop "
              f"{100 * flat['relative_drop']:.1f}%): "
              + ("flattened" if flat["flat"] else
                 f"NOT flattened (>= {100 * FLAT_TOLERANCE:.0f}%): raise --stc-steps") + ".", "",
              f"Re-ID, mean ± sd over seeds {seeds}:", "",
              "| re-ID data | R1 | mAP | per seed (R1 / mAP) |", "|---|---:|---:|---|",
              f"| raw | {mean_sd(raw_rows, 'v2v/R1')} | {mean_sd(raw_rows, 'v2v/mAP')} | "
              + ", ".join(f"{r['v2v/R1']:.1f} / {r['v2v/mAP']:.1f}" for r in raw_rows) + " |",
              f"| completed | {mean_sd(done_rows, 'v2v/R1')} | {mean_sd(done_rows, 'v2v/mAP')} | "
              + ", ".join(f"{r['v2v/R1']:.1f} / {r['v2v/mAP']:.1f}" for r in done_rows) + " |"]
    table = "\n".join(lines) + "\n"
    print(table)
    out = args.out or args.runs_dir / "vrstc.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    with os.fdopen(fd, "w") as fh:
        fh.write(table)
    os.replace(tmp, out)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.stem}.", dir=out.parent)
    with os.fdopen(fd, "w") as fh:
        json.dump({"detection": detection, "tau_sweep": sweep, "quality": quality,
                   "raw": raw_rows, "completed": done_rows, "seeds": seeds,
                   "completion": summary, "stc": stc["last"], "stc_flatness": flat,
                   "stc_history": stc["history"],
                   "stc_minutes": stc_minutes}, fh, indent=1, default=str)
    os.replace(tmp, out.with_suffix(".json"))
    print(f"written: {out}")
    return 0


def step_memory(batch_size: int, num_classes: int = 625) -> dict:
    """Peak RSS of one STCnet training step (discriminator + generator update, backward
    through the ID guider) with the MARS STC config at its working size, on random tensors:
    the per-step term of ``train-stc``'s memory, without data or a locating pass. Run it in
    a fresh process (``--step-memory B``): ``ru_maxrss`` is the process's lifetime peak."""
    import resource
    from contextlib import nullcontext

    from vidreid.methods.vrstc.config import load_stc_config, reid_input_size
    from vidreid.methods.vrstc.stc import STCStep, build_stc
    from vidreid.models import build_model
    from vidreid.models.vrstc import IDGuider

    cfg = load_stc_config(MEMORY_STC_CONFIG)
    h, w, m, r = cfg.data.height, cfg.data.width, cfg.generator.num_neighbours, \
        cfg.locator.num_regions
    model = dict(cfg.guider.model)
    guider_net = build_model(model.pop("name"), num_classes, **model)
    nets = build_stc(cfg.generator.base_channels)
    disc = torch.nn.ModuleDict({"local": nets["local"], "global": nets["global"]})
    guider = IDGuider(guider_net, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225),
                      size=reid_input_size(cfg))
    step = STCStep(disc, torch.optim.Adam(disc.parameters()), guider,
                   __import__("vidreid.methods.vrstc.stc", fromlist=["x"]).STCLossWeights(), r)
    trainer = type("T", (), {"device": torch.device("cpu"), "net": nets["generator"],
                             "autocast": staticmethod(nullcontext), "batch_items": 0})()
    stripes = torch.zeros(batch_size, r, dtype=torch.bool)
    stripes[:, 0] = True
    from vidreid.models.vrstc import stripe_mask

    batch = {"frame": torch.rand(batch_size, 3, h, w) * 2 - 1,
             "mask": stripe_mask(stripes, h, w), "stripes": stripes,
             "neighbours": torch.rand(batch_size, m, 3, h, w) * 2 - 1,
             "neighbour_mask": torch.zeros(batch_size, m, 1, h, w),
             "pid": torch.randint(num_classes, (batch_size,))}
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9
    t0 = time.perf_counter()
    loss, _ = step(trainer, batch)
    loss.backward()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9
    return {"batch_size": batch_size, "size": [h, w], "neighbours": m,
            "peak_rss_gb_before_step": before, "peak_rss_gb": peak,
            "seconds": time.perf_counter() - t0}


def memory_main(args: argparse.Namespace) -> int:
    """``--memory SET``: the peak-memory check alone; writes ``vrstc-memory-SET.json``."""
    runs = args.runs_dir / "vrstc"
    result = memory_check(args.memory, args.data_dir, runs, args.memory_steps,
                          args.memory_overrides, args.memory_complete_only,
                          args.memory_tracklets)
    lines = [f"## VRSTC memory check on the `{args.memory}` set "
             f"({result['set']['train_tracklets']} training tracklets, "
             f"{result['set']['train_frames']} frames, up to {result['set']['max_len']} "
             f"frames, {result['set']['size'][0]}x{result['set']['size'][1]}; "
             f"configs/vrstc/stc/mars.yaml, {result['stc_steps']} STCnet steps, "
             f"{MEMORY_WORKERS} loader workers; overrides {result['overrides']})", "",
             "| command | exit | minutes | CPU minutes | peak RSS (GB) | peak tree RSS (GB) | "
             f"peak tree PSS (GB) | PSS < {MEMORY_LIMIT_GB} GB |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    for key in ("train_stc", "complete"):
        r = result.get(key)
        if r is None:
            why = (f"skipped: reused {result['stc_weights']}" if key == "train_stc"
                   and "stc_weights" in result else "not run (train-stc failed)")
            lines.append(f"| {key} | {why} | | | | | | |")
            continue
        # a run ended on purpose (--memory-tracklets) counts: its peak is over what it did
        ok = (r["returncode"] == 0 or r.get("stopped")) \
            and r["peak_tree_pss_gb"] < MEMORY_LIMIT_GB
        code = f"{r['returncode']} (stopped: {r['stopped']})" if r.get("stopped") \
            else str(r["returncode"])
        lines.append(f"| {key} | {code} | {r['seconds'] / 60:.1f} | "
                     f"{r.get('cpu_seconds', float('nan')) / 60:.1f} | "
                     f"{r['peak_rss_gb']:.2f} | {r['peak_tree_rss_gb']:.2f} | "
                     f"{r['peak_tree_pss_gb']:.2f} | {'yes' if ok else 'NO'} |")
    if "stc_weights" in result:
        lines += ["", f"complete: every stripe flagged ({' '.join(FLAG_ALL)}), so every frame "
                  "goes through the generator in batches of complete.batch_frames."]
    table = "\n".join(lines) + "\n"
    print(table)
    out = args.out or args.runs_dir / f"vrstc-memory-{args.memory}.md"
    from vidreid.atomic import write_text

    write_text(out, table)
    write_text(out.with_suffix(".json"), json.dumps(result, indent=1, default=str))
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
