"""The data-source registry, like SINGA's ``Driver::RegisterLayer`` for its data layers.

A source module declares its own attributes and two functions — ``header`` (cheap: file
headers only, run at check time) and ``load`` (everything, run when training starts) — and
``define_source`` wraps them into a ``SourceDef`` with the options every source shares
(``batch``, ``shuffle``, ``normalize``, ``shape``, ``range``).  The compiler only ever sees
``SourceDef.fields`` / ``constants``; the runtime calls ``SourceDef.open``.
"""
from __future__ import annotations

import functools
import math
import pathlib
from dataclasses import dataclass
from typing import Callable

import numpy as np

from singa_dsl.errors import SingaDataError
from singa_dsl.registry import Registry
from singa_dsl.schema import Attr

from .files import READ_ERRORS
from .reader import BatchReader, RecordSet, shard_index

COMMON_ATTRS: tuple[Attr, ...] = (
    Attr("batch", "int", doc="records per mini-batch", gt=0),
    Attr("shuffle", "bool", False,
         "reshuffle the records every epoch (deterministic from the seed)"),
    Attr("normalize", "record", None, "(mean: M, std: S): image = (image - M) / S"),
    Attr("shape", "ints", None, "per-sample shape of the image field, e.g. [1, 28, 28] "
                                "(same number of values)"),
    Attr("range", "ints", None, "[start, end): use only these records (end excluded)"),
)


@dataclass(frozen=True)
class FieldInfo:
    name: str
    shape: tuple[int, ...]       # per sample, no batch dimension; () for a scalar label
    dtype: str                   # "float32" | "int32"
    doc: str = ""

    @property
    def size(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class Header:
    """What a source learns from headers alone: its fields as stored, and the record count
    (None where counting would mean reading the whole file, as for csv)."""
    fields: dict[str, FieldInfo]
    records: int | None


@dataclass(frozen=True)
class SourceDef:
    name: str
    attrs: tuple[Attr, ...]
    doc: str
    fields: Callable[[dict, pathlib.Path], dict[str, FieldInfo]]
    constants: Callable[[dict, pathlib.Path], dict[str, int]]
    open: Callable[..., BatchReader]


SOURCES: Registry[SourceDef] = Registry("data source")


def define_source(name: str, doc: str, attrs: tuple[Attr, ...],
                  header: Callable[[dict, pathlib.Path], Header],
                  load: Callable[[dict, pathlib.Path, int], RecordSet],
                  constants: Callable[[dict, pathlib.Path], dict[str, int]] | None = None,
                  contiguous_shards: bool = False,
                  arrange: Callable[[np.ndarray, int], np.ndarray] | None = None) -> SourceDef:
    """Register a source.  A common attribute the source declares itself (synthetic's
    ``shape``) replaces the shared one.  ``contiguous_shards`` keeps each shard one run of
    records (text windows must stay in order); otherwise shards are strided so that a file
    sorted by class still gives every worker group every class.  ``arrange(index, batch)``
    reorders a shard's records before batching (text: one stream per batch row)."""
    own = {a.name for a in attrs}
    all_attrs = tuple(attrs) + tuple(a for a in COMMON_ATTRS if a.name not in own)
    paths = tuple(a.name for a in all_attrs if a.kind == "path")
    parts = _Parts(name, header, load, contiguous_shards, arrange, paths)
    return SOURCES.register(name, SourceDef(name, all_attrs, doc, _guard(name, parts.fields),
                                            _guard(name, constants or _no_constants),
                                            _guard(name, parts.open)))


@dataclass(frozen=True)
class _Parts:
    """A source's own functions, with the common options applied around them."""
    name: str
    header: Callable[[dict, pathlib.Path], Header]
    load: Callable[[dict, pathlib.Path, int], RecordSet]
    contiguous_shards: bool
    arrange: Callable[[np.ndarray, int], np.ndarray] | None
    paths: tuple[str, ...] = ()      # the attributes naming files, for messages

    def fields(self, args: dict, base_dir: pathlib.Path) -> dict[str, FieldInfo]:
        h = self.header(args, pathlib.Path(base_dir))
        record_range(self.name, args, h.records)
        return final_fields(self.name, h.fields, args)

    def open(self, args: dict, base_dir: pathlib.Path, *, seed: int, shard: int = 0,
             num_shards: int = 1, prefetch: bool = False) -> BatchReader:
        if not 0 <= shard < num_shards:
            raise ValueError(f"shard {shard} is not in 0..{num_shards - 1}")
        records = self.load(args, pathlib.Path(base_dir), seed)
        index = self._index(args, records.count, shard, num_shards, self._where(args))
        return BatchReader(records, index, final_fields(self.name, records.fields, args),
                           batch=args["batch"], shuffle=args["shuffle"],
                           normalize=normalize_values(self.name, args), seed=seed,
                           shard=shard, num_shards=num_shards, prefetch=prefetch,
                           vocabulary=getattr(records, "vocabulary", None))

    def _where(self, args: dict) -> str:
        """The source and the files it read, as the program named them (for messages)."""
        files = [args[p] for p in self.paths if isinstance(args.get(p), str)]
        return f"{self.name} data " + ", ".join(f"'{f}'" for f in files) if files else self.name

    def _index(self, args: dict, count: int, shard: int, num_shards: int,
               where: str) -> np.ndarray:
        """The records this reader cycles through: range, then shard, then arrange."""
        start, end = record_range(where, args, count)
        index = shard_index(np.arange(start, end, dtype=np.int64), shard, num_shards,
                            self.contiguous_shards)
        if len(index) < args["batch"]:
            part = f"shard {shard} of {num_shards}" if num_shards > 1 else "the data"
            raise SingaDataError(f"{where}: {part} has {len(index)} records, fewer "
                                 f"than batch {args['batch']}")
        return index if self.arrange is None else self.arrange(index, args["batch"])


def _no_constants(args: dict, base_dir: pathlib.Path) -> dict[str, int]:
    return {}


def _guard(name: str, fn: Callable) -> Callable:
    """A last net under the sources' own checks: an I/O failure they did not foresee (a
    file vanishing or unreadable mid-way) is still a data error, never a traceback."""
    @functools.wraps(fn)
    def guarded(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except READ_ERRORS as e:
            where = f" '{e.filename}'" if getattr(e, "filename", None) else ""
            raise SingaDataError(f"{name}: cannot read data file{where}: "
                                 f"{getattr(e, 'strerror', None) or e}") from None
    return guarded


def source_args(name: str, **given) -> dict:
    """Bind keyword values to a source's attributes with defaults filled (for Python callers
    and tests; programs get theirs from the compiler's checker)."""
    sdef = SOURCES[name]
    table = {a.name: a for a in sdef.attrs}
    unknown = sorted(set(given) - set(table))
    if unknown:
        raise ValueError(f"unknown attribute(s) for {name}: {', '.join(unknown)}")
    missing = [a.name for a in sdef.attrs if a.required and a.name not in given]
    if missing:
        raise ValueError(f"{name} needs {', '.join(missing)}")
    out = {a.name: (a.default if a.name not in given else given[a.name]) for a in sdef.attrs}
    for key in ("shape", "range"):          # the checker turns lists into tuples; so do we
        if isinstance(out.get(key), list):
            out[key] = tuple(out[key])
    return out


# ---- the common options, checked the same way at check time and at open time ----

def final_fields(name: str, stored: dict[str, FieldInfo], args: dict) -> dict[str, FieldInfo]:
    """Apply ``shape`` to the image field; reject shape/normalize where there is no image."""
    out = dict(stored)
    for option in ("shape", "normalize"):
        if args.get(option) is not None and "image" not in stored:
            raise SingaDataError(f"{name}: '{option}' applies to the image field, and {name} "
                                 f"has none (fields: {', '.join(stored)})")
    normalize_values(name, args)
    if args.get("shape") is not None and "image" in out:
        image = out["image"]
        shape = _ints(args["shape"])
        if any(d <= 0 for d in shape):
            raise SingaDataError(f"{name}: shape {list(shape)} has a dimension that is not > 0")
        if math.prod(shape) != image.size:
            raise SingaDataError(f"{name}: shape {list(shape)} holds {math.prod(shape)} values, "
                                 f"but each image has {image.size} {list(image.shape)}")
        out["image"] = FieldInfo("image", shape, image.dtype, image.doc)
    return out


def record_range(name: str, args: dict, records: int | None) -> tuple[int, int]:
    """The [start, end) slice of records to use; the whole data when ``range`` is unset.
    With ``records`` None (not counted yet) only the form of ``range`` is checked."""
    if records is not None and records <= 0:
        raise SingaDataError(f"{name}: the data has no records")
    if args.get("range") is None:
        return 0, records
    bounds = _ints(args["range"])
    if len(bounds) != 2:
        raise SingaDataError(f"{name}: range needs two numbers [start, end], got {list(bounds)}")
    start, end = bounds
    if not 0 <= start < end <= (end if records is None else records):
        if records is None:
            raise SingaDataError(f"{name}: range [{start}, {end}] is empty or negative "
                                 "(a range is [start, end) with 0 <= start < end)")
        raise SingaDataError(f"{name}: range [{start}, {end}] is out of bounds: the data has "
                             f"{records} records (a range is [start, end) with "
                             f"0 <= start < end <= {records})")
    return start, end


def normalize_values(name: str, args: dict) -> tuple[float, float] | None:
    norm = args.get("normalize")
    if norm is None:
        return None
    if not isinstance(norm, dict) or set(norm) != {"mean", "std"}:
        got = sorted(norm) if isinstance(norm, dict) else norm
        raise SingaDataError(f"{name}: normalize needs exactly (mean: M, std: S), got {got}")
    mean, std = norm["mean"], norm["std"]
    for key, v in (("mean", mean), ("std", std)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise SingaDataError(f"{name}: normalize {key} must be a finite number, got {v!r}")
    if std <= 0:
        raise SingaDataError(f"{name}: normalize std must be > 0, got {std}")
    return float(mean), float(std)


def _ints(value) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)
