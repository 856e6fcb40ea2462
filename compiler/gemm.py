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

from dataclasses import dataclass

from singa_dsl.runtime.plan_types import BufferDecl, Launch, ProgramDecl

BUILD_OPTIONS = ("-cl-mad-enable",)
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
DEFAULT_TILES = {"outer": GemmTile(6, 16, 8, 4, 4), "dot": GemmTile(4, 3, 8, 4, 4)}


@dataclass(frozen=True)
class GemmSpec:
    """Which kernel: transposes, bias epilogue and tile; one program per spec."""
    trans_a: bool = False
    trans_b: bool = False
    bias: bool = False
    tile: GemmTile | None = None

    @property
    def variant(self) -> str:
        return ("t" if self.trans_a else "n") + ("t" if self.trans_b else "n")

    @property
    def family(self) -> str:
        return "dot" if self.variant == "nt" else "outer"

    @property
    def resolved_tile(self) -> GemmTile:
        tile = self.tile or DEFAULT_TILES[self.family]
        if self.family == "outer" and tile.nr % tile.vw:
            raise ValueError(f"GemmTile {tile}: nr must be a multiple of vw for {self.variant}")
        return tile

    @property
    def kernel_name(self) -> str:
        return f"sgemm_{self.variant}" + ("_bias" if self.bias else "")

    @property
    def program_name(self) -> str:
        return f"{self.kernel_name}_{self.resolved_tile.label}"


@dataclass(frozen=True)
class GemmEmit:
    """What an op adds to its plan for one GEMM: programs (dedupe by name), launches, and
    scratch buffers (the same name may come from several GEMMs: keep the largest)."""
    programs: tuple[ProgramDecl, ...]
    launches: tuple[Launch, ...]
    buffers: tuple[BufferDecl, ...] = ()


def gemm_program(spec: GemmSpec, origin: str = "") -> ProgramDecl:
    return ProgramDecl(spec.program_name, render_gemm(spec), BUILD_OPTIONS,
                       origin or f"sgemm {spec.variant}")


def gemm_launch(*, m: int, n: int, k: int, a: str, b: str, c: str,
                trans_a: bool = False, trans_b: bool = False,
                alpha: float = 1.0, beta: float = 0.0, bias: str | None = None,
                lda: int | None = None, ldb: int | None = None, ldc: int | None = None,
                a_offset: int = 0, b_offset: int = 0, c_offset: int = 0, bias_offset: int = 0,
                tile: GemmTile | None = None, tag: str = "", origin: str = "") -> GemmEmit:
    """C[m,n] = alpha·op(A)·op(B) + beta·C (+ bias[n]) on buffers named a, b, c (, bias).

    op(A) is m×k: A is stored m×k, or k×m when trans_a; op(B) is k×n: B is stored k×n, or
    n×k when trans_b.  Leading dims default to the stored row length; offsets are in
    elements.  beta == 0 never reads C, so C may hold garbage.
    """
    if min(m, n, k) < 0:
        raise ValueError(f"gemm: negative size m={m} n={n} k={k}")
    lda = lda if lda is not None else (m if trans_a else k)
    ldb = ldb if ldb is not None else (k if trans_b else n)
    ldc = ldc if ldc is not None else n
    spec = GemmSpec(trans_a, trans_b, bias is not None, tile)
    program = gemm_program(spec, origin)
    if m == 0 or n == 0:
        return GemmEmit((program,), ())
    args = (("int", m), ("int", n), ("int", k), ("float", float(alpha)),
            ("buf", a), ("int", a_offset), ("int", lda),
            ("buf", b), ("int", b_offset), ("int", ldb),
            ("float", float(beta)), ("buf", c), ("int", c_offset), ("int", ldc))
    if bias is not None:
        args += (("buf", bias), ("int", bias_offset))
    gsize, lsize = _grid(spec, m, n)
    return GemmEmit((program,), (Launch(program.name, spec.kernel_name, gsize, lsize, args,
                                        tag),))


def _grid(spec: GemmSpec, m: int, n: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """Work-items cover the blocks of the computed matrix (Cᵀ for TT), padded to groups."""
    t = spec.resolved_tile
    rows, cols = (n, m) if spec.variant == "tt" else (m, n)
    bx, by = -(-cols // t.nr), -(-rows // t.mr)
    return (_round_up(bx, t.lx), _round_up(by, t.ly)), (t.lx, t.ly)


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
    t, roles = spec.resolved_tile, _ROLES[spec.variant]
    body = _dot_body(spec, t, roles) if spec.family == "dot" else _outer_body(spec, t, roles)
    return "\n".join([_header(spec, t), _signature(spec), "{", _prologue(spec, t, roles),
                      *body, "}", ""])


def _header(spec: GemmSpec, t: GemmTile) -> str:
    w = t.vw
    lines = [f"// singa_dsl sgemm {spec.variant}{' + bias' if spec.bias else ''}, "
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


def _store_scalar(spec: GemmSpec, ro: _Roles, p: str, q: str, value: str) -> str:
    idx = ro.c_index(p, q)
    bias = f" o += bias[{p if ro.bias_on_p else q}];" if spec.bias else ""
    return (f"{{ float o = alpha * {value}; if (beta != 0.0f) o = beta * C[{idx}] + o;"
            f"{bias} C[{idx}] = o; }}")


def _outer_body(spec: GemmSpec, t: GemmTile, ro: _Roles) -> list[str]:
    w, nv = t.vw, t.nr // t.vw
    rows, vecs = range(t.mr), range(nv)
    out = [f"    float{w} " + ", ".join(f"acc{r}_{v} = 0.0f" for r in rows for v in vecs) + ";",
           f"    const __global float *rp = {ro.R} + q0;"]
    if ro.l_kmajor:
        out.append(f"    const __global float *lp = {ro.L} + p0;")
    else:
        out += [f"    const __global float *l{r} = {ro.L} + (p0 + {r}) * {ro.ldl};" for r in rows]
    out += ["    for (int k = 0; k < K; ++k) {",
            "        " + " ".join(f"const float{w} r{v} = LOADV(rp + {v * w});" for v in vecs),
            f"        rp += {ro.ldr};"]
    for r in rows:
        load = f"lp[{r}]" if ro.l_kmajor else f"l{r}[k]"
        fmas = " ".join(f"acc{r}_{v} = l * r{v} + acc{r}_{v};" for v in vecs)
        out.append(f"        {{ const float l = {load}; {fmas} }}")
    if ro.l_kmajor:
        out.append(f"        lp += {ro.ldl};")
    out.append("    }")
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
