"""Typed evaluation results: metrics.json is what the dict-building code wrote (golden file from before the typed
results), every typed object survives ``from_dict(to_dict(x)) == x``, and a malformed file is one line."""

from __future__ import annotations

import copy
import json

import pytest

from cxrlab.errors import CxrlabError
from cxrlab.evaluate.evaluate import read_evaluation
from cxrlab.evaluate.stats.evaluation import (
    ClassResult,
    MulticlassResults,
    MultilabelResults,
    results_from_dict,
)
from cxrlab.evaluate.stats.metrics_file import Evaluation

from .golden_cases import CASES, GOLDEN, run_case, stable


@pytest.fixture(scope="module")
def evaluations(tmp_path_factory) -> dict:
    """Each golden case evaluated once, written to ``out`` (metrics.json, no report)."""
    root = tmp_path_factory.mktemp("typed")
    return {name: (run_case(name, root / name, root / f"{name}_out"), root / f"{name}_out") for name in CASES}


@pytest.mark.parametrize("name", list(CASES))
def test_metrics_json_is_unchanged(evaluations, name):
    result, out = evaluations[name]
    golden = json.loads(GOLDEN.read_text())[name]
    assert json.dumps(stable(result)) == json.dumps(golden)  # values and key order
    written = (out / "metrics.json").read_text()
    assert written == json.dumps(result, indent=2) + "\n"  # the file is the returned dict, byte for byte


@pytest.mark.parametrize("name", list(CASES))
def test_round_trip(evaluations, name):
    result, out = evaluations[name]
    ev = Evaluation.from_dict(result)
    assert json.dumps(ev.to_dict()) == json.dumps(result)
    assert Evaluation.from_dict(ev.to_dict()) == ev
    assert read_evaluation(out) == ev == read_evaluation(out / "metrics.json")
    kind = MultilabelResults if result["task"] == "multilabel" else MulticlassResults
    assert isinstance(ev.results, kind)
    assert results_from_dict(ev.results.to_dict() | {"task": result["task"]}) == ev.results
    for column, block in (ev.subgroups or {}).items():  # subgroup blocks are the same typed body
        for group in block["settings"]["groups"]:
            g = block[group]
            if "macro" in g:
                typed = results_from_dict(g, path=f"subgroups.{column}.{group}")
                assert isinstance(typed, kind)
                assert typed.to_dict().items() <= g.items()


def test_attributes_read_the_numbers(evaluations):
    result, _ = evaluations["multilabel_val_by_sex"]
    r = Evaluation.from_dict(result).results
    thin = r.per_class["Effusion"]  # 4 positive patients < exact_below=10: no interval, flagged
    assert isinstance(thin, ClassResult)
    assert (thin.n_positive_patients, thin.enough_patients, thin.auroc.ci, thin.auprc.ci) == (4, False, None, None)
    assert r.macro.flagged == ("Effusion",) and r.macro.undefined == ("Nodule",)
    assert r.per_class["Nodule"].auroc.value is None and not r.per_class["Nodule"].defined
    assert r.per_class["Atelectasis"].n_unknown == 1
    assert r.macro.powered.classes == ("Atelectasis",)
    assert r.headline() == ("macro AUROC", r.macro.auroc)
    assert r.macro.auroc.value == result["macro"]["auroc"] and list(r.macro.auroc.ci) == result["macro"]["auroc_ci"]
    assert r.thresholds.chosen_on == "validation" and set(r.calibration.temperature) == set(result["classes"])
    assert r.per_class["Atelectasis"].sensitivity_at("0.9") == result["per_class"]["Atelectasis"][
        "sensitivity_at_specificity"]["0.9"]
    mc = Evaluation.from_dict(evaluations["multiclass_val"][0]).results
    assert sum(map(sum, mc.confusion)) == evaluations["multiclass_val"][0]["counts"]["scored"]
    assert [c.support for c in mc.per_class.values()] == [sum(row) for row in mc.confusion]


def _broken(result: dict, edit) -> dict:
    bad = copy.deepcopy(result)
    edit(bad)
    return bad


MALFORMED = {
    "missing auroc": (lambda r: r["per_class"]["Effusion"].pop("auroc"), "per_class.Effusion.auroc is missing"),
    "text count": (lambda r: r["per_class"]["Atelectasis"].update(n_positive="12"),
                   "per_class.Atelectasis.n_positive is '12', expected a whole number"),
    "bad interval": (lambda r: r["per_class"]["Atelectasis"].update(auroc_ci=[0.5]),
                     "per_class.Atelectasis.auroc_ci is [0.5], expected [low, high] or null"),
    "entry not an object": (lambda r: r["per_class"].update(Effusion=0.7), "per_class.Effusion is a JSON float"),
    "threshold entry": (lambda r: r["thresholds"]["per_class"]["Nodule"].pop("f1_ci"),
                        "thresholds.per_class.Nodule.f1_ci is missing"),
    "no macro": (lambda r: r.pop("macro"), "macro is missing"),
    "schema": (lambda r: r.update(schema="other/2"), "schema is 'other/2'"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_entry_is_one_line(evaluations, tmp_path, case):
    edit, words = MALFORMED[case]
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps(_broken(evaluations["multilabel_no_val"][0], edit)))
    with pytest.raises(CxrlabError) as exc:
        read_evaluation(path)
    message = str(exc.value)
    assert "\n" not in message and message.startswith(f"{path}: ") and words in message
    assert "cxrlab evaluate" in message  # the fix


def test_malformed_multiclass_confusion(evaluations):
    bad = _broken(evaluations["multiclass_val"][0], lambda r: r["confusion_matrix"]["counts"].pop())
    with pytest.raises(CxrlabError, match=r"^x.json: confusion_matrix.counts is not a 3 x 3 table"):
        Evaluation.from_dict(bad, "x.json")


def test_unreadable_files(tmp_path):
    with pytest.raises(CxrlabError, match="does not exist"):
        read_evaluation(tmp_path / "nowhere")
    (tmp_path / "metrics.json").write_text("{not json")
    with pytest.raises(CxrlabError, match="is not valid JSON"):
        read_evaluation(tmp_path)
    (tmp_path / "metrics.json").write_text("[1, 2]")
    with pytest.raises(CxrlabError, match="expected a JSON object"):
        read_evaluation(tmp_path)
