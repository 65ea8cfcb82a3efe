"""Without the optional packages, the deployment verbs fail with one line naming the extra to install."""

from __future__ import annotations

import sys

import pytest

from cxrlab.errors import CxrlabError


def test_serve_without_fastapi_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "fastapi", None)  # as if not installed
    monkeypatch.delitem(sys.modules, "cxrlab.serve.app", raising=False)
    with pytest.raises(CxrlabError, match=r"cxrlab\[serve\]"):
        import cxrlab.serve.app  # noqa: F401


def test_onnx_engine_without_onnxruntime_names_the_extra(monkeypatch, tmp_path):
    from cxrlab.deploy.onnx_engine import OnnxEngine

    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    (tmp_path / "m.onnx").write_bytes(b"")
    with pytest.raises(CxrlabError, match=r"cxrlab\[onnx\]"):
        OnnxEngine(tmp_path / "m.onnx")


def test_help_lists_the_verbs_without_importing_them():
    import subprocess

    code = ("import sys; sys.modules['fastapi'] = None; sys.modules['onnxruntime'] = None; "
            "from cxrlab.cli import main; import contextlib, io; buf = io.StringIO()\n"
            "with contextlib.redirect_stdout(buf):\n"
            "    try: main(['--help'])\n"
            "    except SystemExit: pass\n"
            "assert 'export' in buf.getvalue() and 'serve' in buf.getvalue(), buf.getvalue()")
    subprocess.run([sys.executable, "-c", code], check=True)
