"""``cxrlab serve``: a local web page and JSON API for one trained run or exported ONNX model.

``cxrlab.serve.model.ServedModel`` (the model, its contract, OOD gate and heat maps), ``cxrlab.serve.app.create_app``
(the FastAPI app) and ``cxrlab.serve.run.serve`` (uvicorn with the security defaults). FastAPI and uvicorn are
the ``serve`` extra: nothing here is imported by ``cxrlab --help``.
"""
