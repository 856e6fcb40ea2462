"""Connection ops: input, concat, slice, split, embedding, onehot.  ``dim`` counts the batch
as dimension 0, as SINGA's concate_dim/slice_dim do (so features are dimension 1)."""
from __future__ import annotations

import math

import numpy as np

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


# --- numpy float64 references (registry.reference_api) ---------------------------------------
# Integer arrays (labels, ids) pass through these ops as integers and get None as gradient.

def _is_int(a) -> bool:
    return np.asarray(a).dtype.kind in "iub"


def _grad_or_none(x, g):
    return None if _is_int(x) else g


def _input_fwd(attrs, xs, params, ctx):
    x = xs[0] if _is_int(xs[0]) else np.asarray(xs[0], dtype=np.float64)
    return x if attrs["shape"] is None else x.reshape((len(x),) + tuple(attrs["shape"]))


def _input_bwd(attrs, xs, params, y, dy, ctx):
    return [None if _is_int(xs[0]) else dy.reshape(np.shape(xs[0]))], {}


define_op(
    name="input", family="connection",
    doc="Reads a data field (e.g. mnist.image); `shape` views each sample with another shape.",
    attrs=(Attr("shape", "ints", None, "per-sample shape, e.g. [1, 8, 8]", gt=0),),
    sources=("field",), source_dtypes=("any",), infer=_input, role="input",
    partition={"batch": SPLIT_ELEMENTWISE},
    forward=_input_fwd, backward=_input_bwd,
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


def _concat_fwd(attrs, xs, params, ctx):
    return np.concatenate(xs, axis=attrs["dim"])     # dim already counts the batch as 0


def _concat_bwd(attrs, xs, params, y, dy, ctx):
    cuts = np.cumsum([x.shape[attrs["dim"]] for x in xs])[:-1]
    parts = np.split(dy, cuts, axis=attrs["dim"])
    return [_grad_or_none(x, g) for x, g in zip(xs, parts)], {}


define_op(
    name="concat", family="connection",
    doc="Concatenates its sources along `dim` (SINGA kConcate).",
    attrs=(Attr("dim", "int", 1, "dimension to join (0 is the batch)", gt=0),),
    sources=("x...",), source_dtypes=("any",), infer=_concat,
    partition={"batch": SPLIT_ELEMENTWISE, "feature": SPLIT_ELEMENTWISE},
    connection=lambda attrs: "one_to_all" if attrs["dim"] == 1 else "one_to_one",
    forward=_concat_fwd, backward=_concat_bwd,
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


def _slice_index(attrs, ndim: int):
    index = [slice(None)] * ndim
    index[attrs["dim"]] = slice(attrs["begin"], attrs["end"])
    return tuple(index)


def _slice_fwd(attrs, xs, params, ctx):
    return xs[0][_slice_index(attrs, xs[0].ndim)].copy()


def _slice_bwd(attrs, xs, params, y, dy, ctx):
    if _is_int(xs[0]):
        return [None], {}
    dx = np.zeros(xs[0].shape)
    dx[_slice_index(attrs, dx.ndim)] = dy
    return [dx], {}


define_op(
    name="slice", family="connection",
    doc="Takes [begin, end) of its source along `dim` (SINGA kSlice, one piece).",
    attrs=(Attr("begin", "int", doc="first index", positional=True, ge=0),
           Attr("end", "int", doc="one past the last index", positional=True, gt=0),
           Attr("dim", "int", 1, "dimension to cut (0 is the batch)", gt=0)),
    sources=("x",), source_dtypes=("any",), infer=_slice,
    partition={"batch": SPLIT_ELEMENTWISE},
    connection=lambda attrs: "one_to_all" if attrs["dim"] == 1 else "one_to_one",
    forward=_slice_fwd, backward=_slice_bwd,
)

define_op(
    name="split", family="connection",
    doc="Passes its source on unchanged to several layers, summing their gradients "
        "(SINGA kSplit; inserted automatically where a layer feeds several others).",
    attrs=(), sources=("x",), source_dtypes=("any",), infer=lambda attrs, ins: ins[0],
    partition={"batch": SPLIT_ELEMENTWISE, "feature": SPLIT_ELEMENTWISE},
    # dy is already the sum over the consumers (the executor adds their gradients up).
    forward=lambda attrs, xs, params, ctx: xs[0].copy(),
    backward=lambda attrs, xs, params, y, dy, ctx: ([_grad_or_none(xs[0], dy.copy())], {}),
)


def _ids(ins):
    if ins[0].dtype != "int32":
        raise ShapeProblem("expects integer ids (e.g. text characters or labels)", at=0)


def _embedding(attrs, ins):
    _ids(ins)
    return TensorInfo(ins[0].shape + (attrs["dim"],))


def _embedding_fwd(attrs, xs, params, ctx):
    return params["w"][np.asarray(xs[0], dtype=np.int64)]


def _embedding_bwd(attrs, xs, params, y, dy, ctx):
    gw = np.zeros_like(params["w"])
    # add.at, not fancy-index assignment: an id used twice gets both gradients
    np.add.at(gw, np.asarray(xs[0], dtype=np.int64), dy)
    return [None], {"w": gw}


def _onehot_fwd(attrs, xs, params, ctx):
    return np.eye(attrs["vocab"])[np.asarray(xs[0], dtype=np.int64)]


define_op(
    name="embedding", family="connection",
    doc="Looks up a learned vector of size `dim` for each id in 0..vocab-1.",
    attrs=(Attr("vocab", "int", doc="number of distinct ids", positional=True, gt=0),
           Attr("dim", "int", doc="vector size", positional=True, gt=0), init_attr("w")),
    sources=("ids",), source_dtypes=("int32",), infer=_embedding,
    params=lambda attrs, ins, out: (ParamSlot("w", (attrs["vocab"], attrs["dim"]), "weight",
                                              1, attrs["dim"], ("uniform", (("low", -0.05),
                                                                          ("high", 0.05)))),),
    partition={"batch": SPLIT_REPLICATE}, connection="one_to_all",
    forward=_embedding_fwd, backward=_embedding_bwd,
)


def _onehot(attrs, ins):
    _ids(ins)
    return TensorInfo(ins[0].shape + (attrs["vocab"],))


define_op(
    name="onehot", family="connection",
    doc="Turns each id in 0..vocab-1 into a one-hot vector of size vocab.",
    attrs=(Attr("vocab", "int", doc="number of distinct ids", positional=True, gt=0),),
    sources=("ids",), source_dtypes=("int32",), infer=_onehot,
    partition={"batch": SPLIT_ELEMENTWISE}, connection="one_to_all",
    forward=_onehot_fwd, backward=lambda attrs, xs, params, y, dy, ctx: ([None], {}),
)
