"""NIH's real expert boxes on the shared sample: scaled from 1024 space, boxes of absent images counted."""

import json

import pytest
import torch

from cxrlab.explain.localization import scale_box
from cxrlab.explain.run import ExplainOptions, explain_run


@pytest.mark.shared
def test_nih_sample_boxes_scored_and_counted(shared_data, tmp_path):
    from cxrlab.data.build_index import build_index
    from cxrlab.models import create_model

    nih = shared_data / "nih-sample"
    index, _ = build_index(nih, "nih", tmp_path / "index", hash_files=False)
    torch.manual_seed(0)
    model = create_model("cnn_gap", len(index.classes), in_chans=1, img_size=64, class_names=index.classes)
    info = {"classes": index.classes, "task": "multilabel", "model_name": "cnn_gap",
            "preprocess": {"image_size": 64, "in_chans": 1, "mean": [0.5], "std": [0.25], "cache_size": 64}}
    s = explain_run(None, out=tmp_path / "exp", model=model, info=info, options=ExplainOptions(
        index=tmp_path / "index", boxes=nih / "BBox_List_2017.csv", max_images=6, json_only=True, n_boot=50))
    assert s["boxes_total"] == 984 and s["boxes_size"] == 1024
    assert s["boxes_skipped_image_not_in_set"] == 984 - 48  # 43 boxed images in the sample hold 48 boxes
    assert s["boxes_skipped_class_not_in_model"] == 0  # "Infiltrate" is mapped to "Infiltration"
    assert s["n_images"] == 6 and s["n_scored_pairs"] >= 6
    assert json.loads((tmp_path / "exp" / "localization.json").read_text())["methods"]["gradcam"]["all"]["n"] >= 6


def test_nih_1024_box_on_full_size_image():
    # a 1024x1024 NIH original cached at 256 and fed at 224 through an 8/7 resize + center crop
    box = scale_box((256, 512, 128, 128), 1024, (1024, 1024), 256, "letterbox", 256, 224)
    assert box == pytest.approx((48, 112, 32, 32))
