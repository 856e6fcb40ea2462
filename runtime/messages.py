"""Frames between ranks: a fixed 48-byte header and a raw payload — never a pickled object.

A frame is one or two MPI messages: the header (with a small JSON record inline, when it
carries one), then, for float32 values, the raw values as a message of their own, received
straight into the array that needs them (a 10 M-param net moves 40 MB a step; a copy or a
checksum pass over that costs more than the network).  The header says what follows and how
big; a CRC-32 covers the header and any inline record, so a garbled header is a
``FrameError`` (a named, catchable error), never a crash, a hang or an allocation of whatever
size a corrupted length field asks for.  Raw values need no checksum to be safe: any bytes
are some float32s, and MPI delivers them intact or fails loudly.

    offset  size  field
    0       4     magic b"SGF1"
    4       1     kind      (Kind: what the frame asks or answers, SINGA's MsgType)
    5       1     payload   (Payload: none | float32 (a message of its own) | json (inline))
    6       2     reserved  (zero)
    8       4     src       rank that sent it
    12      4     target    slice range, group or worker index (kind-specific)
    16      8     step      the step or version it belongs to (int64)
    24      8     value     one float64 (a weight, a loss) (kind-specific)
    32      8     nbytes    payload size in bytes
    40      4     crc32     of the header (with this field zero) and an inline record
    44      4     reserved  (zero)

JSON records (metrics, small control data) go through ``json.loads``, which builds only
plain data.
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
    BRIDGE = 12         # worker → worker of its group: a bridge's piece (SINGA's BridgeSrc/
    #                     BridgeDst; model parallel), target = the exchange's number


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


def encode_parts(frame: Frame) -> tuple[bytearray, memoryview | None]:
    """(header with any inline record, raw float32 values or None): what goes on the wire."""
    data = frame.data
    if data is None:
        kind, inline, raw = Payload.NONE, b"", None
    elif isinstance(data, np.ndarray):
        arr = np.ascontiguousarray(data, dtype=np.float32)
        kind, inline, raw = Payload.FLOAT32, b"", memoryview(arr).cast("B")
    else:
        kind, inline, raw = Payload.JSON, json.dumps(data, allow_nan=True).encode(), None
    nbytes = len(raw) if raw is not None else len(inline)
    if nbytes > MAX_PAYLOAD:
        raise FrameError(f"a {frame.kind.name} payload of {nbytes} bytes is over the "
                         f"{MAX_PAYLOAD}-byte cap")
    fields = (MAGIC, int(frame.kind), int(kind), 0, frame.src, frame.target, frame.step,
              frame.value, nbytes)
    crc = zlib.crc32(inline, zlib.crc32(HEADER.pack(*fields, 0, 0)))
    head = bytearray(HEADER.pack(*fields, crc, 0))
    head += inline
    return head, raw


def encode(frame: Frame) -> bytearray:
    """The whole frame as one buffer (header, inline record, raw values)."""
    head, raw = encode_parts(frame)
    if raw is not None:
        head += raw
    return head


def check_size(nbytes: int) -> None:
    """Before receiving: refuse a message whose size no frame of ours can have."""
    if nbytes < HEADER_SIZE or nbytes - HEADER_SIZE > MAX_PAYLOAD:
        raise FrameError(f"a message of {nbytes} bytes is not a frame (a frame is "
                         f"{HEADER_SIZE} bytes of header and at most {MAX_PAYLOAD} of payload)")


@dataclass(frozen=True)
class Header:
    kind: Kind
    payload: Payload
    src: int
    target: int
    step: int
    value: float
    nbytes: int

    @property
    def values_follow(self) -> bool:
        """Raw float32 values come as the next message from the same rank."""
        return self.payload is Payload.FLOAT32


def decode_header(buf) -> tuple[Header, memoryview]:
    """The checked header at the start of ``buf`` and whatever follows it in ``buf``."""
    view = memoryview(buf).cast("B")
    check_size(len(view))
    magic, kind, payload, res0, src, target, step, value, nbytes, crc, res1 = \
        HEADER.unpack_from(view)
    if magic != MAGIC:
        raise FrameError(f"bad frame: magic {bytes(magic)!r} is not {MAGIC!r}")
    rest = view[HEADER_SIZE:]
    inline = rest if payload == Payload.JSON else rest[:0]
    zeroed = HEADER.pack(magic, kind, payload, res0, src, target, step, value, nbytes, 0, res1)
    if zlib.crc32(inline, zlib.crc32(zeroed)) != crc:
        raise FrameError(f"bad frame from rank {src}: checksum mismatch (damaged in transit)")
    try:
        kind, payload = Kind(kind), Payload(payload)
    except ValueError:
        raise FrameError(f"bad frame from rank {src}: unknown kind {kind} / payload "
                         f"{payload}") from None
    if res0 or res1:
        raise FrameError(f"bad frame from rank {src}: reserved fields are not zero")
    if payload is Payload.FLOAT32 and nbytes % 4:
        raise FrameError(f"bad frame from rank {src}: {nbytes} bytes is not float32s")
    if payload is Payload.NONE and nbytes:
        raise FrameError(f"bad frame from rank {src}: {nbytes} bytes with no payload kind")
    return Header(kind, payload, src, target, step, value, nbytes), rest


def decode(buf, values: np.ndarray | None = None) -> Frame:
    """The frame in ``buf``: a header with its inline record, or with its raw values either
    following in ``buf`` or already received into ``values``."""
    h, rest = decode_header(buf)
    if h.payload is Payload.FLOAT32 and values is None:
        values = rest
    elif len(rest) != (h.nbytes if h.payload is Payload.JSON else 0):
        raise FrameError(f"bad frame: header says {h.nbytes} payload bytes, "
                         f"{len(rest)} arrived")
    if h.payload is Payload.NONE:
        data = None
    elif h.payload is Payload.FLOAT32:
        got = values.nbytes if isinstance(values, np.ndarray) else len(values)
        if got != h.nbytes:
            raise FrameError(f"bad frame: header says {h.nbytes} payload bytes, "
                             f"{got} arrived")
        data = values if isinstance(values, np.ndarray) else \
            np.frombuffer(values, dtype=np.float32).copy()
    else:
        try:
            data = json.loads(bytes(rest).decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as e:
            raise FrameError(f"bad frame from rank {h.src}: its record is not JSON "
                             f"({type(e).__name__})") from None
        if not isinstance(data, (dict, list)):
            raise FrameError(f"bad frame from rank {h.src}: its record is not an object "
                             "or list")
    return Frame(h.kind, h.src, h.target, h.step, h.value, data)
