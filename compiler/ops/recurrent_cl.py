"""OpenCL lowering of gru, lstm and rnn: one time step of one unrolled copy (kernels in
recurrent.cl).

The unrolling pass (``compiler/unroll.py``) gives copy t > 0 of a recurrent layer a second
source, copy t−1, whose output is h_prev; BP's first-writer/accumulate bookkeeping then
routes dh_prev into that copy's gradient like any other source gradient.  Copy 0 reads
zeros (``has_prev`` = 0: the h·W_hh GEMMs are skipped), or, with ``bptt { carry_state:
true }``, the state carried from the previous batch.  The lstm's cell state crosses steps in
buffers of its own: ``cell:<copy>`` forward, ``dcell:<copy>`` backward (copy t+1's backward
writes copy t's, before copy t's backward reads it).

Per copy and direction: the GEMMs through ``em.gemm`` (x·W_gxᵀ + b_g with the bias in the
epilogue, then += h·W_ghᵀ), then one element-wise kernel for all the gates.
"""
from __future__ import annotations

from ..emit import BackwardTargets, Emitter, b, i
from .recurrent import GATES
from .registry import attach_lowering


def unroll_info(layer) -> dict:
    return layer.attrs.get("unroll") or {"index": 0, "steps": 1, "of": layer.name}


def cell_buffer(prefix: str, layer_name: str) -> str:
    return f"{prefix}:cell:{layer_name}"


def dcell_buffer(prefix: str, layer_name: str) -> str:
    return f"{prefix}:dcell:{layer_name}"


def carry_buffers(prefix: str, layer_name: str, op: str) -> tuple[str, ...]:
    """The state a layer (by its name before unrolling) carries across batches: h, and c
    for lstm."""
    out = (f"{prefix}:carry:{layer_name}",)
    return out + ((f"{prefix}:carry_cell:{layer_name}",) if op == "lstm" else ())


def _prev(em: Emitter, layer) -> tuple[str | None, str | None]:
    """(h_prev, c_prev) buffers, or (None, None) for zeros."""
    if len(layer.sources) > 1:
        return em.source(layer, 1), cell_buffer(em.prefix, layer.sources[1])
    if em.extras.get("carry_state"):
        n = em.batch * layer.attrs["hidden"]
        bufs = carry_buffers(em.prefix, unroll_info(layer)["of"], layer.op)
        for buf in bufs:
            em.declare(buf, n)
        return bufs[0], (bufs[1] if len(bufs) > 1 else None)
    return None, None


def _acc(t: BackwardTargets, layer, slot: str) -> float:
    return 1.0 if t.dparam_accumulate[f"{layer.name}.{slot}"] else 0.0


def _check_shares(em: Emitter, layer):
    for p in layer.params:
        if em.owner(layer, p.slot)[1]:
            from singa_dsl.errors import SingaConfigError
            raise SingaConfigError(f"{layer.op} cannot use a transposed shared param "
                                   f"({p.key})", layer.span)


def _input_gemms(em: Emitter, layer, x, hp, gates, bufs, hh_into=None):
    """bufs[g] = x·W_gxᵀ + b_g (+ h_prev·W_ghᵀ); ``hh_into`` maps a gate whose h-product
    goes to a separate buffer instead (gru's c)."""
    d, h = layer.in_shapes[0].size, layer.attrs["hidden"]
    hh_into = hh_into or {}
    for g in gates:
        wx = "w_hx" if g == "" else f"{g}_hx"
        bias = "b" if g == "" else f"{g}_b"
        em.gemm(layer.name, m=em.batch, n=h, k=d, a=x, b=em.param(layer, wx), trans_b=True,
                c=bufs[g], bias=em.param(layer, bias))
    if hp is None:
        return
    for g in gates:
        wh = "w_hh" if g == "" else f"{g}_hh"
        if g in hh_into:
            em.gemm(layer.name, m=em.batch, n=h, k=h, a=hp, b=em.param(layer, wh),
                    trans_b=True, c=hh_into[g])
        else:
            em.gemm(layer.name, m=em.batch, n=h, k=h, a=hp, b=em.param(layer, wh),
                    trans_b=True, c=bufs[g], beta=1.0)


def _backward_gemms(em: Emitter, layer, t: BackwardTargets, x, hp, da_x: dict, da_h: dict,
                    dh_started: bool):
    """From the gates' pre-activation gradients: dh_prev += Σ da_h[g]·W_gh (``dh_started``:
    the element-wise kernel already wrote it), dx (+)= Σ da_x[g]·W_gx, and the params:
    dW_gx (+)= da_x[g]ᵀ·x, dW_gh (+)= da_h[g]ᵀ·h_prev, db_g (+)= Σ da_x[g]."""
    d, h, batch = layer.in_shapes[0].size, layer.attrs["hidden"], em.batch
    name = layer.name
    names = {g: (("w_hx", "w_hh", "b") if g == "" else (f"{g}_hx", f"{g}_hh", f"{g}_b"))
             for g in da_x}
    if len(layer.sources) > 1 and t.dx[1]:
        dh = em.source_grad(layer, 1)
        beta = 1.0 if (dh_started or t.dx_accumulate[1]) else 0.0
        for g, da in da_h.items():
            em.gemm(name, m=batch, n=h, k=h, a=da, b=em.param(layer, names[g][1]), c=dh,
                    beta=beta)
            beta = 1.0
    if t.dx[0]:
        beta = 1.0 if t.dx_accumulate[0] else 0.0
        for g, da in da_x.items():
            em.gemm(name, m=batch, n=d, k=h, a=da, b=em.param(layer, names[g][0]),
                    c=em.source_grad(layer, 0), beta=beta)
            beta = 1.0
    for g, da in da_x.items():
        wx, wh, bias = names[g]
        em.gemm(name, m=h, n=d, k=batch, a=da, trans_a=True, b=x, c=em.pgrad(layer, wx),
                beta=_acc(t, layer, wx))
        if hp is not None:
            em.gemm(name, m=h, n=h, k=batch, a=da_h[g], trans_a=True, b=hp,
                    c=em.pgrad(layer, wh), beta=_acc(t, layer, wh))
        elif not _acc(t, layer, wh):
            em.fill(em.pgrad(layer, wh), h * h, 0.0, name)
        em.launch("common", "col_sum", h, (b(da), b(em.pgrad(layer, bias)), i(batch), i(h),
                                           i(int(_acc(t, layer, bias)))), name)


def _gate_buffers(em: Emitter, layer, gates) -> dict:
    n = em.batch * layer.attrs["hidden"]
    return {g: em.declare(f"{em.prefix}:gate{g and '_' + g}:{layer.name}", n) for g in gates}


def _scratch(em: Emitter, layer, gates, kind="d") -> dict:
    """Per-layer (not per-copy) gradient scratch: copies run one after another."""
    n = em.batch * layer.attrs["hidden"]
    of = unroll_info(layer)["of"]
    return {g: em.declare(f"{em.prefix}:{kind}{g and '_' + g}:{of}", n) for g in gates}


# ---- gru ----------------------------------------------------------------------------------

def gru_forward(em: Emitter, layer):
    _check_shares(em, layer)
    n = em.batch * layer.attrs["hidden"]
    hp, _ = _prev(em, layer)
    gates = _gate_buffers(em, layer, ("z", "r", "c"))
    hc = em.declare(f"{em.prefix}:gate_hc:{layer.name}", n) if hp else "dummy"
    y = em.declare(em.act(layer.name), n)
    _input_gemms(em, layer, em.source(layer, 0), hp, ("z", "r", "c"), gates,
                 hh_into={"c": hc})
    em.launch("recurrent", "gru_fwd", n,
              (b(gates["z"]), b(gates["r"]), b(gates["c"]), b(hc), b(hp or "dummy"), b(y),
               i(n), i(int(hp is not None))), layer.name)


def gru_backward(em: Emitter, layer, t: BackwardTargets):
    n = em.batch * layer.attrs["hidden"]
    hp, _ = _prev(em, layer)
    gates = _gate_buffers(em, layer, ("z", "r", "c"))
    hc = f"{em.prefix}:gate_hc:{layer.name}" if hp else "dummy"
    d = _scratch(em, layer, ("z", "r", "c", "hc"))
    want_dh = len(layer.sources) > 1 and t.dx[1]
    dh = em.source_grad(layer, 1) if want_dh else "dummy"
    em.launch("recurrent", "gru_bwd", n,
              (b(em.grad(layer.name)), b(gates["z"]), b(gates["r"]), b(gates["c"]), b(hc),
               b(hp or "dummy"), b(d["z"]), b(d["r"]), b(d["c"]), b(d["hc"]), b(dh), i(n),
               i(int(hp is not None)), i(int(want_dh)),
               i(int(want_dh and t.dx_accumulate[1]))), layer.name)
    _backward_gemms(em, layer, t, em.source(layer, 0), hp,
                    da_x={"z": d["z"], "r": d["r"], "c": d["c"]},
                    da_h={"z": d["z"], "r": d["r"], "c": d["hc"]}, dh_started=want_dh)


# ---- lstm ---------------------------------------------------------------------------------

LSTM = GATES["lstm"]      # i, f, o, g


def lstm_forward(em: Emitter, layer):
    _check_shares(em, layer)
    n = em.batch * layer.attrs["hidden"]
    hp, cp = _prev(em, layer)
    gates = _gate_buffers(em, layer, LSTM)
    c = em.declare(cell_buffer(em.prefix, layer.name), n)
    y = em.declare(em.act(layer.name), n)
    _input_gemms(em, layer, em.source(layer, 0), hp, LSTM, gates)
    em.launch("recurrent", "lstm_fwd", n,
              (*(b(gates[g]) for g in LSTM), b(cp or "dummy"), b(c), b(y), i(n),
               i(int(hp is not None))), layer.name)


def lstm_backward(em: Emitter, layer, t: BackwardTargets):
    n = em.batch * layer.attrs["hidden"]
    hp, cp = _prev(em, layer)
    info = unroll_info(layer)
    gates = _gate_buffers(em, layer, LSTM)
    d = _scratch(em, layer, LSTM)
    has_next = info["index"] + 1 < info["steps"]
    dc_next = em.declare(dcell_buffer(em.prefix, layer.name), n) if has_next else "dummy"
    want_dc = len(layer.sources) > 1 and t.dx[1]
    dc_prev = em.declare(dcell_buffer(em.prefix, layer.sources[1]), n) if want_dc else "dummy"
    em.launch("recurrent", "lstm_bwd", n,
              (b(em.grad(layer.name)), *(b(gates[g]) for g in LSTM),
               b(cell_buffer(em.prefix, layer.name)), b(cp or "dummy"), b(dc_next),
               *(b(d[g]) for g in LSTM), b(dc_prev), i(n), i(int(hp is not None)),
               i(int(has_next)), i(int(want_dc))), layer.name)
    _backward_gemms(em, layer, t, em.source(layer, 0), hp, da_x=d, da_h=d, dh_started=False)


# ---- rnn ----------------------------------------------------------------------------------

def rnn_forward(em: Emitter, layer):
    _check_shares(em, layer)
    n = em.batch * layer.attrs["hidden"]
    hp, _ = _prev(em, layer)
    pre = _gate_buffers(em, layer, ("",))
    y = em.declare(em.act(layer.name), n)
    _input_gemms(em, layer, em.source(layer, 0), hp, ("",), pre)
    em.launch("recurrent", "rnn_fwd", n,
              (b(pre[""]), b(y), i(n), i(int(layer.attrs["act"] == "relu"))), layer.name)


def rnn_backward(em: Emitter, layer, t: BackwardTargets):
    n = em.batch * layer.attrs["hidden"]
    hp, _ = _prev(em, layer)
    d = _scratch(em, layer, ("",))
    em.launch("recurrent", "rnn_bwd", n,
              (b(em.grad(layer.name)), b(em.act(layer.name)), b(d[""]), i(n),
               i(int(layer.attrs["act"] == "relu"))), layer.name)
    _backward_gemms(em, layer, t, em.source(layer, 0), hp, da_x=d, da_h=d, dh_started=False)


attach_lowering("gru", gru_forward, gru_backward)
attach_lowering("lstm", lstm_forward, lstm_backward)
attach_lowering("rnn", rnn_forward, rnn_backward)
