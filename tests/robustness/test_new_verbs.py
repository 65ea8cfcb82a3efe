"""Hostile inputs for the verbs added with merged datasets, INT8 export and others' weights files: one-line
errors naming the fix, and every input unchanged (no file written into an input folder)."""

from __future__ import annotations

from .helpers import run


def test_merge_out_onto_a_member_index_is_refused(world, capsys, all_inputs):
    run(capsys, ["data", "merge", f"a={world.index}", f"b={world.index}", "--out", world.index],
        inputs=all_inputs, says="--out")


def test_merge_of_a_missing_index_names_it(world, tmp_path, capsys, all_inputs):
    missing = tmp_path / "no_such_index"
    run(capsys, ["data", "merge", f"a={world.index}", f"b={missing}", "--out", tmp_path / "m"],
        inputs=all_inputs, missing=missing)


def test_int8_export_whose_contract_would_replace_the_runs_manifest_is_refused(world, capsys, all_inputs):
    run(capsys, ["export", world.run, "--out", world.run / "manifest.onnx", "--quantize", "int8"],
        inputs=all_inputs, says=("--out", "manifest.json"))


def test_xrv_model_with_three_channels_is_a_config_error(world, tmp_path, capsys, all_inputs):
    run(capsys, world.train_args(tmp_path / "r", "model.name=xrv:densenet121", "model.in_chans=3"),
        inputs=all_inputs, says=("1-channel", "model.in_chans=1"))


def test_a_pickled_object_given_as_weights_is_refused_unrun(world, tmp_path, capsys, all_inputs):
    import pickle

    class Payload:
        def __reduce__(self):
            import os

            return (os.system, ("echo pwned > /dev/null",))

    weights = tmp_path / "evil.pt"
    weights.write_bytes(pickle.dumps({"model": Payload()}))
    run(capsys, world.train_args(tmp_path / "r", f"model.weights={weights}"), inputs=[*all_inputs, weights],
        says=("model.weights", "evil.pt"))
