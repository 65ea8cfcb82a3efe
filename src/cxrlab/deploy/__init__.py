"""Deployment: ONNX export with its preprocessing contract, an ONNX Runtime engine, and the out-of-distribution gate.

``cxrlab export`` (:func:`cxrlab.deploy.export.export_run`), ``cxrlab predict --engine onnx``
(:class:`cxrlab.deploy.onnx_engine.OnnxEngine`) and ``cxrlab serve`` (``cxrlab.serve``) build on this package.
"""
