"""Protocol-buffer text format → a generic tree of frozen dataclasses, and typed reading of it.

SINGA's job.conf and Caffe's prototxt/solver files are protobuf text.  We do not have their
.proto schemas at run time (nor want protobuf as a dependency), so the parser knows only the
format: a ``Message`` is its fields in the order written, each with the Span of its name and
value.  The importers give the tree meaning through ``Reader``, which checks each field's type
as it is read, refuses a singular field given twice (as protobuf does), and remembers which
fields were read, so that every field an importer did not translate can be reported — nothing
is dropped silently.

As in ``parser.py``: lark parses (LALR, positions kept), a non-recursive Transformer builds the
tree and does nothing else, syntax errors become located ``SingaSyntaxError``s, and nesting
deeper than MAX_DEPTH is refused with a located error before anything recursive sees it.
"""
from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass, field
from importlib import resources
from typing import Union

from lark import Lark, Token, Transformer_NonRecursive, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from singa_dsl.errors import SingaErrors, SingaSyntaxError, Span, UNKNOWN_SPAN
from .parser import span_of

MAX_DEPTH = 64   # real confs nest 4-5 levels; anything deeper is not a SINGA or Caffe file

_TERMINAL_WORDS = {
    "IDENT": "a field name", "INT": "an integer", "FLOAT": "a number", "STRING": "a string",
    "LBRACE": "'{'", "RBRACE": "'}'", "LESSTHAN": "'<'", "MORETHAN": "'>'", "LSQB": "'['",
    "RSQB": "']'", "COLON": "':'", "COMMA": "','", "SEMICOLON": "';'", "DOT": "'.'",
    "MINUS": "'-'", "$END": "end of file",
}


# ---- the tree --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Scalar:
    """A scalar as written.  ``kind`` is string | int | float | ident; ``value`` is the
    decoded str, int or float (an ident keeps its word, e.g. ``kTrain``, ``true``, ``-inf``)."""
    kind: str
    value: Union[str, int, float]
    span: Span = field(default=UNKNOWN_SPAN, compare=False)


@dataclass(frozen=True)
class Message:
    fields: tuple["Field", ...]
    span: Span = field(default=UNKNOWN_SPAN, compare=False)
    depth: int = field(default=1, compare=False)

    def all(self, name: str) -> list["Field"]:
        return [f for f in self.fields if f.name == name]

    def names(self) -> set[str]:
        return {f.name for f in self.fields}


@dataclass(frozen=True)
class Field:
    name: str                    # an extension is named with its brackets: "[foo_conf]"
    value: Union[Scalar, Message]
    span: Span = field(default=UNKNOWN_SPAN, compare=False)        # the whole field
    name_span: Span = field(default=UNKNOWN_SPAN, compare=False)


# ---- parsing ---------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _lark() -> Lark:
    text = resources.files("singa_dsl.grammar").joinpath("prototxt.lark").read_text()
    return Lark(text, parser="lalr", propagate_positions=True, maybe_placeholders=False)


class _ToTree(Transformer_NonRecursive):
    def __init__(self, file: str):
        super().__init__()
        self.file = file
        self.too_deep: Span | None = None

    def _s(self, meta) -> Span:
        return span_of(self.file, meta)

    @v_args(meta=True)
    def string_value(self, meta, ch):
        return Scalar("string", "".join(_unquote(str(t)) for t in ch), self._s(meta))

    @v_args(meta=True)
    def int_value(self, meta, ch):
        return Scalar("int", int(str(ch[0]), 0) if "x" in str(ch[0]).lower()
                      else int(str(ch[0]), 10), self._s(meta))

    @v_args(meta=True)
    def float_value(self, meta, ch):
        return Scalar("float", float(str(ch[0]).rstrip("fF")), self._s(meta))

    @v_args(meta=True)
    def ident_value(self, meta, ch):
        return Scalar("ident", str(ch[0]), self._s(meta))

    @v_args(meta=True)
    def neg_ident_value(self, meta, ch):
        return Scalar("ident", "-" + str(ch[0]), self._s(meta))

    @v_args(meta=True)
    def plain_name(self, meta, ch):
        return (str(ch[0]), self._s(meta))

    @v_args(meta=True)
    def ext_name(self, meta, ch):
        return ("[" + ".".join(str(t) for t in ch) + "]", self._s(meta))

    @v_args(meta=True)
    def message(self, meta, ch):
        fields = tuple(f for c in ch for f in (c if isinstance(c, list) else [c]))
        depth = 1 + max((f.value.depth for f in fields if isinstance(f.value, Message)),
                        default=0)
        if depth > MAX_DEPTH and self.too_deep is None:
            self.too_deep = self._s(meta)
        return Message(fields, self._s(meta), depth)

    @v_args(meta=True)
    def scalar_field(self, meta, ch):
        (name, nspan), value = ch
        return Field(name, value, self._s(meta), nspan)

    @v_args(meta=True)
    def message_field(self, meta, ch):
        (name, nspan), value = ch
        return Field(name, value, self._s(meta), nspan)

    @v_args(meta=True)
    def list_field(self, meta, ch):
        # ``name: [a, b]`` means the repeated field written once per element
        (name, nspan), elems = ch[0], ch[1:]
        return [Field(name, e, e.span, nspan) for e in elems]

    @v_args(meta=True)
    def start(self, meta, ch):
        return self.message(meta, ch)


def _unquote(s: str) -> str:
    """The C-style escapes protobuf's text format allows: \\n \\t \\r \\a \\b \\f \\v \\\\ \\' \\"
    \\? \\xHH and octal \\ooo."""
    body, out, i = s[1:-1], [], 0
    simple = {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "f": "\f", "v": "\v",
              "\\": "\\", "'": "'", '"': '"', "?": "?"}
    while i < len(body):
        c = body[i]
        if c != "\\" or i + 1 >= len(body):
            out.append(c)
            i += 1
            continue
        nxt = body[i + 1]
        if nxt in simple:
            out.append(simple[nxt])
            i += 2
        elif nxt in "xX" and i + 2 < len(body) and body[i + 2] in "0123456789abcdefABCDEF":
            j = i + 2
            while j < len(body) and j < i + 4 and body[j] in "0123456789abcdefABCDEF":
                j += 1
            out.append(chr(int(body[i + 2:j], 16)))
            i = j
        elif nxt in "01234567":
            j = i + 1
            while j < len(body) and j < i + 4 and body[j] in "01234567":
                j += 1
            out.append(chr(int(body[i + 1:j], 8)))
            i = j
        else:
            out.append(nxt)
            i += 2
    return "".join(out)


def parse_prototxt(text: str, file: str = "<string>") -> Message:
    """Parse protobuf text into a Message (the file's top level); raises SingaErrors with a
    located syntax error."""
    _check_nesting(text, file)
    try:
        tree = _lark().parse(text)
    except UnexpectedInput as e:
        raise SingaErrors([_syntax_error(e, text, file)]) from None
    builder = _ToTree(file)
    top = builder.transform(tree)
    if builder.too_deep is not None:
        raise SingaErrors([SingaSyntaxError(
            f"messages nested more than {MAX_DEPTH} levels deep", builder.too_deep,
            "SINGA and Caffe configurations nest a few levels; is a '}' missing?", text)])
    return top


# Braces outside strings and comments: a cheap scan that refuses absurd nesting before lark
# spends time on it (the transformer's depth check stays the authority).
_BRACES = re.compile(r'"(?:[^"\\\n]|\\.)*"|\'(?:[^\'\\\n]|\\.)*\'|#[^\n]*|[{}<>]')


def _check_nesting(text: str, file: str):
    depth = 0
    for m in _BRACES.finditer(text):
        c = m.group()
        if c in "{<":
            depth += 1
            if depth > MAX_DEPTH:
                line = text.count("\n", 0, m.start()) + 1
                col = m.start() - (text.rfind("\n", 0, m.start()) + 1) + 1
                raise SingaErrors([SingaSyntaxError(
                    f"messages nested more than {MAX_DEPTH} levels deep",
                    Span(file, line, col, line, col + 1),
                    "SINGA and Caffe configurations nest a few levels; is a '}' missing?",
                    text)])
        elif c in "}>":
            depth = max(0, depth - 1)


def _syntax_error(e: UnexpectedInput, text: str, file: str) -> SingaSyntaxError:
    line, col, width = max(e.line, 1), max(e.column, 1), 1
    at_end = isinstance(e, UnexpectedEOF) or (
        isinstance(e, UnexpectedToken) and e.token.type == "$END")
    if at_end:
        lines = text.rstrip().splitlines() or [""]
        line, col = len(lines), len(lines[-1]) + 1
    elif isinstance(e, UnexpectedToken) and isinstance(e.token, Token):
        width = max(1, len(str(e.token).splitlines()[0] if str(e.token) else " "))
    if isinstance(e, UnexpectedCharacters):
        message, hint = f"unexpected character {e.char!r}", _char_hint(e.char)
    elif at_end:
        message = "unexpected end of file" + _expected(e)
        hint = "is a '}' missing?" if "RBRACE" in set(getattr(e, "expected", None) or ()) \
            else None
    elif isinstance(e, UnexpectedToken):
        message, hint = f"unexpected {str(e.token)!r}" + _expected(e), _token_hint(e)
    else:
        message, hint = "syntax error", None
    return SingaSyntaxError(message, Span(file, line, col, line, col + width), hint, text)


def _char_hint(char: str) -> str | None:
    if char in "\"'":
        return "a string must end on the line it starts"
    if char == "=":
        return "protobuf text format writes 'name: value', not 'name = value'"
    return None


def _token_hint(e: UnexpectedToken) -> str | None:
    accepts = set(getattr(e, "accepts", None) or getattr(e, "expected", None) or ())
    if "COLON" in accepts and e.token.type in ("INT", "FLOAT", "STRING", "IDENT"):
        return "missing ':' between a field name and its value"
    return None


def _expected(e) -> str:
    expected = getattr(e, "accepts", None) or getattr(e, "expected", None) or ()
    words = sorted({_TERMINAL_WORDS.get(t, t.lower()) for t in expected
                    if not t.startswith("__") and t != "COMMENT"})
    if not words:
        return ""
    if len(words) > 8:
        words = words[:8] + ["..."]
    return (", expected " + " or ".join(words)) if len(words) <= 2 else \
        ", expected one of " + ", ".join(words)


# ---- typed reading ---------------------------------------------------------------------------
_TRUE = {"true", "True", "t"}
_FALSE = {"false", "False", "f"}


class Reader:
    """Typed, tracked access to one message.  Every getter checks the field's type (a located
    SingaSyntaxError otherwise) and marks the field as read; ``unread()`` lists the rest.

    ``enum`` tables map a word (and, where the .proto gives numbers, the number) to a value."""

    def __init__(self, msg: Message, what: str, source: str | None = None):
        self.msg, self.what, self.source = msg, what, source
        self.read: set[str] = set()

    # -- raw access --
    def has(self, name: str) -> bool:
        return bool(self.msg.all(name))

    def fields(self, name: str) -> list[Field]:
        self.read.add(name)
        return self.msg.all(name)

    def field(self, name: str) -> Field | None:
        found = self.fields(name)
        if len(found) > 1:
            raise self.error(f"field '{name}' of {self.what} is set twice", found[1].name_span,
                             f"it is not a repeated field; the first is at line "
                             f"{found[0].name_span.line}")
        return found[0] if found else None

    def skip(self, *names: str):
        """Mark fields as handled without reading them (the caller reported them itself)."""
        self.read.update(names)

    def unread(self) -> list[Field]:
        return [f for f in self.msg.fields if f.name not in self.read]

    def error(self, message: str, span: Span, hint: str | None = None) -> SingaErrors:
        return SingaErrors([SingaSyntaxError(message, span, hint, self.source)])

    # -- typed getters (singular) --
    def str(self, name: str, default=None):
        f = self.field(name)
        return default if f is None else self._str(f)

    def int(self, name: str, default=None):
        f = self.field(name)
        return default if f is None else self._int(f)

    def float(self, name: str, default=None):
        f = self.field(name)
        return default if f is None else self._float(f)

    def bool(self, name: str, default=None):
        f = self.field(name)
        return default if f is None else self._bool(f)

    def enum(self, name: str, table: dict, default=None):
        f = self.field(name)
        return default if f is None else self._enum(f, table)

    def word(self, name: str, default=None):
        """An enum value as written (a word such as kInnerProduct, or a number), for tables
        too open-ended to list (an unknown word is the caller's to report)."""
        f = self.field(name)
        if f is None:
            return default
        s = self._scalar(f, "an enum word")
        if s.kind not in ("ident", "int"):
            raise self.error(f"field '{f.name}' of {self.what} must be an enum word such as "
                             "kInnerProduct", s.span)
        return s.value

    def message(self, name: str, what: str | None = None) -> "Reader | None":
        f = self.field(name)
        return None if f is None else self._message(f, what)

    # -- typed getters (repeated) --
    def strs(self, name: str) -> list[str]:
        return [self._str(f) for f in self.fields(name)]

    def ints(self, name: str) -> list[int]:
        return [self._int(f) for f in self.fields(name)]

    def floats(self, name: str) -> list[float]:
        return [self._float(f) for f in self.fields(name)]

    def enums(self, name: str, table: dict) -> list:
        return [self._enum(f, table) for f in self.fields(name)]

    def messages(self, name: str, what: str | None = None) -> list["Reader"]:
        return [self._message(f, what) for f in self.fields(name)]

    def span(self, name: str) -> Span:
        """Where a field is (its first occurrence), else where this message is."""
        found = self.msg.all(name)
        return found[0].span if found else self.msg.span

    # -- conversions --
    def _scalar(self, f: Field, want: str) -> Scalar:
        if isinstance(f.value, Message):
            raise self.error(f"field '{f.name}' of {self.what} must be {want}, not a message",
                             f.value.span, f"write {f.name}: VALUE")
        return f.value

    def _str(self, f: Field) -> str:
        s = self._scalar(f, "a string")
        if s.kind != "string":
            raise self.error(f"field '{f.name}' of {self.what} must be a string", s.span,
                             f'write {f.name}: "{s.value}"')
        return s.value

    def _int(self, f: Field) -> int:
        s = self._scalar(f, "an integer")
        if s.kind != "int":
            raise self.error(f"field '{f.name}' of {self.what} must be an integer", s.span)
        return s.value

    def _float(self, f: Field) -> float:
        s = self._scalar(f, "a number")
        if s.kind not in ("int", "float"):
            raise self.error(f"field '{f.name}' of {self.what} must be a number", s.span)
        if not math.isfinite(s.value):
            raise self.error(f"field '{f.name}' of {self.what} is {s.value}, not a finite "
                             "number", s.span)
        return float(s.value)

    def _bool(self, f: Field) -> bool:
        s = self._scalar(f, "true or false")
        if s.kind == "ident" and s.value in _TRUE | _FALSE:
            return s.value in _TRUE
        if s.kind == "int" and s.value in (0, 1):
            return bool(s.value)
        raise self.error(f"field '{f.name}' of {self.what} must be true or false", s.span)

    def _enum(self, f: Field, table: dict):
        s = self._scalar(f, "one of " + ", ".join(_words(table)))
        if s.kind in ("ident", "int", "string") and s.value in table:
            return table[s.value]
        import difflib
        close = difflib.get_close_matches(str(s.value), _words(table), n=1, cutoff=0.6)
        raise self.error(f"unknown value {s.value!r} for field '{f.name}' of {self.what}",
                         s.span, f"did you mean '{close[0]}'?" if close else
                         "known values: " + ", ".join(_words(table)[:12]))

    def _message(self, f: Field, what: str | None) -> "Reader":
        if not isinstance(f.value, Message):
            raise self.error(f"field '{f.name}' of {self.what} must be a message", f.value.span,
                             f"write {f.name} {{ ... }}")
        return Reader(f.value, what or f"{self.what}.{f.name}", self.source)


def _words(table: dict) -> list[str]:
    return [k for k in table if isinstance(k, str)]
