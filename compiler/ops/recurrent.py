"""Recurrent cells for nets unrolled by BPTT: gru (SINGA's equations), lstm and rnn.

Each describes one time step: input (features,) → hidden (hidden,); the unrolling pass chains
the copies so step t reads step t-1's hidden state (zeros at step 0).  Weight names follow
SINGA: ``<gate>_hx`` (hidden, input), ``<gate>_hh`` (hidden, hidden), ``<gate>_b`` (hidden).
"""
from __future__ import annotations

import numpy as np

from singa_dsl.schema import Attr
from .activation import sigmoid
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

# --- numpy float64 references (registry.reference_api) ---------------------------------------
# One time step, batch first.  The state crosses steps through the RefContext cache, which the
# unrolled executor threads from step to step:
#   forward reads  ctx.cache['h_prev'] (and, for lstm, 'c_prev'); absent → zeros (step 0);
#           lstm also writes ctx.cache['c'], its new cell state (the next step's 'c_prev').
#   backward writes ctx.cache['dh_prev'] (and, for lstm, 'dc_prev'): the gradients for the
#           previous step's h (and c), which the executor adds to that step's dy (and 'dc');
#           lstm reads ctx.cache['dc'], the gradient reaching its new cell state from later
#           steps (absent → zeros, the last step).
# Backward recomputes the gates from x and the cached state instead of keeping them.

def _prev(ctx, key: str, batch: int, hidden: int):
    value = ctx.cache.get(key)
    return np.zeros((batch, hidden)) if value is None else np.asarray(value, dtype=np.float64)


def _flat_x(xs):
    return xs[0].reshape(len(xs[0]), -1)


def _hidden_size(params, op: str) -> int:
    return next(params[n] for n in slot_names(op) if n.endswith("_hh")).shape[0]


def _affine(p, gate: str, x, h):
    return x @ p[f"{gate}_hx"].T + h @ p[f"{gate}_hh"].T + p[f"{gate}_b"]


def _gate_grads(grads, p, gate: str, da, x, h):
    """Adds the gradients of gate pre-activation da = ∂L/∂(x·W_gxᵀ + h·W_ghᵀ + b_g) to grads
    and returns its contributions to dx and dh."""
    grads[f"{gate}_hx"], grads[f"{gate}_hh"], grads[f"{gate}_b"] = da.T @ x, da.T @ h, da.sum(0)
    return da @ p[f"{gate}_hx"], da @ p[f"{gate}_hh"]


# gru — SINGA's gru.cc equations (see the op's doc)

def _gru_parts(p, x, h):
    z = sigmoid(_affine(p, "z", x, h))
    r = sigmoid(_affine(p, "r", x, h))
    hc = h @ p["c_hh"].T                         # r gates h·W_chᵀ, not h (SINGA's variant)
    c = np.tanh(r * hc + x @ p["c_hx"].T + p["c_b"])
    return z, r, hc, c


def _gru_fwd(attrs, xs, params, ctx):
    x = _flat_x(xs)
    h = _prev(ctx, "h_prev", len(x), _hidden_size(params, "gru"))
    z, r, hc, c = _gru_parts(params, x, h)
    return z * (h - c) + c


def _gru_bwd(attrs, xs, params, y, dy, ctx):
    x = _flat_x(xs)
    h = _prev(ctx, "h_prev", len(x), _hidden_size(params, "gru"))
    z, r, hc, c = _gru_parts(params, x, h)
    da_z = dy * (h - c) * z * (1.0 - z)
    da_c = dy * (1.0 - z) * (1.0 - c * c)
    da_r = da_c * hc * r * (1.0 - r)
    grads = {}
    dx_z, dh_z = _gate_grads(grads, params, "z", da_z, x, h)
    dx_r, dh_r = _gate_grads(grads, params, "r", da_r, x, h)
    dhc = da_c * r                               # through hc = h·W_chᵀ
    grads["c_hx"], grads["c_hh"], grads["c_b"] = da_c.T @ x, dhc.T @ h, da_c.sum(0)
    dx = dx_z + dx_r + da_c @ params["c_hx"]
    ctx.cache["dh_prev"] = dy * z + dh_z + dh_r + dhc @ params["c_hh"]
    return [dx.reshape(xs[0].shape)], grads


# lstm — i, f, o = σ(·), g = tanh(·), c' = f⊙c + i⊙g, h' = o⊙tanh(c')

def _lstm_parts(p, x, h, c):
    i, f, o = (sigmoid(_affine(p, gate, x, h)) for gate in ("i", "f", "o"))
    g = np.tanh(_affine(p, "g", x, h))
    c_new = f * c + i * g
    return i, f, o, g, c_new


def _lstm_state(params, ctx, x):
    n = _hidden_size(params, "lstm")
    return _prev(ctx, "h_prev", len(x), n), _prev(ctx, "c_prev", len(x), n)


def _lstm_fwd(attrs, xs, params, ctx):
    x = _flat_x(xs)
    h, c = _lstm_state(params, ctx, x)
    i, f, o, g, c_new = _lstm_parts(params, x, h, c)
    ctx.cache["c"] = c_new
    return o * np.tanh(c_new)


def _lstm_bwd(attrs, xs, params, y, dy, ctx):
    x = _flat_x(xs)
    h, c = _lstm_state(params, ctx, x)
    i, f, o, g, c_new = _lstm_parts(params, x, h, c)
    tc = np.tanh(c_new)
    dc = dy * o * (1.0 - tc * tc) + _prev(ctx, "dc", len(x), c.shape[1])
    pre_grads = {"i": dc * g * i * (1.0 - i), "f": dc * c * f * (1.0 - f),
                 "o": dy * tc * o * (1.0 - o), "g": dc * i * (1.0 - g * g)}
    grads, dx, dh = {}, 0.0, 0.0
    for gate, da in pre_grads.items():
        gx, gh = _gate_grads(grads, params, gate, da, x, h)
        dx, dh = dx + gx, dh + gh
    ctx.cache["dh_prev"], ctx.cache["dc_prev"] = dh, dc * f
    return [dx.reshape(xs[0].shape)], grads


# rnn — h' = act(x·W_hxᵀ + h·W_hhᵀ + b)

def _rnn_pre(params, x, h):
    return x @ params["w_hx"].T + h @ params["w_hh"].T + params["b"]


def _rnn_fwd(attrs, xs, params, ctx):
    x = _flat_x(xs)
    a = _rnn_pre(params, x, _prev(ctx, "h_prev", len(x), _hidden_size(params, "rnn")))
    return np.tanh(a) if attrs["act"] == "tanh" else np.maximum(a, 0.0)


def _rnn_bwd(attrs, xs, params, y, dy, ctx):
    x = _flat_x(xs)
    h = _prev(ctx, "h_prev", len(x), _hidden_size(params, "rnn"))
    da = dy * (1.0 - y * y) if attrs["act"] == "tanh" else dy * (y > 0)
    grads = {"w_hx": da.T @ x, "w_hh": da.T @ h, "b": da.sum(0)}
    ctx.cache["dh_prev"] = da @ params["w_hh"]
    return [(da @ params["w_hx"]).reshape(xs[0].shape)], grads


_REFERENCES = {"gru": (_gru_fwd, _gru_bwd), "lstm": (_lstm_fwd, _lstm_bwd),
               "rnn": (_rnn_fwd, _rnn_bwd)}

for _op in ("gru", "lstm", "rnn"):
    _extra = (Attr("act", "choice", "tanh", "activation", choices=("tanh", "relu")),) \
        if _op == "rnn" else ()
    define_op(
        name=_op, family="recurrent", doc=_DOCS[_op],
        attrs=(Attr("hidden", "int", doc="hidden units", positional=True, gt=0),) + _extra +
        tuple(init_attr(n) for n in slot_names(_op)) + (init_attr("w", "sets every weight"),) +
        # the rnn's one bias is its slot b: a second attribute b would be read twice
        ((init_attr("b", "sets every bias"),) if "b" not in slot_names(_op) else ()),
        sources=("x",), infer=_infer, params=_params_for(_op), param_groups=True,
        recurrent=True, partition={"batch": SPLIT_REPLICATE}, connection="one_to_all",
        flops=lambda attrs, ins, out, n=len(GATES[_op]): 2 * n * attrs["hidden"] *
        (ins[0].size + attrs["hidden"]),
        forward=_REFERENCES[_op][0], backward=_REFERENCES[_op][1],
    )
