"""Attribute classification loss of the attribute-driven model (Zhao et al., CVPR 2019).

Per-tracklet labels (the public MARS / DukeV attribute files annotate tracklets, and an
identity's tracklets often disagree) reach the term as ``outputs["attr_labels"]`` ``[B, A]``:
the batch's own labels: the term declares them as per-tracklet batch targets
(:meth:`AttributeLoss.batch_targets`), the train loader yields them with each clip and the
trainer's step puts them in ``outputs``. Without them (labels given directly, or a
per-identity file) the term uses per-identity labels (``[num_classes, A]``, -1 = missing)
looked up by pid: from a per-identity file, or from a per-tracklet file only where all of an
identity's tracklets agree (no majority vote; see
:func:`vidreid.data.attributes.train_identity_labels`). Built by the engine with the dataset
(``dataset=``: its ``attributes_file`` and ``extra["train_raw_pids"]``), or directly with a
``labels`` array.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from vidreid.data.attributes import (
    MISSING,
    PID_KEY,
    attribute_groups,
    load_attribute_table,
    tracklet_labels,
    train_identity_labels,
)
from vidreid.losses import LOSSES
from vidreid.losses.criterion import LossTerm


@LOSSES.register("attribute")
class AttributeLoss(LossTerm):
    """Mean over attributes of the cross-entropy of every frame's attribute logits.

    Reads ``outputs["attr_logits"]`` ``[B, T, A]`` (or ``[B, A]``): the attributes' logits
    concatenated in group order (see :class:`vidreid.models.attribute.AttributeDrivenReID`);
    every frame of a clip takes its identity's labels. Missing labels (-1) are ignored; an
    attribute with no label in the batch is left out of the mean; a batch with no label at
    all gives 0 (the identity losses still train those identities).

    Args:
        groups, attribute_values: as the model's (defaults: the renderer's), they fix the
            order and sizes of the logits and the vocabulary the table is coded with.
        dataset: a :class:`vidreid.data.tracklet.VideoDataset`; labels are read from its
            ``attributes_file`` (identities absent from it are reported and ignored).
        labels: ``[num_classes, A]`` integer codes instead of ``dataset``.
        num_classes: checked against the labels' rows when given.
        label_smoothing: of each attribute's cross-entropy.
    """

    def __init__(
        self,
        groups: Mapping[str, Sequence[str]] | str | None = None,
        attribute_values: Mapping[str, Sequence[str]] | None = None,
        dataset: Any = None,
        labels: Any = None,
        num_classes: int | None = None,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        self._tracklet_labels: np.ndarray | None = None  # [len(train), A] when per-tracklet
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self.label_smoothing = label_smoothing
        _, values = attribute_groups(groups, attribute_values)
        self.attribute_names = list(values)
        self.sizes = [len(v) for v in values.values()]
        if labels is None:
            if dataset is None:
                raise ValueError("attribute loss: give the dataset (its attributes file) or labels")
            if not dataset.attributes_file:
                raise ValueError(
                    f"attribute loss: dataset {dataset.name!r} at {dataset.root} has no attribute "
                    "file (attributes.csv beside the data); add one, or drop the term "
                    "(loss.attribute.weight: 0)"
                )
            table = load_attribute_table(dataset.attributes_file, self.attribute_names, values)
            labels = train_identity_labels(table, dataset)
            if table.key != PID_KEY:  # the batch's own tracklets' labels, not the identity's
                self._tracklet_labels = tracklet_labels(table, dataset.train, dataset.root)
        labels = torch.as_tensor(np.asarray(labels), dtype=torch.long)
        if labels.dim() != 2 or labels.shape[1] != len(self.sizes):
            raise ValueError(
                f"attribute loss: labels must be [num_classes, {len(self.sizes)}] "
                f"({', '.join(self.attribute_names)}), got shape {tuple(labels.shape)}"
            )
        if num_classes is not None and labels.shape[0] != num_classes:
            raise ValueError(
                f"attribute loss: labels for {labels.shape[0]} identities, model has {num_classes}")
        high = torch.tensor(self.sizes)
        bad = (labels < MISSING) | (labels >= high)
        if bad.any():
            i, j = (int(x) for x in bad.nonzero()[0])
            raise ValueError(
                f"attribute loss: label {int(labels[i, j])} of identity {i} for "
                f"{self.attribute_names[j]!r} is outside -1..{self.sizes[j] - 1}")
        labelled = int((labels != MISSING).any(dim=1).sum())
        if labelled == 0:
            warnings.warn("attribute loss: no training identity has an attribute label; "
                          "the term will be 0", stacklevel=2)
        self.register_buffer("labels", labels, persistent=False)  # [num_classes, A]

    def batch_targets(self) -> dict[str, np.ndarray]:
        """Per-training-tracklet targets the loader should yield: ``attr_labels [N, A]``."""
        if self._tracklet_labels is None:
            return {}
        return {"attr_labels": self._tracklet_labels}

    def forward(self, outputs: Mapping[str, torch.Tensor], pids: torch.Tensor) -> torch.Tensor:
        logits = self.read(outputs, "attr_logits")
        batch_labels = outputs.get("attr_labels")  # [B, A] per-tracklet labels, when given
        if logits.shape[-1] != sum(self.sizes):
            raise ValueError(
                f"attribute loss: attr_logits has {logits.shape[-1]} columns, the attributes "
                f"{', '.join(self.attribute_names)} need {sum(self.sizes)}; do the model's and "
                "the loss's groups / attribute_values agree?"
            )
        if logits.dim() == 2:
            logits = logits.unsqueeze(1)  # [B, 1, A]
        t = logits.shape[1]
        if batch_labels is not None:
            target = torch.as_tensor(batch_labels, device=logits.device).long()
            if target.shape != (logits.shape[0], len(self.sizes)):
                raise ValueError(
                    f"attribute loss: outputs['attr_labels'] must be [batch, {len(self.sizes)}], "
                    f"got {tuple(target.shape)}")
        else:
            target = self.labels[pids.to(self.labels.device)]  # [B, A]
        target = target.unsqueeze(1).expand(-1, t, -1).reshape(-1, target.shape[1])  # [B*T, A]
        flat = logits.reshape(-1, logits.shape[-1]).float()  # [B*T, sum n_a]
        losses = []
        for j, z in enumerate(flat.split(self.sizes, dim=1)):
            y = target[:, j]
            if (y != MISSING).any():
                losses.append(F.cross_entropy(z, y, ignore_index=MISSING,
                                              label_smoothing=self.label_smoothing))
        if not losses:
            return flat.sum() * 0.0  # keeps the graph (DDP) with a zero loss
        return torch.stack(losses).mean()
