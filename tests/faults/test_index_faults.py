"""Faults around the gallery index, driven through the CLI in subprocesses (issue 17).

Each case runs ``python -m vidreid.cli`` with a timeout, so a hang fails the test instead of
hanging the suite, and checks the exit status, a one-line message naming the file, and that
the index on disk is intact.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vidreid import cli
from vidreid.retrieval.features_file import FeatureWriter, read_features
from vidreid.retrieval.index import GalleryIndex, index_write_lock

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "vidreid.cli"]
SLOW_CLI = [sys.executable, str(Path(__file__).with_name("_slow_index_cli.py"))]
TIMEOUT_S = 120  # one CLI run takes a few seconds (imports); a hang is far longer
DIM = 4
META = {"model": "tiny"}
WRITERS = 3  # plus one remove
LOAD_PAUSE_S = 0.5  # between a writer's load and save: without a lock all writers overlap


def _env() -> dict[str, str]:
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": str(REPO) + (os.pathsep + path if path else "")}


def _popen(argv: list[str], **kw) -> subprocess.Popen:
    return subprocess.Popen(
        argv, cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw
    )


def _run(argv: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        argv, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=TIMEOUT_S
    )


def _feats(folder: Path, ids: list[str], seed: int) -> Path:
    rng = np.random.default_rng(seed)
    writer = FeatureWriter(folder, DIM, META, shard_size=max(1, len(ids)))
    feats = rng.standard_normal((len(ids), DIM)).astype(np.float32)
    writer.write_shard(0, feats, ids, [0] * len(ids), [0] * len(ids), [[f"{t}.jpg"] for t in ids])
    writer.finish(len(ids))
    return folder


def _index(tmp_path: Path, kind: str = "flat") -> Path:
    table = read_features(_feats(tmp_path / "base", [f"b{i}" for i in range(8)], seed=0))
    return GalleryIndex.from_table(table, kind).save(tmp_path / "g.index")


def _one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def test_concurrent_adds_and_remove_serialise_and_none_is_lost(tmp_path):
    index = _index(tmp_path)
    added = {f"w{w}_{i}" for w in range(WRITERS) for i in range(3)}
    folders = [
        _feats(tmp_path / f"add{w}", [f"w{w}_{i}" for i in range(3)], seed=w + 1)
        for w in range(WRITERS)
    ]
    edits = [["add", str(index), str(f)] for f in folders] + [["remove", str(index), "b0"]]
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    racing = [*SLOW_CLI, str(barrier), str(len(edits)), str(LOAD_PAUSE_S), "index"]
    procs = [_popen([*racing, *edit]) for edit in edits]
    try:
        for proc in procs:
            _, err = proc.communicate(timeout=TIMEOUT_S)
            assert proc.returncode == 0, err
    except subprocess.TimeoutExpired:
        pytest.fail("a concurrent `vidreid index add/remove` hung")
    finally:
        for proc in procs:
            proc.kill()
    ids = set(GalleryIndex.load(index).tracklet_ids)
    assert added <= ids, f"lost adds: {sorted(added - ids)}"
    assert "b0" not in ids, "lost the remove"
    assert ids == added | {f"b{i}" for i in range(1, 8)}


def test_writer_gives_up_with_a_clear_message_when_the_lock_is_held(tmp_path):
    index = _index(tmp_path)
    more = _feats(tmp_path / "more", ["m0"], seed=9)
    before = index.read_bytes()
    with index_write_lock(index):
        res = _run([*CLI, "index", "add", str(index), str(more), "--lock-timeout", "0.5"])
    assert res.returncode == 2
    line = _one_line(res.stderr)
    assert str(index) in line and f"pid {os.getpid()}" in line and "0.5 s" in line, line
    assert "--lock-timeout" in line
    assert index.read_bytes() == before  # nothing written
    with index_write_lock(index, timeout=0):  # released by the holder, free again
        pass


def test_info_into_a_closed_pipe_is_quiet(tmp_path):
    """``vidreid index info X | head -1``: the reader is gone before vidreid writes."""
    index = _index(tmp_path)
    proc = _popen([*CLI, "index", "info", str(index)])
    proc.stdout.close()  # no reader left: every write to stdout is EPIPE
    try:
        err = proc.stderr.read()
        proc.wait(timeout=TIMEOUT_S)
    finally:
        proc.kill()
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    assert proc.returncode == 141  # 128 + SIGPIPE, like a command killed by it


def _garbage_faiss_member(path: Path) -> None:
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["faiss"] = np.frombuffer(b"not a faiss index" * 8, np.uint8)
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


def _damage(index: Path, how: str) -> None:
    blob = index.read_bytes()
    if how == "truncate":
        index.write_bytes(blob[: len(blob) // 2])
    elif how == "flip_byte":
        flipped = bytearray(blob)
        flipped[len(blob) // 2] ^= 0xFF
        index.write_bytes(bytes(flipped))
    elif how == "garbage":
        index.write_bytes(b"\x00garbage" * 100)
    else:  # a valid archive with one member edited
        with np.load(index, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        if how == "faiss_member":  # not a FAISS index (FAISS's error spans several lines)
            arrays["faiss"] = np.frombuffer(b"not a faiss index" * 8, np.uint8)
        else:  # a header without a required field (was a bare `KeyError: 'next_id'`)
            header = json.loads(str(arrays["header"]))
            del header["next_id"]
            arrays["header"] = np.asarray(json.dumps(header))
        with open(index, "wb") as fh:
            np.savez(fh, **arrays)


DAMAGES = ("truncate", "flip_byte", "garbage", "faiss_member", "header_field")
IN_SUBPROCESS = ("header_field",)  # one through a real process; all through main()


def test_corrupt_index_is_a_one_line_error_naming_it(tmp_path):
    indexes = {}
    for how in DAMAGES:
        (tmp_path / how).mkdir()
        index = _index(tmp_path / how, "hnsw")
        _damage(index, how)
        indexes[how] = (index, index.read_bytes())
    # Through its main() in this process: the same code without a second startup cost.
    procs = [_popen([*CLI, "index", "info", str(indexes[how][0])]) for how in IN_SUBPROCESS]
    for proc, how in zip(procs, IN_SUBPROCESS, strict=True):
        index = indexes[how][0]
        out, err = proc.communicate(timeout=TIMEOUT_S)
        assert proc.returncode == 2 and not out
        line = _one_line(err)
        assert line.startswith("vidreid: error: ") and str(index) in line, line
    for index, damaged in indexes.values():
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            assert cli.main(["index", "info", str(index)]) == 2
        line = _one_line(err.getvalue())
        assert line.startswith("vidreid: error: ") and str(index) in line, line
        assert index.read_bytes() == damaged  # a reader never rewrites the file


def test_editing_a_missing_index_leaves_no_lock_file(tmp_path):
    more = _feats(tmp_path / "more", ["m0"], seed=9)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert cli.main(["index", "add", str(tmp_path / "none.index"), str(more)]) == 2
    assert "none.index does not exist" in _one_line(err.getvalue())
    assert not list(tmp_path.glob("*.lock"))
    with contextlib.redirect_stderr(err), pytest.raises(FileNotFoundError, match="folder"):
        with index_write_lock(tmp_path / "no" / "such.index"):
            pass
