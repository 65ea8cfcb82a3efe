"""Service hardening: API docs off by default and behind the token, compute slots that cannot leak, and a global
byte budget for request bodies in flight."""

from __future__ import annotations

import asyncio
import random

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from cxrlab.serve.limits import BodyLimit, ByteBudget, Slots  # noqa: E402


@pytest.fixture(scope="module")
def served(tiny_run):
    from cxrlab.serve.model import ServedModel

    return ServedModel(tiny_run[0])


def test_api_docs_off_by_default(served):
    from cxrlab.serve.app import create_app

    client = TestClient(create_app(served))
    for path in ("/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"):
        assert client.get(path).status_code == 404, path
    assert "cdn" not in client.get("/").text.lower()


def test_api_docs_when_asked_are_the_schema_only_behind_the_token(served):
    from cxrlab.serve.app import Settings, create_app

    client = TestClient(create_app(served, Settings(api_docs=True, token="s3cret")))
    assert client.get("/openapi.json").status_code == 401
    r = client.get("/openapi.json", headers={"Authorization": "Bearer s3cret"})
    assert r.status_code == 200 and "/api/predict" in r.json()["paths"]
    assert "content-security-policy" in r.headers
    assert client.get("/docs").status_code == 404 and client.get("/redoc").status_code == 404
    open_client = TestClient(create_app(served, Settings(api_docs=True)))
    assert open_client.get("/openapi.json").status_code == 200  # no token set: loopback use


def test_budget_below_one_upload_is_refused():
    from cxrlab.errors import CxrlabError
    from cxrlab.serve.app import Settings

    with pytest.raises(CxrlabError, match="--max-inflight-mb"):
        Settings(max_upload_mb=50, max_inflight_mb=10)


async def _slot_storm(capacity: int, waiters: int, seed: int) -> tuple[int, int]:
    """Hold and release slots while many waiters time out at random moments; returns (free, capacity)."""
    rng = random.Random(seed)
    slots = Slots(capacity)

    async def user():
        await asyncio.sleep(rng.choice([0, 0, 1e-4, 1e-3]))
        if await slots.acquire(timeout=rng.choice([0, 1e-5, 1e-4, 5e-4, 2e-3])):
            await asyncio.sleep(rng.choice([0, 1e-4, 1e-3]))
            slots.release()

    await asyncio.gather(*(user() for _ in range(waiters)))
    return slots.free, slots.capacity


@pytest.mark.parametrize("seed", range(5))
def test_forced_timeouts_never_lose_a_slot(seed):
    free, capacity = asyncio.run(_slot_storm(capacity=2, waiters=300, seed=seed))
    assert free == capacity


def test_timeout_racing_a_release_gives_the_slot_back():
    async def scenario():
        slots = Slots(1)
        assert await slots.acquire(1.0)
        waiter = asyncio.ensure_future(slots.acquire(timeout=0.01))
        await asyncio.sleep(0)  # the waiter is queued on the semaphore
        # release exactly when the wait times out: the acquire may win, the wait still reports a timeout
        asyncio.get_running_loop().call_later(0.01, slots.release)
        got = await waiter
        if got:
            slots.release()
        return slots.free

    for _ in range(20):
        assert asyncio.run(scenario()) == 1


def test_cancelled_waiter_keeps_no_slot():
    async def scenario():
        slots = Slots(1)
        assert await slots.acquire(1.0)
        waiter = asyncio.ensure_future(slots.acquire(timeout=5))
        await asyncio.sleep(0)
        slots.release()  # the waiter is woken ...
        waiter.cancel()  # ... and its request cancelled before it runs
        with pytest.raises(asyncio.CancelledError):
            await waiter
        return slots.free

    assert asyncio.run(scenario()) == 1


def _asgi_post(limit: BodyLimit, body_parts: list[bytes], declared: bool, sent: list):
    scope = {"type": "http", "method": "POST",
             "headers": [(b"content-length", str(sum(map(len, body_parts))).encode())] if declared else []}
    parts = [{"type": "http.request", "body": b, "more_body": i < len(body_parts) - 1}
             for i, b in enumerate(body_parts)]

    async def receive():
        return parts.pop(0) if parts else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    return limit(scope, receive, send)


def test_global_budget_answers_503_and_is_returned():
    async def scenario():
        release, inside = asyncio.Event(), []

        async def app(scope, receive, send):
            inside.append((await receive())["body"])
            await release.wait()

        budget = ByteBudget(1000)
        limit = BodyLimit(app, max_bytes=800, budget=budget)
        first_sent, second_sent, third_sent = [], [], []
        first = asyncio.ensure_future(_asgi_post(limit, [b"a" * 600], True, first_sent))
        await asyncio.sleep(0.01)
        assert budget.used == 600 and inside == [b"a" * 600]
        await _asgi_post(limit, [b"b" * 600], True, second_sent)  # declared: refused before reading
        await _asgi_post(limit, [b"c" * 300, b"c" * 300], False, third_sent)  # streamed: refused on the way
        release.set()
        await first
        return budget, second_sent, third_sent

    budget, second, third = asyncio.run(scenario())
    assert second[0]["status"] == 503 and (b"retry-after", b"1") in second[0]["headers"]
    assert third[0]["status"] == 503 and budget.used == 0 and budget.peak <= 1000


def test_cap_still_answers_413_and_budget_is_returned():
    async def app(scope, receive, send):
        raise AssertionError("must not be reached")

    budget, sent = ByteBudget(10_000), []
    asyncio.run(_asgi_post(BodyLimit(app, max_bytes=1000, budget=budget), [b"x" * 600] * 3, False, sent))
    assert sent[0]["status"] == 413 and budget.used == 0


def test_cli_passes_api_docs_and_budget(monkeypatch, tiny_run):
    import cxrlab.serve.run as run_module
    from cxrlab.cli import main

    seen = {}
    monkeypatch.setattr(run_module, "serve", lambda source, **kw: seen.update(kw))
    assert main(["serve", str(tiny_run[0]), "--api-docs", "--max-inflight-mb", "64", "--max-upload-mb", "8"]) == 0
    assert seen["api_docs"] is True and seen["max_inflight_mb"] == 64 and seen["max_upload_mb"] == 8
    assert seen["laterality"] is None  # a run's gate: linear unless asked
    assert main(["serve", str(tiny_run[0]), "--ood-laterality", "cnn"]) == 0 and seen["laterality"] == "cnn"
    app = run_module.build(tiny_run[0], api_docs=True, max_inflight_mb=64)
    assert TestClient(app).get("/openapi.json").status_code == 200
