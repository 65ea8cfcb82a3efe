"""``cxrlab select`` input errors (one line, exit 2) and the shift TTA (``cxrlab.predict.tta``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cxrlab.cli import main
from cxrlab.errors import CxrlabError
from cxrlab.predict.tta import ShiftTTA, shifted, with_tta
from cxrlab.selection import parse_candidate


@pytest.fixture
def recipe(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(f"data:\n  index: {tmp_path / 'idx'}\n  split: {tmp_path / 's.csv'}\nmodel:\n  name: cnn_gap\n")
    return str(path)


@pytest.mark.parametrize("specs, extra, message", [
    (["nonsense"], [], "write NAME=CONFIG[,key=value...]"),
    (["a=R,tta=flip", "b=R"], [], "tta='flip' is not one of none, shifts"),
    (["a=R,train.epochs"], [], "'train.epochs' is not key=value"),
    (["a=R,train.epohcs=3", "b=R"], [], "--candidate a:"),
    (["a b=R", "c=R"], [], "may hold only letters"),
    (["a=R"], [], "at least 2 --candidate"),
    (["a=R", "a=R,train.lr=0.1"], [], "a is given twice"),
    (["a=R", "b=R,data.index=/elsewhere"], [], "every candidate must see the same data"),
    (["a=R", "b=R,train.seed=3"], [], "the folds come from one seed"),
    (["a=R", "b=R"], ["--fold", "5"], "--fold 5 must be one of 0..2"),
    (["a=R", "b=R"], ["--folds", "1"], "not a valid number of folds"),
])
def test_bad_input_is_one_line(recipe, tmp_path, capsys, specs, extra, message):
    argv = ["select", *sum((["--candidate", s.replace("R", recipe)] for s in specs), []), "--folds", "3",
            "--out", str(tmp_path / "o"), *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err


def test_out_onto_a_candidate_recipe_is_refused_and_the_recipe_unchanged(recipe, capsys):
    before = open(recipe).read()
    assert main(["select", "--candidate", f"a={recipe}", "--candidate", f"b={recipe},train.lr=0.1", "--folds", "3",
                 "--out", recipe]) == 2
    err = capsys.readouterr().err.strip()
    assert "r.yaml" in err and "\n" not in err and "Traceback" not in err
    assert open(recipe).read() == before


def test_candidate_spec_layers_recipe_common_and_own(recipe):
    c = parse_candidate(f"r18={recipe},train.epochs=7,tta=shifts", ["train.epochs=3", "train.lr=0.01"])
    assert (c.name, c.tta, c.config.train.epochs, c.config.train.lr) == ("r18", "shifts", 7, 0.01)
    same = parse_candidate(f"other={recipe},train.epochs=7", ["train.epochs=3", "train.lr=0.01"])
    assert same.training_key() == c.training_key()  # TTA and the name are not training
    assert parse_candidate(f"x={recipe},train.epochs=8").training_key() != c.training_key()


def _reference_shift(x: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Independent: output pixel (i, j) is input pixel (i - dy, j - dx), clamped to the image (edge replicated)."""
    h, w = x.shape[-2:]
    rows = np.clip(np.arange(h) - dy, 0, h - 1)
    cols = np.clip(np.arange(w) - dx, 0, w - 1)
    return x[..., rows, :][..., :, cols]


@pytest.mark.parametrize("dy, dx", [(0, 0), (3, 0), (-3, 0), (0, 2), (0, -4), (2, -1)])
def test_shift_matches_an_independent_clamped_index(dy, dx):
    x = torch.randn(2, 1, 9, 11)
    np.testing.assert_array_equal(shifted(x, dy, dx).numpy(), _reference_shift(x.numpy(), dy, dx))


def test_shift_tta_averages_five_views_without_flips():
    x = torch.randn(3, 1, 64, 64)
    seen = []

    def engine(batch):
        seen.append(batch.clone())
        return batch.mean(dim=(1, 2, 3))[:, None] * torch.ones(1, 2)  # (B, 2)

    out = ShiftTTA(engine)(x)
    assert len(seen) == 5 and out.shape == (3, 2)
    assert torch.allclose(out, torch.stack([engine(v) for v in seen[:5]]).mean(0))
    flipped = torch.flip(x, dims=[-1])
    assert not any(torch.allclose(v, flipped) for v in seen)  # laterality preserved: no left-right flip
    assert torch.equal(seen[0], x) and torch.equal(seen[1], shifted(x, 2, 0))  # 64 / 32 = 2 px


def test_with_tta_none_is_the_engine_and_unknown_modes_are_refused():
    model = torch.nn.Linear(2, 2)
    assert with_tta(model, "none") is model
    with pytest.raises(CxrlabError, match="tta 'hflip' is not one of none, shifts"):
        with_tta(model, "hflip")


def test_predict_tta_with_onnx_is_refused(tmp_path, capsys):
    code = main(["predict", str(tmp_path / "m.onnx"), "--tta", "shifts", "--out", str(tmp_path / "p.csv")])
    assert code == 2 and "--tta shifts is available with the torch engine only" in capsys.readouterr().err
