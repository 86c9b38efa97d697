"""The tracker's default appearance encoder (CNN stripes + colour stripes)."""

from __future__ import annotations

import numpy as np
import pytest

from vidreid.retrieval.appearance import ImageNetCropEncoder
from vidreid.retrieval.ingest_commands import appearance_thresholds, imagenet_encoder


def _person(top: tuple[int, int, int], bottom: tuple[int, int, int], h: int = 120,
            w: int = 50, seed: int = 0) -> np.ndarray:
    """An RGB crop: grey background, a torso of colour ``top`` over legs of ``bottom``."""
    rng = np.random.default_rng(seed)
    img = np.full((h, w, 3), 128, np.uint8)
    img[h // 8: h // 2, w // 4: 3 * w // 4] = top
    img[h // 2: h - 4, w // 4: 3 * w // 4] = bottom
    return np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def encoder():
    return ImageNetCropEncoder(precision="fp32")


def test_embeddings_are_unit_norm_and_batch_independent(encoder):
    crops = [_person((200, 30, 30), (20, 20, 60), seed=i) for i in range(3)]
    crops.append(_person((20, 20, 20), (60, 80, 160), h=90, w=40))
    e = encoder(crops)
    assert e.shape == (4, encoder.feature_dim) and e.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(encoder(crops[3:]), e[3:], atol=1e-5)  # batch = one by one
    assert encoder([]).shape == (0, encoder.feature_dim)


def test_the_same_look_is_nearer_than_another_look(encoder):
    """Red top over dark trousers twice (other noise, other size) vs a dark coat over jeans:
    the first two are within the tracker's gate, the third beyond it."""
    a = _person((200, 30, 30), (20, 20, 60), seed=1)
    b = _person((200, 30, 30), (20, 20, 60), h=100, w=44, seed=2)
    c = _person((25, 25, 25), (60, 80, 160), seed=3)
    e = encoder([a, b, c])
    same, other = 1 - e[0] @ e[1], 1 - e[0] @ e[2]
    assert same < ImageNetCropEncoder.TRACK_GATE < other


def test_ingest_uses_the_encoders_thresholds():
    enc, identity = imagenet_encoder()
    assert "layer2" in identity and "hsv" in identity
    assert appearance_thresholds(enc) == {"max_appearance_distance": enc.TRACK_GATE,
                                          "max_jump": enc.MAX_JUMP,
                                          "max_outlier": enc.MAX_OUTLIER,
                                          "max_lower_body_outlier": enc.MAX_LOWER_BODY_OUTLIER}
    other = appearance_thresholds(object())  # e.g. a trained model's CropEncoder
    assert other["max_appearance_distance"] is None and other["max_jump"] > enc.MAX_JUMP
    assert other["max_lower_body_outlier"] is None  # the rule needs the encoder's layout
    with pytest.raises(ValueError, match="size"):
        ImageNetCropEncoder(size=(8, 8))


def test_lower_body_is_the_colour_of_the_lower_half(encoder):
    """Same top, other trousers: the lower-body parts differ beyond the rule's threshold,
    while the same person's two crops stay within it."""
    a = _person((200, 30, 30), (20, 20, 60), seed=1)
    b = _person((200, 30, 30), (20, 20, 60), h=100, w=44, seed=2)
    c = _person((200, 30, 30), (200, 180, 60), seed=3)  # a passer-by's legs in front
    low = ImageNetCropEncoder.lower_body(encoder([a, b, c]))
    assert low.shape == (3, 128)
    np.testing.assert_allclose(np.linalg.norm(low, axis=1), 1.0, rtol=1e-5)
    limit = ImageNetCropEncoder.MAX_LOWER_BODY_OUTLIER
    assert 1 - low[0] @ low[1] < limit < 1 - low[0] @ low[2]
