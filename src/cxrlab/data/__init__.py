"""The data layer: index, split, audit and cache chest X-ray datasets."""
