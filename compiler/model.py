"""The meaning of a checked program: frozen records the later passes and the runtime read.

Everything here is plain data (numbers, strings, tuples, dicts of those), so it can be
written into a Plan and read back without pickle.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from singa_dsl.errors import Span, UNKNOWN_SPAN


def _span():
    return field(default=UNKNOWN_SPAN, compare=False, repr=False)


@dataclass(frozen=True)
class Every:
    """``every(N, after: M, batches: K)``: fires when step >= after and (step-after) % N == 0."""
    every: int
    after: int = 0
    batches: int = 10

    def fires(self, step: int) -> bool:
        return step >= self.after and (step - self.after) % self.every == 0


@dataclass(frozen=True)
class JobSpec:
    name: str
    steps: int
    test: Every | None
    validate: Every | None
    display: Every | None
    checkpoint: Every | None
    workspace: str
    init_from: tuple[str, ...]
    seed: int
    span: Span = _span()


@dataclass(frozen=True)
class FieldRef:
    block: str
    field: str
    shape: tuple[int, ...]
    dtype: str


@dataclass(frozen=True)
class SourceSpec:
    kind: str
    args: dict
    base_dir: str
    fields: dict            # field name → (shape, dtype)
    constants: dict
    span: Span = _span()


@dataclass(frozen=True)
class DataSpec:
    name: str
    phases: dict            # "train" | "test" | "validate" → SourceSpec (the valid ones)
    span: Span = _span()
    declared: tuple = ()    # every phase written, valid or not


@dataclass(frozen=True)
class InitChoice:
    kind: str
    args: dict


@dataclass(frozen=True)
class ParamSpec:
    """One parameter of one layer, after ``param(...)``/``share(...)`` are resolved."""
    key: str                     # "<layer>.<slot>", unique in the net
    layer: str
    slot: str
    shape: tuple[int, ...]
    role: str                    # weight | bias
    fan_in: int
    fan_out: int
    init: InitChoice | None      # None: loaded by name from init_from
    lr_scale: float = 1.0
    wd_scale: float = 1.0
    name: str | None = None      # binds it across jobs and checkpoints
    share_of: str | None = None  # key of the param whose values this one uses
    transpose: bool = False      # shared values used transposed
    span: Span = _span()

    @property
    def size(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def store_name(self) -> str:
        """The name a checkpoint stores it under."""
        return self.name or self.key


@dataclass(frozen=True)
class LayerSpec:
    name: str
    op: str
    sources: tuple[str, ...]     # layer names, or "block.field" for data fields
    attrs: dict
    partition: str               # batch | feature | none
    in_shapes: tuple = ()        # TensorInfo per source
    out: Any = None              # TensorInfo
    params: tuple[ParamSpec, ...] = ()
    span: Span = _span()


@dataclass(frozen=True)
class NetSpec:
    name: str
    partition: str
    unroll: int
    layers: tuple[LayerSpec, ...]
    span: Span = _span()

    def layer(self, name: str) -> LayerSpec:
        return next(l for l in self.layers if l.name == name)

    @property
    def params(self) -> tuple[ParamSpec, ...]:
        return tuple(p for l in self.layers for p in l.params)


@dataclass(frozen=True)
class AlgorithmSpec:
    kind: str
    args: dict
    span: Span = _span()


@dataclass(frozen=True)
class ClusterSpec:
    worker_groups: int = 1
    workers_per_group: int = 1
    server_groups: int = 1
    servers_per_group: int = 1
    separate_servers: bool = False
    sync_every: int = 1
    framework: str | None = None
    span: Span = _span()
    reduce: str = "servers"          # or "ring": workers allreduce, no server ranks

    @property
    def workers(self) -> int:
        return self.worker_groups * self.workers_per_group
