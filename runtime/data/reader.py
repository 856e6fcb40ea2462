"""Mini-batches from a loaded record set: endless, deterministic, shardable, resumable.

The stream is the concatenation of epochs; epoch ``e`` visits this shard's records in a fixed
order (a permutation drawn from ``(seed, shard, e)`` when shuffling), and a batch is the next
``batch`` records of the stream, crossing into the next epoch when one ends — so no record is
dropped and every batch is full, as SINGA's shard data layers read round and round.
Because a batch is a pure function of ``(seed, epoch, position)``, ``state()`` is just those
ints, a restored reader yields exactly the batches the original would have, and a prefetch
thread cannot change what comes out.
"""
from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol

import numpy as np

from singa_dsl.errors import SingaDataError

_STATE_KEYS = ("epoch", "position", "seed", "records", "shard", "num_shards")


class RecordSet(Protocol):
    """Loaded data: ``count`` records, each with the fields in ``fields`` (as stored)."""
    count: int
    fields: dict

    def take(self, index: np.ndarray) -> dict[str, np.ndarray]:
        """The records at ``index`` (raw dtype, leading dimension len(index))."""


class ArrayRecords:
    """Records held as whole arrays in memory (raw dtype: uint8 images stay uint8)."""

    def __init__(self, arrays: dict[str, np.ndarray], fields: dict):
        self.arrays, self.fields = arrays, fields
        self.count = len(next(iter(arrays.values())))

    def take(self, index: np.ndarray) -> dict[str, np.ndarray]:
        return {k: a[index] for k, a in self.arrays.items()}


def shard_index(index: np.ndarray, shard: int, num_shards: int, contiguous: bool) -> np.ndarray:
    """This shard's disjoint part of ``index``: strided (balanced even for sorted files) or
    one contiguous run (for sequences that must stay in order)."""
    if contiguous:
        return np.array_split(index, num_shards)[shard]
    return index[shard::num_shards]


class BatchReader:
    def __init__(self, records: RecordSet, index: np.ndarray, fields: dict, *, batch: int,
                 shuffle: bool, normalize: tuple[float, float] | None, seed: int,
                 shard: int = 0, num_shards: int = 1, prefetch: bool = False,
                 vocabulary: tuple[str, ...] | None = None):
        self._records, self._index = records, np.asarray(index, dtype=np.int64)
        self.fields = fields                  # name -> FieldInfo (final per-sample shape)
        self.batch, self.shuffle = batch, shuffle
        self.records = len(self._index)       # records this reader cycles through
        self.shard, self.num_shards = shard, num_shards
        self.vocabulary = vocabulary          # text: id -> character, for samplers
        self._normalize = normalize
        self._seed = _seed64(seed)
        self._epoch = self._position = 0
        self._orders: dict[tuple[int, int], np.ndarray] = {}
        self._lock = threading.Lock()         # the order cache is shared with the prefetcher
        self._pool = ThreadPoolExecutor(1, "singa-data") if prefetch else None
        self._pending: tuple[tuple[int, int, int], Future] | None = None

    def next_batch(self) -> dict[str, np.ndarray]:
        cursor = (self._seed, self._epoch, self._position)
        if self._pending is not None and self._pending[0] == cursor:
            batch, (self._epoch, self._position) = self._pending[1].result()
        else:
            batch, (self._epoch, self._position) = self._make(*cursor)
        self._pending = None
        if self._pool is not None:
            following = (self._seed, self._epoch, self._position)
            self._pending = (following, self._pool.submit(self._make, *following))
        return batch

    def state(self) -> dict:
        """Where the stream stands, as plain JSON ints (the batch next_batch returns next)."""
        return {"epoch": self._epoch, "position": self._position, "seed": self._seed,
                "records": self.records, "shard": self.shard, "num_shards": self.num_shards}

    def restore(self, state: dict) -> None:
        missing = [k for k in _STATE_KEYS if not isinstance(state.get(k), int)]
        if missing:
            raise SingaDataError(f"data reader state lacks integer {', '.join(missing)}")
        for key, mine in (("records", self.records), ("shard", self.shard),
                          ("num_shards", self.num_shards)):
            if state[key] != mine:
                raise SingaDataError(f"data reader state was saved with {key} {state[key]}, "
                                     f"but this reader has {mine}: the data or cluster changed")
        if not (0 <= state["position"] < self.records and state["epoch"] >= 0):
            raise SingaDataError(f"data reader state has epoch {state['epoch']}, position "
                                 f"{state['position']}, outside {self.records} records")
        self._seed = _seed64(state["seed"])
        self._epoch, self._position = state["epoch"], state["position"]
        self._pending = None                  # a prefetched batch for the old cursor is stale

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        self._pending = None

    def __enter__(self) -> "BatchReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- pure functions of the cursor (safe to run on the prefetch thread) ----

    def _make(self, seed: int, epoch: int, position: int):
        picked = []
        need = self.batch
        while need:
            order = self._order(seed, epoch)
            part = order[position:position + need]
            picked.append(part)
            need -= len(part)
            position += len(part)
            if position == self.records:
                epoch, position = epoch + 1, 0
        raw = self._records.take(np.concatenate(picked))
        return self._convert(raw), (epoch, position)

    def _order(self, seed: int, epoch: int) -> np.ndarray:
        key = (seed, epoch)
        with self._lock:
            if key not in self._orders:
                order = self._index
                if self.shuffle:
                    rng = np.random.default_rng([seed, self.shard, epoch])
                    order = self._index[rng.permutation(self.records)]
                if len(self._orders) >= 3:     # current epoch, next epoch, a stale one
                    self._orders.pop(next(iter(self._orders)))
                self._orders[key] = order
            return self._orders[key]

    def _convert(self, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = {}
        for name, info in self.fields.items():
            a = raw[name].astype(info.dtype)
            if name == "image" and self._normalize is not None:
                mean, std = self._normalize
                a -= np.float32(mean)
                a /= np.float32(std)
            out[name] = a.reshape((len(a),) + info.shape)
        return out


def _seed64(seed) -> int:
    # numpy's SeedSequence takes non-negative ints; map any int seed into 64 bits
    return int(seed) % (1 << 64)
