"""Finding and reading data files, with every failure turned into a SingaDataError that
names the file as the program wrote it and says what is wrong with it."""
from __future__ import annotations

import gzip
import pathlib
import struct
import zlib
from dataclasses import dataclass

from singa_dsl.errors import SingaDataError

GZIP_MAGIC = b"\x1f\x8b"
# What reading a damaged file can raise; all of them mean "this file is broken".
READ_ERRORS = (OSError, EOFError, zlib.error, gzip.BadGzipFile)


@dataclass(frozen=True)
class DataFile:
    shown: str                 # as written in the program, for messages
    path: pathlib.Path         # resolved against the program's folder

    def error(self, problem: str) -> SingaDataError:
        return SingaDataError(f"data file '{self.shown}': {problem}")


def locate(base_dir: pathlib.Path, value: str, *, directory_ok: bool = False) -> DataFile:
    """The file a path attribute names; missing files are reported with where we looked."""
    path = pathlib.Path(value).expanduser()
    if not path.is_absolute():
        path = pathlib.Path(base_dir) / path
    f = DataFile(value, path)
    if not path.exists():
        raise f.error(f"not found (looked for {path}; paths are relative to the program's folder)")
    if path.is_dir():
        if not directory_ok:
            raise f.error("is a directory, not a file")
    elif not path.is_file():          # reading /dev/zero or a pipe would never end
        raise f.error("is not a regular file (a device, pipe or socket)")
    return f


def is_gzip(f: DataFile) -> bool:
    return read_prefix(f, 2, raw=True) == GZIP_MAGIC


def read_prefix(f: DataFile, n: int, *, raw: bool = False) -> bytes:
    """Up to ``n`` leading bytes, decompressed unless ``raw`` (a gzip file is read as it is)."""
    try:
        with open(f.path, "rb") as fp:
            head = fp.read(n)
            if raw or head[:2] != GZIP_MAGIC:
                return head
        with gzip.open(f.path, "rb") as gz:
            return gz.read(n)
    except READ_ERRORS as e:
        raise f.error(f"cannot be read: {_reason(e)}") from None


def read_all(f: DataFile) -> bytes:
    """The whole content, decompressed if gzipped."""
    try:
        data = f.path.read_bytes()
        return gzip.decompress(data) if data[:2] == GZIP_MAGIC else data
    except EOFError:
        raise f.error("the gzip stream is truncated (the file was cut short)") from None
    except READ_ERRORS as e:
        raise f.error(f"cannot be read: {_reason(e)}") from None


def content_size(f: DataFile) -> int:
    """Size of the (decompressed) content, from the gzip trailer — without decompressing.
    The trailer holds the size mod 2**32, so callers compare modulo 2**32 too."""
    if not is_gzip(f):
        return f.path.stat().st_size
    with open(f.path, "rb") as fp:
        fp.seek(0, 2)
        if fp.tell() < 18:                    # 10-byte header + 8-byte trailer at the least
            raise f.error("is too short to be a gzip file (truncated)")
        fp.seek(-4, 2)
        return struct.unpack("<I", fp.read(4))[0]


def _reason(e: BaseException) -> str:
    return getattr(e, "strerror", None) or str(e) or type(e).__name__
