"""Upload fixtures as bytes: PNG, JPEG and DICOM chest images, a colour photo, broken files."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np


def phantom_png(index_dir: Path, k: int = 0) -> bytes:
    """The k-th phantom image of the run's index, as stored."""
    import pandas as pd

    frame = pd.read_csv(index_dir / "index.csv")
    path = Path(frame["path"].iloc[k])
    path = path if path.is_absolute() else index_dir / path
    if not path.exists():
        import json

        path = Path(json.loads((index_dir / "index.json").read_text())["root"]) / frame["path"].iloc[k]
    return path.read_bytes()


def gray_of(png: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE)


def jpeg_of(gray: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", gray, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()


def dicom_of(gray: np.ndarray | None) -> bytes:
    """A DICOM of ``gray`` (12-bit), or a DICOM with no image at all when None."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality = "DX"
    if gray is not None:
        ds.Rows, ds.Columns = gray.shape
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.PixelData = (gray.astype(np.uint16) * 16).tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def colour_photo(size: int = 96, seed: int = 0) -> bytes:
    """A saturated many-hued picture (a stand-in for a phone photo) as PNG."""
    rng = np.random.default_rng(seed)
    img = np.zeros((size, size, 3), np.uint8)
    for _ in range(12):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        centre = tuple(int(c) for c in rng.integers(0, size, 2))
        cv2.circle(img, centre, int(rng.integers(size // 10, size // 3)), colour, -1)
    return cv2.imencode(".png", img)[1].tobytes()


def noise_png(size: int = 64, seed: int = 0) -> bytes:
    return cv2.imencode(".png", np.random.default_rng(seed).integers(0, 256, (size, size), dtype=np.uint8))[1].tobytes()
