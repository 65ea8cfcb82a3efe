"""Config: YAML load, typed --set overrides, unknown keys with a suggestion, validation, round trip."""

from __future__ import annotations

from pathlib import Path

import pytest

from cxrlab.config import Config, config_to_dict, dump_config, load_config, save_config
from cxrlab.errors import CxrlabError


def test_defaults_and_typed_overrides():
    cfg = load_config(None, ["train.epochs=2", "model.pretrained=false", "loss.alpha=[1,1.5,2,12]",
                             "train.lr=1e-3", "optim.layer_lrs.head=1e-3", "data.cache=null", "train.ema=0.99"])
    assert isinstance(cfg, Config)
    assert cfg.train.epochs == 2 and cfg.model.pretrained is False
    assert cfg.loss.alpha == [1.0, 1.5, 2.0, 12.0]
    assert cfg.train.lr == pytest.approx(1e-3) and isinstance(cfg.train.lr, float)  # YAML 1.1 reads 1e-3 as str
    assert cfg.optim.layer_lrs == {"head": 1e-3}
    assert cfg.data.cache is None and cfg.train.ema == pytest.approx(0.99)
    assert cfg.loss.build_kwargs() == {"alpha": [1.0, 1.5, 2.0, 12.0]}


def test_yaml_off_and_on_are_strings_for_string_keys(tmp_path: Path):
    # YAML 1.1 reads `off` as False: `--set train.amp=off` (and `amp: off` in a recipe) must still mean "off"
    assert load_config(None, ["train.amp=off"]).train.amp == "off"
    (tmp_path / "r.yaml").write_text("train:\n  amp: off\n")
    assert load_config(tmp_path / "r.yaml").train.amp == "off"
    with pytest.raises(CxrlabError, match="train.amp"):
        load_config(None, ["train.amp=on"])  # not a mode: still a one-line error naming the key


def test_yaml_file_then_overrides_win(tmp_path: Path):
    path = tmp_path / "c.yaml"
    path.write_text("name: x\ntrain:\n  epochs: 5\n  batch_size: 8\nmodel:\n  name: vit_v1\n")
    cfg = load_config(path, ["train.epochs=1"])
    assert (cfg.name, cfg.train.epochs, cfg.train.batch_size, cfg.model.name) == ("x", 1, 8, "vit_v1")


@pytest.mark.parametrize(("override", "suggestion"), [
    ("train.epoch=2", "train.epochs"),
    ("trian.epochs=2", "train.epochs"),
    ("model.pretrainde=true", "model.pretrained"),
])
def test_unknown_key_names_nearest(override: str, suggestion: str):
    with pytest.raises(CxrlabError, match=f"did you mean '{suggestion}'"):
        load_config(None, [override])


def test_unknown_key_in_yaml(tmp_path: Path):
    path = tmp_path / "c.yaml"
    path.write_text("augment:\n  polcy: medical\n")
    with pytest.raises(CxrlabError, match=r"c.yaml: unknown config key 'augment.polcy'; did you mean 'augment.policy'"):
        load_config(path)


@pytest.mark.parametrize(("override", "message"), [
    ("train.epochs=abc", "train.epochs: 'abc' is not a valid int"),
    ("train.epochs=0", "train.epochs: 0 is outside 1..100000"),
    ("train.epochs=1000000000", "train.epochs: 1000000000 is outside 1..100000"),
    ("train.batch_size=10000000", "train.batch_size: 10000000 is outside 1..65536"),
    ("train.lr=.nan", r"train.lr: nan is outside \(0, 10\]"),
    ("data.image_size=100000", "data.image_size: 100000 is outside 16..2048"),
    ("data.cache_size=100000", "data.cache_size"),
    ("sampler.num_samples=10000000000", "sampler.num_samples"),
    ("augment.policy=flip", "augment.policy: 'flip' is not one of"),
    ("optim.name=lamb", "optim.name: 'lamb' is not one of sgd, adam, adamw"),
    ("train.amp=fp8", "train.amp"),
    ("model.in_chans=2", "model.in_chans"),
    ("train.epochs", "expected key=value"),
])
def test_validation_errors(override: str, message: str):
    with pytest.raises(CxrlabError, match=message):
        load_config(None, [override])


def test_save_and_reload_round_trip(tmp_path: Path):
    cfg = load_config(None, ["loss.name=focal", "loss.gamma=3.5", "optim.layer_lrs={blocks: 1e-4, head: 1e-3}"])
    save_config(cfg, tmp_path / "config.yaml")
    again = load_config(tmp_path / "config.yaml")
    assert config_to_dict(again) == config_to_dict(cfg)
    assert "gamma: 3.5" in dump_config(cfg)


def test_missing_and_bad_files(tmp_path: Path):
    with pytest.raises(CxrlabError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a\n- b\n")
    with pytest.raises(CxrlabError, match="mapping"):
        load_config(bad)
