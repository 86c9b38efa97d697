"""The method-agnostic trainer: one loop, extended through a step function and hooks.

``Trainer(model, criterion, loader, optimizer, scheduler, options, step=..., hooks=[...])``
takes plain objects. Methods differ by their model, loss terms, sampling and, when their
training is not "forward, loss, backward" (a GAN), by the **step**: a callable
``step(trainer, batch) -> (loss, parts)`` whose ``loss`` the trainer back-propagates and
steps ``optimizer`` with (a step may update other networks itself, e.g. a discriminator;
its ``state_dict``/``load_state_dict``, when it has them, go into every checkpoint).
**Hooks** (:class:`Hook`) see ``before_train``, ``before_epoch``, ``after_step``,
``after_epoch`` and ``after_train``; periodic evaluation with ``best.pt`` is one
(:class:`EvalHook`). What the loop itself does:

- mixed precision (:mod:`vidreid.engine.precision`: bf16 autocast on CPU, fp16 autocast +
  ``GradScaler`` on CUDA), channels_last weights;
- gradient clipping, epoch-wise LR schedule, an optional total step budget;
- tqdm progress (loss, clips/s), a JSONL log and TensorBoard scalars in the run folder;
- checkpoints (``last.pt``) every N epochs, after the last one *before* the final
  evaluation (an evaluation error never costs training), and on SIGINT/SIGTERM (mid-epoch:
  the position in the epoch is stored and the sampler skips the batches already seen);
  a resumed run restores model, optimiser, schedule, scaler, step state and the main
  process's RNGs; with loaders whose batches are a function of (seed, epoch, position) (the
  PK sampler and :class:`~vidreid.data.video_dataset.TrainClipDataset` of
  :func:`vidreid.build.build_train_loader`, with or without workers) it then continues
  bit-identically to an uninterrupted run; a loader whose workers draw from their own RNG
  (e.g. a dataset using ``torch.rand`` outside such a seeded scope) does not;
- on every exit (finished, stopped, error) the loader's worker processes are shut down, so
  an error never leaves the process waiting on workers that ignore SIGTERM;
- a non-finite loss stops the run with :class:`NonFiniteLossError` before the optimiser
  step, so the last checkpoint on disk is the last good state;
- under ``torchrun`` the model is wrapped in DistributedDataParallel; only rank 0 logs and
  writes files; the stop decisions (signal, non-finite loss) are agreed by all ranks.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Sampler

from vidreid.data.errors import unwrap_worker_error
from vidreid.engine import distributed as D
from vidreid.engine.checkpoint import (
    FORMAT_VERSION,
    atomic_torch_save,
    load_checkpoint,
    rng_state,
    set_rng_state,
)
from vidreid.engine.precision import AMP_MODES, autocast_context, autocast_dtype, prepare_model

__all__ = [
    "AMP_MODES", "EvalHook", "Hook", "NonFiniteLossError", "SkippableSampler", "TrainOptions",
    "TrainResult", "Trainer", "autocast_context", "autocast_dtype", "prepare_model",
    "shutdown_loader_workers", "supervised_step", "train",
]

log = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; the run stopped without saving the poisoned state."""


@dataclass
class TrainResult:
    """What a training run did."""

    epochs_done: int
    global_step: int
    interrupted: bool = False
    signal_name: str | None = None
    best_metric: float | None = None
    last_eval: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    run_dir: str | None = None


@dataclass
class TrainOptions:
    """How to train (everything but the objects trained)."""

    epochs: int
    run_dir: str | os.PathLike[str] | None = None
    device: torch.device | str = "cpu"
    amp: str = "auto"
    channels_last: bool = True
    grad_clip: float | None = None
    checkpoint_every: int = 1
    log_every: int = 20
    max_steps_per_epoch: int | None = None
    max_steps: int | None = None  # total step budget (the last epoch may end early)
    tensorboard: bool = True
    progress: bool = True
    handle_signals: bool = True
    find_unused_parameters: bool = False
    extra_state: dict[str, Any] | None = None  # primitive values stored in every checkpoint
    compile: bool = False  # torch.compile the train-mode forward (vidreid.engine.compile)


class Hook:
    """Extension point of :class:`Trainer`; override what you need."""

    def before_train(self, trainer: Trainer) -> None: ...

    def before_epoch(self, trainer: Trainer) -> None: ...

    def after_step(self, trainer: Trainer, loss: float, parts: dict[str, Any]) -> None: ...

    def after_epoch(self, trainer: Trainer) -> None: ...

    def after_train(self, trainer: Trainer) -> None: ...


class EvalHook(Hook):
    """``eval_fn(model) -> {"v2v/mAP": ...}`` every ``every`` epochs and after the last one
    (on every rank under DDP); ``best_metric`` selects ``best.pt``."""

    def __init__(self, eval_fn: Callable[[nn.Module], dict[str, float]], every: int = 0,
                 best_metric: str = "v2v/mAP") -> None:
        self.eval_fn, self.every, self.best_metric = eval_fn, every, best_metric

    def after_epoch(self, trainer: Trainer) -> None:
        epoch = trainer.epoch + 1
        if not (trainer.is_last_epoch or (self.every and epoch % self.every == 0)):
            return
        trainer.net.eval()
        metrics = dict(self.eval_fn(trainer.model))
        trainer.net.train()
        result = trainer.result
        result.last_eval = metrics
        trainer.log({"type": "eval", "epoch": epoch, "step": trainer.global_step, **metrics},
                    epoch)
        value = metrics.get(self.best_metric)
        if value is not None and (trainer.best is None or value > trainer.best):
            trainer.best = result.best_metric = float(value)
            trainer.save("best.pt", epoch, 0, metrics=metrics)


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


def supervised_step(trainer: Trainer, batch: Any) -> tuple[torch.Tensor, dict[str, Any]]:
    """The re-ID step: ``(clips, pids, camids[, targets])`` -> ``criterion(model(clips), pids)``;
    a ``targets`` dict (per-clip targets some loss terms need) joins the model's outputs."""
    clips, pids, *rest = batch
    clips = clips.to(trainer.device, non_blocking=True)
    pids = pids.to(trainer.device, non_blocking=True)
    targets = rest[1] if len(rest) > 1 and isinstance(rest[1], dict) else {}
    with trainer.autocast():
        outputs = trainer.net(clips)
        outputs = {**outputs, **{k: v.to(trainer.device) for k, v in targets.items()}}
        loss, parts = trainer.criterion(outputs, pids)
    trainer.batch_items = clips.shape[0]
    return loss, parts


def shutdown_loader_workers(loader: DataLoader, *iterators: Any) -> None:
    """Stop ``loader``'s worker processes now (and those of ``iterators`` of it).

    Persistent workers otherwise live until the loader is garbage-collected; when an error
    leaves that to interpreter exit, multiprocessing's exit handler SIGTERMs them, which
    they ignore (:func:`vidreid.build.ignore_stop_signals`), and waits for them forever.
    torch has no public call for this: ``_shutdown_workers`` is what the iterator's own
    ``__del__`` runs (idempotent).
    """
    persistent = getattr(loader, "_iterator", None)
    for it in (*iterators, persistent):
        shutdown = getattr(it, "_shutdown_workers", None)
        if shutdown is not None:
            shutdown()
    if persistent is not None:
        loader._iterator = None  # the next iter() starts new workers


def _set_epoch(loader: DataLoader, epoch: int) -> None:
    for obj in (loader.sampler, getattr(loader, "batch_sampler", None), loader.dataset):
        if hasattr(obj, "set_epoch"):
            obj.set_epoch(epoch)


class Trainer:
    """Train ``model`` (+ the parameters of ``criterion``) on ``loader``'s batches.

    ``step`` computes a batch's loss (default :func:`supervised_step`); ``hooks`` extend the
    loop. :meth:`fit` returns a :class:`TrainResult` and raises :class:`NonFiniteLossError`.
    ``resume`` (run folder, ``.pt`` path or loaded checkpoint) restores a stopped run.
    """

    def __init__(
        self,
        model: nn.Module,
        criterion: nn.Module | None,
        loader: DataLoader,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler | None,
        options: TrainOptions,
        *,
        step: Callable[[Trainer, Any], tuple[torch.Tensor, dict[str, Any]]] = supervised_step,
        hooks: Sequence[Hook] = (),
        resume: str | os.PathLike[str] | dict[str, Any] | None = None,
    ) -> None:
        self.model = model
        self.criterion = criterion if criterion is not None else nn.Module()
        self.loader, self.optimizer, self.scheduler = loader, optimizer, scheduler
        self.options, self.step_fn, self.hooks = options, step, list(hooks)
        self.device = torch.device(options.device)
        self.run_path = Path(options.run_dir) if options.run_dir is not None else None
        self.amp_dtype = autocast_dtype(options.amp, self.device)
        self.scaler = (torch.amp.GradScaler("cuda") if self.amp_dtype == torch.float16
                       else None)
        prepare_model(model, self.device, options.channels_last)
        self.criterion.to(self.device)
        self.epoch, self.global_step, self.best = 0, 0, None
        self.start_epoch, self.skip_steps = 0, 0
        self.batch_items = 0  # clips in the last batch (set by the step, for clips/s)
        self._resume_rng: dict[str, Any] | None = None
        if resume is not None:
            self._restore(resume if isinstance(resume, dict) else load_checkpoint(resume))
        if options.compile:
            from vidreid.engine.compile import compile_training_forward

            compile_training_forward(model)
        self.net: nn.Module = model
        if D.is_distributed():
            self.net = nn.parallel.DistributedDataParallel(
                model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=options.find_unused_parameters,
            )
        steps = len(loader)
        if options.max_steps_per_epoch is not None:
            steps = min(steps, options.max_steps_per_epoch)
        if steps == 0:
            raise ValueError(
                "the training loader yields no batch: fewer identities than one PK batch needs"
                " (lower data.batch_size or data.num_instances)"
            )
        self.steps_per_epoch = steps
        self.result = TrainResult(epochs_done=self.start_epoch, global_step=self.global_step,
                                  best_metric=self.best,
                                  run_dir=str(self.run_path) if self.run_path else None)
        self._log: _RunLog | None = None
        self._epoch_batches: Any = None  # the running epoch's loader iterator

    # ------------------------------------------------------------------ state
    def _restore(self, ckpt: dict[str, Any]) -> None:
        self.model.load_state_dict(ckpt["model"])
        self.criterion.load_state_dict(ckpt.get("criterion", {}))
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if self.scheduler is not None and ckpt.get("scheduler") is not None:
            self.scheduler.load_state_dict(ckpt["scheduler"])
        if self.scaler is not None and ckpt.get("scaler") is not None:
            self.scaler.load_state_dict(ckpt["scaler"])
        if ckpt.get("step") is not None and hasattr(self.step_fn, "load_state_dict"):
            self.step_fn.load_state_dict(ckpt["step"])
        self._resume_rng = ckpt["rng"]
        self.start_epoch, self.skip_steps = int(ckpt["epoch"]), int(ckpt.get("step_in_epoch", 0))
        self.global_step, self.best = int(ckpt.get("global_step", 0)), ckpt.get("best_metric")

    def save(self, name: str, epoch: int, step_in_epoch: int, **more: Any) -> None:
        """Write checkpoint ``name`` in the run folder (rank 0; atomic)."""
        if self.run_path is None or not D.is_main_process():
            return
        state = {
            "format_version": FORMAT_VERSION,
            "model": self.model.state_dict(),
            "criterion": self.criterion.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "step": (self.step_fn.state_dict() if hasattr(self.step_fn, "state_dict")
                     else None),
            "rng": rng_state(),
            "epoch": epoch,
            "step_in_epoch": step_in_epoch,
            "global_step": self.global_step,
            "best_metric": self.best,
            **(self.options.extra_state or {}),
            **more,
        }
        atomic_torch_save(state, self.run_path / name)

    def log(self, record: dict[str, Any], step: int) -> None:
        if self._log is not None:
            self._log.write(record, step)

    def autocast(self) -> Any:
        """The autocast context of this run's precision."""
        return autocast_context(self.amp_dtype, self.device)

    @property
    def is_last_epoch(self) -> bool:
        budget_done = (self.options.max_steps is not None
                       and self.global_step >= self.options.max_steps)
        return self.epoch + 1 >= self.options.epochs or budget_done

    # ------------------------------------------------------------------ loop
    def _call(self, name: str, *args: Any) -> None:
        for hook in self.hooks:
            getattr(hook, name)(self, *args)

    def _backward_and_step(self, loss: torch.Tensor) -> None:
        params = [p for p in [*self.model.parameters(), *self.criterion.parameters()]
                  if p.requires_grad]
        clip = self.options.grad_clip
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            if clip:
                self.scaler.unscale_(self.optimizer)
                nn.utils.clip_grad_norm_([p for p in params if p.grad is not None], clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            if clip:
                nn.utils.clip_grad_norm_([p for p in params if p.grad is not None], clip)
            self.optimizer.step()

    def _batches(self, epoch: int) -> Iterator[Any]:
        """The epoch's batch iterator, positioned after the batches a resumed run has seen."""
        loader = self.loader
        _set_epoch(loader, epoch)
        first = self.skip_steps if epoch == self.start_epoch else 0
        if self._resume_rng is not None and first == 0:
            set_rng_state(self._resume_rng)  # stopped at an epoch end: as before iter()
            self._resume_rng = None
        if first and isinstance(loader.sampler, SkippableSampler):
            loader.sampler.skip_next(first * (loader.batch_size or 1))
        batches: Any = iter(loader)
        if first and not isinstance(loader.sampler, SkippableSampler):
            for _ in range(first):  # no cheap skip: load and drop seen batches
                next(batches)
        if self._resume_rng is not None:
            # stopped mid-epoch: the iterator's base seed had been drawn from the torch RNG
            # before the checkpoint, so restore the state after iter()
            set_rng_state(self._resume_rng)
            self._resume_rng = None
        return batches

    def fit(self) -> TrainResult:
        """Run the remaining epochs; see the module doc."""
        o, result = self.options, self.result
        world, is_main = D.get_world_size(), D.is_main_process()
        self._log = _RunLog(self.run_path, o.tensorboard)
        # sync once per step: [loss, stop requested] summed over ranks
        sync = torch.zeros(2, dtype=torch.float64, device=self.device)
        try:
            with _StopFlag(o.handle_signals) as stop:
                self._call("before_train")
                for epoch in range(self.start_epoch, o.epochs):
                    self.epoch = epoch
                    if o.max_steps is not None and self.global_step >= o.max_steps:
                        break
                    if self._run_epoch(epoch, sync, stop, world, is_main):
                        return result
                self._call("after_train")
        finally:
            self._log.close()
            shutdown_loader_workers(self.loader, self._epoch_batches)
            self._epoch_batches = None
        return result

    def _run_epoch(self, epoch: int, sync: torch.Tensor, stop: _StopFlag, world: int,
                   is_main: bool) -> bool:
        """One epoch; True when a signal stopped the run."""
        o, result = self.options, self.result
        first = self.skip_steps if epoch == self.start_epoch else 0
        batches = self._epoch_batches = self._batches(epoch)
        self.net.train()
        self.criterion.train()
        self._call("before_epoch")
        bar = None
        if o.progress and is_main:
            from tqdm import tqdm

            bar = tqdm(total=self.steps_per_epoch, initial=first, leave=False,
                       desc=f"epoch {epoch + 1}/{o.epochs}", dynamic_ncols=True)
        t_epoch = time.perf_counter()
        epoch_lr = self.optimizer.param_groups[0]["lr"]  # the rate this epoch trains with
        loss_sum, n_steps, n_clips = 0.0, 0, 0
        t_window, clips_window = time.perf_counter(), 0
        for step in range(first, self.steps_per_epoch):
            if o.max_steps is not None and self.global_step >= o.max_steps:
                break
            try:
                batch = next(batches)
            except StopIteration:
                break
            except Exception as exc:  # a worker's error: its own one-line message
                clean = unwrap_worker_error(exc)
                if clean is exc:
                    raise
                raise clean from None
            loss, parts = self.step_fn(self, batch)
            sync[0] = loss.detach().double()
            sync[1] = float(stop.signum is not None)
            D.all_reduce_sum(sync)
            loss_value = sync[0].item() / world
            if not math.isfinite(loss_value):
                raise NonFiniteLossError(
                    f"non-finite loss ({loss_value}) at epoch {epoch + 1}, step"
                    f" {step + 1}/{self.steps_per_epoch} (terms: {_fmt_parts(parts)});"
                    " training stopped without saving this state"
                    + (f"; last good checkpoint: {self.run_path / 'last.pt'}"
                       if self.run_path is not None and (self.run_path / "last.pt").exists()
                       else "")
                    + ". Try a lower optim.lr, optim.grad_clip or train.amp=off."
                )
            self._backward_and_step(loss)
            self.global_step += 1
            n_steps += 1
            items = self.batch_items * world
            n_clips += items
            clips_window += items
            loss_sum += loss_value
            self._call("after_step", loss_value, parts)
            if bar is not None:
                rate = clips_window / max(time.perf_counter() - t_window, 1e-9)
                bar.set_postfix(loss=f"{loss_value:.4f}", clips_s=f"{rate:.1f}")
                bar.update(1)
            if o.log_every and self.global_step % o.log_every == 0:
                rate = clips_window / max(time.perf_counter() - t_window, 1e-9)
                self.log({"type": "step", "epoch": epoch + 1, "step": self.global_step,
                          "loss": loss_value, "lr": self.optimizer.param_groups[0]["lr"],
                          "clips_per_s": rate, **_float_parts(parts)}, self.global_step)
                t_window, clips_window = time.perf_counter(), 0
            if sync[1].item() > 0:  # a signal reached some rank: save and stop
                self.save("last.pt", epoch, step + 1)
                signum = stop.signum or signal.SIGTERM
                result.interrupted = True
                result.signal_name = signal.Signals(signum).name
                result.global_step = self.global_step
                if bar is not None:
                    bar.close()
                if is_main:
                    log.warning("%s: saved %s at epoch %d, step %d", result.signal_name,
                                   self.run_path / "last.pt", epoch + 1, step + 1)
                return True
        if bar is not None:
            bar.close()
        if self.scheduler is not None:
            self.scheduler.step()
        elapsed = time.perf_counter() - t_epoch
        record = {"type": "epoch", "epoch": epoch + 1, "step": self.global_step,
                  "loss": loss_sum / max(n_steps, 1), "lr": epoch_lr,
                  "time_s": elapsed, "clips_per_s": n_clips / max(elapsed, 1e-9)}
        self.log(record, epoch + 1)
        result.history.append(record)
        if is_main and o.progress:
            log.info("epoch %d/%d: loss %.4f, %.1f clips/s, %.1fs", epoch + 1, o.epochs,
                        record["loss"], record["clips_per_s"], elapsed)
        _broadcast_buffers(self.model)  # BN statistics of rank 0 (what checkpoints hold)
        result.epochs_done = epoch + 1
        result.global_step = self.global_step
        if self.is_last_epoch or (o.checkpoint_every and (epoch + 1) % o.checkpoint_every == 0):
            self.save("last.pt", epoch + 1, 0)  # before any evaluation: never lose training
        self._call("after_epoch")
        return False


def train(
    model: nn.Module,
    criterion: nn.Module,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    *,
    eval_fn: Callable[[nn.Module], dict[str, float]] | None = None,
    eval_every: int = 0,
    best_metric: str = "v2v/mAP",
    resume: str | os.PathLike[str] | dict[str, Any] | None = None,
    hooks: Sequence[Hook] = (),
    **options: Any,
) -> TrainResult:
    """Functional form of :class:`Trainer`: ``options`` are :class:`TrainOptions` fields;
    ``eval_fn`` adds an :class:`EvalHook`."""
    known = {f.name for f in fields(TrainOptions)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(f"train() got unknown option(s) {unknown}; known: {sorted(known)}")
    all_hooks = list(hooks)
    if eval_fn is not None:
        all_hooks.append(EvalHook(eval_fn, eval_every, best_metric))
    trainer = Trainer(model, criterion, loader, optimizer, scheduler, TrainOptions(**options),
                      hooks=all_hooks, resume=resume)
    return trainer.fit()


def _broadcast_buffers(model: nn.Module) -> None:
    """Give every rank rank 0's buffers: DDP syncs them before each forward, not after."""
    if D.is_distributed():
        import torch.distributed as dist

        for buf in model.buffers():
            dist.broadcast(buf, src=0)


def _float_parts(parts: dict[str, Any]) -> dict[str, float]:
    return {f"loss_{k}": float(v) for k, v in (parts or {}).items()}


def _fmt_parts(parts: dict[str, Any]) -> str:
    return ", ".join(f"{k}={float(v):.4g}" for k, v in (parts or {}).items()) or "none"
