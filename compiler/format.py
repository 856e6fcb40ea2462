"""AST → canonical .singa source (``singac fmt``, ``CheckedProgram.to_source()``).

Parsing the output gives back an equal AST (spans aside): the round trip is a property test.
Layout: blocks in the order written, separated by a blank line; two-space indent; one entry or
layer per line; ``key: value`` with one space; calls ``f(a, b, key: v)``."""
from __future__ import annotations

from . import ast

_PREC = {"+": 1, "-": 1, "*": 2, "/": 2}
INDENT = "  "


def format_program(program: ast.Program) -> str:
    parts = [_decl(d) for d in program.items]
    return "\n\n".join(parts) + ("\n" if parts else "")


def _decl(d) -> str:
    if isinstance(d, ast.ConstDecl):
        return f"const {d.name} = {format_expr(d.value)}"
    if isinstance(d, ast.NetDecl):
        lines = [_item(i) for i in d.items]
        return _braced(f"net {d.name}", lines)
    head = d.keyword + (f" {d.name}" if d.name is not None else "")
    if d.keyword == "algorithm" and not d.has_body:
        return head
    return _braced(head, [_entry(e) for e in d.entries])


def _braced(head: str, lines: list[str]) -> str:
    if not lines:
        return head + " {\n}"
    return head + " {\n" + "\n".join(INDENT + l for l in lines) + "\n}"


def _item(i) -> str:
    if isinstance(i, ast.Entry):
        return _entry(i)
    notes = "".join(f" @{a.name}" for a in i.annotations)
    return f"{i.name} = {format_expr(i.value)}{notes}"


def _entry(e: ast.Entry) -> str:
    return f"{e.key}: {format_expr(e.value)}"


def format_expr(e: ast.Expr) -> str:
    if isinstance(e, ast.Num):
        return _number(e.value)
    if isinstance(e, ast.Str):
        return _quote(e.value)
    if isinstance(e, ast.Bool):
        return "true" if e.value else "false"
    if isinstance(e, ast.Ref):
        return e.dotted
    if isinstance(e, ast.Neg):
        inner = format_expr(e.operand)
        return f"-({inner})" if isinstance(e.operand, ast.BinOp) else f"-{inner}"
    if isinstance(e, ast.BinOp):
        return _binop(e)
    if isinstance(e, ast.ListExpr):
        return "[" + ", ".join(format_expr(i) for i in e.items) + "]"
    if isinstance(e, ast.Record):
        return "(" + ", ".join(f"{f.name}: {format_expr(f.value)}" for f in e.fields) + ")"
    if isinstance(e, ast.Call):
        args = [format_expr(a) for a in e.args]
        args += [f"{k.name}: {format_expr(k.value)}" for k in e.kwargs]
        return f"{e.func}({', '.join(args)})"
    raise TypeError(f"not an expression: {e!r}")


def _binop(e: ast.BinOp) -> str:
    p = _PREC[e.op]
    left, right = format_expr(e.left), format_expr(e.right)
    if isinstance(e.left, ast.BinOp) and _PREC[e.left.op] < p:
        left = f"({left})"
    if isinstance(e.right, ast.BinOp) and _PREC[e.right.op] <= p:
        right = f"({right})"
    return f"{left} {e.op} {right}"


def _number(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    text = repr(float(v))
    # repr gives "1e-05" or "0.001": both are FLOAT tokens; "1.0" stays a float too.
    return {"inf": "1e999", "-inf": "-1e999"}.get(text, text)   # 1e999 reads back as inf


def _quote(s: str) -> str:
    out = s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return f'"{out}"'
