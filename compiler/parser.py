"""Text → AST.  lark builds a parse tree (LALR, positions kept); a non-recursive Transformer
turns it into the frozen AST of ``compiler.ast``, and does nothing else: every check happens
in a later pass, because an exception inside a Transformer would come out as a VisitError.

Syntax errors are turned into located ``SingaSyntaxError``s with a message a person can act
on (lark's ``match_examples`` labels common mistakes by the parser state they end in).
"""
from __future__ import annotations

import functools
from importlib import resources

from lark import Lark, Token, Transformer_NonRecursive, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from singa_dsl.errors import SingaErrors, SingaSyntaxError, Span
from . import ast

MAX_DEPTH = 200   # deeper expressions are refused before any recursive pass sees them

# Words a person means when lark says "expected one of ...": terminal name → what to type.
_TERMINAL_WORDS = {
    "NAME": "a name", "INT": "an integer", "FLOAT": "a number", "STRING": "a string",
    "LBRACE": "'{'", "RBRACE": "'}'", "LPAR": "'('", "RPAR": "')'", "LSQB": "'['",
    "RSQB": "']'", "COLON": "':'", "EQUAL": "'='", "COMMA": "','", "DOT": "'.'",
    "AT": "'@'", "TRUE": "true", "FALSE": "false", "MINUS": "'-'", "PLUS": "'+'",
    "STAR": "'*'", "SLASH": "'/'", "$END": "end of file",
    "_CONST": "'const'", "_JOB": "'job'", "_DATA": "'data'", "_NET": "'net'",
    "_ALGORITHM": "'algorithm'", "_UPDATER": "'updater'", "_CLUSTER": "'cluster'",
}

# Example fragments of common mistakes, labelled; see lark's error_reporting_lalr example.
_SYNTAX_EXAMPLES = {
    "missing ':' between a key and its value": [
        "job j { steps 10 }", "cluster { workers_per_group 2 }", "updater sgd { lr 0.1 }"],
    "missing '=' in a layer statement (write NAME = op(...))": [
        "net n { x input(d.image) }", "net n { fc dense(x, 10) }"],
    "a block must start with one of: const, job, data, net, algorithm, updater, cluster": [
        "layer x", "foo {", "nett n {", "jobs j {", "x = 1", "const a = 1\nfoo {",
        # after each kind of block (the parser state differs by block)
        "job j {}\nx = 1", "net n {}\nlayer x", "data d {}\nx {", "updater u {}\nx {",
        "cluster {}\nx {", "algorithm bp\nalgorithmm cd", "algorithm a { }\nx",
        "job j { a: 1 }\nx", "data d { a: b(c) }\nx", "net n { x = a(b) }\nx",
        "net n { x = a(b) @feature }\nx", "net n { p: batch }\nx", "updater u { a: 1 }\nx",
        "cluster { a: 1 }\nx", "algorithm cd { k: 1 }\nx"],
    "unclosed '(' : a call or group is missing its ')'": [
        "net n { x = input(d.image }", "const a = (1 + 2", "net n { x = dense(y, 10 }",
        "net n { x = relu(a\n y = b(x) }", "net n { x = relu(a.b\n y = b(x) }",
        "net n { x = dense(y, 10\n z = relu(x) }"],
    "a value is missing here": [
        "job j { steps: }", "const a =", "job j { steps: , }"],
}


@functools.lru_cache(maxsize=1)
def _lark() -> Lark:
    text = resources.files("singa_dsl.grammar").joinpath("singa.lark").read_text()
    return Lark(text, parser="lalr", propagate_positions=True, maybe_placeholders=False)


def span_of(file: str, meta_or_token) -> Span:
    """The Span of a lark meta or token (line 0 where lark has no position)."""
    m = meta_or_token
    if getattr(m, "empty", False):
        return Span(file, 0, 0, 0, 0)
    return Span(file, m.line, m.column, m.end_line, m.end_column)


class _ToAST(Transformer_NonRecursive):
    """Builds AST nodes; records the first node nested deeper than MAX_DEPTH."""

    def __init__(self, file: str):
        super().__init__()
        self.file = file
        self.too_deep: Span | None = None

    def _s(self, meta) -> Span:
        return span_of(self.file, meta)

    def _depth(self, meta, *children) -> int:
        d = 1 + max((getattr(c, "depth", 0) for c in children), default=0)
        if d > MAX_DEPTH and self.too_deep is None:
            self.too_deep = self._s(meta)
        return d

    # literals
    @v_args(meta=True)
    def int_lit(self, meta, ch):
        return ast.Num(int(ch[0]), self._s(meta))

    @v_args(meta=True)
    def float_lit(self, meta, ch):
        return ast.Num(float(ch[0]), self._s(meta))

    @v_args(meta=True)
    def string_lit(self, meta, ch):
        return ast.Str(_unquote(str(ch[0])), self._s(meta))

    @v_args(meta=True)
    def true_lit(self, meta, ch):
        return ast.Bool(True, self._s(meta))

    @v_args(meta=True)
    def false_lit(self, meta, ch):
        return ast.Bool(False, self._s(meta))

    @v_args(meta=True)
    def ref(self, meta, ch):
        return ast.Ref(tuple(str(t) for t in ch), self._s(meta))

    @v_args(meta=True)
    def paren(self, meta, ch):
        inner = ch[0]
        # Keep the inner node, but count the parentheses towards nesting depth.
        return _with_depth(inner, self._depth(meta, inner))

    def _binop(op):  # noqa: N805 - a small factory for the four operators
        @v_args(meta=True)
        def build(self, meta, ch):
            return ast.BinOp(op, ch[0], ch[1], self._s(meta), self._depth(meta, *ch))
        return build

    add, sub, mul, div = _binop("+"), _binop("-"), _binop("*"), _binop("/")

    @v_args(meta=True)
    def neg(self, meta, ch):
        return ast.Neg(ch[0], self._s(meta), self._depth(meta, ch[0]))

    @v_args(meta=True)
    def pos(self, meta, ch):
        return _with_depth(ch[0], self._depth(meta, ch[0]))

    @v_args(meta=True)
    def kwarg(self, meta, ch):
        return ast.Kwarg(str(ch[0]), ch[1], self._s(meta), self._depth(meta, ch[1]))

    @v_args(meta=True)
    def call(self, meta, ch):
        name, rest = ch[0], [c for c in ch[1:] if c is not None]
        args = tuple(c for c in rest if not isinstance(c, ast.Kwarg))
        kwargs = tuple(c for c in rest if isinstance(c, ast.Kwarg))
        return ast.Call(str(name), args, kwargs, self._s(meta), span_of(self.file, name),
                        self._depth(meta, *rest))

    @v_args(meta=True)
    def list(self, meta, ch):
        items = tuple(c for c in ch if c is not None)
        return ast.ListExpr(items, self._s(meta), self._depth(meta, *items))

    @v_args(meta=True)
    def record(self, meta, ch):
        return ast.Record(tuple(ch), self._s(meta), self._depth(meta, *ch))

    # statements
    @v_args(meta=True)
    def entry(self, meta, ch):
        return ast.Entry(str(ch[0]), ch[1], self._s(meta), span_of(self.file, ch[0]))

    @v_args(meta=True)
    def annotation(self, meta, ch):
        return ast.Annotation(str(ch[0]), self._s(meta))

    @v_args(meta=True)
    def layer(self, meta, ch):
        return ast.Layer(str(ch[0]), ch[1], tuple(ch[2:]), self._s(meta), span_of(self.file, ch[0]))

    @v_args(meta=True)
    def const_decl(self, meta, ch):
        return ast.ConstDecl(str(ch[0]), ch[1], self._s(meta), span_of(self.file, ch[0]))

    def _block(keyword, named=True):  # noqa: N805
        @v_args(meta=True)
        def build(self, meta, ch):
            name = str(ch[0]) if named else None
            entries = tuple(ch[1:] if named else ch)
            name_span = span_of(self.file, ch[0]) if named else self._s(meta)
            return ast.Block(keyword, name, entries, True, self._s(meta), name_span)
        return build

    job_decl, data_decl, updater_decl = _block("job"), _block("data"), _block("updater")
    cluster_decl = _block("cluster", named=False)

    def algorithm_body(self, ch):
        return tuple(ch)

    @v_args(meta=True)
    def algorithm_decl(self, meta, ch):
        body = ch[1] if len(ch) > 1 else None
        return ast.Block("algorithm", str(ch[0]), body or (), body is not None,
                         self._s(meta), span_of(self.file, ch[0]))

    @v_args(meta=True)
    def net_decl(self, meta, ch):
        return ast.NetDecl(str(ch[0]), tuple(ch[1:]), self._s(meta), span_of(self.file, ch[0]))

    def start(self, ch):
        return tuple(ch)


def _with_depth(node, depth: int):
    import dataclasses
    return dataclasses.replace(node, depth=depth) if hasattr(node, "depth") else node


def _unquote(s: str) -> str:
    body, out, i = s[1:-1], [], 0
    escapes = {"n": "\n", "t": "\t", '"': '"', "\\": "\\"}
    while i < len(body):
        c = body[i]
        if c == "\\" and i + 1 < len(body):
            out.append(escapes.get(body[i + 1], body[i + 1]))
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def parse_program(text: str, file: str = "<string>") -> ast.Program:
    """Parse .singa source into an AST; raises SingaErrors with located syntax errors."""
    try:
        tree = _lark().parse(text)
    except UnexpectedInput as e:
        raise SingaErrors([_syntax_error(e, text, file)]) from None
    builder = _ToAST(file)
    items = builder.transform(tree)
    if builder.too_deep is not None:
        raise SingaErrors([SingaSyntaxError(
            f"expression nested more than {MAX_DEPTH} levels deep", builder.too_deep,
            "name the inner parts with 'const' or simplify the expression", text)])
    return ast.Program(items, file)


def _syntax_error(e: UnexpectedInput, text: str, file: str) -> SingaSyntaxError:
    line, col = max(e.line, 1), max(e.column, 1)
    width = 1
    if isinstance(e, UnexpectedToken) and isinstance(e.token, Token) and e.token.type != "$END":
        width = max(1, len(str(e.token)))
    if isinstance(e, UnexpectedEOF) or (isinstance(e, UnexpectedToken) and e.token.type == "$END"):
        line, col = _end_position(text)
    span = Span(file, line, col, line, col + width)
    label = _label(e, text)
    message, hint = _describe(e), label
    return SingaSyntaxError(message, span, hint, text)


@functools.lru_cache(maxsize=1)
def _example_labels() -> dict:
    """(LALR state, token type) → label, learned by parsing the labelled examples.

    Keyed on the parser's current state rather than its whole stack (which is what lark's
    match_examples compares), so a mistake is recognised wherever in a file it is made."""
    table: dict = {}
    for label, examples in _SYNTAX_EXAMPLES.items():
        for example in examples:
            try:
                _lark().parse(example)
            except UnexpectedInput as ex:
                for key in _keys(ex):
                    table.setdefault(key, label)
    return table


def _keys(e: UnexpectedInput) -> list[tuple]:
    state = getattr(e, "state", None)
    top = state.state_stack[-1] if state is not None and state.state_stack else None
    token = getattr(getattr(e, "token", None), "type", None)
    return [(top, token), (top, None)] if top is not None else []


def _label(e: UnexpectedInput, text: str) -> str | None:
    if isinstance(e, UnexpectedCharacters):
        return None        # a stray character: the message says all there is to say
    table = _example_labels()
    for key in _keys(e):
        if key in table:
            return table[key]
    return None


def _describe(e: UnexpectedInput) -> str:
    if isinstance(e, UnexpectedCharacters):
        if e.char == '"':
            return "unterminated string: a string must end with \" on the same line"
        return f"unexpected character {e.char!r}"
    if isinstance(e, UnexpectedEOF) or (isinstance(e, UnexpectedToken) and e.token.type == "$END"):
        return "unexpected end of file" + _expected(e)
    if isinstance(e, UnexpectedToken):
        return f"unexpected {str(e.token)!r}" + _expected(e)
    return "syntax error"


def _expected(e) -> str:
    expected = getattr(e, "accepts", None) or getattr(e, "expected", None) or ()
    words = sorted({_TERMINAL_WORDS.get(t, t.lower()) for t in expected
                    if not t.startswith("__") and t not in ("COMMENT",)})
    if not words:
        return ""
    if len(words) > 8:
        words = words[:8] + ["..."]
    return ", expected " + " or ".join(words) if len(words) <= 2 else ", expected one of " + ", ".join(words)


def _end_position(text: str) -> tuple[int, int]:
    stripped = text.rstrip()
    lines = stripped.splitlines() or [""]
    return len(lines), len(lines[-1]) + 1
