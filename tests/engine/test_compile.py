"""vidreid.engine.compile: fixed-batch padding, the eager fallback (one message), the on-disk
cache location, and the compiled training forward (toy model, so the compile is small)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
import torch
from torch._dynamo.utils import counters

from vidreid.engine import compile as C

LOGGER = "vidreid.engine.compile"


def test_fixed_batch_pads_the_last_batch_and_splits_long_ones():
    shapes: list[int] = []

    def double(x: torch.Tensor) -> torch.Tensor:
        shapes.append(x.shape[0])
        return x * 2

    fixed = C.FixedBatch(double, 4)
    x = torch.arange(10.0).reshape(10, 1)
    assert torch.equal(fixed(x), x * 2)
    assert shapes == [4, 4, 4]  # 4 + 4 + (2 padded to 4)
    assert torch.equal(fixed(x[:3]), x[:3] * 2)

    layouts: list[bool] = []
    keep = C.FixedBatch(lambda z: layouts.append(
        z.is_contiguous(memory_format=torch.channels_last)) or z, 4)
    frames = torch.randn(3, 3, 4, 2).contiguous(memory_format=torch.channels_last)
    assert torch.equal(keep(frames), frames)
    assert layouts == [True]  # the padded batch keeps the frames' layout (no re-trace)
    with pytest.raises(ValueError, match="batch must be >= 1"):
        C.FixedBatch(double, 0)


def test_failing_compile_falls_back_to_eager_with_one_message(caplog):
    def broken(x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("inductor could not build the kernel\nlong traceback")

    fallback = C.Fallback(broken, lambda x: x + 1, "toy.encode")
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        for _ in range(3):
            assert torch.equal(fallback(torch.ones(2)), torch.full((2,), 2.0))
    messages = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert len(messages) == 1
    assert "toy.encode runs eager" in messages[0] and "could not build" in messages[0]
    assert not fallback.active

    def bad_input(x: torch.Tensor) -> torch.Tensor:
        raise ValueError("frames must be [N, 3, H, W]")

    # an error eager raises too is the caller's, not a compile failure: it propagates
    strict = C.Fallback(bad_input, bad_input, "toy.encode")
    with pytest.raises(ValueError, match="frames must be"):
        strict(torch.ones(1))


def test_unavailable_compile_is_one_message(caplog, monkeypatch):
    monkeypatch.setattr(C, "compile_unavailable_reason", lambda: "Dynamo unsupported here")
    model = torch.nn.Conv2d(3, 4, 1)
    model.encode_frames = model.forward  # type: ignore[attr-defined]
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        encode = C.compiled_frame_encoder(model, 2)
        assert C.compiled_frame_encoder(model, 2) is encode  # one per model and batch
        x = torch.randn(3, 3, 2, 2)
        torch.testing.assert_close(encode(x), model(x))
    messages = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert messages == ["Conv2d.encode_frames runs eager: Dynamo unsupported here"]


def test_cache_dir_order(monkeypatch, tmp_path):
    monkeypatch.delenv(C.CACHE_ENV, raising=False)
    monkeypatch.delenv(C.INDUCTOR_CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert C.compile_cache_dir() == tmp_path / "xdg" / "vidreid" / "inductor"
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    monkeypatch.setenv(C.INDUCTOR_CACHE_ENV, default_cache_dir())  # inductor's own /tmp one
    assert C.compile_cache_dir() == tmp_path / "xdg" / "vidreid" / "inductor"
    monkeypatch.setenv(C.INDUCTOR_CACHE_ENV, str(tmp_path / "torch"))  # the user's choice
    assert C.compile_cache_dir() == tmp_path / "torch"
    monkeypatch.setenv(C.CACHE_ENV, str(tmp_path / "ours"))
    assert C.enable_compile_cache() == tmp_path / "ours"
    assert os.environ[C.INDUCTOR_CACHE_ENV] == str(tmp_path / "ours")


@pytest.mark.slow  # forward + backward inductor compile: ~160 s cold on the loaded host, ~10 s warm
def test_compiled_training_forward_matches_eager(inductor_cache):
    from test_trainer import NUM_IDS, ToyModel

    torch.manual_seed(0)
    eager, compiled = ToyModel(NUM_IDS), ToyModel(NUM_IDS)
    compiled.load_state_dict(eager.state_dict())
    for m in (eager, compiled):
        m.dropout.p = 0.0  # same outputs without sharing the RNG stream
        m.train()
    keys = list(compiled.state_dict())
    fallback = C.compile_training_forward(compiled)
    clips = torch.randn(4, 3, 3, 16, 8)
    graphs = counters["stats"]["unique_graphs"]
    out_e, out_c = eager(clips), compiled(clips)
    assert fallback.active, fallback.failed  # it really ran compiled
    assert counters["stats"]["unique_graphs"] > graphs
    torch.testing.assert_close(out_c["logits"], out_e["logits"], atol=1e-5, rtol=1e-4)
    out_e["logits"].sum().backward()
    out_c["logits"].sum().backward()
    for (name, p_e), p_c in zip(eager.named_parameters(), compiled.parameters(), strict=True):
        torch.testing.assert_close(p_c.grad, p_e.grad, atol=1e-5, rtol=1e-4, msg=name)
    assert list(compiled.state_dict()) == keys  # checkpoints keep their key names
    compiled.eval()
    graphs = counters["stats"]["unique_graphs"]
    with torch.no_grad():
        torch.testing.assert_close(compiled(clips)["features"], eager.eval()(clips)["features"])
    assert counters["stats"]["unique_graphs"] == graphs  # eval mode runs eager


def test_eval_compile_flag_reaches_the_evaluation(tmp_path, monkeypatch, capsys):
    """``vidreid eval --compile`` takes the frame-encoder path (here with compiling made
    unavailable: one message, then eager) and ranks as plain ``vidreid eval`` does."""
    from vidreid import build as B
    from vidreid.cli import main
    from vidreid.data.synth import generate
    from vidreid.engine.config import load_config

    config = str(Path(__file__).resolve().parents[2] / "configs" / "baselines" / "tp_synth.yaml")
    root = generate(str(tmp_path / "synth"), "mars", 4, 2, 0, size=(64, 32), max_len=8,
                    workers=1)
    overrides = [f"data.root={root}", "data.height=64", "data.width=32", "data.num_workers=0",
                 "train.amp='off'", "model.backbone=tiny", "eval.batch_size=3"]
    torch.manual_seed(0)
    model = B.build_model(load_config(config, overrides), 2)
    weights = tmp_path / "w.pt"
    torch.save({k: v for k, v in model.state_dict().items() if "classifier" not in k}, weights)
    monkeypatch.setattr(C, "compile_unavailable_reason", lambda: "test: no compiler")
    results, messages = {}, []
    for flag in ([], ["--compile"]):
        out = tmp_path / f"eval{len(flag)}"
        args = ["eval", config, *overrides, "--weights", str(weights), "--out", str(out)]
        assert main(args + flag) == 0
        results[len(flag)] = json.loads((out / "results.json").read_text())
        messages.append([line for line in capsys.readouterr().err.splitlines()
                         if "runs eager" in line])  # the CLI logs to stderr
    assert messages == [[], ["warning: VideoBaseline.encode_frames runs eager: test: no compiler"]]
    assert results[1]["config"]["eval"]["compile"] and not results[0]["config"]["eval"]["compile"]
    plain, compiled = results[0]["results"]["v2v"], results[1]["results"]["v2v"]
    assert compiled["mAP"] == pytest.approx(plain["mAP"], abs=1e-6)
    assert compiled["cmc"][:5] == pytest.approx(plain["cmc"][:5], abs=1e-6)
