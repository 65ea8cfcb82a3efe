"""Every recipe in configs/ loads and validates; a few run one tiny epoch on the phantom via --set overrides."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from cxrlab.config import load_config
from cxrlab.train import fit

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
RECIPES = sorted(CONFIGS.rglob("*.yaml"))


def test_recipe_families_present():
    names = {str(p.relative_to(CONFIGS)) for p in RECIPES}
    for required in ("smoke.yaml", "nih/cnn_baseline.yaml", "nih/resnet34_scratch.yaml", "nih/vit_v1.yaml",
                     "nih/vit_v2.yaml", "nih/vit_r50_hybrid.yaml", "nih/vit_b16_finetune.yaml",
                     "nih/vit_b16_layerwise.yaml", "nih/swin_t.yaml", "nih/efficientnet_b4.yaml",
                     "nih/vit_multiscale.yaml", "nih/resnet34_focal.yaml", "nih/resnet34_asl.yaml",
                     "pneumonia4/lab_a_resnet18.yaml", "pneumonia4/lab_b_effnetv2_s.yaml"):
        assert required in names


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: str(p.relative_to(CONFIGS)))
def test_recipe_validates_and_names_its_source(path: Path):
    cfg = load_config(path)  # unknown keys or bad values raise
    assert cfg.source and cfg.name
    text = path.read_text()
    assert text.startswith("#"), "each recipe starts with a header comment naming its source and deviations"
    if cfg.model.pretrained:
        assert not load_config(path, ["model.pretrained=false"]).model.pretrained


def test_layerwise_prefixes_match_vit_parameters():
    from cxrlab.train.fitting import build_model
    from cxrlab.train.optim import build_optimizer

    cfg = load_config(CONFIGS / "nih/vit_b16_layerwise.yaml", ["model.pretrained=false", "data.image_size=32"])
    model = build_model(cfg, ["a", "b"])
    opt = build_optimizer(model, cfg.optim, cfg.train.lr)
    by_lr = {g["lr"]: sum(p.numel() for p in g["params"]) for g in opt.param_groups}
    assert set(by_lr) == {1e-5, 1e-4, 1e-3}  # the final norm shares train.lr = 1e-4 with the blocks
    assert by_lr[1e-3] < by_lr[1e-5] < by_lr[1e-4]


TINY = ["train.epochs=1", "train.batch_size=8", "data.image_size=64", "model.pretrained=false",
        "train.device=cpu", "data.num_workers=0", "data.cache_size=null"]  # the 64-px tiny cache, not the recipe's


@pytest.mark.parametrize(("recipe", "task", "extra"), [
    ("smoke.yaml", "ml", []),
    ("smoke.yaml", "mc", []),
    ("nih/cnn_baseline.yaml", "ml", []),
    ("nih/vit_v2.yaml", "ml", []),
    ("nih/resnet34_asl.yaml", "ml", ["model.name=cnn_gap", "model.in_chans=1"]),
    ("pneumonia4/lab_a_resnet18.yaml", "mc", []),
    ("pneumonia4/lab_b_effnetv2_s.yaml", "mc", ["train.swa_start=1", "model.name=timm:efficientnet_b0"]),
])
def test_recipe_runs_one_tiny_epoch(recipe, task, extra, tiny_ml, tiny_mc, tmp_path: Path):
    data = tiny_ml if task == "ml" else tiny_mc
    sets = [f"{k}={v}" for k, v in data.items() if k.startswith("data.")]
    cfg = load_config(CONFIGS / recipe, sets + TINY + extra)
    run = fit(cfg, tmp_path / "run")
    metrics = pd.read_csv(run / "metrics.csv")
    assert len(metrics) == 1 and metrics["train_loss"].notna().all()
    assert (run / "predictions/val.csv").exists()


@pytest.mark.parametrize(("recipe", "size"), [("nih/vit_multiscale.yaml", 48), ("nih/vit_v1.yaml", 16)])
def test_recipe_at_an_image_size_the_model_cannot_take_names_the_config_key(recipe, size):
    # the model layer says model.img_size (create_model's argument); a config user must be told data.image_size
    from cxrlab.errors import CxrlabError
    from cxrlab.train.fitting import build_model

    cfg = load_config(CONFIGS / recipe, ["model.pretrained=false", f"data.image_size={size}"])
    with pytest.raises(CxrlabError, match="data.image_size"):
        build_model(cfg, ["a", "b"])
