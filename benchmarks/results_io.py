"""One place where benchmarks write their results: ``benchmarks/results/<name>.json``.

Every figure quoted in the README or ``docs/`` names the results file it comes from (checked by the fast test
``tests/packaging/test_figures.py``). A results file records what was run (inputs), where (the machine: cores,
load average before and after, CPU model, library versions, threads) and each figure as min/median/max over its
repeats, so a reader can tell a loaded machine from a slow tool.

Usage inside a benchmark::

    from results_io import Figure, write_results
    figures = {"onnx_vs_eager_resnet18_b1": Figure.of([2.1, 2.3, 2.2], unit="x", note="median ratio")}
    write_results("onnx", inputs={"threads": 1, "repeats": 20}, figures=figures, quick=args.quick)

``--quick`` runs (the fast test suite's) write to ``results/quick/`` so they never replace a real measurement.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Figure:
    """One measured figure: its repeats and their min/median/max, with a unit and a short note."""

    median: float
    min: float
    max: float
    repeats: int
    unit: str = ""
    note: str = ""
    values: list[float] = field(default_factory=list)

    @classmethod
    def of(cls, values, unit: str = "", note: str = "") -> Figure:
        """Summarise a list of repeated measurements (one value: min = median = max)."""
        vals = [float(v) for v in values]
        if not vals:
            raise ValueError("a figure needs at least one measurement")
        return cls(median=statistics.median(vals), min=min(vals), max=max(vals), repeats=len(vals), unit=unit,
                   note=note, values=vals)


def machine() -> dict:
    """Where a figure was measured: cores, load average, CPU model, versions and thread settings."""
    info: dict = {
        "cores": os.cpu_count(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "cpu_model": _cpu_model(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "env_threads": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS") if os.environ.get(k)},
    }
    for module in ("torch", "onnxruntime", "numpy"):
        mod = sys.modules.get(module)
        if mod is not None:
            info[f"{module}_version"] = getattr(mod, "__version__", "?")
    torch = sys.modules.get("torch")
    if torch is not None:
        info["torch_threads"] = torch.get_num_threads()
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def write_results(name: str, *, inputs: dict, figures: dict[str, Figure], quick: bool = False,
                  notes: str = "", load_before: list[float] | None = None) -> Path:
    """Write ``results/<name>.json`` (``results/quick/<name>.json`` for ``--quick`` runs); returns the path."""
    folder = RESULTS_DIR / "quick" if quick else RESULTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    info = machine()
    if load_before is not None:
        info["load_average_before"] = list(load_before)
    payload = {
        "benchmark": name,
        "written": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "quick": quick,
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "inputs": inputs,
        "machine": info,
        "figures": {key: asdict(fig) for key, fig in figures.items()},
        "notes": notes,
    }
    path = folder / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=1, default=float) + "\n")
    tmp.replace(path)
    print(f"results: {path}")
    return path


def read_results(name: str) -> dict:
    """The stored (non-quick) results of benchmark ``name``."""
    return json.loads((RESULTS_DIR / f"{name}.json").read_text())


@contextmanager
def timed_calls(targets: dict[str, tuple[object, str]], spent: dict[str, float]) -> Iterator[dict[str, float]]:
    """Inside the block, each ``targets[phase] = (module, function name)`` adds its wall seconds to
    ``spent[phase]`` (every call, however deep); the real functions are put back on exit."""
    originals = {phase: getattr(mod, name) for phase, (mod, name) in targets.items()}

    def timer(phase, real):
        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return real(*args, **kwargs)
            finally:
                spent[phase] = spent.get(phase, 0.0) + time.perf_counter() - t0
        return timed

    for phase, (mod, name) in targets.items():
        setattr(mod, name, timer(phase, originals[phase]))
    try:
        yield spent
    finally:
        for phase, (mod, name) in targets.items():
            setattr(mod, name, originals[phase])
