"""On ../shared/data (skipped when absent): nih-64px's folder split leaks patients; our split does not."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from cxrlab.cli import main
from cxrlab.data.audit import audit_index
from cxrlab.data.cache import build_cache, open_cache
from cxrlab.data.dataset import CachedImageDataset
from cxrlab.data.index import Index, load_index, write_index
from cxrlab.utils import read_json

pytestmark = pytest.mark.shared


def _nih64_index(shared: Path, out: Path) -> Index:
    """Index nih-64px's {split}/{class}/<Image Index>.png, patients joined from NIH's Data_Entry CSV."""
    root = shared / "nih-64px"
    rows = [
        {"image_id": p.name, "path": str(p.relative_to(root)), "given_split": p.parts[-3], "cls": p.parts[-2]}
        for p in sorted(root.glob("*/*/*.png"))
    ]
    frame = pd.DataFrame(rows)
    entry = pd.read_csv(shared / "nih-sample" / "Data_Entry_2017_v2020.csv", usecols=["Image Index", "Patient ID"])
    patients = entry.set_index("Image Index")["Patient ID"].astype(str)
    frame["patient_id"] = frame["image_id"].map(patients).fillna(frame["image_id"])
    frame["normal"] = (frame["cls"] == "0_normal").astype(int)
    frame["abnormal"] = 1 - frame["normal"]
    write_index(Index(frame.drop(columns="cls"), "multiclass", ["normal", "abnormal"], root), out)
    return load_index(out)


def test_nih64_folder_split_leaks_patients(shared_data, tmp_path, capsys):
    index = _nih64_index(shared_data, tmp_path / "index")
    result = audit_index(index)
    assert result["verdict"] == "leakage" and len(result["patient_leaks"]) > 0
    assert any("train" in p["split"] and "test" in p["split"] for p in result["patient_leaks"])
    assert main(["data", "audit", str(index.path)]) == 1
    out = capsys.readouterr().out
    assert result["patient_leaks"][0]["patient_id"] in out and "LEAKAGE" in out
    # a patient-level re-split of the same images is clean
    split_csv = tmp_path / "split.csv"
    assert main(["data", "split", str(index.path), "--out", str(split_csv), "--seed", "1"]) == 0
    assert main(["data", "audit", str(index.path), "--split", str(split_csv)]) == 0


def test_nih_sample_cache_dataset(shared_data, tmp_path):
    root = shared_data / "nih-sample"
    names = sorted(p.name for p in (root / "images").glob("*.png"))[:12]
    entry = pd.read_csv(root / "Data_Entry_2017_v2020.csv", usecols=["Image Index", "Patient ID", "Finding Labels"])
    entry = entry.set_index("Image Index").loc[names]
    frame = pd.DataFrame({"image_id": names, "path": [f"images/{n}" for n in names]})
    frame["patient_id"] = entry["Patient ID"].astype(str).to_numpy()
    frame["Pneumonia"] = entry["Finding Labels"].str.contains("Pneumonia").astype(int).to_numpy()
    write_index(Index(frame, "multilabel", ["Pneumonia"], root), tmp_path / "index")
    index = load_index(tmp_path / "index")
    report = build_cache(index, tmp_path / "cache", size=64, workers=2, progress=False)
    assert report["ok"] == 12
    ds = CachedImageDataset(index, names, open_cache(tmp_path / "cache"))
    x, y, image_id = ds[0]
    assert x.shape == (1, 64, 64) and image_id == names[0] and x.float().std() > 5


def test_cli_index_split_audit_on_shared_data(shared_data, tmp_path, capsys):
    """The README path through `cxrlab data index` (the indexing area's verb) into split and audit."""
    pytest.importorskip("cxrlab.commands.data_index")
    nih64 = tmp_path / "nih64"
    entry = shared_data / "nih-sample" / "Data_Entry_2017_v2020.csv"
    argv = ["data", "index", str(shared_data / "nih-64px"), "--format", "folder", "--keep-split"]
    assert main([*argv, "--patients-from", str(entry), "--out", str(nih64)]) == 0
    assert main(["data", "audit", str(nih64 / "index.csv")]) == 1
    assert "00000116: train 21, val 20" in capsys.readouterr().out
    # Keeping the leaky folder split writes it (audited) but exits 1, like the audit itself.
    kept = tmp_path / "kept.csv"
    assert main(["data", "split", str(nih64 / "index.csv"), "--out", str(kept), "--keep-given"]) == 1
    assert kept.exists() and read_json(kept.with_suffix(".json"))["audit"]["verdict"] == "leakage"
    nih = tmp_path / "nih"
    assert main(["data", "index", str(shared_data / "nih-sample"), "--format", "nih", "--out", str(nih)]) == 0
    assert main(["data", "split", str(nih / "index.csv"), "--out", str(tmp_path / "split.csv")]) == 0
    meta = read_json(tmp_path / "split.json")
    assert meta["audit"]["verdict"] == "ok" and sum(meta["images"].values()) == 400
    result = audit_index(load_index(nih), tmp_path / "split.csv")
    assert sum(v["patients"] for v in result["splits"].values()) == 273
