"""``text(PATH, seq: 50)`` — a character corpus for char-rnn, as SINGA's CharRNN input layer.

The file is read as utf-8, exactly as it is (newlines are characters too).  The vocabulary
is the sorted distinct characters, and a character's id is its index there; the constant
``vocab`` is their number.  Record k is the window of ``seq`` characters starting at
``k * seq`` (field ``chars``) with the ``seq`` characters one further on (field ``next``).

Batches are SINGA-style consecutive windows: a shard's windows are cut into ``batch`` equal
streams, and row i of batch t is window t of stream i — so each row carries on where the
same row of the previous batch stopped, and a recurrent net may carry its state across
batches.  (``shuffle`` reorders windows and gives that up; ``range`` selects windows.)
"""
from __future__ import annotations

import functools
import pathlib

import numpy as np

from singa_dsl.schema import Attr

from .files import DataFile, locate, read_all
from .registry import FieldInfo, Header, define_source


@functools.lru_cache(maxsize=4)
def _corpus(path: pathlib.Path, mtime: int, size: int, shown: str):
    """(vocabulary, ids) of a file; cached by path, mtime and size so that check and open
    read it once."""
    f = DataFile(shown, path)
    data = read_all(f)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise f.error(f"is not utf-8 text (bad byte 0x{data[e.start]:02x} on line {line})") \
            from None
    codes = np.frombuffer(text.encode("utf-32-le"), dtype="<u4")
    # sorting code points sorts the characters, as Python compares strings
    uniq, ids = np.unique(codes, return_inverse=True)
    vocabulary = tuple(chr(c) for c in uniq)
    ids = ids.astype(np.int32).reshape(-1)
    ids.flags.writeable = False          # shared by every reader of this file (cached)
    return vocabulary, ids


def corpus(args: dict, base_dir: pathlib.Path) -> tuple[tuple[str, ...], np.ndarray]:
    f = locate(base_dir, args["path"])
    st = f.path.stat()
    vocabulary, ids = _corpus(f.path, st.st_mtime_ns, st.st_size, f.shown)
    if len(ids) < args["seq"] + 1:
        raise f.error(f"has {len(ids)} characters; seq {args['seq']} needs at least "
                      f"{args['seq'] + 1}")
    return vocabulary, ids


def vocabulary(args: dict, base_dir: pathlib.Path) -> tuple[str, ...]:
    """Id -> character, so that a sampler can turn generated ids back into text."""
    return corpus(args, base_dir)[0]


def _fields(seq: int) -> dict[str, FieldInfo]:
    return {"chars": FieldInfo("chars", (seq,), "int32", "ids of seq consecutive characters"),
            "next": FieldInfo("next", (seq,), "int32", "ids of the characters that follow")}


def header(args: dict, base_dir: pathlib.Path) -> Header:
    _, ids = corpus(args, base_dir)
    return Header(_fields(args["seq"]), (len(ids) - 1) // args["seq"])


def constants(args: dict, base_dir: pathlib.Path) -> dict[str, int]:
    return {"vocab": len(vocabulary(args, base_dir))}


class TextWindows:
    """Record k: ids[k*seq : (k+1)*seq] and the same window shifted by one character."""

    def __init__(self, ids: np.ndarray, seq: int, vocabulary: tuple[str, ...]):
        self.ids, self.seq, self.vocabulary = ids, seq, vocabulary
        self.count = (len(ids) - 1) // seq
        self.fields = _fields(seq)

    def take(self, index: np.ndarray) -> dict[str, np.ndarray]:
        at = index[:, None] * self.seq + np.arange(self.seq)
        return {"chars": self.ids[at], "next": self.ids[at + 1]}


def load(args: dict, base_dir: pathlib.Path, seed: int) -> TextWindows:
    vocab, ids = corpus(args, base_dir)
    return TextWindows(ids, args["seq"], vocab)


def streams(index: np.ndarray, batch: int) -> np.ndarray:
    """Reorder windows so that row i of consecutive batches walks stream i (the windows that
    do not fill a whole row of every batch are left out)."""
    per_stream = len(index) // batch
    kept = index[:per_stream * batch]
    return kept.reshape(batch, per_stream).T.reshape(-1)


SOURCE = define_source(
    "text", "a character corpus (utf-8): fields chars, next; constant vocab",
    (Attr("path", "path", doc="the text file (gzipped or not)", positional=True),
     Attr("seq", "int", 50, "characters per window (the unroll length)", gt=0)),
    header, load, constants=constants, contiguous_shards=True, arrange=streams)
