import pytest

from vidreid.models import MODELS, build_model


def test_unknown_model_lists_known_ones() -> None:
    with pytest.raises(KeyError) as err:
        build_model("no_such_model", 3)
    for name in ("video_baseline", "nonlocal"):
        assert name in str(err.value)


def test_unknown_argument_is_named() -> None:
    with pytest.raises(ValueError, match="colour"):
        build_model("video_baseline", 3, backbone="tiny", colour="red")


def test_every_module_of_the_package_is_registered() -> None:
    assert {"video_baseline", "nonlocal"} <= set(MODELS.names())
