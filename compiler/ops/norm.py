"""Normalisation: lrn (SINGA kLRN, across channels), softmax and batchnorm."""
from __future__ import annotations

from singa_dsl.schema import Attr
from .registry import (SPLIT_ELEMENTWISE, SPLIT_REPLICATE, ParamSlot, TensorInfo, define_op,
                       init_attr, require_float)


def _same(attrs, ins):
    require_float(ins)
    return ins[0]


define_op(
    name="lrn", family="norm",
    doc="Local response normalisation across channels: "
        "y = x·(k + alpha/size·Σ_window x²)^(−beta).",
    attrs=(Attr("size", "int", 5, "channels in the window (odd)", gt=0),
           Attr("alpha", "float", 1.0, "scale", ge=0),
           Attr("beta", "float", 0.75, "exponent", ge=0),
           Attr("k", "float", 1.0, "additive constant", gt=0)),
    sources=("x",), infer=_same,
    partition={"batch": SPLIT_ELEMENTWISE},
    flops=lambda attrs, ins, out: out.size * (attrs["size"] + 6),
)

define_op(
    name="softmax", family="norm",
    doc="Softmax over the features of each sample (the input is flattened).",
    attrs=(), sources=("x",), infer=lambda attrs, ins: TensorInfo((ins[0].size,)) if
    ins[0].dtype == "float32" else _same(attrs, ins),
    partition={"batch": SPLIT_ELEMENTWISE},
    flops=lambda attrs, ins, out: 5 * out.size,
)


def _bn_params(attrs, ins, out):
    c = ins[0].shape[0]
    return (ParamSlot("w", (c,), "weight", c, c, ("constant", (("value", 1.0),))),
            ParamSlot("b", (c,), "bias", c, c, ("constant", (("value", 0.0),))))


define_op(
    name="batchnorm", family="norm",
    doc="Batch normalisation per channel (per feature for flat input): "
        "y = w·(x − mean)/sqrt(var + eps) + b, with running averages for testing.",
    attrs=(Attr("momentum", "float", 0.9, "weight of the old running average", ge=0, le=1),
           Attr("eps", "float", 1e-5, "added to the variance", gt=0),
           init_attr("w", "scale (gamma), default constant(1)"),
           init_attr("b", "shift (beta), default constant(0)")),
    sources=("x",), infer=_same, params=_bn_params,
    # Statistics span the whole batch: a batch split would change the result.
    partition={"feature": SPLIT_ELEMENTWISE},
    flops=lambda attrs, ins, out: 8 * out.size,
)
