"""Plain data (YAML) onto a tree of dataclasses, strictly: unknown keys name the nearest valid one, values are
checked against the type hints. The training config (``cxrlab.config``) and the study file
(``cxrlab.study.spec``) are both built this way.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from cxrlab.errors import CxrlabError


@dataclass(frozen=True)
class Schema:
    """How plain data maps onto a tree of dataclasses: what it is called in errors, which list fields hold
    dataclasses (``lists``), which fields are free mappings kept as given (``mappings``), and root fields that
    are not read from data (``skip``). The training config and the study file share this builder."""

    root: type
    what: str = "config"
    lists: dict[str, type] = field(default_factory=dict)
    mappings: tuple[str, ...] = ()
    skip: tuple[str, ...] = ()

    def fields(self, cls: type) -> list[dataclasses.Field]:
        return [f for f in dataclasses.fields(cls) if not (cls is self.root and f.name in self.skip)]


def valid_keys(schema: Schema, cls: type | None = None, prefix: str = "") -> list[str]:
    """Every dotted key the schema accepts (for "did you mean" hints)."""
    cls = cls or schema.root
    keys = []
    hints = typing.get_type_hints(cls)
    for f in schema.fields(cls):
        keys.append(prefix + f.name)
        item = hints[f.name] if dataclasses.is_dataclass(hints[f.name]) else schema.lists.get(f.name)
        if item is not None:
            keys += valid_keys(schema, item, prefix + f.name + ".")
    return keys


def unknown_key(schema: Schema, key: str) -> CxrlabError:
    """The error for a key the schema does not have, naming the nearest valid one."""
    close = difflib.get_close_matches(key, valid_keys(schema), n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return CxrlabError(f"unknown {schema.what} key {key!r}{hint}")


def dataclass_from_dict(schema: Schema, data: Any, cls: type | None = None, prefix: str = "") -> Any:
    """Build ``cls`` (default the schema's root) from plain data: unknown keys and wrong types are errors."""
    cls = cls or schema.root
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise CxrlabError(f"{schema.what} {prefix.rstrip('.') or 'root'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in schema.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        key = str(key)
        if key not in names:
            raise unknown_key(schema, prefix + key)
        hint, where = hints[key], prefix + key
        if dataclasses.is_dataclass(hint):
            kwargs[key] = dataclass_from_dict(schema, value, hint, where + ".")
        elif key in schema.lists:
            if not isinstance(value, list):
                raise CxrlabError(f"{schema.what} {where}: expected a list of mappings, got {value!r}")
            kwargs[key] = [dataclass_from_dict(schema, v, schema.lists[key], where + ".") for v in value]
        elif key in schema.mappings:
            if not isinstance(value, dict):
                raise CxrlabError(f"{schema.what} {where}: expected a mapping of dotted config keys, got {value!r}")
            kwargs[key] = {str(k): v for k, v in value.items()}
        else:
            kwargs[key] = _coerce(value, hint, where)
    return cls(**kwargs)


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """Check ``value`` against a type hint, converting the few safe cases (int -> float, '1e-3' -> float)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg, key)
            except CxrlabError:
                continue
        raise CxrlabError(f"config {key}: {value!r} is not a valid {_type_name(hint)}")
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise CxrlabError(f"config {key}: expected a list, got {value!r}")
        return [_coerce(v, args[0], key) for v in value]
    if origin is dict:
        if not isinstance(value, dict):
            raise CxrlabError(f"config {key}: expected a mapping, got {value!r}")
        return {str(k): _coerce(v, args[1], f"{key}.{k}") for k, v in value.items()}
    return _coerce_scalar(value, hint, key)


def _coerce_scalar(value: Any, hint: type, key: str) -> Any:
    if hint is bool and isinstance(value, bool):
        return value
    if hint is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if hint is float and not isinstance(value, bool):
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 as a string
            try:
                return float(value)
            except ValueError:
                pass
    if hint is str and isinstance(value, str):
        return value
    if hint is str and isinstance(value, bool):  # YAML 1.1 reads off/on/no/yes as booleans: train.amp=off
        return "on" if value else "off"
    if hint is str and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise CxrlabError(f"config {key}: {value!r} is not a valid {_type_name(hint)}")


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


# --------------------------------------------------------------------------- strict YAML files


def _strict_loader() -> type:
    import yaml

    class StrictLoader(yaml.SafeLoader):
        """SafeLoader that refuses a key written twice in one mapping (YAML would keep the last silently)."""

        def construct_mapping(self, node, deep=False):  # type: ignore[override]
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                if isinstance(key, typing.Hashable) and key in seen:
                    raise CxrlabError(f"{self.name}: line {line}: key {key!r} is given twice (first on line "
                                      f"{seen[key]}); keep one")
                seen[key] = line
            return super().construct_mapping(node, deep=deep)

    return StrictLoader


def load_yaml(path: Any) -> Any:
    """Parse a YAML file strictly: a duplicate key (naming it and its lines) or invalid YAML is a one-line
    ``CxrlabError`` naming the file."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise CxrlabError(f"{path} is not a UTF-8 text file; give a YAML file") from None
    loader = _strict_loader()(text)
    loader.name = str(path)
    try:
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        raise CxrlabError(f"{path} is not valid YAML ({str(exc).splitlines()[0]})") from None
    finally:
        loader.dispose()
