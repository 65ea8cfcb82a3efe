"""ONNX Runtime's intra-op threads never exceed the cores this process may use (its default counts the
machine's physical cores), and ``OMP_NUM_THREADS`` bounds them like torch's."""

from __future__ import annotations

import pytest

import cxrlab.utils

pytest.importorskip("onnxruntime")


def test_ort_threads_follow_the_free_cores(exported, monkeypatch):
    from cxrlab.deploy.onnx_engine import OnnxEngine

    path = exported[0]
    monkeypatch.delenv("CXRLAB_ORT_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(cxrlab.utils, "available_cores", lambda: 3)
    assert OnnxEngine(path).session.get_session_options().intra_op_num_threads == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert OnnxEngine(path).session.get_session_options().intra_op_num_threads == 1
    assert OnnxEngine(path, threads=2).session.get_session_options().intra_op_num_threads == 2
