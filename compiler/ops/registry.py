"""The op registry: everything the compiler knows about an op, in one frozen record.

Each op family module (``dense``, ``conv``, ``pool``, ``activation``, ``norm``, ``loss``,
``rbm``, ``recurrent``, ``connection``) declares its ops here with ``define_op``.  Passes read
these fields and never test an op's name: adding an op touches one module (and its .cl file).

Shapes are per sample (no batch dimension): a dense layer's output is ``(units,)``, a conv's
``(filters, height, width)``.  In a net with ``unroll: N`` shapes are those of one time step.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Mapping

from singa_dsl.registry import Registry
from singa_dsl.schema import Attr


@dataclass(frozen=True)
class TensorInfo:
    shape: tuple[int, ...]
    dtype: str = "float32"          # "float32" for features, "int32" for labels and ids

    @property
    def size(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class ParamSlot:
    """A parameter an op owns, with its shape and the fans its initializers need."""
    name: str
    shape: tuple[int, ...]
    role: str                       # "weight" or "bias": which group shorthand (w:/b:) sets it
    fan_in: int
    fan_out: int
    default_init: tuple = ("uniform_fan_in", ())   # (initializer, ((arg, value), ...))


class ShapeProblem(Exception):
    """Raised by a shape rule; the checker turns it into a located SingaShapeError.

    ``at`` names what to point at: a source index (int) or an attribute name (str)."""

    def __init__(self, message: str, hint: str | None = None, at: int | str | None = None):
        super().__init__(message)
        self.message, self.hint, self.at = message, hint, at


# What splitting a layer on a dimension implies, read by the partitioning passes.
SPLIT_ELEMENTWISE = "elementwise"     # each part computes its slice alone
SPLIT_PARAMS = "split-params"         # params split with the features (model parallel)
SPLIT_REPLICATE = "replicate-params"  # params replicated, gradients summed (data parallel)


@dataclass(frozen=True)
class OpDef:
    name: str
    family: str
    doc: str
    attrs: tuple[Attr, ...]
    sources: tuple[str, ...]                        # source names; a trailing "..." is variadic
    infer: Callable[[dict, tuple[TensorInfo, ...]], TensorInfo]
    params: Callable[[dict, tuple[TensorInfo, ...], TensorInfo], tuple[ParamSlot, ...]] = \
        field(default=lambda attrs, ins, out: ())
    source_dtypes: tuple[str, ...] = ()             # "float32" | "int32" | "any", per source
    partition: Mapping[str, str] = field(default_factory=dict)  # dim → what a split implies
    role: str = "layer"                             # layer | loss | input
    recurrent: bool = False                         # carries state between unrolled steps
    flops: Callable[[dict, tuple[TensorInfo, ...], TensorInfo], int] | None = None
    param_groups: bool = False                      # ``w:``/``b:`` set every weight/bias
    # SINGA's src_neuron_connection, read by the partitioning passes: "one_to_one" when output
    # feature j needs only input feature j (element-wise ops, pooling), "one_to_all" when it
    # needs every input feature (dense, conv: a feature split splits the params on their first
    # axis); "one_to_all_t" is one_to_all whose weight keeps the output features on its last
    # axis (dense with transpose: true).  A callable gets the layer's attrs.
    connection: str | Callable[[dict], str] = "one_to_one"
    # numpy float64 reference (see ``reference_api`` below), and the OpenCL lowering.
    forward: Callable | None = None
    backward: Callable | None = None
    emit_forward: Callable | None = None
    emit_backward: Callable | None = None

    @property
    def variadic(self) -> bool:
        return bool(self.sources) and self.sources[-1].endswith("...")

    @property
    def min_sources(self) -> int:
        return len(self.sources)     # a variadic source still needs at least one

    def source_dtype(self, i: int) -> str:
        if not self.source_dtypes:
            return "float32"
        return self.source_dtypes[min(i, len(self.source_dtypes) - 1)]


OPS: Registry[OpDef] = Registry("op")

# reference_api — the numpy reference every op provides (float64, batch dimension first):
#   forward(attrs, xs: list[ndarray], params: dict[str, ndarray], ctx: RefContext) -> ndarray
#   backward(attrs, xs, params, y, dy, ctx) -> (list[ndarray | None] per source,
#                                                dict[str, ndarray] per param)
# Loss ops return from forward the per-sample loss, shape (batch,); their backward ignores dy
# and returns the gradient of the batch mean (SINGA: (p - onehot)·scale / batch).
# Integer sources (labels, ids) get None as their gradient.


@dataclass
class RefContext:
    """What a reference op may need besides its inputs: the phase and a random source."""
    train: bool = True
    rng: object = None               # numpy Generator, e.g. for dropout masks
    cache: dict = field(default_factory=dict)   # forward → backward scratch (dropout mask)


def define_op(**fields) -> OpDef:
    op = OpDef(**fields)
    OPS.register(op.name, op)
    return op


def attach_lowering(name: str, emit_forward, emit_backward=None) -> OpDef:
    """Give an op its OpenCL lowering (kept in <family>_cl.py beside <family>.cl)."""
    import dataclasses
    return OPS.replace(name, dataclasses.replace(OPS[name], emit_forward=emit_forward,
                                                 emit_backward=emit_backward))


def init_attr(name: str, doc: str = "") -> Attr:
    return Attr(name, "init", None, doc or f"initializer or param(...) for {name}")


def flat(t: TensorInfo) -> int:
    return t.size


def require_float(ins: tuple[TensorInfo, ...], i: int = 0):
    if ins[i].dtype != "float32":
        raise ShapeProblem("expects real-valued features, got integer ids or labels",
                           "turn ids into features with onehot(x, vocab) or embedding(x, vocab, dim)",
                           at=i)
