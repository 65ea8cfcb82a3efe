"""The few facts about a trained run that deployment needs, read through the shared inference API.

``load(run, which)`` returns the model and its ``RunInfo`` (``cxrlab.predict.load_run``); ``split_dataset``
gives the run's validation or test images preprocessed exactly as evaluation saw them (through its cache when
it has one, else decoded from the files, same pixels either way).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn
from torch.utils.data import Dataset

from cxrlab.errors import CxrlabError
from cxrlab.predict import ImageSetDataset, RunInfo, images_from_run, load_run, open_run_cache


def load(run: str | Path, which: str = "best") -> tuple[nn.Module, RunInfo]:
    """``(model, info)`` for a run directory or checkpoint; the model is in eval mode on the CPU."""
    return load_run(run, which=which, device="cpu")


def contract_info(info: RunInfo) -> dict[str, Any]:
    """What an exported model carries about its run: ``RunInfo.to_dict()`` (task, classes, model, preprocessing,
    weights hash, provenance)."""
    return info.to_dict()


def split_dataset(info: RunInfo, split: str = "val") -> Dataset:
    """The run's ``split`` images with the evaluation transform; raises ``CxrlabError`` when unavailable."""
    images = images_from_run(info, split)
    if len(images) == 0:
        raise CxrlabError(f"{info.run_dir}: no {split} images in its split")
    return ImageSetDataset(images, info, cache=open_run_cache(info, images))


def not_test_rows(info: RunInfo, dataset: Any, n: int, what: str) -> list[int]:
    """The first ``n`` rows of ``dataset`` (one of the run's splits), refused (``CxrlabError``) if any is one of the
    run's test images, by id or content (``cxrlab.guards``), or if that cannot be verified.

    The test split is read from ``RUN/split.csv`` with the hashes of the index the config names, and from the
    index the run loads its images from (``info.index``), which settles the content check when the config's
    (relative) path does not resolve from here."""
    from cxrlab.guards import Reach, TestSet, check_not_test
    from cxrlab.predict import images_from_run

    rows = list(range(min(n, len(dataset))))
    images = dataset.images
    ids = [str(images.image_ids[i]) for i in rows]
    reach = Reach()
    reach.add_run(info.run_dir)
    test = images_from_run(info, "test")
    loaded = TestSet(frozenset(map(str, test.image_ids)), frozenset(h for h in (test.sha256 or []) if h),
                     f"the test split of run {info.run_dir} (index {info.index})")
    hashes = [images.sha256[i] for i in rows] if images.sha256 is not None else [None] * len(rows)
    name = f"{info.run_dir} ({images.name} split)"
    check_not_test(name, ids, tests=[*reach.tests, loaded], what=what, allow=False, hashes=hashes,
                   marked_split=images.name, how="the run's validation or training images", escape=False)
    problems = [] if loaded.hashes else list(reach.problems)  # the loaded index's hashes settle the content check
    if not all(hashes):
        problems.append(f"{sum(not h for h in hashes)} of its images have no sha256")
    unhashed = sum(not h for h in test.sha256) if test.sha256 is not None else len(test.image_ids)
    if unhashed:
        problems.append(f"{unhashed} of the run's test images have no sha256")
    if problems:
        raise CxrlabError(f"cannot verify that {name} holds no test images before fitting {what}: {problems[0]}")
    return rows
