"""``cifar(path: PATH)`` — CIFAR-10 binary batches.

A record is 1 label byte (0..9) and 3072 image bytes (1024 red, 1024 green, 1024 blue, each
32x32 row-major), so a file's size is a multiple of 3073 bytes.  ``path`` names one .bin
file or a directory; a directory means its ``data_batch_*.bin`` files in numeric order (the
training set) — name ``test_batch.bin`` itself to read the test set, so the two never mix.
"""
from __future__ import annotations

import pathlib
import re

import numpy as np

from singa_dsl.schema import Attr

from .files import DataFile, locate, read_all
from .reader import ArrayRecords
from .registry import FieldInfo, Header, define_source

IMAGE_BYTES = 3 * 32 * 32
RECORD_BYTES = 1 + IMAGE_BYTES
CLASSES = 10

FIELDS = {
    "image": FieldInfo("image", (3, 32, 32), "float32", "RGB planes as stored, 0..255"),
    "label": FieldInfo("label", (), "int32", "the class, 0..9"),
}


def _files(args: dict, base_dir: pathlib.Path) -> list[DataFile]:
    top = locate(base_dir, args["path"], directory_ok=True)
    if not top.path.is_dir():
        return [top]
    found = [p for p in top.path.iterdir()
             if re.fullmatch(r"data_batch_\d+\.bin", p.name) and p.is_file()]
    if not found:
        raise top.error("is a directory without data_batch_*.bin files (name test_batch.bin "
                        "itself to read the test set)")
    found.sort(key=lambda p: int(re.findall(r"\d+", p.name)[0]))   # 2 before 10
    return [DataFile(f"{args['path'].rstrip('/')}/{p.name}", p) for p in found]


def _records_in(f: DataFile) -> int:
    size = f.path.stat().st_size
    if size == 0 or size % RECORD_BYTES:
        raise f.error(f"is {size} bytes, not a multiple of {RECORD_BYTES} (1 label byte + "
                      f"{IMAGE_BYTES} image bytes per CIFAR-10 record): truncated or not "
                      "a CIFAR-10 binary batch")
    return size // RECORD_BYTES


def header(args: dict, base_dir: pathlib.Path) -> Header:
    return Header(FIELDS, sum(_records_in(f) for f in _files(args, base_dir)))


def _read(f: DataFile) -> np.ndarray:
    _records_in(f)
    rows = np.frombuffer(read_all(f), np.uint8).reshape(-1, RECORD_BYTES)
    bad = np.flatnonzero(rows[:, 0] >= CLASSES)
    if len(bad):
        raise f.error(f"record {bad[0]} has label {rows[bad[0], 0]}; CIFAR-10 labels are "
                      f"0..{CLASSES - 1} (CIFAR-100 files have 2 label bytes and are not read)")
    return rows


def load(args: dict, base_dir: pathlib.Path, seed: int) -> ArrayRecords:
    rows = np.concatenate([_read(f) for f in _files(args, base_dir)])
    # views into one buffer: images stay uint8 until a batch is converted
    return ArrayRecords({"image": rows[:, 1:], "label": rows[:, 0]}, FIELDS)


SOURCE = define_source(
    "cifar", "CIFAR-10 binary batches: fields image [3, 32, 32], label",
    (Attr("path", "path", doc="a CIFAR-10 .bin file, or a directory of data_batch_*.bin",
          positional=True),),
    header, load)
