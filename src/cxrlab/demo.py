"""``cxrlab demo``: the whole flow on an embedded default, end to end, in a few minutes on 2 CPU cores.

phantom (or an NIH folder) -> index -> patient-level split + audit -> cache -> train the paper's CNN baseline,
ResNet-34 and ViT-v1 on the same small budget -> predict -> evaluate each -> compare -> one report.

Every step is the same library function a CLI verb calls, so the demo is also the smoke test of the flow.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from cxrlab.errors import CxrlabError
from cxrlab.utils import atomic_write_text

# The three paper models (S1) trained on the same small budget. Image size 112 keeps the 2-core budget:
# at 224 the Flatten CNN alone has 95.6M parameters.
DEMO_MODELS = {
    "cnn_baseline": ["model.name=cnn_baseline", "train.lr=0.0003"],
    "resnet34_scratch": ["model.name=resnet34_scratch", "train.lr=0.001"],
    "vit_v1": ["model.name=vit_v1", "train.lr=0.001"],
}


@dataclass
class DemoSettings:
    """What the demo runs (aim: 3 minutes on 2 idle CPU cores; measured by ``benchmarks/bench_demo.py``)."""

    out: Path = Path("runs/demo")
    data: Path | None = None  # an NIH ChestX-ray14 download folder; None makes a phantom dataset
    n_images: int = 800
    contrast: float = 2.0  # phantom findings' brightness: clear enough for small models to learn in minutes
    image_size: int = 112
    cache_size: int = 128
    epochs: int = 6
    batch_size: int = 32
    bootstrap: int = 1000  # enough for a macro difference to pass Holm over the comparison's tests (floor 2/(B+1))
    seed: int = 0
    models: dict[str, list[str]] = field(default_factory=lambda: dict(DEMO_MODELS))


def _step(n: int, total: int, text: str) -> float:
    print(f"\n[{n}/{total}] {text}", flush=True)
    return time.perf_counter()


def _done(t0: float) -> None:
    print(f"      done in {time.perf_counter() - t0:.1f} s", flush=True)


def _report(*lines: str) -> None:
    """A step's results (evaluation and comparison summaries), on stderr as the verbs print them."""
    print("\n".join(f"      {line}" for line in lines), file=sys.stderr, flush=True)


def prepare_data(s: DemoSettings) -> tuple[Path, Path, Path]:
    """Index, split, audit and cache the demo data; returns (index.csv, split.csv, cache dir)."""
    from cxrlab.data.audit import format_audit
    from cxrlab.data.build_index import build_index
    from cxrlab.data.cache import build_cache
    from cxrlab.data.phantom import make_phantom
    from cxrlab.data.splits import make_split

    t0 = _step(1, 6, "dataset and index")
    if s.data is None:
        root = make_phantom(
            s.out / "phantom", n=s.n_images, task="multilabel", size=256, seed=s.seed, contrast=s.contrast
        )
        index, _ = build_index(root, "csv", s.out / "index")
        print(f"      phantom: {len(index)} synthetic chest X-rays with planted findings in {root}")
    else:
        if not Path(s.data).is_dir():
            raise CxrlabError(f"--data {s.data} is not a folder; give an NIH ChestX-ray14 download folder")
        index, _ = build_index(s.data, "nih", s.out / "index")
        print(f"      NIH: {len(index)} images indexed from {s.data}")
    _done(t0)

    t0 = _step(2, 6, "patient-level split and leakage audit")
    split_path = s.out / "split.csv"
    _, audit = make_split(index, split_path, val=0.15, test=0.25, seed=s.seed)
    print("      " + format_audit(audit).replace("\n", "\n      "))
    _done(t0)

    t0 = _step(3, 6, f"cache: decode and resize every image once to {s.cache_size} px")
    build_cache(index, s.out / "cache", size=s.cache_size, force=True)  # the demo regenerates its data
    _done(t0)
    return index.path, split_path, s.out / "cache"


def _as_dict(overrides: list[str]) -> dict:
    import yaml

    return {k: yaml.safe_load(v) for k, v in (o.split("=", 1) for o in overrides)}


def demo_study(s: DemoSettings, index_csv: Path, split_csv: Path, cache: Path) -> dict:
    """The demo as a study: the demo models as arms, one seed, the same budget and data for each."""
    return {
        "name": "demo",
        "description": "cxrlab demo: the paper's CNN baseline, ResNet-34 and ViT-v1 on the same data and budget.",
        "data": {"index": str(index_csv), "split": str(split_csv), "cache": str(cache)},
        "base": {"set": {"data.image_size": s.image_size, "train.batch_size": s.batch_size, "train.device": "cpu",
                         "augment.policy": "medical"}},
        "budget": {"epochs": s.epochs},
        "arms": [{"name": name, "set": _as_dict(overrides)} for name, overrides in s.models.items()],
        "seeds": [s.seed],
        "seed_in_run_names": False,  # runs/<model>, the layout the demo has always had
        "evaluate": {"bootstrap": s.bootstrap, "seed": s.seed},
    }


def train_models(s: DemoSettings, index_csv: Path, split_csv: Path, cache: Path) -> list[Path]:
    """Train every demo model as one study (``demo_study.yaml`` in the demo folder); returns the run directories."""
    import yaml

    from cxrlab.study.runner import run_study

    t0 = _step(4, 6, f"train {len(s.models)} models, {s.epochs} epochs each (a study: {s.out / 'demo_study.yaml'})")
    study = s.out / "demo_study.yaml"
    atomic_write_text(study, yaml.safe_dump(demo_study(s, index_csv, split_csv, cache), sort_keys=False))
    outcomes = run_study(study, s.out, report=False)
    failed = [name for name, outcome in outcomes.items() if outcome == "failed"]
    if failed:
        raise CxrlabError(f"demo models {', '.join(failed)} failed to train; see `cxrlab study status {s.out}`")
    _done(t0)
    return [s.out / "runs" / name for name in s.models]


def evaluate_and_compare(s: DemoSettings, runs: list[Path], index_csv: Path) -> Path:
    """Evaluate each run's test predictions, compare the runs pairwise; returns the comparison's report.html, the
    demo's one report (the study report and the per-model reports are its linked appendix)."""
    from cxrlab.evaluate import compare, evaluate
    from cxrlab.evaluate.options import EvalOptions

    options = EvalOptions(bootstrap=s.bootstrap, seed=s.seed)  # one options object for both steps
    t0 = _step(5, 6, "evaluate each model on the test split (patient bootstrap CIs)")
    for run in runs:
        result = evaluate.evaluate_predictions(run, labels=index_csv, out=run / "evaluation", options=options)
        _report(f"{run.name}: " + "; ".join(evaluate.summary_lines(result)))
    _done(t0)

    t0 = _step(6, 6, "compare the models (paired DeLong tests, Holm-adjusted) and write the report")
    out = s.out / "comparison"
    _report(*compare.summary_lines(compare.compare_runs(runs, labels=index_csv, out=out, options=options,
                                                        appendix=appendix(runs))))
    _done(t0)
    return out / "report.html"


def appendix(runs: list[Path]) -> list[tuple[str, str]]:
    """Links from the comparison report (in ``comparison/``) to the study report and each model's evaluation."""
    return [("The demo as a study: leaderboard, measured costs, training curves on shared axes",
             "../report/report.html"),
            *[(f"Evaluation of {run.name} alone: per-class tables, calibration, precision-recall curves",
               f"../runs/{run.name}/evaluation/report.html") for run in runs]]


def run_demo(s: DemoSettings) -> Path:
    """Run the whole flow; returns the path of its one report (the comparison, linking the others)."""
    start = time.perf_counter()
    s.out.mkdir(parents=True, exist_ok=True)
    index_csv, split_csv, cache = prepare_data(s)
    runs = train_models(s, index_csv, split_csv, cache)
    report = evaluate_and_compare(s, runs, index_csv)
    from cxrlab.study.report import build_report

    build_report(s.out, announce=False)  # costs and curves on shared axes: linked from the report's appendix
    minutes = (time.perf_counter() - start) / 60
    print(f"\ncxrlab demo finished in {minutes:.1f} min. Report: {report.resolve()}")
    return report
