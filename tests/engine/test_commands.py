"""End to end on a tiny synthetic MARS-layout set: ``vidreid train`` overfits (train
rank-1 = 100%), ``vidreid eval`` writes its reports, ``--resume`` continues a run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from vidreid import build as B
from vidreid.cli import main
from vidreid.engine.checkpoint import load_checkpoint
from vidreid.engine.config import load_config
from vidreid.engine.inference import evaluate_model

CONFIG = str(Path(__file__).resolve().parents[2] / "vidreid" / "configs" / "baselines" / "tp_synth.yaml")
EPOCHS = 15


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory: pytest.TempPathFactory) -> str:
    from vidreid.data.synth import generate

    out = tmp_path_factory.mktemp("synth")
    return generate(str(out), "mars", 8, 2, 0, size=(64, 32), max_len=12, workers=1)


def overrides(root: str, out: Path, epochs: int = EPOCHS) -> list[str]:
    return [
        f"data.root={root}", "data.height=64", "data.width=32", "data.batch_size=8",
        "data.num_workers=0", f"train.epochs={epochs}", f"output_dir={out}", "run_name=run",
        "optim.lr=3e-3", "sched.warmup_epochs=1", "train.progress=false",
        "train.num_threads=1",
    ]


def test_train_overfits_then_eval_writes_reports(synth_root: str, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture) -> None:
    assert main(["train", CONFIG, *overrides(synth_root, tmp_path)]) == 0
    run = tmp_path / "run"
    assert "run folder:" in capsys.readouterr().out
    for name in ("config.yaml", "last.pt", "best.pt", "log.jsonl"):
        assert (run / name).is_file(), name
    assert list((run / "tensorboard").iterdir())
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    epochs = [r for r in records if r["type"] == "epoch"]
    assert len(epochs) == EPOCHS and epochs[-1]["loss"] < epochs[0]["loss"]
    assert any(r["type"] == "eval" and "v2v/R1" in r for r in records)

    # train rank-1: one tracklet per identity as query, the others as gallery
    cfg = load_config(run / "config.yaml")
    dataset = B.build_dataset(cfg)
    model = B.load_trained(str(run / "last.pt"), cfg).model
    seen: set[int] = set()
    query, gallery = [], []
    for t in dataset.train:
        (gallery if t.pid in seen else query).append(t._replace(camid=int(t.pid in seen)))
        seen.add(t.pid)
    res = evaluate_model(model, query, gallery, transform=B.build_transform(cfg, train=False),
                         seq_len=cfg.data.seq_len, amp="auto")
    assert res["v2v"].cmc[0] == 1.0

    out = tmp_path / "eval"
    code = main(["eval", CONFIG, *overrides(synth_root, tmp_path), "--weights",
                 str(run / "best.pt"), "--protocols", "v2v,i2v", "--out", str(out)])
    assert code == 0
    assert "v2v" in capsys.readouterr().out
    saved = json.loads((out / "results.json").read_text())
    assert set(saved["results"]) == {"v2v", "i2v"}
    assert (out / "cmc.png").stat().st_size > 0


def test_resume_continues_a_run(synth_root: str, tmp_path: Path) -> None:
    once = [*overrides(synth_root, tmp_path, epochs=1), "sched.warmup_epochs=0"]
    assert main(["train", CONFIG, *once]) == 0
    run = tmp_path / "run"
    assert load_checkpoint(run)["epoch"] == 1
    # a second `train` into the same run folder is refused, --resume continues it
    assert main(["train", CONFIG, *once]) == 2
    assert main(["train", "--resume", str(run), "train.epochs=2"]) == 0
    ckpt = load_checkpoint(run)
    assert ckpt["epoch"] == 2 and ckpt["global_step"] == 4
    assert torch.load(run / "last.pt", weights_only=True)["num_classes"] == 4


def test_cli_errors_are_clear(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["train", CONFIG, "train.lr=1"]) == 2
    assert "unknown config key 'train.lr'" in capsys.readouterr().err
    assert main(["train", str(tmp_path / "none.yaml")]) == 2
    assert "config file not found" in capsys.readouterr().err
    # overrides may follow the options
    assert main(["eval", CONFIG, "--weights", str(tmp_path / "w.pt"),
                 f"data.root={tmp_path}", "eval.metric=cosine"]) == 2
    assert "vidreid: error:" in capsys.readouterr().err


def test_dry_run_prints_the_recipe_and_trains_nothing(synth_root: str, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    args = [*overrides(synth_root, tmp_path, epochs=4), "sched.name=multistep",
            "sched.milestones=[2,3]", "sched.warmup_epochs=0"]
    assert main(["train", CONFIG, *args, "--dry-run"]) == 0
    out = capsys.readouterr().out
    cfg = load_config(CONFIG, args)
    iterations = len(B.build_train_loader(cfg, B.build_dataset(cfg).train))
    assert f"iterations per epoch: {iterations}\n" in out
    assert f"total iterations: {4 * iterations}" in out
    assert f"from iteration {2 * iterations} (epoch 2)" in out
    assert f"from iteration {3 * iterations} (epoch 3)" in out
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("epoch", "options", "expected"), [
    ("shuffle", ["data.batch_size=10", "data.num_instances=1", "data.drop_last=false"], 5),
    ("tracklets", ["data.batch_size=4", "data.num_instances=2"], 10),  # 7 ids x 3 groups of 2
    ("identities", ["data.batch_size=4", "data.num_instances=2", "data.fill_last_batch=false"],
     3),
    ("iterations", ["data.batch_size=4", "data.num_instances=2", "data.iterations=7"], 7),
])
def test_train_loader_follows_data_epoch(epoch, options, expected) -> None:
    """build_train_loader: the loader's length is what iterations_per_epoch predicts."""
    from vidreid.data.samplers import iterations_per_epoch
    from vidreid.data.tracklet import Tracklet
    from vidreid.engine.config import sampler_options

    tracklets = [Tracklet((f"p{i % 7}/f{i}.jpg",), i % 7, 0) for i in range(46)]  # 7 ids
    cfg = load_config(None, ["model.name=video_baseline", "data.num_workers=0",
                             f"data.epoch={epoch}", *options])
    loader = B.build_train_loader(cfg, tracklets)
    pids = [t.pid for t in tracklets]
    assert len(loader) == iterations_per_epoch(pids, **sampler_options(cfg)) == expected
    assert loader.drop_last == cfg.data.drop_last
