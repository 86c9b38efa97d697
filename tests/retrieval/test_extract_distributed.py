"""``vidreid extract`` as torchrun runs it, with 2 gloo processes: the ranks split the
tracklets and write one features folder equal to a single-process extraction's, which a
later run resumes."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch.multiprocessing as mp
from _extract_data import make_folder_dataset, tiny_config, write_model

from vidreid.cli import main
from vidreid.retrieval.features_file import read_features

WORLD = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rank(rank: int, port: int, argv: list[str]) -> None:
    """One torchrun process: its environment, then the CLI."""
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(WORLD), LOCAL_RANK=str(rank),
                      LOCAL_WORLD_SIZE=str(WORLD), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    assert main(argv) == 0


@pytest.mark.slow  # 2 spawned processes importing torch: ~90 s on the loaded 2-core host
def test_two_process_extract_equals_single_process_and_resumes(tmp_path: Path) -> None:
    root = make_folder_dataset(tmp_path / "data")
    config, weights = write_model(tmp_path, tiny_config(head="ta"), seed=1)

    def argv(out: Path) -> list[str]:
        return ["extract", str(config), "--weights", str(weights), "--data", str(root),
                "--dataset", "folder", "--split", "test", "--out", str(out), "--amp", "off",
                "--workers", "0", "--batch-frames", "6", "--quiet"]

    assert main(argv(tmp_path / "single")) == 0
    mp.spawn(_rank, args=(_free_port(), argv(tmp_path / "multi")), nprocs=WORLD, join=True)

    single, multi = read_features(tmp_path / "single"), read_features(tmp_path / "multi")
    manifest = json.loads((tmp_path / "multi" / "manifest.json").read_text())
    assert manifest["complete"] and len(manifest["shards"]) == WORLD  # one shard per rank
    assert multi.tracklet_ids == single.tracklet_ids and len(multi) == 12
    np.testing.assert_array_equal(multi.pids, single.pids)
    np.testing.assert_array_equal(multi.camids, single.camids)
    assert multi.frame_paths == single.frame_paths
    np.testing.assert_allclose(multi.features, single.features, atol=1e-5, rtol=1e-4)

    # resumable as before: a later (here single-process) run keeps the folder's shard size,
    # keeps a shard rank 1 finished that rank 0 had not listed yet (a crash in between), and
    # recomputes only a missing one
    folder = tmp_path / "multi"
    stamps = {p.name: p.stat().st_mtime_ns for p in folder.glob("shard-*.npz")}
    manifest["shards"], manifest["complete"] = manifest["shards"][:1], False
    (folder / "manifest.json").write_text(json.dumps(manifest))
    assert main(argv(folder)) == 0
    assert {p.name: p.stat().st_mtime_ns for p in folder.glob("shard-*.npz")} == stamps
    assert json.loads((folder / "manifest.json").read_text())["complete"]
    (folder / "shard-00001.npz").unlink()
    assert main(argv(folder)) == 0
    assert (folder / "shard-00000.npz").stat().st_mtime_ns == stamps["shard-00000.npz"]
    again = read_features(folder)
    np.testing.assert_allclose(again.features, single.features, atol=1e-5, rtol=1e-4)
