"""Faults around ``vidreid extract`` (issue 17, items 6 and 7): a corrupt finished shard on
re-run, temp files left by a killed run, a 16-bit PNG frame."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml
from _faults_cli import error_line, run_cli

from vidreid.retrieval.features_file import file_sha256, read_features

HEIGHT, WIDTH = 64, 32
TRACKLETS, FRAMES, SHARD_SIZE = 6, 3, 2


def write_tracklets(root: Path, seed: int = 0) -> Path:
    """``root/<k>/<n>.png``: TRACKLETS folders of FRAMES random 8-bit frames."""
    rng = np.random.default_rng(seed)
    for k in range(TRACKLETS):
        folder = root / f"t{k}"
        folder.mkdir(parents=True)
        for n in range(FRAMES):
            frame = rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
            cv2.imwrite(str(folder / f"{n:03d}.png"), frame)
    return root


@pytest.fixture(scope="module")
def model_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from vidreid.models import build_model

    out = tmp_path_factory.mktemp("model")
    model_cfg = {"name": "video_baseline", "backbone": "tiny", "head": "tp"}
    cfg = {"data": {"name": "folder", "height": HEIGHT, "width": WIDTH, "seq_len": 4},
           "model": model_cfg}
    torch.manual_seed(0)
    kwargs = {k: v for k, v in model_cfg.items() if k != "name"}
    model = build_model(model_cfg["name"], 4, **kwargs)
    torch.save(model.state_dict(), out / "weights.pt")
    (out / "config.yaml").write_text(yaml.safe_dump(cfg))
    return out / "config.yaml", out / "weights.pt"


def extract(model_files: tuple[Path, Path], data: Path, out: Path, cwd: Path):
    config, weights = model_files
    return run_cli(["extract", str(config), "--weights", str(weights), "--data", str(data),
                    "--out", str(out), "--shard-size", str(SHARD_SIZE), "--quiet",
                    "--workers", "1"], cwd)


@pytest.fixture(scope="module")
def finished_once(model_files: tuple[Path, Path],
                  tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("finished")
    data = write_tracklets(out / "data")
    res = extract(model_files, data, out / "feats", out)
    assert res.returncode == 0, res.stderr[-3000:]
    return data, out / "feats"


@pytest.fixture
def finished(finished_once: tuple[Path, Path], tmp_path: Path) -> tuple[Path, Path]:
    """A finished extraction: its data and a copy of its features folder."""
    data, feats = finished_once
    return data, Path(shutil.copytree(feats, tmp_path / "feats"))


def test_corrupt_finished_shard_on_rerun_is_named(model_files: tuple[Path, Path],
                                                  finished: tuple[Path, Path],
                                                  tmp_path: Path) -> None:
    """Item 6: not a BadZipFile traceback; the other shards and the manifest are intact."""
    data, feats = finished
    manifest = (feats / "manifest.json").read_bytes()
    others = {p.name: file_sha256(p) for p in feats.glob("shard-*.npz")}
    bad = feats / "shard-00000.npz"
    bad.write_bytes(b"PK\x03\x04 truncated")
    line = error_line(extract(model_files, data, feats, tmp_path), 2)
    assert str(bad) in line and "delete it" in line
    assert (feats / "manifest.json").read_bytes() == manifest
    for name, digest in others.items():
        if name != bad.name:
            assert file_sha256(feats / name) == digest
    # the fix the message gives works: delete and re-run
    bad.unlink()
    res = extract(model_files, data, feats, tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert len(read_features(feats)) == TRACKLETS


def test_rerun_removes_temp_files_of_a_killed_run(model_files: tuple[Path, Path],
                                                  finished: tuple[Path, Path],
                                                  tmp_path: Path) -> None:
    """Item 7: temp files of the manifest and of shards, as a run killed mid-write leaves
    them (``atomic_path`` names), are gone after the next run; the results are unchanged."""
    data, feats = finished
    before = read_features(feats)
    stale = [feats / ".manifest.json.k1ll3d.tmp.json", feats / ".shard-00001.npz.x9.tmp.npz"]
    for path in stale:
        path.write_bytes(b"half a file")
    res = extract(model_files, data, feats, tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert not [p for p in stale if p.exists()]
    after = read_features(feats)
    assert after.tracklet_ids == before.tracklet_ids
    assert np.array_equal(after.features, before.features)
    assert json.loads((feats / "manifest.json").read_text())["complete"]


def test_16_bit_png_frame_is_read(model_files: tuple[Path, Path],
                                  finished_once: tuple[Path, Path], tmp_path: Path) -> None:
    """Item 6: a 16-bit PNG frame is decoded (scaled to 8 bits): the features equal those
    of the 8-bit frames."""
    data8, feats8 = finished_once
    data = Path(shutil.copytree(data8, tmp_path / "data"))
    frame = data / "t0" / "000.png"
    eight = cv2.imread(str(frame), cv2.IMREAD_UNCHANGED)
    cv2.imwrite(str(frame), eight.astype(np.uint16) * 257)  # the same image in 16 bits
    assert cv2.imread(str(frame), cv2.IMREAD_UNCHANGED).dtype == np.uint16
    res = extract(model_files, data, tmp_path / "feats16", tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    a, b = read_features(feats8), read_features(tmp_path / "feats16")
    assert a.tracklet_ids == b.tracklet_ids
    assert np.array_equal(a.features, b.features)
