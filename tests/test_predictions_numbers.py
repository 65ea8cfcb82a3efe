"""Reading probabilities: the fast ``float`` path gives pandas' ``to_numeric`` numbers, and every cell it cannot
vouch for (missing, text, an underscore) goes to the careful path that names the cell."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cxrlab.errors import CxrlabError
from cxrlab.predictions import read_predictions

CELLS = ["0.5", " 0.25", "1e-3", "+0.5", ".5", "1.", "-0", "1E-1", "0.100000000000000005551", "4.9e-324", "0.3 "]


def _csv(tmp_path, cells):
    path = tmp_path / "p.csv"
    pd.DataFrame({"image_id": [f"i{k}.png" for k in range(len(cells))], "Mass": cells}).to_csv(path, index=False)
    return path


def test_fast_numbers_equal_to_numeric(tmp_path):
    probs = read_predictions(_csv(tmp_path, CELLS), classes=["Mass"]).probs[:, 0]
    expected = np.clip(pd.to_numeric(pd.Series(CELLS)).to_numpy(dtype=np.float64), 0, 1)
    assert np.array_equal(probs, expected)


@pytest.mark.parametrize(("cell", "message"), [("0_5", "'0_5' is not a number"), ("abc", "'abc' is not a number"),
                                               ("", "value is missing or not a number")])
def test_cells_the_fast_path_refuses_are_named(tmp_path, cell, message):
    with pytest.raises(CxrlabError, match=f"row 3, column 'Mass': {message}"):
        read_predictions(_csv(tmp_path, ["0.1", cell, "0.2"]), classes=["Mass"])
