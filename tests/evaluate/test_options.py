"""``EvalOptions``: one options object for the CLI, the library and the study file, validated in one place,
recorded as one block; ``exact_below`` (the permutation-test minimum) changes which paired test a class gets."""

from __future__ import annotations

import json

import pytest

from cxrlab.cli import main
from cxrlab.errors import CxrlabError
from cxrlab.evaluate.compare import compare_runs
from cxrlab.evaluate.evaluate import evaluate_predictions
from cxrlab.evaluate.options import EvalOptions
from cxrlab.evaluate.stats.choose import MIN_PATIENTS
from cxrlab.study.spec import study_from_dict

from .test_eval_compare import make_run


@pytest.mark.parametrize("field, value, says", [
    ("exact_below", 0, "1..10000"), ("exact_below", 10_001, "1..10000"), ("exact_below", 2.5, "exact_below"),
    ("exact_below", True, "exact_below"), ("bootstrap", -1, "--bootstrap"), ("bootstrap", 100_001, "0..100000"),
    ("seed", -3, "--seed"), ("min_group", 0, "--min-group"), ("match", "fuzzy", "exact, approximate"),
    ("threshold_method", "best", "best"), ("age_bands", "60,40", "increase"),
])
def test_bad_values_are_one_line_errors_naming_the_option(field, value, says):
    with pytest.raises(CxrlabError) as exc:
        EvalOptions(**{field: value})
    assert says in str(exc.value) and "\n" not in str(exc.value)


def test_given_forms_are_normalised_once():
    o = EvalOptions(exclude="No Finding, Nodule", by="sex,age", age_bands="30,50")
    assert o.exclude == ("No Finding", "Nodule") and o.by == ("sex", "age") and o.age_bands == (30.0, 50.0)
    assert o == EvalOptions(exclude=["No Finding", "Nodule"], by=["sex", "age"], age_bands=[30, 50])
    assert EvalOptions().exact_below == MIN_PATIENTS and EvalOptions(exclude="").exclude == ()
    assert EvalOptions.of(o, bootstrap=5) == EvalOptions(exclude=("No Finding", "Nodule"), by=("sex", "age"),
                                                         age_bands=(30, 50), bootstrap=5)
    with pytest.raises(TypeError, match="bootstrp"):
        EvalOptions.of(None, bootstrp=5)


def test_cli_exact_below_out_of_range_is_a_usage_error(ml_data, tmp_path, capsys):
    for bad in ("0", "10001", "x"):
        assert main(["evaluate", str(ml_data["test"]), "--labels", str(ml_data["index"]), "--out",
                     str(tmp_path / "e"), "--exact-below", bad]) == 2
        assert "--exact-below" in capsys.readouterr().err
    with pytest.raises(CxrlabError, match="study evaluate: .*exact_below"):
        study_from_dict({"evaluate": {"exact_below": 0}})


def test_cli_library_and_study_file_record_the_same_options_block(ml_data, tmp_path):
    settings = {"bootstrap": 40, "seed": 3, "threshold_method": "max_f1", "exact_below": 30}
    argv = ["evaluate", str(ml_data["test"]), "--labels", str(ml_data["index"]), "--val-predictions",
            str(ml_data["val"]), "--out", str(tmp_path / "cli"), "--no-report"]
    for key, value in settings.items():
        argv += [f"--{key.replace('_', '-')}", str(value)]
    assert main(argv) == 0
    cli = json.loads((tmp_path / "cli" / "metrics.json").read_text())
    library = evaluate_predictions(ml_data["test"], labels=ml_data["index"], val_predictions=ml_data["val"],
                                   options=EvalOptions(**settings))
    keywords = evaluate_predictions(ml_data["test"], labels=ml_data["index"], val_predictions=ml_data["val"],
                                    **settings)  # the thin keyword form of the same call
    study = study_from_dict({"evaluate": settings}).evaluate.options()
    from_study = evaluate_predictions(ml_data["test"], labels=ml_data["index"], val_predictions=ml_data["val"],
                                      options=study)
    assert study == EvalOptions(**settings)
    assert cli["options"] == library["options"] == keywords["options"] == from_study["options"]
    assert cli["options"]["exact_below"] == 30 and cli["options"]["threshold_method"] == "max_f1"
    assert cli["macro"]["min_patients"] == 30
    for result in (library, keywords, from_study):  # the same options give the same numbers
        assert result["macro"]["auroc_ci"] == cli["macro"]["auroc_ci"]
        assert result["thresholds"] == cli["thresholds"]


def test_exact_below_decides_between_delong_and_the_permutation_test(ml_data, tmp_path):
    runs = [make_run(tmp_path, ml_data, "a", "cnn", 0.05, 0), make_run(tmp_path, ml_data, "b", "vit", 0.3, 1)]
    default = compare_runs(runs, labels=ml_data["index"], bootstrap=20).to_dict()
    counts = default["class_counts"]
    fewest = min(min(c["n_pos_patients"], c["n_neg_patients"]) for c in counts.values())
    assert fewest >= MIN_PATIENTS  # every class has enough patients for DeLong by default
    raised = compare_runs(runs, labels=ml_data["index"],
                          options=EvalOptions(bootstrap=20, exact_below=fewest + 1)).to_dict()
    tests = {t["class"]: t["test"] for t in default["tests"] if t["class"] != "macro"}
    above = {t["class"]: t["test"] for t in raised["tests"] if t["class"] != "macro"}
    thin = [c for c, n in counts.items() if min(n["n_pos_patients"], n["n_neg_patients"]) < fewest + 1]
    assert thin and all(tests[c].startswith("delong") for c in thin)
    assert all(above[c].startswith("permutation") for c in thin)
    assert raised["min_patients"] == fewest + 1 and raised["options"]["exact_below"] == fewest + 1
    in_macro = set(thin) - {"No Finding"}  # excluded from the macro by default, so never flagged
    assert in_macro and in_macro <= set(raised["flagged"]) and not in_macro & set(default["flagged"])
