"""The FastAPI app: ``GET /`` (the page), ``GET /health``, ``GET /api/model``, ``POST /api/predict``,
``POST /api/heatmap``. The OpenAPI schema is off unless ``api_docs`` (``cxrlab serve --api-docs``) is set; then
``GET /openapi.json`` serves the schema alone (no Swagger/ReDoc page: those load scripts from a CDN) and sits
behind the token like ``/api``. ``/docs`` and ``/redoc`` never exist.

Security defaults live here and in ``cxrlab.serve.run``: uploads capped per request and in total in flight
before they are read (``BodyLimit`` with a ``ByteBudget``: 413 over the cap, 503 over the budget), pixel counts
capped before decoding, decoding and inference inside a compute slot (``Slots``: wait up to ``queue_timeout_s``,
then 503; a timed-out wait never loses a slot), a token on every ``/api`` call when one is set, CORS only for an
origin given explicitly, and a strict Content-Security-Policy on every response (everything the page loads
comes from this server).
"""

from __future__ import annotations

import contextlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cxrlab.errors import CxrlabError
from cxrlab.extras import require_extra
from cxrlab.serve.limits import BodyLimit, Busy, ByteBudget, Slots, token_matches

require_extra("serve", "fastapi")
if importlib.util.find_spec("python_multipart") is None:  # FastAPI parses uploads with python-multipart
    require_extra("serve", "multipart")

from fastapi import Depends, FastAPI, File, Header, HTTPException, Query, UploadFile  # noqa: E402
from fastapi.responses import FileResponse  # noqa: E402
from fastapi.staticfiles import StaticFiles  # noqa: E402
from starlette.concurrency import run_in_threadpool  # noqa: E402

from cxrlab.serve.decode import UploadError, decode_upload  # noqa: E402
from cxrlab.serve.model import DISCLAIMER, ServedModel  # noqa: E402

STATIC = Path(__file__).parent / "static"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


@dataclass
class Settings:
    """Limits and security options of the service."""

    max_upload_mb: float = 50.0
    """Largest request body (all files of one request together)."""
    max_pixels: int = 50_000_000
    """Largest decoded image (width x height), checked from the header before decoding."""
    max_files: int = 16
    """Most images in one ``POST /api/predict``."""
    concurrency: int = 2
    """Requests computing at once; others wait up to ``queue_timeout_s`` and then get 503."""
    queue_timeout_s: float = 10.0
    max_inflight_mb: float = 256.0
    """Request bodies held in memory at once over all connections; a request over it gets 503 (retry)."""
    api_docs: bool = False
    """Serve the OpenAPI schema at ``/openapi.json`` (behind the token when one is set); never a docs page."""
    batch_size: int = 8
    """Images per forward pass within one request."""
    token: str | None = None
    """When set, every ``/api`` call needs ``Authorization: Bearer TOKEN`` (or ``X-Cxrlab-Token``)."""
    cors_origin: str | None = None
    """One origin allowed to call the API from a browser (no CORS at all when None)."""

    def __post_init__(self) -> None:
        if self.max_inflight_mb < self.max_upload_mb:
            raise CxrlabError(f"--max-inflight-mb {self.max_inflight_mb:g} is below --max-upload-mb "
                              f"{self.max_upload_mb:g}: one largest upload could never be accepted; raise it")


class _Guard:
    """The per-app request guards: the token, the compute slots and bounded decoding."""

    def __init__(self, s: Settings) -> None:
        self.s, self.slots = s, Slots(s.concurrency)

    def auth(self, authorization: str | None = Header(None), x_cxrlab_token: str | None = Header(None)) -> None:
        if not token_matches(self.s.token, authorization, x_cxrlab_token):
            raise HTTPException(401, "missing or wrong token (Authorization: Bearer TOKEN)",
                                headers={"WWW-Authenticate": "Bearer"})

    @contextlib.asynccontextmanager
    async def slot(self):
        """Decoding and inference happen inside one slot, so their memory is bounded by ``concurrency`` too."""
        try:
            async with self.slots.hold(self.s.queue_timeout_s):
                yield
        except Busy:
            raise HTTPException(503, "busy: too many requests at once; retry shortly",
                                headers={"Retry-After": "1"}) from None

    async def decode_all(self, files: list[UploadFile]) -> list[Any]:
        if not files:
            raise HTTPException(422, "no image in the request (multipart field 'files')")
        if len(files) > self.s.max_files:
            raise HTTPException(413, f"{len(files)} images in one request; the limit is {self.s.max_files}")
        decoded = []
        for i, f in enumerate(files):
            data = await f.read()
            try:
                decoded.append(await run_in_threadpool(decode_upload, data, self.s.max_pixels))
            except UploadError as exc:
                raise HTTPException(exc.status, f"image {i + 1} ({_label(f.filename)}): {exc}") from None
        return decoded


def create_app(served: ServedModel, settings: Settings | None = None) -> FastAPI:
    """The app serving ``served`` under ``settings``."""
    s = settings or Settings()
    app = FastAPI(title="cxrlab serve", version="1", description=DISCLAIMER, docs_url=None, redoc_url=None,
                  openapi_url=None)
    guard = _Guard(s)
    auth, slot, decode_all = guard.auth, guard.slot, guard.decode_all
    app.state.slots, app.state.budget = guard.slots, ByteBudget(int(s.max_inflight_mb * 2**20))

    @app.middleware("http")
    async def headers(request, call_next):
        response = await call_next(request)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Content-Security-Policy"] = CSP
        return response

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/api/model", dependencies=[Depends(auth)])
    def model_info() -> dict[str, Any]:
        return {**served.describe(), "limits": {"max_upload_mb": s.max_upload_mb, "max_pixels": s.max_pixels,
                                                "max_files": s.max_files, "max_inflight_mb": s.max_inflight_mb}}

    @app.post("/api/predict", dependencies=[Depends(auth)])
    async def predict(files: list[UploadFile] = File(..., description="PNG, JPEG or DICOM images"),
                      heatmap: str | None = Query(None, description="also return a heat map of this finding")
                      ) -> dict[str, Any]:
        async with slot():
            decoded = await decode_all(files)
            results = await run_in_threadpool(served.predict, [d.gray for d in decoded], [d.raw for d in decoded],
                                              s.batch_size)
            for f, d, r in zip(files, decoded, results):
                r.update(filename=_label(f.filename), format=d.format, width=int(d.gray.shape[1]),
                         height=int(d.gray.shape[0]))
                if heatmap:
                    r["heatmap_png"] = await run_in_threadpool(_heatmap, served, d.gray, heatmap)
        return {"results": results, "disclaimer": DISCLAIMER}

    @app.post("/api/heatmap", dependencies=[Depends(auth)])
    async def heatmap(file: UploadFile = File(...), finding: str = Query(...),
                      method: str = Query("gradcam", pattern="^(gradcam|gradcam\\+\\+|hirescam|eigencam)$")
                      ) -> dict[str, Any]:
        async with slot():
            (d,) = await decode_all([file])
            png = await run_in_threadpool(_heatmap, served, d.gray, finding, method)
        return {"finding": finding, "method": method, "heatmap_png": png}

    if s.api_docs:
        @app.get("/openapi.json", include_in_schema=False, dependencies=[Depends(auth)])
        def openapi() -> dict[str, Any]:
            return app.openapi()

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    if s.cors_origin:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=[s.cors_origin], allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type", "X-Cxrlab-Token"])
    app.add_middleware(BodyLimit, max_bytes=int(s.max_upload_mb * 2**20), budget=app.state.budget)
    return app


def _label(filename: str | None) -> str:
    """The client's file name for messages only (never used as a path): last component, printable, short."""
    name = (filename or "upload").replace("\\", "/").rsplit("/", 1)[-1]
    return "".join(ch for ch in name if ch.isprintable())[:80] or "upload"


def _heatmap(served: ServedModel, gray, finding: str, method: str = "gradcam") -> str:
    try:
        return served.heatmap(gray, finding, method)
    except CxrlabError as exc:
        raise HTTPException(409 if served.model is None else 422, str(exc)) from None


