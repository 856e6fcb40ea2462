"""Connection ops: input, concat, slice, split, embedding, onehot.  ``dim`` counts the batch
as dimension 0, as SINGA's concate_dim/slice_dim do (so features are dimension 1)."""
from __future__ import annotations

import math

from singa_dsl.schema import Attr
from .registry import (SPLIT_ELEMENTWISE, SPLIT_REPLICATE, ParamSlot, ShapeProblem, TensorInfo,
                       define_op, init_attr)


def _input(attrs, ins):
    field = ins[0]
    shape = attrs["shape"]
    if shape is None:
        return field
    if math.prod(shape) != field.size:
        raise ShapeProblem(f"shape {list(shape)} has {math.prod(shape)} values but the field has "
                           f"{field.size} per sample", at="shape")
    return TensorInfo(tuple(shape), field.dtype)


define_op(
    name="input", family="connection",
    doc="Reads a data field (e.g. mnist.image); `shape` views each sample with another shape.",
    attrs=(Attr("shape", "ints", None, "per-sample shape, e.g. [1, 8, 8]", gt=0),),
    sources=("field",), source_dtypes=("any",), infer=_input, role="input",
    partition={"batch": SPLIT_ELEMENTWISE},
)


def _axis(attrs, ins, i=0) -> int:
    d = attrs["dim"]
    if not 1 <= d <= len(ins[i].shape):
        raise ShapeProblem(f"dim {d} is out of range for shape {list(ins[i].shape)} "
                           f"(dim 0 is the batch)", at="dim")
    return d - 1


def _concat(attrs, ins):
    axis = _axis(attrs, ins)
    first = ins[0]
    for i, t in enumerate(ins[1:], 1):
        if t.dtype != first.dtype or len(t.shape) != len(first.shape) or any(
                a != b for k, (a, b) in enumerate(zip(t.shape, first.shape)) if k != axis):
            raise ShapeProblem(f"cannot concatenate shape {list(t.shape)} with "
                               f"{list(first.shape)} on dim {attrs['dim']}", at=i)
    shape = list(first.shape)
    shape[axis] = sum(t.shape[axis] for t in ins)
    return TensorInfo(tuple(shape), first.dtype)


define_op(
    name="concat", family="connection",
    doc="Concatenates its sources along `dim` (SINGA kConcate).",
    attrs=(Attr("dim", "int", 1, "dimension to join (0 is the batch)", gt=0),),
    sources=("x...",), source_dtypes=("any",), infer=_concat,
    partition={"batch": SPLIT_ELEMENTWISE, "feature": SPLIT_ELEMENTWISE},
)


def _slice(attrs, ins):
    axis = _axis(attrs, ins)
    n = ins[0].shape[axis]
    b, e = attrs["begin"], attrs["end"]
    if not 0 <= b < e <= n:
        raise ShapeProblem(f"slice [{b}, {e}) is outside 0..{n} of dim {attrs['dim']}",
                           at="end" if e > n else "begin")
    shape = list(ins[0].shape)
    shape[axis] = e - b
    return TensorInfo(tuple(shape), ins[0].dtype)


define_op(
    name="slice", family="connection",
    doc="Takes [begin, end) of its source along `dim` (SINGA kSlice, one piece).",
    attrs=(Attr("begin", "int", doc="first index", positional=True, ge=0),
           Attr("end", "int", doc="one past the last index", positional=True, gt=0),
           Attr("dim", "int", 1, "dimension to cut (0 is the batch)", gt=0)),
    sources=("x",), source_dtypes=("any",), infer=_slice,
    partition={"batch": SPLIT_ELEMENTWISE},
)

define_op(
    name="split", family="connection",
    doc="Passes its source on unchanged to several layers, summing their gradients "
        "(SINGA kSplit; inserted automatically where a layer feeds several others).",
    attrs=(), sources=("x",), source_dtypes=("any",), infer=lambda attrs, ins: ins[0],
    partition={"batch": SPLIT_ELEMENTWISE, "feature": SPLIT_ELEMENTWISE},
)


def _ids(ins):
    if ins[0].dtype != "int32":
        raise ShapeProblem("expects integer ids (e.g. text characters or labels)", at=0)


def _embedding(attrs, ins):
    _ids(ins)
    return TensorInfo(ins[0].shape + (attrs["dim"],))


define_op(
    name="embedding", family="connection",
    doc="Looks up a learned vector of size `dim` for each id in 0..vocab-1.",
    attrs=(Attr("vocab", "int", doc="number of distinct ids", positional=True, gt=0),
           Attr("dim", "int", doc="vector size", positional=True, gt=0), init_attr("w")),
    sources=("ids",), source_dtypes=("int32",), infer=_embedding,
    params=lambda attrs, ins, out: (ParamSlot("w", (attrs["vocab"], attrs["dim"]), "weight",
                                              1, attrs["dim"], ("uniform", (("low", -0.05),
                                                                          ("high", 0.05)))),),
    partition={"batch": SPLIT_REPLICATE},
)


def _onehot(attrs, ins):
    _ids(ins)
    return TensorInfo(ins[0].shape + (attrs["vocab"],))


define_op(
    name="onehot", family="connection",
    doc="Turns each id in 0..vocab-1 into a one-hot vector of size vocab.",
    attrs=(Attr("vocab", "int", doc="number of distinct ids", positional=True, gt=0),),
    sources=("ids",), source_dtypes=("int32",), infer=_onehot,
    partition={"batch": SPLIT_ELEMENTWISE},
)
