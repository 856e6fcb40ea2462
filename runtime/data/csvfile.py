"""``csv(PATH, label_column: 0)`` — a numeric comma-separated table, one record per line.

``label`` is column ``label_column`` (negative counts from the end, -1 is the last) and must
hold whole numbers; ``image`` is every other column, in order.  A first line with no number
in it is a header and skipped; blank lines are skipped.  A bad row is reported by its line
number.  The record count needs a full read, so ``range`` is checked when the data is
opened rather than at check time.
"""
from __future__ import annotations

import functools
import pathlib

import numpy as np

from singa_dsl.schema import Attr

from .files import DataFile, locate, read_all, read_prefix
from .reader import ArrayRecords
from .registry import FieldInfo, Header, define_source

HEAD_BYTES = 1 << 16     # enough to hold the header and a first row of any sane table


def _is_number(cell: str) -> bool:
    try:
        float(cell)
        return True
    except ValueError:
        return False


def _rows(f: DataFile, text: str) -> tuple[list[int], list[str]]:
    """(line numbers, lines) of the data rows: blank lines and a header line dropped."""
    numbered = [(i + 1, line) for i, line in enumerate(text.splitlines()) if line.strip()]
    if numbered and not any(_is_number(c) for c in numbered[0][1].split(",")):
        numbered = numbered[1:]
    if not numbered:
        raise f.error("has no data rows")
    return [n for n, _ in numbered], [line for _, line in numbered]


def _decode(f: DataFile, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise f.error(f"line {line} is not utf-8 text") from None


def _label_column(args: dict, f: DataFile, ncols: int, line: int) -> int:
    """The label's column index, checked against the first data row's column count."""
    if ncols < 2:
        raise f.error(f"line {line} has {ncols} column; a record needs a label and a value")
    col = args["label_column"]
    if not -ncols <= col < ncols:
        raise f.error(f"label_column {col} is outside the {ncols} columns of line {line}")
    return col % ncols


def _fields(ncols: int) -> dict[str, FieldInfo]:
    return {"image": FieldInfo("image", (ncols - 1,), "float32", "the non-label columns"),
            "label": FieldInfo("label", (), "int32", "the label column")}


def header(args: dict, base_dir: pathlib.Path) -> Header:
    f = locate(base_dir, args["path"])
    head = read_prefix(f, HEAD_BYTES)
    complete = head if len(head) < HEAD_BYTES else head[:head.rfind(b"\n") + 1]
    lines, rows = _rows(f, _decode(f, complete or head))
    ncols = len(rows[0].split(","))
    _label_column(args, f, ncols, lines[0])
    return Header(_fields(ncols), None)


def _bad_row(f: DataFile, lines: list[int], rows: list[str], ncols: int):
    """The error for the first malformed row (the slow path, run only after a failure)."""
    for line, row in zip(lines, rows):
        cells = row.split(",")
        if len(cells) != ncols:
            return f.error(f"line {line} has {len(cells)} columns, expected {ncols}")
        for j, cell in enumerate(cells):
            if not _is_number(cell):
                return f.error(f"line {line}, column {j + 1}: {cell.strip()!r} is not a number")
    return f.error("cannot be parsed as a numeric table")


def _parse(f: DataFile, lines: list[int], rows: list[str], ncols: int) -> np.ndarray:
    try:
        table = np.loadtxt(rows, delimiter=",", dtype=np.float64, ndmin=2, comments=None)
    except ValueError:
        raise _bad_row(f, lines, rows, ncols) from None
    if table.shape[1] != ncols:
        raise _bad_row(f, lines, rows, ncols)
    finite = np.isfinite(table).all(axis=1)
    if not finite.all():
        raise f.error(f"line {lines[int(np.argmin(finite))]} has a value that is not a "
                      "finite number")
    return table


@functools.lru_cache(maxsize=4)
def _table(path: pathlib.Path, mtime: int, size: int, shown: str) -> tuple[list[int], np.ndarray]:
    f = DataFile(shown, path)
    lines, rows = _rows(f, _decode(f, read_all(f)))
    ncols = len(rows[0].split(","))
    table = _parse(f, lines, rows, ncols)
    table.flags.writeable = False        # cached, shared
    return lines, table


def load(args: dict, base_dir: pathlib.Path, seed: int) -> ArrayRecords:
    f = locate(base_dir, args["path"])
    st = f.path.stat()
    lines, table = _table(f.path, st.st_mtime_ns, st.st_size, f.shown)
    ncols = table.shape[1]
    col = _label_column(args, f, ncols, lines[0])
    labels = table[:, col]
    whole = (labels == np.round(labels)) & (np.abs(labels) < 2**31)
    if not whole.all():
        bad = int(np.argmin(whole))
        raise f.error(f"line {lines[bad]}: label {labels[bad]:g} in column {col + 1} is not "
                      "a whole number")
    images = np.delete(table, col, axis=1).astype(np.float32)
    return ArrayRecords({"image": images, "label": labels.astype(np.int32)}, _fields(ncols))


SOURCE = define_source(
    "csv", "a numeric CSV table: fields image (the other columns), label",
    (Attr("path", "path", doc="the .csv file (gzipped or not)", positional=True),
     Attr("label_column", "int", 0, "column of the label; -1 is the last")),
    header, load)
