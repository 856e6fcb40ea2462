"""``npz(PATH, x: "x", y: "y")`` — two arrays of a numpy .npz archive.

``image`` is array ``x`` (per-sample shape ``x.shape[1:]``), ``label`` is array ``y``
(integers).  At check time only the .npy headers inside the zip are read.  Arrays are always
loaded with ``allow_pickle=False``: an object array (pickled Python data, which could run code
when loaded) is rejected, never unpickled.
"""
from __future__ import annotations

import math
import pathlib
import struct
import zipfile
import zlib
from dataclasses import dataclass

import numpy as np
from numpy.lib import format as npy_format

from singa_dsl.schema import Attr

from .files import DataFile, locate
from .reader import ArrayRecords
from .registry import FieldInfo, Header, define_source

# What a damaged archive makes zipfile/numpy raise: a bad header or CRC, an unknown zip
# version or compression method (NotImplementedError), the encryption bit (RuntimeError).
_BROKEN = (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, zlib.error,
           NotImplementedError, RuntimeError, OverflowError, struct.error)


_MAX_RATIO = 1100       # deflate expands at most ~1032:1; a member claiming more is corrupt


@dataclass(frozen=True)
class NpyHeader:
    shape: tuple[int, ...]
    dtype: np.dtype


def _read_header(f: DataFile, key: str) -> NpyHeader:
    try:
        with zipfile.ZipFile(f.path) as z:
            names = [n[:-4] for n in z.namelist() if n.endswith(".npy")]
            if key not in names:
                raise f.error(f"has no array '{key}' (arrays: {', '.join(names) or 'none'})")
            info = z.getinfo(key + ".npy")
            stored = info.file_size
            if stored > _MAX_RATIO * max(info.compress_size, 1) or \
                    info.compress_size > f.path.stat().st_size:
                raise f.error(f"array '{key}' claims {stored:,} bytes in a "
                              f"{f.path.stat().st_size:,}-byte file: its zip directory is "
                              "corrupt")
            with z.open(key + ".npy") as fp:
                version = npy_format.read_magic(fp)
                if version == (1, 0):
                    shape, _, dtype = npy_format.read_array_header_1_0(fp)
                elif version == (2, 0):
                    shape, _, dtype = npy_format.read_array_header_2_0(fp)
                else:
                    raise f.error(f"array '{key}' uses .npy format {version}, which is not read")
                header_end = fp.tell()
    except _BROKEN as e:
        raise f.error(f"is not a readable .npz archive: {e}") from None
    h = NpyHeader(tuple(shape), np.dtype(dtype))
    # numpy allocates what the header promises before reading: check it against the archive
    promised = math.prod(h.shape) * h.dtype.itemsize
    if not h.dtype.hasobject and promised != stored - header_end:
        raise f.error(f"array '{key}' promises {list(h.shape)} {h.dtype} ({promised:,} bytes) "
                      f"but holds {max(0, stored - header_end):,} bytes: truncated or corrupt")
    return h


def _check_kind(f: DataFile, key: str, h: NpyHeader, kinds: str, what: str) -> None:
    if h.dtype.hasobject:
        raise f.error(f"array '{key}' holds Python objects (pickled data); it is never "
                      "loaded (allow_pickle is off) — save plain numeric arrays")
    if h.dtype.kind not in kinds or len(h.shape) == 0:
        raise f.error(f"array '{key}' has dtype {h.dtype} and shape {list(h.shape)}; "
                      f"{what}")


def _headers(args: dict, f: DataFile) -> tuple[NpyHeader, NpyHeader]:
    x, y = _read_header(f, args["x"]), _read_header(f, args["y"])
    _check_kind(f, args["x"], x, "biuf", "images must be a numeric array with a record axis")
    _check_kind(f, args["y"], y, "biuf", "labels must be integers with a record axis")
    if x.shape[0] != y.shape[0]:
        raise f.error(f"array '{args['x']}' has {x.shape[0]} records but '{args['y']}' "
                      f"has {y.shape[0]}")
    return x, y


def _fields(x: NpyHeader, y: NpyHeader) -> dict[str, FieldInfo]:
    return {"image": FieldInfo("image", x.shape[1:], "float32", "array x, one entry per record"),
            "label": FieldInfo("label", y.shape[1:], "int32", "array y, one entry per record")}


def header(args: dict, base_dir: pathlib.Path) -> Header:
    x, y = _headers(args, locate(base_dir, args["path"]))
    return Header(_fields(x, y), x.shape[0])


def _load_array(f: DataFile, key: str) -> np.ndarray:
    try:
        with np.load(f.path, allow_pickle=False) as archive:
            return archive[key]
    except _BROKEN as e:
        raise f.error(f"array '{key}' cannot be loaded: {e}") from None


def load(args: dict, base_dir: pathlib.Path, seed: int) -> ArrayRecords:
    f = locate(base_dir, args["path"])
    x, y = _headers(args, f)
    images, labels = _load_array(f, args["x"]), _load_array(f, args["y"])
    if labels.dtype.kind == "f":
        # float labels are accepted when they are whole numbers (as some tools save them)
        bad = np.flatnonzero(~np.isfinite(labels) | (labels != np.round(labels)))
        if len(bad):
            raise f.error(f"array '{args['y']}' has label {labels.flat[bad[0]]} at flat "
                          f"index {bad[0]}; labels must be whole numbers")
    return ArrayRecords({"image": images, "label": labels}, _fields(x, y))


SOURCE = define_source(
    "npz", "two arrays of a numpy .npz archive: fields image (array x), label (array y)",
    (Attr("path", "path", doc="the .npz file", positional=True),
     Attr("x", "str", "x", "name of the images array"),
     Attr("y", "str", "y", "name of the labels array")),
    header, load)
