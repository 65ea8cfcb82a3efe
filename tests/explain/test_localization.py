import numpy as np
import pytest

from cxrlab.explain.localization import (
    bootstrap_ci,
    box_mask,
    chance_pointing,
    overlap_scores,
    pointing_hit,
    scale_box,
    summarise,
)


def test_scale_from_1024_space_to_downsampled_square():
    # NIH box in 1024 space, the file is a 64x64 copy, cached at 256, model input 224 (no crop)
    box = scale_box((512, 256, 128, 64), 1024, (64, 64), 256, "letterbox", 224, 224)
    assert box == pytest.approx((112, 56, 28, 14))


def test_scale_letterbox_non_square_pads():
    # 1000 wide x 500 high image, boxes in its own pixels; letterbox to 100: scale 0.1, pad 25 rows on top
    box = scale_box((100, 0, 200, 100), (1000, 500), (500, 1000), 100, "letterbox")
    assert box == pytest.approx((10, 25, 20, 10))


def test_scale_center_crop_and_eval_crop():
    # 500 high x 1000 wide, center_crop to 100: scale 0.2, 50 px cropped each side horizontally
    box = scale_box((300, 100, 100, 100), (1000, 500), (500, 1000), 100, "center_crop")
    assert box == pytest.approx((10, 20, 20, 20))
    # eval transform resizes 100 -> 256 and center-crops 224 (16 px each side)
    box = scale_box((0, 0, 50, 50), 100, (100, 100), 100, "letterbox", 256, 224)
    assert box == pytest.approx((-16, -16, 128, 128))


def test_pointing_iou_iob_on_synthetic_maps():
    heat = np.zeros((20, 20), dtype=np.float32)
    heat[5:10, 5:10] = 1.0  # a 5x5 blob exactly on the box
    heat[7, 7] = 2.0
    box = (5, 5, 5, 5)
    assert pointing_hit(heat, box)
    assert not pointing_hit(heat, (12, 12, 4, 4))
    assert pointing_hit(heat, (9, 9, 3, 3), tolerance=2)
    s = overlap_scores(np.clip(heat, 0, 1), box)
    assert s["iou"] == pytest.approx(1.0) and s["iob"] == pytest.approx(1.0)
    s = overlap_scores(np.clip(heat, 0, 1), (5, 5, 10, 5))  # box twice the blob
    assert s["iou"] == pytest.approx(0.5) and s["iob"] == pytest.approx(0.5)
    assert box_mask(box, (20, 20)).sum() == 25


def test_chance_bootstrap_and_summary():
    assert chance_pointing([(0, 0, 10, 10)], 20) == pytest.approx(0.25)
    lo, hi = bootstrap_ci(np.array([0, 1] * 50, dtype=float), 500)
    assert lo < 0.5 < hi
    import pandas as pd

    rec = pd.DataFrame({"method": ["gradcam"] * 4, "label": ["A", "A", "B", "B"], "pointing": [1, 0, 1, 1],
                        "iou": [0.5, 0.1, 0.2, 0.3], "iob": [1, 0.2, 0.4, 0.6]})
    s = summarise(rec, 100)
    assert s["gradcam"]["all"]["n"] == 4 and s["gradcam"]["B"]["pointing"]["mean"] == 1.0


def test_input_to_original_inverts_scale_box():
    from cxrlab.explain.localization import input_to_original

    for policy in ("letterbox", "center_crop"):
        x, y, _, _ = scale_box((300, 120, 10, 10), (1000, 500), (500, 1000), 256, policy, 292, 256)
        assert input_to_original((x, y), (500, 1000), 256, policy, 292, 256) == pytest.approx((300, 120))
