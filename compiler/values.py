"""Evaluate expressions on constants and bind call arguments to declared ``Attr``s.

Values after evaluation are plain Python: int, float, bool, str, tuple (lists), dict
(records), plus ``CallValue`` for calls that name something (an initializer, a schedule,
``every``, ``param``, ``share``) and ``RefValue`` for dotted references the evaluator does
not own (layer params, data fields and data constants are resolved by the caller).
Every problem is reported to a ``Diagnostics`` and evaluation goes on with ``INVALID``, so one
run reports every mistake.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from singa_dsl.errors import Diagnostics, SingaConfigError, SingaNameError, Span, UNKNOWN_SPAN
from singa_dsl.schema import Attr, KINDS
from . import ast


class _Invalid:
    """Stands in for a value that already produced an error (suppresses follow-on errors)."""
    def __repr__(self) -> str:
        return "INVALID"


INVALID = _Invalid()


@dataclass(frozen=True)
class CallValue:
    func: str
    args: tuple = ()
    kwargs: tuple[tuple[str, object], ...] = ()
    span: Span = field(default=UNKNOWN_SPAN, compare=False)
    node: ast.Call | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class RefValue:
    parts: tuple[str, ...]
    span: Span = field(default=UNKNOWN_SPAN, compare=False)

    @property
    def dotted(self) -> str:
        return ".".join(self.parts)


@dataclass
class Scope:
    """Names an expression may use: consts, and a resolver for dotted data constants."""
    consts: dict[str, object]
    resolve_dotted: Callable[[tuple[str, ...], Span], object] | None = None
    bare_words: bool = False     # a bare unknown name is a word (e.g. ``partition: batch``)


MAX_MAGNITUDE = 1e300     # beyond this a number is a typo, and float() of it may overflow


def _checked_number(v, span: Span, diag: Diagnostics):
    """Numbers must be finite and of sane size: 1e999 or 10**400 are mistakes, not values."""
    import math
    too_big = abs(v) > MAX_MAGNITUDE if isinstance(v, int) else not math.isfinite(v) or \
        abs(v) > MAX_MAGNITUDE
    if too_big:
        diag.error(SingaConfigError, "number is too large", span,
                   f"numbers must be finite and at most {MAX_MAGNITUDE:g} in size")
        return INVALID
    return v


def evaluate(expr: ast.Expr, scope: Scope, diag: Diagnostics):
    if isinstance(expr, ast.Num):
        return _checked_number(expr.value, expr.span, diag)
    if isinstance(expr, (ast.Str, ast.Bool)):
        return expr.value
    if isinstance(expr, ast.Ref):
        return _evaluate_ref(expr, scope, diag)
    if isinstance(expr, ast.Neg):
        v = evaluate(expr.operand, scope, diag)
        if v is INVALID:
            return INVALID
        if _is_number(v):
            return -v
        diag.error(SingaConfigError, f"cannot negate {_describe(v)}", expr.span)
        return INVALID
    if isinstance(expr, ast.BinOp):
        return _evaluate_binop(expr, scope, diag)
    if isinstance(expr, ast.ListExpr):
        items = tuple(evaluate(i, scope, diag) for i in expr.items)
        return INVALID if any(i is INVALID for i in items) else items
    if isinstance(expr, ast.Record):
        out = {}
        for f in expr.fields:
            if f.name in out:
                diag.error(SingaNameError, f"record field '{f.name}' given twice", f.span)
            out[f.name] = evaluate(f.value, scope, diag)
        return INVALID if any(v is INVALID for v in out.values()) else out
    if isinstance(expr, ast.Call):
        args = tuple(evaluate(a, scope, diag) for a in expr.args)
        kwargs = []
        seen = set()
        for k in expr.kwargs:
            if k.name in seen:
                diag.error(SingaNameError, f"argument '{k.name}' given twice", k.span)
            seen.add(k.name)
            kwargs.append((k.name, evaluate(k.value, scope, diag)))
        return CallValue(expr.func, args, tuple(kwargs), expr.span, expr)
    return INVALID


def _evaluate_ref(expr: ast.Ref, scope: Scope, diag: Diagnostics):
    if len(expr.parts) == 1:
        name = expr.parts[0]
        if name in scope.consts:
            return scope.consts[name]
        if scope.bare_words:
            return RefValue(expr.parts, expr.span)
        hint = _close(name, scope.consts) or "names in expressions must be bound with 'const'"
        diag.error(SingaNameError, f"undefined name '{name}'", expr.span, hint)
        return INVALID
    if scope.resolve_dotted is not None:
        return scope.resolve_dotted(expr.parts, expr.span)
    return RefValue(expr.parts, expr.span)


def _evaluate_binop(expr: ast.BinOp, scope: Scope, diag: Diagnostics):
    a, b = evaluate(expr.left, scope, diag), evaluate(expr.right, scope, diag)
    if a is INVALID or b is INVALID:
        return INVALID
    if not (_is_number(a) and _is_number(b)):
        bad = a if not _is_number(a) else b
        diag.error(SingaConfigError, f"'{expr.op}' needs numbers, got {_describe(bad)}", expr.span)
        return INVALID
    if expr.op in "+-*":
        if abs(a) > MAX_MAGNITUDE or abs(b) > MAX_MAGNITUDE:
            return _checked_number(float("inf"), expr.span, diag)
        value = a + b if expr.op == "+" else a - b if expr.op == "-" else a * b
        return _checked_number(value, expr.span, diag)
    if b == 0:
        diag.error(SingaConfigError, "division by zero", expr.span)
        return INVALID
    # Integer division stays integral when exact, so `H / 2` can still size a layer.
    if isinstance(a, int) and isinstance(b, int) and a % b == 0:
        return a // b
    try:
        return _checked_number(a / b, expr.span, diag)
    except OverflowError:
        return _checked_number(float("inf"), expr.span, diag)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _describe(v) -> str:
    if isinstance(v, bool):
        return f"the boolean {str(v).lower()}"
    if isinstance(v, str):
        return f"the string {v!r}"
    if isinstance(v, tuple):
        return "a list"
    if isinstance(v, dict):
        return "a record"
    if isinstance(v, CallValue):
        return f"a call to {v.func}()"
    if isinstance(v, RefValue):
        return f"the name '{v.dotted}'"
    return f"the number {v}"


def _close(name: str, known) -> str | None:
    import difflib
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None


# ---- binding a call's arguments to declared attributes -----------------------------------
@dataclass(frozen=True)
class Bound:
    """The values of a call's attributes, with the span each came from (for later errors)."""
    values: dict
    spans: dict


def bind(what: str, attrs: tuple[Attr, ...], args: tuple, kwargs: tuple, node: ast.Call | None,
         span: Span, diag: Diagnostics, extra_kinds: dict | None = None) -> Bound:
    """Bind positional (for attrs marked positional, in order) and keyword arguments."""
    table = {a.name: a for a in attrs}
    positional = [a for a in attrs if a.positional]
    values, spans = {}, {}
    arg_nodes = node.args if node is not None else (None,) * len(args)
    for i, value in enumerate(args):
        s = arg_nodes[i].span if i < len(arg_nodes) and arg_nodes[i] is not None else span
        if i >= len(positional):
            names = ", ".join(a.name for a in positional) or "none"
            diag.error(SingaConfigError, f"{what} takes {len(positional)} positional "
                       f"argument{'s' if len(positional) != 1 else ''}, got {len(args)}", s,
                       f"positional arguments of {what}: {names}; give the rest by name")
            break
        a = positional[i]
        values[a.name], spans[a.name] = value, s
    kw_nodes = {k.name: k for k in node.kwargs} if node is not None else {}
    by_position = set(values)
    for name, value in kwargs:
        s = kw_nodes[name].span if name in kw_nodes else span
        if name not in table:
            known = ", ".join(a.name for a in attrs) or "none"
            close = _close(name, table)
            diag.error(SingaNameError, f"unknown attribute '{name}' for {what}", s,
                       f"{close + ' ' if close else ''}attributes of {what}: {known}")
            continue
        if name in values:
            if name in by_position:
                diag.error(SingaConfigError, f"attribute '{name}' of {what} given twice "
                           "(by position and by name)", s)
            continue       # a repeated keyword was reported where the call was read
        values[name], spans[name] = value, s
    for a in attrs:
        if a.name in values:
            values[a.name] = coerce(a, values[a.name], spans[a.name], what, diag, extra_kinds)
        elif a.required:
            diag.error(SingaConfigError, f"{what} needs '{a.name}'", span,
                       f"{a.name}: {KINDS.get(a.kind, a.kind)}" + (f" — {a.doc}" if a.doc else ""))
            values[a.name] = INVALID
        else:
            values[a.name] = a.default
    return Bound(values, spans)


def coerce(a: Attr, value, span: Span, what: str, diag: Diagnostics, extra_kinds=None):
    """Check a value against an Attr's kind and range; return the normalised value."""
    if value is INVALID:
        return INVALID
    out = _coerce_kind(a, value, extra_kinds)
    if out is INVALID:
        expected = "one of " + " | ".join(a.choices) if a.kind == "choice" else KINDS.get(a.kind, a.kind)
        diag.error(SingaConfigError, f"'{a.name}' of {what} must be {expected}, got {_describe(value)}",
                   span)
        return INVALID
    problem = a.range_error(out)
    if problem:
        diag.error(SingaConfigError, f"{problem} (in {what})", span)
        return INVALID
    return out


def _coerce_kind(a: Attr, v, extra_kinds):
    k = a.kind
    if extra_kinds and k in extra_kinds:
        return extra_kinds[k](v)
    if k == "int":
        return v if isinstance(v, int) and not isinstance(v, bool) else INVALID
    if k == "float":
        return float(v) if _is_number(v) else INVALID
    if k == "bool":
        return v if isinstance(v, bool) else INVALID
    if k in ("str", "path"):
        return v if isinstance(v, str) else INVALID
    if k == "ints":
        items = v if isinstance(v, tuple) else (v,)
        ok = all(isinstance(i, int) and not isinstance(i, bool) for i in items)
        return tuple(items) if ok else INVALID
    if k == "floats":
        items = v if isinstance(v, tuple) else (v,)
        return tuple(float(i) for i in items) if all(_is_number(i) for i in items) else INVALID
    if k == "clip":
        if _is_number(v):
            return (-abs(float(v)), abs(float(v)))
        if isinstance(v, tuple) and len(v) == 2 and all(_is_number(i) for i in v):
            return (float(v[0]), float(v[1]))
        return INVALID
    if k == "record":
        return v if isinstance(v, dict) else INVALID
    if k == "choice":
        word = v.dotted if isinstance(v, RefValue) else v
        return word if isinstance(word, str) and word in a.choices else INVALID
    if k in ("init", "schedule", "every"):
        return v        # structured values are checked by their owners
    return v


def bind_registered_call(registry, what: str, value: CallValue, span: Span,
                         diag: Diagnostics) -> dict | None:
    """A call naming an entry of a registry (a schedule, an initializer): unknown names get
    the registry's did-you-mean hint; arguments are bound to the entry's attrs and checked
    with its ``validate`` (cross-attribute rules).  None once an error is reported."""
    if value.func not in registry:
        diag.error(SingaNameError, f"unknown {what} '{value.func}'",
                   value.node.func_span if value.node else span,
                   registry.unknown_hint(value.func))
        return None
    entry = registry[value.func]
    b = bind(f"{value.func}()", entry.attrs, value.args, value.kwargs, value.node, value.span,
             diag)
    if INVALID in b.values.values():
        return None
    problem = entry.validate(b.values) if hasattr(entry, "validate") else None
    if problem:
        diag.error(SingaConfigError, problem, value.span)
        return None
    return b.values
