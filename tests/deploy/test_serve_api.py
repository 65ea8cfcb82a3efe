"""The serve API through FastAPI's test client: formats, hostile uploads, OOD flag, limits and the token."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from .images import colour_photo, dicom_of, gray_of, jpeg_of, noise_png, phantom_png  # noqa: E402


@pytest.fixture(scope="module")
def served(tiny_run):
    from cxrlab.serve.model import ServedModel

    return ServedModel(tiny_run[0])


@pytest.fixture(scope="module")
def client(served):
    from cxrlab.serve.app import Settings, create_app

    return TestClient(create_app(served, Settings(max_upload_mb=1.0, max_pixels=4_000_000)))


@pytest.fixture(scope="module")
def png(tiny_run):
    return phantom_png(tiny_run[1], 0)


def _post(client, *files, **params):
    return client.post("/api/predict", params=params,
                       files=[("files", (name, data, "application/octet-stream")) for name, data in files])


def test_health_model_and_page(client, served):
    assert client.get("/health").json() == {"status": "ok"}
    info = client.get("/api/model").json()
    assert info["classes"] == served.classes and info["engine"] == "torch" and info["heatmaps"]
    assert info["operating"]["chosen_on"] == "validation" and info["ood"]["method"] == "mahalanobis"
    page = client.get("/")
    assert page.status_code == 200 and "Research use only" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert client.get("/openapi.json").status_code == 404  # off unless --api-docs
    assert "access-control-allow-origin" not in client.get("/api/model", headers={"Origin": "http://x"}).headers


def test_png_jpeg_and_dicom_score_alike(client, png):
    gray = gray_of(png)
    r = _post(client, ("a.png", png), ("b.jpg", jpeg_of(gray)), ("c.dcm", dicom_of(gray)))
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["format"] for x in results] == ["png", "jpeg", "dicom"]
    probs = [{f["class"]: f["probability"] for f in x["findings"]} for x in results]
    for k in probs[0]:
        assert abs(probs[0][k] - probs[2][k]) < 0.05 and abs(probs[0][k] - probs[1][k]) < 0.05
    first = results[0]
    assert [f["probability"] for f in first["findings"]] == sorted((f["probability"] for f in first["findings"]),
                                                                   reverse=True)
    assert all(f["threshold"] is not None and isinstance(f["above"], bool) for f in first["findings"])
    assert not first["ood"]["flagged"] and first["ood"]["score"] <= first["ood"]["threshold"] + 1e-6
    assert r.json()["disclaimer"].startswith("Research use only")


def test_predict_matches_the_run_on_the_same_image(served, png):
    import torch

    from cxrlab.deploy.operating import probabilities

    gray = gray_of(png)
    x, _ = served.preprocess(gray)
    with torch.no_grad():
        expected = probabilities(served.model(x[None]).numpy(), served.task)[0]
    got = {f["class"]: f["uncalibrated"] for f in served.predict([gray], [gray])[0]["findings"]}
    np.testing.assert_allclose([got[c] for c in served.classes], expected, atol=1e-6)


def test_extension_is_ignored_content_is_sniffed(client, png):
    assert _post(client, ("scan.dcm", png)).json()["results"][0]["format"] == "png"
    r = _post(client, ("fake.png", b"GIF89a" + b"\0" * 100))
    assert r.status_code == 415 and "by content" in r.json()["detail"]
    assert _post(client, ("notes.png", b"hello, not an image")).status_code == 415


def test_truncated_png_and_dicom_without_pixels(client, png):
    r = _post(client, ("cut.png", png[: len(png) // 2]))
    assert r.status_code == 422 and "truncated" in r.json()["detail"]
    jpeg = jpeg_of(gray_of(png))
    assert _post(client, ("cut.jpg", jpeg[: len(jpeg) // 2])).status_code == 422
    r = _post(client, ("report.dcm", dicom_of(None)))
    assert r.status_code == 422 and "no image" in r.json()["detail"]
    assert "/tmp" not in r.json()["detail"]  # server paths never leak into messages


def test_oversized_upload_is_413_before_reading(client):
    big = b"\x89PNG\r\n\x1a\n" + b"\0" * (2 * 2**20)
    r = _post(client, ("big.png", big))
    assert r.status_code == 413 and "MB limit" in r.json()["detail"]


def test_chunked_upload_over_the_cap_is_413():
    import asyncio

    from cxrlab.serve.limits import BodyLimit

    reached = []

    async def app(scope, receive, send):
        reached.append(True)

    sent = []
    chunks = [{"type": "http.request", "body": b"x" * 600, "more_body": True}] * 5

    async def receive():
        return chunks.pop(0)

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "headers": []}  # no Content-Length: streamed
    asyncio.run(BodyLimit(app, max_bytes=1000)(scope, receive, send))
    assert sent[0]["status"] == 413 and not reached and len(chunks) == 3  # stopped after the cap


def test_decompression_bomb_is_refused_from_the_header(client):
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", 30000, 30000, 8, 0, 0, 0, 0)  # 900 MP declared in a tiny file
    bomb = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    r = _post(client, ("bomb.png", bomb))
    assert r.status_code == 413 and "pixels" in r.json()["detail"]


def test_colour_photo_and_noise_are_flagged(client, png):
    r = _post(client, ("photo.png", colour_photo()), ("noise.png", noise_png()), ("cxr.png", png))
    ood = [x["ood"] for x in r.json()["results"]]
    assert ood[0]["flagged"] and any("colour" in why for why in ood[0]["reasons"])
    assert ood[1]["flagged"] and not ood[2]["flagged"]


def test_heatmap_endpoint_and_inline(client, png, served):
    finding = served.classes[0]
    r = client.post("/api/heatmap", params={"finding": finding}, files={"file": ("a.png", png)})
    assert r.status_code == 200, r.text
    import base64

    import cv2

    img = cv2.imdecode(np.frombuffer(base64.b64decode(r.json()["heatmap_png"]), np.uint8), cv2.IMREAD_UNCHANGED)
    assert img.shape[2] == 4
    r = client.post("/api/heatmap", params={"finding": "Nope"}, files={"file": ("a.png", png)})
    assert r.status_code == 422 and "valid" in r.json()["detail"]
    r = client.post("/api/heatmap", params={"finding": finding, "method": "../../etc"}, files={"file": ("a.png", png)})
    assert r.status_code == 422
    assert "heatmap_png" in _post(client, ("a.png", png), heatmap=finding).json()["results"][0]


def test_too_many_files_and_no_file(client, png):
    assert _post(client, *[("a.png", png)] * 17).status_code == 413
    assert client.post("/api/predict").status_code == 422


def test_busy_server_answers_503(served, png):
    import threading

    from cxrlab.serve.app import Settings, create_app

    gate, entered = threading.Event(), threading.Event()
    original = served.predict

    class Slow:
        def __getattr__(self, name):
            return getattr(served, name)

        def predict(self, *a, **k):
            entered.set()
            gate.wait(10)
            return original(*a, **k)

    client = TestClient(create_app(Slow(), Settings(concurrency=1, queue_timeout_s=0.2)))
    results = []
    first = threading.Thread(target=lambda: results.append(_post(client, ("a.png", png)).status_code))
    first.start()
    assert entered.wait(10)  # the first request holds the only slot
    second = _post(client, ("a.png", png))
    gate.set()
    first.join()
    assert second.status_code == 503 and results == [200]


def test_token_required_off_loopback(tiny_run, png, monkeypatch, capsys):
    from cxrlab.errors import CxrlabError
    from cxrlab.serve.run import build

    monkeypatch.delenv("CXRLAB_SERVE_TOKEN", raising=False)
    with pytest.raises(CxrlabError, match="--token"):
        build(tiny_run[0], host="0.0.0.0")
    monkeypatch.setenv("CXRLAB_SERVE_TOKEN", "s3cret")
    client = TestClient(build(tiny_run[0], host="0.0.0.0"))
    assert "warning: serving on 0.0.0.0" in capsys.readouterr().err
    assert client.get("/api/model").status_code == 401
    assert client.get("/api/model", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/api/model", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert _post(client, ("a.png", png)).status_code == 401
    assert client.get("/health").status_code == 200


def test_cors_only_when_asked(served):
    from cxrlab.serve.app import Settings, create_app

    client = TestClient(create_app(served, Settings(cors_origin="http://lab.example")))
    r = client.get("/api/model", headers={"Origin": "http://lab.example"})
    assert r.headers["access-control-allow-origin"] == "http://lab.example"
    assert "access-control-allow-origin" not in client.get("/api/model", headers={"Origin": "http://evil"}).headers


def test_only_safetensors_or_onnx_are_served(tmp_path):
    from cxrlab.errors import CxrlabError
    from cxrlab.serve.model import ServedModel

    (tmp_path / "model.pt").write_bytes(b"pickle")
    with pytest.raises(CxrlabError, match="never loaded"):
        ServedModel(tmp_path / "model.pt")


def test_onnx_model_serves_without_heatmaps(exported, png):
    from cxrlab.serve.app import create_app
    from cxrlab.serve.model import ServedModel

    served = ServedModel(exported[0])
    client = TestClient(create_app(served))
    info = client.get("/api/model").json()
    assert info["engine"] == "onnx" and not info["heatmaps"] and info["ood"] is not None
    r = _post(client, ("a.png", png))
    assert r.status_code == 200 and not r.json()["results"][0]["ood"]["flagged"]
    r = client.post("/api/heatmap", params={"finding": served.classes[0]}, files={"file": ("a.png", png)})
    assert r.status_code == 409 and "need the run" in r.json()["detail"]


def test_no_temp_files_left(client, png, tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    _post(client, ("a.png", png), ("c.dcm", dicom_of(gray_of(png))))
    assert list(tmp_path.iterdir()) == []
    json.dumps(client.get("/api/model").json())  # serialisable, no numpy leftovers


def test_serving_a_run_writes_nothing_in_it(tiny_run, png):
    from cxrlab.serve.app import create_app
    from cxrlab.serve.model import ServedModel

    run = tiny_run[0]
    before = sorted((p, p.stat().st_mtime_ns) for p in run.rglob("*"))
    client = TestClient(create_app(ServedModel(run)))
    assert _post(client, ("a.png", png)).status_code == 200
    assert sorted((p, p.stat().st_mtime_ns) for p in run.rglob("*")) == before


def test_heatmaps_and_predictions_in_parallel_threads_agree_with_sequential(served, png):
    from concurrent.futures import ThreadPoolExecutor

    gray = gray_of(png)
    finding = served.classes[0]
    want_map, want_rows = served.heatmap(gray, finding), served.predict([gray], [gray])[0]["findings"]
    jobs = [(served.heatmap, (gray, finding)) if i % 2 else (served.predict, ([gray], [gray])) for i in range(12)]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda job: job[0](*job[1]), jobs))
    for i, r in enumerate(results):
        if i % 2:
            assert r == want_map
        else:
            assert r[0]["findings"] == want_rows


def test_serve_cli_refuses_open_host_without_token_and_pickles(tiny_run, tmp_path, monkeypatch, capsys):
    from cxrlab.cli import main

    monkeypatch.delenv("CXRLAB_SERVE_TOKEN", raising=False)
    assert main(["serve", str(tiny_run[0]), "--host", "0.0.0.0"]) == 2
    (tmp_path / "model.pth").write_bytes(b"x")
    assert main(["serve", str(tmp_path / "model.pth")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "--token" in err[0] and "never loaded" in err[1]


def test_flagged_image_gets_its_calls_withheld(client, png):
    r = _post(client, ("noise.png", noise_png()), ("cxr.png", png)).json()["results"]
    out, ok = r
    assert out["ood"]["flagged"] and out["calls"] == "withheld" and "out of distribution" in out["withheld_reason"]
    assert all(f["above"] is None and f["withheld"] for f in out["findings"])
    assert all(0 <= f["probability"] <= 1 for f in out["findings"])  # still shown, for reference
    assert ok["calls"] == "made" and ok["withheld_reason"] is None
    assert all(isinstance(f["above"], bool) and not f["withheld"] for f in ok["findings"])
