from pathlib import Path

import numpy as np
import pytest
import torch
from _extract_data import COLOURS, make_folder_dataset, tiny_config, write_frames, write_model
from PIL import Image

from vidreid.data import build_dataset
from vidreid.data.video_dataset import TestClipDataset
from vidreid.engine.inference import extract_features
from vidreid.retrieval.extractor import (
    MIN_FRAMES_FOR_WORKERS,
    FeatureExtractor,
    extract_dataset,
    query_frames,
    read_video,
)
from vidreid.retrieval.features_file import read_features


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory):
    return build_dataset("folder", str(make_folder_dataset(tmp_path_factory.mktemp("ds"))))


@pytest.mark.parametrize(
    "model",
    [
        {"head": "ta"},  # frame encoder + head (full maps kept)
        {"head": "rnn"},  # frame encoder + head (GAP'd frames kept)
        {"name": "nonlocal", "layer2_blocks": [0], "layer3_blocks": []},  # clip-wise fallback
    ],
)
def test_features_equal_the_evaluation_path(dataset, model):
    cfg = tiny_config()
    cfg["model"].update(model)
    torch.manual_seed(0)
    ex = FeatureExtractor(cfg, None, amp="off", batch_frames=5)
    assert ex.split == (cfg["model"]["name"] == "video_baseline")
    feats = ex(dataset.gallery)
    clips = TestClipDataset(dataset.gallery, seq_len=4, strategy="dense", transform=ex.transform)
    expected = extract_features(ex.model, clips, len(dataset.gallery), amp="off")
    assert feats.shape == (len(dataset.gallery), ex.feature_dim)
    torch.testing.assert_close(feats, expected, atol=1e-5, rtol=1e-4)


def test_tracklet_forms_agree_and_single_gives_a_vector(dataset):
    ex = FeatureExtractor(tiny_config(), None, amp="off")
    paths = list(dataset.query[0].frames)
    arrays = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    uint8 = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)
    by_path = ex.tracklet(paths)
    assert by_path.shape == (ex.feature_dim,) and not by_path.is_inference()
    for feat in ex.iter_features([paths, paths]):  # no inference/autocast state leaks out
        assert not torch.is_inference_mode_enabled() and not torch.is_autocast_enabled("cpu")
        torch.testing.assert_close(feat, by_path)
    torch.testing.assert_close(ex.tracklet(arrays), by_path)
    torch.testing.assert_close(ex.tracklet(uint8), by_path)
    torch.testing.assert_close(ex(dataset.query[0]), by_path)
    batch = ex([paths, dataset.query[1]])
    assert batch.shape == (2, ex.feature_dim)
    torch.testing.assert_close(batch[0], by_path)


def test_bf16_features_close_to_fp32(dataset):
    torch.manual_seed(0)
    ex = FeatureExtractor(tiny_config(), None, amp="off")
    ref = ex(dataset.query)
    ex.dtype = torch.bfloat16
    got = ex(dataset.query)
    cos = torch.nn.functional.cosine_similarity(got, ref)
    assert cos.min() > 0.99


def test_empty_tracklet_is_a_clear_error():
    ex = FeatureExtractor(tiny_config(), None)
    with pytest.raises(ValueError, match="no frames"):
        ex([])
    with pytest.raises(ValueError, match="tracklet 1 has no frames"):
        ex([["a.jpg"], []])


def test_corrupt_frame_in_a_worker_names_the_file(tmp_path):
    good = write_frames(tmp_path / "t", COLOURS[1], 1, seed=2)[0]
    bad = tmp_path / "t" / "corrupt.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    ex = FeatureExtractor(tiny_config(), None, num_workers=1)
    frames = [good] * (MIN_FRAMES_FOR_WORKERS + 3) + [str(bad)]  # enough to use the worker
    with pytest.raises(ValueError, match="corrupt.jpg") as info:
        ex.tracklet(frames)
    assert "Traceback" not in str(info.value)


def test_weights_of_another_model_are_refused(tmp_path):
    _, weights = write_model(tmp_path, tiny_config(head="rnn"))
    with pytest.raises(ValueError, match="does not"):
        FeatureExtractor(tiny_config(head="tp"), str(weights))
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="bad.pt"):
        FeatureExtractor(tiny_config(), str(bad))


def test_trained_weights_load_with_any_classifier_width(tmp_path):
    config, weights = write_model(tmp_path, tiny_config(), seed=3)
    ex = FeatureExtractor(str(config), str(weights))
    state = torch.load(weights, weights_only=True)
    assert torch.equal(ex.model.state_dict()["neck.bn.weight"], state["neck.bn.weight"])
    assert ex.meta["weights_sha256"] and len(ex.identity) == 64


def test_extract_dataset_resumes_only_missing_shards(dataset, tmp_path, monkeypatch):
    ex = FeatureExtractor(tiny_config(), None, amp="off")
    tracklets = dataset.gallery  # 8 tracklets -> shards of 3: 3 + 3 + 2
    out = tmp_path / "feats"
    extract_dataset(ex, tracklets, out, shard_size=3)
    first = read_features(out)
    assert first.tracklet_ids == [f"{i:06d}" for i in range(8)]
    assert [int(p) for p in first.pids] == [t.pid for t in tracklets]

    (out / "shard-00001.npz").unlink()  # as if interrupted before this shard was written
    seen: list[int] = []
    original = ex.iter_features

    def counting(items, progress=False):
        seen.append(len(items))
        return original(items, progress)

    monkeypatch.setattr(ex, "iter_features", counting)
    extract_dataset(ex, tracklets, out, shard_size=3)
    assert seen == [3]  # only the missing shard was recomputed
    again = read_features(out)
    np.testing.assert_allclose(again.features, first.features, atol=1e-6)

    (out / "shard-00002.npz").unlink()
    shuffled = [f"x{i}" for i in range(8)]  # other tracklets than the finished shards hold
    with pytest.raises(ValueError, match="shard 0 holds other tracklets"):
        extract_dataset(ex, tracklets, out, ids=shuffled, shard_size=3)


def test_query_frames_image_folder_video(tmp_path):
    paths = write_frames(tmp_path / "trk", COLOURS[0], 3, seed=1)
    assert query_frames(paths[0]) == [paths[0]]
    assert query_frames(tmp_path / "trk") == paths
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no frames"):
        query_frames(tmp_path / "empty")
    with pytest.raises(FileNotFoundError):
        query_frames(tmp_path / "missing.jpg")

    import cv2

    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (32, 64))
    for i in range(12):
        writer.write(np.full((64, 32, 3), 20 * i, np.uint8))
    writer.release()
    frames = read_video(video, max_frames=5)
    assert len(frames) == 5 and frames[0].shape == (64, 32, 3)
    assert frames[0].mean() < frames[-1].mean()  # spread over the video, in order
    assert len(query_frames(video)) == 12
    (tmp_path / "broken.mp4").write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match="broken.mp4"):
        query_frames(tmp_path / "broken.mp4")


def test_import_vidreid_is_light_and_exposes_the_extractor():
    import subprocess
    import sys

    code = ("import sys, vidreid; assert 'torch' not in sys.modules; "
            "from vidreid import FeatureExtractor; assert 'torch' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])


def _run_folder(tmp_path: Path, cfg: dict) -> tuple[Path, Path, Path]:
    """A run folder as vidreid train leaves it (config.yaml + last.pt)."""
    run = tmp_path / "run"
    run.mkdir()
    config, weights = write_model(run, cfg)
    weights.rename(run / "last.pt")
    return run, config, run / "last.pt"


def test_from_run_equals_config_plus_weights(dataset, tmp_path):
    from vidreid.retrieval.extractor import open_extractor

    run, config, weights = _run_folder(tmp_path, tiny_config())
    by_run = FeatureExtractor.from_run(run, amp="off")
    by_files = FeatureExtractor(str(config), str(weights), amp="off")
    assert by_run.identity == by_files.identity  # same index compatibility
    torch.testing.assert_close(by_run(dataset.query), by_files(dataset.query))
    torch.testing.assert_close(open_extractor(str(run), amp="off")(dataset.query),
                               by_files(dataset.query))
    with pytest.raises(ValueError, match="--weights"):
        open_extractor(str(config))  # a config alone names what is missing


def test_images_and_tracklets_are_separate_calls(dataset):
    ex = FeatureExtractor(tiny_config(), None, amp="off")
    paths = list(dataset.query[0].frames)
    per_image = ex.images(paths)
    assert per_image.shape == (len(paths), ex.feature_dim)
    for row, path in zip(per_image, paths, strict=True):
        torch.testing.assert_close(row, ex.tracklet([path]))
    per_tracklet = ex.tracklets([paths, dataset.query[1]])
    assert per_tracklet.shape == (2, ex.feature_dim)
    torch.testing.assert_close(per_tracklet[0], ex.tracklet(paths))
    assert not torch.allclose(per_image.mean(0), per_image[0])  # frames differ: a real check
    with pytest.raises(ValueError, match=r"images\(.*tracklets\("):
        ex(paths)  # a flat list of frames: N images or one tracklet?


def test_imagenet_zero_shot_extractor(dataset):
    from vidreid.models.backbones.weights import imagenet_weights_path, read_state_dict
    from vidreid.retrieval.extractor import open_extractor

    ex = open_extractor("imagenet", amp="off")
    assert ex.feature_dim == 1280 and ex.meta["model"]["weights"] == "imagenet"
    # the installed file's tensors are in the model (remapped to torchvision's layout)
    expected = ex.model.backbone.remap_state_dict(read_state_dict(imagenet_weights_path()))
    state = ex.model.backbone.state_dict()
    assert all(torch.equal(state[k], v) for k, v in expected.items())
    feats = ex(dataset.query)
    assert feats.shape == (len(dataset.query), 1280) and torch.isfinite(feats).all()
    # temporal average pooling: the tracklet's descriptor is the mean of its frames'
    frames = list(dataset.query[0].frames)
    torch.testing.assert_close(feats[0], ex.images(frames).mean(0), atol=1e-4, rtol=1e-4)
