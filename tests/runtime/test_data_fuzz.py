"""Malformed data files: every reader (idx, cifar, npz, csv, text) given a seeded mutation of
a valid small file — truncated, bytes flipped, header overwritten, bytes inserted or cut,
garbage appended, gzipped then damaged, or (npz) arrays of the wrong kind and headers that
lie about their size — either yields valid batches or raises a SingaDataError naming the
file.  Any other exception fails the run.  500 files by default; 10,000 under ``slow``."""
from __future__ import annotations

import collections
import gzip
import io
import os
import struct
import time
import zipfile

import numpy as np
import pytest
from numpy.lib import format as npy_format

from singa_dsl.errors import SingaDataError
from singa_dsl.runtime.data import SOURCES, source_args

KINDS = ("idx", "cifar", "npz", "csv", "text")
BATCH = 3


# ---- valid small files ---------------------------------------------------------------------

def _idx_bytes(array: np.ndarray, code: int) -> bytes:
    dtype = {0x08: ">u1", 0x0D: ">f4"}[code]
    head = struct.pack(">HBB", 0, code, array.ndim) + struct.pack(f">{array.ndim}I",
                                                                   *array.shape)
    return head + array.astype(dtype).tobytes()


def _valid(kind: str, rng) -> dict[str, bytes]:
    """file role -> content of a valid file (idx has two files)."""
    n = int(rng.integers(4, 12))
    if kind == "idx":
        images = rng.integers(0, 256, (n, 4, 4))
        return {"images": _idx_bytes(images, 0x08 if rng.random() < 0.7 else 0x0D),
                "labels": _idx_bytes(rng.integers(0, 10, n), 0x08)}
    if kind == "cifar":
        rows = rng.integers(0, 256, (n, 3073)).astype(np.uint8)
        rows[:, 0] %= 10
        return {"path": rows.tobytes()}
    if kind == "npz":
        buf = io.BytesIO()
        np.savez(buf, x=rng.standard_normal((n, 2, 3)).astype(np.float32),
                 y=rng.integers(0, 5, n).astype(np.int64))
        return {"path": buf.getvalue()}
    if kind == "csv":
        rows = [",".join([str(int(rng.integers(0, 4)))] + [f"{v:.3g}" for v in
                                                           rng.standard_normal(5)])
                for _ in range(n)]
        head = "label,a,b,c,d,e\n" if rng.random() < 0.5 else ""
        return {"path": (head + "\n".join(rows) + "\n").encode()}
    text = "".join(rng.choice(list("abcdefg hij\n\u00e9\u4e2d"), 40 + n * 5))
    return {"path": text.encode()}


# ---- mutations -----------------------------------------------------------------------------

def _mutate(data: bytes, rng) -> tuple[str, bytes]:
    b = bytearray(data)
    how = str(rng.choice(["truncate", "flip", "header", "insert", "cut", "append", "random",
                          "gzip", "gzip-damaged", "empty"]))
    if how == "truncate":
        return how, bytes(b[:int(rng.integers(0, max(1, len(b))))])
    if how == "flip":
        for _ in range(int(rng.integers(1, 9))):
            if b:
                b[int(rng.integers(len(b)))] ^= int(rng.integers(1, 256))
        return how, bytes(b)
    if how == "header":
        k = min(len(b), int(rng.integers(1, 17)))
        b[:k] = rng.integers(0, 256, k).astype(np.uint8).tobytes()
        return how, bytes(b)
    if how == "insert":
        at = int(rng.integers(0, len(b) + 1))
        return how, bytes(b[:at] + rng.integers(0, 256, int(rng.integers(1, 64)))
                          .astype(np.uint8).tobytes() + b[at:])
    if how == "cut":
        at = int(rng.integers(0, len(b) + 1))
        return how, bytes(b[:at] + b[at + int(rng.integers(1, 64)):])
    if how == "append":
        return how, bytes(b) + rng.integers(0, 256, int(rng.integers(1, 4000))) \
            .astype(np.uint8).tobytes()
    if how == "random":
        return how, rng.integers(0, 256, int(rng.integers(1, 400))).astype(np.uint8).tobytes()
    if how == "gzip":
        return how, gzip.compress(bytes(b), mtime=0)
    if how == "gzip-damaged":
        z = bytearray(gzip.compress(bytes(b), mtime=0))
        if rng.random() < 0.5:
            return how, bytes(z[:int(rng.integers(0, len(z)))])
        z[int(rng.integers(len(z)))] ^= int(rng.integers(1, 256))
        return how, bytes(z)
    return how, b""


def _npz_structural(rng) -> tuple[str, bytes]:
    """Archives that are well-formed zips but wrong as data."""
    n = int(rng.integers(3, 8))
    choice = int(rng.integers(8))
    buf = io.BytesIO()
    if choice == 0:           # pickled objects
        np.savez(buf, x=np.array([{"a": 1}] * n, dtype=object), y=np.zeros(n, np.int32))
    elif choice == 1:         # lengths disagree
        np.savez(buf, x=np.zeros((n, 2), np.float32), y=np.zeros(n + 1, np.int32))
    elif choice == 2:         # float labels that are not whole
        np.savez(buf, x=np.zeros((n, 2), np.float32), y=np.full(n, 0.5))
    elif choice == 3:         # 0-d arrays, strings
        np.savez(buf, x=np.float32(1), y=np.array(["a"] * n))
    elif choice == 4:         # a missing array
        np.savez(buf, x=np.zeros((n, 2), np.float32))
    elif choice == 5:         # a .npy header that promises far more data than it holds
        records = int(rng.choice([n + 1, 99999, 10**12, 2**62]))
        with zipfile.ZipFile(buf, "w") as z:
            for key, shape in (("x", (records, 2)), ("y", (records,))):
                member = io.BytesIO()
                npy_format.write_array_header_1_0(
                    member, {"descr": "<f4" if key == "x" else "<i4", "fortran_order": False,
                             "shape": shape})
                z.writestr(f"{key}.npy", member.getvalue() + bytes(4 * 2 * n))
        return f"npz-lying-header-{records}", buf.getvalue()
    elif choice == 6:         # a member stored under a wrong name / not .npy at all
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr("x.npy", b"\x93NUMPY garbage")
            z.writestr("y.npy", rng.integers(0, 256, 50).astype(np.uint8).tobytes())
    else:                     # complex numbers, NaN labels
        np.savez(buf, x=np.zeros((n, 2), np.complex64), y=np.full(n, np.nan))
    return f"npz-structural-{choice}", buf.getvalue()


# ---- one case ------------------------------------------------------------------------------

def _args(kind: str, names: dict[str, str]) -> dict:
    if kind == "idx":
        return source_args("idx", images=names["images"], labels=names["labels"], batch=BATCH)
    if kind == "text":
        return source_args("text", path=names["path"], seq=5, batch=BATCH)
    if kind == "csv":
        return source_args("csv", path=names["path"], batch=BATCH, label_column=0)
    return source_args(kind, path=names["path"], batch=BATCH)


def _check_batches(reader, fields) -> None:
    for _ in range(3):
        batch = reader.next_batch()
        assert set(batch) == set(fields)
        for name, info in fields.items():
            assert batch[name].shape == (BATCH,) + tuple(info.shape), name
            assert batch[name].dtype == np.dtype(info.dtype), name


def run_case(tmp_path, kind: str, case: int, rng) -> str:
    """'ok' (valid batches) or 'rejected' (a SingaDataError naming the file)."""
    files = _valid(kind, rng)
    if kind == "npz" and rng.random() < 0.25:
        how, files["path"] = _npz_structural(rng)
    else:
        role = str(rng.choice(sorted(files)))
        how, files[role] = _mutate(files[role], rng)
    names = {}
    for role, data in files.items():
        names[role] = f"{kind}-{case}-{role}.bin"        # a new name: no cache can answer
        (tmp_path / names[role]).write_bytes(data)
    args = _args(kind, names)
    try:
        fields = SOURCES[kind].fields(args, tmp_path)
        reader = SOURCES[kind].open(args, tmp_path, seed=case)
        try:
            _check_batches(reader, fields)
        finally:
            reader.close()
        return "ok"
    except SingaDataError as e:
        assert any(n in e.message for n in names.values()), (kind, how, e.message)
        return "rejected"
    except Exception as e:          # noqa: BLE001 - the point of the test
        raise AssertionError(f"{kind} case {case} ({how}): {type(e).__name__}: {e}") from e


def _fuzz(tmp_path, per_kind: int) -> dict:
    rng = np.random.default_rng(20240808)
    counts = collections.Counter()
    t0 = time.perf_counter()
    for case in range(per_kind):
        for kind in KINDS:
            counts[kind, run_case(tmp_path, kind, case, rng)] += 1
        if case % 100 == 99:
            for p in tmp_path.iterdir():
                p.unlink()
    seconds = time.perf_counter() - t0
    total = sum(counts.values())
    print(f"\n{total} malformed data files in {seconds:.1f} s: " + ", ".join(
        f"{k} {counts[k, 'rejected']} rejected/{counts[k, 'ok']} still valid" for k in KINDS)
        + "; 0 other exceptions")
    assert total == per_kind * len(KINDS)
    for kind in KINDS:
        assert counts[kind, "rejected"] > per_kind // 2, kind
    return counts


def test_500_malformed_data_files_give_valid_batches_or_a_data_error(tmp_path):
    _fuzz(tmp_path, 100)


@pytest.mark.slow
def test_10000_malformed_data_files_give_valid_batches_or_a_data_error(tmp_path):
    _fuzz(tmp_path, 2000)


@pytest.mark.parametrize("kind", KINDS)
def test_a_device_or_a_pipe_is_refused_rather_than_read_forever(tmp_path, kind):
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    for target in ("/dev/zero", str(pipe)):
        names = {"images": target, "labels": target, "path": target}
        with pytest.raises(SingaDataError, match=f"data file '{target}': is not a regular file"):
            SOURCES[kind].fields(_args(kind, names), tmp_path)
