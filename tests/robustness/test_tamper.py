"""Tampering: one flipped byte in an index, a split, a checkpoint, an exported ONNX model, its contract, a cache's
meta.json or its pixels (images.u8, checked by chunk as read) is refused with one error line naming the file; an
edited contract (classes reversed, another mean, task or size) is refused before the first image."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from .helpers import run


def _flip(path: Path) -> Path:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))
    return path


@pytest.fixture
def copy(world, tmp_path) -> Path:
    """A copy of the whole world (data, index, split, cache, run) whose recorded paths name the copy."""
    root = tmp_path / "w"
    shutil.copytree(world.root, root, symlinks=True)
    for f in root.rglob("*"):
        if f.suffix in (".json", ".yaml") and f.parent.name != "cache" and str(world.root) in f.read_text():
            f.write_text(f.read_text().replace(str(world.root), str(root)))
    return root


@pytest.mark.parametrize("target", ["ph/index/index.csv", "run/split.csv", "run/checkpoints/best.safetensors"])
def test_a_flipped_byte_in_a_run_input_is_refused(copy, tmp_path, capsys, target):
    _flip(copy / target)
    run(capsys, ["predict", copy / "run", "--out", tmp_path / "p.csv"], inputs=[copy],
        says=(str(copy / target),))
    assert not (tmp_path / "p.csv").exists()


def test_a_flipped_byte_in_a_cache_meta_is_refused(copy, tmp_path, capsys):
    # predict falls back to decoding the files (said in a warning); training needs the cache and stops
    _flip(copy / "cache" / "meta.json")
    run(capsys, ["train", "--config", copy / "run" / "config.yaml", "--out", tmp_path / "r", "--set",
                 "train.epochs=1"], inputs=[copy], says=(str(copy / "cache" / "meta.json"), "changed"))


@pytest.mark.parametrize("verb", ["train", "predict"])
def test_a_flipped_byte_in_the_cache_pixels_is_refused(copy, tmp_path, capsys, verb):
    # meta.json is intact, so the cache opens; the chunk's crc32 is checked when its first row is read
    _flip(copy / "cache" / "images.u8")
    argv = (["train", "--config", copy / "run" / "config.yaml", "--out", tmp_path / "r", "--set", "train.epochs=1"]
            if verb == "train" else ["predict", copy / "run", "--split", "test", "--out", tmp_path / "p.csv"])
    run(capsys, argv, inputs=[copy], says=(str(copy / "cache" / "images.u8"), "chunk 0", "--force"))
    assert not (tmp_path / "p.csv").exists()


def test_a_flipped_byte_in_the_run_split_stops_the_guard(copy, tmp_path, capsys):
    _flip(copy / "run" / "split.csv")
    run(capsys, ["evaluate", copy / "run", "--out", tmp_path / "e", "--bootstrap", "0"], inputs=[copy],
        says=(str(copy / "run" / "split.csv"), "changed after training"))


@pytest.fixture(scope="module")
def exported(world, tmp_path_factory) -> Path:
    from cxrlab.deploy.export import export_run

    out = tmp_path_factory.mktemp("export") / "model.onnx"
    export_run(world.run, out, max_val_images=0)
    return out


def _copy_export(exported: Path, dest: Path) -> Path:
    dest.mkdir()
    for f in exported.parent.iterdir():
        shutil.copyfile(f, dest / f.name)
    return dest / exported.name


def _predict(world, onnx: Path, tmp_path: Path) -> list:
    return ["predict", onnx, "--images", world.data / "images", "--out", tmp_path / "p.csv"]


@pytest.mark.parametrize("which", ["model.onnx", "model.json"])
def test_a_flipped_byte_in_an_export_is_refused_by_predict_and_serve(world, exported, tmp_path, capsys, which):
    from cxrlab.errors import CxrlabError
    from cxrlab.serve.model import ServedModel

    onnx = _copy_export(exported, tmp_path / "m")
    _flip(onnx.parent / which)
    run(capsys, _predict(world, onnx, tmp_path), inputs=[onnx.parent, world.root], says=(which,))
    with pytest.raises(CxrlabError, match=which.replace(".", r"\.")):
        ServedModel(onnx)


@pytest.mark.parametrize("edit, field", [
    (lambda r: r.update(classes=r["classes"][::-1]), "run.classes"),
    (lambda r: r["preprocess"].update(mean=[0.1] * len(r["preprocess"]["mean"])), "run.preprocess.mean"),
    (lambda r: r.update(task="multiclass"), "run.task"),
    (lambda r: r["preprocess"].update(image_size=64), "run.preprocess.image_size"),
])
def test_an_edited_contract_is_refused_before_the_first_image(world, exported, tmp_path, capsys, edit, field):
    onnx = _copy_export(exported, tmp_path / "m")
    contract = json.loads(onnx.with_suffix(".json").read_text())
    edit(contract["run"])
    onnx.with_suffix(".json").write_text(json.dumps(contract))
    run(capsys, _predict(world, onnx, tmp_path), inputs=[onnx.parent, world.root],
        says=("model.json", f"'{field}'", "cxrlab export"))


def test_an_export_without_its_contract_is_not_trusted(world, exported, tmp_path, capsys):
    onnx = _copy_export(exported, tmp_path / "m")
    onnx.with_suffix(".json").unlink()
    run(capsys, _predict(world, onnx, tmp_path), inputs=[onnx.parent, world.root],
        says=("model.onnx", "no cxrlab contract", "cannot be verified"))


def test_the_untouched_export_still_predicts(world, exported, tmp_path, capsys):
    onnx = _copy_export(exported, tmp_path / "m")
    run(capsys, _predict(world, onnx, tmp_path), inputs=[onnx.parent, world.root], expect=0)
