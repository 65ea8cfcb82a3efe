"""Image sizes and DICOM sanity from file headers, before anything is decoded.

A 40000x40000 PNG decodes to 1.6 GB; a DICOM without pixel data (a structured report, a presentation
state) decodes to nothing. Both are reported at index time from a few header bytes, in plain words.
"""

from __future__ import annotations

import struct
from pathlib import Path

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
JPEG_SCAN_BYTES = 1 << 20  # SOF sits after the EXIF block, which is well under 1 MB in practice


def png_size(head: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG's IHDR chunk; None when the bytes are not a PNG start with one."""
    if head.startswith(PNG_MAGIC) and len(head) >= 24 and head[12:16] == b"IHDR":
        return struct.unpack(">II", head[16:24])
    return None


def image_size(path: Path, head: bytes, data: bytes | None = None) -> tuple[int, int] | None:
    """(width, height) from a PNG or JPEG header; None for other kinds or when the header does not say.
    ``data``: the file's bytes when already read (saves reading a JPEG's start again)."""
    if head.startswith(PNG_MAGIC):
        return png_size(head)
    if head.startswith(b"\xff\xd8"):
        if data is not None:
            return jpeg_size(data[:JPEG_SCAN_BYTES])
        with open(path, "rb") as f:
            return jpeg_size(f.read(JPEG_SCAN_BYTES))
    return None


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG's frame header (SOF), skipping the segments before it; None when absent."""
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            i += 1
            continue
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
            i += 1 if marker == 0xFF else 2
            continue
        length = int.from_bytes(data[i + 2:i + 4], "big")
        if marker in JPEG_SOF:
            height, width = struct.unpack(">HH", data[i + 5:i + 9])
            return width, height
        i += 2 + length
    return None


def dicom_problem(path: Path, max_side: int) -> str | None:
    """None when ``path`` is a DICOM with pixel data of a sane size; else a plain-words problem."""
    try:
        import pydicom
        from pydicom.errors import InvalidDicomError
    except ImportError:  # the dicom extra is not installed: decoding will say so; nothing to check here
        return None
    try:
        ds = pydicom.dcmread(path, defer_size=1024)
    except InvalidDicomError:
        return "not DICOM: the file has a DICOM name but no DICOM header (DICM marker)"
    except Exception as exc:  # noqa: BLE001 - pydicom raises many kinds on damaged files
        return f"unreadable: the DICOM header cannot be parsed ({type(exc).__name__})"
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        kind = getattr(ds, "Modality", "") or getattr(ds, "SOPClassUID", "")
        return f"no pixel data: a DICOM without an image ({kind or 'unknown kind'}); remove it from the dataset"
    rows, cols = int(getattr(ds, "Rows", 0) or 0), int(getattr(ds, "Columns", 0) or 0)
    return _side_problem(cols, rows, max_side)


MIN_SIDE = 16  # pixels: the smallest input any model takes (data.image_size >= 16); a 1x1 image is no X-ray
MAX_ASPECT = 10.0  # chest films are about 1:1.3 at most; a 1x5000 strip is a mistake, not a radiograph


def _side_problem(width: int, height: int, max_side: int) -> str | None:
    if width <= 0 or height <= 0:
        return f"unreadable: the header says the image is {width}x{height} pixels"
    if min(width, height) < MIN_SIDE:
        return f"degenerate: {width}x{height} pixels (under {MIN_SIDE} px a side)"
    if max(width, height) / min(width, height) > MAX_ASPECT:
        return f"degenerate: {width}x{height} pixels (aspect ratio over {MAX_ASPECT:g}:1, a strip)"
    if max(width, height) > max_side:
        return (f"too large: {width}x{height} pixels in the header (limit {max_side} per side); "
                "downsample it before indexing")
    return None


def size_problem(path: Path, head: bytes, max_side: int, data: bytes | None = None) -> str | None:
    """Header check of one file: dimensions (PNG, JPEG, DICOM) and, for DICOM, header and pixel data."""
    if head[128:132] == b"DICM" or path.suffix.lower() in (".dcm", ".dicom", ".dic"):
        return dicom_problem(path, max_side)
    size = image_size(path, head, data)
    return None if size is None else _side_problem(size[0], size[1], max_side)
