"""benchmarks/effects.py: intervals and the results-table row replacement (no training)."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest
from _scripts import load_script


@pytest.fixture(scope="module")
def effects():
    yield from load_script("effects")


def test_t_interval_matches_the_textbook_formula(effects) -> None:
    # values 1, 2, 3: mean 2, s = 1, sem = 1/sqrt(3), t_{0.975, 2} = 4.302653
    mean, lo, hi = effects.t_interval([1.0, 2.0, 3.0])
    half = 4.302653 / math.sqrt(3)
    assert mean == pytest.approx(2.0)
    assert (lo, hi) == pytest.approx((2.0 - half, 2.0 + half), abs=1e-5)
    one = effects.t_interval([5.0])
    assert one[0] == 5.0 and math.isnan(one[1]) and math.isnan(one[2])
    assert effects.fmt([5.0]).endswith("[n/a: 1 seed]")


def test_record_row_replaces_the_methods_row_only(effects, tmp_path) -> None:
    out = tmp_path / "effects.md"
    effects.record_row("gltr", "| gltr | a | b | 1 | 1.0 | `x` |", out)
    effects.record_row("cosam", "| cosam | c | d | 1 | 2.0 | `y` |", out)
    effects.record_row("gltr", "| gltr | new | b | 3 | 9.0 | `z` |", out)
    rows = [line for line in out.read_text().splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| method |")
    assert rows[1:] == ["| cosam | c | d | 1 | 2.0 | `y` |", "| gltr | new | b | 3 | 9.0 | `z` |"]


def test_vrstc_row_carries_the_completion_mechanism(effects, tmp_path) -> None:
    runs = [{"method": {"metrics": {"v2v/R1": 80.0 + s, "v2v/mAP": 85.0}, "minutes": 1.0,
                        "cpu_minutes": 2.0},
             "baseline": {"metrics": {"v2v/R1": 79.0, "v2v/mAP": 84.0}, "reused": True}}
            for s in (0.0, 2.0)]
    summary = effects.summarize(effects.VRSTC_EFFECT, [1, 2], runs)
    assert summary["diffs"]["v2v/R1"] == [1.0, 3.0] and summary["reused"] == 2
    summary["mechanism_text"] = "PSNR STCnet - copy-from-nearest -1.00 dB [-2.00, 0.00]"
    row = effects.table_row("vrstc", effects.VRSTC_EFFECT, summary, "cmd")
    assert row.startswith("| vrstc | PSNR STCnet - copy-from-nearest -1.00 dB")
    assert "v2v/R1 2.0 [" in row
    effects.record_row("vrstc", row, tmp_path / "effects.md")
    assert row in (tmp_path / "effects.md").read_text()


def test_loss_curve_weights_records_by_their_steps(effects) -> None:
    # records are means over their steps (stc._History): 2 records of 5 steps, then 1 of 2
    history = [{"step": 5, "n": 5, "rec": 1.0}, {"step": 10, "n": 5, "rec": 0.5},
               {"step": 12, "n": 2, "rec": 0.2}]
    curve = effects.loss_curve(history, parts=2)
    assert curve[0] == {"steps": "1-10", "rec": 0.75}
    assert curve[1] == {"steps": "11-12", "rec": 0.2}


def test_reused_completion_must_come_from_the_same_raw_run(effects, tmp_path) -> None:
    done = tmp_path / "completed"
    done.mkdir()
    record = tmp_path / "completion-1.json"
    record.write_text(json.dumps({"raw_run": "runs/a", "root": str(done)}))
    with pytest.raises(ValueError, match="not from 'runs/b'"):
        effects.load_completion(record, {"run_dir": "runs/b"})
    with pytest.raises(ValueError, match="missing or unfinished"):
        effects.load_completion(record, {"run_dir": "runs/a"})
    (done / "vrstc_completion.json").write_text("{}")
    assert effects.load_completion(record, {"run_dir": "runs/a"})["root"] == str(done)
    # a record without a variant is the paper's pipeline; another variant is refused
    for variant in (effects.CompletionVariant(oracle_locator=True),
                    effects.CompletionVariant(oracle_train=True),
                    effects.CompletionVariant(fill="copy")):
        with pytest.raises(ValueError, match="this run asks for CompletionVariant"):
            effects.load_completion(record, {"run_dir": "runs/a"}, variant)
    with pytest.raises(ValueError, match="fill must be one of"):
        effects.CompletionVariant(fill="zeros")


def test_mean_fill_replaces_the_holes_by_the_visible_mean(effects) -> None:
    import torch

    frames = torch.rand(2, 3, 6, 4) * 2 - 1
    holes = torch.zeros(2, 1, 6, 4)
    holes[0, :, :2] = 1  # frame 0: top third is a hole; frame 1: none
    out = effects.MeanFill()(frames, holes, torch.empty(0), torch.empty(0))["completed"]
    visible_mean = frames[0, :, 2:].mean(dim=(1, 2))  # [3]
    assert torch.allclose(out[0, :, :2], visible_mean[:, None, None].expand(3, 2, 4))
    assert torch.equal(out[0, :, 2:], frames[0, :, 2:]) and torch.equal(out[1], frames[1])


def test_copy_fill_takes_the_first_neighbour_that_shows_the_pixel(effects) -> None:
    import torch

    frames = torch.zeros(1, 3, 4, 2)
    holes = torch.zeros(1, 1, 4, 2)
    holes[0, :, :2] = 1  # rows 0-1 are the hole
    neighbours = torch.stack([torch.full((3, 4, 2), v) for v in (0.1, 0.2)])[None]  # [1,2,..]
    masks = torch.zeros(1, 2, 1, 4, 2)
    masks[0, 0, :, 0] = 1  # the first neighbour hides row 0: read the second there
    masks[0, 1, :, 0] = 1  # ... which hides it too: the visible mean (0) fills row 0
    masks[0, 0, :, 1, 1] = 1  # row 1: both show column 0 (the first wins), column 1 the second
    out = effects.CopyFill()(frames, holes, neighbours, masks)["completed"][0]
    assert torch.allclose(out[:, 0], torch.zeros(3, 2))
    assert torch.allclose(out[:, 1, 0], torch.full((3,), 0.1))
    assert torch.allclose(out[:, 1, 1], torch.full((3,), 0.2))
    assert torch.equal(out[:, 2:], frames[0, :, 2:])  # outside the hole: untouched


def test_loss_flatness_compares_adjacent_windows(effects) -> None:
    from vrstc_occlusion import loss_flatness

    falling = [{"rec": 1.0 / (i + 1)} for i in range(100)]
    flat = loss_flatness(falling, fraction=0.1)  # last 10 records vs the 10 before
    expected_before = sum(1.0 / (i + 1) for i in range(80, 90)) / 10
    expected_last = sum(1.0 / (i + 1) for i in range(90, 100)) / 10
    assert flat["before"] == pytest.approx(expected_before)
    assert flat["last"] == pytest.approx(expected_last)
    assert flat["ratio"] == pytest.approx(expected_last / expected_before)
    steady = loss_flatness([{"rec": 0.5} for _ in range(100)], fraction=0.1)
    assert steady["flat"] and steady["ratio"] == pytest.approx(1.0)
    assert not loss_flatness([{"rec": 1.0}] * 5, fraction=0.1)["flat"]  # too few records


def test_tree_memory_counts_shared_pages_once_in_pss(effects) -> None:
    import os

    from vrstc_occlusion import _tree_memory_bytes

    rss, pss = _tree_memory_bytes(os.getpid())
    # this process alone: both positive, PSS never above RSS (shared pages are split)
    assert 0 < pss <= rss


def test_written_frames_counts_replaced_links_only(effects, tmp_path) -> None:
    import os

    from vrstc_occlusion import written_frames

    src, out = tmp_path / "in", tmp_path / "out" / "bbox"
    src.mkdir()
    out.mkdir(parents=True)
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        (src / name).write_bytes(b"x")
        os.link(src / name, out / name)
    (out.parent / ".vrstc_incomplete").touch()  # markers do not count
    assert written_frames(out.parent) == 0
    (out / "b.jpg").unlink()
    (out / "b.jpg").write_bytes(b"completed")  # what complete does: replace the link
    assert written_frames(out.parent) == 1


def test_a_run_stopped_before_its_evaluation_is_not_reused(effects, tmp_path) -> None:
    run = tmp_path / "tp" / "bench_tp-seed3-1"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("run_name: bench_tp-seed3-1\ntrain:\n  seed: 3\n")
    cfg = effects.load_config(run / "config.yaml")  # the same settings, as a new run has them
    (run / effects.RESULT_FILE).write_text('{"metrics": {}, "minutes": 1.0}')
    assert effects.finished_run(cfg, tmp_path, epochs=8) is None
    (run / effects.RESULT_FILE).write_text('{"metrics": {"v2v/R1": 80.0}, "minutes": 1.0}')
    assert effects.finished_run(cfg, tmp_path, epochs=8)["metrics"] == {"v2v/R1": 80.0}


def test_reuse_ignores_how_the_cpu_was_used_but_not_the_recipe(effects, tmp_path) -> None:
    run = tmp_path / "tp" / "bench_tp-seed1-1"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("run_name: bench_tp-seed1-1\ndata:\n  num_workers: 1\n"
                                     "train:\n  seed: 1\n  num_threads: null\n  epochs: 8\n")
    (run / effects.RESULT_FILE).write_text('{"metrics": {"v2v/R1": 80.0}, "minutes": 1.0}')
    cfg = effects.load_config(run / "config.yaml")
    cfg.data.num_workers, cfg.train.num_threads = 0, 2  # another loader / thread split
    assert effects.finished_run(cfg, tmp_path, epochs=8)["metrics"] == {"v2v/R1": 80.0}
    cfg.train.epochs = 16  # another recipe
    assert effects.finished_run(cfg, tmp_path, epochs=16) is None


def test_unoccluded_copy_holds_the_clean_renders_and_leaves_the_set_alone(effects,
                                                                         tmp_path) -> None:
    """Every occluded frame of the copy is its clean render (JPEG-close), the others are the
    set's own files (hard links), the set itself is untouched, and a finished copy is reused."""
    import io
    import os

    import numpy as np
    from PIL import Image

    from vidreid.data.synth import generate
    from vidreid.data.synth import ground_truth as gt
    from vidreid.data.synth.generate import JPEG_QUALITY

    root = generate(str(tmp_path / "set"), "mars", 3, 2, 5, size=(64, 32), max_len=6,
                    occlusion_rate=1.0, occlusion_run=(0.5, 0.5), workers=1)
    truth = Path(gt.ground_truth_root(root))
    frames = sorted(Path(truth.parent).rglob("*.jpg"))
    before = {f: f.read_bytes() for f in frames}
    copy = Path(effects.unoccluded_root(root))
    assert copy.name.endswith("-unoccluded")
    occluded = clean = 0
    for f in frames:
        twin = copy / f.relative_to(Path(root).resolve())
        t = gt.load_frame_truth(f)
        if t.clean is None:
            assert os.path.samefile(f, twin)  # not occluded: the same file
            clean += 1
        else:
            got = np.asarray(Image.open(twin).convert("RGB"), np.float32)
            raw = np.asarray(Image.open(f).convert("RGB"), np.float32)
            # the clean render as the generator would have written it (same JPEG quality)
            buf = io.BytesIO()
            Image.fromarray(t.clean).save(buf, format="JPEG", quality=JPEG_QUALITY)
            assert (got == np.asarray(Image.open(buf).convert("RGB"), np.float32)).all()
            if t.occluder.any():  # ... not the occluded frame, where the occluder is
                err = np.abs(got - t.clean)[t.occluder].mean()
                assert err < np.abs(raw - t.clean)[t.occluder].mean()
            occluded += 1
    assert occluded and clean  # events over half of each tracklet: both kinds exist
    assert all(f.read_bytes() == b for f, b in before.items())  # the set is untouched
    marker = copy / effects.UNOCCLUDED_MARKER
    assert json.loads(marker.read_text())["replaced"] == occluded
    stamp = marker.stat().st_mtime_ns
    assert effects.unoccluded_root(root) == str(copy) and marker.stat().st_mtime_ns == stamp


def test_row_gives_the_baselines_occlusion_cost(effects) -> None:
    runs = [{"method": {"metrics": {"v2v/R1": 70.0, "v2v/mAP": 72.0}, "minutes": 1.0,
                        "cpu_minutes": 2.0},
             "baseline": {"metrics": {"v2v/R1": 60.0, "v2v/mAP": 70.0}, "minutes": 1.0,
                          "cpu_minutes": 2.0,
                          "unoccluded": {"v2v/R1": 70.0 + s, "v2v/mAP": 80.0}}}
            for s in (0.0, 2.0)]
    effect = effects.EFFECTS["cosam"]
    summary = effects.summarize(effect, [1, 2], runs)
    assert summary["occlusion_cost"]["v2v/R1"] == [10.0, 12.0]
    row = effects.table_row("cosam", effect, summary, "cmd")
    assert "baseline's occlusion cost v2v/R1 11.0 [" in row
    del runs[1]["baseline"]["unoccluded"]  # one seed without: no cost claimed
    assert effects.summarize(effect, [1, 2], runs)["occlusion_cost"] == {}


def test_record_row_keeps_the_notes_below_the_table(effects, tmp_path) -> None:
    out = tmp_path / "effects.md"
    effects.record_row("gltr", "| gltr | a | b | 1 | 1.0 | `x` |", out)
    out.write_text(out.read_text() + "\n## Why\n\n| a note's own table |\n")
    effects.record_row("cosam (heavy)", "| cosam (heavy) | c | d | 3 | 2.0 | `y` |", out)
    text = out.read_text()
    assert text.endswith("\n## Why\n\n| a note's own table |\n")
    table = text.split("\n\n## Why")[0]
    assert table.splitlines()[-2:] == ["| gltr | a | b | 1 | 1.0 | `x` |",
                                       "| cosam (heavy) | c | d | 3 | 2.0 | `y` |"]


def test_tkp_rows_report_the_image_to_video_lift_on_either_set(effects) -> None:
    runs = [{"method": {"metrics": {"v2v/R1": 70.0, "v2v/mAP": 70.0, "i2v/R1": 50.0 + s,
                                    "i2v/mAP": 40.0 + s}, "minutes": 1.0, "cpu_minutes": 2.0},
             "baseline": {"metrics": {"v2v/R1": 70.0, "v2v/mAP": 70.0, "i2v/R1": 50.0,
                                      "i2v/mAP": 40.0}, "minutes": 1.0, "cpu_minutes": 2.0}}
            for s in (2.0, 4.0)]
    clean, occluded = effects.EFFECTS["tkp"], effects.EFFECTS["tkp_occluded"]
    assert not clean.occluded_data and occluded.occluded_data  # the one difference
    assert (clean.config, clean.baseline, clean.overrides) == (
        occluded.config, occluded.baseline, occluded.overrides)
    for name, effect in (("tkp", clean), ("tkp_occluded", occluded)):
        summary = effects.summarize(effect, [1, 2], runs)
        assert summary["mechanism"]["i2v mAP lift"] == [2.0, 4.0]
        assert "i2v mAP lift 3.0 [" in effects.table_row(name, effect, summary, "cmd")
    assert "i2v mAP lift" not in effects.summarize(effects.EFFECTS["cosam"], [1, 2],
                                                   runs)["mechanism"]


def test_row_label_names_budget_and_overrides(effects) -> None:
    assert effects.row_label("cosam", "full", None, None) == "cosam"
    assert effects.row_label("cosam", "heavy", None, None) == "cosam (heavy)"
    # an override adds a row instead of replacing the budget's own
    assert effects.row_label("attribute", "heavy", 16, None) == "attribute (heavy, 16 epochs)"
    assert effects.row_label("tkp", "full", None, 5) == "tkp (5 steps/epoch)"


def test_a_trained_stcnet_is_reused_only_with_the_same_settings(effects, tmp_path,
                                                                 monkeypatch) -> None:
    import json

    import vidreid.methods.vrstc.stc as stc

    meta = {"steps": 1200, "tau": 0.9010001, "base_channels": 16}
    monkeypatch.setattr(stc, "load_stc_generator", lambda path: (None, meta))
    path = tmp_path / "stc-1" / "stc.pt"
    with pytest.raises(FileNotFoundError, match="drop --stc"):
        effects.trained_stc(path, steps=1200, tau=0.901, base_channels=16)
    path.parent.mkdir()
    path.write_bytes(b"weights")
    # no history beside it: reused, the flatness figures cannot be computed
    assert effects.trained_stc(path, steps=1200, tau=0.901, base_channels=16)["history"] == []
    (path.parent / effects.STC_HISTORY).write_text(json.dumps(
        {"last": {"step": 1200}, "history": [{"step": 12, "rec": 0.3}]}))
    got = effects.trained_stc(path, steps=1200, tau=0.901, base_channels=16)
    assert got["history"] == [{"step": 12, "rec": 0.3}] and got["path"] == str(path)
    # another raw network calibrates another tau; other steps are another STCnet
    with pytest.raises(ValueError, match="drop --stc"):
        effects.trained_stc(path, steps=1200, tau=0.92, base_channels=16)
    with pytest.raises(ValueError, match="drop --stc"):
        effects.trained_stc(path, steps=600, tau=0.901, base_channels=16)
    # a generator without the paste path is another STCnet than one with it
    with pytest.raises(ValueError, match="drop --stc"):
        effects.trained_stc(path, steps=1200, tau=0.901, base_channels=16, paste=True)


def test_vrstc_stops_early_without_scikit_image(effects, monkeypatch) -> None:
    import builtins

    real = builtins.__import__

    def no_skimage(name, *args, **kwargs):
        if name.startswith("skimage"):
            raise ImportError("No module named 'skimage'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_skimage)
    with pytest.raises(SystemExit, match=r"pip install -e '.\[bench\]'"):
        effects.require_bench_extra()


def test_tkp_runs_take_three_quarters_of_the_budgets_epochs(effects) -> None:
    heavy, smoke = effects.BUDGETS["heavy"], effects.BUDGETS["smoke"]
    assert effects.effect_budget(heavy, effects.EFFECTS["tkp_occluded"]).epochs == 6
    assert effects.effect_budget(heavy, effects.EFFECTS["cosam"]) is heavy
    # never below the recipes' warmup: the smoke budget's 3 epochs stay 3
    assert effects.effect_budget(smoke, effects.EFFECTS["tkp"]).epochs == effects.MIN_EPOCHS
    assert effects.effect_budget(heavy, effects.EFFECTS["tkp"]).occluded == heavy.occluded


def test_partial_budget_occludes_every_tracklet_in_a_minority_of_frames(effects) -> None:
    """VRSTC's range: every tracklet occluded, never over half its frames; a set of its own,
    the same identities and clean renders as the heavy one."""
    partial, heavy = effects.BUDGETS["partial"], effects.BUDGETS["heavy"]
    spec = partial.occluded
    assert spec.occlusion_rate == 1.0 and spec.occlusion_run[1] < 0.5
    assert spec.name() != heavy.occluded.name() and spec.seed == heavy.occluded.seed
    assert effects.row_label("vrstc", "partial", None, None) == "vrstc (partial)"
    oracle = effects.CompletionVariant(oracle_locator=True)
    assert effects.row_label("vrstc", "partial", None, None, oracle) == \
        "vrstc (partial, oracle locator)"
    assert effects.row_label("vrstc", "heavy", None, None, replace(oracle, fill="mean")) == \
        "vrstc (heavy, oracle locator, mean fill)"
    assert effects.row_label("vrstc", "heavy", None, None,
                             replace(oracle, oracle_train=True)) == \
        "vrstc (heavy, oracle locator, STCnet trained on the truth)"
    # STCnet's steps are the budget's (within 40 minutes), not the config's 1,200
    from vidreid.methods.vrstc.config import load_stc_config

    config_steps = load_stc_config(effects.REPO / effects.VRSTC_STC_CONFIG).train.steps
    assert partial.stc_steps is not None and partial.stc_steps < config_steps
    assert heavy.stc_steps is None
