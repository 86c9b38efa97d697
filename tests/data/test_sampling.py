import numpy as np
import pytest

from vidreid.data.sampling import SAMPLING, TEST_CLIPS, sample_indices, test_clips


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def test_registries_name_every_strategy():
    assert SAMPLING.names() == ["all", "consecutive", "evenly", "random", "stride"]
    assert TEST_CLIPS.names() == ["all", "dense", "evenly"]


@pytest.mark.parametrize("strategy", ["consecutive", "random", "evenly", "stride"])
@pytest.mark.parametrize("num_frames", [1, 3, 8, 40, 101])
def test_train_clip_has_seq_len_valid_indices(strategy, num_frames):
    for seed in range(5):
        idx = sample_indices(num_frames, strategy, 4, rng(seed))
        assert idx.shape == (4,) and idx.dtype == np.int64
        assert idx.min() >= 0 and idx.max() < num_frames


def test_consecutive_is_a_run_of_adjacent_frames():
    starts = set()
    for seed in range(50):
        idx = sample_indices(10, "consecutive", 4, rng(seed))
        np.testing.assert_array_equal(np.diff(idx), 1)
        starts.add(int(idx[0]))
    assert starts == set(range(7))  # every valid start 0..n-seq_len, including the last


def test_consecutive_loops_short_tracklets():
    np.testing.assert_array_equal(
        sample_indices(3, "consecutive", 8, rng()), [0, 1, 2, 0, 1, 2, 0, 1]
    )


def test_random_is_sorted_without_replacement_when_long_enough():
    for seed in range(20):
        idx = sample_indices(12, "random", 6, rng(seed))
        assert np.all(np.diff(idx) > 0)


def test_random_repeats_frames_of_short_tracklets_sorted():
    idx = sample_indices(3, "random", 8, rng(1))
    assert np.all(np.diff(idx) >= 0)
    assert len(np.unique(idx)) <= 3


@pytest.mark.parametrize(
    ("num_frames", "seq_len", "expected"),
    [
        (10, 4, [0, 2, 4, 6]),  # stride 10 // 4 = 2, frames 8-9 ignored
        (16, 4, [0, 4, 8, 12]),
        (7, 7, [0, 1, 2, 3, 4, 5, 6]),
        (23, 5, [0, 4, 8, 12, 16]),  # stride 4, tail of 3 ignored
        (3, 5, [0, 1, 2, 2, 2]),  # short: repeat the last frame
        (1, 3, [0, 0, 0]),
    ],
)
def test_evenly_matches_torchreid(num_frames, seq_len, expected):
    np.testing.assert_array_equal(sample_indices(num_frames, "evenly", seq_len, rng()), expected)
    assert [c.tolist() for c in test_clips(num_frames, "evenly", seq_len)] == [expected]


def test_stride_picks_frames_stride_apart_from_a_random_window():
    starts = set()
    for seed in range(60):
        idx = sample_indices(40, "stride", 4, rng(seed), stride=8)
        np.testing.assert_array_equal(np.diff(idx), 8)
        starts.add(int(idx[0]))
    assert starts == set(range(40 - 24))  # last pick 24 frames after the first


def test_stride_loops_short_tracklets_to_seq_len_times_stride():
    # n=10 looped to 32 frames (0..9, 0..9, 0..9, 0, 1); the 25-frame window starts in 0..7
    looped = np.arange(32) % 10
    windows = [looped[s : s + 25 : 8].tolist() for s in range(8)]
    seen = {tuple(sample_indices(10, "stride", 4, rng(seed), stride=8)) for seed in range(60)}
    assert seen == {tuple(w) for w in windows}


def test_stride_short_random_reproduces_the_code_release():
    idx = sample_indices(10, "stride", 4, rng(3), stride=8, short="random")
    assert np.all(np.diff(idx) > 0)  # sorted, without replacement since 10 >= 4


def test_all_returns_every_frame():
    np.testing.assert_array_equal(sample_indices(5, "all", 4, rng()), np.arange(5))
    assert [c.tolist() for c in test_clips(5, "all", 4)] == [[0, 1, 2, 3, 4]]


def test_same_seed_same_clip_different_seed_differs():
    a = [sample_indices(100, "random", 8, rng(7)).tolist() for _ in range(2)]
    assert a[0] == a[1]
    others = {tuple(sample_indices(100, "random", 8, rng(s))) for s in range(10)}
    assert len(others) > 1


@pytest.mark.parametrize("num_frames", [1, 3, 4, 9, 12, 33])
def test_dense_covers_every_frame_exactly_once_before_padding(num_frames):
    clips = test_clips(num_frames, "dense", 4, pad="none")
    np.testing.assert_array_equal(np.concatenate(clips), np.arange(num_frames))
    assert all(len(c) == 4 for c in clips[:-1])
    padded = test_clips(num_frames, "dense", 4)
    assert len(padded) == len(clips) == -(-num_frames // 4)
    assert all(len(c) == 4 for c in padded)
    for short, full in zip(clips, padded, strict=True):
        np.testing.assert_array_equal(full[: len(short)], short)


def test_dense_pads_the_last_clip_by_cycling_its_own_frames():
    assert [c.tolist() for c in test_clips(10, "dense", 4)] == [
        [0, 1, 2, 3],
        [4, 5, 6, 7],
        [8, 9, 8, 9],
    ]


def test_clips32_is_dense_with_seq_len_32():
    clips = test_clips(70, "dense", 32)
    assert [len(c) for c in clips] == [32, 32, 32]
    assert clips[2].tolist() == [64, 65, 66, 67, 68, 69] * 5 + [64, 65]


def test_empty_tracklet_raises_a_clear_error():
    with pytest.raises(ValueError, match="0 frames"):
        sample_indices(0, "consecutive", 4, rng())
    with pytest.raises(ValueError, match="0 frames"):
        test_clips(0, "dense", 4)


def test_bad_names_and_options_are_reported():
    with pytest.raises(KeyError, match="known: all, consecutive"):
        sample_indices(5, "nope", 4, rng())
    with pytest.raises(ValueError, match="accepts \\['stride', 'short'\\]"):
        sample_indices(5, "stride", 4, rng(), strid=2)
    with pytest.raises(ValueError, match="pad must be"):
        test_clips(5, "dense", 4, pad="zeros")
    with pytest.raises(ValueError, match="seq_len"):
        sample_indices(5, "random", 0, rng())
