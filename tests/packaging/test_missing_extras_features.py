"""Each feature behind an extra, used without it, stops with one line naming `pip install 'cxrlab[extra]'`."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from cxrlab.cli import main
from cxrlab.config import load_config
from cxrlab.errors import CxrlabError
from cxrlab.extras import install_hint


def _hide(monkeypatch, *modules: str) -> None:
    for module in modules:
        monkeypatch.setitem(sys.modules, module, None)  # `import module` now raises ImportError


def test_serve_without_the_serve_extra(monkeypatch, tmp_path, capsys):
    _hide(monkeypatch, "uvicorn", "fastapi")
    assert main(["serve", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and install_hint("serve") in err


def test_onnx_export_and_engine_without_the_onnx_extra(monkeypatch, tmp_path):
    from cxrlab.deploy.export import to_onnx
    from cxrlab.deploy.onnx_engine import default_providers

    _hide(monkeypatch, "onnx", "onnxruntime")
    with pytest.raises(CxrlabError, match=r"pip install 'cxrlab\[onnx\]'"):
        to_onnx(None, None, tmp_path / "m.onnx")
    with pytest.raises(CxrlabError, match=r"pip install 'cxrlab\[onnx\]'"):
        default_providers()


@pytest.mark.parametrize("kind,module", [("tensorboard", "tensorboard"), ("mlflow", "mlflow")])
def test_tracking_without_the_track_extra(monkeypatch, tmp_path, kind, module):
    from cxrlab.train.tracking import Tracker

    _hide(monkeypatch, module)
    cfg = load_config(None, [f"train.log={kind}"])
    with pytest.raises(CxrlabError, match=r"pip install 'cxrlab\[track\]'"):
        Tracker(kind, cfg, tmp_path)


def test_compressed_dicom_without_the_dicom_extra(tmp_path):
    pytest.importorskip("pydicom")
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGBaseline8Bit, SecondaryCaptureImageStorage, generate_uid

    from cxrlab.data.images import read_image

    if any(_importable(m) for m in ("pylibjpeg", "gdcm")):
        pytest.skip("a DICOM decoder plugin is installed here")
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds = FileDataset(str(tmp_path / "x.dcm"), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.Rows, ds.Columns, ds.SamplesPerPixel = "DX", 8, 8, 1
    ds.PhotometricInterpretation, ds.BitsAllocated, ds.BitsStored, ds.HighBit = "MONOCHROME2", 8, 8, 7
    ds.PixelRepresentation = 0
    ds.PixelData = encapsulate([np.full(16, 0xFF, np.uint8).tobytes()])  # not a real JPEG stream
    ds["PixelData"].is_undefined_length = True
    ds.save_as(tmp_path / "x.dcm", enforce_file_format=True)
    with pytest.raises(CxrlabError, match=r"pip install 'cxrlab\[dicom\]'"):
        read_image(tmp_path / "x.dcm")


def _importable(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True
