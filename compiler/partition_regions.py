"""Which part of a tensor each partition copy holds or needs: the arithmetic the partitioning
passes, the cost model and the simulator share.

A tensor of a batch is (B, F, ...) with F the first per-sample dimension (channels of a conv
output, units of a dense one; 1 for a scalar per sample, e.g. a loss).  SINGA partitions on
dimension 0 (the batch: rows) or 1 (features: F), so a part is a Region: a range of rows and
a range of features.  Copy i of g gets rows or features ``bounds(n, g, i)``.
"""
from __future__ import annotations

from dataclasses import dataclass

from .ops import OPS
from .ops.registry import SPLIT_ELEMENTWISE

BATCH, FEATURE, NONE = "batch", "feature", "none"
AXIS = {BATCH: 0, FEATURE: 1}       # the blob axis a dimension cuts (SINGA's partition_dim)


def bounds(n: int, g: int, i: int) -> tuple[int, int]:
    """The i-th of g nearly equal consecutive ranges of 0..n."""
    return i * n // g, (i + 1) * n // g


def features(shape: tuple[int, ...]) -> int:
    """F: the size of the feature dimension of a per-sample shape."""
    return shape[0] if shape else 1


@dataclass(frozen=True, order=True)
class Region:
    rows: tuple[int, int]
    feats: tuple[int, int]

    def __and__(self, other: "Region") -> "Region | None":
        r = (max(self.rows[0], other.rows[0]), min(self.rows[1], other.rows[1]))
        f = (max(self.feats[0], other.feats[0]), min(self.feats[1], other.feats[1]))
        return Region(r, f) if r[0] < r[1] and f[0] < f[1] else None

    def contains(self, other: "Region") -> bool:
        return (self.rows[0] <= other.rows[0] and other.rows[1] <= self.rows[1] and
                self.feats[0] <= other.feats[0] and other.feats[1] <= self.feats[1])

    @property
    def nrows(self) -> int:
        return self.rows[1] - self.rows[0]

    @property
    def nfeats(self) -> int:
        return self.feats[1] - self.feats[0]

    def shape(self, sample_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The batched array shape of this part of a tensor with the given per-sample shape."""
        if not sample_shape:
            return (self.nrows,)
        return (self.nrows, self.nfeats) + tuple(sample_shape[1:])

    def size(self, sample_shape: tuple[int, ...]) -> int:
        n = 1
        for d in self.shape(sample_shape):
            n *= d
        return n

    def __str__(self) -> str:
        return f"[{self.rows[0]}:{self.rows[1]}, {self.feats[0]}:{self.feats[1]}]"


def full(batch: int, sample_shape: tuple[int, ...]) -> Region:
    return Region((0, batch), (0, features(sample_shape)))


def copies(dim: str, workers: int) -> range:
    """The partition ids of a layer: one per worker, or just worker 0 for an unpartitioned one."""
    return range(1) if dim == NONE else range(workers)


def part_region(dim: str, i: int, workers: int, batch: int, sample_shape) -> Region:
    """What copy i of a layer partitioned on ``dim`` computes of its output."""
    whole = full(batch, sample_shape)
    if dim == BATCH:
        return Region(bounds(batch, workers, i), whole.feats)
    if dim == FEATURE:
        return Region(whole.rows, bounds(whole.feats[1], workers, i))
    return whole


def connection(op_name: str, attrs: dict) -> str:
    """The op's src_neuron_connection: one_to_one | one_to_all | one_to_all_t."""
    c = OPS[op_name].connection
    return c(attrs) if callable(c) else c


def need_region(dim: str, conn: str, j: int, workers: int, batch: int, src_shape) -> Region:
    """What copy j of a layer (partitioned on ``dim``, with connection ``conn``) needs of a
    source tensor of per-sample shape ``src_shape``."""
    whole = full(batch, src_shape)
    if dim == BATCH:
        return Region(bounds(batch, workers, j), whole.feats)
    if dim == FEATURE and conn == "one_to_one":
        return Region(whole.rows, bounds(whole.feats[1], workers, j))
    return whole


def computes_whole(op_name: str, attrs: dict, dim: str) -> bool:
    """A feature copy of an element-wise op that reads every input feature (concat on dim 1)
    computes its whole output and keeps its own features; every other copy computes its part."""
    return (dim == FEATURE and OPS[op_name].partition.get(FEATURE) == SPLIT_ELEMENTWISE and
            connection(op_name, attrs) != "one_to_one")


def held_parts(layer, workers: int, batch: int) -> list[Region]:
    """What each copy of a layer holds of its output."""
    return [part_region(layer.partition, i, workers, batch, layer.out.shape)
            for i in copies(layer.partition, workers)]


def needed_parts(src_shape, dst, workers: int, batch: int) -> list[Region]:
    """What each copy of ``dst`` needs of a source of per-sample shape ``src_shape``."""
    conn = connection(dst.op, dst.attrs)
    return [need_region(dst.partition, conn, j, workers, batch, src_shape)
            for j in copies(dst.partition, workers)]
