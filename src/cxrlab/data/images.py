"""Image decoding: PNG (8/16-bit, gray/RGB/RGBA/palette), JPEG and DICOM to uint8 grayscale, plus resizing.

Everything that reads a chest X-ray from disk goes through :func:`read_image`, so every stage sees the same
pixels. 16-bit images are scaled by their real range (a 12-bit image stored in 16 bits would be nearly black
after a plain ``>> 8``). DICOM goes through pydicom: rescale slope/intercept (modality LUT), then the VOI LUT
or window, then MONOCHROME1 is inverted so bone is always bright.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from cxrlab.errors import CxrlabError
from cxrlab.extras import install_hint

DICOM_SUFFIXES = (".dcm", ".dicom", ".dic")
RESIZE_POLICIES = ("letterbox", "center_crop")
# Mean colour saturation (0-255) above which an RGB image is a photo, not a gray X-ray saved as RGB.
MAX_XRAY_SATURATION = 20.0
# Share of colour variance along one direction above which a saturated image is a tinted gray X-ray.
MIN_TINT_RATIO = 0.97


def is_dicom(path: str | Path) -> bool:
    """True when the file has a DICOM suffix or the ``DICM`` magic at byte 128."""
    path = Path(path)
    if path.suffix.lower() in DICOM_SUFFIXES:
        return True
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def decode_raw(path: str | Path) -> np.ndarray:
    """Decode an image as stored: (H, W) gray or (H, W, 3) RGB, uint8 or uint16 (float for DICOM).

    Alpha is composited over black (the X-ray background); palettes are expanded. Raises ``CxrlabError``.
    """
    path = Path(path)
    if is_dicom(path):
        return _decode_dicom(path)
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise CxrlabError(f"{path}: cannot read file ({exc.strerror}); check the path and permissions") from None
    if data.size == 0:
        raise CxrlabError(f"{path}: zero-byte file; re-download or remove it from the dataset")
    # JPEG: IMREAD_COLOR honours the EXIF orientation (phone photos of films); UNCHANGED keeps 16-bit PNGs.
    flags = cv2.IMREAD_COLOR if data[:2].tobytes() == b"\xff\xd8" else cv2.IMREAD_UNCHANGED
    img = cv2.imdecode(data, flags)
    if img is None or img.size == 0:
        raise CxrlabError(f"{path}: not a readable PNG/JPEG/DICOM image (corrupt or truncated); re-download it")
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 3:
        img = _to_rgb(img)
    return img


def _to_rgb(img: np.ndarray) -> np.ndarray:
    """BGR/BGRA (cv2 order) -> RGB, compositing alpha over black."""
    channels = img.shape[2]
    if channels == 4:
        alpha = img[:, :, 3]
        full = np.iinfo(img.dtype).max
        color = img[:, :, 2::-1]
        if alpha.min() < full:  # only pay for the multiply when alpha is actually used
            color = (color.astype(np.float32) * (alpha[:, :, None] / float(full))).astype(img.dtype)
        return np.ascontiguousarray(color)
    if channels == 2:  # gray + alpha (cv2 rarely yields this, but be safe)
        return img[:, :, 0]
    return np.ascontiguousarray(img[:, :, ::-1])


def to_gray_uint8(img: np.ndarray) -> np.ndarray:
    """(H, W[, 3]) uint8/uint16/float -> (H, W) uint8; non-uint8 data scaled by its real min..max."""
    if img.ndim == 3:
        if img.dtype == np.uint8:
            return cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2GRAY)
        img = img.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    if img.dtype == np.uint8:
        return np.ascontiguousarray(img)
    img = img.astype(np.float32)
    lo, hi = float(img.min()), float(img.max())
    if hi <= lo:
        return np.zeros(img.shape, dtype=np.uint8)
    return np.clip((img - lo) * (255.0 / (hi - lo)) + 0.5, 0, 255).astype(np.uint8)


def read_image(path: str | Path) -> np.ndarray:
    """Read any supported image as uint8 (H, W) grayscale; raises ``CxrlabError`` naming the file."""
    return to_gray_uint8(decode_raw(path))


def _decode_dicom(path: Path) -> np.ndarray:
    """DICOM -> float32 (H, W) where larger means brighter (bone bright), or uint8 (H, W, 3) for colour."""
    import pydicom
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    try:
        ds = pydicom.dcmread(path)
    except Exception as exc:  # pydicom raises many types for a bad file
        raise CxrlabError(f"{path}: not a readable DICOM file ({type(exc).__name__}: {exc}); re-export it") from None
    if "PixelData" not in ds:
        raise CxrlabError(f"{path}: DICOM file has no pixel data (a report or structured document?); remove it")
    try:
        arr = ds.pixel_array
    except Exception as exc:
        raise CxrlabError(_dicom_pixel_error(path, ds, exc)) from None
    if int(getattr(ds, "NumberOfFrames", 1) or 1) > 1:
        arr = arr[0]  # multi-frame: the first frame is the radiograph
    photometric = str(getattr(ds, "PhotometricInterpretation", "MONOCHROME2")).upper()
    if arr.ndim == 3:  # colour DICOM (pydicom converts YBR to RGB by default)
        return arr.astype(np.uint8) if arr.dtype == np.uint8 else to_gray_uint8(arr)
    arr = apply_modality_lut(arr, ds)
    arr = apply_voi_lut(arr, ds)
    arr = np.asarray(arr, dtype=np.float32)
    if photometric == "MONOCHROME1":  # low values are white in MONOCHROME1
        arr = arr.max() + arr.min() - arr
    return arr


def _dicom_pixel_error(path: Path, ds, exc: Exception) -> str:
    tsyntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    name = getattr(tsyntax, "name", str(tsyntax))
    if tsyntax is not None and getattr(tsyntax, "is_compressed", False):
        return (
            f"{path}: compressed DICOM ({name}) needs a decoder plugin; "
            f"install one with `{install_hint('dicom')}` (or `pip install python-gdcm`)"
        )
    return f"{path}: cannot decode DICOM pixel data ({type(exc).__name__}: {exc}); re-export the file"


def resize_image(img: np.ndarray, size: int, policy: str = "letterbox") -> np.ndarray:
    """Resize a uint8 (H, W) image to (size, size) with area interpolation.

    ``letterbox`` pads the short side with black to a centred square first (keeps the whole image);
    ``center_crop`` keeps the central square (loses the long side's margins).
    """
    if policy not in RESIZE_POLICIES:
        raise CxrlabError(f"resize policy {policy!r} is not one of {', '.join(RESIZE_POLICIES)}")
    if img.ndim != 2:
        raise CxrlabError(f"resize_image expects a 2-D grayscale image, got shape {img.shape}")
    h, w = img.shape
    if policy == "letterbox" and h != w:
        side = max(h, w)
        square = np.zeros((side, side), dtype=img.dtype)
        top, left = (side - h) // 2, (side - w) // 2
        square[top : top + h, left : left + w] = img
        img = square
    elif policy == "center_crop" and h != w:
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        img = img[top : top + side, left : left + side]
    if img.shape[0] == size:
        return np.ascontiguousarray(img)
    interp = cv2.INTER_AREA if img.shape[0] > size else cv2.INTER_LINEAR
    return cv2.resize(np.ascontiguousarray(img), (size, size), interpolation=interp)


def looks_like_xray(img: np.ndarray) -> tuple[bool, str]:
    """Cheap check on a decoded image (gray or RGB): ``(ok, reason)``.

    A chest X-ray saved as RGB has equal channels (or, when tinted, colours along one line); a colour photo has
    strong saturation in many hues. A constant image carries no picture at all, nor does one with NaN pixels.
    """
    if img.dtype.kind == "f" and not np.isfinite(img).all():
        return False, "non-finite pixels (NaN or infinity)"
    if img.ndim == 3:
        sample = img[:: max(1, img.shape[0] // 128), :: max(1, img.shape[1] // 128)].astype(np.float32)
        if sample.max() > 255:
            sample = sample * (255.0 / sample.max())
        saturation = float((sample.max(axis=2) - sample.min(axis=2)).mean())
        if saturation > MAX_XRAY_SATURATION:
            # A tinted X-ray (a film photographed under coloured light) is still one gray ramp: its colours lie
            # on a line, so the first principal component holds nearly all the variance. A photo's do not.
            pixels = sample.reshape(-1, 3)
            eig = np.linalg.eigvalsh(np.cov(pixels.T) + 1e-6 * np.eye(3))
            if eig[-1] / eig.sum() < MIN_TINT_RATIO:
                return False, f"colour image (mean saturation {saturation:.0f}/255, many hues): a photo, not an X-ray"
        gray = sample.mean(axis=2)
    else:
        gray = img[:: max(1, img.shape[0] // 128), :: max(1, img.shape[1] // 128)].astype(np.float32)
    if float(gray.std()) < 1e-3 * max(1.0, float(gray.max())):
        return False, "constant image (no contrast)"
    return True, ""
