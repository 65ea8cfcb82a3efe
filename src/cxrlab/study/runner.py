"""``cxrlab study run``: every arm x seed an ordinary run directory under DIR/runs/, resumable and shardable.

Everything that can be wrong with the study (file, keys, values, names, shard, folder, data audit) is checked
before the first run trains. Then each run of this shard is skipped when finished, resumed from its last
checkpoint when interrupted, or trained; a failing run is recorded with its error and the study goes on.
"""

from __future__ import annotations

import hashlib
import sys
import time
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Any

from cxrlab.config import dump_config
from cxrlab.errors import CxrlabError
from cxrlab.locks import LOCK_NAME, Busy, folder_lock, terminate_as_interrupt
from cxrlab.rundir import RunDir
from cxrlab.study import status as st
from cxrlab.study.data import check_data_present, resolve_data
from cxrlab.study.plan import Plan, RunSpec, make_plan, parse_shard, shard_runs
from cxrlab.study.spec import load_study
from cxrlab.utils import load_average, read_json, write_json


def config_sha256(run: RunSpec) -> str:
    return hashlib.sha256(dump_config(run.config).encode()).hexdigest()


def _n_split(paths: dict[str, str | None], name: str) -> int | None:
    split = paths.get("split")
    if not split or not Path(split).is_file():
        return None
    import pandas as pd

    return int((pd.read_csv(split, usecols=["split"])["split"].astype(str) == name).sum())


def build_plan(study_path: str | Path, out: str | Path, cli_set: list[str] | None = None, smoke: bool = False,
               prepare: bool = True) -> tuple[Plan, dict[str, str | None]]:
    """Load the study, check its folder, resolve (and prepare) its data, and expand it into a plan."""
    study = load_study(study_path)
    out = Path(out)
    st.check_study_folder(out, study.path)
    paths = resolve_data(study, out, list(cli_set or []), prepare=prepare)
    plan = make_plan(study, paths, list(cli_set or []), smoke, n_train=_n_split(paths, "train"))
    return plan, paths


def _check_finished_configs(plan: Plan, out: Path) -> None:
    """A finished run trained with another config (other --set, --smoke) must not pass for this plan's."""
    for run in plan.runs:
        held = st.read_status(out, run.name).get("config_sha256")
        if held and held != config_sha256(run) and (out / "runs" / run.name).exists():
            raise CxrlabError(f"{out / 'runs' / run.name} was trained with another config (different --set or "
                              "--smoke); rerun with the same options, or choose another --out")


def write_plan(plan: Plan, out: Path, paths: dict[str, str | None], cli_set: list[str], smoke: bool) -> None:
    """``plan.json``: what ``study status`` and ``study report`` read (runs, arms, diffs, options)."""
    from cxrlab.utils import sha256_file

    arms = []
    for arm in plan.arms:
        first = next(r for r in plan.runs if r.arm == arm.name)
        diff = {k: list(v) for k, v in plan.diff(first).items() if not k.startswith("data.") or k == "data.image_size"}
        arms.append({"name": arm.name, "recipe": arm.recipe, "listed": arm.listed, "swept": arm.swept,
                     "diff": diff, "freeze": _freeze_strategy(first)})
    write_json(out / "plan.json", {
        "study": plan.study.name, "description": plan.study.description,
        "study_sha256": sha256_file(plan.study.path), "smoke": smoke, "cli_set": cli_set, "data": paths,
        "budget": plan.epochs_note, "reference": plan.reference, "sweep": list(plan.study.sweep),
        "seeds": sorted({r.seed for r in plan.runs}),
        "ensembles": [asdict(e) for e in plan.study.ensembles], "evaluate": asdict(plan.study.evaluate),
        "arms": arms,
        "runs": [{"name": r.name, "arm": r.arm, "seed": r.seed, "config_sha256": config_sha256(r)} for r in plan.runs],
    })


def _only_arms(plan: Plan, arms: list[str] | None) -> list[RunSpec]:
    if not arms:
        return plan.runs
    names = [a.name for a in plan.arms]
    unknown = [a for a in arms if a not in names]
    if unknown:
        raise CxrlabError(f"--arms {', '.join(unknown)}: not an arm of the study; arms: {', '.join(names)}")
    return [r for r in plan.runs if r.arm in arms]


def _freeze_strategy(run: RunSpec) -> str:
    from cxrlab.train.freeze import describe

    return describe(run.config)


def run_study(study_path: str | Path, out: str | Path, cli_set: list[str] | None = None, shard: str | None = None,
              dry_run: bool = False, smoke: bool = False, report: bool = True, arms: list[str] | None = None,
              cost: bool | None = None) -> dict[str, Any]:
    """Run this shard's share of the study (only ``arms`` when given) into ``out``; returns {run name: outcome}.
    ``cost`` (default: the study file's ``cost``) measures each arm's speed after it trains."""
    cli_set, out = list(cli_set or []), Path(out)
    part = parse_shard(shard)
    if dry_run or not st.is_main_process():
        return _run_study(study_path, out, cli_set, part, dry_run, smoke, report, arms, cost)
    check_study_inputs(study_path, out, cli_set)  # nothing, not even the lock, is written before this passes
    # one process per shard/arm selection; runs shared by two selections are guarded by their own locks
    with terminate_as_interrupt(), folder_lock(out, f"study folder {out}", name=_lock_name(part, arms)):
        return _run_study(study_path, out, cli_set, part, dry_run, smoke, report, arms, cost)


def check_study_inputs(study_path: str | Path, out: str | Path, cli_set: list[str] | None = None) -> None:
    """The study file loads, ``out`` may hold it, and every data path it reads exists: checked before anything
    is written, so a typo leaves no empty study folder behind."""
    study = load_study(study_path)
    st.check_study_folder(Path(out), study.path)
    check_data_present(study, Path(out), list(cli_set or []))


def _lock_name(part: tuple[int, int], arms: list[str] | None) -> str:
    name = LOCK_NAME if part == (1, 1) else f"{LOCK_NAME}.shard{part[0]}of{part[1]}"
    return name + (f".arms-{'+'.join(sorted(arms))}" if arms else "")


def _run_study(study_path: str | Path, out: Path, cli_set: list[str], part: tuple[int, int], dry_run: bool,
               smoke: bool, report: bool, arms: list[str] | None, cost: bool | None) -> dict[str, Any]:
    plan, paths = build_plan(study_path, out, cli_set, smoke, prepare=not dry_run)
    _check_finished_configs(plan, out)
    mine = shard_runs(_only_arms(plan, arms), part)
    if dry_run:
        from cxrlab.study.dryrun import print_dry_run

        print_dry_run(plan, mine, part, paths)
        return {r.name: "planned" for r in mine}
    main = st.is_main_process()  # under torchrun every rank trains; rank 0 keeps the books
    if main:
        st.claim_study_folder(out, plan.study.path, plan.study.name, st.check_study_folder(out, plan.study.path))
        write_plan(plan, out, paths, cli_set, smoke)
    seeds = len(plan.runs) // max(len(plan.arms), 1)
    print(f"study {plan.study.name}: {len(plan.runs)} runs ({len(plan.arms)} arms x {seeds} seeds); "
          f"shard {part[0]}/{part[1]} runs {len(mine)}; {plan.epochs_note}", flush=True)
    outcomes = {}
    for k, run in enumerate(mine, 1):
        print(f"\n=== [{k}/{len(mine)}] {run.name} ===", flush=True)
        outcomes[run.name] = execute_run(out, run, plan.study.evaluate.external,
                                         plan.study.cost if cost is None else cost)
        print(f"=== {run.name}: {outcomes[run.name]} ===", flush=True)
    failed = [n for n, o in outcomes.items() if o == "failed"]
    if failed:
        print(f"\n{len(failed)} runs failed: {', '.join(failed)} (errors: cxrlab study status {out})", file=sys.stderr)
    if report and main:
        from cxrlab.study.report import build_report

        build_report(out)
    return outcomes


def execute_run(out: Path, run: RunSpec, external: list | None = None, cost: bool = True) -> str:
    """Train one run (or skip / resume it) and predict the external test sets; returns done, skipped, failed or
    busy (another process holds the run's lock: it is left to that process). ``cost`` measures the arm's speed
    after it trains. KeyboardInterrupt propagates."""
    if not st.is_main_process():  # torchrun: rank 0 holds the lock for every rank
        return _execute_run(out, run, external, cost)
    try:
        with folder_lock(out / "runs" / run.name, f"run {run.name}"):
            return _execute_run(out, run, external, cost)
    except Busy as exc:
        print(f"{run.name}: in progress in process {exc.pid}; left to it", file=sys.stderr)
        return "busy"


def _execute_run(out: Path, run: RunSpec, external: list | None, cost: bool) -> str:
    from cxrlab.train import fit

    run_dir = out / "runs" / run.name
    cfg_hash = config_sha256(run)
    if st.is_finished(run_dir):
        if st.read_status(out, run.name).get("state") != "done":
            st.write_status(out, run.name, state="done", config_sha256=cfg_hash)
        return "skipped"
    resume = (run_dir / "checkpoints" / "last_state.pt").exists()
    prev = st.read_status(out, run.name)
    st.write_status(out, run.name, **st.running_fields(), config_sha256=cfg_hash, arm=run.arm, seed=run.seed,
                    attempts=int(prev.get("attempts", 0)) + 1, resumed=resume, error=None,
                    load_average_start=(load_average() or [None])[0])
    t0 = time.perf_counter()
    wall = lambda: float(prev.get("wall_seconds", 0.0)) + time.perf_counter() - t0  # noqa: E731
    try:
        fit(run.config, run_dir, resume=resume)
    except KeyboardInterrupt:
        st.write_status(out, run.name, state="interrupted", wall_seconds=wall())
        raise
    except Exception as exc:  # noqa: BLE001 - a failing arm is recorded and the study goes on
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        trace = st.status_path(out, run.name).with_suffix(".traceback.txt")
        trace.write_text(traceback.format_exc(), encoding="utf-8")
        st.write_status(out, run.name, state="failed", error=f"{type(exc).__name__}: {message}",
                        traceback=str(trace), wall_seconds=wall())
        print(f"error: {run.name} failed: {message} (the study goes on)", file=sys.stderr)
        return "failed"
    seconds, load_end = wall(), (load_average() or [None])[0]
    if not st.is_main_process():
        return "done"
    try:
        _predict_external(run_dir, run, external or [])
    except Exception as exc:  # noqa: BLE001 - the run itself is fine; the external set is reported missing
        print(f"error: {run.name}: external test set not predicted: {str(exc).splitlines()[0]}", file=sys.stderr)
    if cost and not _arm_has_cost(out, run):  # speed does not depend on the seed: measure each arm once
        _write_cost(run_dir, run)
    st.write_status(out, run.name, state="done", wall_seconds=seconds, load_average_end=load_end)
    return "done"


def _predict_external(run_dir: Path, run: RunSpec, external: list) -> None:
    """``predictions/external_<name>.csv``: the best checkpoint on every image of each external index."""
    from cxrlab.predict import predict_run
    from cxrlab.predictions import write_predictions
    from cxrlab.train.fitting import resolve_device

    device = str(resolve_device(run.config.train.device))
    for ext in external:
        preds = predict_run(run_dir, split=None, index=ext.index, device=device,
                            batch_size=run.config.train.eval_batch_size or 2 * run.config.train.batch_size)
        preds.meta["split"] = f"external_{ext.name}"
        write_predictions(run_dir / "predictions" / f"external_{ext.name}.csv", preds)


def _arm_has_cost(out: Path, run: RunSpec) -> bool:
    for path in (out / "status").glob("*.json"):
        name = path.stem
        if name != run.name and st.read_status(out, name).get("arm") == run.arm \
                and (out / "runs" / name / "cost.json").exists():
            return True
    return False


def _write_cost(run_dir: Path, run: RunSpec) -> None:
    """``cost.json`` of the run's architecture; a failure to measure is recorded, never fatal."""
    from cxrlab.study.cost import measure_cost

    try:
        classes = read_json(run_dir / "predictions" / "test.json")["classes"]
        device = RunDir(run_dir).run_manifest().device or "cpu"
        cost = measure_cost(run.config, classes, device)
    except Exception as exc:  # noqa: BLE001
        cost = {"error": f"{type(exc).__name__}: {exc}"}
    write_json(run_dir / "cost.json", cost)


def study_status(out: str | Path) -> list[dict[str, Any]]:
    """Rows ``{run, arm, seed, state, error, wall_seconds}`` of the study in ``out``; prints a table."""
    out = Path(out)
    if not (out / "plan.json").exists():
        raise CxrlabError(f"{out} holds no study (no plan.json); run `cxrlab study run STUDY.yaml --out {out}` first")
    plan = read_json(out / "plan.json", kind=dict, required=("study", "runs"),
                     fix=f"rerun `cxrlab study run STUDY.yaml --out {out}` to rewrite it")
    rows = []
    for r in plan["runs"]:
        state, s = st.run_state(out, r["name"])
        rows.append({"run": r["name"], "arm": r["arm"], "seed": r["seed"], "state": state, "error": s.get("error"),
                     "wall_seconds": s.get("wall_seconds"), "host": s.get("host")})
    counts = {k: sum(row["state"] == k for row in rows) for k in st.STATES}
    print(f"study {plan['study']} in {out}: " + ", ".join(f"{v} {k}" for k, v in counts.items() if v))
    for row in rows:
        extra = f"  {row['error']}" if row["state"] == "failed" else ""
        extra += f"  ({row['host']})" if row["state"] == "running" else ""
        secs = f"{row['wall_seconds']:.0f}s" if row["wall_seconds"] else ""
        print(f"  {row['run']:<40} {row['state']:<12} {secs:>7}{extra}")
    return rows
