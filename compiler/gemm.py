"""Single-precision GEMM for OpenCL: C = alpha·op(A)·op(B) + beta·C (+ bias along N).

Row-major operands with leading dimensions and element offsets passed as int arguments,
so one built kernel serves every call of its variant.  The kernels are CPU-style
micro-kernels (see /work/shared/POCL-NOTES.md): each work-item keeps an MR×NR block of C
in vector registers, with no local memory and no barriers, and loads through
`__global floatW *` casts with plain `a * b + c` (PoCL does not inline fma()/vloadn()).

Two families, picked by the operands' layouts:

    variant  A stored  B stored  family  how
    NN       M×K       K×N       outer   broadcast A[i,k] × vector B[k, j..j+NR]
    TN       K×M       K×N       outer   same, A's MR scalars are contiguous
    TT       K×M       N×K       outer   computes Cᵀ = B·A (A's rows are vectors),
                                         stores transposed
    NT       M×K       N×K       dot     vectors along K, MR×NR dot products, lane sums

A block that hangs over the edge of C is moved back inside and recomputes part of its
neighbour, storing only its own elements, so odd sizes stay vectorized; only a C smaller
than one block takes the scalar path.  Tile sizes are render-time constants (GemmTile) so
an autotuner can choose them per device.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from singa_dsl.runtime.plan_types import BufferDecl, Launch, ProgramDecl

BUILD_OPTIONS = ("-cl-mad-enable",)
PACK_MIN_M = 128      # rows of A that must share a packed panel for the copy to pay
PACK_K = 64           # rows of op(B) one pack work-item copies
PACK_GROUP = 8        # pack work-group size (panels per group)
LANES = "0123456789abcdef"


@dataclass(frozen=True)
class GemmTile:
    """Per-work-item register block and work-group shape.

    outer family: mr rows × nr columns of C, nr a multiple of the vector width vw.
    dot family: mr × nr dot products, each a floatVW accumulator along K.
    lx, ly: work-items per work-group along columns (fastest in PoCL's loops) and rows.
    """
    mr: int
    nr: int
    vw: int
    lx: int = 4
    ly: int = 4

    def __post_init__(self):
        if self.vw not in (2, 4, 8, 16):
            raise ValueError(f"GemmTile: vector width {self.vw} is not 2, 4, 8 or 16")
        if min(self.mr, self.nr, self.lx, self.ly) < 1:
            raise ValueError(f"GemmTile: sizes must be positive, got {self}")

    @property
    def label(self) -> str:
        return f"{self.mr}x{self.nr}v{self.vw}"


# Chosen by benchmarks/bench_sgemm.py on a 2-core AVX2 EPYC (16 vector registers).
DEFAULT_TILES = {"outer": GemmTile(6, 16, 8, 4, 4), "dot": GemmTile(4, 3, 8, 4, 4),
                 "packed": GemmTile(6, 16, 8, 4, 4)}


@dataclass(frozen=True)
class GemmSpec:
    """Which kernel: transposes, bias epilogue, packing and tile; one program per spec."""
    trans_a: bool = False
    trans_b: bool = False
    bias: bool = False
    packed: bool = False
    tile: GemmTile | None = None

    @property
    def variant(self) -> str:
        return ("t" if self.trans_a else "n") + ("t" if self.trans_b else "n")

    @property
    def family(self) -> str:
        if self.packed:
            return "packed"
        return "dot" if self.variant == "nt" else "outer"

    @property
    def resolved_tile(self) -> GemmTile:
        tile = self.tile or DEFAULT_TILES[self.family]
        if self.family != "dot" and tile.nr % tile.vw:
            raise ValueError(f"GemmTile {tile}: nr must be a multiple of vw for "
                             f"the {self.family} family")
        return tile

    @property
    def kernel_name(self) -> str:
        return f"sgemm_{self.variant}" + ("_packed" if self.packed else "") + \
            ("_bias" if self.bias else "")

    @property
    def pack_kernels(self) -> tuple[tuple[str, int, bool], tuple[str, int, bool]]:
        """(name, panel width, source is K-major) of the kernels packing op(A) and op(B)."""
        t = self.resolved_tile
        return _pack_kernel_id(t.mr, self.trans_a), _pack_kernel_id(t.nr, not self.trans_b)

    @property
    def program_name(self) -> str:
        return f"{self.kernel_name}_{self.resolved_tile.label}"


@dataclass(frozen=True)
class GemmEmit:
    """What an op adds to its plan for one GEMM: programs (dedupe by name), launches in
    order, and scratch buffers (GEMMs share one by name: merge with `largest_buffers`)."""
    programs: tuple[ProgramDecl, ...]
    launches: tuple[Launch, ...]
    buffers: tuple[BufferDecl, ...] = ()


def _pack_kernel_id(width: int, kmajor: bool) -> tuple[str, int, bool]:
    return f"sgemm_pack_{'km' if kmajor else 'rk'}{width}", width, kmajor


def gemm_program(spec: GemmSpec, origin: str = "") -> ProgramDecl:
    return ProgramDecl(spec.program_name, render_gemm(spec), BUILD_OPTIONS,
                       origin or f"sgemm {spec.variant}")


def gemm_launch(*, m: int, n: int, k: int, a: str, b: str, c: str,
                trans_a: bool = False, trans_b: bool = False,
                alpha: float = 1.0, beta: float = 0.0, bias: str | None = None,
                lda: int | None = None, ldb: int | None = None, ldc: int | None = None,
                a_offset: int = 0, b_offset: int = 0, c_offset: int = 0, bias_offset: int = 0,
                tile: GemmTile | None = None, pack: bool | None = None,
                scratch: str = "gemm_scratch", tag: str = "", origin: str = "") -> GemmEmit:
    """C[m,n] = alpha·op(A)·op(B) + beta·C (+ bias[n]) on buffers named a, b, c (, bias).

    op(A) is m×k: A is stored m×k, or k×m when trans_a; op(B) is k×n: B is stored k×n, or
    n×k when trans_b.  Leading dims default to the stored row length; offsets are in
    elements.  beta == 0 never reads C, so C may hold garbage.  `pack` copies op(B) into
    the `scratch` buffer as contiguous panels first (None: decide by shape); `tile`
    overrides the device default and is shrunk to fit small matrices.
    """
    if min(m, n, k) < 0:
        raise ValueError(f"gemm: negative size m={m} n={n} k={k}")
    lda = lda if lda is not None else (m if trans_a else k)
    ldb = ldb if ldb is not None else (k if trans_b else n)
    ldc = ldc if ldc is not None else n
    packed = should_pack(m, n, k, trans_b, ldb) if pack is None else pack
    probe = GemmSpec(trans_a, trans_b, bias is not None, packed, tile)
    spec = replace(probe, tile=fit_tile(probe, m, n))
    program = gemm_program(spec, origin)
    if m == 0 or n == 0:
        return GemmEmit((program,), ())
    t = spec.resolved_tile
    a_args = (("buf", a), ("int", a_offset), ("int", lda))
    b_args = (("buf", b), ("int", b_offset), ("int", ldb))
    launches: tuple[Launch, ...] = ()
    buffers: tuple[BufferDecl, ...] = ()
    if packed:
        a_len, b_len = _round_up(m, t.mr) * k, _round_up(n, t.nr) * k
        buffers = (BufferDecl(scratch, max(a_len + b_len, 1) * 4),)
        (pack_a, _, _), (pack_b, _, _) = spec.pack_kernels
        launches = (
            Launch(program.name, pack_a, _pack_grid(m, t.mr, k), (PACK_GROUP, 1),
                   (("int", m), ("int", k), *a_args, ("buf", scratch), ("int", 0)), tag),
            Launch(program.name, pack_b, _pack_grid(n, t.nr, k), (PACK_GROUP, 1),
                   (("int", n), ("int", k), *b_args, ("buf", scratch), ("int", a_len)), tag))
        a_args = (("buf", scratch), ("int", 0), ("int", t.mr))
        b_args = (("buf", scratch), ("int", a_len), ("int", t.nr))
    args = (("int", m), ("int", n), ("int", k), ("float", float(alpha)),
            *a_args, *b_args,
            ("float", float(beta)), ("buf", c), ("int", c_offset), ("int", ldc))
    if bias is not None:
        args += (("buf", bias), ("int", bias_offset))
    gsize, lsize = _grid(spec, m, n)
    launches += (Launch(program.name, spec.kernel_name, gsize, lsize, args, tag),)
    return GemmEmit((program,), launches, buffers)


def should_pack(m: int, n: int, k: int, trans_b: bool, ldb: int) -> bool:
    """Pack op(B) when it is reused by enough rows of A to repay the copy."""
    return m >= PACK_MIN_M and k >= 16


def fit_tile(spec: GemmSpec, m: int, n: int) -> GemmTile:
    """Shrink a tile that is larger than the matrix, so small GEMMs stay vectorized."""
    tile = spec.resolved_tile
    rows, cols = (n, m) if spec.family == "outer" and spec.variant == "tt" else (m, n)
    mr = max(1, min(tile.mr, rows))
    if spec.family == "dot":
        return replace(tile, mr=mr, nr=max(1, min(tile.nr, cols)))
    if spec.family == "packed" or cols >= tile.nr:
        return replace(tile, mr=mr)
    vw = next((w for w in (16, 8, 4, 2) if w <= min(tile.vw, cols)), None)
    if vw is None:                # a single column: the kernel's scalar path
        return replace(tile, mr=mr)
    return replace(tile, mr=mr, nr=vw * min(tile.nr // tile.vw, cols // vw), vw=vw)


def largest_buffers(decls) -> tuple[BufferDecl, ...]:
    """Merge scratch declarations that share a name, keeping the largest."""
    out: dict[str, BufferDecl] = {}
    for d in decls:
        if d.name not in out or d.nbytes > out[d.name].nbytes:
            out[d.name] = d
    return tuple(out.values())


def _grid(spec: GemmSpec, m: int, n: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """Work-items cover the blocks of the computed matrix (Cᵀ for TT), padded to groups."""
    t = spec.resolved_tile
    rows, cols = (n, m) if spec.family == "outer" and spec.variant == "tt" else (m, n)
    bx, by = -(-cols // t.nr), -(-rows // t.mr)
    return (_round_up(bx, t.lx), _round_up(by, t.ly)), (t.lx, t.ly)


def _pack_grid(rows: int, width: int, k: int) -> tuple[int, int]:
    return _round_up(-(-rows // width), PACK_GROUP), -(-max(k, 1) // PACK_K)


def _round_up(x: int, step: int) -> int:
    return -(-x // step) * step


# ---- rendering ------------------------------------------------------------------------
# The micro-kernels are unrolled here, in Python, into named scalar/vector variables: PoCL
# keeps those in registers, where a private array indexed in a loop might not be.

@dataclass(frozen=True)
class _Roles:
    """The kernel computes O[P,Q] = sum_k L[p,k]·R[k,q] and maps O, L, R onto C, A, B."""
    P: str
    Q: str
    L: str
    ldl: str
    l_kmajor: bool      # L[p,k] stored at k*ldl + p (else p*ldl + k)
    R: str
    ldr: str            # outer: R[k,q] at k*ldr + q;  dot: R[k,q] at q*ldr + k
    c_trans: bool       # O[p,q] goes to C[q*ldc + p]
    bias_on_p: bool

    def l_at(self, p: str, k: str) -> str:
        return f"{self.L}[({k})*{self.ldl} + ({p})]" if self.l_kmajor \
            else f"{self.L}[({p})*{self.ldl} + ({k})]"

    def r_at(self, k: str, q: str, dot: bool) -> str:
        return f"{self.R}[({q})*{self.ldr} + ({k})]" if dot \
            else f"{self.R}[({k})*{self.ldr} + ({q})]"

    def c_index(self, p: str, q: str) -> str:
        return f"({q})*ldc + ({p})" if self.c_trans else f"({p})*ldc + ({q})"


_ROLES = {
    "nn": _Roles("M", "N", "A", "lda", False, "B", "ldb", False, False),
    "tn": _Roles("M", "N", "A", "lda", True, "B", "ldb", False, False),
    "tt": _Roles("N", "M", "B", "ldb", False, "A", "lda", True, True),
    "nt": _Roles("M", "N", "A", "lda", False, "B", "ldb", False, False),
}


def render_gemm(spec: GemmSpec) -> str:
    """The OpenCL source of one GEMM variant (deterministic: it is PoCL's cache key)."""
    t = spec.resolved_tile
    if spec.family == "packed":
        roles = _Roles("M", "N", "A", str(t.mr), True, "B", str(t.nr), False, False)
        packs = [_pack_kernel(*ident) for ident in dict.fromkeys(spec.pack_kernels)]
        return "\n".join([_header(spec, t), *packs, _signature(spec), "{",
                          _packed_prologue(spec, t), *_outer_body(spec, t, roles), "}", ""])
    roles = _ROLES[spec.variant]
    body = _dot_body(spec, t, roles) if spec.family == "dot" else _outer_body(spec, t, roles)
    return "\n".join([_header(spec, t), _signature(spec), "{", _prologue(spec, t, roles),
                      *body, "}", ""])


def _header(spec: GemmSpec, t: GemmTile) -> str:
    w = t.vw
    lines = [f"// singa_dsl sgemm {spec.variant}{' packed' if spec.packed else ''}"
             f"{' + bias' if spec.bias else ''}, "
             f"tile {t.label}; rendered by singa_dsl.compiler.gemm",
             "// Vector types with 4-byte alignment: rows start at any float offset.",
             f"typedef float{w} vecw_u __attribute__((aligned(4)));",
             f"#define LOADV(p) (*(__global const vecw_u *)(p))",
             f"#define STOREV(p, v) (*(__global vecw_u *)(p) = (v))"]
    if spec.family == "dot":
        lines += [f"inline float hsum(float{w} v)", "{"]
        width, name = w, "v"
        while width > 2:
            width //= 2
            lines.append(f"    const float{width} h{width} = {name}.lo + {name}.hi;")
            name = f"h{width}"
        lines += [f"    return {name}.x + {name}.y;", "}"]
    return "\n".join(lines)


def _signature(spec: GemmSpec) -> str:
    bias = ",\n    __global const float *bias, const int bias_off" if spec.bias else ""
    return (f"__kernel void {spec.kernel_name}(const int M, const int N, const int K, "
            "const float alpha,\n"
            "    __global const float *A, const int a_off, const int lda,\n"
            "    __global const float *B, const int b_off, const int ldb,\n"
            f"    const float beta, __global float *C, const int c_off, const int ldc{bias})")


def _prologue(spec: GemmSpec, t: GemmTile, ro: _Roles) -> str:
    dot = spec.family == "dot"
    scalar = _store_scalar(spec, ro, "p", "q", "s")
    return f"""    A += a_off; B += b_off; C += c_off;{' bias += bias_off;' if spec.bias else ''}
    const int P = {ro.P}, Q = {ro.Q};
    const int tp = (int)get_global_id(1) * {t.mr}, tq = (int)get_global_id(0) * {t.nr};
    if (tp >= P || tq >= Q) return;
    if (P < {t.mr} || Q < {t.nr}) {{   /* C smaller than one block: plain loops */
        for (int p = tp; p < min(P, tp + {t.mr}); ++p)
            for (int q = tq; q < min(Q, tq + {t.nr}); ++q) {{
                float s = 0.0f;
                for (int k = 0; k < K; ++k) s = {ro.l_at('p', 'k')} * {ro.r_at('k', 'q', dot)} + s;
                {scalar}
            }}
        return;
    }}
    /* A block over the edge moves back inside; it stores only its own elements. */
    const int p0 = min(tp, P - {t.mr}), q0 = min(tq, Q - {t.nr});"""


def _packed_prologue(spec: GemmSpec, t: GemmTile) -> str:
    return f"""    A += a_off; B += b_off; C += c_off;{' bias += bias_off;' if spec.bias else ''}
    const int P = M, Q = N;
    const int tp = (int)get_global_id(1) * {t.mr}, tq = (int)get_global_id(0) * {t.nr};
    if (tp >= P || tq >= Q) return;
    /* this block's panels of op(A) and op(B): K-major, zero-padded past the edges */
    A += (int)get_global_id(1) * K * {t.mr};
    B += (int)get_global_id(0) * K * {t.nr};
    const int p0 = tp, q0 = tq;"""


def _pack_kernel(name: str, width: int, kmajor: bool) -> str:
    """Copies rows [i0, i0+width) of X (X[i,k] at k*ldx+i if kmajor, else i*ldx+k) into a
    K-major panel out[k*width + c]; rows past R are zeros."""
    if kmajor:
        full = f"""for (int k = k0; k < k1; ++k) {{
            const __global float *src = X + k * ldx + i0;
            for (int c = 0; c < {width}; ++c) out[k * {width} + c] = src[c];
        }}"""
        elem = "X[k * ldx + i0 + c]"
    else:
        full = f"""for (int c = 0; c < {width}; ++c) {{
            const __global float *src = X + (i0 + c) * ldx;
            for (int k = k0; k < k1; ++k) out[k * {width} + c] = src[k];
        }}"""
        elem = "X[(i0 + c) * ldx + k]"
    return f"""__kernel void {name}(const int R, const int K,
    __global const float *X, const int x_off, const int ldx,
    __global float *out, const int out_off)
{{
    const int i0 = (int)get_global_id(0) * {width}, k0 = (int)get_global_id(1) * {PACK_K};
    if (i0 >= R || k0 >= K) return;
    X += x_off;
    out += out_off + (int)get_global_id(0) * K * {width};
    const int k1 = min(K, k0 + {PACK_K});
    if (i0 + {width} <= R) {{
        {full}
    }} else {{
        for (int k = k0; k < k1; ++k)
            for (int c = 0; c < {width}; ++c) out[k * {width} + c] = i0 + c < R ? {elem} : 0.0f;
    }}
}}"""


def _store_scalar(spec: GemmSpec, ro: _Roles, p: str, q: str, value: str) -> str:
    idx = ro.c_index(p, q)
    bias = f" o += bias[{p if ro.bias_on_p else q}];" if spec.bias else ""
    return (f"{{ float o = alpha * {value}; if (beta != 0.0f) o = beta * C[{idx}] + o;"
            f"{bias} C[{idx}] = o; }}")


def _outer_body(spec: GemmSpec, t: GemmTile, ro: _Roles) -> list[str]:
    w, nv = t.vw, t.nr // t.vw
    rows, vecs = range(t.mr), range(nv)
    out = [f"    float{w} " + ", ".join(f"acc{r}_{v} = 0.0f" for r in rows for v in vecs) + ";",
           f"    const __global float *rp = {'B' if spec.packed else ro.R + ' + q0'};"]
    if ro.l_kmajor:
        out.append(f"    const __global float *lp = {'A' if spec.packed else ro.L + ' + p0'};")
    else:
        out += [f"    const __global float *l{r} = {ro.L} + (p0 + {r}) * {ro.ldl};" for r in rows]
    out += ["    for (int k = 0; k < K; ++k) {",
            "        " + " ".join(f"const float{w} r{v} = LOADV(rp + {v * w});" for v in vecs),
            f"        rp += {t.nr if spec.packed else ro.ldr};"]
    for r in rows:
        load = f"lp[{r}]" if ro.l_kmajor else f"l{r}[k]"
        fmas = " ".join(f"acc{r}_{v} = l * r{v} + acc{r}_{v};" for v in vecs)
        out.append(f"        {{ const float l = {load}; {fmas} }}")
    if ro.l_kmajor:
        out.append(f"        lp += {ro.ldl};")
    out.append("    }")
    if spec.packed:
        return out + _packed_store(spec, t, ro)
    return out + (_outer_store_transposed(spec, t, ro) if ro.c_trans
                  else _outer_store(spec, t, ro))


def _outer_vec_result(spec: GemmSpec, r: int, v: int, w: int, ptr: str) -> str:
    bias = f" o += LOADV(bias + q0 + {v * w});" if spec.bias else ""
    return (f"float{w} o = alpha * acc{r}_{v}; "
            f"if (beta != 0.0f) o = beta * LOADV({ptr}) + o;{bias}")


def _outer_store(spec: GemmSpec, t: GemmTile, ro: _Roles) -> list[str]:
    w, nv = t.vw, t.nr // t.vw
    full, edge = [], []
    for r in range(t.mr):
        full.append(f"        {{ __global float *c = C + (p0 + {r}) * ldc + q0;")
        edge.append(f"        if (p0 + {r} >= tp) {{ __global float *c = C + (p0 + {r}) * ldc + q0;")
        for v in range(nv):
            res = _outer_vec_result(spec, r, v, w, f"c + {v * w}")
            full.append(f"            {{ {res} STOREV(c + {v * w}, o); }}")
            lanes = " ".join(f"if (q0 + {v * w + i} >= tq) c[{v * w + i}] = o.s{LANES[i]};"
                             for i in range(w))
            edge.append(f"            {{ {res} {lanes} }}")
        full.append("        }")
        edge.append("        }")
    return ["    if (p0 == tp && q0 == tq) {", *full, "    } else {", *edge, "    }"]


def _packed_store(spec: GemmSpec, t: GemmTile, ro: _Roles) -> list[str]:
    """Whole blocks store vectors; a block over an edge stores lane by lane (no reads of
    C or bias past the matrix: the panels, not C, were padded)."""
    w, nv = t.vw, t.nr // t.vw
    full, edge = [], []
    for r in range(t.mr):
        full.append(f"        {{ __global float *c = C + (p0 + {r}) * ldc + q0;")
        for v in range(nv):
            res = _outer_vec_result(spec, r, v, w, f"c + {v * w}")
            full.append(f"            {{ {res} STOREV(c + {v * w}, o); }}")
        full.append("        }")
        edge.append(f"        if (p0 + {r} < P) {{ const int p = p0 + {r};")
        for v in range(nv):
            for i in range(w):
                store = _store_scalar(spec, ro, "p", "q", f"acc{r}_{v}.s{LANES[i]}")
                edge.append(f"            {{ const int q = q0 + {v * w + i}; if (q < Q) {store} }}")
        edge.append("        }")
    return [f"    if (p0 + {t.mr} <= P && q0 + {t.nr} <= Q) {{", *full, "    } else {", *edge,
            "    }"]


def _outer_store_transposed(spec: GemmSpec, t: GemmTile, ro: _Roles) -> list[str]:
    w, nv = t.vw, t.nr // t.vw
    out = []
    for r in range(t.mr):
        out.append(f"    if (p0 + {r} >= tp) {{ const int p = p0 + {r};")
        for v in range(nv):
            for i in range(w):
                store = _store_scalar(spec, ro, "p", "q", f"acc{r}_{v}.s{LANES[i]}")
                out.append(f"        {{ const int q = q0 + {v * w + i}; if (q >= tq) {store} }}")
        out.append("    }")
    return out


def _dot_body(spec: GemmSpec, t: GemmTile, ro: _Roles) -> list[str]:
    w = t.vw
    rows, cols = range(t.mr), range(t.nr)
    out = [f"    const __global float *a{r} = {ro.L} + (p0 + {r}) * {ro.ldl};" for r in rows]
    out += [f"    const __global float *b{c} = {ro.R} + (q0 + {c}) * {ro.ldr};" for c in cols]
    out += [f"    float{w} " + ", ".join(f"acc{r}_{c} = 0.0f" for r in rows for c in cols) + ";",
            "    int k = 0;",
            f"    for (; k + {w} <= K; k += {w}) {{",
            "        " + " ".join(f"const float{w} b{c}v = LOADV(b{c} + k);" for c in cols)]
    for r in rows:
        fmas = " ".join(f"acc{r}_{c} = av * b{c}v + acc{r}_{c};" for c in cols)
        out.append(f"        {{ const float{w} av = LOADV(a{r} + k); {fmas} }}")
    out += ["    }",
            "    float " + ", ".join(f"s{r}_{c} = hsum(acc{r}_{c})" for r in rows for c in cols)
            + ";",
            "    for (; k < K; ++k) {",
            "        " + " ".join(f"const float b{c}s = b{c}[k];" for c in cols)]
    for r in rows:
        fmas = " ".join(f"s{r}_{c} = as * b{c}s + s{r}_{c};" for c in cols)
        out.append(f"        {{ const float as = a{r}[k]; {fmas} }}")
    out.append("    }")
    for r in rows:
        for c in cols:
            store = _store_scalar(spec, ro, f"p0 + {r}", f"q0 + {c}", f"s{r}_{c}")
            out.append(f"    if (p0 + {r} >= tp && q0 + {c} >= tq) {store}")
    return out
