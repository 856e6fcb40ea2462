"""dense: SINGA's kInnerProduct, y = x·Wᵀ + b with W of shape (units, in) — or (in, units)
with ``transpose: true``, which is how a decoder shares an encoder's weights."""
from __future__ import annotations

import numpy as np

from singa_dsl.schema import Attr
from .registry import (SPLIT_PARAMS, SPLIT_REPLICATE, ParamSlot, ShapeProblem, TensorInfo,
                       define_op, init_attr, require_float)


def _infer(attrs, ins):
    require_float(ins)
    return TensorInfo((attrs["units"],))


def _params(attrs, ins, out):
    n_in, units = ins[0].size, attrs["units"]
    shape = (n_in, units) if attrs["transpose"] else (units, n_in)
    slots = [ParamSlot("w", shape, "weight", n_in, units)]
    if attrs["bias"]:
        slots.append(ParamSlot("b", (units,), "bias", n_in, units, ("constant", (("value", 0.0),))))
    return tuple(slots)


# --- numpy float64 references (registry.reference_api) ---------------------------------------

def _forward(attrs, xs, params, ctx):
    x = xs[0].reshape(len(xs[0]), -1)          # dense flattens each sample
    w = params["w"]
    y = x @ w if attrs["transpose"] else x @ w.T
    if attrs["bias"]:
        y = y + params["b"]
    return y


def _backward(attrs, xs, params, y, dy, ctx):
    x = xs[0].reshape(len(xs[0]), -1)
    w = params["w"]
    if attrs["transpose"]:                     # y = x·W, W (in, units)
        dx, grads = dy @ w.T, {"w": x.T @ dy}
    else:                                      # y = x·Wᵀ, W (units, in)
        dx, grads = dy @ w, {"w": dy.T @ x}
    if attrs["bias"]:
        grads["b"] = dy.sum(axis=0)
    return [dx.reshape(xs[0].shape)], grads


dense = define_op(
    name="dense", family="dense",
    doc="Fully connected layer (SINGA kInnerProduct): y = x·Wᵀ + b; the input is flattened.",
    attrs=(Attr("units", "int", doc="output features", positional=True, gt=0),
           Attr("transpose", "bool", False, "store W as (in, units) instead of (units, in)"),
           Attr("bias", "bool", True, "add a bias b"),
           init_attr("w"), init_attr("b")),
    sources=("x",), infer=_infer, params=_params,
    partition={"batch": SPLIT_REPLICATE, "feature": SPLIT_PARAMS},
    connection=lambda attrs: "one_to_all_t" if attrs["transpose"] else "one_to_all",
    flops=lambda attrs, ins, out: 2 * ins[0].size * attrs["units"],
    forward=_forward, backward=_backward,
)
