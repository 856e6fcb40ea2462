"""AST → canonical .singa source (``singac fmt``, ``CheckedProgram.to_source()``).

Parsing the output gives back an equal AST (spans aside): the round trip is a property test.
Layout: blocks in the order written, separated by a blank line; two-space indent; one entry or
layer per line; ``key: value`` with one space; calls ``f(a, b, key: v)``."""
from __future__ import annotations

from . import ast

_PREC = {"+": 1, "-": 1, "*": 2, "/": 2}
INDENT = "  "


def format_program(program: ast.Program, source: str | None = None) -> str:
    """The canonical text of ``program``; with its ``source``, the comments are kept: a
    comment on a line of its own stays above the entry, layer or block that follows it, one
    after code stays at the end of that code's line (``gofmt`` keeps them the same way)."""
    notes = _Comments(source)
    parts = []
    for d in program.items:
        parts.append("\n".join(notes.before(d.span.line, "") + [_decl(d, notes)]))
    tail = notes.rest()
    text = "\n\n".join(parts)
    if tail:
        text += ("\n\n" if parts else "") + "\n".join(tail)
    return text + "\n" if text else ""


def _decl(d, notes: "_Comments") -> str:
    if isinstance(d, ast.ConstDecl):
        return f"const {d.name} = {format_expr(d.value)}" + notes.trailing(d.span.end_line)
    if isinstance(d, ast.NetDecl):
        return _braced(f"net {d.name}", d.items, _item, d.span, notes)
    head = d.keyword + (f" {d.name}" if d.name is not None else "")
    if d.keyword == "algorithm" and not d.has_body:
        return head + notes.trailing(d.span.end_line)
    return _braced(head, d.entries, _entry, d.span, notes)


def _braced(head: str, items, fmt, span, notes: "_Comments") -> str:
    first = items[0].span.line if items else span.end_line
    head += " {" + notes.trailing(first - 1)
    lines = []
    for k, item in enumerate(items):
        lines += notes.before(item.span.line, INDENT)
        text = INDENT + fmt(item)
        following = items[k + 1].span.line if k + 1 < len(items) else None
        if following is None or following > item.span.end_line:   # last on its line
            text += notes.trailing(item.span.end_line)
        lines.append(text)
    lines += notes.before(span.end_line, INDENT)
    return "\n".join([head] + lines + ["}" + notes.trailing(span.end_line)])


class _Comments:
    """The source's comments, handed out by position as the formatter walks the AST."""

    def __init__(self, source: str | None):
        self._left = _scan(source) if source else []      # (line, own line?, text)

    def before(self, line: int, indent: str) -> list[str]:
        """Comments on lines above ``line`` not yet placed, each on a line of its own."""
        out = [indent + text for at, _, text in self._left if at < line]
        self._left = [c for c in self._left if c[0] >= line]
        return out

    def trailing(self, end_line: int) -> str:
        """Comments after code on lines up to ``end_line``, for the end of a line."""
        mine = [text for at, own, text in self._left if at <= end_line and not own]
        self._left = [c for c in self._left if not (c[0] <= end_line and not c[1])]
        return "".join("  " + t for t in mine)

    def rest(self) -> list[str]:
        out = [text for _, _, text in self._left]
        self._left = []
        return out


def _scan(source: str) -> list[tuple[int, bool, str]]:
    """Every ``# ...`` comment outside a string: (line, alone on its line?, text)."""
    out = []
    for number, line in enumerate(source.splitlines(), 1):
        in_string, escaped = False, False
        for col, ch in enumerate(line):
            if in_string:
                if escaped:
                    escaped = False
                elif ch == "\\":
                    escaped = True
                elif ch == '"':
                    in_string = False
            elif ch == '"':
                in_string = True
            elif ch == "#":
                out.append((number, not line[:col].strip(), line[col:].rstrip()))
                break
    return out


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
