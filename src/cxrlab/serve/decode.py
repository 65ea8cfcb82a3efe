"""Uploaded bytes -> a uint8 grayscale image, sniffed by content (never by file name) and bounded in pixels.

The pixel count is read from the header before anything is decompressed (PNG IHDR, JPEG SOF, DICOM Rows x
Columns), so a small file that would inflate to gigabytes is refused up front. Decoding itself is
``cxrlab.data.images.decode_raw``, the reader training used, on a file in a private temporary folder that is
removed before the function returns.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cxrlab.data.headers import PNG_MAGIC, jpeg_size, png_size
from cxrlab.errors import CxrlabError

JPEG_MAGIC = b"\xff\xd8\xff"


class UploadError(CxrlabError):
    """A rejected upload; ``status`` is the HTTP status the API answers with."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Decoded:
    """A decoded upload: ``raw`` as stored (gray or RGB), ``gray`` uint8 (H, W), and its sniffed ``format``."""

    raw: np.ndarray
    gray: np.ndarray
    format: str


def sniff(data: bytes) -> str:
    """``png``, ``jpeg`` or ``dicom`` from the magic bytes; anything else is a 415 error."""
    if data.startswith(PNG_MAGIC):
        return "png"
    if data.startswith(JPEG_MAGIC):
        return "jpeg"
    if len(data) >= 132 and data[128:132] == b"DICM":
        return "dicom"
    raise UploadError("not a PNG, JPEG or DICOM image (checked by content, not by file name)", 415)


def _png_size(data: bytes) -> tuple[int, int]:
    size = png_size(data)
    if size is None:
        raise UploadError("truncated or corrupt PNG (no IHDR header)", 422)
    return size[1], size[0]


def _jpeg_size(data: bytes) -> tuple[int, int]:
    size = jpeg_size(data)
    if size is None:
        raise UploadError("truncated or corrupt JPEG (no frame header)", 422)
    return size[1], size[0]


def _dicom_size(data: bytes) -> tuple[int, int]:
    import io

    import pydicom

    try:
        ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    except Exception as exc:  # pydicom raises many types for a bad file
        raise UploadError(f"not a readable DICOM file ({type(exc).__name__})", 422) from None
    rows, cols = int(getattr(ds, "Rows", 0) or 0), int(getattr(ds, "Columns", 0) or 0)
    if not rows or not cols:
        raise UploadError("DICOM file has no image (no Rows/Columns): a report or structured document?", 422)
    return rows, cols


def image_size(data: bytes, fmt: str) -> tuple[int, int]:
    """(height, width) from the header alone."""
    return {"png": _png_size, "jpeg": _jpeg_size, "dicom": _dicom_size}[fmt](data)


def decode_upload(data: bytes, max_pixels: int) -> Decoded:
    """Sniff, check the pixel count, decode with the training reader; raises ``UploadError``."""
    from cxrlab.data.images import decode_raw, to_gray_uint8

    if not data:
        raise UploadError("empty upload", 422)
    fmt = sniff(data)
    h, w = image_size(data, fmt)
    if h * w > max_pixels:
        raise UploadError(f"image of {w}x{h} pixels exceeds the limit of {max_pixels:,} pixels", 413)
    if fmt == "png" and b"IEND" not in data[-16:]:
        raise UploadError("truncated PNG (no IEND chunk at the end)", 422)
    with tempfile.TemporaryDirectory(prefix="cxrlab-serve-") as tmp:
        path = Path(tmp) / f"upload.{'dcm' if fmt == 'dicom' else fmt}"  # a fixed name: no client-chosen path
        path.write_bytes(data)
        try:
            raw = decode_raw(path)
        except CxrlabError as exc:
            # the reader names the temp file; the client only needs the reason
            raise UploadError(str(exc).replace(f"{path}: ", ""), 422) from None
    return Decoded(raw, to_gray_uint8(raw), fmt)
