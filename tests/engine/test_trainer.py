"""The training loop on toy pieces: resume equivalence, signals, non-finite loss, schedules."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from vidreid.engine.checkpoint import load_checkpoint
from vidreid.engine.optim import build_optimizer, build_scheduler
from vidreid.engine.trainer import NonFiniteLossError, SkippableSampler, autocast_dtype, train
from vidreid.models.base import VideoReIDModel

NUM_IDS, CLIPS_PER_ID, SEQ_LEN, H, W = 4, 6, 3, 16, 8
BATCH = 8


class ToyModel(VideoReIDModel):
    """Conv + BN + dropout per frame, temporal mean, linear classifier."""

    feature_dim = 16

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, self.feature_dim),
        )
        self.dropout = nn.Dropout(0.2)
        self.classifier = nn.Linear(self.feature_dim, num_classes)

    def forward(self, clips: torch.Tensor, return_extras: bool = False) -> dict[str, torch.Tensor]:
        b, t = clips.shape[:2]
        feats = self.body(clips.flatten(0, 1)).view(b, t, -1).mean(1)  # [B, D]
        if not self.training:
            return {"features": feats}
        return {"features": feats, "logits": self.classifier(self.dropout(feats))}


class ToyClips(Dataset):
    """Identity-coloured clips with per-(epoch, index) noise; ``hook(epoch, index)`` is called."""

    def __init__(self, hook=None) -> None:
        self.epoch = 0
        self.hook = hook
        self.pids = [i % NUM_IDS for i in range(NUM_IDS * CLIPS_PER_ID)]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.pids)

    def __getitem__(self, i: int):
        if self.hook is not None:
            self.hook(self.epoch, i)
        g = torch.Generator().manual_seed(self.epoch * 1000 + i)
        pid = self.pids[i]
        base = torch.zeros(3, 1, 1)
        base[pid % 3] = 1.0 + pid // 3
        clip = base.expand(SEQ_LEN, 3, H, W) + 0.5 * torch.randn(SEQ_LEN, 3, H, W, generator=g)
        return clip, pid, 0


class EpochSampler(Sampler[int]):
    """A permutation that depends on (seed, epoch) only, like PKSampler."""

    def __init__(self, n: int) -> None:
        self.n, self.epoch = n, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        return iter(np.random.default_rng([7, self.epoch]).permutation(self.n).tolist())

    def __len__(self) -> int:
        return self.n


class CE(nn.Module):
    def __init__(self, poison_at: int | None = None) -> None:
        super().__init__()
        self.calls = 0
        self.poison_at = poison_at

    def forward(self, outputs, pids):
        self.calls += 1
        loss = nn.functional.cross_entropy(outputs["logits"].float(), pids)
        if self.poison_at is not None and self.calls >= self.poison_at:
            loss = loss * float("nan")
        return loss, {"ce": loss.detach()}


def make_run(hook=None, poison_at=None, epochs=3):
    torch.manual_seed(0)
    model = ToyModel(NUM_IDS)
    criterion = CE(poison_at)
    ds = ToyClips(hook)
    loader = DataLoader(ds, batch_size=BATCH, sampler=SkippableSampler(EpochSampler(len(ds))),
                        drop_last=True)
    opt = build_optimizer(model.parameters(), "adam", lr=1e-2)
    sched = build_scheduler(opt, "warmup_cosine", epochs=epochs, warmup_epochs=1)
    return model, criterion, loader, opt, sched


COMMON = dict(device="cpu", amp="auto", tensorboard=False, progress=False, log_every=1)


def test_resume_after_epoch_and_mid_epoch_signal_equals_uninterrupted(tmp_path: Path) -> None:
    epochs = 3
    model, crit, loader, opt, sched = make_run(epochs=epochs)
    full = train(model, crit, loader, opt, sched, epochs=epochs, run_dir=tmp_path / "a", **COMMON)
    assert full.epochs_done == epochs and not full.interrupted

    # interrupted after epoch 1 (checkpoint at the epoch end), then resumed
    model, crit, loader, opt, sched = make_run(epochs=epochs)
    part = train(model, crit, loader, opt, sched, epochs=1, run_dir=tmp_path / "b", **COMMON)
    assert part.epochs_done == 1 and load_checkpoint(tmp_path / "b")["epoch"] == 1
    model_b, crit, loader, opt, sched = make_run(epochs=epochs)
    train(model_b, crit, loader, opt, sched, epochs=epochs, run_dir=tmp_path / "b",
          resume=tmp_path / "b", **COMMON)

    # SIGINT in the middle of epoch 2 (second batch), then resumed from that step
    def hook(epoch: int, index: int, fired=[]) -> None:  # noqa: B006 - fire once
        if epoch == 1 and not fired and hook.seen >= BATCH:
            fired.append(1)
            os.kill(os.getpid(), signal.SIGINT)
        if epoch == 1:
            hook.seen += 1

    hook.seen = 0
    model, crit, loader, opt, sched = make_run(hook=hook, epochs=epochs)
    stopped = train(model, crit, loader, opt, sched, epochs=epochs, run_dir=tmp_path / "c",
                    **COMMON)
    assert stopped.interrupted and stopped.signal_name == "SIGINT"
    ckpt = load_checkpoint(tmp_path / "c" / "last.pt")
    assert (ckpt["epoch"], ckpt["step_in_epoch"]) == (1, 2)  # of 3 steps
    model_c, crit, loader, opt, sched = make_run(epochs=epochs)
    train(model_c, crit, loader, opt, sched, epochs=epochs, run_dir=tmp_path / "c",
          resume=tmp_path / "c", **COMMON)

    ref = torch.load(tmp_path / "a" / "last.pt", weights_only=True)["model"]
    for other in (model_b, model_c):
        for name, value in other.state_dict().items():
            assert torch.equal(ref[name], value), name
    # and training did change the weights
    torch.manual_seed(0)
    init = ToyModel(NUM_IDS).state_dict()
    assert not torch.equal(init["classifier.weight"], ref["classifier.weight"])
    log = (tmp_path / "a" / "log.jsonl").read_text().splitlines()
    assert sum('"type": "epoch"' in line for line in log) == epochs


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path: Path) -> None:
    steps_per_epoch = NUM_IDS * CLIPS_PER_ID // BATCH  # 3
    model, crit, loader, opt, sched = make_run(poison_at=2 * steps_per_epoch + 1)
    with pytest.raises(NonFiniteLossError, match=r"epoch 3, step 1/3") as info:
        train(model, crit, loader, opt, sched, epochs=3, run_dir=tmp_path, **COMMON)
    assert "last.pt" in str(info.value)
    ckpt = load_checkpoint(tmp_path)
    assert ckpt["epoch"] == 2
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())
    # the optimiser did not step with the poisoned loss (BN statistics did see the forward)
    for name, value in model.named_parameters():
        assert torch.equal(value, ckpt["model"][name]), name


SIGTERM_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    sys.path.insert(0, {test_dir!r})
    import test_trainer as T
    from vidreid.engine.trainer import train

    ready = Path({ready!r})
    def hook(epoch, index):
        if epoch == 1:
            ready.touch()
            time.sleep(0.05)
    model, crit, loader, opt, sched = T.make_run(hook=hook, epochs=50)
    res = train(model, crit, loader, opt, sched, epochs=50, run_dir={run!r},
                device="cpu", amp="off", tensorboard=False, progress=False)
    sys.exit(143 if res.interrupted else 0)
    """
)


def test_sigterm_saves_checkpoint_and_exits_cleanly(tmp_path: Path) -> None:
    ready, run = tmp_path / "ready", tmp_path / "run"
    script = tmp_path / "script.py"
    script.write_text(SIGTERM_SCRIPT.format(
        test_dir=str(Path(__file__).parent), ready=str(ready), run=str(run)))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not ready.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert ready.exists(), proc.communicate()[1]
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "Traceback" not in err
    assert "SIGTERM: saved" in err  # a logging warning (stderr), not a print
    ckpt = load_checkpoint(run / "last.pt")
    assert ckpt["epoch"] == 1 and ckpt["step_in_epoch"] >= 1


def test_amp_modes() -> None:
    assert autocast_dtype("auto", torch.device("cpu")) == torch.bfloat16
    assert autocast_dtype("off", torch.device("cpu")) is None
    with pytest.raises(ValueError, match="fp16 needs CUDA"):
        autocast_dtype("fp16", torch.device("cpu"))
    with pytest.raises(ValueError, match="train.amp='fp32'"):
        autocast_dtype("fp32", torch.device("cpu"))


@pytest.mark.parametrize("name", ["step", "multistep", "warmup_cosine"])
def test_schedules_follow_their_recipe(name: str) -> None:
    opt = build_optimizer(nn.Linear(2, 2).parameters(), "sgd", lr=1.0)
    sched = build_scheduler(opt, name, epochs=10, step_size=3, milestones=[4, 8], gamma=0.1,
                            warmup_epochs=2, warmup_factor=0.1)
    lrs = []
    for _ in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(0.1) and lrs[2] == pytest.approx(1.0)
    expected_end = {"step": 1e-3, "multistep": 1e-2,
                    "warmup_cosine": 0.5 * (1 + math.cos(math.pi * 7 / 8))}[name]
    assert lrs[-1] == pytest.approx(expected_end)


def test_gradient_clipping_bounds_the_update(tmp_path: Path) -> None:
    model, crit, loader, _, _ = make_run()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    train(model, crit, loader, opt, None, epochs=1, grad_clip=1e-3, max_steps_per_epoch=1,
          device="cpu", amp="off", tensorboard=False, progress=False)
    after = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert 0 < (after - before).norm() <= 1e-3 + 1e-6
