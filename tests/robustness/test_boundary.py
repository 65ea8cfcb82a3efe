"""Validation at the boundary (issue 16B.3): bounds on numbers, duplicate YAML keys, ages, --logits, degenerate
images, image ids, dataset label/split cells and JSON of the wrong shape, each a one-line error or a counted
skip naming the row."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from cxrlab.config import load_config
from cxrlab.errors import CxrlabError

from .helpers import run

HUGE = [
    (["data", "preview", "--index", "{idx}", "--out", "{tmp}/p.png", "--image-size", "100000"], "--image-size"),
    (["evaluate", "{test}", "--labels", "{idx}", "--out", "{tmp}/e", "--bootstrap", "1000000000"], "--bootstrap"),
    (["export", "{run}", "--out", "{tmp}/m.onnx", "--ood-percentile", "101"], "--ood-percentile"),
    (["predict", "{run}", "--out", "{tmp}/p.csv", "--batch-size", "10000000"], "--batch-size"),
    (["data", "cache", "{idx}", "--out", "{tmp}/c", "--size", "100000"], "--size"),
    (["data", "phantom", "--out", "{tmp}/ph", "--n", "100000000000"], "--n"),
    (["cv", "--config", "{cfg}", "--out", "{tmp}/cv", "--folds", "5000"], "--folds"),
]


@pytest.mark.parametrize("argv, option", HUGE, ids=[o for _, o in HUGE])
def test_huge_numbers_are_usage_errors(world, tmp_path, capsys, all_inputs, argv, option):
    names = {"run": world.run, "idx": world.index, "test": world.test, "tmp": tmp_path,
             "cfg": world.run / "config.yaml"}
    run(capsys, [a.format(**names) for a in argv], inputs=all_inputs, says=option)


def test_huge_config_values_are_refused(world, tmp_path, capsys, all_inputs):
    run(capsys, world.train_args(tmp_path / "r", "data.image_size=100000"), inputs=all_inputs,
        says="data.image_size: 100000 is outside 16..2048")
    run(capsys, world.train_args(tmp_path / "r", "train.batch_size=100000000"), inputs=all_inputs,
        says="train.batch_size")


def test_duplicate_yaml_keys_name_the_key_and_lines(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("train:\n  epochs: 2\n  lr: 0.1\n  epochs: 50\n")
    with pytest.raises(CxrlabError, match=r"c.yaml: line 4: key 'epochs' is given twice \(first on line 2\)"):
        load_config(cfg)
    from cxrlab.study.spec import load_study

    study = tmp_path / "s.yaml"
    study.write_text("name: a\nseeds: [0]\nname: b\n")
    with pytest.raises(CxrlabError, match=r"s.yaml: line 3: key 'name' is given twice \(first on line 1\)"):
        load_study(study)


def test_huge_study_values_are_refused(tmp_path):
    from cxrlab.study.spec import load_study

    study = tmp_path / "s.yaml"
    for text, says in (("evaluate: {bootstrap: 1000000000}", "evaluate.bootstrap: must be in 0..100000"),
                       ("budget: {epochs: 10000000}", "budget.epochs: must be in 1..100000")):
        study.write_text(f"name: a\narms: [{{name: x}}]\n{text}\n")
        with pytest.raises(CxrlabError, match=says):
            load_study(study)


def test_implausible_ages_are_counted_as_missing_and_nan_band_edges_refused():
    from cxrlab.evaluate.subgroups import age_band_labels, parse_age_bands

    ages = pd.Series([-5, 30, 200, 65, None], index=["a", "b", "c", "d", "e"])
    with pytest.warns(UserWarning, match=r"2 ages outside 0..120 \(e.g. -5 for a\)"):
        bands = age_band_labels(ages, [40, 60, 80])
    assert bands.tolist() == ["missing", "<40", "missing", "60-79", "missing"]
    for text in ("nan,40", "40,inf", "-5,40", "40,200"):
        with pytest.raises(CxrlabError, match="every edge must be an age"):
            parse_age_bands(text)


def test_logits_flag_on_probabilities_is_refused(world, tmp_path, capsys, all_inputs):
    run(capsys, ["evaluate", world.test, "--labels", world.index, "--out", tmp_path / "e", "--logits"],
        inputs=all_inputs, says=("--logits, but every value lies in [0, 1]", "drop --logits"))


def test_predict_images_with_split_is_refused(world, tmp_path, capsys, all_inputs):
    run(capsys, ["predict", world.run, "--images", world.data / "images", "--split", "val", "--out",
                 tmp_path / "p.csv"], inputs=all_inputs, says=("--split val", "does not apply to --images"))


def test_same_file_name_in_two_folders_gets_two_ids(world, tmp_path):
    from cxrlab.predict.sources import images_from_files

    first = sorted((world.data / "images").iterdir())[0]
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        shutil.copy(first, tmp_path / sub / first.name)
    assert images_from_files(tmp_path).image_ids == [f"a/{first.name}", f"b/{first.name}"]


def test_degenerate_images_are_excluded_and_counted_at_index_time(world, tmp_path):
    from cxrlab.data.build_index import build_index
    from cxrlab.data.images import looks_like_xray

    data = tmp_path / "ph"
    shutil.copytree(world.data, data, ignore=shutil.ignore_patterns("index"))
    names = sorted(p.name for p in (data / "images").iterdir())
    cv2.imwrite(str(data / "images" / names[0]), np.full((1, 1), 128, np.uint8))
    cv2.imwrite(str(data / "images" / names[1]), np.arange(5000, dtype=np.uint8).reshape(1, 5000) % 251)
    index, report = build_index(data, "csv", tmp_path / "index", hash_files=False)
    assert report["counts"]["excluded"]["degenerate"] == 2 and len(index.frame) == len(names) - 2
    md = (tmp_path / "index" / "validation.md").read_text()
    assert "degenerate" in md and names[0] in md
    assert looks_like_xray(np.full((64, 64), np.nan, np.float32)) == (False, "non-finite pixels (NaN or infinity)")
    assert not looks_like_xray(np.full((64, 64), 7, np.uint8))[0]  # constant: refused by the cache and --check-decode


def test_constant_images_fail_to_cache_and_are_counted(world, tmp_path):
    from cxrlab.data.cache import build_cache
    from cxrlab.data.index import Index, load_index

    data = tmp_path / "ph"
    shutil.copytree(world.data, data)
    copied = load_index(data / "index")
    # point the copy at the copied images: the shared world's files must never change
    index = Index(copied.frame, copied.task, copied.classes, data, copied.meta)
    path = index.absolute_paths()[0]
    assert data in path.parents
    cv2.imwrite(str(path), np.full((32, 32), 90, np.uint8))
    index.frame["sha256"] = ""  # the file changed on purpose: no recorded hash to compare
    report = build_cache(index, tmp_path / "cache", size=32, workers=1, progress=False)
    assert report["failed"] == 1 and "constant image" in next(iter(report["errors"].values()))


def _sources():
    sys.path.insert(0, str(Path(__file__).parents[1]))
    from data_sources.helpers import make_chexpert, make_mimic, make_padchest, write_csv

    return make_chexpert, make_mimic, make_padchest, write_csv


def test_unknown_mimic_split_name_is_an_error_naming_the_row(tmp_path):
    from cxrlab.data.build_index import build_index

    _, make_mimic, _, write_csv = _sources()
    root = make_mimic(tmp_path / "mimic")
    split = pd.read_csv(root / "mimic-cxr-2.0.0-split.csv", dtype=str)
    split.loc[2, "split"] = "validaton"
    write_csv(root / "mimic-cxr-2.0.0-split.csv", split)
    with pytest.raises(CxrlabError, match=r"split.csv row 4: split 'validaton' is not one of train, validate, test"):
        build_index(root, "mimic", tmp_path / "idx", hash_files=False)


def test_malformed_padchest_cell_and_conflicting_duplicates_are_counted_skips(tmp_path):
    from cxrlab.data.build_index import build_index

    _, _, make_padchest, write_csv = _sources()
    root = make_padchest(tmp_path / "pc")
    name = next(root.glob("PADCHEST*.csv"))
    table = pd.read_csv(name, dtype=str, keep_default_na=False)
    table.loc[4, "Labels"] = "['pleural effusion', 'kypho"  # truncated: its debris must not become a class
    twice = table.loc[[0]].assign(Labels="['normal']")  # a.png listed again with other labels
    write_csv(name, pd.concat([table, twice], ignore_index=True))
    index, report = build_index(root, "padchest", tmp_path / "idx", hash_files=False)
    excluded = report["counts"]["excluded"]
    assert excluded["malformed Labels cell"] == 1 and excluded["duplicate rows with conflicting labels"] == 2
    assert sorted(index.image_ids) == ["c.png"]
    assert all("," not in c and "kypho" != c for c in index.classes)
    assert any("row 6, image e.png" in w for w in report["warnings"])


def test_conflicting_chexpert_duplicates_are_left_out(tmp_path):
    from cxrlab.data.build_index import build_index

    make_chexpert, _, _, write_csv = _sources()
    make_chexpert(tmp_path / "cx")
    table = pd.read_csv(tmp_path / "cx" / "train.csv", dtype=str)
    again = table.loc[[0]].assign(**{"No Finding": "0.0", "Edema": "1.0"})
    write_csv(tmp_path / "cx" / "train.csv", pd.concat([table, again], ignore_index=True))
    index, report = build_index(tmp_path / "cx", "chexpert", tmp_path / "idx", hash_files=False)
    assert report["counts"]["excluded"]["duplicate rows with conflicting labels"] == 2
    assert not any("patient00001" in p for p in index.frame["path"])


def test_views_that_keep_nothing_are_one_line(tmp_path, capsys):
    _, _, make_padchest, _ = _sources()
    root = make_padchest(tmp_path / "pc")
    run(capsys, ["data", "index", root, "--format", "padchest", "--out", tmp_path / "idx", "--views", "LL"],
        inputs=[root], says=("--views LL keeps none of the 5 images", "PA (3)"))


def test_study_json_of_the_wrong_shape_is_one_line(tmp_path, capsys):
    (tmp_path / "plan.json").write_text("[1, 2]")
    run(capsys, ["study", "status", tmp_path], says=("plan.json holds a JSON list", "cxrlab study run"))
    (tmp_path / "plan.json").write_text('{"study": "s"}')
    run(capsys, ["study", "report", tmp_path], says=("plan.json lacks the key(s) runs",))

