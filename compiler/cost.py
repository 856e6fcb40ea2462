"""The cost model of a partitioned step, and ``partition: auto`` choosing by it.

For each layer and dimension: the flops of the busiest worker (``OpDef.flops`` per sample ×
the rows and features it computes; backward = ``backward_factor`` × forward), the bytes each
connection moves between workers (forward values and, for real-valued tensors, backward
gradients: exactly what the bridges of the partitioned graph carry), the params each worker
exchanges with the servers (gradient up, value down, per copy), and the memory per worker.

    step time = Σ_layers compute(busiest worker) / flops_per_s
              + Σ_edges max_receiver(bytes in) / link_bytes_per_s + 2·latency per sender
              + max(busiest worker's param bytes, all param bytes / servers) / link + 2·latency

Layers run one after another (SINGA's workers walk the net in order and block on bridges), so
per-layer times add; transfers to different workers overlap.  ``partition_auto`` searches
the dimensions with it."""
from __future__ import annotations

import math
from dataclasses import dataclass

import networkx as nx

from .graph import FIELD
from .ops import OPS
from .partition_dims import layers
from .partition_regions import (BATCH, FEATURE, bounds, computes_whole, connection, copies,
                                features)
from .partition_types import BYTES


@dataclass(frozen=True)
class Device:
    """What the model assumes; pass measured numbers for your machines."""
    flops_per_s: float = 50e9          # one worker's device, float32 (a PoCL CPU; a GPU: ~1e13)
    link_bytes_per_s: float = 1.25e9   # between processes: 10 Gbit/s Ethernet
    latency_s: float = 50e-6           # per message
    memory_bytes: int = 8 << 30        # per worker
    backward_factor: float = 2.0       # backward flops per forward flop


@dataclass(frozen=True)
class LayerCost:
    name: str
    op: str
    dim: str
    flops: int             # forward + backward, busiest worker
    compute_s: float
    moved_bytes: int       # activations and gradients brought to this layer's copies, per step
    comm_s: float
    param_bytes: int       # param gradients up + values down, all copies, per step


@dataclass(frozen=True)
class Prediction:
    workers: int
    batch: int
    layers: tuple[LayerCost, ...]
    param_s: float
    memory: tuple[int, ...]            # bytes per worker

    @property
    def step_s(self) -> float:
        return sum(l.compute_s + l.comm_s for l in self.layers) + self.param_s

    @property
    def moved_bytes(self) -> int:
        return sum(l.moved_bytes for l in self.layers)

    @property
    def param_bytes(self) -> int:
        return sum(l.param_bytes for l in self.layers)


# ---- the pieces -----------------------------------------------------------------------------
def _sizes(n, w):
    return [hi - lo for lo, hi in (bounds(n, w, i) for i in range(w))]


def compute_flops(layer, dim, w, b) -> list[float]:
    """Forward flops per worker."""
    op = OPS[layer.op]
    f = op.flops(layer.attrs, layer.in_shapes, layer.out) if op.flops else 0
    out = [0.0] * w
    if dim == BATCH:
        return [r * f for r in _sizes(b, w)]
    if dim == FEATURE:
        if computes_whole(layer.op, layer.attrs, dim):
            return [b * f] * w
        n = features(layer.out.shape)
        return [b * f * k / n for k in _sizes(n, w)]
    out[0] = b * f
    return out


def edge_elements(src_dim, dst_dim, conn, w, b, shape) -> dict[tuple[int, int], int]:
    """Values sent forward from worker i to worker j (i ≠ j) on an edge, by SINGA's table:
    what copy j needs (rows, its features, or all) minus what it already holds."""
    f = features(shape)
    per = math.prod(shape) // f if shape else 1
    rows, feats = _sizes(b, w), _sizes(f, w)
    need = "rows" if dst_dim == BATCH else \
        "feats" if dst_dim == FEATURE and conn == "one_to_one" else "all"
    moved = {}
    for i in copies(src_dim, w):
        for j in copies(dst_dim, w):
            if i == j:
                continue
            if src_dim == BATCH:
                n = {"rows": 0, "feats": rows[i] * feats[j], "all": rows[i] * f}[need]
            elif src_dim == FEATURE:
                n = {"rows": rows[j] * feats[i], "feats": 0, "all": b * feats[i]}[need]
            else:
                n = {"rows": rows[j] * f, "feats": b * feats[j], "all": b * f}[need]
            if n:
                moved[i, j] = n * per
    return moved


def param_elements(layer, dim, w) -> list[int]:
    """Param values each worker holds (owner params; a share holds none of its own)."""
    size = sum(p.size for p in layer.params if p.share_of is None)
    if dim == BATCH:
        return [size] * w
    if dim == FEATURE and not computes_whole(layer.op, layer.attrs, dim):
        n = features(layer.out.shape)
        return [size * k // n for k in _sizes(n, w)]
    out = [0] * w
    out[0] = size
    return out


# ---- the whole step -------------------------------------------------------------------------
def predict(g: nx.DiGraph, device: Device | None = None, dims: dict | None = None) -> Prediction:
    """The predicted step of a logical graph whose layers all have their dimension (or the
    dimension ``dims`` gives them)."""
    return CostModel(g, device or Device()).predict(dims or {})


class CostModel:
    """predict(), with each layer's terms remembered by its and its sources' dimensions, so
    that auto can try thousands of combinations."""

    def __init__(self, g: nx.DiGraph, device: Device):
        self.g, self.device = g, device
        self.w, self.b = g.graph["workers"], g.graph["batch"]
        self.servers = g.graph["cluster"].servers_per_group
        self.layers = layers(g)
        self.sources = {l.name: [s for s in l.sources if g.nodes[s]["kind"] != FIELD]
                        for l in self.layers}
        self.memo: dict = {}

    def predict(self, dims: dict) -> Prediction:
        dim = lambda l: dims.get(l.name, l.partition)          # noqa: E731
        rows, held, memory = [], [0] * self.w, [0] * self.w
        for l in self.layers:
            key = (l.name, dim(l), tuple(dim(self.g.nodes[s]["layer"])
                                         for s in self.sources[l.name]))
            if key not in self.memo:
                self.memo[key] = self._layer(l, key[1], key[2])
            row, params, mem = self.memo[key]
            rows.append(row)
            held = [a + b for a, b in zip(held, params)]
            memory = [a + b for a, b in zip(memory, mem)]
        pbytes = [2 * BYTES * h for h in held]
        d = self.device
        param_s = (max(max(pbytes), sum(pbytes) / self.servers) / d.link_bytes_per_s +
                   (2 * d.latency_s if sum(pbytes) else 0.0))
        return Prediction(self.w, self.b, tuple(rows), param_s, tuple(memory))

    def _layer(self, l, dim, src_dims):
        w, b, d = self.w, self.b, self.device
        flops = [x * (1 + d.backward_factor) for x in compute_flops(l, dim, w, b)]
        into, senders = [0] * w, [set() for _ in range(w)]
        conn = connection(l.op, l.attrs)
        for s, sdim in zip(self.sources[l.name], src_dims):
            src = self.g.nodes[s]["layer"]
            trips = 2 if src.out.dtype == "float32" else 1
            for (i, j), n in edge_elements(sdim, dim, conn, w, b, src.out.shape).items():
                into[j] += n * BYTES * trips
                senders[j].add((s, i))
        comm = max(x / d.link_bytes_per_s + 2 * d.latency_s * len(k)
                   for x, k in zip(into, senders))
        params = param_elements(l, dim, w)
        out_size = l.out.size * 2 * BYTES
        mem = [3 * params[k] * BYTES + into[k] + out_size * held_samples(l, dim, k, w, b)
               for k in range(w)]
        row = LayerCost(l.name, l.op, dim, int(max(flops)), max(flops) / d.flops_per_s,
                        sum(into), comm, 2 * BYTES * sum(params))
        return row, params, mem


def held_samples(layer, dim, k, w, b) -> float:
    """How much of the layer's output worker k holds, in samples (rows × feature share)."""
    if dim == BATCH:
        return _sizes(b, w)[k]
    if dim == FEATURE:
        n = features(layer.out.shape)
        return b * _sizes(n, w)[k] / n
    return b if k == 0 else 0
