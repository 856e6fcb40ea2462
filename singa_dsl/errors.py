"""One error hierarchy for everything a user can get wrong, and for our own bugs.

Every user-facing error carries a Span so it prints as ``FILE:LINE:COL: error: MESSAGE``,
the source line, a caret under the span, and a hint.  Errors are collected during checking
and raised once as a ``SingaErrors`` group, so a user sees every mistake in one run.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Span:
    """A region of a source file: 1-based line and column of its start and end."""
    file: str
    line: int
    column: int
    end_line: int
    end_column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


UNKNOWN_SPAN = Span("<unknown>", 0, 0, 0, 0)


class SingaError(Exception):
    """A mistake in a program, its data or its run settings, located where possible."""
    kind = "error"
    exit_code = 2

    def __init__(self, message: str, span: Span | None = None, hint: str | None = None,
                 source: str | None = None):
        super().__init__(message)
        self.message = message
        self.span = span
        self.hint = hint
        self.source = source  # full text of span.file, for rendering the caret line

    def with_source(self, source: str | None) -> "SingaError":
        if self.source is None:
            self.source = source
        return self

    def render(self) -> str:
        return render_diagnostic(self.kind, self.message, self.span, self.hint, self.source)

    def __str__(self) -> str:
        return self.render()


class SingaSyntaxError(SingaError):
    pass


class SingaNameError(SingaError):
    pass


class SingaShapeError(SingaError):
    pass


class SingaConfigError(SingaError):
    pass


class SingaDataError(SingaError):
    """A data file that is missing or malformed."""
    exit_code = 3


class KernelBuildError(SingaError):
    """An OpenCL program failed to build; the message names the op and a saved .cl file."""
    exit_code = 4


class WorkerError(SingaError):
    """A rank died or misbehaved at run time; the message names the rank and role."""
    exit_code = 5


class SingaWarning(SingaError):
    kind = "warning"


class InternalError(SingaError):
    """A broken invariant inside a pass: our bug, never blamed on the user."""
    exit_code = 70

    def __init__(self, pass_name: str, message: str, span: Span | None = None):
        super().__init__(f"internal error in pass '{pass_name}': {message} "
                         "(this is a bug in singa_dsl, please report it)", span)
        self.pass_name = pass_name


class SingaErrors(SingaError):
    """Several errors found together; renders all of them in source order."""

    def __init__(self, errors: list[SingaError], warnings: list[SingaError] | None = None):
        errors = sorted(errors, key=_order)
        self.errors = errors
        self.warnings = list(warnings or [])
        first = errors[0]
        super().__init__(first.message, first.span, first.hint, first.source)
        self.exit_code = max(e.exit_code for e in errors)

    def render(self) -> str:
        parts = [e.render() for e in self.errors]
        n = len(self.errors)
        parts.append(f"{n} error{'s' if n != 1 else ''} found")
        return "\n".join(parts)


def _order(e: SingaError):
    s = e.span or UNKNOWN_SPAN
    return (s.file, s.line, s.column)


def render_diagnostic(kind: str, message: str, span: Span | None, hint: str | None,
                      source: str | None) -> str:
    if span is None or span.line <= 0:
        head = f"{kind}: {message}"
        return head + (f"\n  hint: {hint}" if hint else "")
    lines = [f"{span}: {kind}: {message}"]
    if source is not None:
        text_lines = source.splitlines()
        if 1 <= span.line <= len(text_lines):
            line = text_lines[span.line - 1].rstrip("\n").replace("\t", " ")
            width = (span.end_column - span.column) if span.end_line == span.line else \
                len(line) - span.column + 1
            width = max(1, width)
            lines.append(f"  {line}")
            lines.append("  " + " " * (span.column - 1) + "^" * width)
    if hint:
        lines.append(f"  hint: {hint}")
    return "\n".join(lines)


@dataclass
class Diagnostics:
    """Collects errors and warnings during a pass so all are reported together."""
    source: str | None = None
    errors: list[SingaError] = field(default_factory=list)
    warnings: list[SingaError] = field(default_factory=list)

    def error(self, cls, message: str, span: Span | None = None, hint: str | None = None):
        self.errors.append(cls(message, span, hint, self.source))

    def warn(self, message: str, span: Span | None = None, hint: str | None = None):
        self.warnings.append(SingaWarning(message, span, hint, self.source))

    def add(self, err: SingaError):
        self.errors.append(err.with_source(self.source))

    def raise_if_any(self):
        if self.errors:
            raise SingaErrors(self.errors, self.warnings)
