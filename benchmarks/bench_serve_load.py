"""Load test of ``cxrlab serve`` on 127.0.0.1: sustained clients, then a burst of concurrent maximum-size uploads.

Starts ``cxrlab serve SOURCE`` as a subprocess on a free loopback port with ``--max-upload-mb M`` and
``--max-inflight-mb B``, warms it up with one request, then:

1. sustained: ``--clients`` threads post one chest X-ray to ``/api/predict`` in a loop for ``--seconds``;
   requests, non-200 answers (target 0), p50/p95/max latency, requests/s.
2. burst: ``--burst`` threads (64) each post ONE upload of nearly ``M`` MB (a noise PNG of about M MB, a valid
   image) at the same moment. Every answer must be 200, 413 or 503 (never a reset or a 500), and the server's
   resident memory (VmRSS, sampled every 10 ms) must stay within the stated bound
   ``rss_after_warmup + 3 x B + concurrency x 8 x M + 64 MiB``: request bodies in memory are capped by the byte
   budget (each copied at most three times: the buffered body, the parsed upload, the read bytes) and only
   ``concurrency`` requests decode at once (an M-MP 8-bit image and its working copies, about 8 M). Without the
   budget the same burst would hold 64 x M MB of bodies at once.

Writes ``benchmarks/results/serve_load.json`` (``results/quick/`` with ``--quick``) and prints a last line
``RESULT {json}`` for tests. Run: ``python benchmarks/bench_serve_load.py SOURCE [--image chest.png]`` (SOURCE a
run directory or an exported .onnx; default image: the first PNG of ../shared/data/nih-sample/images), or
``python benchmarks/bench_serve_load.py --quick`` (trains a tiny phantom run; M = 1, B = 4, 3 s sustained).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import httpx
import numpy as np
from results_io import Figure, write_results

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


def _wait_ready(url: str, proc: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with status {proc.returncode}: {proc.stderr.read()[-2000:]}")
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


def noise_png(megabytes: float, seed: int = 0) -> bytes:
    """A valid grayscale PNG of random pixels just under ``megabytes`` MiB (noise does not compress)."""
    side = int(np.sqrt(megabytes * 2**20 * 0.97))
    img = np.random.default_rng(seed).integers(0, 256, (side, side), dtype=np.uint8)
    return cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, 1])[1].tobytes()


class RssMonitor(threading.Thread):
    """Samples VmRSS of ``pid`` every 10 ms; ``peak`` in MiB."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.running = pid, 0.0, True

    def run(self) -> None:
        while self.running:
            self.peak = max(self.peak, rss_mb(self.pid))
            time.sleep(0.01)


def burst(url: str, data: bytes, n: int, pid: int) -> tuple[dict[str, int], float]:
    """``n`` simultaneous uploads of ``data``: (answers by status, peak RSS MiB during the burst)."""
    statuses, barrier = [], threading.Barrier(n)

    def one() -> None:
        barrier.wait()
        try:
            statuses.append(str(httpx.post(url + "/api/predict", files={"files": ("big.png", data, "image/png")},
                                           timeout=300).status_code))
        except httpx.HTTPError as exc:
            statuses.append(type(exc).__name__)

    monitor = RssMonitor(pid)
    monitor.start()
    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    time.sleep(0.2)
    monitor.running = False
    monitor.join()
    return {s: statuses.count(s) for s in sorted(set(statuses))}, monitor.peak


def sustained(url: str, data: bytes, clients: int, seconds: float) -> dict[str, float]:
    latencies, errors = [], []
    stop = time.time() + seconds
    threads = [threading.Thread(target=_client, args=(url, data, stop, latencies, errors)) for _ in range(clients)]
    started = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ms = sorted(1000 * x for x in latencies)
    return {"requests": len(ms), "errors": len(errors), "req_per_s": len(ms) / (time.time() - started),
            "p50_ms": statistics.median(ms), "p95_ms": ms[min(len(ms) - 1, int(0.95 * len(ms)))], "max_ms": ms[-1]}


def measure(source: str, image: bytes, args: argparse.Namespace) -> dict:
    """Start the server, run both phases, stop it; the figures as a dict."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    side = int(np.sqrt(args.upload_mb * 2**20))
    cmd = [sys.executable, "-m", "cxrlab", "serve", source, "--port", str(port), "--concurrency", str(args.concurrency),
           "--max-upload-mb", str(args.upload_mb), "--max-inflight-mb", str(args.max_inflight_mb),
           "--max-pixels", str(side * side)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _wait_ready(url, proc)
        assert httpx.post(url + "/api/predict", files={"files": ("x.png", image)}, timeout=120).status_code == 200
        warm = rss_mb(proc.pid)
        load = sustained(url, image, args.clients, args.seconds)
        answers, peak = burst(url, noise_png(args.upload_mb * 0.98), args.burst, proc.pid)
        after = rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(10)
    bound = warm + 3 * args.max_inflight_mb + args.concurrency * 8 * args.upload_mb + 64  # 64: allocator slack
    return {**load, "rss_warm_mb": warm, "rss_peak_burst_mb": peak, "rss_after_mb": after, "rss_bound_mb": bound,
            "burst_answers": answers, "burst_only_200_413_503": set(answers) <= {"200", "413", "503"}}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", nargs="?", help="run directory or exported .onnx (none with --quick)")
    parser.add_argument("--image", help="PNG/JPEG/DICOM to post (default: first NIH sample image)")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=2, help="the server's --concurrency")
    parser.add_argument("--burst", type=int, default=64, help="simultaneous maximum-size uploads")
    parser.add_argument("--upload-mb", type=float, default=8.0, help="the server's --max-upload-mb")
    parser.add_argument("--max-inflight-mb", type=float, default=32.0, help="the server's --max-inflight-mb")
    parser.add_argument("--quick", action="store_true", help="tiny phantom run, 1 MB uploads, 3 s sustained")
    args = parser.parse_args(argv)
    load_before = list(os.getloadavg())
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        if args.quick:
            args.seconds, args.upload_mb, args.clients = 3.0, 1.0, 2
            args.max_inflight_mb = 4.0 if args.max_inflight_mb == 32.0 else args.max_inflight_mb
            source = args.source or str(_tiny_run(Path(tmp)))
        elif args.source is None:
            raise SystemExit("give a SOURCE (run directory or .onnx), or --quick")
        else:
            source = args.source
        image_path = Path(args.image) if args.image else None
        image = image_path.read_bytes() if image_path else _default_image(source)
        figures = measure(source, image, args)
    _report(args, source, figures, load_before)
    print("RESULT " + json.dumps(figures))
    return figures


def _default_image(source: str) -> bytes:
    if not SHARED.is_dir():
        raise SystemExit(f"no --image and no {SHARED}: give --image")
    return sorted(SHARED.glob("*.png"))[0].read_bytes()


def _tiny_run(root: Path) -> Path:
    from cxrlab.config import load_config
    from cxrlab.data.phantom import make_phantom_index
    from cxrlab.data.splits import patient_level_split, write_split
    from cxrlab.train import fit

    index = make_phantom_index(root / "ph", n=60, size=32, seed=0)
    write_split(patient_level_split(index, 0.3, 0.2, seed=0), root / "split.csv", "patient", 0, index)
    cfg = load_config(None, [f"data.index={root / 'ph' / 'index'}", f"data.split={root / 'split.csv'}",
                             "data.image_size=32", "data.cache_size=32", "model.name=cnn_gap", "train.epochs=1",
                             "train.batch_size=16", "augment.policy=none", "train.device=cpu", "train.threads=1"])
    return fit(cfg, root / "run")


def _report(args, source: str, f: dict, load_before: list[float]) -> None:
    print(f"source {source}; {args.clients} clients for {args.seconds:g} s; server concurrency {args.concurrency}; "
          f"cpu count {os.cpu_count()}; load average {os.getloadavg()[0]:.2f}")
    print(f"sustained: requests {f['requests']}, errors {f['errors']}, {f['req_per_s']:.1f} req/s; latency ms p50 "
          f"{f['p50_ms']:.0f}, p95 {f['p95_ms']:.0f}, max {f['max_ms']:.0f}")
    print(f"burst: {args.burst} x {args.upload_mb:g} MB uploads at once (budget {args.max_inflight_mb:g} MB): answers "
          f"{f['burst_answers']}; RSS MiB warm {f['rss_warm_mb']:.0f}, peak {f['rss_peak_burst_mb']:.0f} (bound "
          f"{f['rss_bound_mb']:.0f}), after {f['rss_after_mb']:.0f}")
    figures = {k: Figure.of([f[k]], unit=u) for k, u in (
        ("req_per_s", "requests/s"), ("p50_ms", "ms"), ("p95_ms", "ms"), ("errors", "non-200 answers"),
        ("rss_warm_mb", "MiB"), ("rss_peak_burst_mb", "MiB"), ("rss_bound_mb", "MiB"), ("rss_after_mb", "MiB"))}
    for status, count in f["burst_answers"].items():
        figures[f"burst_answers_{status}"] = Figure.of([count], unit="answers", note=f"of {args.burst}")
    inputs = {"source": "tiny phantom run (quick)" if args.quick else source, "clients": args.clients,
              "seconds": args.seconds, "concurrency": args.concurrency, "burst": args.burst,
              "upload_mb": args.upload_mb, "max_inflight_mb": args.max_inflight_mb}
    write_results("serve_load", inputs=inputs, figures=figures, quick=args.quick, load_before=load_before,
                  notes="bound = rss_warm + 3 x max_inflight + concurrency x 8 x upload + 64 MiB")


if __name__ == "__main__":
    main()
