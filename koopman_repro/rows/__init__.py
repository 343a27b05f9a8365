"""Declared results: every results table has a row type with named fields.

An experiment's ``run`` returns plain data; its tables are lists of dicts, one per row. Each
table is declared here, in ``rows/<experiment>.py``, as a frozen dataclass registered under
``(experiment, table)``. Readers (the scorecard, the chapter modules) take rows through
:func:`table`, which builds the dataclasses and so fails loudly on a missing or unknown field,
and read attributes, not strings. :func:`results_schema` turns the row types into a JSON Schema
that validates whole results files (``tests/test_results_schema_declared.py`` checks every
committed file after :mod:`koopman_repro.migrations` has upgraded it).

Adding a metric: add the field to the row type (with a default of ``None`` if older files lack
it, which :mod:`koopman_repro.migrations` fills), write it in the producer, read it as an
attribute. Nothing else knows about older files.
"""
from __future__ import annotations

import dataclasses
import importlib
import types
import typing
from typing import Any, TypeVar

#: experiment name -> module in this package that declares its tables
MODULES = {"perceptron": "perceptron", "de-solver": "de_solver", "mnist": "mnist", "beyond": "beyond",
           "bench": "bench"}

#: the current schema version of every experiment's results file (a file of an older version is
#: upgraded on load by :mod:`koopman_repro.migrations`)
SCHEMA_VERSION = {"perceptron": 1, "de-solver": 1, "mnist": 1, "beyond": 1, "bench": 1}

_REGISTRY: dict[tuple[str, str], type] = {}
R = TypeVar("R", bound="Row")


class Row:
    """Base of the declared row types: built from a results dict, back to one, field by field."""

    @classmethod
    def from_dict(cls: type[R], data: dict) -> R:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"{cls.__name__}: fields {unknown} are not declared; declare them in "
                             f"{cls.__module__} (or upgrade the file in koopman_repro.migrations)")
        return cls(**data)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def register(experiment: str, table: str):
    """Class decorator: declare ``cls`` as the row type of ``experiment``'s ``table``."""
    def deco(cls):
        _REGISTRY[(experiment, table)] = cls
        cls.experiment, cls.table = experiment, table
        return cls
    return deco


def _load(experiment: str) -> None:
    if experiment not in MODULES:
        raise ValueError(f"no declared results for experiment {experiment!r}; choose one of {sorted(MODULES)}")
    importlib.import_module(f".{MODULES[experiment]}", __name__)


def row_type(experiment: str, table: str) -> type:
    """The row dataclass of ``experiment``'s ``table``."""
    _load(experiment)
    try:
        return _REGISTRY[(experiment, table)]
    except KeyError:
        known = sorted(t for e, t in _REGISTRY if e == experiment)
        raise ValueError(f"{experiment} has no declared table {table!r}; declared: {known}") from None


def tables(experiment: str) -> dict[str, type]:
    """Every declared table of ``experiment``: ``{table: row type}``."""
    _load(experiment)
    return {t: cls for (e, t), cls in _REGISTRY.items() if e == experiment}


def table(results: dict, table_name: str, experiment: str | None = None) -> list:
    """The rows of ``results[table_name]`` as declared dataclasses. ``experiment`` defaults to the
    one the results' provenance names (``results["experiment"]``)."""
    experiment = experiment or results.get("experiment")
    if experiment is None:
        raise ValueError("these results do not say which experiment made them: pass experiment=")
    cls = row_type(experiment, table_name)
    return [cls.from_dict(r) for r in results.get(table_name) or []]


# -- JSON Schema --------------------------------------------------------------------------
_JSON = {int: {"type": "integer"}, float: {"type": "number"}, str: {"type": "string"},
         bool: {"type": "boolean"}, list: {"type": "array"}, dict: {"type": "object"},
         type(None): {"type": "null"}}


def _schema_of(annotation: Any, namespace: dict) -> dict:
    if isinstance(annotation, str):
        annotation = eval(annotation, namespace)  # noqa: S307  the module's own annotations
    if annotation is object or annotation is Any:
        return {}
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = [_schema_of(a, namespace) for a in typing.get_args(annotation)]
        return {} if {} in options else {"anyOf": options}
    if annotation is float:  # an integer is a number too (JSON writes 2.0 as 2.0, but 2 stays 2)
        return {"type": "number"}
    base = origin or annotation
    if base not in _JSON:
        raise TypeError(f"no JSON type for {annotation!r}")
    return dict(_JSON[base])


def row_schema(cls: type) -> dict:
    """JSON Schema of one declared row type: its fields, their types, required unless defaulted."""
    namespace = vars(importlib.import_module(cls.__module__))
    props, required = {}, []
    for f in dataclasses.fields(cls):
        props[f.name] = _schema_of(f.type, namespace)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            required.append(f.name)
    return {"type": "object", "title": cls.__name__, "properties": props, "required": required,
            "additionalProperties": False}


def results_schema(experiment: str) -> dict:
    """JSON Schema of a results file of ``experiment`` at the current schema version."""
    props: dict = {"schema_version": {"const": SCHEMA_VERSION[experiment]},
                   "experiment": {"const": experiment}}
    for name, cls in tables(experiment).items():
        props[name] = {"type": "array", "items": row_schema(cls)}
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": f"{experiment} results",
            "type": "object", "properties": props, "required": ["schema_version", "experiment"]}


def validate(results: dict, experiment: str) -> list[str]:
    """Every violation of :func:`results_schema` in ``results`` (empty when it conforms)."""
    import jsonschema
    validator = jsonschema.Draft202012Validator(results_schema(experiment))
    return [f"{'/'.join(map(str, e.absolute_path)) or '(file)'}: {e.message}"
            for e in sorted(validator.iter_errors(results), key=lambda e: list(map(str, e.absolute_path)))]
