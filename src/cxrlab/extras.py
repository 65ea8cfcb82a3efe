"""Optional parts of cxrlab and the one-line error a user gets when an extra is not installed.

Each extra in ``pyproject.toml`` names the packages one feature needs. Code that uses an optional package calls
``require_extra`` instead of importing it directly, so a missing package is an error that names the
``pip install`` that fixes it, never an ``ImportError`` traceback.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from cxrlab.errors import CxrlabError

# extra -> (what it enables, the modules it provides). Keep in step with [project.optional-dependencies].
EXTRAS: dict[str, tuple[str, tuple[str, ...]]] = {
    "serve": ("the web service `cxrlab serve`", ("fastapi", "uvicorn", "multipart")),
    "onnx": ("ONNX export and ONNX Runtime inference (`cxrlab export`, `--engine onnx`)",
             ("onnx", "onnxruntime")),
    "track": ("experiment tracking (`train.log: tensorboard|mlflow`)", ("tensorboard", "mlflow")),
    "dicom": ("compressed DICOM images (JPEG, JPEG-LS, JPEG 2000)", ("pylibjpeg",)),
}


def install_hint(extra: str) -> str:
    """The command that installs ``extra``."""
    return f"pip install 'cxrlab[{extra}]'"


def require_extra(extra: str, module: str | None = None) -> ModuleType:
    """Import ``module`` (default: the extra's first module) or raise a one-line error naming the install.

    Args:
        extra: an extra name from ``EXTRAS`` (``serve``, ``onnx``, ``track``, ``dicom``).
        module: the module to import; must belong to the extra.

    Returns:
        The imported module.
    """
    if extra not in EXTRAS:
        raise ValueError(f"unknown extra {extra!r}; known: {', '.join(EXTRAS)}")
    feature, modules = EXTRAS[extra]
    module = module or modules[0]
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        missing = exc.name or module
        raise CxrlabError(f"{feature} needs the Python package '{missing}', which is not installed; "
                          f"install it with: {install_hint(extra)}") from None
