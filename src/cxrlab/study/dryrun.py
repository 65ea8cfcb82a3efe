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
    total, seen = 0.0, {}
    for run in mine:
        diff = plan.diff(run)
        text = "; ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in diff.items() if not k.startswith("data.index")
                         and k not in ("data.split", "data.cache")) or "same as base"
        line = f"  {run.name:<36} {text}"
        if classes and n_train:
            if run.arm not in seen:
                seen[run.arm] = time_training_step(run.config, classes)
            per_image = seen[run.arm]
            # an evaluation pass costs about a third of a training step per image
            est = run.config.train.epochs * per_image * (n_train + n_eval / 3)
            total += est
            line += f"  ~{est:.0f} s" if est < 120 else f"  ~{est / 60:.1f} min"
        print(line)
    if total:
        print(f"estimated CPU time for this shard: {total / 60:.1f} min ({len(seen)} arms timed for 2 steps each "
              f"on {n_train} training images; a GPU is typically 10-50x faster)")
    else:
        print("no estimate: the data is not prepared yet (data.root is indexed on the first real run)")
