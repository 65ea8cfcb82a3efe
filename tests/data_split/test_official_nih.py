"""--official on a tiny NIH-layout download with train_val_list.txt / test_list.txt made here."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from cxrlab.cli import main
from cxrlab.data.splits import load_split
from cxrlab.utils import read_json

pytest.importorskip("cxrlab.commands.data_index")

HEADER = "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position\n"


def _tiny_nih(root, n_patients=12, per_patient=2):
    (root / "images").mkdir(parents=True)
    rows, names = [], []
    rng = np.random.default_rng(0)
    for p in range(1, n_patients + 1):
        for j in range(per_patient):
            name = f"{p:08d}_{j:03d}.png"
            names.append(name)
            finding = "Effusion" if (p + j) % 3 == 0 else "No Finding"
            rows.append(f"{name},{finding},{j},{p},50,M,PA\n")
            cv2.imwrite(str(root / "images" / name), rng.integers(0, 255, (16, 16), dtype=np.uint8))
    (root / "Data_Entry_2017_v2020.csv").write_text(HEADER + "".join(rows))
    test_names = [n for n in names if int(n[:8]) > 8]  # patients 9-12 are NIH's test patients here
    (root / "test_list.txt").write_text("\n".join(test_names) + "\n")
    (root / "train_val_list.txt").write_text("\n".join(n for n in names if n not in test_names) + "\n")
    return test_names


def test_official_lists_from_nih_download(tmp_path):
    test_names = _tiny_nih(tmp_path / "nih")
    assert main(["data", "index", str(tmp_path / "nih"), "--format", "nih", "--out", str(tmp_path / "idx")]) == 0
    out = tmp_path / "official.csv"
    index_csv = str(tmp_path / "idx" / "index.csv")
    assert main(["data", "split", index_csv, "--out", str(out), "--official", "--val", "0.25"]) == 0
    split = load_split(out)
    assert sorted(split.loc[split["split"] == "test", "image_id"]) == sorted(test_names)
    val_patients = {i[:8] for i in split.loc[split["split"] == "val", "image_id"]}
    assert val_patients and all(int(p) <= 8 for p in val_patients)
    meta = read_json(tmp_path / "official.json")
    assert meta["method"] == "official" and meta["audit"]["verdict"] == "ok"
