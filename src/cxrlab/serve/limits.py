"""Bounded work for the service: a request-body cap enforced before the body is read whole, and a token check.

``BodyLimit`` is plain ASGI middleware: a declared ``Content-Length`` over the cap is answered 413 at once;
a body without one (chunked) is read in pieces and refused as soon as it passes the cap, so memory per request
never exceeds the cap whatever the client sends.
"""

from __future__ import annotations

import hmac
import json


async def _reply(send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` with 413 before they are read whole."""

    def __init__(self, app, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        limit_mb = self.max_bytes / 2**20
        if declared is not None:
            if not declared.isdigit():
                await _reply(send, 400, "invalid Content-Length header")
                return
            if int(declared) > self.max_bytes:
                await _reply(send, 413, f"upload of {int(declared) / 2**20:.1f} MB exceeds the {limit_mb:g} MB limit")
                return
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # client went away
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                await _reply(send, 413, f"upload exceeds the {limit_mb:g} MB limit")
                return
            more = message.get("more_body", False)
        body, replayed = b"".join(chunks), False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


def token_matches(expected: str | None, authorization: str | None, header_token: str | None) -> bool:
    """True when no token is required, or ``Authorization: Bearer T`` / ``X-Cxrlab-Token: T`` carries it."""
    if not expected:
        return True
    given = header_token or ""
    if authorization and authorization.lower().startswith("bearer "):
        given = authorization[7:].strip()
    return hmac.compare_digest(given.encode(), expected.encode())
