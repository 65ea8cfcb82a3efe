"""Locks, markers and SIGTERM (issue 16B.1), and training that states what it does (16B.2), on the tiny world."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from cxrlab.config import load_config
from cxrlab.errors import CxrlabError
from cxrlab.locks import LOCK_NAME, Busy, folder_lock, terminate_as_interrupt
from cxrlab.outputs import MARKER, folder_maker, output_folder

from .helpers import run

SRC = str(Path(__file__).parents[2] / "src")


# --------------------------------------------------------------------------- locks, markers, SIGTERM


def _holder(folder: Path) -> subprocess.Popen:
    """Another process that takes ``folder``'s lock and sleeps (no torch import: starts in a fraction of a second)."""
    code = ("import sys, time; from cxrlab.locks import folder_lock\n"
            "with folder_lock(sys.argv[1]):\n    print('held', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(folder)], env={**os.environ, "PYTHONPATH": SRC},
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_held_lock_names_its_pid_and_a_dead_holders_lock_is_taken_over(tmp_path):
    proc = _holder(tmp_path)
    try:
        with pytest.raises(Busy, match=f"in use by process {proc.pid} on .*{LOCK_NAME}"), folder_lock(tmp_path):
            pass
    finally:
        proc.kill()
        proc.wait()
    assert (tmp_path / LOCK_NAME).read_text().startswith(f"{proc.pid} ")  # the dead holder's PID is still written
    with folder_lock(tmp_path) as path, folder_lock(tmp_path):  # taken over; re-entrant in one process
        assert path.read_text().startswith(f"{os.getpid()} ")


def test_sigterm_inside_the_block_is_an_interrupt():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt, match="SIGTERM"), terminate_as_interrupt():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
    assert signal.getsignal(signal.SIGTERM) == before


def test_marker_is_written_before_the_verb_writes_and_wins_over_file_patterns(tmp_path):
    out = tmp_path / "study"
    with output_folder(out, verb="study run"):
        assert json.loads((out / MARKER).read_text())["verb"] == "study run"  # before anything else
        (out / "runs").mkdir()  # a demo's file pattern too: a kill -9 here used to read as a demo folder
    assert folder_maker(out) == "study run"
    bare = tmp_path / "old"  # no marker (made before markers, or marker lost): the study's files decide
    (bare / "runs").mkdir(parents=True)
    (bare / "plan.json").write_text("{}")
    assert folder_maker(bare) == "study run"


def test_train_into_a_run_held_by_another_process_is_refused(world, tmp_path, capsys, all_inputs):
    out = tmp_path / "run"
    proc = _holder(out)
    try:
        run(capsys, world.train_args(out, "train.epochs=1"), inputs=all_inputs, says=(f"process {proc.pid}",))
    finally:
        proc.kill()
        proc.wait()


# --------------------------------------------------------------------------- training states what it does


def _cfg(world, *sets: str):
    return load_config(world.run / "config.yaml", list(sets))


def test_cache_of_another_size_is_an_error_with_the_fix(world, tmp_path, capsys, all_inputs):
    run(capsys, world.train_args(tmp_path / "r", "data.cache_size=64"), inputs=all_inputs,
        says=("holds 32-px images but data.cache_size=64", "--size 64", "data.cache_size=32"))


def test_upsampling_from_a_small_cache_is_warned(world):
    from cxrlab.train.data import load_data

    with pytest.warns(UserWarning, match="smaller than data.image_size=64: every image is upsampled"):
        data = load_data(_cfg(world, "data.image_size=64", "data.cache_size=null"))
    assert data.cache_size == 32


def test_images_that_failed_to_cache_are_counted_and_warned(world, tmp_path):
    import shutil

    from cxrlab.train import data as tdata

    cache = tmp_path / "cache"
    shutil.copytree(world.cache, cache)
    meta = json.loads((cache / "meta.json").read_text())
    data = tdata.load_data(_cfg(world, f"data.cache={cache}"))
    train = data.ids["train"]
    meta["status"][meta["image_ids"].index(train[0])] = "decode error"
    meta.pop("meta_sha256", None)  # a hand edit breaks the seal; an unsealed meta reads like an older cache's
    (cache / "meta.json").write_text(json.dumps(meta))
    data = tdata.load_data(_cfg(world, f"data.cache={cache}"))
    with pytest.warns(UserWarning, match=f"1 of {len(train)} train images failed to cache"):
        dataset = tdata.make_dataset(_cfg(world, f"data.cache={cache}"), data, data.ids["train"], None)
    assert dataset.n_excluded == 1 and data.excluded == {"train": 1}


def _leaky_split(world, tmp_path) -> tuple[Path, str]:
    split = pd.read_csv(world.split, dtype=str)
    index = pd.read_csv(world.index / "index.csv", dtype=str)
    patients = split.merge(index[["image_id", "patient_id"]], on="image_id")
    several = patients.groupby("patient_id").filter(lambda g: len(g) > 1)
    patient = str(several["patient_id"].iloc[0])
    rows = several[several["patient_id"] == patient].index
    split.loc[rows[0], "split"], split.loc[rows[1], "split"] = "train", "test"
    path = tmp_path / "leaky.csv"
    split.to_csv(path, index=False)
    return path, patient


def test_a_leaking_split_is_refused_naming_a_patient_unless_allowed(world, tmp_path):
    from cxrlab.train.data import load_data

    path, patient = _leaky_split(world, tmp_path)
    with pytest.raises(CxrlabError, match=f"patient {patient} in test and train.*cxrlab data split.*"
                                          "allow_patient_leak=true"):
        load_data(_cfg(world, f"data.split={path}"))
    with pytest.warns(UserWarning, match="trained anyway"):
        load_data(_cfg(world, f"data.split={path}", "data.allow_patient_leak=true"))


def test_resume_with_more_epochs_rebuilds_the_schedule_and_records_it(world, tmp_path):
    from cxrlab.train import fit

    out = world.copy_run(tmp_path / "run")
    with pytest.warns(UserWarning, match="cosine schedule is rebuilt for the new total"):
        fit(_cfg(world, "train.epochs=2"), out, resume=True)
    lrs = pd.read_csv(out / "metrics.csv")["lr"].tolist()
    assert len(lrs) == 2 and lrs[1] > 0.1 * lrs[0]  # the old schedule had ended: epoch 2 ran at lr 0
    rebuilt = json.loads((out / "manifest.json").read_text())["schedule_rebuilt"]
    assert rebuilt["after_epoch"] == 1 and rebuilt["new_total"] == 2 * rebuilt["old_total"]
    assert rebuilt["unit"] == "step"
