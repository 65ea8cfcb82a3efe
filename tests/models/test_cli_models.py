"""``cxrlab models list`` through cxrlab.cli.main."""

from __future__ import annotations

import json

from cxrlab.cli import main


def test_models_list_paper_models(capsys):
    assert main(["models", "list", "--source", "ours"]) == 0
    out = capsys.readouterr().out
    assert "cnn_baseline" in out and "95.58M" in out and "resnet34_scratch" in out and "21.29M" in out
    assert "vit_v1" in out and "9.40M" in out


def test_models_list_json_and_verbose(capsys):
    assert main(["models", "list", "--json", "-v", "tv:resnet18", "vit_v1"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == ["tv:resnet18", "vit_v1"]
    assert rows[0]["params"] == 11_184_207 and rows[0]["source"] == "tv" and rows[0]["cam_layer"] == "model.layer4"


def test_models_list_unknown_name_exits_2(capsys):
    assert main(["models", "list", "cnn_basline"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown model 'cnn_basline' (did you mean 'cnn_baseline'?)")
    assert err.count("\n") == 1


def test_models_list_model_that_cannot_build_on_meta(capsys):
    # torchvision's RegNets compute their widths with torch.pow while building: the meta device cannot, so the
    # table falls back to a CPU build instead of a NotImplementedError traceback (README's own example).
    assert main(["models", "list", "--json", "tv:regnet_y_800mf"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["name"] == "tv:regnet_y_800mf" and rows[0]["params"] == 5_659_287
