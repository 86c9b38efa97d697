"""Tests of the synthetic pedestrian renderer (vidreid/data/synth/render.py)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from vidreid.data.synth.render import (
    ATTRIBUTE_COLUMNS,
    ATTRIBUTE_GROUPS,
    ATTRIBUTE_VALUES,
    DIRECTIONS,
    OCCLUSION_MIN_FRACTION,
    render_tracklet,
    sample_camera,
    sample_identities,
    sample_length,
)

SMALL = (128, 64)


def _setup(seed: int = 0, n_ids: int = 4, n_cams: int = 2):
    rng = np.random.default_rng(seed)
    ids = sample_identities(n_ids, rng, near_duplicate_rate=0.0)
    cams = [sample_camera(c, rng) for c in range(n_cams)]
    return ids, cams


def _facing(camera, direction: str):
    """The same camera, but every tracklet walks in ``direction``."""
    weights = tuple(float(d == direction) for d in DIRECTIONS)
    return dataclasses.replace(camera, direction_weights=weights)


@pytest.mark.parametrize("size", [(128, 64), (256, 128)])
def test_shapes_and_dtypes(size):
    ids, cams = _setup()
    r = render_tracklet(ids[0], cams[0], 5, np.random.default_rng(1), size=size)
    h, w = size
    assert r.frames.shape == r.clean.shape == (5, h, w, 3)
    assert r.frames.dtype == r.clean.dtype == np.uint8
    assert r.silhouette.shape == r.occluder.shape == (5, h, w)
    assert r.silhouette.dtype == r.occluder.dtype == np.bool_
    assert r.occluded.shape == (5,) and r.occluded.dtype == np.bool_


def test_every_camera_renders_at_tiny_sizes():
    rng = np.random.default_rng(13)
    ids = sample_identities(3, rng)
    for camid in range(30):
        cam = sample_camera(camid, rng)
        for size in ((32, 16), (64, 32)):
            r = render_tracklet(ids[camid % 3], cam, 2, rng, size=size, occlusion_rate=0.5)
            assert r.frames.shape == (2, *size, 3) and r.silhouette.any()


def test_deterministic_given_seed():
    ids, cams = _setup()
    a = render_tracklet(ids[1], cams[1], 8, np.random.default_rng(7), size=SMALL,
                        occlusion_rate=1.0)
    b = render_tracklet(ids[1], cams[1], 8, np.random.default_rng(7), size=SMALL,
                        occlusion_rate=1.0)
    c = render_tracklet(ids[1], cams[1], 8, np.random.default_rng(8), size=SMALL,
                        occlusion_rate=1.0)
    for name in ("frames", "silhouette", "occluder", "clean", "occluded"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.frames, c.frames)
    again = sample_identities(4, np.random.default_rng(0), near_duplicate_rate=0.0)
    assert again == ids


@pytest.mark.parametrize("direction", list(DIRECTIONS))
def test_silhouette_is_a_framed_person(direction):
    ids, cams = _setup()
    r = render_tracklet(ids[2], _facing(cams[0], direction), 12, np.random.default_rng(3),
                        size=SMALL)
    h, w = SMALL
    assert r.extra["direction"] == direction
    area = r.silhouette.mean(axis=(1, 2))
    assert (area > 0.05).all() and (area < 0.6).all()
    assert not r.silhouette[:, 0].any()  # the head is inside the crop
    rows = np.nonzero(r.silhouette.any(axis=(0, 2)))[0]
    assert rows[-1] - rows[0] > 0.7 * h  # a standing figure, not a blob
    xs = np.nonzero(r.silhouette)[2]
    assert abs(xs.mean() - w / 2) < 0.15 * w


def test_gait_moves_the_legs_in_side_view():
    ids, cams = _setup()
    r = render_tracklet(ids[0], _facing(cams[0], "right"), 30, np.random.default_rng(4),
                        size=SMALL)
    legs = r.silhouette[:, int(0.85 * SMALL[0]):]  # [T, rows, W] lower part of the crop
    width = np.array([np.ptp(np.nonzero(f.any(axis=0))[0]) for f in legs])
    assert width.max() - width.min() > 0.15 * SMALL[1]  # stride opens and closes


def test_no_occlusion_at_rate_zero():
    ids, cams = _setup()
    r = render_tracklet(ids[0], cams[0], 20, np.random.default_rng(5), size=SMALL,
                        occlusion_rate=0.0)
    assert not r.occluder.any() and not r.occluded.any()
    np.testing.assert_array_equal(r.frames, r.clean)


def test_occlusion_events_at_rate_one():
    ids, cams = _setup()
    for seed in range(6):
        r = render_tracklet(ids[seed % 4], cams[seed % 2], 20, np.random.default_rng(seed),
                            size=SMALL, occlusion_rate=1.0)
        outside = ~r.occluder
        np.testing.assert_array_equal(r.frames[outside], r.clean[outside])
        active = np.nonzero(r.occluder.any(axis=(1, 2)))[0]
        assert len(active) >= 1
        assert active[-1] - active[0] + 1 <= 0.6 * 20 + 1  # one contiguous-ish run
        assert r.occluded.any(), f"seed {seed}: {r.extra}"
        overlap = (r.occluder & r.silhouette).sum(axis=(1, 2))
        expected = (overlap > 0) & (overlap >= OCCLUSION_MIN_FRACTION * r.silhouette.sum((1, 2)))
        np.testing.assert_array_equal(r.occluded, expected)
        for t in np.nonzero(r.occluded)[0]:
            overlap = (r.occluder[t] & r.silhouette[t]).sum()
            assert overlap >= OCCLUSION_MIN_FRACTION * r.silhouette[t].sum()
            assert (r.frames[t] != r.clean[t]).any()
        quiet = ~r.occluder.any(axis=(1, 2))
        np.testing.assert_array_equal(r.frames[quiet], r.clean[quiet])


def test_clean_render_does_not_depend_on_occlusion_rate():
    ids, cams = _setup()
    a = render_tracklet(ids[3], cams[0], 10, np.random.default_rng(9), size=SMALL)
    b = render_tracklet(ids[3], cams[0], 10, np.random.default_rng(9), size=SMALL,
                        occlusion_rate=1.0)
    np.testing.assert_array_equal(a.clean, b.clean)
    np.testing.assert_array_equal(a.silhouette, b.silhouette)


def _mean_person_color(r) -> np.ndarray:
    """[T, 3] mean colour of the person's pixels in each frame."""
    sil = r.silhouette[..., None]
    return (r.clean * sil).sum(axis=(1, 2)) / sil.sum(axis=(1, 2))


def test_identities_differ_more_than_frames_of_one_identity():
    ids, cams = _setup(seed=11, n_ids=6)
    means = [_mean_person_color(render_tracklet(i, cams[0], 10, np.random.default_rng(i.pid),
                                                size=SMALL)) for i in ids]
    within = np.mean([np.linalg.norm(m - m.mean(0), axis=1).mean() for m in means])
    centres = np.stack([m.mean(0) for m in means])
    between = np.linalg.norm(centres[:, None] - centres[None], axis=-1)[np.triu_indices(6, 1)]
    assert between.mean() > 3 * within


def _band_chromaticity(r) -> np.ndarray:
    """Head / upper / lower body colours, brightness-normalised: a crude re-ID descriptor."""
    rows = np.nonzero(r.silhouette.any(axis=(0, 2)))[0]
    top, height = rows[0], rows[-1] - rows[0]
    out = []
    for a, b in ((0.0, 0.2), (0.2, 0.55), (0.55, 1.0)):
        band = slice(int(top + a * height), int(top + b * height))
        m = r.silhouette[:, band, :, None]
        out.append((r.clean[:, band] * m).sum(axis=(0, 1, 2)) / m.sum())
    f = np.stack(out)
    return (f / f.sum(axis=1, keepdims=True)).ravel()


def test_identity_recognisable_across_cameras():
    ids, cams = _setup(seed=12, n_ids=8)
    feats = [np.stack([_band_chromaticity(render_tracklet(i, cam, 6,
                                                          np.random.default_rng(i.pid),
                                                          size=SMALL)) for i in ids])
             for cam in cams]
    dist = np.linalg.norm(feats[0][:, None] - feats[1][None], axis=-1)
    rank1 = (dist.argmin(axis=1) == np.arange(8)).mean()
    assert rank1 >= 0.5  # chance is 1/8
    assert not np.allclose(feats[0], feats[1], atol=1e-3)  # cameras do change the look


@pytest.mark.parametrize(("column", "value"), [("bag", "backpack"), ("hat", "beanie"),
                                                ("upper_pattern", "stripes"),
                                                ("lower_type", "shorts")])
def test_attributes_drive_the_rendering(column, value):
    ids, cams = _setup()
    base = ids[0]
    other = "none" if column in ("bag", "hat") else ATTRIBUTE_VALUES[column][0]
    plain = dataclasses.replace(base, attributes={**base.attributes, column: other})
    changed = dataclasses.replace(base, attributes={**base.attributes, column: value})
    cam = _facing(cams[0], "away" if column == "bag" else "towards")
    a = render_tracklet(plain, cam, 4, np.random.default_rng(2), size=SMALL)
    b = render_tracklet(changed, cam, 4, np.random.default_rng(2), size=SMALL)
    changed_px = np.any(a.clean != b.clean, axis=-1).mean()
    assert changed_px > 0.01


def test_near_duplicates_share_most_attributes():
    ids = sample_identities(200, np.random.default_rng(3), near_duplicate_rate=0.5,
                            first_pid=10)
    assert [i.pid for i in ids] == list(range(10, 210))
    by_pid = {i.pid: i for i in ids}
    dups = [i for i in ids if i.near_duplicate_of is not None]
    assert 0.35 < len(dups) / len(ids) < 0.65
    for d in dups:
        base = by_pid[d.near_duplicate_of]
        assert base.near_duplicate_of is None and base.pid < d.pid
        n_diff = sum(d.attributes[c] != base.attributes[c] for c in ATTRIBUTE_COLUMNS)
        assert 1 <= n_diff <= 2, (base.attributes, d.attributes)
    none = sample_identities(50, np.random.default_rng(3), near_duplicate_rate=0.0)
    assert all(i.near_duplicate_of is None for i in none)


def test_attribute_vocabularies():
    assert ATTRIBUTE_COLUMNS == tuple(ATTRIBUTE_VALUES)
    grouped = [c for cols in ATTRIBUTE_GROUPS.values() for c in cols]
    assert sorted(grouped) == sorted(ATTRIBUTE_COLUMNS)
    ids = sample_identities(300, np.random.default_rng(4))
    for i in ids:
        assert tuple(i.attributes) == ATTRIBUTE_COLUMNS
        for c, v in i.attributes.items():
            assert v in ATTRIBUTE_VALUES[c], (c, v)
        if i.attributes["lower_type"] == "skirt":
            assert i.attributes["gender"] == "female"
    for c in ("gender", "upper_color", "bag", "hat", "lower_type"):
        assert len({i.attributes[c] for i in ids}) == len(ATTRIBUTE_VALUES[c])


def test_lengths_are_mars_like():
    rng = np.random.default_rng(5)
    lengths = np.array([sample_length(rng) for _ in range(2000)])
    assert 25 <= np.median(lengths) <= 50
    assert lengths.min() >= 5 and lengths.max() > 150
    capped = [sample_length(rng, max_len=40, min_len=8) for _ in range(300)]
    assert min(capped) >= 8 and max(capped) == 40
    with pytest.raises(ValueError, match="max_len"):
        sample_length(rng, max_len=3)


@pytest.mark.parametrize(("kwargs", "match"), [({"length": 0}, "length"),
                                               ({"size": (16, 8)}, "size"),
                                               ({"occlusion_rate": 1.5}, "occlusion_rate")])
def test_bad_arguments_are_named(kwargs, match):
    ids, cams = _setup()
    args = {"length": 3, "size": SMALL, "occlusion_rate": 0.0, **kwargs}
    length = args.pop("length")
    with pytest.raises(ValueError, match=match):
        render_tracklet(ids[0], cams[0], length, np.random.default_rng(0), **args)
    with pytest.raises(ValueError, match="near_duplicate_rate"):
        sample_identities(3, np.random.default_rng(0), near_duplicate_rate=2.0)


@pytest.mark.parametrize("run", [(0.25, 0.25), (0.75, 0.75), (1.0, 1.0)])
def test_occlusion_run_sets_the_events_share_of_frames_and_not_the_clean_render(run):
    ids, cams = _setup()
    r = render_tracklet(ids[1], cams[1], 8, np.random.default_rng(7), size=SMALL,
                        occlusion_rate=1.0, occlusion_run=run)
    start, stop = r.extra["event_frames"]
    assert stop - start == round(run[0] * 8)
    default = render_tracklet(ids[1], cams[1], 8, np.random.default_rng(7), size=SMALL,
                              occlusion_rate=1.0)
    np.testing.assert_array_equal(r.clean, default.clean)
    with pytest.raises(ValueError, match="occlusion_run"):
        render_tracklet(ids[1], cams[1], 8, np.random.default_rng(7), size=SMALL,
                        occlusion_rate=1.0, occlusion_run=(0.6, 0.3))
