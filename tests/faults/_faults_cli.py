"""Run the ``vidreid`` CLI in a subprocess for fault tests: a hang becomes a failed test
(the whole process group is killed at the timeout), and errors must be one line."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import vidreid

#: The checkout whose ``vidreid`` the tests import (the subprocesses run the same one).
REPO = Path(vidreid.__file__).resolve().parents[1]
CONFIG = str(Path(__file__).resolve().parents[2] / "configs" / "baselines" / "tp_synth.yaml")
#: Generous: a healthy tiny run takes a few seconds (~20 s on 2 busy cores, most of it
#: importing torch); a hang never ends.
TIMEOUT_S = 180


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["OMP_NUM_THREADS"] = "1"
    return env


def start_cli(args: Sequence[str], cwd: Path,
              preexec: Callable[[], None] | None = None) -> subprocess.Popen:
    """``python -m vidreid.cli ARGS`` in its own process group (so it can be killed whole)."""
    return subprocess.Popen(
        [sys.executable, "-m", "vidreid.cli", *map(str, args)], cwd=cwd, env=cli_env(),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        preexec_fn=preexec,
    )


def finish(proc: subprocess.Popen, timeout: float = TIMEOUT_S) -> Result:
    """Wait for ``proc``; on timeout kill its process group and fail."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(
            f"vidreid did not exit within {timeout} s (hang); stderr:\n{err}") from None
    return Result(proc.returncode, out, err)


def run_cli(args: Sequence[str], cwd: Path, timeout: float = TIMEOUT_S,
            preexec: Callable[[], None] | None = None) -> Result:
    return finish(start_cli(args, cwd, preexec), timeout)


def error_line(res: Result, code: int) -> str:
    """Assert exit status ``code`` and a single ``vidreid: error:`` line without traceback."""
    assert res.returncode == code, (res.returncode, res.stderr[-3000:])
    assert "Traceback" not in res.stderr, res.stderr[-3000:]
    lines = [line for line in res.stderr.splitlines() if line.startswith("vidreid: error:")]
    assert len(lines) == 1, res.stderr[-3000:]
    assert "Caught " not in lines[0] and "Original Traceback" not in res.stderr
    return lines[0]


def make_synth(out: Path) -> Path:
    """A tiny synthetic MARS-layout set (8 identities, 64x32 frames); returns its root."""
    from vidreid.data.synth import generate

    return Path(generate(str(out), "mars", 8, 2, 0, size=(64, 32), max_len=12, workers=1))


def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def train_args(root: Path, out: Path, run: str = "run", epochs: int = 1,
               workers: int = 1) -> list[str]:
    """``vidreid train`` arguments for a seconds-long run on :func:`make_synth` data."""
    return [
        "train", CONFIG, f"data.root={root}", "data.height=64", "data.width=32",
        "data.batch_size=8", f"data.num_workers={workers}", f"train.epochs={epochs}",
        "sched.warmup_epochs=0", f"output_dir={out}", f"run_name={run}",
        "train.progress=false", "train.num_threads=1", "train.tensorboard=false",
        "train.checkpoint_every=1",
    ]


def train_frames(root: Path) -> dict[str, list[Path]]:
    """Training frame files of a MARS-layout set, by identity folder."""
    return {d.name: sorted(d.iterdir()) for d in sorted((root / "mars" / "bbox_train").iterdir())}


def eval_frames(root: Path) -> list[Path]:
    """The frames of the first query tracklet of a MARS-layout set."""
    from vidreid.data import build_dataset

    return [Path(f) for f in build_dataset("mars", str(root)).query[0].frames]
