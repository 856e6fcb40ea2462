"""Recurrent cells for nets unrolled by BPTT: gru (SINGA's equations), lstm and rnn.

Each describes one time step: input (features,) → hidden (hidden,); the unrolling pass chains
the copies so step t reads step t-1's hidden state (zeros at step 0).  Weight names follow
SINGA: ``<gate>_hx`` (hidden, input), ``<gate>_hh`` (hidden, hidden), ``<gate>_b`` (hidden).
"""
from __future__ import annotations

from singa_dsl.schema import Attr
from .registry import (SPLIT_REPLICATE, ParamSlot, TensorInfo, define_op, init_attr,
                       require_float)

GATES = {"gru": ("z", "r", "c"), "lstm": ("i", "f", "o", "g"), "rnn": ("",)}


def slot_names(op: str) -> tuple[str, ...]:
    gates = GATES[op]
    if op == "rnn":
        return ("w_hx", "w_hh", "b")
    return tuple(f"{g}_{k}" for k in ("hx", "hh", "b") for g in gates)


def _infer(attrs, ins):
    require_float(ins)
    return TensorInfo((attrs["hidden"],))


def _params_for(op):
    def params(attrs, ins, out):
        d, h = ins[0].size, attrs["hidden"]
        slots = []
        for name in slot_names(op):
            if name.endswith("hx"):
                slots.append(ParamSlot(name, (h, d), "weight", d, h))
            elif name.endswith("hh"):
                slots.append(ParamSlot(name, (h, h), "weight", h, h))
            else:
                slots.append(ParamSlot(name, (h,), "bias", d, h, ("constant", (("value", 0.0),))))
        return tuple(slots)
    return params


_DOCS = {
    "gru": "Gated recurrent unit (SINGA kGRU): z = σ(x·W_zxᵀ + h·W_zhᵀ + b_z), "
           "r = σ(x·W_rxᵀ + h·W_rhᵀ + b_r), c = tanh(r ⊙ (h·W_chᵀ) + x·W_cxᵀ + b_c), "
           "h' = z ⊙ (h − c) + c.",
    "lstm": "Long short-term memory cell with input, forget, output gates and candidate g.",
    "rnn": "Plain recurrent cell: h' = act(x·W_hxᵀ + h·W_hhᵀ + b).",
}

for _op in ("gru", "lstm", "rnn"):
    _extra = (Attr("act", "choice", "tanh", "activation", choices=("tanh", "relu")),) \
        if _op == "rnn" else ()
    define_op(
        name=_op, family="recurrent", doc=_DOCS[_op],
        attrs=(Attr("hidden", "int", doc="hidden units", positional=True, gt=0),) + _extra +
        tuple(init_attr(n) for n in slot_names(_op)) +
        (init_attr("w", "sets every weight"), init_attr("b", "sets every bias")),
        sources=("x",), infer=_infer, params=_params_for(_op), param_groups=True,
        recurrent=True, partition={"batch": SPLIT_REPLICATE},
        flops=lambda attrs, ins, out, n=len(GATES[_op]): 2 * n * attrs["hidden"] *
        (ins[0].size + attrs["hidden"]),
    )
