"""``vidreid vrstc run``: the whole pipeline in one run folder, stage by stage and resumed
(vidreid/methods/vrstc/pipeline.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from vidreid.cli import main
from vidreid.data import build_dataset
from vidreid.data.synth import generate
from vidreid.methods.vrstc.pipeline import PIPELINE_FILE, STAGE_DIR

CONFIGS = Path(__file__).parents[3] / "configs" / "vrstc"
H, W = 48, 24
SMALL = ["data.height=48", "data.width=24", "data.num_workers=0", "train.progress=false",
         "train.device=cpu"]


def _pipeline_config(tmp_path: Path, root: str) -> Path:
    reid = [*SMALL, "train.epochs=1", "train.max_steps_per_epoch=2", "data.batch_size=4",
            "data.num_instances=2", "train.checkpoint_every=1", "train.num_threads=1", "sched.warmup_epochs=0"]
    stc = [*SMALL, "locator.height=48", "locator.width=24", "train.steps=2",
           "train.batch_size=2", "generator.base_channels=8", "locator.tau=0.0",
           "locator.source_tau=0.0", "train.log_every=1", "train.num_threads=1"]
    cfg = {"name": "p", "output_dir": str(tmp_path / "runs"), "run_name": "p",
           "data_root": root, "reid": {"config": str(CONFIGS / "synth.yaml"), "overrides": reid},
           "stc": {"config": str(CONFIGS / "stc" / "synth.yaml"), "overrides": stc},
           # tau 0.0 trains STCnet on every frame; completion flags nearly every stripe
           "complete_set": ["tau=0.9999", "source_tau=0.9999"]}
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_pipeline_runs_stage_by_stage_and_resumes(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    root = generate(str(tmp_path / "data"), "mars", 6, 2, 0, size=(H, W), max_len=5,
                    occlusion_rate=0.5, tracklets_per_camera=(1, 2), workers=1)
    config = _pipeline_config(tmp_path, root)
    run = tmp_path / "runs" / "p"
    stages = run / STAGE_DIR

    assert main(["vrstc", "run", str(config), "--until", "locate"]) == 0
    assert sorted(p.stem for p in stages.glob("*.json")) == ["locate", "reid"]
    assert (run / "reid" / "last.pt").is_file() and (run / "locate" / "scores.npz").is_file()
    out = capsys.readouterr().out
    assert "[reid] wrote:" in out and "[locate] wrote:" in out and "scores.npz" in out
    reid_mtime = (run / "reid" / "last.pt").stat().st_mtime_ns
    # the same run again is refused: it is continued with --resume
    assert main(["vrstc", "run", str(config)]) == 2

    assert main(["vrstc", "run", "--resume", str(run), "--until", "stc"]) == 0
    assert (run / "stc" / "stc.pt").is_file()
    assert "[reid] done earlier" in capsys.readouterr().out
    # an interruption after the trainer's last checkpoint, before stc.pt and the marker
    (stages / "stc.json").unlink()
    (run / "stc" / "stc.pt").unlink()
    assert main(["vrstc", "run", "--resume", str(run)]) == 0
    out = capsys.readouterr().out
    assert "[stc] resuming" in out and "[complete] wrote:" in out
    assert "[reid_completed] wrote:" in out and "re-ID completed:" in out
    assert (run / "stc" / "stc.pt").is_file()
    assert (run / "reid" / "last.pt").stat().st_mtime_ns == reid_mtime  # not retrained
    assert (run / PIPELINE_FILE).is_file()
    complete = json.loads((stages / "complete.json").read_text())
    assert complete["summary"]["frames_completed"] > 0
    assert complete["summary"]["settings"]["tau"] == 0.9999
    assert len(build_dataset("mars", run / "completed").train) == \
        len(build_dataset("mars", root).train)
    final = json.loads((stages / "reid_completed.json").read_text())
    assert final["summary"]["eval"]  # tested on the completed data
    config_used = yaml.safe_load((run / "reid_completed" / "config.yaml").read_text())
    assert config_used["data"]["root"] == str(run / "completed")
    # everything done: a rerun skips every stage
    assert main(["vrstc", "run", "--resume", str(run)]) == 0
    assert capsys.readouterr().out.count("done earlier") == 5
