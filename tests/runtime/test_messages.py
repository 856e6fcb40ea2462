"""The frame codec between ranks: round trips, and every damaged or foreign frame is a
FrameError — never another exception, never an allocation a corrupted length asks for."""
from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from singa_dsl.runtime.messages import (HEADER, HEADER_SIZE, MAX_PAYLOAD, Frame, FrameError,
                                        Kind, check_size, decode, encode)


@given(kind=st.sampled_from(list(Kind)), src=st.integers(0, 2**31 - 1),
       target=st.integers(-2**31, 2**31 - 1), step=st.integers(-2**63, 2**63 - 1),
       value=st.floats(allow_nan=False),
       values=st.lists(st.floats(width=32, allow_nan=False), max_size=50))
def test_float_frames_round_trip(kind, src, target, step, value, values):
    data = np.array(values, np.float32)
    f = decode(encode(Frame(kind, src, target, step, value, data)))
    assert (f.kind, f.src, f.target, f.step, f.value) == (kind, src, target, step, value)
    np.testing.assert_array_equal(f.floats(), data)


def test_records_and_empty_frames_round_trip():
    rec = {"phase": "train", "step": 3, "loss": 0.25, "accuracy": None, "group": 1}
    assert decode(encode(Frame(Kind.METRIC, 4, 1, 3, 0.0, rec))).record() == rec
    f = decode(encode(Frame(Kind.STOP, 2)))
    assert f.kind is Kind.STOP and f.data is None
    with pytest.raises(FrameError, match="carries no values"):
        f.floats()


def _valid():
    return bytes(encode(Frame(Kind.UPDATE, 3, 1, 7, 0.5, np.arange(6, dtype=np.float32))))


@pytest.mark.parametrize("damage, message", [
    (lambda b: b"XXXX" + b[4:], "magic"),
    (lambda b: b[:-4], "header says"),
    (lambda b: b + b"\0\0\0\0", "header says"),
    (lambda b: b[:20] + bytes([b[20] ^ 1]) + b[21:], "checksum"),      # a header bit
    (lambda b: b[:10], "not a frame"),
])
def test_damaged_frames_are_named_errors(damage, message):
    with pytest.raises(FrameError, match=message):
        decode(damage(_valid()))


def test_a_huge_length_is_refused_before_allocating():
    with pytest.raises(FrameError, match="not a frame"):
        check_size(HEADER_SIZE + MAX_PAYLOAD + 1)
    # a header claiming 2**60 payload bytes on a short buffer: a mismatch, nothing allocated
    fields = list(HEADER.unpack_from(_valid()))
    fields[8] = 2**60
    with pytest.raises(FrameError):
        decode(HEADER.pack(*fields) + b"\0" * 24)


def test_an_unknown_kind_with_a_good_checksum_is_refused():
    import zlib
    fields = list(HEADER.unpack_from(_valid()))
    fields[1] = 99
    fields[9] = 0
    body = _valid()[HEADER_SIZE:]
    fields[9] = zlib.crc32(HEADER.pack(*fields))      # float values: header-only CRC
    with pytest.raises(FrameError, match="unknown kind"):
        decode(HEADER.pack(*fields) + body)


def test_a_damaged_inline_record_is_refused():
    b = bytearray(encode(Frame(Kind.METRIC, 1, 0, 2, 0.0, {"loss": 1.5})))
    b[HEADER_SIZE + 3] ^= 0x20
    with pytest.raises(FrameError, match="checksum"):
        decode(bytes(b))


def test_values_received_apart_must_match_the_header():
    from singa_dsl.runtime.messages import encode_parts
    head, raw = encode_parts(Frame(Kind.R_UPDATE, 2, 0, 1, 0.0, np.ones(5, np.float32)))
    assert raw is not None and len(head) == HEADER_SIZE
    got = decode(bytes(head), np.frombuffer(raw, np.float32).copy())
    np.testing.assert_array_equal(got.floats(), np.ones(5))
    with pytest.raises(FrameError, match="header says 20 payload bytes, 16 arrived"):
        decode(bytes(head), np.ones(4, np.float32))


def _fuzz(n: int, seed: int) -> dict:
    """n frames: random bytes, and valid frames with random bytes flipped or cut.  A flip in
    a header or an inline record must be refused; one in raw float values may decode (any
    bytes are floats); nothing may raise anything but FrameError."""
    rng = np.random.default_rng(seed)
    valid = [_valid(), bytes(encode(Frame(Kind.METRIC, 1, 0, 2, 0.0, {"loss": 1.5}))),
             bytes(encode(Frame(Kind.STOP, 5)))]
    guarded = [HEADER_SIZE, len(valid[1]), HEADER_SIZE]     # bytes a checksum covers
    counts = {"decoded": 0, "refused": 0, "guarded_flips_passed": 0}
    for i in range(n):
        hit_guarded = False
        if i % 3 == 0:
            buf = rng.bytes(int(rng.integers(0, 200)))
        else:
            k = i % len(valid)
            b = bytearray(valid[k])
            for _ in range(int(rng.integers(1, 4))):
                b[int(rng.integers(0, len(b)))] = int(rng.integers(0, 256))
            hit_guarded = b[:guarded[k]] != valid[k][:guarded[k]]
            if i % 5 == 0:
                b = b[:int(rng.integers(0, len(b) + 1))]
            buf = bytes(b)
        try:
            decode(buf)
            counts["decoded"] += 1
            counts["guarded_flips_passed"] += hit_guarded
        except FrameError:
            counts["refused"] += 1
    return counts


def test_random_frames_never_crash_the_decoder():
    t0 = time.perf_counter()
    counts = _fuzz(100_000, seed=11)
    print(f"100,000 random frames: {counts['refused']} refused, {counts['decoded']} decoded "
          f"(flips in raw float values, or none), 0 crashes, "
          f"{time.perf_counter() - t0:.1f} s")
    assert counts["refused"] + counts["decoded"] == 100_000
    assert counts["guarded_flips_passed"] == 0
    assert counts["refused"] > 75_000
