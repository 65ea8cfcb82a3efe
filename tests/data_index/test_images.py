"""Decoder and resize tests on tiny synthetic files written in tmp_path."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from cxrlab.data.images import decode_raw, looks_like_xray, read_image, resize_image
from cxrlab.errors import CxrlabError


def _gradient(h: int = 20, w: int = 30) -> np.ndarray:
    return (np.arange(h * w).reshape(h, w) % 251).astype(np.uint8)


def test_png_8bit_gray(tmp_path):
    img = _gradient()
    Image.fromarray(img).save(tmp_path / "a.png")
    out = read_image(tmp_path / "a.png")
    assert out.dtype == np.uint8 and out.shape == (20, 30)
    np.testing.assert_array_equal(out, img)


def test_png_16bit_scaled_by_real_range(tmp_path):
    # 12-bit data in a 16-bit PNG: a plain >>8 would leave it nearly black
    img = np.linspace(100, 4095, 20 * 30).reshape(20, 30).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "a16.png"), img)
    assert decode_raw(tmp_path / "a16.png").dtype == np.uint16
    out = read_image(tmp_path / "a16.png")
    assert out.dtype == np.uint8 and out.min() == 0 and out.max() == 255


def test_rgb_rgba_palette_jpeg(tmp_path):
    gray = _gradient()
    Image.fromarray(np.stack([gray] * 3, -1)).save(tmp_path / "rgb.png")
    np.testing.assert_allclose(read_image(tmp_path / "rgb.png"), gray, atol=1)
    rgba = np.dstack([gray, gray, gray, np.full_like(gray, 255)])
    rgba[0, 0, 3] = 0  # transparent pixel composites to black
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    out = read_image(tmp_path / "rgba.png")
    assert out.shape == (20, 30) and out[0, 0] == 0 and abs(int(out[5, 5]) - int(gray[5, 5])) <= 1
    Image.fromarray(gray).convert("P").save(tmp_path / "pal.png")
    assert Image.open(tmp_path / "pal.png").mode == "P"
    np.testing.assert_allclose(read_image(tmp_path / "pal.png"), gray, atol=2)
    Image.fromarray(np.full((16, 16), 128, np.uint8)).save(tmp_path / "a.jpg", quality=95)
    out = read_image(tmp_path / "a.jpg")
    assert out.shape == (16, 16) and abs(int(out.mean()) - 128) <= 2


def _write_dicom(path, pixels, photometric="MONOCHROME2", slope=None, intercept=None, window=None):
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
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    if slope is not None:
        ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def test_dicom_monochrome1_is_inverted(tmp_path):
    px = np.tile(np.linspace(0, 4000, 16), (8, 1)).astype(np.uint16)
    m2 = read_image(_write_dicom(tmp_path / "m2.dcm", px))
    m1 = read_image(_write_dicom(tmp_path / "m1.dcm", px, photometric="MONOCHROME1"))
    assert m2[0, 0] == 0 and m2[0, -1] == 255
    assert m1[0, 0] == 255 and m1[0, -1] == 0


def test_dicom_rescale_and_window(tmp_path):
    px = np.tile(np.arange(16) * 100, (4, 1)).astype(np.uint16)  # 0..1500
    # slope/intercept map to -1000..2000 HU-like values; window 0..1000 clips both ends
    out = read_image(_write_dicom(tmp_path / "w.dcm", px, slope=2, intercept=-1000, window=(500, 1000)))
    values = 2 * px[0].astype(float) - 1000
    assert (out[0][values <= 0] == 0).all() and (out[0][values >= 1000] == 255).all()
    middle = out[0][(values > 0) & (values < 1000)]
    assert len(middle) > 0 and (np.diff(middle.astype(int)) > 0).all()


def test_dicom_without_magic_suffix_detected(tmp_path):
    px = np.tile(np.arange(8) * 10, (8, 1)).astype(np.uint16)
    path = _write_dicom(tmp_path / "noext", px)
    assert read_image(path).shape == (8, 8)


def test_compressed_dicom_names_plugin(tmp_path):
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEG2000Lossless

    path = _write_dicom(tmp_path / "c.dcm", np.zeros((8, 8), np.uint16))
    import pydicom

    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
    ds.PixelData = encapsulate([b"\xff\x4f\xff\x51garbage"])
    ds.save_as(path, enforce_file_format=True)
    with pytest.raises(CxrlabError, match="pylibjpeg|gdcm"):
        read_image(path)


def test_corrupt_zero_byte_and_truncated(tmp_path):
    (tmp_path / "zero.png").write_bytes(b"")
    with pytest.raises(CxrlabError, match="zero-byte"):
        read_image(tmp_path / "zero.png")
    (tmp_path / "junk.png").write_bytes(b"not an image at all")
    with pytest.raises(CxrlabError, match="junk.png"):
        read_image(tmp_path / "junk.png")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 64), dtype=np.uint8)).save(tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "trunc.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(CxrlabError, match="trunc.png"):
        read_image(tmp_path / "trunc.png")
    with pytest.raises(CxrlabError, match="missing.png"):
        read_image(tmp_path / "missing.png")


def test_resize_policies():
    img = np.full((40, 80), 200, np.uint8)
    lb = resize_image(img, 20, "letterbox")
    assert lb.shape == (20, 20) and lb[0, 10] == 0 and lb[10, 10] == 200  # black bars top and bottom
    cc = resize_image(img, 20, "center_crop")
    assert cc.shape == (20, 20) and (cc == 200).all()
    with pytest.raises(CxrlabError, match="letterbox"):
        resize_image(img, 20, "stretch")


def test_looks_like_xray():
    gray = _gradient(64, 64)
    assert looks_like_xray(gray)[0]
    assert looks_like_xray(np.stack([gray] * 3, -1))[0]
    rng = np.random.default_rng(0)  # blocks of many hues: a photo
    photo = cv2.resize(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8), (64, 64), interpolation=cv2.INTER_NEAREST)
    ok, reason = looks_like_xray(photo)
    assert not ok and "colour" in reason
    tinted = np.stack([gray, (gray * 0.8).astype(np.uint8), np.full_like(gray, 230)], -1)  # purple-tinted film
    assert looks_like_xray(tinted)[0]
    assert not looks_like_xray(np.zeros((64, 64), np.uint8))[0]


def test_jpeg_exif_orientation_applied(tmp_path):
    img = Image.fromarray(np.full((10, 20), 100, np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    img.save(tmp_path / "rot.jpg", exif=exif.tobytes())
    assert read_image(tmp_path / "rot.jpg").shape == (20, 10)
