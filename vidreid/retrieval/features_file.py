"""The on-disk features format written by ``vidreid extract`` and read by ``vidreid index``.

Layout of a features folder ``FEATS/``::

    FEATS/
      manifest.json        # written last, atomically, after every finished shard
      shard-00000.npz      # tracklets [0, shard_size)
      shard-00001.npz      # tracklets [shard_size, 2 * shard_size)
      ...

Each shard is an uncompressed ``.npz`` (no pickled objects, read with
``np.load(allow_pickle=False)``) holding:

- ``features``: float32 ``[N, D]``, one descriptor per tracklet;
- ``tracklet_ids``: unicode ``[N]``, unique over the whole folder;
- ``pids``, ``camids``: int64 ``[N]`` (0-based camera, as in :class:`~vidreid.data.tracklet.Tracklet`);
- ``frame_paths``: a 0-d unicode array holding JSON text: a list of N lists of frame paths.

``manifest.json`` holds ``format`` (``"vidreid-features"``), ``version``, ``dim``,
``normalized`` (whether the features are L2-normalised), ``meta`` (model / config / weights
description given by the extractor), ``identity`` (sha256 of the canonical JSON of ``meta``,
so features from two models are never mixed), ``shard_size``, ``total`` (expected number of
tracklets, when known), ``complete`` and ``shards``: a list of
``{"index", "file", "count", "sha256"}``.

Resuming: shard ``i`` always covers tracklets ``[i * shard_size, (i + 1) * shard_size)`` of the
extractor's (deterministic) tracklet order, so an interrupted extraction re-opens the folder
with the same ``meta`` and skips :meth:`FeatureWriter.done_shards`. A shard file appears
only complete (temp file + ``os.replace``) and is listed in the manifest only afterwards, so a
crash at any point leaves either a listed, verified shard or nothing that counts.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from vidreid import atomic
from vidreid.retrieval.archive import check_format, first_line, read_npz

FORMAT_NAME = "vidreid-features"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
DEFAULT_SHARD_SIZE = 4096
_SHARD_KEYS = ("features", "tracklet_ids", "pids", "camids", "frame_paths")
_HASH_CHUNK_BYTES = 1 << 20


class FeaturesFileError(ValueError):
    """A features folder is missing, corrupt, foreign, or does not match what was asked."""


@dataclass
class FeatureTable:
    """All tracklet descriptors of a features folder, in extraction order.

    ``meta`` is the extractor's description of the model; ``identity`` its hash, used to
    refuse mixing features of different models.
    """

    features: np.ndarray  # float32 [N, D]
    tracklet_ids: list[str]
    pids: np.ndarray  # int64 [N]
    camids: np.ndarray  # int64 [N]
    frame_paths: list[tuple[str, ...]]
    meta: dict[str, Any] = field(default_factory=dict)
    identity: str = ""
    normalized: bool = False

    def __len__(self) -> int:
        return len(self.tracklet_ids)

    @property
    def dim(self) -> int:
        return int(self.features.shape[1])


def meta_identity(meta: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of ``meta``: equal for the same model/config/weights."""
    try:
        text = json.dumps(meta, sort_keys=True, separators=(",", ":"))
    except TypeError as exc:
        raise FeaturesFileError(f"features meta must be JSON-serialisable: {exc}") from None
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def shard_name(index: int) -> str:
    """File name of shard ``index`` (``shard-00000.npz``)."""
    return f"shard-{index:05d}.npz"


def file_sha256(path: str | os.PathLike[str]) -> str:
    """sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_HASH_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def atomic_write_bytes(path: str | os.PathLike[str], write: Callable[[BinaryIO], Any]) -> None:
    """Call ``write(fileobj)`` on a temp file next to ``path``, then rename it over ``path``.

    Readers see the old file or the new one, never half of one; on any error the temp file
    is removed and ``path`` is untouched.
    """
    atomic.write_bytes(path, write, fsync=True)


def _write_json_atomic(path: Path, obj: Any) -> None:
    data = (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode("utf-8")
    atomic_write_bytes(path, lambda fh: fh.write(data))


class FeatureWriter:
    """Write a features folder shard by shard, resumably.

    Typical extractor loop::

        writer = FeatureWriter(out, dim=model.feature_dim, meta={"config": ..., "weights": ...})
        for index, start, stop in writer.pending_shards(len(gallery)):
            feats = extract(gallery[start:stop])
            writer.write_shard(index, feats, ids, pids, camids, frames)
        writer.finish(len(gallery))

    Re-opening an existing folder requires the same ``dim``, ``meta`` and ``shard_size``
    (otherwise the old shards would be silently mixed with a different model's features).
    """

    def __init__(
        self,
        out_dir: str | os.PathLike[str],
        dim: int,
        meta: dict[str, Any],
        shard_size: int = DEFAULT_SHARD_SIZE,
        normalized: bool = False,
    ) -> None:
        if int(dim) <= 0:
            raise FeaturesFileError(f"feature dim must be positive, got {dim}")
        if int(shard_size) <= 0:
            raise FeaturesFileError(f"shard_size must be positive, got {shard_size}")
        self.out_dir = Path(out_dir)
        self.dim = int(dim)
        self.meta = dict(meta)
        self.identity = meta_identity(self.meta)
        self.shard_size = int(shard_size)
        self.normalized = bool(normalized)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._manifest_path = self.out_dir / MANIFEST_NAME
        # temp files of a run killed mid-write (kill -9, SIGTERM) are never valid output
        atomic.remove_stale_temps(self.out_dir, MANIFEST_NAME, "shard-*.npz")
        self._shards: dict[int, dict[str, Any]] = {}
        self._total: int | None = None
        if self._manifest_path.exists():
            self._resume()
        elif any(self.out_dir.glob("shard-*.npz")):
            raise FeaturesFileError(
                f"{self.out_dir} holds shard files but no {MANIFEST_NAME}: it was not written by "
                "vidreid extract or is damaged; delete it or choose another --out"
            )

    def _resume(self) -> None:
        manifest = _read_manifest(self.out_dir)
        checks = (
            ("dim", manifest["dim"], self.dim),
            ("identity (model/config)", manifest["identity"], self.identity),
            ("shard_size", manifest["shard_size"], self.shard_size),
            ("normalized", manifest["normalized"], self.normalized),
        )
        for what, old, new in checks:
            if old != new:
                raise FeaturesFileError(
                    f"{self._manifest_path}: existing features have {what} {old!r} but this "
                    f"extraction has {new!r}; use a new output folder or delete the old one"
                )
        for entry in manifest["shards"]:
            if (self.out_dir / entry["file"]).is_file():
                self._shards[int(entry["index"])] = entry
        self._total = manifest.get("total")

    def shard_tracklet_ids(self, index: int) -> list[str]:
        """The tracklet ids of finished shard ``index``, read and checked against its sha256
        (a corrupt shard raises :class:`FeaturesFileError` naming the file)."""
        entry = self._shards[int(index)]
        data = _load_shard(self.out_dir / entry["file"], entry, self.dim, verify=True)
        return [str(t) for t in data["tracklet_ids"]]

    def done_shards(self) -> set[int]:
        """Indices of shards already written and listed in the manifest (skip these)."""
        return set(self._shards)

    def pending_shards(self, total: int) -> list[tuple[int, int, int]]:
        """``(index, start, stop)`` of the shards still to write for ``total`` tracklets."""
        if self._total is not None and self._total != total:
            raise FeaturesFileError(
                f"{self._manifest_path}: existing extraction was for {self._total} tracklets, "
                f"this one has {total}; use a new output folder or delete the old one"
            )
        self._total = int(total)
        out = []
        for index, start in enumerate(range(0, total, self.shard_size)):
            if index not in self._shards:
                out.append((index, start, min(start + self.shard_size, total)))
        return out

    def write_shard(
        self,
        index: int,
        features: np.ndarray,
        tracklet_ids: Sequence[str],
        pids: Sequence[int] | np.ndarray,
        camids: Sequence[int] | np.ndarray,
        frame_paths: Sequence[Sequence[str]],
    ) -> Path:
        """Write shard ``index`` atomically, then list it in the manifest atomically."""
        feats = np.ascontiguousarray(features, dtype=np.float32)
        n = len(tracklet_ids)
        if feats.ndim != 2 or feats.shape[1] != self.dim:
            raise FeaturesFileError(
                f"shard {index}: features must be [N, {self.dim}], got shape {tuple(feats.shape)}"
            )
        lengths = {
            "features": feats.shape[0],
            "pids": len(pids),
            "camids": len(camids),
            "frame_paths": len(frame_paths),
        }
        if n == 0 or any(v != n for v in lengths.values()):
            raise FeaturesFileError(
                f"shard {index}: need the same non-zero length for tracklet_ids ({n}) and {lengths}"
            )
        if self._total is not None:
            expected = min(self.shard_size, self._total - index * self.shard_size)
            if expected <= 0 or n != expected:
                raise FeaturesFileError(
                    f"shard {index}: got {n} tracklets but shard {index} of {self._total} with "
                    f"shard_size {self.shard_size} covers {max(expected, 0)}; see pending_shards()"
                )
        if len(set(tracklet_ids)) != n:
            raise FeaturesFileError(f"shard {index}: tracklet_ids are not unique")
        if not np.isfinite(feats).all():
            raise FeaturesFileError(f"shard {index}: features contain NaN or inf")
        arrays = {
            "features": feats,
            "tracklet_ids": np.asarray([str(t) for t in tracklet_ids], dtype=np.str_),
            "pids": np.asarray(pids, dtype=np.int64),
            "camids": np.asarray(camids, dtype=np.int64),
            "frame_paths": np.asarray(json.dumps([[str(p) for p in fr] for fr in frame_paths])),
        }
        path = self.out_dir / shard_name(index)
        atomic_write_bytes(path, lambda fh: np.savez(fh, **arrays))
        self._shards[int(index)] = {
            "index": int(index),
            "file": path.name,
            "count": n,
            "sha256": file_sha256(path),
        }
        self._write_manifest(complete=False)
        return path

    def finish(self, total: int | None = None) -> Path:
        """Check shards ``0..K-1`` are all present (and sum to ``total``) and mark complete."""
        expected = total if total is not None else self._total
        if expected is not None:
            n_shards = -(-int(expected) // self.shard_size)  # ceil division
        else:
            n_shards = max(self._shards, default=-1) + 1
        missing = sorted(set(range(n_shards)) - set(self._shards))
        if missing:
            raise FeaturesFileError(
                f"{self.out_dir}: shards {missing[:10]} are missing; re-run the extraction to "
                "resume it"
            )
        count = sum(e["count"] for e in self._shards.values())
        if expected is not None and count != expected:
            raise FeaturesFileError(
                f"{self.out_dir}: shards hold {count} tracklets but {expected} were expected; "
                "re-run the extraction to resume it"
            )
        self._total = count
        self._write_manifest(complete=True)
        return self._manifest_path

    def _write_manifest(self, complete: bool) -> None:
        manifest = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "dim": self.dim,
            "normalized": self.normalized,
            "meta": self.meta,
            "identity": self.identity,
            "shard_size": self.shard_size,
            "total": self._total,
            "complete": complete,
            "shards": [self._shards[i] for i in sorted(self._shards)],
        }
        _write_json_atomic(self._manifest_path, manifest)


def _read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST_NAME
    if not folder.exists():
        raise FileNotFoundError(f"features folder {folder} does not exist")
    if not path.is_file():
        raise FeaturesFileError(
            f"{folder} has no {MANIFEST_NAME}: it is not a features folder written by "
            "vidreid extract (or the extraction wrote no shard yet); run vidreid extract"
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FeaturesFileError(
            f"{path} is not valid JSON ({exc}); the folder is damaged: re-run vidreid extract"
        ) from None
    check_format(
        path,
        manifest,
        name=FORMAT_NAME,
        max_version=FORMAT_VERSION,
        what="features manifest",
        error=FeaturesFileError,
    )
    required = ("dim", "normalized", "meta", "identity", "shard_size", "shards")
    missing = [k for k in required if k not in manifest]
    if missing:
        raise FeaturesFileError(f"{path} lacks fields {missing}; re-run vidreid extract")
    return manifest


def _load_shard(path: Path, entry: dict[str, Any], dim: int, verify: bool) -> dict[str, Any]:
    if not path.is_file():
        raise FeaturesFileError(
            f"shard {path} listed in the manifest is missing; re-run vidreid extract to resume"
        )
    if verify and file_sha256(path) != entry.get("sha256"):
        raise FeaturesFileError(
            f"shard {path} does not match its sha256 in {MANIFEST_NAME} (corrupt or replaced); "
            "delete it and re-run vidreid extract to rewrite it"
        )
    fix = "it is truncated or corrupt: delete it and re-run vidreid extract to rewrite it"
    data = read_npz(path, error=FeaturesFileError, label=f"shard {path}", fix=fix)
    missing = [k for k in _SHARD_KEYS if k not in data]
    if missing:
        raise FeaturesFileError(f"shard {path} lacks arrays {missing}: not a vidreid shard")
    try:
        frames = json.loads(str(data["frame_paths"]))
    except ValueError as exc:
        raise FeaturesFileError(f"shard {path} cannot be read ({first_line(exc)}); {fix}") from None
    feats = data["features"]
    n = int(entry.get("count", -1))
    if feats.dtype != np.float32 or feats.ndim != 2 or feats.shape[1] != dim:
        raise FeaturesFileError(
            f"shard {path}: features are {feats.dtype} {tuple(feats.shape)}, expected float32 "
            f"[N, {dim}] (manifest dim); the folder mixes outputs: re-run vidreid extract"
        )
    lengths = {len(feats), len(data["tracklet_ids"]), len(data["pids"]), len(data["camids"])}
    if lengths != {n} or len(frames) != n:
        raise FeaturesFileError(
            f"shard {path}: array lengths {sorted(lengths)} / {len(frames)} frame lists do not "
            f"match the manifest count {n}; delete the shard and re-run vidreid extract"
        )
    data["frame_paths"] = frames
    return data


def read_features(path: str | os.PathLike[str], verify: bool = True) -> FeatureTable:
    """Load a complete features folder (or its ``manifest.json``) into a :class:`FeatureTable`.

    ``verify`` checks each shard's sha256 against the manifest (reads every byte twice; turn
    off only for trusted local folders).
    """
    folder = Path(path)
    if folder.name == MANIFEST_NAME:
        folder = folder.parent
    manifest = _read_manifest(folder)
    if not manifest.get("complete", False):
        raise FeaturesFileError(
            f"{folder}: the extraction is incomplete ({len(manifest['shards'])} shards done); "
            "re-run vidreid extract with the same arguments to resume it"
        )
    dim = int(manifest["dim"])
    entries = sorted(manifest["shards"], key=lambda e: int(e["index"]))
    if [int(e["index"]) for e in entries] != list(range(len(entries))):
        raise FeaturesFileError(f"{folder / MANIFEST_NAME}: shard indices are not 0..K-1")
    shards = [_load_shard(folder / e["file"], e, dim, verify) for e in entries]
    if shards:
        features = np.concatenate([s["features"] for s in shards])
        pids = np.concatenate([s["pids"] for s in shards]).astype(np.int64)
        camids = np.concatenate([s["camids"] for s in shards]).astype(np.int64)
    else:
        features = np.zeros((0, dim), np.float32)
        pids = np.zeros(0, np.int64)
        camids = np.zeros(0, np.int64)
    tracklet_ids = [str(t) for s in shards for t in s["tracklet_ids"]]
    if len(set(tracklet_ids)) != len(tracklet_ids):
        raise FeaturesFileError(f"{folder}: tracklet ids repeat across shards; re-run extraction")
    frame_paths = [tuple(fr) for s in shards for fr in s["frame_paths"]]
    return FeatureTable(
        features=features,
        tracklet_ids=tracklet_ids,
        pids=pids,
        camids=camids,
        frame_paths=frame_paths,
        meta=dict(manifest["meta"]),
        identity=str(manifest["identity"]),
        normalized=bool(manifest["normalized"]),
    )
