"""The syntax tree of a .singa program: frozen dataclasses, every node with its Span.

Spans do not take part in equality, so a program printed with ``to_source()`` and parsed
again compares equal to the original.  ``depth`` records expression nesting so later passes
(which recurse) can refuse absurdly deep input with a located error instead of crashing.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from singa_dsl.errors import Span, UNKNOWN_SPAN


def _span() -> Span:
    return field(default=UNKNOWN_SPAN, compare=False, repr=False)


# ---- expressions ----------------------------------------------------------------------
@dataclass(frozen=True)
class Num:
    value: int | float
    span: Span = _span()
    depth: int = field(default=1, compare=False, repr=False)


@dataclass(frozen=True)
class Str:
    value: str
    span: Span = _span()
    depth: int = field(default=1, compare=False, repr=False)


@dataclass(frozen=True)
class Bool:
    value: bool
    span: Span = _span()
    depth: int = field(default=1, compare=False, repr=False)


@dataclass(frozen=True)
class Ref:
    """A name or a dotted reference: ``H``, ``fc1``, ``mnist.label``, ``e2.w``."""
    parts: tuple[str, ...]
    span: Span = _span()
    depth: int = field(default=1, compare=False, repr=False)

    @property
    def dotted(self) -> str:
        return ".".join(self.parts)


@dataclass(frozen=True)
class Kwarg:
    name: str
    value: "Expr"
    span: Span = _span()
    depth: int = field(default=1, compare=False, repr=False)


@dataclass(frozen=True)
class Call:
    func: str
    args: tuple["Expr", ...] = ()
    kwargs: tuple[Kwarg, ...] = ()
    span: Span = _span()
    func_span: Span = _span()
    depth: int = field(default=1, compare=False, repr=False)

    def kwarg(self, name: str) -> Kwarg | None:
        return next((k for k in self.kwargs if k.name == name), None)


@dataclass(frozen=True)
class ListExpr:
    items: tuple["Expr", ...]
    span: Span = _span()
    depth: int = field(default=1, compare=False, repr=False)


@dataclass(frozen=True)
class Record:
    fields: tuple[Kwarg, ...]
    span: Span = _span()
    depth: int = field(default=1, compare=False, repr=False)


@dataclass(frozen=True)
class BinOp:
    op: str                      # one of + - * /
    left: "Expr"
    right: "Expr"
    span: Span = _span()
    depth: int = field(default=1, compare=False, repr=False)


@dataclass(frozen=True)
class Neg:
    operand: "Expr"
    span: Span = _span()
    depth: int = field(default=1, compare=False, repr=False)


Expr = Union[Num, Str, Bool, Ref, Call, ListExpr, Record, BinOp, Neg]


# ---- statements and blocks -------------------------------------------------------------
@dataclass(frozen=True)
class Entry:
    """``key: value`` inside a block."""
    key: str
    value: Expr
    span: Span = _span()
    key_span: Span = _span()


@dataclass(frozen=True)
class Annotation:
    name: str
    span: Span = _span()


@dataclass(frozen=True)
class Layer:
    """``NAME = OP(SOURCES..., ATTRS...) @annotation...``"""
    name: str
    value: Expr
    annotations: tuple[Annotation, ...] = ()
    span: Span = _span()
    name_span: Span = _span()


@dataclass(frozen=True)
class ConstDecl:
    name: str
    value: Expr
    span: Span = _span()
    name_span: Span = _span()


@dataclass(frozen=True)
class Block:
    """``job``, ``data``, ``algorithm``, ``updater`` and ``cluster`` blocks share one shape."""
    keyword: str                 # job | data | algorithm | updater | cluster
    name: str | None             # job/data name, algorithm/updater kind; None for cluster
    entries: tuple[Entry, ...] = ()
    has_body: bool = True        # False for a bare ``algorithm bp``
    span: Span = _span()
    name_span: Span = _span()


@dataclass(frozen=True)
class NetDecl:
    name: str
    items: tuple[Union[Entry, Layer], ...] = ()
    span: Span = _span()
    name_span: Span = _span()

    @property
    def entries(self) -> tuple[Entry, ...]:
        return tuple(i for i in self.items if isinstance(i, Entry))

    @property
    def layers(self) -> tuple[Layer, ...]:
        return tuple(i for i in self.items if isinstance(i, Layer))


Decl = Union[ConstDecl, Block, NetDecl]


@dataclass(frozen=True)
class Program:
    items: tuple[Decl, ...]
    file: str = field(default="<string>", compare=False)

    def blocks(self, keyword: str) -> list[Block]:
        return [i for i in self.items if isinstance(i, Block) and i.keyword == keyword]

    @property
    def nets(self) -> list[NetDecl]:
        return [i for i in self.items if isinstance(i, NetDecl)]

    @property
    def consts(self) -> list[ConstDecl]:
        return [i for i in self.items if isinstance(i, ConstDecl)]
