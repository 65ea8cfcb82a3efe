"""Bounded work for the service: request bodies under a per-request cap AND a global in-flight byte budget,
compute slots that cannot leak, and the token check.

``BodyLimit`` is plain ASGI middleware. A declared ``Content-Length`` over the cap is answered 413 at once; a
body without one (chunked) is read in pieces and refused as soon as it passes the cap. Every body is also charged
to one ``ByteBudget`` shared by all connections (reserved before it is read, released when the response is
done): when the bytes of the uploads in flight would pass the budget, the request is answered 503 with
``Retry-After`` instead of being buffered. So memory for request bodies is bounded by the budget, however many
clients upload at once, not by ``connections x cap``.

``Slots`` is the concurrency limit (an ``asyncio.Semaphore``) acquired with a timeout in a way that cannot lose
a slot: with ``asyncio.wait_for(sem.acquire(), t)`` the acquire can succeed in the same loop step as the timeout
or as the request's cancellation, and what happens then differs between Python versions (on 3.10/3.11 a slot
taken but reported as a timeout, or a cancellation swallowed). Here the acquire runs as its own task; on timeout
or cancellation the task is cancelled and, if it won the race anyway, its slot is given back at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json


class Busy(Exception):
    """No compute slot became free within the queue timeout."""


class Slots:
    """``capacity`` compute slots; ``async with slots.hold(timeout)`` raises ``Busy`` after ``timeout`` seconds."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._sem = asyncio.Semaphore(capacity)

    @property
    def free(self) -> int:
        """Slots not held right now (equals ``capacity`` when idle: the leak check)."""
        return self._sem._value  # asyncio exposes no public counter

    async def acquire(self, timeout: float) -> bool:
        """True when a slot was taken within ``timeout`` seconds; never leaves a slot taken otherwise."""
        task = asyncio.ensure_future(self._sem.acquire())
        try:
            done, _ = await asyncio.wait({task}, timeout=timeout)
        except BaseException:  # the request itself was cancelled (client gone): undo whatever the task did
            await self._abandon(task)
            raise
        if done:
            return True
        return await self._abandon(task)

    async def _abandon(self, task: asyncio.Future) -> bool:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if task.done() and not task.cancelled() and task.exception() is None:
            self._sem.release()  # it acquired between the timeout and the cancel: give the slot back
        return False

    def release(self) -> None:
        self._sem.release()

    @contextlib.asynccontextmanager
    async def hold(self, timeout: float):
        if not await self.acquire(timeout):
            raise Busy
        try:
            yield
        finally:
            self.release()


class ByteBudget:
    """Bytes of request bodies in flight across all connections, capped at ``limit`` (single event loop)."""

    def __init__(self, limit: int) -> None:
        self.limit, self.used, self.peak = limit, 0, 0

    def take(self, n: int) -> bool:
        if self.used + n > self.limit:
            return False
        self.used += n
        self.peak = max(self.peak, self.used)
        return True

    def give(self, n: int) -> None:
        self.used -= n


async def _reply(send, status: int, detail: str, retry_after: bool = False) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"connection", b"close")] + ([(b"retry-after", b"1")] if retry_after else [])
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` (413) or over what ``budget`` has left (503) before reading them."""

    def __init__(self, app, max_bytes: int, budget: ByteBudget | None = None) -> None:
        self.app, self.max_bytes = app, max_bytes
        self.budget = budget or ByteBudget(max_bytes)

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
        charged = 0
        try:
            if declared is not None:  # reserve it all before reading a byte
                if not self.budget.take(int(declared)):
                    await _busy(send, self.budget)
                    return
                charged = int(declared)
            body, charged = await self._read(receive, send, charged)
            if body is None:
                return
            await self.app(scope, _replay(body, receive), send)
        finally:
            self.budget.give(charged)

    async def _read(self, receive, send, charged: int) -> tuple[bytes | None, int]:
        """(body, bytes charged to the budget); body None when a reply was already sent or the client left."""
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # client went away
                return None, charged
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                await _reply(send, 413, f"upload exceeds the {self.max_bytes / 2**20:g} MB limit")
                return None, charged
            if size > charged:  # streamed (or longer than declared): charge as it arrives
                if not self.budget.take(size - charged):
                    await _busy(send, self.budget)
                    return None, charged
                charged = size
            more = message.get("more_body", False)
        return b"".join(chunks), charged


async def _busy(send, budget: ByteBudget) -> None:
    await _reply(send, 503, f"busy: {budget.limit / 2**20:g} MB of uploads already in flight; retry shortly",
                 retry_after=True)


def _replay(body: bytes, receive):
    replayed = False

    async def replay():
        nonlocal replayed
        if replayed:
            return await receive()
        replayed = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


def token_matches(expected: str | None, authorization: str | None, header_token: str | None) -> bool:
    """True when no token is required, or ``Authorization: Bearer T`` / ``X-Cxrlab-Token: T`` carries it."""
    if not expected:
        return True
    given = header_token or ""
    if authorization and authorization.lower().startswith("bearer "):
        given = authorization[7:].strip()
    return hmac.compare_digest(given.encode(), expected.encode())
