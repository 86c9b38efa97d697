import pytest
import torch

from vidreid.models import build_model
from vidreid.retrieval.export import check_onnx_parity, export_onnx, run_onnx

SIZE = (64, 32)


def tiny(name: str = "video_baseline", **kw):
    torch.manual_seed(0)
    return build_model(name, 4, backbone="tiny", **kw).eval()


def test_frame_encoder_and_head_match_pytorch(tmp_path):
    model = tiny(head="rnn")
    frames = export_onnx(model, tmp_path / "m.onnx", SIZE, part="frames")
    head = export_onnx(model, tmp_path / "m.head.onnx", SIZE, part="head")
    assert check_onnx_parity(model, frames, SIZE, part="frames")["ok"]
    assert check_onnx_parity(model, head, SIZE, part="head", num_frames=6)["ok"]  # dynamic T
    # the two graphs chained give the model's clip descriptor
    clips = torch.randn(2, 3, 3, *SIZE)
    f = run_onnx(frames, clips.flatten(0, 1).numpy())
    got = run_onnx(head, f.reshape(2, 3, *f.shape[1:]))
    with torch.inference_mode():
        want = model(clips)["features"].numpy()
    assert abs(got - want).max() < 1e-4


def test_clip_export_for_models_without_frame_split(tmp_path):
    model = tiny("nonlocal", layer2_blocks=[0], layer3_blocks=[])
    with pytest.raises(ValueError, match="part='clip'"):
        export_onnx(model, tmp_path / "x.onnx", SIZE, part="frames")
    path = export_onnx(model, tmp_path / "clip.onnx", SIZE, part="clip", num_frames=4)
    report = check_onnx_parity(model, path, SIZE, part="clip", num_frames=4)
    assert report["ok"] and report["max_abs_ref"] > 0


def test_parity_check_catches_a_different_model(tmp_path):
    path = export_onnx(tiny(head="tp"), tmp_path / "m.onnx", SIZE, part="frames")
    torch.manual_seed(1)
    other = build_model("video_baseline", 4, backbone="tiny", head="tp").eval()
    with pytest.raises(ValueError, match="differ"):
        check_onnx_parity(other, path, SIZE, part="frames")


def test_unexportable_head_and_bad_file_are_clear_errors(tmp_path):
    # TA's adaptive pooling to 7x4 from a non-multiple map size has no ONNX form
    with pytest.raises(ValueError, match="cannot export part 'head'"):
        export_onnx(tiny(head="ta"), tmp_path / "ta.onnx", SIZE, part="head", dynamic=False)
    assert not list(tmp_path.iterdir())  # no partial file left behind
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="bad.onnx"):
        check_onnx_parity(tiny(), bad, SIZE)
