"""Load test: N concurrent clients posting one chest X-ray to ``cxrlab serve`` on 127.0.0.1 for T seconds.

Starts ``cxrlab serve SOURCE`` as a subprocess on a free loopback port, warms it up with one request, then runs
``--clients`` threads, each posting ``--image`` to ``/api/predict`` in a loop for ``--seconds``. Prints requests,
errors (any non-200; target 0), p50/p95/max latency, requests/s, and the server's resident memory (VmRSS)
after warm-up and after the load (memory stable: no growth beyond allocator noise).

Run: ``python benchmarks/bench_serve_load.py SOURCE --image chest.png [--clients 4] [--seconds 20]`` where
SOURCE is a run directory or an exported .onnx. Without ``--image``, the first PNG of
../shared/data/nih-sample/images is used.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "nih-sample" / "images"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` in MiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _wait_ready(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with status {proc.returncode}")
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise SystemExit("server did not start")


def _client(url: str, data: bytes, stop: float, latencies: list, errors: list) -> None:
    with httpx.Client(timeout=60) as client:
        while time.time() < stop:
            t = time.perf_counter()
            try:
                r = client.post(url + "/api/predict", files={"files": ("x.png", data, "image/png")})
                ok = r.status_code == 200
            except httpx.HTTPError as exc:
                ok, r = False, exc
            latencies.append(time.perf_counter() - t)
            if not ok:
                errors.append(getattr(r, "status_code", repr(r)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="run directory or exported .onnx")
    parser.add_argument("--image", help="PNG/JPEG/DICOM to post (default: first NIH sample image)")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=2, help="the server's --concurrency")
    args = parser.parse_args(argv)
    image = Path(args.image) if args.image else sorted(SHARED.glob("*.png"))[0]
    data = image.read_bytes()
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "cxrlab", "serve", args.source, "--port", str(port),
           "--concurrency", str(args.concurrency)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _wait_ready(url, proc)
        assert httpx.post(url + "/api/predict", files={"files": ("x.png", data)}, timeout=120).status_code == 200
        before = rss_mb(proc.pid)
        latencies, errors = [], []
        stop = time.time() + args.seconds
        threads = [threading.Thread(target=_client, args=(url, data, stop, latencies, errors))
                   for _ in range(args.clients)]
        started = time.time()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.time() - started
        after = rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(10)
    ms = sorted(1000 * x for x in latencies)
    p95 = ms[min(len(ms) - 1, int(0.95 * len(ms)))]
    print(f"source {args.source}; image {image.name} ({len(data) / 1024:.0f} KiB); {args.clients} clients for "
          f"{args.seconds:g} s; server concurrency {args.concurrency}; cpu count {os.cpu_count()}; "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"requests {len(ms)}, errors {len(errors)} {sorted(set(map(str, errors)))[:5]}, "
          f"{len(ms) / elapsed:.1f} req/s")
    print(f"latency ms: p50 {statistics.median(ms):.0f}, p95 {p95:.0f}, max {ms[-1]:.0f}")
    print(f"server RSS MiB: after warm-up {before:.0f}, after load {after:.0f} ({after - before:+.0f})")


if __name__ == "__main__":
    main()
