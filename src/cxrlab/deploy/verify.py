"""An exported model verifies itself before its first image (``predict --engine onnx``, ``serve``).

``cxrlab export`` writes ``model.onnx`` (the contract also inside it, as metadata) and ``model.json`` (the
contract, with ``files.onnx_sha256``). Before use:

1. the contract JSON must exist beside the model and record the file's sha256, and the file must hash to it
   (a flipped byte anywhere in the graph or the weights is refused, never turned into confident nonsense);
2. the contract JSON must agree with the copy inside the (now verified) ONNX file, field by field (an edited
   ``model.json``: classes reversed, another mean, task or size, is refused);
3. the contract must agree with the graph: input (batch, C, H, W) with C = ``in_chans`` and H = W =
   ``image_size``, the declared outputs, a ``logits`` output with one column per class, at least two columns for
   a multi-class model.

Each failure is a one-line ``CxrlabError`` naming the file and the fix (re-export with ``cxrlab export``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cxrlab.errors import CxrlabError

_FIX = "re-export it with `cxrlab export RUN --out MODEL.onnx`"


def open_verified(path: str | Path, threads: int | None = None, providers: list[str] | None = None):
    """``(engine, contract)`` for an exported model, after every check of the module docstring."""
    from cxrlab.deploy.onnx_engine import OnnxEngine

    path = Path(path)
    contract = read_contract(path)
    check_file_hash(path, contract)
    engine = OnnxEngine(path, providers=providers, threads=threads)
    check_metadata(path, contract, engine.metadata)
    check_graph(path, contract, engine.session)
    return engine, contract


def read_contract(path: Path) -> dict[str, Any]:
    """The contract JSON beside ``path`` (``model.onnx`` -> ``model.json``), with the fields verification needs."""
    from cxrlab.deploy.export import sidecar_paths
    from cxrlab.utils import read_json

    if path.suffix.lower() != ".onnx" or not path.is_file():
        raise CxrlabError(f"{path} is not an .onnx file; give a model written by `cxrlab export`")
    contract_path = sidecar_paths(path)[0]
    if not contract_path.is_file():
        raise CxrlabError(f"{path} has no cxrlab contract ({contract_path.name} beside it), so it cannot be "
                          f"verified; {_FIX}")
    contract = read_json(contract_path, kind=dict, required=("run", "inputs", "outputs", "files"), fix=_FIX)
    files = contract["files"] if isinstance(contract["files"], dict) else {}
    if not isinstance(files.get("onnx_sha256"), str):
        raise CxrlabError(f"{contract_path}: field 'files.onnx_sha256' is missing, so {path.name} cannot be "
                          f"verified; {_FIX}")
    return contract


def check_file_hash(path: Path, contract: dict[str, Any]) -> None:
    """The ONNX file hashes to the sha256 its contract records."""
    from cxrlab.utils import sha256_file

    recorded, actual = contract["files"]["onnx_sha256"], sha256_file(path)
    if actual != recorded:
        raise CxrlabError(f"{path} does not match its contract (sha256 {actual[:12]}..., "
                          f"{path.with_suffix('.json').name} records {recorded[:12]}...): the file is damaged or was "
                          f"replaced; {_FIX}")


def check_metadata(path: Path, contract: dict[str, Any], metadata: dict[str, Any]) -> None:
    """Every field of the contract copy inside the ONNX file equals the contract JSON's."""
    if not metadata:
        raise CxrlabError(f"{path} carries no cxrlab metadata to check {path.with_suffix('.json').name} against; "
                          f"{_FIX}")
    for key in ("run", "inputs", "outputs", "operating", "ood"):
        if key in metadata and metadata.get(key) != contract.get(key):
            field = _first_difference(metadata.get(key), contract.get(key), key)
            raise CxrlabError(f"{path.with_suffix('.json')}: field '{field}' differs from the contract inside "
                              f"{path.name} (the JSON was edited after export); {_FIX}")


def _first_difference(a: Any, b: Any, where: str) -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if a.get(k) != b.get(k):
                return _first_difference(a.get(k), b.get(k), f"{where}.{k}")
    return where


def check_graph(path: Path, contract: dict[str, Any], session: Any) -> None:
    """The graph's input and outputs are what the contract says (shape, channels, size, class count)."""
    run = contract["run"]
    pre = run.get("preprocess") or {}
    classes, task = list(run.get("classes") or []), run.get("task")
    inputs = session.get_inputs()
    shape = list(inputs[0].shape) if inputs else []
    want = [pre.get("in_chans"), pre.get("image_size"), pre.get("image_size")]
    if len(inputs) != 1 or len(shape) != 4 or shape[1:] != want or shape[1:] != list(contract["inputs"]["image"][1:]):
        raise CxrlabError(f"{path}: the graph's input {shape} does not match the contract (batch, in_chans, "
                          f"image_size, image_size) = (batch, {want[0]}, {want[1]}, {want[2]}); {_FIX}")
    names = [o.name for o in session.get_outputs()]
    if names != list(contract["outputs"]) or "logits" not in names:
        raise CxrlabError(f"{path}: the graph's outputs {names} are not the contract's {contract['outputs']}; {_FIX}")
    logits = session.get_outputs()[names.index("logits")].shape
    if len(logits) != 2 or logits[1] != len(classes) or (task == "multiclass" and len(classes) < 2):
        raise CxrlabError(f"{path}: the 'logits' output {list(logits)} does not fit the contract's {task} task with "
                          f"{len(classes)} classes; {_FIX}")
