"""dense: SINGA's kInnerProduct, y = x·Wᵀ + b with W of shape (units, in) — or (in, units)
with ``transpose: true``, which is how a decoder shares an encoder's weights."""
from __future__ import annotations

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


dense = define_op(
    name="dense", family="dense",
    doc="Fully connected layer (SINGA kInnerProduct): y = x·Wᵀ + b; the input is flattened.",
    attrs=(Attr("units", "int", doc="output features", positional=True, gt=0),
           Attr("transpose", "bool", False, "store W as (in, units) instead of (units, in)"),
           Attr("bias", "bool", True, "add a bias b"),
           init_attr("w"), init_attr("b")),
    sources=("x",), infer=_infer, params=_params,
    partition={"batch": SPLIT_REPLICATE, "feature": SPLIT_PARAMS},
    flops=lambda attrs, ins, out: 2 * ins[0].size * attrs["units"],
)
