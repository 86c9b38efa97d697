"""The contract of :mod:`vidreid.models.base`, checked on every registered model.

Each model is built on the ``tiny`` backbone (block positions index its one-block stages).
"""

from __future__ import annotations

import inspect

import pytest
import torch

from vidreid.models import MODELS, build_model
from vidreid.models.base import uses_clip_length

NUM_CLASSES = 5
B, T, H, W = 3, 4, 64, 32
ATOL = 1e-5


def tiny(name: str) -> torch.nn.Module:
    params = inspect.signature(MODELS.get(name)).parameters
    kwargs = {"backbone": "tiny"} if "backbone" in params else {}
    kwargs.update({k: [0] for k in params if k.endswith("_blocks")})
    torch.manual_seed(0)
    return build_model(name, NUM_CLASSES, **kwargs)


@pytest.mark.parametrize("name", MODELS.names())
def test_train_and_eval_outputs(name: str) -> None:
    model = tiny(name).train()
    out = model(torch.randn(B, T, 3, H, W))
    assert out["features"].shape == (B, model.feature_dim)
    assert out["logits"].shape == (B, NUM_CLASSES)
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(B, T, 3, H, W), return_extras=True)
        image = model.encode_image(torch.randn(B, 3, H, W))
    assert out["features"].shape == (B, model.feature_dim)
    assert isinstance(out.get("extras", {}), dict)
    assert image.shape == (B, model.feature_dim)


@pytest.mark.parametrize("name", MODELS.names())
def test_eval_features_do_not_depend_on_the_rest_of_the_batch(name: str) -> None:
    model = tiny(name).eval()
    clips = torch.randn(B, T, 3, H, W)
    with torch.no_grad():
        alone = model(clips[:1])["features"]
        together = model(torch.cat([clips[:1], torch.randn(2, T, 3, H, W)]))["features"][:1]
    torch.testing.assert_close(together, alone, atol=ATOL, rtol=1e-4)


@pytest.mark.parametrize("name", MODELS.names())
def test_frame_split_equals_the_full_forward(name: str) -> None:
    model = tiny(name).eval()
    if not model.can_encode_frames():
        # only a model whose frames interact inside the backbone may refuse the split (the
        # extractor then runs it clip by clip)
        assert uses_clip_length(model), f"{name} could encode frames independently"
        return
    clips = torch.randn(B, T, 3, H, W)
    with torch.no_grad():
        full = model(clips)["features"]
        frames = model.encode_frames(clips.flatten(0, 1))
        split = model.aggregate(frames.unflatten(0, (B, T)))
    torch.testing.assert_close(split, full, atol=ATOL, rtol=1e-4)
