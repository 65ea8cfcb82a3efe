"""cxrlab: train, evaluate, compare and explain chest X-ray classifiers, reproducibly."""

__version__ = "0.1.0"
