"""Checks of ``data`` blocks: each phase names a known source with valid attributes, and its
files exist and look right (headers only: this runs before anything is loaded)."""
from __future__ import annotations

import pathlib

from singa_dsl.errors import Diagnostics, SingaConfigError, SingaDataError, SingaNameError
from singa_dsl.runtime.data.registry import SOURCES
from . import ast
from .model import DataSpec, SourceSpec
from .values import INVALID, CallValue, Scope, bind, evaluate

PHASES = ("train", "test", "validate")


def check_data(block: ast.Block, scope: Scope, base_dir: pathlib.Path,
               diag: Diagnostics) -> DataSpec:
    phases, seen = {}, set()
    for entry in block.entries:
        if entry.key not in PHASES:
            diag.error(SingaNameError, f"unknown phase '{entry.key}' in data {block.name}",
                       entry.key_span, "phases: " + ", ".join(PHASES))
            continue
        if entry.key in seen:
            diag.error(SingaNameError, f"phase '{entry.key}' is set twice in data {block.name}",
                       entry.key_span)
            continue
        seen.add(entry.key)
        spec = _check_source(evaluate(entry.value, scope, diag), entry, base_dir, diag)
        if spec is not None:
            phases[entry.key] = spec
    _check_phases_agree(block, phases, diag)
    return DataSpec(block.name, phases, block.span, tuple(sorted(seen)))


def _check_source(value, entry: ast.Entry, base_dir: pathlib.Path,
                  diag: Diagnostics) -> SourceSpec | None:
    if value is INVALID:
        return None
    if not isinstance(value, CallValue):
        diag.error(SingaConfigError, f"'{entry.key}' must name a data source, such as "
                   "digits(split: \"train\", batch: 64)", entry.value.span,
                   SOURCES.unknown_hint("?").replace("did you mean '?'? ", ""))
        return None
    if value.func not in SOURCES:
        diag.error(SingaNameError, f"unknown data source '{value.func}'", value.node.func_span,
                   SOURCES.unknown_hint(value.func))
        return None
    source = SOURCES[value.func]
    b = bind(f"{value.func}()", source.attrs, value.args, value.kwargs, value.node, value.span,
             diag)
    if INVALID in b.values.values():
        return None
    try:
        fields = source.fields(b.values, base_dir)
        constants = source.constants(b.values, base_dir)
    except SingaDataError as e:
        # Point at the argument naming the file when we can, else at the whole call.
        span = next((b.spans[k] for k in ("images", "labels", "path") if k in b.spans
                     and _names_file(b.values[k], e.message)), value.span)
        diag.error(SingaDataError, e.message, span, e.hint)
        return None
    return SourceSpec(value.func, dict(b.values), str(base_dir),
                      {n: (f.shape, f.dtype) for n, f in fields.items()}, dict(constants),
                      value.span)


def _names_file(value, message: str) -> bool:
    return isinstance(value, str) and pathlib.Path(value).name in message


def _check_phases_agree(block: ast.Block, phases: dict, diag: Diagnostics):
    """Every phase must offer the fields of the training phase, with the same shapes."""
    if "train" not in phases:
        return
    train = phases["train"]
    for name, spec in phases.items():
        for field, (shape, dtype) in train.fields.items():
            other = spec.fields.get(field)
            if other is not None and tuple(other[0]) != tuple(shape):
                diag.error(SingaConfigError, f"field '{field}' of {name} data has shape "
                           f"{list(other[0])} but the train data's is {list(shape)}", spec.span)
