"""benchmarks/bench_merge.py's measured path (index, merge, split of label-only rows) runs at a tiny size."""

from __future__ import annotations

import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_merge.py"


def test_bench_child_measures_every_stage(tmp_path):
    spec = importlib.util.spec_from_file_location("bench_merge", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    result = bench.child(900, str(tmp_path))
    assert result["rows"] == 900
    assert all(result[k] > 0 for k in ("index_s", "merge_s", "split_s"))
