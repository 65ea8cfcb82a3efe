"""One run-directory reader (``cxrlab.rundir.RunDir``): every verb that takes a run refuses a missing or garbled
``config.yaml``, ``manifest.json`` or ``split.csv`` with the same one line (exit 2, no traceback), naming the
file and the fix, before doing any work."""

from __future__ import annotations

from pathlib import Path

import pytest

from .helpers import run

# every verb that takes a run directory; {run} is the damaged copy, {ok} the world's intact run
VERBS = {
    "evaluate": ["evaluate", "{run}", "--out", "{tmp}/e", "--bootstrap", "0"],
    "compare": ["compare", "{run}", "{ok}", "--out", "{tmp}/c", "--bootstrap", "0"],
    "ensemble": ["ensemble", "{run}", "{ok}", "--out", "{tmp}/ens.csv"],
    "predict": ["predict", "{run}", "--out", "{tmp}/p.csv"],
    "export": ["export", "{run}", "--out", "{tmp}/m.onnx"],
    "explain": ["explain", "{run}", "--images", "{images}", "--out", "{tmp}/x"],
    "uncertainty": ["uncertainty", "{run}", "--out", "{tmp}/u.csv"],
    "pseudo": ["pseudo", "{run}", "--pool", "{images}", "--out", "{tmp}/ps"],
}
SCORING = ("evaluate", "compare", "ensemble")  # they read a finished run: the manifest is required

DAMAGE = {  # name -> (file, new content or None to delete, what the line says)
    "config-garbled": ("config.yaml", b"data: [1", "is not valid YAML"),
    "config-not-a-mapping": ("config.yaml", b"- 1\n", "is not a mapping"),
    "config-missing": ("config.yaml", None, "is missing from the run"),
    "manifest-garbled": ("manifest.json", b'{"device": ', "is not valid JSON"),
    "manifest-a-list": ("manifest.json", b"[]", "not an object"),
    "manifest-missing": ("manifest.json", None, "has not finished"),
    "split-binary": ("split.csv", b"\xff\xfe\x00garbage", "is not UTF-8"),
    "split-other-csv": ("split.csv", b"a,b\n1,2\n", "lacks the image_id and split columns"),
}


def _argv(verb: str, world, runc: Path, tmp: Path) -> list[str]:
    values = {"run": runc, "ok": world.run, "tmp": tmp, "images": world.data / "images"}
    return [a.format(**values) for a in VERBS[verb]]


# an unfinished run (no manifest yet) has usable checkpoints: only the scoring verbs need its manifest
CASES = [(v, d) for v in VERBS for d in DAMAGE if d != "manifest-missing" or v in SCORING]


@pytest.mark.parametrize("verb, damage", CASES)
def test_every_verb_gives_the_same_line_for_a_damaged_run(world, tmp_path, capsys, all_inputs, verb, damage):
    name, content, says = DAMAGE[damage]
    runc = world.copy_run(tmp_path / "run")
    target = runc / name
    target.unlink() if content is None else target.write_bytes(content)
    err = run(capsys, _argv(verb, world, runc, tmp_path), inputs=[*all_inputs, runc], says=(f"{target}: ", says))
    line = next(x for x in err.splitlines() if x.startswith("error: "))
    # the same words for every verb: the file, the problem, and the fix
    fix = "has not finished" if damage == "manifest-missing" else "restore it from a copy of the run"
    assert line.startswith(f"error: {target}: ") and fix in line, line


def test_the_reader_resolves_recorded_paths_relative_to_the_run(world, tmp_path):
    from cxrlab.rundir import RunDir

    runc = world.copy_run(tmp_path / "run")
    text = (runc / "config.yaml").read_text()
    (runc / "config.yaml").write_text(text.replace(str(world.index), "../elsewhere/index"))
    run_dir = RunDir(runc).check()
    assert run_dir.data_path("index") == runc / "../elsewhere/index"  # never the current directory
    assert run_dir.finished and run_dir.inputs() is not None
    assert RunDir.of_checkpoint(runc / "checkpoints" / "best.safetensors") == run_dir
    assert RunDir.of_predictions(runc / "predictions" / "test.csv").path == runc.resolve()
    assert RunDir.of_checkpoint(tmp_path / "loose" / "best.safetensors") is None


def test_one_manifest_schema_reads_ours_and_other_tools_spellings(world, tmp_path):
    from cxrlab.rundir import RunDir, RunManifest

    ours = RunDir(world.run).run_manifest()
    assert ours.parameters > 0 and ours.wall_seconds > 0 and ours.device == "cpu" and ours.seed == 0
    other = RunManifest.from_dict({"model_name": "vit", "params": 5000, "wall_time_s": 12.5, "throughput": 80.0,
                                   "seed": True, "device": 3})
    assert (other.model, other.parameters, other.wall_seconds, other.images_per_s) == ("vit", 5000, 12.5, 80.0)
    assert other.seed is None and other.device is None  # wrong types are absent, never passed on
    assert RunDir(tmp_path).run_manifest() == RunManifest()  # no manifest: every field None
