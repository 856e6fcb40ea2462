"""rbm: SINGA's kRBMVis + kRBMHid as one op.  Params w (hidden, visible), vbias (visible),
hbias (hidden).  Trained by ``algorithm cd``; under BP it is an encoder h = σ(v·Wᵀ + hbias)."""
from __future__ import annotations

from singa_dsl.schema import Attr
from .registry import (SPLIT_REPLICATE, ParamSlot, TensorInfo, define_op, init_attr,
                       require_float)


def _infer(attrs, ins):
    require_float(ins)
    return TensorInfo((attrs["hidden"],))


def _params(attrs, ins, out):
    v, h = ins[0].size, attrs["hidden"]
    zero = ("constant", (("value", 0.0),))
    return (ParamSlot("w", (h, v), "weight", v, h, ("gaussian", (("mean", 0.0), ("std", 0.01)))),
            ParamSlot("vbias", (v,), "bias", v, h, zero),
            ParamSlot("hbias", (h,), "bias", v, h, zero))


define_op(
    name="rbm", family="rbm",
    doc="Restricted Boltzmann machine with binary visible units and binary (or Gaussian) "
        "hidden units; its output is the hidden probabilities.",
    attrs=(Attr("hidden", "int", doc="hidden units", positional=True, gt=0),
           Attr("gaussian_hidden", "bool", False, "Gaussian hidden units (h = pre-activation)"),
           init_attr("w"), init_attr("vbias"), init_attr("hbias"),
           init_attr("b", "sets both vbias and hbias")),
    sources=("v",), infer=_infer, params=_params, param_groups=True,
    partition={"batch": SPLIT_REPLICATE},
    flops=lambda attrs, ins, out: 6 * ins[0].size * attrs["hidden"],
)
