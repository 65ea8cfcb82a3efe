"""argparse ``type=`` validators shared by every verb: a bad number is refused while parsing, with the option's
rule in the message (the CLI prints one line, ``error: cxrlab VERB: argument --batch-size: ...``, and exits 2).

Use them as ``p.add_argument("--batch-size", type=positive_int, ...)``; each validator's ``__name__`` is what
argparse shows, so the names read as the rule.
"""

from __future__ import annotations

import argparse
import math
import re

DEVICE_PATTERN = re.compile(r"^(cpu|auto|mps|cuda(:\d+)?)$")


def _number(text: str, kind: type) -> float | int:
    try:
        value = kind(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


MAX_COUNT = 10**9  # no count, size or limit of this toolkit is meaningful beyond this


def positive_int(text: str) -> int:
    """An integer in 1..1e9 (counts and limits; sizes and batch sizes have their own, tighter bounds below)."""
    value = _number(text, int)
    if not 1 <= value <= MAX_COUNT:
        raise argparse.ArgumentTypeError(f"{value} must be a positive integer (1 to {MAX_COUNT:.0e})")
    return value


def non_negative_int(text: str) -> int:
    """An integer in 0..1e9 (counts where 0 means 'none')."""
    value = _number(text, int)
    if not 0 <= value <= MAX_COUNT:
        raise argparse.ArgumentTypeError(f"{value} must be an integer from 0 to {MAX_COUNT:.0e}")
    return value


def int_range(lo: int, hi: int, what: str):
    """A validator for an integer in ``lo..hi``; ``what`` names the quantity in the message (``image side``)."""

    def check(text: str) -> int:
        value = _number(text, int)
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{value} is not a valid {what} ({lo} to {hi})")
        return value

    check.__name__ = what.replace(" ", "_")
    return check


image_size = int_range(8, 4096, "image side in pixels")
batch_size = int_range(1, 65536, "batch size")
epochs = int_range(1, 100_000, "number of epochs")
bootstrap = int_range(0, 100_000, "number of bootstrap replicates")  # 0: no intervals
image_count = int_range(1, 10_000_000, "number of images")
small_count = int_range(1, 100_000, "count")
folds = int_range(2, 1000, "number of folds")


def percentile(text: str) -> float:
    """A percentile in (0, 100]."""
    value = _number(text, float)
    if not 0 < value <= 100:
        raise argparse.ArgumentTypeError(f"{value:g} is not a percentile (greater than 0, at most 100)")
    return value


def seed(text: str) -> int:
    """A random seed: an integer in [0, 2**32 - 1] (NumPy's range)."""
    value = _number(text, int)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} must be an integer >= 0")
    if value >= 2**32:
        raise argparse.ArgumentTypeError(f"{value} is too large for a seed (at most {2**32 - 1})")
    return value


def probability(text: str) -> float:
    """A number in (0, 1]: fractions, coverages, weights."""
    value = _number(text, float)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"{value:g} must be in (0, 1]")
    return value


def fraction(text: str) -> float:
    """A number in [0, 1): a share that may be zero but not everything (val/test fractions)."""
    value = _number(text, float)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"{value:g} must be in [0, 1)")
    return value


def unit_interval(text: str) -> float:
    """A number in [0, 1] (map thresholds)."""
    value = _number(text, float)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{value:g} must be in [0, 1]")
    return value


def positive_float(text: str) -> float:
    """A finite number in (0, 1e6] (multipliers such as contrast or finding scale, sizes in MB)."""
    value = _number(text, float)
    if not 0 < value <= 1e6:
        raise argparse.ArgumentTypeError(f"{value:g} must be greater than 0 and at most 1e6")
    return value


def non_negative_float(text: str) -> float:
    """A finite number in [0, 1e6]."""
    value = _number(text, float)
    if not 0 <= value <= 1e6:
        raise argparse.ArgumentTypeError(f"{value:g} must be from 0 to 1e6")
    return value


def probability_list(text: str) -> list[float]:
    """A comma-separated list of numbers in (0, 1], e.g. ``0.92,0.9,0.85``."""
    parts = [p.strip() for p in text.split(",")]
    if not parts or any(not p for p in parts):
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers such as 0.9,0.85")
    return [probability(p) for p in parts]


def device(text: str) -> str:
    """A torch device name: cpu, cuda, cuda:N, mps or auto (resolved here to cuda when visible, else cpu)."""
    name = text.strip().lower()
    if not DEVICE_PATTERN.match(name):
        raise argparse.ArgumentTypeError(f"{text!r} is not a device; use cpu, cuda, cuda:N, mps or auto")
    if name == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        import torch  # only when a GPU is asked for: the check needs it

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        wanted = int(name.partition(":")[2] or 0)
        if wanted >= count:
            have = f"{count} CUDA device(s) visible" if count else "no CUDA device is visible"
            raise argparse.ArgumentTypeError(f"{text!r}: {have}; use cpu (or auto)")
    elif name == "mps":
        import torch

        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise argparse.ArgumentTypeError("'mps': no Apple GPU is available; use cpu (or auto)")
    return name


def port(text: str) -> int:
    """A TCP port: 1..65535."""
    value = _number(text, int)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a TCP port (1 to 65535)")
    return value


def workers(text: str) -> int:
    """A number of worker processes/threads: 1..1024."""
    value = _number(text, int)
    if not 1 <= value <= 1024:
        raise argparse.ArgumentTypeError(f"{value} is not a valid number of workers (1 to 1024)")
    return value


def add_allow_unverified(p: argparse.ArgumentParser) -> None:
    """``--allow-unverified``: fit even where the test-set guard cannot check everything (an index without file
    hashes, a recorded index that cannot be read, images with no known hash); loud, recorded in the output."""
    p.add_argument("--allow-unverified", action="store_true",
                   help="fit even where the test-set check is incomplete (no hashes, unreadable recorded index); "
                        "logged and recorded in the output")
