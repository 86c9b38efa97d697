"""Attribute loss (vidreid/losses/attribute.py): label lookup, missing labels, engine hook."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from vidreid.data.tracklet import Tracklet, VideoDataset
from vidreid.losses.attribute import AttributeLoss

GROUPS = {"body": ["gender"], "acc": ["bag"]}
VALUES = {"gender": ["male", "female"], "bag": ["none", "backpack", "handbag"]}
SIZES = [2, 3]


def term(labels) -> AttributeLoss:
    return AttributeLoss(GROUPS, VALUES, labels=torch.tensor(labels))


def test_matches_per_attribute_cross_entropy_of_every_frame() -> None:
    loss = term([[1, 2], [0, 0]])
    logits = torch.randn(2, 3, 5)  # [B, T, 2 + 3]
    pids = torch.tensor([1, 0])
    frames = logits.reshape(6, 5)
    y = torch.tensor([[0, 0]] * 3 + [[1, 2]] * 3)
    expected = (F.cross_entropy(frames[:, :2], y[:, 0]) + F.cross_entropy(frames[:, 2:], y[:, 1])) / 2
    torch.testing.assert_close(loss({"attr_logits": logits}, pids), expected)


def test_missing_labels_are_ignored() -> None:
    loss = term([[1, -1], [-1, -1]])  # identity 0: gender only; identity 1: nothing
    logits = torch.randn(2, 2, 5, requires_grad=True)
    pids = torch.tensor([0, 1])
    value = loss({"attr_logits": logits}, pids)
    torch.testing.assert_close(value, F.cross_entropy(logits[0, :, :2], torch.tensor([1, 1])))
    value.backward()
    assert not logits.grad[1].any() and not logits.grad[0, :, 2:].any()
    assert logits.grad[0, :, :2].any()


def test_batch_without_any_label_gives_a_differentiable_zero() -> None:
    loss = term([[-1, -1], [0, 1]])
    logits = torch.randn(3, 2, 5, requires_grad=True)
    value = loss({"attr_logits": logits}, torch.tensor([0, 0, 0]))
    assert value.item() == 0.0
    value.backward()
    assert logits.grad is not None


def test_clip_level_logits_and_clear_errors() -> None:
    loss = term([[1, 2]])
    assert loss({"attr_logits": torch.randn(1, 5)}, torch.tensor([0])).item() > 0
    with pytest.raises(ValueError, match="attr_logits has 4 columns.*need 5"):
        loss({"attr_logits": torch.randn(1, 2, 4)}, torch.tensor([0]))
    with pytest.raises(ValueError, match="reads outputs\\['attr_logits'\\]"):
        loss({"logits": torch.randn(1, 3)}, torch.tensor([0]))
    with pytest.raises(ValueError, match="label 3 of identity 0 for 'bag'"):
        term([[1, 3]])
    with pytest.raises(ValueError, match=r"labels must be \[num_classes, 2\]"):
        term([[1, 2, 0]])


def _dataset(root: Path, attributes_file: str | None) -> VideoDataset:
    train = [Tracklet((str(root / "a.jpg"),), 0, 0), Tracklet((str(root / "b.jpg"),), 1, 1),
             Tracklet((str(root / "c.jpg"),), 2, 0)]
    return VideoDataset("toy", str(root), train, [], [], attributes_file=attributes_file,
                        extra={"train_raw_pids": [5, 7, 9]})


def test_engine_builds_the_term_from_the_datasets_attribute_file(tmp_path: Path) -> None:
    from vidreid import build as builder
    from vidreid.engine.config import load_config

    table = tmp_path / "attributes.csv"
    table.write_text("pid,gender,bag\n5,female,backpack\n9,male,\n")
    cfg = load_config(None, ["model.name=attribute", "loss.triplet.weight=0",
                             f"loss.attribute.groups={GROUPS}".replace("'", ""),
                             f"loss.attribute.attribute_values={VALUES}".replace("'", "")])
    with pytest.warns(UserWarning, match=r"1 of 3 train identities have no row \(7\)"):
        criterion = builder.build_criterion(cfg, 3, 16, dataset=_dataset(tmp_path, str(table)))
    labels = criterion.terms["attribute"].labels
    assert labels.tolist() == [[1, 1], [-1, -1], [0, -1]]
    assert "labels" not in criterion.state_dict()  # rebuilt from the file, not checkpointed


def test_dataset_without_attribute_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="has no attribute file.*loss.attribute.weight: 0"):
        AttributeLoss(GROUPS, VALUES, dataset=_dataset(tmp_path, None))


def test_per_tracklet_batch_labels_take_precedence_over_identity_labels() -> None:
    """Two clips of one identity with different annotations each get their own target."""
    loss = term([[1, 2], [0, 0]])
    logits = torch.randn(2, 3, 5)
    pids = torch.tensor([1, 1])  # same identity ...
    own = torch.tensor([[0, 1], [1, -1]])  # ... different tracklet labels
    frames = logits.reshape(6, 5)
    y = own.repeat_interleave(3, dim=0)
    expected = (F.cross_entropy(frames[:, :2], y[:, 0])
                + F.cross_entropy(frames[:, 2:], y[:, 1], ignore_index=-1)) / 2
    out = loss({"attr_logits": logits, "attr_labels": own}, pids)
    torch.testing.assert_close(out, expected)
    assert not torch.allclose(out, loss({"attr_logits": logits}, pids))
    with pytest.raises(ValueError, match="attr_labels"):
        loss({"attr_logits": logits, "attr_labels": own[:, :1]}, pids)


def test_per_tracklet_labels_reach_the_term_through_loader_and_step(tmp_path: Path) -> None:
    """A tracklet-level table: the criterion declares the tracklets' own labels as batch
    targets, the loader yields them, the trainer's step puts them in ``outputs``."""
    from torch.utils.data import DataLoader

    from vidreid.data.video_dataset import TrainClipDataset
    from vidreid.engine.trainer import supervised_step

    ds = _dataset(tmp_path, None)
    table = tmp_path / "attributes.csv"
    rows = [f"{os.path.relpath(t.frames[0], tmp_path)}" for t in ds.train]
    table.write_text("tracklet,gender,bag\n" + f"{rows[0]},female,backpack\n"
                     + f"{rows[1]},male,\n" + f"{rows[2]},male,backpack\n")
    ds = _dataset(tmp_path, str(table))
    term = AttributeLoss(GROUPS, VALUES, dataset=ds)
    targets = term.batch_targets()["attr_labels"]
    assert targets.tolist() == [[1, 1], [0, -1], [0, 1]]

    seen = {}

    class Recorder(torch.nn.Module):
        def forward(self, outputs, pids):
            seen.update(outputs)
            return outputs["features"].sum(), {}

    class Model(torch.nn.Module):
        def forward(self, clips):
            return {"features": clips.float().mean(dim=(1, 2, 3, 4))}

    class FakeTrainer:
        device = torch.device("cpu")
        net, criterion = Model(), Recorder()

        def autocast(self):
            return contextlib.nullcontext()

    for t in ds.train:
        Image.new("RGB", (8, 16)).save(t.frames[0])
    loader = DataLoader(TrainClipDataset(ds.train, seq_len=1, strategy="consecutive",
                                         transform=None, targets=term.batch_targets()),
                        batch_size=3)
    supervised_step(FakeTrainer(), next(iter(loader)))
    assert seen["attr_labels"].tolist() == targets.tolist()
