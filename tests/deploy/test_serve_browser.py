"""A real browser (Debian's Chromium driven by Playwright) uploads an X-ray and sees the table and heat map."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from .images import noise_png, phantom_png

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tiny_run):
    """The run served by uvicorn on a free loopback port, in a thread; yields the base URL."""
    uvicorn = pytest.importorskip("uvicorn")
    from cxrlab.serve.run import build

    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(build(tiny_run[0]), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not srv.started and time.time() < deadline:
        time.sleep(0.05)
    assert srv.started, "server did not start"
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(10)


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium not installed (apt-get install chromium)")
def test_page_upload_table_heatmap_in_chromium(server, tiny_run, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    from PIL import Image

    image = tmp_path / "chest.png"
    image.write_bytes(phantom_png(tiny_run[1], 0))
    console, failed = [], []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 800})
            page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: console.append(str(e)))
            page.on("requestfailed", lambda r: failed.append(r.url))
            page.goto(server + "/")
            page.wait_for_function("document.querySelectorAll('#finding option').length > 0", timeout=15000)
            assert "Research use only" in page.inner_text(".banner")
            page.set_input_files("#file", str(image))
            page.wait_for_selector("#table tbody tr", timeout=15000)
            page.wait_for_selector("#heat:not([hidden])", timeout=20000)
            rows = page.locator("#table tbody tr").count()
            assert rows == len(page.locator("#finding option").all())
            assert "distribution" in page.inner_text("#ood")
            shot = tmp_path / "page.png"
            page.screenshot(path=str(shot), full_page=True)
            noise = tmp_path / "noise.png"  # out of distribution: the calls are withheld on the page
            noise.write_bytes(noise_png())
            page.set_input_files("#file", str(noise))
            page.wait_for_selector("#table.withheld", timeout=15000)
            assert page.locator("#table .call-above").count() == 0
            assert "withheld" in page.inner_text("#table") and "No calls" in page.inner_text("#table-note")
        finally:
            browser.close()
    assert not console, console
    assert not failed, failed
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.std() > 10  # not a blank page
