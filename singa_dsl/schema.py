"""Declared attributes: the one vocabulary every registry uses to describe what it accepts.

An op, an updater, a learning-rate schedule, an initializer and a data source each declare
a tuple of ``Attr``.  The checker binds a call's positional and keyword arguments to them,
checks types and ranges, fills defaults, and hands the owner a plain ``dict`` of values.
The language reference in docs/ is generated from these declarations, so it cannot drift.
"""
from __future__ import annotations

from dataclasses import dataclass


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED = _Required()

# What each kind of attribute accepts, in words (used in type errors and the reference).
KINDS = {
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "str": "a string",
    "path": "a file path (a string, relative to the program's file)",
    "ints": "an integer or a list of integers",
    "floats": "a number or a list of numbers",
    "init": "an initializer such as uniform(-0.1, 0.1), a param(...) or a share(...)",
    "schedule": "a number or a learning-rate schedule such as step(0.01, every: 60, gamma: 0.9)",
    "clip": "a number c (meaning [-c, c]) or a list [low, high]",
    "record": "a record such as (mean: 0, std: 1)",
    "every": "every(N, after: M, batches: K)",
    "choice": "one of the listed words",
    "any": "any value",
}


@dataclass(frozen=True)
class Attr:
    name: str
    kind: str
    default: object = REQUIRED
    doc: str = ""
    positional: bool = False     # may be given by position, in declaration order
    gt: float | None = None      # value must be > gt
    ge: float | None = None      # value must be >= ge
    le: float | None = None      # value must be <= le
    choices: tuple = ()          # for kind "choice" (words) or to restrict ints

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def range_error(self, value) -> str | None:
        """A message if a number is outside the declared range, else None."""
        values = value if isinstance(value, (tuple, list)) else (value,)
        for v in values:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                continue
            if self.gt is not None and not v > self.gt:
                return f"{self.name} must be > {_num(self.gt)}, got {_num(v)}"
            if self.ge is not None and not v >= self.ge:
                return f"{self.name} must be >= {_num(self.ge)}, got {_num(v)}"
            if self.le is not None and not v <= self.le:
                return f"{self.name} must be <= {_num(self.le)}, got {_num(v)}"
        if self.choices and self.kind != "choice":
            for v in values:
                if v not in self.choices:
                    return f"{self.name} must be one of {', '.join(map(str, self.choices))}, got {v}"
        return None

    def describe(self) -> str:
        """One line for the generated reference."""
        kind = KINDS.get(self.kind, self.kind)
        if self.kind == "choice":
            kind = "one of " + " | ".join(self.choices)
        default = "required" if self.required else f"default {self.default!r}"
        return f"{self.name} ({kind}; {default}) {self.doc}".rstrip()


def _num(v) -> str:
    return repr(v) if isinstance(v, float) else str(v)


def attr_table(attrs: tuple[Attr, ...]) -> dict[str, Attr]:
    return {a.name: a for a in attrs}


def defaults(attrs: tuple[Attr, ...]) -> dict:
    """The default value of every optional attribute (for tests and direct Python use)."""
    return {a.name: a.default for a in attrs if not a.required}
