from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from vidreid.data.tracklet import Tracklet
from vidreid.data.transforms import build_transforms
from vidreid.data.video_dataset import (
    ImageDataset,
    SkipCounter,
    TestClipDataset,
    TrainClipDataset,
    read_frames,
)

H, W = 16, 8


def write_frames(folder: Path, n: int, size=(H, W), ext="png") -> tuple[str, ...]:
    """n frames whose pixel value encodes the frame number (lossless PNG by default)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(n):
        path = folder / f"f{k:03d}.{ext}"
        Image.fromarray(np.full((*size, 3), 10 * k, dtype=np.uint8)).save(path)
        paths.append(str(path))
    return tuple(paths)


def frame_ids(clip: torch.Tensor) -> list[int]:
    """Recover frame numbers from an untransformed uint8 clip."""
    return [int(v) // 10 for v in clip[:, 0, 0, 0]]


@pytest.fixture
def tracklets(tmp_path) -> list[Tracklet]:
    return [
        Tracklet(write_frames(tmp_path / "a", 10), pid=0, camid=0),
        Tracklet(write_frames(tmp_path / "b", 3), pid=1, camid=1),
        Tracklet(write_frames(tmp_path / "c", 7), pid=1, camid=2),
    ]


def test_read_frames_returns_uint8_clip_resized_to_the_first_frame(tmp_path):
    paths = write_frames(tmp_path / "a", 2) + write_frames(tmp_path / "b", 1, size=(20, 12))
    gray = tmp_path / "gray.jpg"
    Image.fromarray(np.zeros((H, W), dtype=np.uint8)).save(gray)
    clip = read_frames([*paths, str(gray)])
    assert clip.shape == (4, 3, H, W) and clip.dtype == torch.uint8
    assert frame_ids(clip[:2]) == [0, 1]


def test_corrupt_jpeg_raises_naming_the_path_and_skip_mode_counts(tmp_path):
    good = write_frames(tmp_path, 2, ext="jpg")
    data = Path(good[0]).read_bytes()
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(data[: len(data) // 2])
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"not a jpeg")
    paths = [good[0], str(truncated), good[1], str(garbage)]
    with pytest.raises(ValueError, match="truncated.jpg"):
        read_frames(paths)
    counter = SkipCounter()
    clip = read_frames(paths, on_error="skip", counter=counter)
    assert clip.shape[0] == 2
    assert counter.count == 2 and counter.last_paths == [str(truncated), str(garbage)]
    with pytest.raises(ValueError, match="none of the 2 frames"):
        read_frames([str(truncated), str(garbage)], on_error="skip", counter=counter)


def test_missing_frame_is_reported_and_on_error_is_validated(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.jpg"):
        read_frames([str(tmp_path / "nope.jpg")])
    with pytest.raises(ValueError, match="on_error"):
        read_frames([str(tmp_path / "nope.jpg")], on_error="ignore")


def test_train_dataset_batches_through_a_dataloader(tracklets):
    transform = build_transforms(H, W, train=True, erasing_prob=0.5)
    ds = TrainClipDataset(tracklets, seq_len=4, strategy="consecutive", transform=transform)
    clips, pids, camids = next(iter(DataLoader(ds, batch_size=3, num_workers=0)))
    assert clips.shape == (3, 4, 3, H, W) and clips.dtype == torch.float32
    assert pids.tolist() == [0, 1, 1] and camids.tolist() == [0, 1, 2]


def test_train_frame_choice_is_deterministic_per_epoch_and_changes_with_it(tracklets):
    ds = TrainClipDataset(tracklets, seq_len=4, strategy="random", transform=None, seed=3)
    twin = TrainClipDataset(tracklets, seq_len=4, strategy="random", transform=None, seed=3)
    epoch0 = [ds.frame_indices(i).tolist() for i in range(3)]
    assert epoch0 == [twin.frame_indices(i).tolist() for i in range(3)]
    clip, _, _ = ds[0]
    assert frame_ids(clip) == epoch0[0]  # the clip holds exactly the sampled frames
    assert frame_ids(ds[1][0]) == epoch0[1]  # short tracklet: repeats, read once each
    epochs = {tuple(map(tuple, epoch0))}
    for e in range(1, 4):
        ds.set_epoch(e)
        epochs.add(tuple(tuple(ds.frame_indices(i).tolist()) for i in range(3)))
    assert len(epochs) > 1


def test_strategy_options_and_names_are_checked_up_front(tracklets):
    ds = TrainClipDataset(tracklets, seq_len=2, strategy="stride", transform=None, stride=2)
    assert np.all(np.diff(ds.frame_indices(0)) == 2)
    with pytest.raises(KeyError, match="known"):
        TrainClipDataset(tracklets, seq_len=4, strategy="bogus", transform=None)
    with pytest.raises(ValueError, match="does not take"):
        TrainClipDataset(tracklets, seq_len=4, strategy="random", transform=None, stride=2)
    with pytest.raises(ValueError, match="tracklet 1 .*no frames"):
        TrainClipDataset(
            [tracklets[0], Tracklet((), 5, 0)], seq_len=4, strategy="random", transform=None
        )


def test_skip_mode_keeps_the_clip_length(tracklets, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"garbage")
    frames = tracklets[0].frames[:3] + (str(bad),)
    ds = TrainClipDataset(
        [Tracklet(frames, 0, 0)], seq_len=4, strategy="evenly", transform=None, on_error="skip"
    )
    clip, _, _ = ds[0]
    assert clip.shape[0] == 4 and ds.skipped.count == 1
    assert set(frame_ids(clip)) <= {0, 1, 2}


def test_test_dataset_flattens_dense_clips(tracklets):
    transform = build_transforms(H, W, train=False)
    ds = TestClipDataset(tracklets, seq_len=4, strategy="dense", transform=transform)
    assert ds.clips_per_tracklet.tolist() == [3, 1, 2]
    assert len(ds) == 6 and ds.clip_tracklet.tolist() == [0, 0, 0, 1, 2, 2]
    clips, owners = next(iter(DataLoader(ds, batch_size=6, num_workers=0)))
    assert clips.shape == (6, 4, 3, H, W) and owners.tolist() == [0, 0, 0, 1, 2, 2]
    raw = TestClipDataset(tracklets, seq_len=4, strategy="dense", transform=None)
    assert frame_ids(raw[2][0]) == [8, 9, 8, 9]


def test_test_dataset_all_with_max_clip_len_splits_long_tracklets(tracklets):
    ds = TestClipDataset(tracklets, seq_len=1, strategy="all", transform=None, max_clip_len=4)
    assert ds.clips_per_tracklet.tolist() == [3, 1, 2]
    assert [len(c) for c in ds.clips] == [4, 4, 2, 3, 4, 3]
    assert frame_ids(ds[2][0]) == [8, 9] and ds[2][1] == 0


def test_image_dataset_gives_one_frame_clips(tracklets):
    transform = build_transforms(H, W, train=False)
    first = ImageDataset(tracklets, frame="first", transform=None)
    middle = ImageDataset(tracklets, frame="middle", transform=None)
    assert [frame_ids(first[i][0]) for i in range(3)] == [[0], [0], [0]]
    assert [frame_ids(middle[i][0]) for i in range(3)] == [[5], [1], [3]]
    rand = ImageDataset(tracklets, frame="random", transform=None, seed=1)
    assert [rand.frame_index(i) for i in range(3)] == [rand.frame_index(i) for i in range(3)]
    ds = ImageDataset(tracklets, frame="middle", transform=transform)
    clips, index = next(iter(DataLoader(ds, batch_size=3)))
    assert clips.shape == (3, 1, 3, H, W) and index.tolist() == [0, 1, 2]
    assert ds.clips_per_tracklet.tolist() == [1, 1, 1]
    with pytest.raises(ValueError, match="frame must be"):
        ImageDataset(tracklets, frame="last", transform=None)


def test_set_epoch_reaches_persistent_dataloader_workers(tracklets):
    ds = TrainClipDataset(tracklets[:2], seq_len=3, strategy="random", transform=None)
    loader = DataLoader(ds, batch_size=2, num_workers=1, persistent_workers=True)
    for epoch in range(3):
        ds.set_epoch(epoch)
        clips = next(iter(loader))[0]
        assert [frame_ids(c) for c in clips] == [ds.frame_indices(i).tolist() for i in range(2)]


def test_train_dataset_yields_each_tracklets_targets(tracklets):
    labels = np.arange(len(tracklets) * 2).reshape(len(tracklets), 2)
    ds = TrainClipDataset(tracklets, seq_len=2, strategy="consecutive", transform=None,
                          targets={"attr_labels": labels})
    clips, pids, camids, targets = next(iter(DataLoader(ds, batch_size=len(tracklets))))
    assert targets["attr_labels"].tolist() == labels.tolist() and len(pids) == len(tracklets)
    with pytest.raises(ValueError, match=r"targets\['attr_labels'\] has 1 rows"):
        TrainClipDataset(tracklets, seq_len=2, strategy="consecutive", transform=None,
                         targets={"attr_labels": labels[:1]})
