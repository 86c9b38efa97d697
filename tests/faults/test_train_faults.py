"""Faults around ``vidreid train`` (issue 17): each runs the CLI in a subprocess with a
timeout and checks the exit status, a one-line error naming the file or key, and that the
results already on disk are intact."""

from __future__ import annotations

import resource
import shutil
import signal
from pathlib import Path

import pytest
import torch
import yaml
from _faults_cli import (
    copy_tree,
    error_line,
    eval_frames,
    make_synth,
    run_cli,
    train_args,
    train_frames,
)

from vidreid.engine.checkpoint import load_checkpoint

CORRUPT_BYTES = b"not an image\n" * 8


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_synth(tmp_path_factory.mktemp("synth"))


@pytest.fixture(scope="module")
def base_run(synth: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 1-epoch run (its last.pt is the 'earlier result' the faults must keep),
    trained with ``train.amp=off`` given on the command line (item 7)."""
    out = tmp_path_factory.mktemp("base")
    res = run_cli([*train_args(synth, out, workers=0), "train.amp=off"], out)
    assert res.returncode == 0, res.stderr[-3000:]
    return out / "run"


@pytest.fixture
def run_copy(base_run: Path, tmp_path: Path) -> Path:
    return copy_tree(base_run, tmp_path / "run")


def resume_args(run: Path, *more: str) -> list[str]:
    return ["train", "--resume", str(run), "train.epochs=2", "data.num_workers=1", *more]


def test_amp_off_on_the_command_line_is_the_mode_not_a_boolean(base_run: Path) -> None:
    """Item 7: ``train.amp=off`` (what the non-finite-loss message tells users to type)
    trained the base run in that mode."""
    saved = yaml.safe_load((base_run / "config.yaml").read_text())
    assert saved["train"]["amp"] == "off"
    assert load_checkpoint(base_run)["epoch"] == 1


@pytest.mark.parametrize(("override", "key"), [
    ("eval.protocols=[v2x]", "eval.protocols"),
    ("eval.batch_size=-1", "eval.batch_size"),
])
def test_bad_eval_setting_is_refused_before_training(run_copy: Path, override: str,
                                                      key: str) -> None:
    """Items 1, 2: refused before any epoch (with workers configured, no hang), the run's
    last.pt untouched."""
    before = (run_copy / "last.pt").read_bytes()
    line = error_line(run_cli(resume_args(run_copy, override), run_copy.parent), 2)
    assert key in line
    assert (run_copy / "last.pt").read_bytes() == before


def test_unknown_best_metric_is_refused_before_training(synth: Path, tmp_path: Path) -> None:
    """Item 7: ``best.pt`` would never be written; the error lists the known names."""
    line = error_line(run_cli([*train_args(synth, tmp_path), "train.best_metric=nope"],
                              tmp_path), 2)
    assert "train.best_metric" in line and "'nope'" in line and "v2v/mAP" in line
    assert not (tmp_path / "run" / "last.pt").exists()


def test_resume_of_a_missing_run_folder_names_it(tmp_path: Path) -> None:
    """Item 7: not ``<parent>/config.yaml not found``."""
    missing = tmp_path / "runs" / "nope"
    (tmp_path / "runs").mkdir()
    line = error_line(run_cli(["train", "--resume", str(missing)], tmp_path), 2)
    assert str(missing) in line and "run folder" in line
    assert "config.yaml" not in line


def test_empty_checkpoint_gives_a_reason(base_run: Path, tmp_path: Path) -> None:
    """Item 7: a 0-byte last.pt (a write that never finished) is named and explained."""
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(base_run / "config.yaml", run / "config.yaml")
    (run / "last.pt").write_bytes(b"")
    line = error_line(run_cli(["train", "--resume", str(run)], tmp_path), 2)
    assert str(run / "last.pt") in line and "empty" in line and "()" not in line


def test_corrupt_training_frame_with_workers_exits_with_one_line(
        synth: Path, run_copy: Path, tmp_path: Path) -> None:
    """Items 1, 5: the error of a loader worker ends the run promptly (workers shut down) as
    the frame's one-line message; the resumed run's last.pt is untouched."""
    data = copy_tree(synth, tmp_path / "data")
    ident, frames = next(iter(train_frames(data).items()))  # every identity is in each epoch
    for frame in frames:
        frame.write_bytes(CORRUPT_BYTES)
    before = (run_copy / "last.pt").read_bytes()
    res = run_cli(resume_args(run_copy, f"data.root={data}"), tmp_path)
    line = error_line(res, 2)
    assert "cannot read frame" in line and f"bbox_train/{ident}/" in line
    assert (run_copy / "last.pt").read_bytes() == before


def test_corrupt_test_frame_keeps_the_trained_epoch(synth: Path, tmp_path: Path) -> None:
    """Items 2, 5: the final evaluation fails on a corrupt query/gallery frame (read by
    workers); last.pt of the finished epoch was saved before it."""
    data = copy_tree(synth, tmp_path / "data")
    bad = eval_frames(data)
    for frame in bad:
        frame.write_bytes(CORRUPT_BYTES)
    res = run_cli(train_args(data, tmp_path, workers=1), tmp_path)
    line = error_line(res, 2)
    assert "cannot read frame" in line and any(str(f) in line for f in bad)
    assert load_checkpoint(tmp_path / "run")["epoch"] == 1


def _file_size_limit(limit: int):
    def preexec() -> None:
        # a write past the limit fails with EFBIG (as on a full disk) instead of SIGXFSZ
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return preexec


def test_failed_checkpoint_write_is_one_line_and_keeps_the_last_good(run_copy: Path) -> None:
    """Items 1, 6: torch.save's ``inline_container`` RuntimeError (here: a file size limit
    below the checkpoint's size, as a full disk) is one line naming last.pt; with loader
    workers alive the run still exits; the previous last.pt is intact, no temp file left."""
    before = (run_copy / "last.pt").read_bytes()
    res = run_cli(resume_args(run_copy), run_copy.parent,
                  preexec=_file_size_limit(len(before) // 2))
    line = error_line(res, 1)
    assert str(run_copy / "last.pt") in line and "disk full" in line
    assert (run_copy / "last.pt").read_bytes() == before
    assert load_checkpoint(run_copy)["epoch"] == 1
    assert not list(run_copy.glob(".last.pt.*"))


def _make_read_only(folder: Path) -> bool:
    """chmod 555, or as root (which ignores it) the immutable attribute; False if neither
    stops a write here."""
    import subprocess

    folder.chmod(0o555)
    probe = folder / "probe"
    try:
        probe.mkdir()
    except PermissionError:
        return True
    probe.rmdir()
    done = subprocess.run(["chattr", "+i", str(folder)], capture_output=True)
    return done.returncode == 0


def test_read_only_output_folder_is_one_line(synth: Path, tmp_path: Path) -> None:
    """Item 6: an OSError while creating the run folder names the folder."""
    import subprocess

    ro = tmp_path / "ro"
    ro.mkdir()
    if not _make_read_only(ro):
        pytest.skip("cannot make a read-only folder here (root without chattr +i)")
    try:
        res = run_cli([*train_args(synth, ro / "runs")], tmp_path)
    finally:
        subprocess.run(["chattr", "-i", str(ro)], capture_output=True)
        ro.chmod(0o755)
    line = error_line(res, 1)
    assert str(ro / "runs") in line
    assert "Permission denied" in line or "Operation not permitted" in line


def test_checkpoint_translation_keeps_other_runtime_errors(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The write-failure translation is narrow: another RuntimeError from torch.save is not
    turned into a disk error."""
    from vidreid.engine import checkpoint

    def broken(obj: object, path: str) -> None:
        raise RuntimeError("some bug")

    monkeypatch.setattr(torch, "save", broken)
    with pytest.raises(RuntimeError, match="some bug"):
        checkpoint.atomic_torch_save({}, tmp_path / "x.pt")
    assert not list(tmp_path.iterdir())
