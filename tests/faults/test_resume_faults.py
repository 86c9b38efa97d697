"""Item 4 of issue 17: with loader workers, a run stopped by SIGINT (mid-epoch) or kill -9
(resumed from the last epoch checkpoint) and resumed ends with exactly the weights of an
uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
import torch
from _faults_cli import TIMEOUT_S, finish, make_synth, run_cli, start_cli, train_args

EPOCHS = 2
POLL_S = 0.02
# P=1 identity x K=4 clips per batch: 8 steps per epoch on the 8 synthetic identities, so a
# signal sent after the first step lands mid-run.
ARGS = ["data.batch_size=4", "data.num_instances=4", "train.log_every=1"]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_synth(tmp_path_factory.mktemp("synth"))


def args(synth: Path, out: Path) -> list[str]:
    return [*train_args(synth, out, epochs=EPOCHS, workers=1), *ARGS]


@pytest.fixture(scope="module")
def reference(synth: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, torch.Tensor]:
    out = tmp_path_factory.mktemp("ref")
    res = run_cli(args(synth, out), out)
    assert res.returncode == 0, res.stderr[-3000:]
    return torch.load(out / "run" / "last.pt", weights_only=True)["model"]


def wait_for(cond, proc, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not cond():
        if proc.poll() is not None:
            raise AssertionError(f"run ended before {what}: {proc.stderr.read()[-3000:]}")
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(POLL_S)


def steps_logged(run: Path) -> int:
    log = run / "log.jsonl"
    if not log.exists():
        return 0
    return sum(json.loads(line)["type"] == "step" for line in log.read_text().splitlines()
               if line.endswith("}"))


def assert_same_weights(run: Path, reference: dict[str, torch.Tensor]) -> None:
    ckpt = torch.load(run / "last.pt", weights_only=True)
    assert ckpt["epoch"] == EPOCHS
    for name, value in reference.items():
        assert torch.equal(ckpt["model"][name], value), name


def test_sigint_mid_epoch_with_workers_resumes_bit_identically(
        synth: Path, tmp_path: Path, reference: dict[str, torch.Tensor]) -> None:
    run = tmp_path / "run"
    proc = start_cli(args(synth, tmp_path), tmp_path)
    wait_for(lambda: steps_logged(run) >= 1, proc, "the first step")
    os.kill(proc.pid, signal.SIGINT)  # the trainer saves at the end of the current step
    res = finish(proc)
    assert res.returncode == 130, res.stderr[-3000:]
    stopped = torch.load(run / "last.pt", weights_only=True)
    assert (stopped["epoch"], stopped["step_in_epoch"]) != (EPOCHS, 0)  # really mid-run
    res = run_cli(["train", "--resume", str(run)], tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert_same_weights(run, reference)


def test_kill_9_with_workers_resumes_bit_identically(
        synth: Path, tmp_path: Path, reference: dict[str, torch.Tensor]) -> None:
    run = tmp_path / "run"
    proc = start_cli(args(synth, tmp_path), tmp_path)
    wait_for(lambda: (run / "last.pt").exists(), proc, "the first epoch checkpoint")
    os.killpg(proc.pid, signal.SIGKILL)  # the run and its loader workers, no cleanup
    proc.communicate()
    epoch = torch.load(run / "last.pt", weights_only=True)["epoch"]
    assert 1 <= epoch < EPOCHS
    res = run_cli(["train", "--resume", str(run)], tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert_same_weights(run, reference)
