"""Features folder: round trip, resume, and clear errors for damaged or mismatched folders."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vidreid.retrieval.features_file import (
    MANIFEST_NAME,
    FeaturesFileError,
    FeatureWriter,
    read_features,
    shard_name,
)

DIM = 6
META = {"model": "baseline", "weights_sha256": "abc"}


def _gallery(n: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "features": rng.standard_normal((n, DIM)).astype(np.float32),
        "tracklet_ids": [f"trk{i:03d}" for i in range(n)],
        "pids": np.arange(n) % 3,
        "camids": np.arange(n) % 2,
        "frame_paths": [[f"p{i}/f{j}.jpg" for j in range(i % 3 + 1)] for i in range(n)],
    }


def _write(writer: FeatureWriter, g: dict, index: int, start: int, stop: int) -> None:
    writer.write_shard(index, *(g[k][start:stop] for k in g))


def _extract(out, g: dict, shard_size: int = 3, skip_after: int | None = None) -> FeatureWriter:
    """Simulate `vidreid extract`: write pending shards, optionally 'crash' after some."""
    writer = FeatureWriter(out, DIM, META, shard_size=shard_size)
    for done, (index, start, stop) in enumerate(writer.pending_shards(len(g["tracklet_ids"]))):
        if skip_after is not None and done == skip_after:
            return writer
        _write(writer, g, index, start, stop)
    writer.finish()
    return writer


def test_round_trip(tmp_path):
    g = _gallery(7)
    _extract(tmp_path / "feats", g)
    manifest = json.loads((tmp_path / "feats" / MANIFEST_NAME).read_text())
    assert [s["count"] for s in manifest["shards"]] == [3, 3, 1]
    table = read_features(tmp_path / "feats")
    np.testing.assert_array_equal(table.features, g["features"])
    assert table.features.dtype == np.float32
    assert table.tracklet_ids == g["tracklet_ids"]
    np.testing.assert_array_equal(table.pids, g["pids"])
    np.testing.assert_array_equal(table.camids, g["camids"])
    assert table.frame_paths == [tuple(f) for f in g["frame_paths"]]
    assert table.meta == META and len(table.identity) == 64
    # the manifest path itself is accepted too
    assert len(read_features(tmp_path / "feats" / MANIFEST_NAME)) == 7


def test_resume_skips_done_shards(tmp_path):
    g = _gallery(8)
    out = tmp_path / "feats"
    _extract(out, g, skip_after=2)  # interrupted after shards 0 and 1
    with pytest.raises(FeaturesFileError, match="incomplete"):
        read_features(out)
    before = {i: (out / shard_name(i)).stat().st_mtime_ns for i in (0, 1)}

    writer = FeatureWriter(out, DIM, META, shard_size=3)
    assert writer.done_shards() == {0, 1}
    assert writer.pending_shards(8) == [(2, 6, 8)]
    _write(writer, g, 2, 6, 8)
    writer.finish()
    assert {i: (out / shard_name(i)).stat().st_mtime_ns for i in (0, 1)} == before
    np.testing.assert_array_equal(read_features(out).features, g["features"])


def test_resume_refuses_other_model_or_dim(tmp_path):
    out = tmp_path / "feats"
    _extract(out, _gallery(4), skip_after=1)
    with pytest.raises(FeaturesFileError, match="identity"):
        FeatureWriter(out, DIM, {"model": "other"}, shard_size=3)
    with pytest.raises(FeaturesFileError, match="dim"):
        FeatureWriter(out, DIM + 1, META, shard_size=3)


def test_finish_reports_missing_shard(tmp_path):
    g = _gallery(7)
    writer = FeatureWriter(tmp_path / "feats", DIM, META, shard_size=3)
    _write(writer, g, 0, 0, 3)
    _write(writer, g, 2, 6, 7)
    with pytest.raises(FeaturesFileError, match=r"shards \[1\] are missing"):
        writer.finish(total=7)


def test_write_shard_rejects_bad_input(tmp_path):
    writer = FeatureWriter(tmp_path / "feats", DIM, META, shard_size=3)
    g = _gallery(3)
    with pytest.raises(FeaturesFileError, match=r"\[N, 6\]"):
        writer.write_shard(0, np.zeros((3, DIM + 1)), *(g[k] for k in list(g)[1:]))
    writer.pending_shards(5)  # 5 tracklets in shards of 3: shard 1 holds 2
    with pytest.raises(FeaturesFileError, match="covers 2"):
        writer.write_shard(1, g["features"], *(g[k] for k in list(g)[1:]))
    with pytest.raises(FeaturesFileError, match="not unique"):
        writer.write_shard(
            0, g["features"], ["a", "a", "b"], g["pids"], g["camids"], g["frame_paths"]
        )


def test_checksum_mismatch_names_the_shard(tmp_path):
    out = tmp_path / "feats"
    _extract(out, _gallery(7))
    shard = out / shard_name(1)
    data = bytearray(shard.read_bytes())
    data[200] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(FeaturesFileError, match=r"shard-00001\.npz.*sha256"):
        read_features(out)


def test_truncated_shard_is_a_clear_error(tmp_path):
    out = tmp_path / "feats"
    _extract(out, _gallery(7))
    shard = out / shard_name(0)
    shard.write_bytes(shard.read_bytes()[:100])
    with pytest.raises(FeaturesFileError, match=r"shard-00000\.npz.*truncated or corrupt"):
        read_features(out, verify=False)


def test_missing_or_foreign_manifest(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_features(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FeaturesFileError, match="no manifest.json"):
        read_features(tmp_path / "empty")
    (tmp_path / "empty" / MANIFEST_NAME).write_text('{"format": "something-else"}')
    with pytest.raises(FeaturesFileError, match="not a vidreid features manifest"):
        read_features(tmp_path / "empty")
