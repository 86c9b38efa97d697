"""VRSTC's STCnet loop and completion (vidreid/methods/vrstc/stc.py, vrstc_commands.py)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from vidreid.cli import main
from vidreid.data import build_dataset
from vidreid.data.synth import generate
from vidreid.methods.vrstc.stc import (
    FINISHED_MARKER,
    complete_dataset,
    load_stc_generator,
    neighbour_batch,
    neighbour_indices,
    source_blocking,
    train_stc,
)
from vidreid.models import build_model
from vidreid.models.vrstc import STCGenerator, stripe_mask

REPO = Path(__file__).parents[3]
STC_CONFIG = REPO / "vidreid" / "configs" / "vrstc" / "stc" / "synth.yaml"
H, W = 48, 24  # small: a fast suite; multiples of 4 (generator), 3 map rows (3 stripes)
TINY = {"backbone": "tiny", "layer2_blocks": [0], "layer3_blocks": [0]}


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory: pytest.TempPathFactory) -> str:
    out = tmp_path_factory.mktemp("vrstc") / "data"
    return generate(str(out), "mars", 4, 2, 0, size=(H, W), max_len=5, occlusion_rate=0.5,
                    tracklets_per_camera=(1, 1),
                    workers=1)


def _digest(folder: str) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def test_neighbours_are_nearest_frames() -> None:
    assert neighbour_indices(6, 2, 4) == [1, 3, 0, 4]
    assert neighbour_indices(2, 0, 3) == [1, 1, 1]
    assert neighbour_indices(1, 0, 2) == [0, 0]


def test_neighbours_skip_frames_that_hide_the_hole() -> None:
    # frames 1..4 hide stripe 0 (an occlusion event), frame 3 also stripe 2
    hidden = np.zeros((8, 3), dtype=bool)
    hidden[1:5, 0] = True
    hidden[3, 2] = True
    hole = np.array([True, False, False])  # the target's hole: stripe 0
    blocked = source_blocking(hidden, hole)
    assert blocked.tolist() == [0, 1, 1, 1, 1, 0, 0, 0]
    # target 2: frames showing stripe 0 first (0, 5, 6, 7 by distance), not its neighbours 1, 3
    assert neighbour_indices(8, 2, 4, blocked) == [0, 5, 6, 7]
    # fewer usable frames than sources: the blocked ones follow, nearest first
    assert neighbour_indices(8, 2, 6, blocked) == [0, 5, 6, 7, 1, 3]
    # a hole in stripe 2: only frame 3 hides it; ties in distance: the earlier frame
    assert neighbour_indices(8, 2, 2, source_blocking(hidden, np.array([0, 0, 1]))) == [1, 0]


def test_completion_reads_the_frames_that_show_the_hole() -> None:
    # frame t holds the value t; frames 1..4 are occluded in stripe 0 (the event)
    work = torch.arange(8, dtype=torch.float32).view(8, 1, 1, 1).expand(8, 3, 12, 4)
    occluded = torch.zeros(8, 3, dtype=torch.bool)
    occluded[1:5, 0] = True
    holes = stripe_mask(occluded, 12, 4)
    nb, mask = neighbour_batch(work, holes, [2], 3, occluded, occluded)
    assert nb[0, :, 0, 0, 0].tolist() == [0.0, 5.0, 6.0]
    assert mask.sum() == 0  # none of them hides anything
    nb, _ = neighbour_batch(work, holes, [2], 3)  # without the flags: the nearest frames
    assert nb[0, :, 0, 0, 0].tolist() == [1.0, 3.0, 0.0]


def test_completion_round_trips_through_the_loader(synth_root: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    dataset = build_dataset("mars", synth_root)
    reid = build_model("vrstc_reid", dataset.num_train_pids, **TINY)
    before = _digest(synth_root)
    out = tmp_path / "completed"
    # tau 0.9999: nearly every stripe of a random network counts as occluded
    summary = complete_dataset("mars", synth_root, out, reid, STCGenerator(8), height=H,
                               width=W, tau=0.9999)
    assert _digest(synth_root) == before  # the input is never modified
    assert summary["frames_completed"] > 0 and (out / FINISHED_MARKER).is_file()
    new = build_dataset("mars", out)
    for split in ("train", "query", "gallery"):
        old_t, new_t = getattr(dataset, split), getattr(new, split)
        assert [(t.pid, t.camid) for t in old_t] == [(t.pid, t.camid) for t in new_t]
        for a, b in zip(old_t, new_t, strict=True):
            assert [os.path.relpath(p, dataset.root) for p in a.frames] == \
                   [os.path.relpath(p, new.root) for p in b.frames]
    pairs = [(a, b) for t0, t1 in zip(dataset.train, new.train, strict=True)
             for a, b in zip(t0.frames, t1.frames, strict=True)]
    rewritten = sum(os.stat(a).st_ino != os.stat(b).st_ino for a, b in pairs)
    assert 0 < rewritten  # completed frames are new files, the rest hard links
    with pytest.raises(ValueError, match="finished completion"):
        complete_dataset("mars", synth_root, out, reid, STCGenerator(8), height=H, width=W)
    with pytest.raises(ValueError, match="overlaps the input"):
        complete_dataset("mars", synth_root, Path(synth_root) / "x", reid, STCGenerator(8),
                         height=H, width=W)


def test_given_stripe_masks_replace_the_locator(synth_root: str, tmp_path: Path) -> None:
    """Masks from outside (e.g. ground truth): exactly the flagged frames are rewritten."""
    torch.manual_seed(0)
    dataset = build_dataset("mars", synth_root)
    reid = build_model("vrstc_reid", dataset.num_train_pids, **TINY)

    def first_frame_top_stripe(frames: tuple[str, ...]) -> np.ndarray:
        masks = np.zeros((len(frames), 3), dtype=bool)
        masks[0, 0] = True
        return masks

    out = tmp_path / "completed"
    # tau 0.9999 would flag nearly every stripe (see above): the masks must win
    summary = complete_dataset("mars", synth_root, out, reid, STCGenerator(8), height=H,
                               width=W, tau=0.9999, stripe_masks=first_frame_top_stripe)
    unique = {t.frames for t in (*dataset.train, *dataset.query, *dataset.gallery)}
    assert summary["frames_completed"] == summary["regions_completed"] == len(unique)
    assert summary["stripe_masks"] is True
    new = build_dataset("mars", out)
    for a, b in zip(dataset.train, new.train, strict=True):
        rewritten = [os.stat(x).st_ino != os.stat(y).st_ino
                     for x, y in zip(a.frames, b.frames, strict=True)]
        assert rewritten == [True] + [False] * (len(a.frames) - 1)
    with pytest.raises(ValueError, match=r"expected \(\d+, 2\)"):
        complete_dataset("mars", synth_root, tmp_path / "wrong", reid, STCGenerator(8),
                         height=H, width=W, num_regions=2, stripe_masks=first_frame_top_stripe)


def test_train_stc_then_complete_from_the_cli(synth_root: str, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    torch.manual_seed(0)
    dataset = build_dataset("mars", synth_root)
    reid = build_model("vrstc_reid", dataset.num_train_pids, **TINY)
    reid_path = tmp_path / "reid.pt"
    torch.save({"model": reid.state_dict(), "num_classes": dataset.num_train_pids}, reid_path)
    common = [f"reid.weights={reid_path}", f"data.root={synth_root}", f"data.height={H}",
              f"data.width={W}", f"locator.height={H}", f"locator.width={W}",
              "data.num_workers=0", "train.progress=false",
              "train.device=cpu"]
    rc = main(["vrstc", "train-stc", str(STC_CONFIG), *common, "train.steps=2",
               "train.batch_size=2", "generator.base_channels=8", f"output_dir={tmp_path}",
               "run_name=stc", "locator.tau=0.0", "locator.source_tau=0.5",
               "generator.num_neighbours=2"])
    assert rc == 0
    weights = tmp_path / "stc" / "stc.pt"
    generator, meta = load_stc_generator(weights)
    assert meta["height"] == H and isinstance(generator, STCGenerator)
    assert (meta["tau"], meta["source_tau"], meta["num_neighbours"]) == (0.0, 0.5, 2)
    out = tmp_path / "completed"
    capsys.readouterr()
    # the config says tau 0.89, 4 neighbours: completion uses what STCnet was trained with
    rc = main(["vrstc", "complete", str(STC_CONFIG), "--weights", str(weights), "--data",
               synth_root, "--out", str(out), *common])
    assert rc == 0
    assert len(build_dataset("mars", out).train) == len(dataset.train)
    done = json.loads((out / FINISHED_MARKER).read_text())
    assert (done["tau"], done["source_tau"], done["num_neighbours"]) == (0.0, 0.5, 2)
    printed = capsys.readouterr().out
    assert "tau 0.0" in printed and "num_neighbours 2" in printed and "override" not in printed
    # an explicit override is used and printed
    out2 = tmp_path / "completed2"
    rc = main(["vrstc", "complete", str(STC_CONFIG), "--weights", str(weights), "--data",
               synth_root, "--out", str(out2), "--set", "tau=0.3", *common])
    assert rc == 0
    assert json.loads((out2 / FINISHED_MARKER).read_text())["tau"] == 0.3
    assert "override tau: 0.0" in capsys.readouterr().out
    rc = main(["vrstc", "complete", str(STC_CONFIG), "--weights", str(weights), "--data",
               synth_root, "--out", str(tmp_path / "c3"), "--set", "taus=0.5", *common])
    assert rc == 2
    # re-ID weights that do not match reid.model: a clear error, exit code 2
    rc = main(["vrstc", "complete", str(STC_CONFIG), "--weights", str(weights), "--data",
               synth_root, "--out", str(tmp_path / "other"), *common,
               "reid.model.backbone=resnet18"])
    assert rc == 2


def test_train_stc_writes_a_loadable_checkpoint(synth_root: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    dataset = build_dataset("mars", synth_root)
    reid = build_model("vrstc_reid", dataset.num_train_pids, **TINY)
    # the generator works at a smaller size than the re-ID network's (locator, ID guider)
    # the paper's ID guider: a frame-level network of its own
    guider = build_model("video_baseline", dataset.num_train_pids, backbone="tiny",
                         bnneck=False)
    result = train_stc(reid, dataset.train, tmp_path / "stc.pt", height=32, width=16,
                       base_channels=8, steps=3, batch_size=2, tau=0.0, log_every=1,
                       reid_size=(H, W), guider=guider)
    assert [h["step"] for h in result["history"]] == [1, 2, 3]
    _, meta = load_stc_generator(tmp_path / "stc.pt")
    assert (meta["height"], meta["width"], meta["reid_size"]) == (32, 16, [H, W])
    assert meta["guider"] == "VideoBaseline"
    assert all(torch.isfinite(torch.tensor(v)) for v in result["last"].values())
    with pytest.raises(ValueError, match="not an STCnet checkpoint"):
        reid_path = tmp_path / "reid.pt"
        torch.save({"model": reid.state_dict()}, reid_path)
        load_stc_generator(reid_path)


def test_loss_history_records_means_over_each_interval() -> None:
    from vidreid.methods.vrstc.stc import _History

    history = _History(every=3, steps=7)
    trainer = type("T", (), {"global_step": 0})()
    for step in range(1, 8):
        trainer.global_step = step
        history.after_step(trainer, float(step), {"rec": torch.tensor(10.0 * step)})
    # steps 1-3, 4-6 and the last one, 7
    assert [(r["step"], r["n"]) for r in history.records] == [(3, 3), (6, 3), (7, 1)]
    assert [r["rec"] for r in history.records] == pytest.approx([20.0, 50.0, 70.0])
    assert [r["g"] for r in history.records] == pytest.approx([2.0, 5.0, 7.0])
    assert history.last == {"step": 7, "g": 7.0, "rec": 70.0}
