"""A training run from a config: build everything (:mod:`vidreid.build`), train it on the
:class:`~vidreid.engine.trainer.Trainer`, keep the run folder.

Distributed: under ``torchrun`` the process group is joined from torchrun's environment and
rank 0 alone writes files.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from vidreid import build as B
from vidreid.engine import distributed as D
from vidreid.engine.config import save_config
from vidreid.engine.trainer import EvalHook, Hook, Trainer, TrainOptions, TrainResult


def run_dir_of(resume: str | os.PathLike[str]) -> Path:
    """The run folder of ``--resume`` (a run folder or a checkpoint inside one)."""
    return Path(resume if os.path.isdir(resume) else os.path.dirname(resume))


def run_training(
    cfg: DictConfig, resume: str | None = None, progress: bool | None = None,
    evaluate: bool = True, hooks: Sequence[Hook] = (),
) -> tuple[TrainResult, Path, torch.nn.Module, Any]:
    """Train as the config says; returns the result, run folder, model and dataset.

    ``evaluate=False`` skips the periodic / final evaluation (the caller evaluates). The whole
    config is checked first (:func:`vidreid.build.validate`): a bad evaluation setting fails
    now, not after the last epoch.
    """
    B.validate(cfg)
    device = B.build_device(cfg)
    torch.set_num_threads(B.compute_threads(cfg.train.num_threads, cfg.data.num_workers))
    B.seed_everything(cfg.train.seed)
    dataset = B.build_dataset(cfg)
    num_classes = dataset.num_train_pids
    model = B.build_model(cfg, num_classes).to(device)
    if cfg.train.init_from and resume is None:
        B.init_from_checkpoint(model, cfg.train.init_from, cfg.train.init_modules)
    criterion = B.build_criterion(cfg, num_classes, getattr(model, "feature_dim", None),
                                  dataset=dataset)
    criterion.to(device)
    optimizer = B.build_optimizer(cfg, [*model.parameters(), *criterion.parameters()])
    scheduler = B.build_scheduler(cfg, optimizer)
    loader = B.build_train_loader(cfg, dataset.train, criterion.batch_targets())
    run_dir = run_dir_of(resume) if resume is not None else B.new_run_dir(cfg)
    if D.is_main_process():
        save_config(cfg, run_dir / B.CONFIG_FILE)
    all_hooks = list(hooks)
    if evaluate and dataset.query and dataset.gallery:
        all_hooks.append(EvalHook(B.build_evaluator(cfg, dataset, device),
                                  cfg.train.eval_every, cfg.train.best_metric))
    t = cfg.train
    options = TrainOptions(
        epochs=t.epochs, run_dir=run_dir, device=device, amp=t.amp,
        channels_last=t.channels_last, grad_clip=cfg.optim.grad_clip,
        checkpoint_every=t.checkpoint_every, log_every=t.log_every,
        max_steps_per_epoch=t.max_steps_per_epoch, tensorboard=t.tensorboard,
        progress=t.progress if progress is None else progress,
        find_unused_parameters=t.find_unused_parameters,
        extra_state={"config": B.run_config_yaml(cfg), "num_classes": num_classes},
    )
    trainer = Trainer(model, criterion, loader, optimizer, scheduler, options,
                      hooks=all_hooks, resume=resume)
    return trainer.fit(), run_dir, model, dataset
