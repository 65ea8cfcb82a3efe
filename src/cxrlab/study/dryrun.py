"""``study run --dry-run``: the plan (runs, each arm's config differences from the base) and an estimated
cost from a short timing of training steps on this machine's CPU."""

from __future__ import annotations

from pathlib import Path

from cxrlab.study.plan import Plan, RunSpec


def _classes(paths: dict[str, str | None]) -> list[str] | None:
    index = paths.get("index")
    if not index or not Path(index).exists():
        return None
    from cxrlab.data.index import load_index

    return list(load_index(index).classes)


def _count(paths: dict[str, str | None]) -> dict[str, int]:
    split = paths.get("split")
    if not split or not Path(split).is_file():
        return {}
    import pandas as pd

    return pd.read_csv(split, usecols=["split"])["split"].astype(str).value_counts().to_dict()


def print_dry_run(plan: Plan, mine: list[RunSpec], shard: tuple[int, int], paths: dict[str, str | None]) -> None:
    """Print the plan and, when the data is there, an estimated CPU training time per run and in total."""
    from cxrlab.study.cost import time_training_step

    s = plan.study
    print(f"study {s.name}: {len(plan.arms)} arms x {len(plan.runs) // max(len(plan.arms), 1)} seeds = "
          f"{len(plan.runs)} runs; shard {shard[0]}/{shard[1]}: {len(mine)} runs")
    print(f"budget: {plan.epochs_note}; reference: {plan.reference or 'none (all pairs)'}")
    print(f"base: {s.base.recipe or 'config defaults'} (model {plan.base.model.name}, "
          f"{plan.base.data.image_size} px, {plan.base.train.epochs} epochs)")
    classes, counts = _classes(paths), _count(paths)
    n_train, n_eval = counts.get("train", 0), counts.get("val", 0) + counts.get("test", 0)
    total, timed = 0.0, 0
    for arm in dict.fromkeys(r.arm for r in mine):  # one line per arm: its seeds share the config
        runs = [r for r in mine if r.arm == arm]
        diff = plan.diff(runs[0])
        text = "; ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in diff.items()
                         if k not in ("data.index", "data.split", "data.cache")) or "same as base"
        line = f"  {arm} (seeds {', '.join(str(r.seed) for r in runs)}): {text}"
        if classes and n_train:
            # an evaluation pass costs about a third of a training step per image
            per_run = runs[0].config.train.epochs * time_training_step(runs[0].config, classes) * (n_train + n_eval / 3)
            total += per_run * len(runs)
            timed += 1
            line += f"  ~{_duration(per_run)} per run"
        print(line)
    if total:
        print(f"estimated CPU time for this shard: {_duration(total)} ({timed} arms timed for 2 steps each on "
              f"{n_train} training images; a GPU is typically 10-50x faster)")
    else:
        print("no estimate: the data is not prepared yet (data.root is indexed on the first real run)")


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"
