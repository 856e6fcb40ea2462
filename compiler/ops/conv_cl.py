"""OpenCL lowering of conv, two ways.

**Direct** (stride 1 and pad < kernel — every conv of SINGA's CIFAR-10 net): no column
matrix.  The input is copied once into a zero-padded buffer xp (B, C, H+2P, W+2P), then

* forward: y[b, f, oh, ow..ow+7] = bias[f] + Σ_{c,kh,kw} W[f, c, kh, kw] · xp[b, c, oh+kh, ow+kw..]
  — a CPU micro-kernel (POCL-NOTES.md): each work-item keeps MR filters × NV float8 vectors of
  output positions in registers, loads each input vector once for its MR filters, and writes
  NCHW with the bias in its epilogue;
* dx: the same kernel on dy padded by K−1−P, with the filters flipped and their in/out
  channels swapped (the transposed convolution), adding into dx when it accumulates;
* dW[f, c, kh, kw] = Σ_{b,oh,ow} dy[b, f, oh, ow] · xp[b, c, oh+kh, ow+kw]: a work-item per (kh,
  c, pair of filters) with K float8 dot products per filter along ow;
* db: row sums of dy's planes.

The kernel size is a render-time constant (the taps unroll), so each kernel size is a program
of its own (``conv_direct_k<K>``, rendered here and deterministic: PoCL's cache key).

**im2col** (any other stride or padding; kernels in conv.cl): im2col over the whole batch, one
GEMM, a permute to NCHW that adds the bias.  The train phase keeps each layer's col (C·k·k ×
B·OH·OW) until its backward, which first takes dW = dY'·colᵀ and then reuses the same buffer
for dcol = Wᵀ·dY'; evaluation phases share one col scratch.  The GEMM result Y' (F × B·OH·OW)
lives in a per-phase scratch shared by every conv layer, reused by the backward for dY'.
"""
from __future__ import annotations

from singa_dsl.runtime.plan_types import Launch, ProgramDecl

from ..emit import BUILD_OPTIONS, BackwardTargets, Emitter, b, i, round_up
from .registry import attach_lowering

DIRECT_MR = 4        # output channels per work-item of the direct kernels
DIRECT_NV = 2        # float8 vectors of output positions per work-item
DW_MR = 2            # filters per work-item of the dW kernel (× K float8 accumulators)
DW_CHUNK_FLOATS = 128 * 1024  # dy + xp floats of one dW chunk of images (512 KiB: L2)
VW = 8               # vector width (float8: one AVX2 register)
SLACK = VW           # floats after a padded buffer: a row thinner than a vector reads past it
FWD_LOCAL = 16
# the direct kernels' epilogue flags: bit 0 adds the bias, this bit applies relu as it stores
EPILOGUE_RELU = 2


def _dims(em: Emitter, layer):
    c, h, w = layer.in_shapes[0].shape
    f, oh, ow = layer.out.shape
    a = layer.attrs
    n = em.batch * oh * ow
    return dict(C=c, H=h, W=w, F=f, OH=oh, OW=ow, K=a["kernel"], S=a["stride"], P=a["pad"],
                N=n, rows=c * a["kernel"] ** 2)


def is_direct(d) -> bool:
    return d["S"] == 1 and d["P"] <= d["K"] - 1


def _use_direct(em: Emitter, layer, d) -> bool:
    """Direct when the shape allows and the params are whole buffers: a partitioned copy
    that holds a slice of the filters (a name that is not param:…) takes the im2col path,
    whose GEMMs address the slice by offset."""
    slots = ("w", "b") if layer.attrs["bias"] else ("w",)
    return is_direct(d) and all(em.param(layer, s).startswith("param:") for s in slots)


def forward(em: Emitter, layer):
    d = _dims(em, layer)
    (_direct_forward if _use_direct(em, layer, d) else _im2col_forward)(em, layer, d)


def backward(em: Emitter, layer, t: BackwardTargets):
    d = _dims(em, layer)
    (_direct_backward if _use_direct(em, layer, d) else _im2col_backward)(em, layer, t, d)


# ---- direct ---------------------------------------------------------------------------------

def _program(em: Emitter, k: int, mr: int) -> str:
    name = f"conv_direct_k{k}_m{mr}"
    if name not in em.programs:
        em.programs[name] = ProgramDecl(name, render_direct(k, mr), BUILD_OPTIONS,
                                        f"direct conv kernels, kernel size {k}")
    return name


def _launch(em: Emitter, k: int, kernel: str, items: tuple, local: tuple, args, tag: str,
            mr: int = DIRECT_MR):
    gsize = tuple(round_up(n, l) for n, l in zip(items, local))
    em.launches.append(Launch(_program(em, k, mr), kernel, gsize, local, tuple(args), tag))


def _pad(em: Emitter, k: int, mr: int, src: str, dst: str, planes: int, h: int, w: int,
         p: int, tag: str):
    hp, wp = h + 2 * p, w + 2 * p
    em.declare(dst, planes * hp * wp + SLACK)
    _launch(em, k, "conv_pad", (planes * hp,), (16,),
            (b(src), b(dst), i(planes * hp), i(h), i(w), i(p), i(hp), i(wp)), tag, mr)


def _xpad(em: Emitter, layer) -> str:
    return f"train:xpad:{layer.name}" if em.prefix == "train" else f"{em.prefix}:conv:xpad"


def _direct(em: Emitter, k: int, kernel: str, xp: str, w: str, bias: str, out: str, *,
            ins: int, hp: int, wp: int, outs: int, oh: int, ow: int, wso: int, wsi: int,
            has_bias: bool, acc: bool, tag: str, relu: bool = False):
    nvec = -(-ow // VW)
    units = em.batch * oh * nvec
    mr = min(DIRECT_MR, outs)
    _launch(em, k, f"{kernel}_m{mr}", (-(-units // DIRECT_NV), -(-outs // mr)), (FWD_LOCAL, 1),
            (b(xp), b(w), b(bias), b(out), i(ins), i(hp), i(wp), i(outs), i(oh), i(ow),
             i(nvec), i(units), i(wso), i(wsi), i(int(has_bias) | (EPILOGUE_RELU if relu else 0)),
             i(int(acc))), tag, mr)


def _direct_forward(em: Emitter, layer, d):
    k, p = d["K"], d["P"]
    hp, wp = d["H"] + 2 * p, d["W"] + 2 * p
    xp = _xpad(em, layer)
    _pad(em, k, min(DIRECT_MR, d["F"]), em.source(layer, 0), xp, em.batch * d["C"], d["H"],
         d["W"], p, layer.name)
    relu = em.take_activation(layer, ("relu",))     # max(·, 0) as the kernel stores
    y = em.declare(em.act(relu.name if relu else layer.name), em.batch * layer.out.size)
    has_bias = bool(layer.attrs["bias"])
    bias = em.param(layer, "b") if has_bias else em.declare("dummy", 16)
    _direct(em, k, "conv_direct", xp, em.param(layer, "w"), bias, y, ins=d["C"], hp=hp,
            wp=wp, outs=d["F"], oh=d["OH"], ow=d["OW"], wso=d["rows"], wsi=k * k,
            has_bias=has_bias, acc=False, tag=layer.name, relu=relu is not None)


def _direct_backward(em: Emitter, layer, t: BackwardTargets, d):
    k, p, f, c = d["K"], d["P"], d["F"], d["C"]
    dy, xp = em.grad(layer.name), _xpad(em, layer)
    hp, wp = d["H"] + 2 * p, d["W"] + 2 * p
    if layer.attrs["bias"]:
        acc = t.dparam_accumulate[f"{layer.name}.b"]
        _launch(em, k, "conv_bias_grad", (f,), (8,),
                (b(dy), b(em.pgrad(layer, "b")), i(f), i(d["OH"] * d["OW"]), i(em.batch),
                 i(int(acc))), layer.name, min(DIRECT_MR, f))
    mw, mr = min(DW_MR, f), min(DIRECT_MR, f)
    # images per chunk: its dy and xp planes (floats) fit in DW_CHUNK_FLOATS
    per_image = f * d["OH"] * d["OW"] + c * hp * wp
    chunk = max(1, min(em.batch, DW_CHUNK_FLOATS // per_image))
    chunks = -(-em.batch // chunk)
    n = f * d["rows"]
    part = em.declare(f"{em.prefix}:conv:dw_part", chunks * n)
    _launch(em, k, f"conv_dw_m{mw}", (c * k, -(-f // mw), chunks), (k, 1, 1),
            (b(xp), b(dy), b(part), i(c), i(hp), i(wp), i(f), i(d["OH"]), i(d["OW"]),
             i(em.batch), i(chunk)), layer.name, mr)
    _launch(em, k, "conv_dw_reduce", (n,), (64,),
            (b(part), b(em.pgrad(layer, "w")), i(n), i(chunks),
             i(int(t.dparam_accumulate[f"{layer.name}.w"]))), layer.name, mr)
    if not t.dx[0]:
        return
    q = k - 1 - p                        # dx = dy padded by K−1−P ⊛ flipped, transposed W
    dyp = f"{em.prefix}:conv:dypad"
    _pad(em, k, min(DIRECT_MR, c), dy, dyp, em.batch * f, d["OH"], d["OW"], q, layer.name)
    _direct(em, k, "conv_direct_flip", dyp, em.param(layer, "w"), "dummy",
            em.source_grad(layer, 0), ins=f, hp=d["OH"] + 2 * q, wp=d["OW"] + 2 * q,
            outs=c, oh=d["H"], ow=d["W"], wso=k * k, wsi=d["rows"], has_bias=False,
            acc=t.dx_accumulate[0], tag=layer.name)
    em.declare("dummy", 16)


LANES = "01234567"


def render_direct(k: int, mr: int) -> str:
    """The direct kernels for kernel size k, MR = mr output channels per work-item."""
    parts = [_DIRECT_HEADER.format(k=k),
             _render_direct_kernel(k, mr, DIRECT_NV, flip=False),
             _render_direct_kernel(k, mr, DIRECT_NV, flip=True)]
    for mw in sorted({1, DW_MR}):
        parts.append(_render_dw_kernel(k, mw))
    return "\n".join(parts) + "\n"


_DIRECT_HEADER = """// singa_dsl direct convolution, kernel size {k}, stride 1; rendered by
// singa_dsl.compiler.ops.conv_cl (see its docstring for the scheme).
typedef float8 f8u __attribute__((aligned(4)));      /* any float offset */
#define LD8(p) (*(__global const f8u *)(p))
#define ST8(p, v) (*(__global f8u *)(p) = (v))

/* xp[plane, r, :] = row r − P of x[plane] shifted right by P, zeros around: one work-item per
 * padded row (plane, r). */
__kernel void conv_pad(__global const float *x, __global float *xp, const int rows,
                       const int H, const int W, const int P, const int Hp, const int Wp) {{
    const int row = get_global_id(0);
    if (row >= rows) return;
    const int r = row % Hp, plane = row / Hp, h = r - P;
    __global float *dst = xp + (size_t)row * Wp;
    if (h < 0 || h >= H) {{
        for (int j = 0; j < Wp; ++j) dst[j] = 0.0f;
        return;
    }}
    __global const float *src = x + ((size_t)plane * H + h) * W;
    for (int j = 0; j < P; ++j) dst[j] = 0.0f;
    int j = 0;
    for (; j + 8 <= W; j += 8) ST8(dst + P + j, LD8(src + j));
    for (; j < W; ++j) dst[P + j] = src[j];
    for (j = P + W; j < Wp; ++j) dst[j] = 0.0f;
}}

/* dw[j] (+)= Σ_c part[c, j] over the chunks' partial sums (in a fixed order). */
__kernel void conv_dw_reduce(__global const float *part, __global float *dw, const int n,
                             const int chunks, const int acc) {{
    const int j = get_global_id(0);
    if (j >= n) return;
    float s = 0.0f;
    for (int c = 0; c < chunks; ++c) s += part[(size_t)c * n + j];
    dw[j] = acc ? dw[j] + s : s;
}}

/* db[f] (+)= Σ_b Σ_p dy[b, f, p]: one work-item per filter. */
__kernel void conv_bias_grad(__global const float *dy, __global float *db, const int F,
                             const int HW, const int B, const int acc) {{
    const int f = get_global_id(0);
    if (f >= F) return;
    float8 s8 = 0.0f;
    float s1 = 0.0f;
    for (int bb = 0; bb < B; ++bb) {{
        __global const float *p = dy + ((size_t)bb * F + f) * HW;
        int j = 0;
        for (; j + 8 <= HW; j += 8) s8 += LD8(p + j);
        for (; j < HW; ++j) s1 += p[j];
    }}
    const float4 s4 = s8.lo + s8.hi;
    const float s = (s4.x + s4.y) + (s4.z + s4.w) + s1;
    db[f] = acc ? db[f] + s : s;
}}
"""


def _render_direct_kernel(k: int, mr: int, nv: int, flip: bool) -> str:
    """out[b, o, oh, ow] (+)= Σ_{i,kh,kw} w(o, i, kh, kw) · xp[b, i, oh+kh, ow+kw] (+ bias[o]),
    w(o, i, kh, kw) = W[o·wso + i·wsi + kh·k + kw] (flipped: (k−1−kh)·k + k−1−kw); the bias
    and a relu as it stores are the `epilogue` argument's bits 1 and EPILOGUE_RELU.

    A unit is 8 output positions of one row, (b, oh, j): ow = 8j..8j+7; a row's last unit moves
    back inside the row when OW > 8 is not a multiple of 8 (recomputing part of its neighbour,
    storing only its own lanes), and a row thinner than 8 reads past its end (into the next
    row or the buffer's slack) into lanes it never stores.  Output channels past O likewise:
    the last block moves back to O − MR and stores only its own."""
    name = f"conv_direct{'_flip' if flip else ''}_m{mr}"
    ms, vs = range(mr), range(nv)
    lines = [
        f"__kernel void {name}(__global const float *xp, __global const float *W,",
        "    __global const float *bias, __global float *out, const int I, const int Hp,",
        "    const int Wp, const int O, const int OH, const int OW, const int nvec,",
        "    const int units, const int wso, const int wsi, const int epilogue, const int acc)",
        "{",
        f"    const int u0 = (int)get_global_id(0) * {nv}, o0r = (int)get_global_id(1) * {mr};",
        "    if (u0 >= units || o0r >= O) return;",
        f"    const int o0 = min(o0r, O - {mr});",
        "    const size_t plane = (size_t)Hp * Wp;"]
    for v in vs:
        lines += [
            f"    int own{v}, ow{v}, oh{v}, b{v};",
            f"    {{ const int u = min(u0 + {v}, units - 1), j = u % nvec, t = u / nvec;",
            f"      oh{v} = t % OH; b{v} = t / OH; own{v} = j * 8;",
            f"      ow{v} = OW >= 8 ? min(own{v}, OW - 8) : 0; }}",
            f"    const __global float *x{v} = xp + ((size_t)b{v} * I * Hp + oh{v}) * Wp + ow{v};"]
    lines += [f"    const __global float *w{m} = W + (o0 + {m}) * wso;" for m in ms]
    lines.append("    float8 " + ", ".join(f"a{m}_{v} = 0.0f" for m in ms for v in vs) + ";")
    lines.append("    for (int i = 0; i < I; ++i) {")
    for kh in range(k):
        lines.append("        { " + " ".join(
            f"const __global float *r{v} = x{v} + {kh} * Wp;" for v in vs))
        for kw in range(k):
            tap = (k - 1 - kh) * k + (k - 1 - kw) if flip else kh * k + kw
            loads = " ".join(f"const float8 v{v} = LD8(r{v} + {kw});" for v in vs)
            fmas = " ".join(f"{{ const float s = w{m}[{tap}]; " +
                            " ".join(f"a{m}_{v} = s * v{v} + a{m}_{v};" for v in vs) + " }"
                            for m in ms)
            lines.append(f"            {{ {loads} {fmas} }}")
        lines.append("        }")
    lines.append("        " + " ".join(f"x{v} += plane;" for v in vs) + " " +
                 " ".join(f"w{m} += wsi;" for m in ms))
    lines.append("    }")
    for v in vs:
        lines.append(f"    if (u0 + {v} < units) {{")
        lines.append(f"        const bool whole = ow{v} == own{v} && ow{v} + 8 <= OW;")
        for m in ms:
            lanes = " ".join(
                f"if (ow{v} + {l} >= own{v} && ow{v} + {l} < OW) "
                f"dst[{l}] = acc ? dst[{l}] + r.s{LANES[l]} : r.s{LANES[l]};" for l in range(8))
            lines += [
                f"        if (o0 + {m} >= o0r) {{",
                f"            __global float *dst = out + (((size_t)b{v} * O + o0 + {m}) * OH"
                f" + oh{v}) * OW + ow{v};",
                f"            float8 r = a{m}_{v};",
                f"            if (epilogue & 1) r += bias[o0 + {m}];",
                f"            if (epilogue & {EPILOGUE_RELU}) r = select((float8)(0.0f), r, r > 0.0f);",
                "            if (whole) ST8(dst, acc ? LD8(dst) + r : r);",
                f"            else {{ {lanes} }}",
                "        }"]
        lines.append("    }")
    lines.append("}")
    return "\n".join(lines)



def _dw_taps(ms, ws, load: str, lane: str) -> list[str]:
    """One line per tap w of the dW kernel's inner loop: load x (``load`` with {w}) once and
    add g_m·x into every filter m's accumulator (``lane``: ".s0" in the scalar tail)."""
    return [f"                {{ {load.format(w=w)} "
            + " ".join(f"a{m}_{w}{lane} = g{m} * x + a{m}_{w}{lane};" for m in ms) + " }"
            for w in ws]

def _render_dw_kernel(k: int, mw: int) -> str:
    """part[chunk, f, i, kh, kw] = Σ_{b in chunk, oh, ow} dy[b, f, oh, ow] · xp[b, i, oh+kh, ow+kw]:
    one work-item per (i·k + kh, block of mw filters, chunk of images), k·mw float8
    accumulators along ow, a scalar tail added into lane 0.  A chunk's dy and xp stay in the
    core's cache for every work-item of that chunk (the chunk is the slowest grid dimension).
    A last filter block past F moves back inside, storing only its own."""
    ms, ws = range(mw), range(k)
    lines = [
        f"__kernel void conv_dw_m{mw}(__global const float *xp, __global const float *dy,",
        "    __global float *part, const int I, const int Hp, const int Wp, const int O,",
        "    const int OH, const int OW, const int B, const int chunk)",
        "{",
        f"    const int ik = get_global_id(0), f0r = get_global_id(1) * {mw};",
        f"    const int b0 = get_global_id(2) * chunk;",
        f"    if (ik >= I * {k} || f0r >= O || b0 >= B) return;",
        f"    const int kh = ik % {k}, i = ik / {k}, b1 = min(B, b0 + chunk);",
        f"    const int f0 = min(f0r, O - {mw});",
        "    float8 " + ", ".join(f"a{m}_{w} = 0.0f" for m in ms for w in ws) + ";",
        "    for (int bb = b0; bb < b1; ++bb) {",
        "        const __global float *xr = xp + (((size_t)bb * I + i) * Hp + kh) * Wp;",
        *(f"        const __global float *d{m} = dy + ((size_t)bb * O + f0 + {m}) * OH * OW;"
          for m in ms),
        "        for (int oh = 0; oh < OH; ++oh) {",
        "            int ow = 0;",
        "            for (; ow + 8 <= OW; ow += 8) {",
        "                " + " ".join(f"const float8 g{m} = LD8(d{m} + ow);" for m in ms),
        *_dw_taps(ms, ws, "const float8 x = LD8(xr + ow + {w});", ""),
        "            }",
        "            for (; ow < OW; ++ow) {",
        "                " + " ".join(f"const float g{m} = d{m}[ow];" for m in ms),
        *_dw_taps(ms, ws, "const float x = xr[ow + {w}];", ".s0"),
        "            }",
        "            xr += Wp; " + " ".join(f"d{m} += OW;" for m in ms),
        "        }",
        "    }",
        f"    __global float *o = part + (size_t)get_global_id(2) * O * I * {k * k};"]
    for m in ms:
        lines.append(f"    if (f0 + {m} >= f0r) {{")
        lines.append(f"        __global float *q = o + ((size_t)(f0 + {m}) * I + i) * {k * k}"
                     f" + kh * {k};")
        for w in ws:
            lines.append(f"        {{ const float4 h = a{m}_{w}.lo + a{m}_{w}.hi; "
                         f"q[{w}] = (h.x + h.y) + (h.z + h.w); }}")
        lines.append("    }")
    lines.append("}")
    return "\n".join(lines)


# ---- im2col ---------------------------------------------------------------------------------

def _col(em: Emitter, layer, d) -> str:
    name = f"train:col:{layer.name}" if em.prefix == "train" else f"{em.prefix}:conv:col"
    return em.declare(name, d["rows"] * d["N"])


def _scratch(em: Emitter, d) -> str:
    return em.declare(f"{em.prefix}:conv:yp", d["F"] * d["N"])


def _shape_args(d):
    return tuple(i(d[k]) for k in ("C", "H", "W", "K", "S", "P", "OH", "OW", "N"))


def _im2col_forward(em: Emitter, layer, d):
    col, yp = _col(em, layer, d), _scratch(em, d)
    total = em.batch * layer.out.size
    y = em.declare(em.act(layer.name), total)
    em.launch("conv", "im2col", (em.batch * d["OH"], d["rows"]),
              (b(em.source(layer, 0)), b(col), *_shape_args(d), i(d["rows"])), layer.name,
              local=(16, 1))
    em.gemm(layer.name, m=d["F"], n=d["N"], k=d["rows"], a=em.param(layer, "w"), b=col, c=yp)
    has_bias = bool(layer.attrs["bias"])
    bias = em.param(layer, "b") if has_bias else em.declare("dummy", 16)
    em.launch("conv", "conv_to_nchw", (d["F"], em.batch),
              (b(yp), b(bias), b(y), i(d["F"]), i(d["OH"] * d["OW"]), i(d["N"]), i(em.batch),
               i(int(has_bias))), layer.name, local=(1, 8))


def _im2col_backward(em: Emitter, layer, t: BackwardTargets, d):
    col, dyp = _col(em, layer, d), _scratch(em, d)
    hw = d["OH"] * d["OW"]
    em.launch("conv", "conv_from_nchw", (d["F"], em.batch),
              (b(em.grad(layer.name)), b(dyp), i(d["F"]), i(hw), i(d["N"]), i(em.batch)),
              layer.name, local=(1, 8))
    if layer.attrs["bias"]:
        acc = t.dparam_accumulate[f"{layer.name}.b"]
        em.launch("conv", "row_sum", d["F"], (b(dyp), b(em.pgrad(layer, "b")), i(d["F"]),
                                              i(d["N"]), i(int(acc))), layer.name, local=8)
    beta = 1.0 if t.dparam_accumulate[f"{layer.name}.w"] else 0.0
    em.gemm(layer.name, m=d["F"], n=d["rows"], k=d["N"], a=dyp, b=col, trans_b=True,
            c=em.pgrad(layer, "w"), beta=beta)
    if not t.dx[0]:
        return
    # col is no longer needed: it receives dcol = Wᵀ·dY'
    em.gemm(layer.name, m=d["rows"], n=d["N"], k=d["F"], a=em.param(layer, "w"), trans_a=True,
            b=dyp, c=col)
    nrows = em.batch * d["C"] * d["H"]          # one work-item per input row
    em.launch("conv", "col2im", nrows,
              (b(col), b(em.source_grad(layer, 0)), *_shape_args(d), i(nrows),
               i(int(t.dx_accumulate[0]))), layer.name, local=8)


attach_lowering("conv", forward, backward)
