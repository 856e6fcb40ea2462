"""OpenCL lowering of gru, lstm and rnn: the whole recurrence of a sequence batch in one layer
(kernels in recurrent.cl).

``algorithm bptt`` (compiler/lower_bptt.py) lowers the net once with a batch of B·T rows:
every sequence buffer is batch-major, row b·T + t holding step t of sequence b (how a text
field [B, T] is uploaded), so the other layers (onehot, dense, dropout, the loss...) run once
over the rows of all steps.  A recurrent layer reads its whole input sequence and writes its
whole output sequence, looping over the steps inside: step t's rows of a buffer ``width``
wide start at t·width and lie T·width apart, which the GEMMs take as an offset and a leading
dimension and the step kernels as (offset, row stride).  Outside bptt (a recurrent layer in
a plain bp net) T is 1.

Per layer, forward: the input parts x·W_gxᵀ + b_g of all steps as GEMMs over the B·T rows,
then per step the recurrent GEMMs h_prev·W_ghᵀ (h_prev: the previous step's rows of the
output; at step 0 zeros, or with ``bptt { carry_state: true }`` the state carried from the
previous batch) and one element-wise kernel for all the gates.  The train phase also keeps
h_prev of every step (``hist_h``) and the gates.  Backward, per step from the last: one
element-wise kernel (dy of the step plus the gradient reaching h through the next step) writes
the gates' pre-activation gradients into a [B·T, ·] history and starts dh_prev, the GEMMs
add Σ_g da_h[g]·W_gh; then, once over all steps, dx and the weight gradients (GEMMs with
k = B·T instead of T GEMMs with k = B that each read and write the whole dW) and the biases'.

The gru (the char-RNN's cell) goes further, see its section: its three gates sit side by side
(one GEMM each for the input parts of all steps, for a step's h·W_hᵀ and for a step's dh),
with the weights packed into GEMM panels once per phase run.
"""
from __future__ import annotations

from dataclasses import dataclass

from .. import gemm as gemm_mod
from ..emit import BackwardTargets, Emitter, b, i
from .recurrent import GATES
from .registry import attach_lowering

SEQ_KEY = "@bptt"       # em.extras[SEQ_KEY] = {"steps": T, "carry": bool}, set by lower_bptt


def seq_shape(em: Emitter) -> tuple[int, int]:
    """(steps T, rows per step B) of the phase being lowered (em.batch is B·T)."""
    steps = em.extras.get(SEQ_KEY, {}).get("steps", 1)
    return steps, em.batch // steps


def cell_buffer(prefix: str, layer_name: str) -> str:
    """The lstm's cell states of every step, [B·T, H] like its output."""
    return f"{prefix}:cell:{layer_name}"


def carry_buffers(prefix: str, layer_name: str, op: str) -> tuple[str, ...]:
    """The state a layer carries across batches ([B, H]): h, and c for lstm."""
    out = (f"{prefix}:carry:{layer_name}",)
    return out + ((f"{prefix}:carry_cell:{layer_name}",) if op == "lstm" else ())


@dataclass(frozen=True)
class Rows:
    """B rows of a buffer: the first at element ``off``, ``ld`` elements apart."""
    buf: str
    off: int
    ld: int


def _step_rows(buf: str, t: int, width: int, steps: int) -> Rows:
    return Rows(buf, t * width, steps * width)


def _carries(em: Emitter) -> bool:
    return bool(em.extras.get(SEQ_KEY, {}).get("carry"))


def _prev(em: Emitter, layer, t: int, sequences: tuple[str, ...]) -> tuple[Rows, ...] | None:
    """Step t's previous state, one Rows per sequence buffer given (h: the output; c: the
    lstm's cells): step t − 1's rows, or at step 0 the carried state (None: zeros)."""
    steps, rows = seq_shape(em)
    hidden = layer.attrs["hidden"]
    if t > 0:
        return tuple(_step_rows(s, t - 1, hidden, steps) for s in sequences)
    if not _carries(em):
        return None
    bufs = carry_buffers(em.prefix, layer.name, layer.op)
    for buf in bufs:
        em.declare(buf, rows * hidden)
    return tuple(Rows(buf, 0, hidden) for buf in bufs[:len(sequences)])


def _has_prev(em: Emitter, t: int) -> bool:
    return t > 0 or _carries(em)


def _acc(t: BackwardTargets, layer, slot: str) -> float:
    return 1.0 if t.dparam_accumulate[f"{layer.name}.{slot}"] else 0.0


def _check_shares(em: Emitter, layer):
    for p in layer.params:
        if em.owner(layer, p.slot)[1]:
            from singa_dsl.errors import SingaConfigError
            raise SingaConfigError(f"{layer.op} cannot use a transposed shared param "
                                   f"({p.key})", layer.span)


def _slots(g: str) -> tuple[str, str, str]:
    """(input weight, recurrent weight, bias) of gate g ("" is the rnn's one)."""
    return ("w_hx", "w_hh", "b") if g == "" else (f"{g}_hx", f"{g}_hh", f"{g}_b")


def _hist_h(em: Emitter, layer) -> str:
    """h_prev of every step, [B·T, H] like the output (train phase)."""
    return em.declare(f"{em.prefix}:hist_h:{layer.name}", em.batch * layer.attrs["hidden"])


def _state_grads(em: Emitter, layer) -> tuple[str, str]:
    """Two [B, H] buffers the backward alternates between for dh (the gradient reaching a
    step's h through the next step): step t writes buffer t % 2 while reading (t+1) % 2."""
    _, rows = seq_shape(em)
    n = rows * layer.attrs["hidden"]
    return tuple(em.declare(f"{em.prefix}:dstate{k}:{layer.name}", n) for k in (0, 1))


def _weight_grads(em: Emitter, layer, t: BackwardTargets, das: dict[str, Rows],
                  biases: bool = True):
    """Once over all B·T rows, from the gates' pre-activation gradients das[g] (x side and h
    side the same Rows, or a pair (da_x, da_h)): dW_gx (+)= da_x[g]ᵀ·x, dW_gh (+)=
    da_h[g]ᵀ·h_prev (the h_prev history), and unless ``biases`` is off db_g (+)= Σ da_x[g]."""
    steps, _ = seq_shape(em)
    hidden, d, rows = layer.attrs["hidden"], layer.in_shapes[0].size, em.batch
    name, x, hist = layer.name, em.source(layer, 0), _hist_h(em, layer)
    any_prev = steps > 1 or _carries(em)
    # the gates' GEMMs share B (x, or the h_prev history): packed once when they pack
    px = em.gemm_pack_b(name, f"{em.prefix}:hpack_x:{name}", k=rows, n=d, b=x,
                        trans_a=True) \
        if gemm_mod.should_pack(hidden, d, rows, True, False) else None
    ph = em.gemm_pack_b(name, f"{em.prefix}:hpack_h:{name}", k=rows, n=hidden, b=hist,
                        trans_a=True) \
        if any_prev and gemm_mod.should_pack(hidden, hidden, rows, True, False) else None
    for g, da in das.items():
        da_x, da_h = da if isinstance(da, tuple) else (da, da)
        wx, wh, bias = _slots(g)
        em.gemm(name, m=hidden, n=d, k=rows, a=da_x.buf, trans_a=True, lda=da_x.ld,
                a_offset=da_x.off, b=x, c=em.pgrad(layer, wx), beta=_acc(t, layer, wx),
                b_packed=px)
        if any_prev:
            em.gemm(name, m=hidden, n=hidden, k=rows, a=da_h.buf, trans_a=True, lda=da_h.ld,
                    a_offset=da_h.off, b=hist, c=em.pgrad(layer, wh), beta=_acc(t, layer, wh),
                    b_packed=ph)
        elif not _acc(t, layer, wh):
            em.fill(em.pgrad(layer, wh), hidden * hidden, 0.0, name)
        if biases:
            em.launch("recurrent", "col_sum_ld", -(-hidden // 8),
                      (b(da_x.buf), b(em.pgrad(layer, bias)), i(rows), i(hidden),
                       i(da_x.ld), i(da_x.off), i(int(_acc(t, layer, bias)))), name, local=8)


_ROW_LOCAL = 4       # work-group size of the gru kernels (work-items of 8 units each)

# The gru's per-step GEMMs (h_prev·W_hᵀ, dh·W_h) multiply B rows (32 in the char-RNN) by a
# weight packed once: 4-row blocks divide such B exactly (6-row blocks leave a third of the
# last block idle) and measured 10-25% faster than gemm.py's default 6×16 at 1 and 2 threads
# (per-step shapes 32×1536×512 NT and 32×512×1536 NN, AMD EPYC, PoCL).  The autotuner does
# not see GEMMs with a pre-packed B, so the choice is made here.
STEP_TILE = gemm_mod.GemmTile(4, 16, 8, 4, 4)


# ---- gru ----------------------------------------------------------------------------------
# Per layer, [B·T, ·] buffers: the gates (input parts x·W_gxᵀ + b_g of all steps from one
# GEMM, then z, r, c in place), the recurrent parts h·W_ghᵀ (gates_hh), both 3·Hp wide with
# each gate at a panel-aligned column (Hp: hidden rounded up to whole panels), and in the
# train phase h_prev (hist_h) and the gates' pre-activation gradients (hist_da, 4H wide:
# dac | daz | dar | dhc, so that the input side's three and the recurrent side's three are
# each contiguous).  The weights are packed into GEMM panels once per phase run, the three
# gates side by side: x·[W_zx|W_rx|W_cx]ᵀ + b for all steps is one GEMM, a step's
# h·[W_zh|W_rh|W_ch]ᵀ one GEMM; backward, a step's dh_prev += [daz|dar|dhc]·[W_zh; W_rh; W_ch]
# is one GEMM over k = 3H (the stacked weights packed once per step), and dx, when wanted,
# one GEMM over all rows with k = 3H.  The step kernel also sums the biases' gradients (no
# column sums over the history afterwards).  Launches a step: forward 3 (pack h_prev, GEMM,
# gru_fwd), backward 3 (gru_bwd, pack, GEMM).

_DA_COLUMNS = {"z": (1, 1), "r": (2, 2), "c": (0, 3)}   # gate → (da_x block, da_h block)


def _tile(kind: str) -> gemm_mod.GemmTile | None:
    """The GEMM tile of the input projection (kind "x": gemm.py's default) or of the
    per-step GEMMs ("h")."""
    return STEP_TILE if kind == "h" else None


def _gru_stacked(em: Emitter, layer, kind: str, k: int) -> str:
    """[W_zkᵀ | W_rkᵀ | W_ckᵀ] (kind "x": the input weights, "h": the recurrent ones) as the
    panels of one op(B) of k × 3·Hp, packed side by side by the first use in the phase."""
    hidden = layer.attrs["hidden"]
    into = f"{em.prefix}:wpack:{kind}:{layer.name}"
    if into not in em.buffers:
        wide = gemm_mod.packed_width(hidden, _tile(kind))
        for gi, g in enumerate("zrc"):
            em.gemm_pack_b(layer.name, into, k=k, n=hidden, b=em.param(layer, f"{g}_h{kind}"),
                           trans_b=True, bias=kind == "x", into_offset=gi * wide * k,
                           tile=_tile(kind))
    return into


def _stack3(em: Emitter, layer, into: str, slots, n: int, spacing: int) -> str:
    """The three params' values side by side in ``into`` (each n floats, ``spacing`` apart)."""
    em.declare(into, 3 * spacing)
    em.launch("recurrent", "stack3", -(-n // 8),
              (*(b(em.param(layer, s)) for s in slots), b(into), i(n), i(spacing)), layer.name)
    return into


def _gru_bias(em: Emitter, layer) -> str:
    """The three gates' biases side by side, each at its panel-aligned column (the padding
    columns are never read)."""
    hidden = layer.attrs["hidden"]
    return _stack3(em, layer, f"{em.prefix}:bstack:{layer.name}", ("z_b", "r_b", "c_b"),
                   hidden, gemm_mod.packed_width(hidden))


@dataclass(frozen=True)
class _Gates:
    """A [B·T, 3·Hp] buffer of the three gates (each Hp wide: hidden rounded up to whole
    panels of its GEMM's tile)."""
    buf: str
    wide: int

    @property
    def ld(self) -> int:
        return 3 * self.wide

    def step_args(self, t: int, steps: int) -> tuple:
        """The kernels' (buffer, offset, row stride, gate spacing) of step t's rows."""
        return b(self.buf), i(t * self.ld), i(steps * self.ld), i(self.wide)


def _gru_buffers(em: Emitter, layer) -> tuple[_Gates, _Gates]:
    """The gates (input parts, then values) and gates_hh (recurrent parts h·W_ghᵀ)."""
    steps, _ = seq_shape(em)
    hidden = layer.attrs["hidden"]
    out = []
    for kind, name in (("x", "gates"), ("h", "gates_hh")):
        wide = gemm_mod.packed_width(hidden, _tile(kind))
        buf = em.declare(f"{em.prefix}:{name}:{layer.name}", em.batch * 3 * wide) \
            if kind == "x" or steps > 1 or _carries(em) else "dummy"
        out.append(_Gates(buf, wide))
    return tuple(out)


def gru_forward(em: Emitter, layer):
    _check_shares(em, layer)
    steps, rows = seq_shape(em)
    hidden, d = layer.attrs["hidden"], layer.in_shapes[0].size
    gates, hh = _gru_buffers(em, layer)
    y = em.declare(em.act(layer.name), em.batch * hidden)
    x = em.source(layer, 0)
    em.declare("dummy", 16)
    em.gemm(layer.name, m=em.batch, n=gates.ld, k=d, a=x, b=x, trans_b=True, c=gates.buf,
            bias=_gru_bias(em, layer), b_packed=_gru_stacked(em, layer, "x", d))
    keep = em.prefix == "train"
    hist = _hist_h(em, layer) if keep else "dummy"
    for t in range(steps):
        prev = _prev(em, layer, t, (y,))
        hp = prev[0] if prev else Rows("dummy", 0, 0)
        if prev:
            em.gemm(layer.name, m=rows, n=hh.ld, k=hidden, a=hp.buf, a_offset=hp.off,
                    lda=hp.ld, b=hp.buf, trans_b=True, c=hh.buf, c_offset=t * hh.ld,
                    ldc=steps * hh.ld, b_packed=_gru_stacked(em, layer, "h", hidden),
                    tile=STEP_TILE)
        em.launch("recurrent", "gru_fwd", -(-hidden // 8),
                  (*gates.step_args(t, steps), *hh.step_args(t, steps), b(hp.buf), i(hp.off),
                   i(hp.ld), b(y), b(hist), i(t * hidden), i(steps * hidden), i(rows),
                   i(hidden), i(int(prev is not None)), i(int(keep))),
                  layer.name, local=_ROW_LOCAL)


def gru_backward(em: Emitter, layer, t: BackwardTargets):
    steps, rows = seq_shape(em)
    hidden, d = layer.attrs["hidden"], layer.in_shapes[0].size
    name, width = layer.name, 4 * hidden
    gates, hh = _gru_buffers(em, layer)
    hist, dy = _hist_h(em, layer), em.grad(name)
    da = em.declare(f"{em.prefix}:hist_da:{name}", em.batch * width)
    dstate = _state_grads(em, layer) if steps > 1 else ("dummy", "dummy")
    if steps > 1:                    # [W_zh; W_rh; W_ch], packed once for every step's dh
        stacked = _stack3(em, layer, f"{em.prefix}:wstack_h:{name}",
                          ("z_hh", "r_hh", "c_hh"), hidden * hidden, hidden * hidden)
        packed = em.gemm_pack_b(name, f"{em.prefix}:wpack_dh:{name}", k=3 * hidden, n=hidden,
                                b=stacked, tile=STEP_TILE)
    for s in reversed(range(steps)):
        has_next, want_dh = s + 1 < steps, s > 0
        em.launch("recurrent", "gru_bwd", -(-hidden // 8),
                  (b(dy), b(hist), i(s * hidden), i(steps * hidden),
                   b(dstate[(s + 1) % 2]), i(int(has_next)), *gates.step_args(s, steps),
                   *hh.step_args(s, steps), b(da), i(s * width), i(steps * width),
                   b(dstate[s % 2]), i(int(want_dh)), i(rows), i(hidden),
                   i(int(_has_prev(em, s))), *(b(em.pgrad(layer, f"{g}_b")) for g in "zrc"),
                   *(i(int(s + 1 < steps or _acc(t, layer, f"{g}_b"))) for g in "zrc")),
                  name, local=_ROW_LOCAL)
        if want_dh:                  # dh_prev += [daz | dar | dhc]·[W_zh; W_rh; W_ch]
            em.gemm(name, m=rows, n=hidden, k=3 * hidden, a=da, lda=steps * width,
                    a_offset=s * width + hidden, b=stacked, c=dstate[s % 2], beta=1.0,
                    b_packed=packed, k_chunk=3 * hidden, tile=STEP_TILE)
    if t.dx[0]:                      # dx (+)= [dac | daz | dar]·[W_cx; W_zx; W_rx]
        stacked_x = _stack3(em, layer, f"{em.prefix}:wstack_x:{name}",
                            ("c_hx", "z_hx", "r_hx"), hidden * d, hidden * d)
        em.gemm(name, m=em.batch, n=d, k=3 * hidden, a=da, lda=width, b=stacked_x,
                c=em.source_grad(layer, 0), beta=1.0 if t.dx_accumulate[0] else 0.0)
    _weight_grads(em, layer, t, {g: (Rows(da, cx * hidden, width), Rows(da, ch * hidden, width))
                                 for g, (cx, ch) in _DA_COLUMNS.items()}, biases=False)


# ---- lstm and rnn: a buffer per gate --------------------------------------------------------

LSTM = GATES["lstm"]      # i, f, o, g


def _gate_seqs(em: Emitter, layer, gates, kind: str) -> dict:
    """Per gate a [B·T, H] buffer ("gate": pre-activations, then values; "da": gradients)."""
    n = em.batch * layer.attrs["hidden"]
    return {g: em.declare(f"{em.prefix}:{kind}{g and '_' + g}:{layer.name}", n) for g in gates}


def _input_gemms(em: Emitter, layer, gates: tuple[str, ...], bufs: dict):
    """bufs[g] = x·W_gxᵀ + b_g for every row of every step."""
    hidden, d = layer.attrs["hidden"], layer.in_shapes[0].size
    x = em.source(layer, 0)
    for g in gates:
        wx, _, bias = _slots(g)
        em.gemm(layer.name, m=em.batch, n=hidden, k=d, a=x, b=em.param(layer, wx),
                trans_b=True, c=bufs[g], bias=em.param(layer, bias))


def _recurrent_gemms(em: Emitter, layer, t: int, hp: Rows, gates, bufs: dict):
    """Step t's rows of bufs[g] += h_prev·W_ghᵀ."""
    steps, rows = seq_shape(em)
    hidden = layer.attrs["hidden"]
    for g in gates:
        em.gemm(layer.name, m=rows, n=hidden, k=hidden, a=hp.buf, a_offset=hp.off, lda=hp.ld,
                b=em.param(layer, _slots(g)[1]), trans_b=True, c=bufs[g], c_offset=t * hidden,
                ldc=steps * hidden, beta=1.0)


def _dh_gemms(em: Emitter, layer, t: int, das: dict, into: str):
    """into = Σ_g (step t's rows of das[g])·W_gh: the gradient reaching step t − 1's h."""
    steps, rows = seq_shape(em)
    hidden = layer.attrs["hidden"]
    beta = 0.0
    for g, da in das.items():
        em.gemm(layer.name, m=rows, n=hidden, k=hidden, a=da, a_offset=t * hidden,
                lda=steps * hidden, b=em.param(layer, _slots(g)[1]), c=into, beta=beta)
        beta = 1.0


def _dx_gemms(em: Emitter, layer, t: BackwardTargets, das: dict):
    """dx (+)= Σ_g da[g]·W_gx over all rows of all steps."""
    if not t.dx[0]:
        return
    hidden, d = layer.attrs["hidden"], layer.in_shapes[0].size
    beta = 1.0 if t.dx_accumulate[0] else 0.0
    for g, da in das.items():
        em.gemm(layer.name, m=em.batch, n=d, k=hidden, a=da, b=em.param(layer, _slots(g)[0]),
                c=em.source_grad(layer, 0), beta=beta)
        beta = 1.0


def lstm_forward(em: Emitter, layer):
    _check_shares(em, layer)
    steps, rows = seq_shape(em)
    hidden = layer.attrs["hidden"]
    gates = _gate_seqs(em, layer, LSTM, "gate")
    c = em.declare(cell_buffer(em.prefix, layer.name), em.batch * hidden)
    y = em.declare(em.act(layer.name), em.batch * hidden)
    keep = em.prefix == "train"
    hist = _hist_h(em, layer) if keep else "dummy"
    em.declare("dummy", 16)
    _input_gemms(em, layer, LSTM, gates)
    for t in range(steps):
        prev = _prev(em, layer, t, (y, c))
        if prev:
            _recurrent_gemms(em, layer, t, prev[0], LSTM, gates)
        hp, cp = prev or (Rows("dummy", 0, 0), Rows("dummy", 0, 0))
        em.launch("recurrent", "lstm_fwd", rows * hidden,
                  (*(b(gates[g]) for g in LSTM), b(c), b(y), b(hist), i(t * hidden),
                   i(steps * hidden), b(cp.buf), b(hp.buf), i(hp.off), i(hp.ld),
                   i(rows * hidden), i(hidden), i(int(prev is not None)), i(int(keep))),
                  layer.name)


def lstm_backward(em: Emitter, layer, t: BackwardTargets):
    steps, rows = seq_shape(em)
    hidden = layer.attrs["hidden"]
    gates = _gate_seqs(em, layer, LSTM, "gate")
    das = _gate_seqs(em, layer, LSTM, "da")
    c = cell_buffer(em.prefix, layer.name)
    dh = _state_grads(em, layer) if steps > 1 else ("dummy", "dummy")
    n = rows * hidden
    dc = tuple(em.declare(f"{em.prefix}:dcell{k}:{layer.name}", n) for k in (0, 1)) \
        if steps > 1 else ("dummy", "dummy")
    for s in reversed(range(steps)):
        has_next, want = s + 1 < steps, s > 0
        prev = _prev(em, layer, s, (em.act(layer.name), c))
        cp = prev[1] if prev else Rows("dummy", 0, 0)
        em.launch("recurrent", "lstm_bwd", n,
                  (b(em.grad(layer.name)), b(dh[(s + 1) % 2]), i(int(has_next)),
                   *(b(gates[g]) for g in LSTM), b(c), i(s * hidden), i(steps * hidden),
                   b(cp.buf), i(cp.off), i(cp.ld), b(dc[(s + 1) % 2]),
                   *(b(das[g]) for g in LSTM), b(dc[s % 2]), i(n), i(hidden),
                   i(int(prev is not None)), i(int(want))), layer.name)
        if want:
            _dh_gemms(em, layer, s, das, dh[s % 2])
    _dx_gemms(em, layer, t, das)
    _weight_grads(em, layer, t, {g: Rows(das[g], 0, hidden) for g in LSTM})


def rnn_forward(em: Emitter, layer):
    _check_shares(em, layer)
    steps, rows = seq_shape(em)
    hidden = layer.attrs["hidden"]
    pre = _gate_seqs(em, layer, ("",), "gate")
    y = em.declare(em.act(layer.name), em.batch * hidden)
    keep = em.prefix == "train"
    hist = _hist_h(em, layer) if keep else "dummy"
    em.declare("dummy", 16)
    _input_gemms(em, layer, ("",), pre)
    for t in range(steps):
        prev = _prev(em, layer, t, (y,))
        if prev:
            _recurrent_gemms(em, layer, t, prev[0], ("",), pre)
        hp = prev[0] if prev else Rows("dummy", 0, 0)
        em.launch("recurrent", "rnn_fwd", rows * hidden,
                  (b(pre[""]), b(y), b(hist), i(t * hidden), i(steps * hidden), b(hp.buf),
                   i(hp.off), i(hp.ld), i(rows * hidden), i(hidden),
                   i(int(prev is not None)), i(int(layer.attrs["act"] == "relu")),
                   i(int(keep))), layer.name)


def rnn_backward(em: Emitter, layer, t: BackwardTargets):
    steps, rows = seq_shape(em)
    hidden = layer.attrs["hidden"]
    das = _gate_seqs(em, layer, ("",), "da")
    dh = _state_grads(em, layer) if steps > 1 else ("dummy", "dummy")
    n = rows * hidden
    for s in reversed(range(steps)):
        em.launch("recurrent", "rnn_bwd", n,
                  (b(em.grad(layer.name)), b(dh[(s + 1) % 2]), i(int(s + 1 < steps)),
                   b(em.act(layer.name)), b(das[""]), i(s * hidden), i(steps * hidden), i(n),
                   i(hidden), i(int(layer.attrs["act"] == "relu"))), layer.name)
        if s > 0:
            _dh_gemms(em, layer, s, das, dh[s % 2])
    _dx_gemms(em, layer, t, das)
    _weight_grads(em, layer, t, {"": Rows(das[""], 0, hidden)})


attach_lowering("gru", gru_forward, gru_backward)
attach_lowering("lstm", lstm_forward, lstm_backward)
attach_lowering("rnn", rnn_forward, rnn_backward)
