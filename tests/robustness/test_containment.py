"""Containment: every dataset adapter keeps to its dataset folder. A listed path that leaves it (``..``, an absolute
path elsewhere, a symlink out) is counted, named in validation.md, and never opened or hashed."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest
from data_index.helpers import make_nih, write_png
from data_sources.helpers import make_chexpert, make_mimic, make_padchest, make_rsna, make_vindr

from cxrlab.data.build_index import build_index

_OPENED: list[str] = []
_WATCH: list[str] = []  # a path prefix whose opens are recorded while a test runs


def _audit(event: str, args: tuple) -> None:
    if event == "open" and _WATCH and isinstance(args[0], (str, Path)) and str(args[0]).startswith(_WATCH[0]):
        _OPENED.append(str(args[0]))


sys.addaudithook(_audit)


@pytest.fixture
def watch(tmp_path):
    """Record every Python-level open() of a file under ``tmp_path/outside`` during the test."""
    outside = tmp_path / "outside"
    outside.mkdir()
    _WATCH[:], _OPENED[:] = [str(outside)], []
    yield outside
    _WATCH.clear()


def _csv(root: Path) -> Path:
    root.mkdir(parents=True)
    for i in range(4):
        write_png(root / "images" / f"i{i}.png", seed=i)
    pd.DataFrame({"filename": [f"i{i}.png" for i in range(4)], "patient_id": ["a", "b", "c", "d"],
                  "Effusion": [1, 0, 1, 0], "Nodule": [1, 1, 0, 0]}).to_csv(root / "labels.csv", index=False)
    return root


def _folder(root: Path) -> Path:
    for i in range(4):
        write_png(root / ("normal" if i % 2 else "effusion") / f"f{i}.png", seed=i)
    return root


ADAPTERS = {"csv": _csv, "chexpert": make_chexpert, "mimic": make_mimic, "padchest": make_padchest,
            "vindr": make_vindr, "rsna": make_rsna, "nih": make_nih, "folder": _folder}


@pytest.mark.parametrize("fmt", list(ADAPTERS))
def test_a_symlink_out_of_the_dataset_is_reported_never_opened(fmt, tmp_path, watch):
    root = ADAPTERS[fmt](tmp_path / "ds")
    index, _ = build_index(root, fmt, tmp_path / "idx0", hash_files=False)
    victim_id, victim = index.image_ids[0], index.absolute_paths()[0]
    target = watch / f"elsewhere{victim.suffix}"
    shutil.move(victim, target)
    victim.symlink_to(target)  # the file the dataset lists now lives outside the dataset folder
    _OPENED.clear()
    index, report = build_index(root, fmt, tmp_path / "idx", hash_files=True)
    assert victim_id not in index.image_ids
    assert report["counts"]["outside_root"] == 1
    assert any("outside the dataset folder" in w for w in report["warnings"])
    assert "Files outside the dataset folder (1, not opened" in (tmp_path / "idx" / "validation.md").read_text()
    assert not _OPENED, f"opened outside the dataset folder: {_OPENED}"


def test_csv_paths_with_dotdot_or_absolute_are_reported_never_opened(tmp_path, watch):
    root = _csv(tmp_path / "ds")
    write_png(watch / "up.png", seed=7)
    write_png(watch / "abs.png", seed=8)
    labels = pd.read_csv(root / "labels.csv")
    labels.loc[0, "filename"] = "../outside/up.png"
    labels.loc[1, "filename"] = str(watch / "abs.png")
    labels.to_csv(root / "labels.csv", index=False)
    _OPENED.clear()
    index, report = build_index(root, "csv", tmp_path / "idx")
    assert report["counts"]["outside_root"] == 2 and len(index) == 2
    text = (tmp_path / "idx" / "validation.md").read_text()
    assert "up.png" in text and "abs.png" in text
    assert not _OPENED, f"opened outside the dataset folder: {_OPENED}"
