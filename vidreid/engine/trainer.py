"""The method-agnostic training loop.

``train(model, criterion, loader, optimizer, scheduler, ...)`` takes plain objects and
options: methods differ only by their model, loss terms and sampling, which the caller
builds. What the loop adds:

- mixed precision: bf16 autocast on CPU, fp16 autocast + ``GradScaler`` on CUDA
  (``amp="auto"``), channels_last weights (much faster convolutions on CPU);
- gradient clipping, epoch-wise LR schedule;
- tqdm progress (loss, clips/s), a JSONL log and TensorBoard scalars in the run folder;
- periodic evaluation through a callback, ``best.pt`` on improvement;
- checkpoints (``last.pt``) every N epochs and on SIGINT/SIGTERM (mid-epoch: the position
  in the epoch is stored and the sampler skips the batches already seen on resume), so a
  resumed run continues as if never stopped;
- a non-finite loss stops the run with :class:`NonFiniteLossError` before the optimiser
  step, so the last checkpoint on disk is the last good state;
- under ``torchrun`` the model is wrapped in DistributedDataParallel; only rank 0 logs and
  writes files; the stop decisions (signal, non-finite loss) are agreed by all ranks.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Sampler

from vidreid.engine import distributed as D
from vidreid.engine.checkpoint import (
    FORMAT_VERSION,
    atomic_torch_save,
    load_checkpoint,
    rng_state,
    set_rng_state,
)

AMP_MODES = ("auto", "off", "bf16", "fp16")


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; the run stopped without saving the poisoned state."""


@dataclass
class TrainResult:
    """What a call to :func:`train` did."""

    epochs_done: int
    global_step: int
    interrupted: bool = False
    signal_name: str | None = None
    best_metric: float | None = None
    last_eval: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    run_dir: str | None = None


def autocast_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``amp`` on ``device`` (None = full precision)."""
    if amp not in AMP_MODES:
        raise ValueError(f"train.amp={amp!r} is not one of {AMP_MODES}")
    if amp == "off":
        return None
    if amp == "auto":
        return torch.float16 if device.type == "cuda" else torch.bfloat16
    if amp == "fp16" and device.type == "cpu":
        raise ValueError("train.amp=fp16 needs CUDA; use bf16 (or auto) on CPU")
    return torch.bfloat16 if amp == "bf16" else torch.float16


def autocast_context(
    dtype: torch.dtype | None, device: torch.device
) -> contextlib.AbstractContextManager:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def prepare_model(model: nn.Module, device: torch.device, channels_last: bool = True) -> nn.Module:
    """Move to ``device`` (channels_last when asked); parameters keep their identity."""
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    return model


class SkippableSampler(Sampler[int]):
    """Wraps a sampler (e.g. ``PKSampler``) so a resumed epoch can skip samples already seen.

    ``set_epoch`` is forwarded; ``skip_next(n)`` drops the first ``n`` indices of the next
    iteration only, without loading them.
    """

    def __init__(self, sampler: Sampler[int]) -> None:
        self.sampler = sampler
        self._skip = 0

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def skip_next(self, n: int) -> None:
        self._skip = n

    def __iter__(self) -> Iterator[int]:
        skip, self._skip = self._skip, 0
        for i, idx in enumerate(self.sampler):
            if i >= skip:
                yield idx

    def __len__(self) -> int:
        return len(self.sampler)  # type: ignore[arg-type]


class _StopFlag:
    """SIGINT/SIGTERM set a flag the loop checks after each step; a second signal aborts."""

    def __init__(self, enabled: bool) -> None:
        self.signum: int | None = None
        self._old: dict[int, Any] = {}
        self.enabled = enabled and threading.current_thread() is threading.main_thread()

    def _handler(self, signum: int, frame: Any) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum

    def __enter__(self) -> _StopFlag:
        if self.enabled:
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


class _RunLog:
    """JSONL records and TensorBoard scalars, written by rank 0 only."""

    def __init__(self, run_dir: Path | None, tensorboard: bool) -> None:
        self.fh = None
        self.tb = None
        if run_dir is None or not D.is_main_process():
            return
        run_dir.mkdir(parents=True, exist_ok=True)
        self.fh = open(run_dir / "log.jsonl", "a", buffering=1)
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(run_dir / "tensorboard"))

    def write(self, record: dict[str, Any], step: int) -> None:
        if self.fh is not None:
            self.fh.write(json.dumps(record) + "\n")
        if self.tb is not None:
            kind = record.get("type", "log")
            for key, value in record.items():
                if key not in ("type", "epoch", "step") and isinstance(value, (int, float)):
                    self.tb.add_scalar(f"{kind}/{key}", value, step)

    def close(self) -> None:
        if self.fh is not None:
            self.fh.close()
        if self.tb is not None:
            self.tb.close()


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def _set_epoch(loader: DataLoader, epoch: int) -> None:
    for obj in (loader.sampler, getattr(loader, "batch_sampler", None), loader.dataset):
        if hasattr(obj, "set_epoch"):
            obj.set_epoch(epoch)


def train(
    model: nn.Module,
    criterion: nn.Module,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    *,
    epochs: int,
    run_dir: str | os.PathLike[str] | None = None,
    device: torch.device | str = "cpu",
    amp: str = "auto",
    channels_last: bool = True,
    grad_clip: float | None = None,
    checkpoint_every: int = 1,
    eval_fn: Callable[[nn.Module], dict[str, float]] | None = None,
    eval_every: int = 0,
    best_metric: str = "v2v/mAP",
    resume: str | os.PathLike[str] | dict[str, Any] | None = None,
    log_every: int = 20,
    max_steps_per_epoch: int | None = None,
    tensorboard: bool = True,
    progress: bool = True,
    handle_signals: bool = True,
    find_unused_parameters: bool = False,
    extra_state: dict[str, Any] | None = None,
) -> TrainResult:
    """Train ``model`` with ``criterion`` on PK batches ``(clips, pids, camids)`` from ``loader``.

    ``eval_fn(model) -> {"v2v/mAP": ..., ...}`` runs every ``eval_every`` epochs and after the
    last one (on every rank under DDP); ``best_metric`` names the value that selects
    ``best.pt``. ``resume`` is a run folder, a ``.pt`` path or a loaded checkpoint dict.
    ``extra_state`` (primitive values only, e.g. the config as YAML) is stored in every
    checkpoint. Returns a :class:`TrainResult`; raises :class:`NonFiniteLossError`.
    """
    device = torch.device(device)
    run_path = Path(run_dir) if run_dir is not None else None
    is_main = D.is_main_process()
    world = D.get_world_size()
    amp_dtype = autocast_dtype(amp, device)
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
    prepare_model(model, device, channels_last)
    criterion.to(device)

    start_epoch, skip_steps, global_step = 0, 0, 0
    best: float | None = None
    resume_rng: dict[str, Any] | None = None
    if resume is not None:
        ckpt = resume if isinstance(resume, dict) else load_checkpoint(resume)
        model.load_state_dict(ckpt["model"])
        criterion.load_state_dict(ckpt.get("criterion", {}))
        optimizer.load_state_dict(ckpt["optimizer"])
        if scheduler is not None and ckpt.get("scheduler") is not None:
            scheduler.load_state_dict(ckpt["scheduler"])
        if scaler is not None and ckpt.get("scaler") is not None:
            scaler.load_state_dict(ckpt["scaler"])
        resume_rng = ckpt["rng"]
        start_epoch, skip_steps = int(ckpt["epoch"]), int(ckpt.get("step_in_epoch", 0))
        global_step, best = int(ckpt.get("global_step", 0)), ckpt.get("best_metric")

    net: nn.Module = model
    if D.is_distributed():
        net = nn.parallel.DistributedDataParallel(
            model,
            device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=find_unused_parameters,
        )

    def save(path_name: str, epoch: int, step_in_epoch: int, **more: Any) -> None:
        if run_path is None or not is_main:
            return
        state = {
            "format_version": FORMAT_VERSION,
            "model": model.state_dict(),
            "criterion": criterion.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "scaler": scaler.state_dict() if scaler is not None else None,
            "rng": rng_state(),
            "epoch": epoch,
            "step_in_epoch": step_in_epoch,
            "global_step": global_step,
            "best_metric": best,
            **(extra_state or {}),
            **more,
        }
        atomic_torch_save(state, run_path / path_name)

    log = _RunLog(run_path, tensorboard)
    result = TrainResult(epochs_done=start_epoch, global_step=global_step, best_metric=best)
    result.run_dir = str(run_path) if run_path is not None else None
    steps_per_epoch = len(loader)
    if max_steps_per_epoch is not None:
        steps_per_epoch = min(steps_per_epoch, max_steps_per_epoch)
    if steps_per_epoch == 0:
        raise ValueError(
            "the training loader yields no batch: fewer identities than one PK batch needs"
            " (lower data.batch_size or data.num_instances)"
        )
    # sync once per step: [loss, stop requested] summed over ranks
    sync = torch.zeros(2, dtype=torch.float64, device=device)
    try:
        with _StopFlag(handle_signals) as stop:
            for epoch in range(start_epoch, epochs):
                _set_epoch(loader, epoch)
                first_step = skip_steps if epoch == start_epoch else 0
                if resume_rng is not None and first_step == 0:
                    set_rng_state(resume_rng)  # stopped at an epoch end: as before iter()
                    resume_rng = None
                if first_step and isinstance(loader.sampler, SkippableSampler):
                    loader.sampler.skip_next(first_step * (loader.batch_size or 1))
                batches: Any = iter(loader)
                if first_step and not isinstance(loader.sampler, SkippableSampler):
                    for _ in range(first_step):  # no cheap skip: load and drop seen batches
                        next(batches)
                if resume_rng is not None:
                    # stopped mid-epoch: the iterator's base seed had been drawn from the
                    # torch RNG before the checkpoint, so restore the state after iter()
                    set_rng_state(resume_rng)
                    resume_rng = None
                net.train()
                criterion.train()
                bar = None
                if progress and is_main:
                    from tqdm import tqdm

                    bar = tqdm(
                        total=steps_per_epoch,
                        initial=first_step,
                        desc=f"epoch {epoch + 1}/{epochs}",
                        dynamic_ncols=True,
                        leave=False,
                    )
                t_epoch = time.perf_counter()
                epoch_lr = optimizer.param_groups[0]["lr"]  # the rate this epoch trains with
                loss_sum, n_steps, n_clips = 0.0, 0, 0
                t_window, clips_window = time.perf_counter(), 0
                for step in range(first_step, steps_per_epoch):
                    try:
                        clips, pids, *_ = next(batches)
                    except StopIteration:
                        break
                    clips = clips.to(device, non_blocking=True)
                    pids = pids.to(device, non_blocking=True)
                    with autocast_context(amp_dtype, device):
                        outputs = net(clips)
                        loss, parts = criterion(outputs, pids)
                    sync[0] = loss.detach().double()
                    sync[1] = float(stop.signum is not None)
                    D.all_reduce_sum(sync)
                    loss_value = sync[0].item() / world
                    if not math.isfinite(loss_value):
                        raise NonFiniteLossError(
                            f"non-finite loss ({loss_value}) at epoch {epoch + 1}, step"
                            f" {step + 1}/{steps_per_epoch} (terms: {_fmt_parts(parts)});"
                            " training stopped without saving this state"
                            + (f"; last good checkpoint: {run_path / 'last.pt'}"
                               if run_path is not None and (run_path / "last.pt").exists()
                               else "")
                            + ". Try a lower optim.lr, optim.grad_clip or train.amp=off."
                        )
                    optimizer.zero_grad(set_to_none=True)
                    if scaler is not None:
                        scaler.scale(loss).backward()
                        if grad_clip:
                            scaler.unscale_(optimizer)
                            nn.utils.clip_grad_norm_(_all_params(model, criterion), grad_clip)
                        scaler.step(optimizer)
                        scaler.update()
                    else:
                        loss.backward()
                        if grad_clip:
                            nn.utils.clip_grad_norm_(_all_params(model, criterion), grad_clip)
                        optimizer.step()
                    global_step += 1
                    n_steps += 1
                    batch_clips = clips.shape[0] * world
                    n_clips += batch_clips
                    clips_window += batch_clips
                    loss_sum += loss_value
                    if bar is not None:
                        rate = clips_window / max(time.perf_counter() - t_window, 1e-9)
                        bar.set_postfix(loss=f"{loss_value:.4f}", clips_s=f"{rate:.1f}")
                        bar.update(1)
                    if log_every and global_step % log_every == 0:
                        rate = clips_window / max(time.perf_counter() - t_window, 1e-9)
                        record = {"type": "step", "epoch": epoch + 1, "step": global_step,
                                  "loss": loss_value, "lr": optimizer.param_groups[0]["lr"],
                                  "clips_per_s": rate, **_float_parts(parts)}
                        log.write(record, global_step)
                        t_window, clips_window = time.perf_counter(), 0
                    if sync[1].item() > 0:  # a signal reached some rank: save and stop
                        save("last.pt", epoch, step + 1)
                        signum = stop.signum or signal.SIGTERM
                        result.interrupted = True
                        result.signal_name = signal.Signals(signum).name
                        result.global_step = global_step
                        if bar is not None:
                            bar.close()
                        if is_main:
                            print(f"{result.signal_name}: saved {run_path / 'last.pt'}"
                                  f" at epoch {epoch + 1}, step {step + 1}", flush=True)
                        return result
                if bar is not None:
                    bar.close()
                if scheduler is not None:
                    scheduler.step()
                elapsed = time.perf_counter() - t_epoch
                record = {"type": "epoch", "epoch": epoch + 1, "step": global_step,
                          "loss": loss_sum / max(n_steps, 1), "lr": epoch_lr,
                          "time_s": elapsed, "clips_per_s": n_clips / max(elapsed, 1e-9)}
                log.write(record, epoch + 1)
                result.history.append(record)
                if is_main and progress:
                    print(f"epoch {epoch + 1}/{epochs}: loss {record['loss']:.4f},"
                          f" {record['clips_per_s']:.1f} clips/s, {elapsed:.1f}s", flush=True)
                last_epoch = epoch + 1 == epochs
                evaluated = False
                do_eval = last_epoch or (eval_every and (epoch + 1) % eval_every == 0)
                _broadcast_buffers(model)  # BN statistics of rank 0 (what checkpoints hold)
                if eval_fn is not None and do_eval:
                    net.eval()
                    metrics = eval_fn(model)
                    net.train()
                    evaluated = True
                    result.last_eval = dict(metrics)
                    log.write({"type": "eval", "epoch": epoch + 1, "step": global_step, **metrics},
                              epoch + 1)
                    value = metrics.get(best_metric)
                    if value is not None and (best is None or value > best):
                        best = float(value)
                        result.best_metric = best
                        save("best.pt", epoch + 1, 0, metrics=dict(metrics))
                result.epochs_done = epoch + 1
                result.global_step = global_step
                if last_epoch or (checkpoint_every and (epoch + 1) % checkpoint_every == 0):
                    save("last.pt", epoch + 1, 0,
                         **({"metrics": dict(result.last_eval)} if evaluated else {}))
    finally:
        log.close()
    return result


def _broadcast_buffers(model: nn.Module) -> None:
    """Give every rank rank 0's buffers: DDP syncs them before each forward, not after."""
    if D.is_distributed():
        import torch.distributed as dist

        for buf in model.buffers():
            dist.broadcast(buf, src=0)


def _all_params(model: nn.Module, criterion: nn.Module) -> list[torch.Tensor]:
    params = list(model.parameters()) + list(criterion.parameters())
    return [p for p in params if p.grad is not None]


def _float_parts(parts: dict[str, Any]) -> dict[str, float]:
    return {f"loss_{k}": float(v) for k, v in (parts or {}).items()}


def _fmt_parts(parts: dict[str, Any]) -> str:
    return ", ".join(f"{k}={float(v):.4g}" for k, v in (parts or {}).items()) or "none"
