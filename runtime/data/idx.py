"""``idx(images: PATH, labels: PATH)`` — MNIST's own IDX format, gzipped or not.

An IDX file is: two zero bytes, a dtype code, the number of dimensions n, n big-endian
uint32 sizes (the first is the record count), then the values, big-endian, row-major.
Images are flattened per record (MNIST: 784 values, 0..255); reshape them with
``shape: [1, 28, 28]``.
"""
from __future__ import annotations

import math
import pathlib
import struct
from dataclasses import dataclass

import numpy as np

from singa_dsl.schema import Attr

from .files import DataFile, content_size, is_gzip, locate, read_all, read_prefix
from .reader import ArrayRecords
from .registry import FieldInfo, Header, define_source

# IDX dtype codes -> numpy big-endian dtypes
DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
INTEGER_CODES = (0x08, 0x09, 0x0B, 0x0C)


@dataclass(frozen=True)
class IdxHeader:
    file: DataFile
    code: int
    dims: tuple[int, ...]

    @property
    def offset(self) -> int:
        return 4 + 4 * len(self.dims)

    @property
    def per_record(self) -> int:
        return math.prod(self.dims[1:])

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(DTYPES[self.code])

    @property
    def nbytes(self) -> int:
        return self.offset + math.prod(self.dims) * self.dtype.itemsize

    def describe(self) -> str:
        return f"{self.dims[0]} records of {'x'.join(map(str, self.dims[1:])) or 'one'} " \
               f"{self.dtype.name}"


def read_header(f: DataFile) -> IdxHeader:
    head = read_prefix(f, 4)
    if len(head) < 4:
        raise f.error(f"is {len(head)} bytes, too short to be an IDX file (truncated)")
    zero, code, ndim = struct.unpack(">HBB", head)
    if zero != 0 or code not in DTYPES or ndim == 0:
        raise f.error(f"wrong magic number 0x{head.hex()}: not an IDX file (expected "
                      f"00 00, a dtype code among {', '.join(f'{c:#04x}' for c in DTYPES)}, "
                      "and a dimension count)")
    raw = read_prefix(f, 4 + 4 * ndim)
    if len(raw) < 4 + 4 * ndim:
        raise f.error(f"truncated inside its header ({ndim} dimension sizes expected)")
    dims = struct.unpack(f">{ndim}I", raw[4:])
    h = IdxHeader(f, code, dims)
    _check_size(h)
    return h


def _check_size(h: IdxHeader) -> None:
    """The file must hold exactly what its header promises (gzip: per the gzip trailer)."""
    if 0 in h.dims:
        raise h.file.error(f"has a zero dimension {list(h.dims)}: no data")
    got = content_size(h.file)
    want = h.nbytes % (1 << 32) if is_gzip(h.file) else h.nbytes
    if got != want:
        kind = "uncompressed content" if is_gzip(h.file) else "file"
        raise h.file.error(f"{kind} is {got} bytes, but its header promises {h.nbytes} "
                           f"({h.describe()}): truncated or corrupt")


def _headers(args: dict, base_dir: pathlib.Path) -> tuple[IdxHeader, IdxHeader]:
    images = read_header(locate(base_dir, args["images"]))
    labels = read_header(locate(base_dir, args["labels"]))
    if len(images.dims) < 2:
        raise images.file.error(f"has {len(images.dims)} dimension; an images file needs at "
                                "least 2 (count, values...)")
    if len(labels.dims) != 1 or labels.code not in INTEGER_CODES:
        raise labels.file.error(f"holds {labels.describe()}; a labels file holds one "
                                "integer per record (1 dimension, integer dtype)")
    if images.dims[0] != labels.dims[0]:
        raise labels.file.error(f"has {labels.dims[0]} labels, but images file "
                                f"'{images.file.shown}' has {images.dims[0]} images")
    return images, labels


def _fields(images: IdxHeader) -> dict[str, FieldInfo]:
    return {"image": FieldInfo("image", (images.per_record,), "float32",
                               "pixel values as stored (MNIST: 0..255), flattened"),
            "label": FieldInfo("label", (), "int32", "the class of the image")}


def header(args: dict, base_dir: pathlib.Path) -> Header:
    images, _ = _headers(args, base_dir)
    return Header(_fields(images), images.dims[0])


def _values(h: IdxHeader) -> np.ndarray:
    data = read_all(h.file)
    if len(data) != h.nbytes:
        raise h.file.error(f"content is {len(data)} bytes, but its header promises {h.nbytes} "
                           f"({h.describe()}): truncated or corrupt")
    return np.frombuffer(data, h.dtype, offset=h.offset).reshape(h.dims[0], h.per_record)


def load(args: dict, base_dir: pathlib.Path, seed: int) -> ArrayRecords:
    images, labels = _headers(args, base_dir)
    arrays = {"image": _values(images), "label": _values(labels).reshape(-1)}
    return ArrayRecords(arrays, _fields(images))


SOURCE = define_source(
    "idx", "MNIST's IDX files (gzipped or not): fields image (flattened), label",
    (Attr("images", "path", doc="IDX file of images, e.g. t10k-images-idx3-ubyte.gz"),
     Attr("labels", "path", doc="IDX file of labels, e.g. t10k-labels-idx1-ubyte.gz")),
    header, load)
