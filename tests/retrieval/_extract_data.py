"""Small on-disk data for the extractor tests: a folder-layout dataset whose identities are
far apart in colour, so even an untrained tiny CNN ranks the right identity first."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import yaml
from PIL import Image

HEIGHT, WIDTH = 64, 32
COLOURS = [(230, 30, 30), (30, 200, 40), (40, 60, 230), (240, 230, 40)]  # one per identity
NOISE = 12


def write_frames(folder: Path, colour: tuple[int, int, int], n: int, seed: int) -> list[str]:
    """``n`` JPEG frames of a ``colour`` figure on grey, with noise; returns their paths."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        img = np.full((HEIGHT, WIDTH, 3), 128, np.int16)
        top = int(rng.integers(2, 10))
        img[top : top + 48, 6:26] = colour
        img += rng.integers(-NOISE, NOISE + 1, img.shape, dtype=np.int16)
        path = folder / f"{i:04d}.jpg"
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path, quality=95)
        paths.append(str(path))
    return paths


def make_folder_dataset(root: Path, frames: int = 5) -> Path:
    """``{query,gallery}/<pid>/<camid>_<n>/`` with 4 identities: 1 query tracklet (camera
    0) and 2 gallery tracklets (camera 1) each."""
    seed = 0
    for pid, colour in enumerate(COLOURS, start=1):
        write_frames(root / "query" / str(pid) / "0_001", colour, frames, seed := seed + 1)
        for k in (1, 2):
            write_frames(root / "gallery" / str(pid) / f"1_{k:03d}", colour, frames + k,
                         seed := seed + 1)
    return root


def tiny_config(head: str = "tp", **model: object) -> dict:
    return {
        "data": {"name": "folder", "height": HEIGHT, "width": WIDTH, "seq_len": 4},
        "model": {"name": "video_baseline", "backbone": "tiny", "head": head, **model},
    }


def write_model(tmp: Path, cfg: dict, seed: int = 0) -> tuple[Path, Path]:
    """A config YAML and a state dict of the freshly initialised model (seeded)."""
    from vidreid.models import build_model

    torch.manual_seed(seed)
    model_kw = dict(cfg["model"])
    model = build_model(model_kw.pop("name"), 4, **model_kw)
    weights = tmp / f"weights-{seed}.pt"
    torch.save(model.state_dict(), weights)
    config = tmp / "config.yaml"
    config.write_text(yaml.safe_dump(cfg))
    return config, weights
