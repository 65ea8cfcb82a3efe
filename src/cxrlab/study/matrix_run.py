"""``cxrlab study matrix STUDY --out DIR``: train one recipe on each source of a merged index and on the whole
merge, test every model on every source's test split, and report the generalisation matrix.

The study file is an ordinary one (``studies/cross_dataset.yaml``): ``data.index`` is a merged index
(``cxrlab data merge``) and ``data.split`` its split (``cxrlab data split``), ``base`` the recipe, ``budget`` the
epochs; ``seeds[0]`` trains every arm. Each source's arm trains and validates on that source's train/val rows
only; its split file keeps the test rows of every source, so training writes predictions on all of them. The
``pooled`` arm uses the whole split. Rerunning continues: finished runs are kept (the config is checked).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from cxrlab.config import config_to_dict, load_config
from cxrlab.data.index import Index, load_index
from cxrlab.data.split_csv import patient_ids
from cxrlab.data.splits import load_split, write_split
from cxrlab.errors import CxrlabError
from cxrlab.study.data import check_audit, cli_data
from cxrlab.study.matrix import POOLED, Matrix, SourceTestSet, generalisation_matrix
from cxrlab.study.spec import Study, load_study
from cxrlab.utils import read_json, write_json

DATA_KEYS = ("data.index", "data.split", "data.cache")


def _data(study: Study, cli_set: list[str]) -> tuple[Index, pd.DataFrame, str, str | None]:
    given = cli_data(cli_set)
    index_path = given.get("index", study.data.index)
    split_path = given.get("split", study.data.split)
    if not index_path or not split_path:
        raise CxrlabError("study matrix needs data.index (a merged index) and data.split; give them in the study "
                          "file or with --set data.index=MERGED data.split=SPLIT.csv")
    index = load_index(index_path)
    if "source" not in index.frame.columns or index.frame["source"].nunique() < 2:
        raise CxrlabError(f"{index_path}: study matrix needs a merged index with two or more sources; make one with "
                          "`cxrlab data merge`")
    return index, load_split(split_path), str(Path(split_path).resolve()), given.get("cache", study.data.cache)


def arm_splits(index: Index, split: pd.DataFrame, folder: Path) -> dict[str, Path]:
    """One split file per arm: a source's train/val rows (all of them for ``pooled``) plus every test row."""
    source = dict(zip(index.frame["image_id"].astype(str), index.frame["source"].astype(str)))
    split = split[split["image_id"].isin(source)].reset_index(drop=True)
    src = split["image_id"].map(source)
    out = {}
    for arm in [*sorted(set(src)), POOLED]:
        keep = (split["split"] == "test") | (src == arm) | (arm == POOLED)
        path = folder / f"{arm}.csv"
        write_split(split[keep][["image_id", "split"]], path, f"matrix:{arm}", None, index)
        out[arm] = path
    return out


def _overrides(study: Study, cli_set: list[str], split: Path, cache: str | None, seed: int, arm: str,
               smoke: bool, index: Index) -> list[str]:
    base = [f"{k}={json.dumps(v)}" for k, v in study.base.set.items()]
    data = [f"data.index={json.dumps(str(index.path))}", f"data.split={json.dumps(str(split))}",
            "data.require_positives=false"] + ([f"data.cache={json.dumps(str(cache))}"] if cache else [])
    budget = [f"train.epochs={study.budget.epochs}"] if study.budget.epochs else []
    rest = [s for s in cli_set if s.partition("=")[0].strip() not in DATA_KEYS]
    return base + data + budget + [f"train.seed={seed}", f"name={arm}"] + rest + (["train.epochs=1"] if smoke else [])


def _train(run_dir: Path, cfg) -> str:
    """Train ``cfg`` into ``run_dir`` unless a finished run with the same config is there."""
    from cxrlab.train.fitting import fit

    done = run_dir / "predictions" / "test.csv"
    record = run_dir / "matrix_config.json"
    wanted = json.loads(json.dumps(config_to_dict(cfg)))
    if done.is_file() and record.is_file() and read_json(record) == wanted:
        return "kept"
    if run_dir.exists():  # unfinished or made with another config: this study's own folder, started over
        shutil.rmtree(run_dir)
    fit(cfg, run_dir)
    write_json(record, wanted)
    return "trained"


def _test_sets(index: Index, split: pd.DataFrame) -> list[SourceTestSet]:
    test_ids = set(split.loc[split["split"] == "test", "image_id"].astype(str))
    frame = index.frame[index.frame["image_id"].astype(str).isin(test_ids)]
    sets = []
    for name in sorted(frame["source"].astype(str).unique()):
        sub = index.subset(frame.loc[frame["source"] == name, "image_id"].astype(str).tolist())
        _, codes = np.unique(patient_ids(sub).to_numpy(), return_inverse=True)
        sets.append(SourceTestSet(name, sub.image_ids, sub.labels(), codes, int(codes.max()) + 1))
    return sets


def _aligned(run_dir: Path, ids: list[str], classes: list[str]) -> np.ndarray:
    from cxrlab.predictions import read_predictions

    preds = read_predictions(run_dir / "predictions" / "test.csv", classes=classes)
    pos = {i: k for k, i in enumerate(preds.image_ids)}
    missing = [i for i in ids if i not in pos]
    if missing:
        raise CxrlabError(f"{run_dir}/predictions/test.csv lacks test image {missing[0]}; rerun the study matrix")
    return preds.probs[[pos[i] for i in ids]]


def _trained_findings(index: Index, split_file: Path) -> set[str]:
    """Findings with a known label among the arm's training rows."""
    s = load_split(split_file)
    train = index.subset(s.loc[s["split"] == "train", "image_id"].astype(str).tolist())
    labels = train.labels()
    return {c for i, c in enumerate(index.classes) if (~np.isnan(labels[:, i])).any()}


def run_matrix(study_path: str | Path, out: str | Path, cli_set: list[str] | None = None, smoke: bool = False
               ) -> Matrix:
    """Train every arm (resuming), compute the matrix, write ``DIR/matrix.json`` and the report; returns it."""
    from cxrlab.study.matrix_report import write_matrix_report

    cli_set, out = list(cli_set or []), Path(out)
    study = load_study(study_path)
    index, split, split_path, cache = _data(study, cli_set)
    check_audit({"index": str(index.path), "split": split_path}, out)  # patients across splits stop the study
    splits = arm_splits(index, split, out / "splits")
    seed = study.seeds[0]
    runs = {}
    for arm, split_file in splits.items():
        cfg = load_config(study.base.recipe, _overrides(study, cli_set, split_file, cache, seed, arm, smoke, index))
        run_dir = out / "runs" / f"{arm}-s{seed}"
        print(f"study matrix: {arm}: {_train(run_dir, cfg)} ({run_dir})", flush=True)
        runs[arm] = run_dir
    tests = _test_sets(index, split)
    ids = [i for t in tests for i in t.image_ids]
    predictions = {arm: _aligned(d, ids, index.classes) for arm, d in runs.items()}
    trained = {arm: _trained_findings(index, f) for arm, f in splits.items()}
    matrix = generalisation_matrix(tests, predictions, list(index.classes), trained, study.evaluate.bootstrap,
                                   study.evaluate.seed, minimum=study.evaluate.exact_below)
    write_matrix_report(matrix, out, {"study": str(study_path), "index": str(index.path),
                                      "index_sha256": index.sha256, "seed": seed, "smoke": smoke,
                                      "seeds_ignored": study.seeds[1:]})
    return matrix
