"""RunInfo: the checkpoint JSON parsed and validated once; a bad field is a one-line error naming it."""

from __future__ import annotations

import json
from dataclasses import FrozenInstanceError

import numpy as np
import pytest
import torch

from cxrlab.errors import CxrlabError
from cxrlab.predict import Preprocess, RunInfo, probabilities
from cxrlab.tasks import check_task

GOOD = {"model_name": "cnn_gap", "model_kwargs": {"num_classes": 2, "in_chans": 1}, "classes": ["a", "b"],
        "task": "multilabel", "weights_sha256": "ab" * 32, "epoch": 3, "metric": "macro_auroc", "val_metric": 0.7,
        "preprocess": {"image_size": 32, "in_chans": 1, "mean": [0.5], "std": [0.25], "cache_size": 48,
                       "policy": "letterbox", "augment_policy": "medical", "clahe": False, "index": "/x/index",
                       "cache": None},
        "config": {"data": {"index": "/y/index", "cache": "/y/cache"}}}


def test_parse_round_trip_and_frozen():
    info = RunInfo.from_dict(GOOD)
    assert info.classes == ("a", "b") and info.num_classes == 2 and "num_classes" not in info.model_kwargs
    assert info.preprocess == Preprocess(32, 1, (0.5,), (0.25,), 48, "letterbox", "medical", False, "/x/index", None)
    assert info.index == "/x/index" and info.cache == "/y/cache"  # the checkpoint's, else the config's
    again = RunInfo.from_dict(json.loads(json.dumps(info.to_dict())))
    assert again == info
    with pytest.raises(FrozenInstanceError):
        info.task = "multiclass"


@pytest.mark.parametrize("path, value, words", [
    (("task",), "binary", "task 'binary'"),
    (("classes",), [], "'classes'"),
    (("classes",), ["a", "a"], "appears twice"),
    (("model_name",), None, "'model_name'"),
    (("preprocess",), None, "preprocess"),
    (("preprocess", "image_size"), 0, "image_size"),
    (("preprocess", "image_size"), "32", "image_size"),
    (("preprocess", "std"), [0.0], "std"),
    (("preprocess", "mean"), [0.5, 0.5, 0.5, 0.5], "mean"),
    (("preprocess", "policy"), "stretch", "policy"),
    (("preprocess", "clahe"), "yes", "clahe"),
    (("temperature",), -1, "temperature"),
    (("thresholds",), {"c": 0.5}, "thresholds"),
])
def test_bad_field_named(path, value, words):
    d = json.loads(json.dumps(GOOD))
    target = d
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(CxrlabError, match=words) as err:
        RunInfo.from_dict(d, where="ck.json")
    assert str(err.value).startswith("ck.json") and "\n" not in str(err.value)


def test_not_an_object():
    with pytest.raises(CxrlabError, match="expected a JSON object"):
        RunInfo.from_dict([1, 2], where="ck.json")


def test_probabilities_torch_and_numpy_agree():
    z = np.array([[2.0, -1.0, 0.5], [-30.0, 40.0, 0.0]], dtype=np.float32)
    for task in ("multilabel", "multiclass"):
        t = probabilities(torch.from_numpy(z), task)
        n = probabilities(z, task)
        assert isinstance(t, torch.Tensor) and isinstance(n, np.ndarray) and n.dtype == np.float64
        np.testing.assert_allclose(t.numpy(), n, atol=1e-6)
    assert np.allclose(probabilities(z, "multiclass").sum(axis=1), 1)
    with pytest.raises(CxrlabError, match="task"):
        check_task("regression")
