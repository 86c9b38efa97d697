import pytest
import torch

from vidreid.data.transforms import IMAGENET_MEAN, IMAGENET_STD, build_transforms

H, W = 32, 16


def same_frame_clip(t: int = 4, h: int = 40, w: int = 20, seed: int = 0) -> torch.Tensor:
    """T identical random frames: any per-frame difference in the output is a bug."""
    g = torch.Generator().manual_seed(seed)
    frame = torch.randint(0, 256, (1, 3, h, w), dtype=torch.uint8, generator=g)
    return frame.repeat(t, 1, 1, 1)


def all_frames_equal(out: torch.Tensor) -> bool:
    return all(torch.equal(out[0], out[i]) for i in range(1, out.shape[0]))


FULL_TRAIN = dict(random_crop=True, pad=4, flip=True, erasing_prob=1.0)


@pytest.mark.parametrize(
    "options",
    [
        FULL_TRAIN,
        dict(translate=True, flip=True, erasing_prob=0.5),
        dict(resize_crop=(40, 20), flip=True, erasing_prob=1.0),
    ],
)
def test_train_transforms_are_identical_on_every_frame(options):
    transform = build_transforms(H, W, train=True, **options)
    torch.manual_seed(0)
    for seed in range(10):
        out = transform(same_frame_clip(seed=seed))
        assert out.shape == (4, 3, H, W) and out.dtype == torch.float32
        assert all_frames_equal(out)


def test_different_clips_get_different_random_parameters():
    transform = build_transforms(H, W, train=True, **FULL_TRAIN)
    clip = same_frame_clip()
    torch.manual_seed(0)
    outs = [transform(clip)[0] for _ in range(6)]
    assert any(not torch.equal(outs[0], o) for o in outs[1:])


def test_erasing_fills_one_rectangle_with_the_mean_pixel_on_every_frame():
    transform = build_transforms(H, W, train=True, flip=False, erasing_prob=1.0)
    # a constant white clip: after normalisation nothing is 0 except the erased box
    clip = torch.full((3, 3, 50, 25), 255, dtype=torch.uint8)
    torch.manual_seed(1)
    out = transform(clip)
    erased = (out == 0).all(dim=1)  # [T, H, W]
    assert erased.any()
    assert all(torch.equal(erased[0], erased[i]) for i in range(3))
    rows, cols = erased[0].any(dim=1).nonzero(), erased[0].any(dim=0).nonzero()
    box = erased[0, rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    assert box.all()  # a single filled rectangle


def test_test_transform_is_deterministic_resize_and_normalise():
    transform = build_transforms(H, W, train=False, **FULL_TRAIN)
    clip = torch.randint(0, 256, (2, 3, 64, 32), dtype=torch.uint8)
    out_a, out_b = transform(clip), transform(clip)
    assert torch.equal(out_a, out_b)
    # a uniform grey frame normalises to (g/255 - mean) / std exactly
    grey = torch.full((1, 3, 64, 32), 128, dtype=torch.uint8)
    out = transform(grey)
    expected = (128 / 255 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    torch.testing.assert_close(out[0, :, 5, 5], expected)


def test_resize_crop_centre_crops_at_test_time():
    transform = build_transforms(4, 2, train=False, resize_crop=(8, 4))
    # frame of 8x4 whose value encodes the row: centre crop keeps rows 2..5, cols 1..2
    frame = (torch.arange(8, dtype=torch.uint8) * 30).view(1, 1, 8, 1).expand(1, 3, 8, 4)
    out = transform(frame.contiguous())
    rows = (out[0, 0, :, 0] * IMAGENET_STD[0] + IMAGENET_MEAN[0]) * 255
    torch.testing.assert_close(rows, torch.tensor([60.0, 90.0, 120.0, 150.0]))


def test_bad_input_is_rejected_with_the_expected_form():
    transform = build_transforms(H, W, train=False)
    with pytest.raises(ValueError, match="uint8"):
        transform(torch.zeros(2, 3, 8, 8))
    with pytest.raises(ValueError, match=r"\[T, 3, H, W\]"):
        transform(torch.zeros(3, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match="resize_crop"):
        build_transforms(H, W, train=True, resize_crop=(16, 16))


def test_per_frame_draws_the_translation_and_flip_for_each_frame():
    """COSAM's code transforms every frame on its own; the default keeps a clip coherent."""
    per_frame = build_transforms(H, W, train=True, translate=True, flip=True, per_frame=True)
    clip = same_frame_clip(t=8)
    torch.manual_seed(0)
    outs = [per_frame(clip) for _ in range(5)]
    assert all(o.shape == (8, 3, H, W) for o in outs)
    assert any(not all_frames_equal(o) for o in outs)
    test_time = build_transforms(H, W, train=False, translate=True, per_frame=True)
    assert all_frames_equal(test_time(clip))  # test time stays deterministic
