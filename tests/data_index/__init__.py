"""Tests for image decoding, sources, the phantom, index building and validation."""
