"""cxrlab: train, evaluate, compare and explain chest X-ray classifiers, reproducibly."""

__version__ = "0.2.0"
