"""Config loading: schema, base inheritance, overrides, round trip, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vidreid.engine.config import load_config, save_config, to_container

CONFIGS = Path(__file__).resolve().parents[2] / "vidreid" / "configs"


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_base_inheritance_overrides_and_round_trip(tmp_path: Path) -> None:
    write(tmp_path / "recipe.yaml", "optim: {lr: 0.1, name: sgd}\nmodel: {name: m, head: ta}\n")
    cfg_path = write(tmp_path / "exp.yaml", "base: recipe.yaml\nname: exp\noptim: {lr: 0.2}\n")
    cfg = load_config(
        cfg_path, ["optim.weight_decay=0", "model.hidden=8", "eval.protocols=[v2v,i2v]"]
    )
    assert cfg.optim.name == "sgd" and cfg.optim.lr == 0.2 and cfg.optim.weight_decay == 0
    assert cfg.model.head == "ta" and cfg.model.hidden == 8
    assert list(cfg.eval.protocols) == ["v2v", "i2v"]
    assert cfg.train.amp == "auto"  # schema default kept
    save_config(cfg, tmp_path / "run" / "config.yaml")
    again = load_config(tmp_path / "run" / "config.yaml")
    assert to_container(again) == to_container(cfg)
    assert not list((tmp_path / "run").glob(".*.tmp*"))


@pytest.mark.parametrize(
    ("text", "overrides", "message"),
    [
        ("optim: {lrr: 1}\n", [], "unknown config key 'optim.lrr'"),
        ("", ["train.lr=1e-4"], "unknown config key 'train.lr'"),
        ("", ["train.epochs=many"], "bad value for 'train.epochs'"),
        ("", ["optim.lr"], "bad override 'optim.lr': expected KEY=VALUE"),
        ("- a\n- b\n", [], "must be a YAML mapping"),
        ("base: missing.yaml\n", [], "config file not found"),
    ],
)
def test_bad_configs_name_the_key(tmp_path: Path, text: str, overrides: list[str],
                                  message: str) -> None:
    path = write(tmp_path / "c.yaml", text)
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        load_config(path, overrides)


def test_unknown_model_kwarg_is_an_error_naming_it() -> None:
    from vidreid import build as B

    cfg = load_config(CONFIGS / "baselines" / "tp_synth.yaml", ["model.heads=tp"])
    with pytest.raises(ValueError, match="heads"):
        B.build_model(cfg, num_classes=4)


def test_model_weights_in_config_reach_the_backbone(tmp_path: Path) -> None:
    from vidreid import build as B

    cfg = load_config(CONFIGS / "baselines" / "tp_synth.yaml")
    torch.manual_seed(5)
    source = B.build_model(cfg, num_classes=4)
    weights = tmp_path / "tiny.pth"
    # a torchvision-style file: the backbone's keys plus a classifier ``fc.*`` to be ignored
    state = {**source.backbone.state_dict(), "fc.weight": torch.zeros(10, 256)}
    torch.save(state, weights)
    torch.manual_seed(6)
    built = B.build_model(cfg, num_classes=4)
    assert not torch.equal(built.backbone.stem[0].conv.weight, source.backbone.stem[0].conv.weight)
    cfg = load_config(CONFIGS / "baselines" / "tp_synth.yaml", [f"model.weights={weights}"])
    torch.manual_seed(6)
    loaded = B.build_model(cfg, num_classes=4)
    for name, value in source.backbone.state_dict().items():
        assert torch.equal(loaded.backbone.state_dict()[name], value), name
    missing = load_config(CONFIGS / "baselines" / "tp_synth.yaml",
                          [f"model.weights={tmp_path / 'nope.pth'}"])
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        B.build_model(missing, num_classes=4)


def test_packaged_names_resolve_like_paths() -> None:
    from vidreid.engine.config import PACKAGED_CONFIGS, packaged_configs, resolve_config

    names = packaged_configs()
    assert "cosam/mars" in names and "baselines/tp_synth" in names
    by_name = load_config("baselines/tp_synth")
    by_path = load_config(PACKAGED_CONFIGS / "baselines" / "tp_synth.yaml")
    assert to_container(by_name) == to_container(by_path)
    # the old checkout path and the name with its suffix resolve to the same file
    assert resolve_config("configs/cosam/mars.yaml").resolve() == PACKAGED_CONFIGS / "cosam" / "mars.yaml"
    assert resolve_config("cosam/mars.yaml") == PACKAGED_CONFIGS / "cosam" / "mars.yaml"


def test_unknown_config_name_lists_close_names() -> None:
    with pytest.raises(FileNotFoundError, match="cosam/mars"):
        load_config("cosam/marss")


def test_old_checkout_path_resolves_outside_a_clone(tmp_path: Path, monkeypatch) -> None:
    from vidreid.engine.config import PACKAGED_CONFIGS, resolve_config

    monkeypatch.chdir(tmp_path)  # no configs/ here: the packaged file is found
    assert resolve_config("configs/cosam/mars.yaml") == PACKAGED_CONFIGS / "cosam" / "mars.yaml"


def test_yaml11_boolean_words_on_the_command_line_stay_strings() -> None:
    """``train.amp=off`` is the mode "off"; a boolean key still reads off/yes as a bool."""
    cfg = load_config(None, ["train.amp=off", "train.progress=off", "train.tensorboard=yes"])
    assert cfg.train.amp == "off"
    assert cfg.train.progress is False and cfg.train.tensorboard is True
