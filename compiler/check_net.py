"""The net block → layer drafts: nested calls flattened into named layers, sources split
from attributes, attributes bound and typed.  Shapes and params come later (``graph.py``),
once every layer is known, so layers may be written in any order."""
from __future__ import annotations

from dataclasses import dataclass, field

from singa_dsl.errors import Diagnostics, SingaConfigError, SingaNameError, Span
from singa_dsl.schema import Attr
from . import ast
from .ops import OPS, OpDef
from .values import INVALID, Bound, Scope, bind, evaluate

PARTITIONS = ("batch", "feature", "none")
NET_ATTRS = (
    Attr("partition", "choice", "batch", "default partition of every layer",
         choices=("batch", "feature", "none", "auto")),
    Attr("unroll", "int", 1, "time steps a recurrent net is unrolled for BPTT", gt=0),
)


@dataclass(frozen=True)
class SourceRef:
    """A layer's input: another layer (``fc1``) or a data field (``mnist.label``)."""
    name: str
    is_field: bool
    span: Span


@dataclass
class LayerDraft:
    name: str
    op: OpDef
    sources: list[SourceRef]
    bound: Bound
    partition: str | None          # None: the net's default
    span: Span
    name_span: Span
    partition_span: Span | None = None
    children: list[str] = field(default_factory=list)


def check_net_entries(net: ast.NetDecl, scope: Scope, diag: Diagnostics) -> dict:
    from .check_blocks import _fake_call, entries_as_call
    kwargs, spans = entries_as_call(f"net {net.name}", net.entries, scope, diag, bare_words=True)
    b = bind(f"net {net.name}", NET_ATTRS, (), kwargs, _fake_call("net", kwargs, spans),
             net.name_span, diag)
    out = {k: (a.default if v is INVALID else v) for a in NET_ATTRS for k, v in
           [(a.name, b.values[a.name])]}
    out["spans"] = b.spans
    return out


def layer_drafts(net: ast.NetDecl, scope: Scope, data_blocks: set[str],
                 diag: Diagnostics) -> tuple[list[LayerDraft], set[str]]:
    """The drafts, and the names of statements that already reported an error (their uses
    must not add 'undefined layer' errors on top)."""
    drafts: list[LayerDraft] = []
    names: dict[str, Span] = {}
    for stmt in net.layers:
        if stmt.name in names:
            diag.error(SingaNameError, f"layer '{stmt.name}' is defined twice", stmt.name_span,
                       f"the first definition is at line {names[stmt.name].line}")
            continue
        if stmt.name in data_blocks:
            diag.error(SingaNameError, f"layer '{stmt.name}' has the name of a data block",
                       stmt.name_span, "rename the layer")
        names[stmt.name] = stmt.name_span
        partition, pspan = _annotation(stmt, diag)
        _flatten(stmt.name, stmt.value, stmt, partition, pspan, scope, data_blocks, drafts, diag)
    broken = set(names) - {d.name for d in drafts}
    return drafts, broken


def _annotation(stmt: ast.Layer, diag: Diagnostics):
    partition, span = None, None
    for a in stmt.annotations:
        if a.name not in PARTITIONS:
            diag.error(SingaNameError, f"unknown annotation '@{a.name}'", a.span,
                       "annotations: " + ", ".join("@" + p for p in PARTITIONS))
        elif partition is not None:
            diag.error(SingaConfigError, f"layer '{stmt.name}' has two partition annotations",
                       a.span)
        else:
            partition, span = a.name, a.span
    return partition, span


def _flatten(name: str, expr: ast.Expr, stmt: ast.Layer, partition, pspan, scope: Scope,
             data_blocks: set[str], drafts: list[LayerDraft], diag: Diagnostics) -> str | None:
    """Make a draft for ``name = expr``; nested calls become layers ``name.op``."""
    if not isinstance(expr, ast.Call):
        diag.error(SingaConfigError, "a layer must be an op call such as dense(x, 10)", expr.span)
        return None
    op = OPS.get(expr.func)
    if op is None:
        diag.error(SingaNameError, f"unknown op '{expr.func}'", expr.func_span,
                   OPS.unknown_hint(expr.func))
        return None
    n_sources = len(expr.args) if op.variadic else len(op.sources)
    if len(expr.args) < op.min_sources:
        missing = op.sources[len(expr.args)].rstrip(".")
        diag.error(SingaConfigError, f"{op.name} needs its source '{missing}'", expr.span,
                   f"write {op.name}({', '.join(s.rstrip('.') for s in op.sources)}, ...)")
        return None
    sources = []
    taken = {d.name for d in drafts}
    for i, arg in enumerate(expr.args[:n_sources]):
        if isinstance(arg, ast.Call):
            inner = f"{name}.{arg.func}"
            k = 2
            while inner in taken:
                inner, k = f"{name}.{arg.func}{k}", k + 1
            taken.add(inner)
            got = _flatten(inner, arg, stmt, partition, pspan, scope, data_blocks, drafts, diag)
            if got is not None:
                sources.append(SourceRef(got, False, arg.span))
        elif isinstance(arg, ast.Ref) and len(arg.parts) <= 2:
            is_field = len(arg.parts) == 2
            if is_field and arg.parts[0] not in data_blocks:
                diag.error(SingaNameError, f"'{arg.dotted}' is not a data field: there is no "
                           f"data block '{arg.parts[0]}'", arg.span,
                           _known("data blocks", data_blocks))
                continue
            sources.append(SourceRef(arg.dotted, is_field, arg.span))
        else:
            diag.error(SingaConfigError, f"source {i + 1} of {op.name} must be a layer or a data "
                       "field", arg.span, f"{op.name} takes its sources first: "
                       f"{op.name}({', '.join(s.rstrip('.') for s in op.sources)}, ...)")
    args = tuple(evaluate(a, scope, diag) for a in expr.args[n_sources:])
    kwargs = tuple((k.name, evaluate(k.value, scope, diag)) for k in expr.kwargs)
    seen = set()
    for k in expr.kwargs:
        if k.name in seen:
            diag.error(SingaNameError, f"argument '{k.name}' given twice", k.span)
        seen.add(k.name)
    sub = ast.Call(expr.func, expr.args[n_sources:], expr.kwargs, expr.span, expr.func_span)
    bound = bind(f"{op.name} layer '{name}'", op.attrs, args, kwargs, sub, expr.span, diag)
    drafts.append(LayerDraft(name, op, sources, bound, partition, expr.span,
                             stmt.name_span if name == stmt.name else expr.func_span, pspan))
    return name


def _known(what: str, names) -> str:
    return f"{what}: {', '.join(sorted(names))}" if names else f"no {what} are declared"
