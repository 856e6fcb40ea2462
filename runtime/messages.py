"""Frames between ranks: a fixed 48-byte header and a raw payload — never a pickled object.

A frame is what one MPI message carries.  The header says what the payload is and how big,
and a CRC-32 covers both, so a garbled frame is a ``FrameError`` (a named, catchable error),
never a crash, a hang or an allocation of whatever size a corrupted length field asks for.

    offset  size  field
    0       4     magic b"SGF1"
    4       1     kind      (Kind: what the frame asks or answers, SINGA's MsgType)
    5       1     payload   (Payload: none | float32 | json)
    6       2     reserved  (zero)
    8       4     src       rank that sent it
    12      4     target    slice range, group or worker index (kind-specific)
    16      8     step      the step or version it belongs to (int64)
    24      8     value     one float64 (a weight, a loss) (kind-specific)
    32      8     nbytes    payload size in bytes
    40      4     crc32     of the header (with this field zero) and the payload
    44      4     reserved  (zero)

JSON payloads carry small records (metrics, reader state) and go through ``json.loads``,
which builds only plain data.
"""
from __future__ import annotations

import enum
import json
import struct
import zlib
from dataclasses import dataclass

import numpy as np

from singa_dsl.errors import SingaError

MAGIC = b"SGF1"
HEADER = struct.Struct("<4sBBHiiqdQII")
HEADER_SIZE = HEADER.size
assert HEADER_SIZE == 48
# The largest payload a rank accepts: above every param slice a 2-core-to-cluster job moves
# (SINGA's MLP is 10 M floats = 40 MB); a length above it is garbage, refused unallocated.
MAX_PAYLOAD = 1 << 31


class Kind(enum.IntEnum):
    """What a frame is (SINGA's MsgType, plus our control frames)."""
    GET = 1             # worker → server: send me your params (version ≥ step)
    R_GET = 2           # server → worker: the values of its range
    UPDATE = 3          # worker → server: a gradient for its range (value: rows weight)
    R_UPDATE = 4        # server → worker: the updated values of its range
    SYNC_REQUEST = 5    # server → master server: Δ since the last sync (Hogwild)
    SYNC_RESPONSE = 6   # master server → server: the master's values
    STOP = 7            # worker/server → server: I am done
    METRIC = 8          # worker → group leader / driver: a loss or a metrics record
    CKPT_REQUEST = 9    # driver → server: send your params and updater state
    CKPT_DATA = 10      # server → driver: params then state, of its range
    DONE = 11           # group leader → driver: my group finished (metrics all sent)


class Payload(enum.IntEnum):
    NONE = 0
    FLOAT32 = 1
    JSON = 2


class FrameError(SingaError):
    """A frame that is not one of ours, or was damaged on the way."""
    exit_code = 7


@dataclass(frozen=True)
class Frame:
    kind: Kind
    src: int
    target: int = 0
    step: int = 0
    value: float = 0.0
    data: np.ndarray | dict | list | None = None

    def floats(self) -> np.ndarray:
        if not isinstance(self.data, np.ndarray):
            raise FrameError(f"a {self.kind.name} frame from rank {self.src} carries no values")
        return self.data

    def record(self):
        if isinstance(self.data, np.ndarray) or self.data is None:
            raise FrameError(f"a {self.kind.name} frame from rank {self.src} carries no record")
        return self.data


def encode(frame: Frame) -> bytes | bytearray:
    """The frame as one contiguous buffer (header + payload)."""
    data = frame.data
    if data is None:
        kind, body = Payload.NONE, b""
    elif isinstance(data, np.ndarray):
        kind, body = Payload.FLOAT32, np.ascontiguousarray(data, dtype=np.float32).data.cast("B")
    else:
        kind, body = Payload.JSON, json.dumps(data, allow_nan=True).encode()
    if len(body) > MAX_PAYLOAD:
        raise FrameError(f"a {frame.kind.name} payload of {len(body)} bytes is over the "
                         f"{MAX_PAYLOAD}-byte cap")
    header = HEADER.pack(MAGIC, int(frame.kind), int(kind), 0, frame.src, frame.target,
                         frame.step, frame.value, len(body), 0, 0)
    crc = zlib.crc32(body, zlib.crc32(header))
    out = bytearray(HEADER_SIZE + len(body))
    out[:HEADER_SIZE] = HEADER.pack(MAGIC, int(frame.kind), int(kind), 0, frame.src,
                                    frame.target, frame.step, frame.value, len(body), crc, 0)
    out[HEADER_SIZE:] = body
    return out


def check_size(nbytes: int) -> None:
    """Before receiving: refuse a message whose size no frame of ours can have."""
    if nbytes < HEADER_SIZE or nbytes - HEADER_SIZE > MAX_PAYLOAD:
        raise FrameError(f"a message of {nbytes} bytes is not a frame (a frame is "
                         f"{HEADER_SIZE} bytes of header and at most {MAX_PAYLOAD} of payload)")


def decode(buf) -> Frame:
    """The frame in ``buf`` (bytes-like), checked: magic, kinds, size and CRC."""
    view = memoryview(buf).cast("B")
    check_size(len(view))
    magic, kind, payload, res0, src, target, step, value, nbytes, crc, res1 = \
        HEADER.unpack_from(view)
    if magic != MAGIC:
        raise FrameError(f"bad frame: magic {bytes(magic)!r} is not {MAGIC!r}")
    if nbytes != len(view) - HEADER_SIZE:
        raise FrameError(f"bad frame: header says {nbytes} payload bytes, "
                         f"{len(view) - HEADER_SIZE} arrived")
    zeroed = HEADER.pack(magic, kind, payload, res0, src, target, step, value, nbytes, 0, res1)
    if zlib.crc32(view[HEADER_SIZE:], zlib.crc32(zeroed)) != crc:
        raise FrameError(f"bad frame from rank {src}: checksum mismatch (damaged in transit)")
    try:
        kind, payload = Kind(kind), Payload(payload)
    except ValueError:
        raise FrameError(f"bad frame from rank {src}: unknown kind {kind} / payload "
                         f"{payload}") from None
    if res0 or res1:
        raise FrameError(f"bad frame from rank {src}: reserved fields are not zero")
    body = view[HEADER_SIZE:]
    if payload is Payload.NONE:
        if nbytes:
            raise FrameError(f"bad frame from rank {src}: {nbytes} bytes with no payload kind")
        data = None
    elif payload is Payload.FLOAT32:
        if nbytes % 4:
            raise FrameError(f"bad frame from rank {src}: {nbytes} bytes is not float32s")
        data = np.frombuffer(body, dtype=np.float32).copy()
    else:
        try:
            data = json.loads(bytes(body).decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as e:
            raise FrameError(f"bad frame from rank {src}: its record is not JSON "
                             f"({type(e).__name__})") from None
        if not isinstance(data, (dict, list)):
            raise FrameError(f"bad frame from rank {src}: its record is not an object or list")
    return Frame(kind, src, target, step, value, data)
