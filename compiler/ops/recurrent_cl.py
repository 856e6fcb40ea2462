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
epilogue, then += h·W_ghᵀ), then one element-wise kernel for all the gates.  The gru (the
char-RNN's cell) goes further, see its section: its weights are packed into GEMM panels once
per phase run (all three gates side by side: one GEMM per step for x·W_xᵀ + b and one for
h·W_hᵀ), and its weight gradients are taken once over all steps.
"""
from __future__ import annotations

from .. import gemm as gemm_mod
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


def _packed_w(em: Emitter, layer, slot: str, *, k: int, n: int, trans_b: bool,
              bias: bool = False) -> str:
    """A buffer holding op(W)'s GEMM panels (W = the slot's param, op(W) k×n) for this phase,
    packed by the first copy that asks: the weights change only between steps, so the 2·steps
    GEMMs of the unrolled copies that multiply by W read panels packed once."""
    of = unroll_info(layer)["of"]
    into = f"{em.prefix}:wpack:{slot}{'_t' if trans_b else ''}:{of}"
    if into not in em.buffers:
        em.gemm_pack_b(layer.name, into, k=k, n=n, b=em.param(layer, slot), trans_b=trans_b,
                bias=bias)
    return into


def _input_gemms(em: Emitter, layer, x, hp, gates, bufs, hh_into=None, prepack=False):
    """bufs[g] = x·W_gxᵀ + b_g (+ h_prev·W_ghᵀ); ``hh_into`` maps a gate whose h-product
    goes to a separate buffer instead (gru's c).  ``prepack``: the weights' panels are packed
    once per phase (``_packed_w``) and every copy's GEMM reads them."""
    d, h = layer.in_shapes[0].size, layer.attrs["hidden"]
    hh_into = hh_into or {}
    for g in gates:
        wx = "w_hx" if g == "" else f"{g}_hx"
        bias = "b" if g == "" else f"{g}_b"
        packed = _packed_w(em, layer, wx, k=d, n=h, trans_b=True, bias=True) \
            if prepack else None
        em.gemm(layer.name, m=em.batch, n=h, k=d, a=x, b=em.param(layer, wx), trans_b=True,
                c=bufs[g], bias=em.param(layer, bias), b_packed=packed)
    if hp is None:
        return
    for g in gates:
        wh = "w_hh" if g == "" else f"{g}_hh"
        packed = _packed_w(em, layer, wh, k=h, n=h, trans_b=True) if prepack else None
        if g in hh_into:
            em.gemm(layer.name, m=em.batch, n=h, k=h, a=hp, b=em.param(layer, wh),
                    trans_b=True, c=hh_into[g], b_packed=packed)
        else:
            em.gemm(layer.name, m=em.batch, n=h, k=h, a=hp, b=em.param(layer, wh),
                    trans_b=True, c=bufs[g], beta=1.0, b_packed=packed)


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
# The train phase keeps per-layer histories across the unrolled copies, [steps·B, width] with
# copy t's rows at t·B: the inputs x (hist_x), the states h_prev (hist_h: copy t's h_prev in
# slice t, written by copy t−1's forward kernel; slice 0 is the carried state, or unused), and
# the gates' pre-activation gradients (hist_da, 4H wide: daz, dar, dac, dhc).  The per-step
# backward only propagates (dh_prev, dx); the weight and bias gradients are taken once, by the
# last copy the backward reaches (copy 0), as GEMMs over all steps·B rows: k = steps·B instead
# of steps GEMMs with k = B that each read and write the whole dW.  The forward's GEMMs read
# weight panels packed once per phase run (weights change only between steps): the three
# gates side by side, so a step is two GEMMs (x·[W_zx|W_rx|W_cx]ᵀ + b, h·[W_zh|W_rh|W_ch]ᵀ)
# into [B, 3·Hp] buffers (Hp: hidden rounded up to whole panels); the backward's dh GEMMs
# read W_gh packed once per step likewise.

def _hist(em: Emitter, layer, kind: str, width: int, extra: int = 0) -> str:
    info = unroll_info(layer)
    return em.declare(f"{em.prefix}:hist_{kind}:{info['of']}",
                      (info["steps"] + extra) * em.batch * width)


def _gru_stacked(em: Emitter, layer, kind: str, k: int) -> str:
    """[W_zkᵀ | W_rkᵀ | W_ckᵀ] (kind "x": the input weights, "h": the recurrent ones) as the
    panels of one op(B) of k × 3·Hp (Hp: hidden rounded up to whole panels), packed side by
    side by the first copy of the phase: one GEMM then gives all three gates of a step."""
    hidden, of = layer.attrs["hidden"], unroll_info(layer)["of"]
    into = f"{em.prefix}:wpack:{kind}:{of}"
    if into not in em.buffers:
        wide = gemm_mod.packed_width(hidden)
        for gi, g in enumerate("zrc"):
            em.gemm_pack_b(layer.name, into, k=k, n=hidden, b=em.param(layer, f"{g}_h{kind}"),
                    trans_b=True, bias=kind == "x", into_offset=gi * wide * k)
    return into


def _gru_bias(em: Emitter, layer) -> str:
    """The three gates' biases side by side, each at its panel-aligned column (b_z, b_r, b_c
    copied once per phase run; the padding columns are never read)."""
    hidden, of = layer.attrs["hidden"], unroll_info(layer)["of"]
    wide = gemm_mod.packed_width(hidden)
    into = f"{em.prefix}:bstack:{of}"
    if into not in em.buffers:
        em.declare(into, 3 * wide)
        for gi, g in enumerate("zrc"):
            em.launch("recurrent", "stash", hidden,
                      (b(em.param(layer, f"{g}_b")), b(into), i(hidden), i(gi * wide)),
                      layer.name)
    return into


def _gru_gate_buffers(em: Emitter, layer, hp) -> tuple[str, str]:
    """(gates, hh) of a copy: [B, 3·Hp] each — the gates' input parts x·W_gxᵀ + b_g (then
    their values z, r, c, written in place by gru_fwd) and the recurrent parts h·W_ghᵀ."""
    wide = 3 * gemm_mod.packed_width(layer.attrs["hidden"])
    gates = em.declare(f"{em.prefix}:gates:{layer.name}", em.batch * wide)
    hh = em.declare(f"{em.prefix}:gates_hh:{layer.name}", em.batch * wide) if hp else "dummy"
    return gates, hh


def gru_forward(em: Emitter, layer):
    _check_shares(em, layer)
    hidden = layer.attrs["hidden"]
    n, ld = em.batch * hidden, 3 * gemm_mod.packed_width(hidden)
    d = layer.in_shapes[0].size
    hp, _ = _prev(em, layer)
    gates, hh = _gru_gate_buffers(em, layer, hp)
    y = em.declare(em.act(layer.name), n)
    x = em.source(layer, 0)
    em.gemm(layer.name, m=em.batch, n=ld, k=d, a=x, b=x, trans_b=True, c=gates,
            bias=_gru_bias(em, layer), b_packed=_gru_stacked(em, layer, "x", d))
    if hp is not None:
        em.gemm(layer.name, m=em.batch, n=ld, k=hidden, a=hp, b=hp, trans_b=True, c=hh,
                b_packed=_gru_stacked(em, layer, "h", hidden))
    t = unroll_info(layer)["index"]
    hist_h, keep = "dummy", em.prefix == "train"
    if keep:
        hist_x = _hist(em, layer, "x", d)
        em.launch("recurrent", "stash", em.batch * d,
                  (b(x), b(hist_x), i(em.batch * d), i(t * em.batch * d)), layer.name)
        hist_h = _hist(em, layer, "h", hidden, extra=1)
        if t == 0 and hp is not None:          # the carried state is copy 0's h_prev
            em.launch("recurrent", "stash", n, (b(hp), b(hist_h), i(n), i(0)), layer.name)
    em.launch("recurrent", "gru_fwd", (-(-hidden // 8), em.batch),
              (b(gates), b(hh), b(hp or "dummy"), b(y), b(hist_h), i((t + 1) * n), i(n),
               i(hidden), i(ld), i(int(hp is not None)), i(int(keep))), layer.name,
              local=(_ROW_LOCAL, 1))
    em.declare("dummy", 16)


_ROW_LOCAL = 8       # work-group width of the 2-D (8 units, row) gate kernels


_DA_COLUMNS = {"z": (0, 0), "r": (1, 1), "c": (2, 3)}   # gate → (da_x column, da_h column)


def gru_backward(em: Emitter, layer, t: BackwardTargets):
    hidden, batch = layer.attrs["hidden"], em.batch
    d, n, wide = layer.in_shapes[0].size, batch * hidden, 4 * hidden
    hp, _ = _prev(em, layer)
    info = unroll_info(layer)
    ti, steps = info["index"], info["steps"]
    gates, hh = _gru_gate_buffers(em, layer, hp)
    da = _hist(em, layer, "da", wide)
    off = ti * batch * wide
    want_dh = len(layer.sources) > 1 and t.dx[1]
    dh = em.source_grad(layer, 1) if want_dh else "dummy"
    em.launch("recurrent", "gru_bwd", (-(-hidden // 8), batch),
              (b(em.grad(layer.name)), b(gates), b(hh), b(hp or "dummy"), b(da), i(off),
               i(hidden), i(3 * gemm_mod.packed_width(hidden)), b(dh), i(n),
               i(int(hp is not None)), i(int(want_dh)),
               i(int(want_dh and t.dx_accumulate[1]))), layer.name, local=(_ROW_LOCAL, 1))
    name = layer.name
    if want_dh:                      # dh_prev += Σ da_h[g]·W_gh
        for g, (_, col) in _DA_COLUMNS.items():
            packed = _packed_w(em, layer, f"{g}_hh", k=hidden, n=hidden, trans_b=False)
            em.gemm(name, m=batch, n=hidden, k=hidden, a=da, lda=wide,
                    a_offset=off + col * hidden, b=em.param(layer, f"{g}_hh"), c=dh, beta=1.0,
                    b_packed=packed)
    if t.dx[0]:                      # dx (+)= Σ da_x[g]·W_gx
        beta = 1.0 if t.dx_accumulate[0] else 0.0
        for g, (col, _) in _DA_COLUMNS.items():
            em.gemm(name, m=batch, n=d, k=hidden, a=da, lda=wide, a_offset=off + col * hidden,
                    b=em.param(layer, f"{g}_hx"), c=em.source_grad(layer, 0), beta=beta)
            beta = 1.0
    # Whether each param gradient overwrites or adds is decided by the first copy the
    # backward reaches (the last step); copy 0 then writes it for all steps.
    key = f"gru_acc:{info['of']}"
    if ti == steps - 1:
        em.extras[key] = {slot: _acc(t, layer, slot) for g in _DA_COLUMNS
                          for slot in (f"{g}_hx", f"{g}_hh", f"{g}_b")}
    if ti != 0:
        return
    acc = em.extras[key]
    rows = steps * batch
    hist_x, hist_h = _hist(em, layer, "x", d), _hist(em, layer, "h", hidden, extra=1)
    first = 0 if hp is not None else 1          # step 0 without a carried state: no h_prev
    k_h = (steps - first) * batch
    # the three gates' GEMMs share B (x's or h_prev's history): packed once when they pack
    pack_x = gemm_mod.should_pack(hidden, d, rows, True, False)
    pack_h = k_h > 0 and gemm_mod.should_pack(hidden, hidden, k_h, True, False)
    px = em.gemm_pack_b(name, f"{em.prefix}:hpack_x:{info['of']}", k=rows, n=d, b=hist_x,
                 trans_a=True) if pack_x else None
    ph = em.gemm_pack_b(name, f"{em.prefix}:hpack_h:{info['of']}", k=k_h, n=hidden, b=hist_h,
                 b_offset=first * n, trans_a=True) if pack_h else None
    for g, (cx, ch) in _DA_COLUMNS.items():
        em.gemm(name, m=hidden, n=d, k=rows, a=da, trans_a=True, lda=wide,
                a_offset=cx * hidden, b=hist_x, c=em.pgrad(layer, f"{g}_hx"),
                beta=acc[f"{g}_hx"], b_packed=px)
        if k_h > 0:
            em.gemm(name, m=hidden, n=hidden, k=k_h, a=da, trans_a=True,
                    lda=wide, a_offset=first * batch * wide + ch * hidden, b=hist_h,
                    b_offset=first * n, c=em.pgrad(layer, f"{g}_hh"), beta=acc[f"{g}_hh"],
                    b_packed=ph)
        elif not acc[f"{g}_hh"]:
            em.fill(em.pgrad(layer, f"{g}_hh"), hidden * hidden, 0.0, name)
        em.launch("recurrent", "col_sum_ld", -(-hidden // 8),
                  (b(da), b(em.pgrad(layer, f"{g}_b")), i(rows), i(hidden), i(wide),
                   i(cx * hidden), i(int(acc[f"{g}_b"]))), name, local=8)


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
