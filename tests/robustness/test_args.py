"""The argparse validators every verb uses (``cxrlab.commands.args``)."""

from __future__ import annotations

import argparse

import pytest

from cxrlab.commands import args as A


@pytest.mark.parametrize("fn, good, bad", [
    (A.positive_int, ["1", "64"], ["0", "-3", "1.5", "abc", ""]),
    (A.non_negative_int, ["0", "1000"], ["-1", "x"]),
    (A.seed, ["0", str(2**32 - 1)], ["-1", str(2**32), "1e3"]),
    (A.probability, ["1", "0.5", "1e-9"], ["0", "1.01", "nan", "inf", "-0.1"]),
    (A.fraction, ["0", "0.2"], ["1", "-0.1", "nan"]),
    (A.unit_interval, ["0", "1", "0.5"], ["1.5", "nan"]),
    (A.positive_float, ["0.3", "99"], ["0", "-1", "inf"]),
    (A.non_negative_float, ["0", "0.15"], ["-0.1", "nan"]),
    (A.port, ["1", "65535"], ["0", "65536"]),
])
def test_validators(fn, good, bad):
    for text in good:
        fn(text)
    for text in bad:
        with pytest.raises(argparse.ArgumentTypeError):
            fn(text)


def test_probability_lists_and_devices():
    assert A.probability_list("0.92, 0.9,0.85") == [0.92, 0.9, 0.85]
    for text in ("abc", "0.9,,0.8", "0.9,1.5", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            A.probability_list(text)
    assert A.device("CPU") == "cpu" and A.device("auto") in ("cpu", "cuda")
    for text in ("bogus", "cuda:x", "gpu", "cuda:999"):
        with pytest.raises(argparse.ArgumentTypeError):
            A.device(text)
