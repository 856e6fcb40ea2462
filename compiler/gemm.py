"""Single-precision GEMM for OpenCL: C = alpha·op(A)·op(B) + beta·C (+ bias along N).

Row-major operands with leading dimensions and element offsets passed as int arguments,
so one built kernel serves every call of its variant.  The kernels are CPU-style
micro-kernels (see /work/shared/POCL-NOTES.md): each work-item keeps an MR×NR block of C
in vector registers, with no local memory and no barriers, and loads through
`__global floatW *` casts with plain `a * b + c` (PoCL does not inline fma()/vloadn()).

Four kernel families (the first three for CPUs, the last for GPUs):

    family  used for                 how
    packed  big NN, TN, TT; NT with  two pack kernels copy op(A) and op(B) into K-major
            many rows                panels (zero-padded) in a scratch buffer, then the
                                     micro-kernel streams both contiguously: broadcast
                                     A[i,k] × vector B[k, j..j+NR].  k is cut into slices
                                     (one launch each) so the panels' slices stay in cache.
    outer   small NN, TN, TT         the same micro-kernel on the operands in place (TT
                                     computes Cᵀ = B·A and stores transposed); strided
                                     rows get a software prefetch
    dot     NT (A M×K, B N×K)        both operands are contiguous along k: vectors along
                                     k, MR×NR dot products, lane sums at the end
    tiled   every variant, on a      the classic GPU design (compiler/gemm_tiled.py): a
            device that is not a     work-group stages BK-deep tiles of op(A) and op(B)
            CPU                      in local memory between barriers, each work-item
                                     keeps an MR×NR block of C in registers

Packing pays because rows of B (and of a transposed A) are a page apart for consecutive
k, which the hardware prefetcher does not follow: on one core of the 2-core EPYC, 1024³ NN
ran at 17 GFLOP/s in place and 42 packed (pack kernels ~3% of that), same run.  In the direct families a block that hangs over the edge of C moves back inside and
recomputes part of its neighbour, storing only its own elements, so odd sizes stay
vectorized; only a C thinner than one vector takes the scalar path.  Tile sizes are
render-time constants (GemmTile) so an autotuner can choose them per device.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from singa_dsl.runtime.plan_types import BufferDecl, Launch, ProgramDecl

BUILD_OPTIONS = ("-cl-mad-enable",)
PACK_MIN_FLOP = 64 ** 3   # m·n·k below which packing costs more than it saves
PACK_K = 256          # values of k one pack work-item copies from rows contiguous in k
PACK_ROWS = 4         # rows one pack work-item copies from rows contiguous across C
PACK_GROUP = 8        # pack work-group size
TT_DIRECT_MAX_A = 1 << 18  # floats of A below which TT runs in place (A stays in L2)
K_CHUNK = 512         # packed GEMMs multiply k in slices of this many (cache blocking)
LANES = "0123456789abcdef"


@dataclass(frozen=True)
class GemmTile:
    """Per-work-item register block and work-group shape.

    outer family: mr rows × nr columns of C, nr a multiple of the vector width vw.
    dot family: mr × nr dot products, each a floatVW accumulator along K.
    lx, ly: work-items per work-group along columns (fastest in PoCL's loops) and rows.
    tiled family: mr × nr values of C a work-item, strided by ly and lx; bk values of k
    staged in local memory per step (vw and pf do not apply).
    """
    mr: int
    nr: int
    vw: int
    lx: int = 4
    ly: int = 4
    pf: int = 0     # software-prefetch distance in k for strided operand rows (0: none)
    bk: int = 16    # tiled family: depth in k of the local-memory tiles

    def __post_init__(self):
        if self.vw not in (2, 4, 8, 16):
            raise ValueError(f"GemmTile: vector width {self.vw} is not 2, 4, 8 or 16")
        if min(self.mr, self.nr, self.lx, self.ly, self.bk) < 1:
            raise ValueError(f"GemmTile: sizes must be positive, got {self}")

    @property
    def label(self) -> str:
        return f"{self.mr}x{self.nr}v{self.vw}" + (f"p{self.pf}" if self.pf else "")

    @property
    def tiled_label(self) -> str:
        """The tiled family's label: the work-group shape and bk are in its source."""
        return f"{self.mr}x{self.nr}w{self.lx}x{self.ly}k{self.bk}"


# Measured with benchmarks/bench_sgemm.py on a 2-core AVX2 EPYC (16 vector registers): the
# 6×16 block is 12 ymm accumulators + 2 B vectors + 1 broadcast, the classic AVX2 shape;
# an AVX-512 device would rather take 8×32 with vw=16 (32 zmm registers).
DEFAULT_TILES = {"outer": GemmTile(6, 16, 8, 4, 4, pf=16), "dot": GemmTile(4, 3, 8, 4, 4),
                 "packed": GemmTile(6, 16, 8, 4, 4)}
# The tiled family's default: 64×64 blocks of C, 256 work-items of 4×4 (16 accumulators, a
# small share of a GPU's registers, so several work-groups share a multiprocessor), k in
# steps of 16 (8.1 KiB of local memory).  Chosen from the classic designs, not measured here.
TILED_TILE = GemmTile(4, 4, 4, 16, 16, bk=16)


@dataclass(frozen=True)
class GemmSpec:
    """Which kernel: transposes, bias epilogue, packing or tiling, and tile; one program
    per spec."""
    trans_a: bool = False
    trans_b: bool = False
    bias: bool = False
    packed: bool = False
    tile: GemmTile | None = None
    act: str = ""          # an activation applied to what is stored (ACTIVATIONS), or none
    tiled: bool = False

    def __post_init__(self):
        if self.act and self.act not in ACTIVATIONS:
            raise ValueError(f"GemmSpec: no epilogue activation {self.act!r}")

    @property
    def variant(self) -> str:
        return ("t" if self.trans_a else "n") + ("t" if self.trans_b else "n")

    @property
    def family(self) -> str:
        if self.tiled:
            return "tiled"
        if self.packed:
            return "packed"
        return "dot" if self.variant == "nt" else "outer"

    @property
    def resolved_tile(self) -> GemmTile:
        if self.tiled:
            from .gemm_tiled import check_tile
            if self.packed:
                raise ValueError("GemmSpec: the tiled family does not pack")
            return check_tile(self.tile or TILED_TILE)
        tile = self.tile or DEFAULT_TILES[self.family]
        if self.family != "dot" and tile.nr % tile.vw:
            raise ValueError(f"GemmTile {tile}: nr must be a multiple of vw for "
                             f"the {self.family} family")
        return tile

    @property
    def kernel_name(self) -> str:
        return f"sgemm_{self.variant}" + ("_packed" if self.packed else "") + \
            ("_tiled" if self.tiled else "") + ("_bias" if self.bias else "") + \
            (f"_{self.act}" if self.act else "")

    @property
    def pack_kernels(self) -> tuple[tuple[str, int, bool], tuple[str, int, bool]]:
        """(name, panel width, source is K-major) of the kernels packing op(A) and op(B)."""
        t = self.resolved_tile
        return _pack_kernel_id(t.mr, self.trans_a), _pack_kernel_id(t.nr, not self.trans_b)

    @property
    def program_name(self) -> str:
        t = self.resolved_tile
        return f"{self.kernel_name}_{t.tiled_label if self.tiled else t.label}"


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
                k_chunk: int | None = None, scratch: str = "gemm_scratch", tag: str = "",
                origin: str = "", b_packed: str | None = None,
                tiled: bool | None = None, act: str = "") -> GemmEmit:
    """C[m,n] = alpha·op(A)·op(B) + beta·C (+ bias[n]) on buffers named a, b, c (, bias),
    then `act` (one of ACTIVATIONS) applied to every element stored, when given.

    op(A) is m×k: A is stored m×k, or k×m when trans_a; op(B) is k×n: B is stored k×n, or
    n×k when trans_b.  Leading dims default to the stored row length; offsets are in
    elements.  beta == 0 never reads C, so C may hold garbage.  `pack` first copies op(A)
    and op(B) into the `scratch` buffer as contiguous panels (None: decide by shape);
    packed GEMMs with k > k_chunk run as several launches over slices of k, so the
    panels' slices stay in cache (None: K_CHUNK).  `tile` overrides the default and is
    shrunk to fit small matrices.  `b_packed` names a buffer that already holds op(B)'s
    panels, written by `gemm_pack_b` with the same k, n, transposes and tile (one B used by
    many GEMMs is then packed once): the GEMM is packed, packs only A, and does not read `b`.
    `tiled` selects the local-memory family (compiler/gemm_tiled.py; `tile` then gives its
    blocks); None leaves it to the lowering's device (gemm_tuning.tuned).
    """
    if min(m, n, k) < 0:
        raise ValueError(f"gemm: negative size m={m} n={n} k={k}")
    if pack is None and tile is None and k_chunk is None and b_packed is None and tiled is None:
        # left to the rules: a tuned choice for this shape, or the family of the device
        # lowered for, when lowering under one
        from .gemm_tuning import GemmKey, lookup    # (gemm_tuning imports this module)
        choice = lookup(GemmKey(("t" if trans_a else "n") + ("t" if trans_b else "n"),
                                bias is not None, m, n, k))
        if choice is not None:
            pack, tile, k_chunk, tiled = choice.pack, choice.tile, choice.k_chunk, choice.tiled
    if tiled and (pack or b_packed is not None):
        raise ValueError("gemm: the tiled family does not pack")
    lda = lda if lda is not None else (m if trans_a else k)
    ldb = ldb if ldb is not None else (k if trans_b else n)
    ldc = ldc if ldc is not None else n
    packed = not tiled and (should_pack(m, n, k, trans_a, trans_b) if pack is None else pack)
    packed = packed or b_packed is not None
    probe = GemmSpec(trans_a, trans_b, bias is not None, packed, tile, act=act,
                     tiled=bool(tiled))
    spec = replace(probe, tile=fit_tile(probe, m, n))
    program = gemm_program(spec, origin)
    if m == 0 or n == 0:
        return GemmEmit((program,), ())
    call = _Call(spec, program.name, m, n, k, float(alpha), float(beta),
                 (("buf", a), ("int", a_offset), ("int", lda)),
                 (("buf", b), ("int", b_offset), ("int", ldb)),
                 (("buf", c), ("int", c_offset), ("int", ldc)),
                 (("buf", bias), ("int", bias_offset)) if bias is not None else (), tag)
    if not packed:
        return GemmEmit((program,), (call.multiply(k, call.a, call.b, call.beta, True),))
    launches, buffers = _packed_launches(call, scratch, k_chunk or K_CHUNK, b_packed)
    return GemmEmit((program,), launches, buffers)


def gemm_pack_b(*, k: int, n: int, b: str, into: str, trans_a: bool = False,
                trans_b: bool = False, bias: bool = False, ldb: int | None = None,
                b_offset: int = 0, into_offset: int = 0, tile: GemmTile | None = None,
                tag: str = "", origin: str = "") -> GemmEmit:
    """Pack op(B) (k×n; B stored k×n, or n×k when trans_b) into buffer `into` as the
    panels a packed GEMM reads, for later `gemm_launch(..., b_packed=into)` calls with the
    same k, n, transposes, bias flag and tile (they select the program and the panel width).
    `into_offset` (elements, a multiple of packed_panel_size(k)) places the panels after
    others: matrices packed side by side read as one op(B) with their columns concatenated,
    each padded to a whole panel (packed_width)."""
    ldb = ldb if ldb is not None else (k if trans_b else n)
    spec = GemmSpec(trans_a, trans_b, bias, True, tile)
    program = gemm_program(spec, origin)
    t = spec.resolved_tile
    size = into_offset + max(_round_up(n, t.nr) * k, 1)
    if n == 0 or k == 0:
        return GemmEmit((program,), (), (BufferDecl(into, size * 4),))
    pack_b = spec.pack_kernels[1]
    launch = Launch(program.name, pack_b[0], _pack_grid(pack_b, n, k), (PACK_GROUP, 1),
                    (("int", n), ("int", k), ("buf", b), ("int", b_offset), ("int", ldb),
                     ("buf", into), ("int", into_offset)), tag)
    return GemmEmit((program,), (launch,), (BufferDecl(into, size * 4),))


def packed_width(n: int, tile: GemmTile | None = None) -> int:
    """Columns op(B) occupies once packed: n rounded up to whole panels."""
    return _round_up(n, (tile or DEFAULT_TILES["packed"]).nr)


# Where a multiply launch (_Call.multiply) keeps its arguments: m, n, k, alpha, A, a_off,
# lda, B, b_off, ldb, beta, C, c_off, ldc (then bias, bias_off).
M_ARG, N_ARG, ALPHA_ARG, A_ARG, B_ARG, BETA_ARG, C_ARG, C_OFF_ARG, LDC_ARG = \
    0, 1, 3, 4, 7, 10, 11, 12, 13


def is_multiply(launch: Launch) -> bool:
    """Whether ``launch`` is a GEMM's multiply (not one of its pack kernels)."""
    return launch.kernel.startswith("sgemm_") and not launch.kernel.startswith("sgemm_pack")


@dataclass(frozen=True)
class _Call:
    """One gemm_launch request, resolved: spec, sizes and the argument groups."""
    spec: GemmSpec
    program: str
    m: int
    n: int
    k: int
    alpha: float
    beta: float
    a: tuple
    b: tuple
    c: tuple
    bias: tuple
    tag: str

    def multiply(self, k: int, a: tuple, b: tuple, beta: float, with_bias: bool,
                 with_act: bool = True) -> Launch:
        args = (("int", self.m), ("int", self.n), ("int", k), ("float", self.alpha), *a, *b,
                ("float", beta), *self.c, *(self.bias if with_bias else ()))
        kernel = replace(self.spec, bias=self.spec.bias and with_bias,
                         act=self.spec.act if with_act else "").kernel_name
        gsize, lsize = _grid(self.spec, self.m, self.n)
        return Launch(self.program, kernel, gsize, lsize, args, self.tag)


def _packed_launches(call: _Call, scratch: str, k_chunk: int, b_packed: str | None = None):
    """Slice by slice of k: pack that slice of op(A) and op(B) into scratch (op(B) not when
    `b_packed` holds its panels), then multiply it; the first slice applies beta and the
    bias, the others accumulate (beta = 1, no bias).  Packing a slice just before its
    multiply keeps the panels in cache between the two (a whole B of the MLP is 20 MB: packed
    at once it went to memory and came back)."""
    t, m, n, k = call.spec.resolved_tile, call.m, call.n, call.k
    kc = min(max(k_chunk, 1), max(k, 1))
    a_len = _round_up(m, t.mr) * kc
    b_len = 0 if b_packed is not None else _round_up(n, t.nr) * kc
    (pack_a, _, a_kmajor), (pack_b, _, b_kmajor) = call.spec.pack_kernels
    a_buf, a_off, lda = call.a
    b_buf, b_off, ldb = call.b
    launches = []
    for k0 in range(0, max(k, 1), kc):
        ks, first = min(kc, k - k0), k0 == 0
        # a slice of k starts k0 rows down a K-major operand, k0 values along a row-major one
        a_at = a_off[1] + k0 * (lda[1] if a_kmajor else 1)
        launches.append(Launch(call.program, pack_a,
                               _pack_grid(call.spec.pack_kernels[0], m, ks), (PACK_GROUP, 1),
                               (("int", m), ("int", ks), a_buf, ("int", a_at), lda,
                                ("buf", scratch), ("int", 0)), call.tag))
        if b_packed is None:
            b_at = b_off[1] + k0 * (ldb[1] if b_kmajor else 1)
            launches.append(Launch(call.program, pack_b,
                                   _pack_grid(call.spec.pack_kernels[1], n, ks), (PACK_GROUP, 1),
                                   (("int", n), ("int", ks), b_buf, ("int", b_at), ldb,
                                    ("buf", scratch), ("int", a_len)), call.tag))
            b = (("buf", scratch), ("int", a_len), ("int", ks * t.nr))
        else:   # whole panels of op(B), K-major: a slice of k is a piece of every panel
            b = (("buf", b_packed), ("int", k0 * t.nr), ("int", k * t.nr))
        a = (("buf", scratch), ("int", 0), ("int", ks * t.mr))
        last = k0 + kc >= k
        launches.append(call.multiply(ks, a, b, call.beta if first else 1.0, first, last))
    return tuple(launches), (BufferDecl(scratch, max(a_len + b_len, 1) * 4),)


def should_pack(m: int, n: int, k: int, trans_a: bool, trans_b: bool) -> bool:
    """Pack when strided operand rows would starve the micro-kernel (every k a new page,
    which the hardware prefetcher does not follow) and the matrices are big enough to
    repay two extra launches and copies.  NT reads both operands along k, contiguously:
    its dot kernel needs no packing unless A has enough rows to reuse packed panels, or k
    is too short for its vectors along k.  TT in place streams B along k and reads A's
    rows as vectors: fine while A stays in L2 (the backward pass of a small batch)."""
    if m * n * k < PACK_MIN_FLOP or m < DEFAULT_TILES["packed"].mr or n < 16:
        return False
    if trans_a and trans_b:
        return m * k > TT_DIRECT_MAX_A
    return (m >= 512 or k < 32) if trans_b else True


def fit_tile(spec: GemmSpec, m: int, n: int) -> GemmTile:
    """Shrink a tile that is larger than the matrix, so small GEMMs stay vectorized."""
    tile = spec.resolved_tile
    if spec.family in ("packed", "tiled"):   # padded panels / bounds-checked tiles: any size
        return tile                           # fits (and one tiled program serves them all)
    rows, cols = (n, m) if spec.variant == "tt" else (m, n)
    mr = max(1, min(tile.mr, rows))
    if spec.family == "dot":
        return replace(tile, mr=mr, nr=max(1, min(tile.nr, cols)))
    if cols >= tile.nr:
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


def _pack_grid(pack_kernel: tuple[str, int, bool], rows: int, k: int) -> tuple[int, int]:
    _, width, kmajor = pack_kernel
    if kmajor:     # one work-item per PACK_ROWS values of k, each a whole contiguous row
        return _round_up(-(-max(k, 1) // PACK_ROWS), PACK_GROUP), 1
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
    if spec.family == "tiled":
        from .gemm_tiled import render_tiled
        return render_tiled(spec, t)
    if spec.family == "packed":
        roles = _Roles("M", "N", "A", str(t.mr), True, "B", str(t.nr), False, False)
        packs = [_pack_kernel(*ident) for ident in dict.fromkeys(spec.pack_kernels)]
        # k in slices: the first applies the bias, the last the activation
        kernels = list(dict.fromkeys(replace(spec, bias=spec.bias and bias, act=act)
                                     for act in dict.fromkeys((spec.act, ""))
                                     for bias in (True, False)))
        return "\n".join([_header(spec, t), *packs, *(
            line for s in reversed(kernels) for line in
            (_signature(s), "{", _packed_prologue(s, t), *_outer_body(s, t, roles), "}"))
        ] + [""])
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
             f"#define STOREV(p, v) (*(__global vecw_u *)(p) = (v))",
             *_update_defines(w)]
    if spec.act:
        lines.append(_activation_source(spec.act, w))
    if spec.packed:
        lines += ["typedef float8 vec8_u __attribute__((aligned(4)));",
                  "#define LOAD8(p) (*(__global const vec8_u *)(p))",
                  "#define STORE8(p, v) (*(__global vec8_u *)(p) = (v))"]
    return "\n".join(lines)


# Activations a GEMM can apply to what it stores (the layer that reads only its output is then
# computed here: compiler/lower.py): scalar and float8 forms over fastmath.cl's functions.
ACTIVATIONS = {
    "relu": ("v > 0.0f ? v : 0.0f", None),
    "sigmoid": ("sigm(v)", "sigm8(v)"),
    "tanh": ("ftanh(v)", "ftanh8(v)"),
    "stanh": ("1.7159047f * ftanh(0.6666667f * v)", "1.7159047f * ftanh8(0.6666667f * v)"),
}


def _activation_source(act: str, w: int) -> str:
    """act_s(float) and act_v(float{w}) for the epilogue: relu as a select; the others as
    float8 pieces of fastmath.cl's vector code (or lane by lane below 8 lanes)."""
    scalar, vec8 = ACTIVATIONS[act]
    if vec8 is None:
        vector = f"select((float{w})(0.0f), v, v > 0.0f)"
    elif w == 8:
        vector = vec8
    elif w == 16:
        vector = f"(float16)(act8(v.lo), act8(v.hi))"
    else:
        vector = f"(float{w})(" + ", ".join(f"act_s(v.s{LANES[i]})" for i in range(w)) + ")"
    math = ""
    if vec8 is not None:
        from importlib import resources
        math = resources.files("singa_dsl.compiler.ops").joinpath("fastmath.cl").read_text()
    eight = f"inline float8 act8(float8 v) {{ return {vec8}; }}\n" if vec8 and w == 16 else ""
    return (f"{math}inline float act_s(float v) {{ return {scalar}; }}\n{eight}"
            f"inline float{w} act_v(float{w} v) {{ return {vector}; }}")


def _update_defines(w: int) -> list[str]:
    # Built with -DSINGA_GEMM_UPDATE (compiler/fuse_update.py), the kernels take a flag
    # buffer and raise flag[flag_slot] when they store a NaN or Inf: a GEMM that applies
    # plain SGD to its C (C = W, alpha = -lr, beta = 1 - lr·wd) checks the step it writes.
    # With -DSINGA_GEMM_MOMENTUM as well, SGD with momentum: o (the gradient, alpha =
    # grad_scale, beta = 0) becomes H = m·H − lr·(o + wd·W), W + H, H the param's history
    # (its layout W's); UPD_V/UPD_S do it where a value of C is stored.
    return ["#ifdef SINGA_GEMM_UPDATE",
            "#ifdef SINGA_GEMM_MOMENTUM",
            "#define GEMM_EXTRA_ARGS , __global int *flag, const int flag_slot, "
            "__global float *H, const float upd_lr, const float upd_mom, const float upd_wd",
            f"#define UPD_V(o, p) {{ const float{w} w_ = LOADV(p); "
            "__global float *h_ = H + ((p) - C); "
            f"const float{w} m_ = upd_mom * LOADV(h_) - upd_lr * (upd_wd * w_ + o); "
            "STOREV(h_, m_); o = w_ + m_; }",
            "#define UPD_S(o, i) { const float w_ = C[i]; "
            "const float m_ = upd_mom * H[i] - upd_lr * (upd_wd * w_ + o); H[i] = m_; "
            "o = w_ + m_; }",
            "#else",
            "#define GEMM_EXTRA_ARGS , __global int *flag, const int flag_slot",
            "#define UPD_V(o, p)",
            "#define UPD_S(o, i)",
            "#endif",
            f"#define NOTE_V(o) if (any((as_int{w}(o) & 0x7f800000) == 0x7f800000)) "
            "flag[flag_slot] = 1;",
            "#define NOTE_S(o) if ((as_int(o) & 0x7f800000) == 0x7f800000) "
            "flag[flag_slot] = 1;",
            "#else",
            "#define GEMM_EXTRA_ARGS",
            "#define UPD_V(o, p)",
            "#define UPD_S(o, i)",
            "#define NOTE_V(o)",
            "#define NOTE_S(o)",
            "#endif"]


def _signature(spec: GemmSpec) -> str:
    bias = ",\n    __global const float *bias, const int bias_off" if spec.bias else ""
    return (f"__kernel void {spec.kernel_name}(const int M, const int N, const int K, "
            "const float alpha,\n"
            "    __global const float *A, const int a_off, const int lda,\n"
            "    __global const float *B, const int b_off, const int ldb,\n"
            f"    const float beta, __global float *C, const int c_off, const int ldc{bias}"
            " GEMM_EXTRA_ARGS)")


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
    /* this block's panels of op(A) and op(B): K-major, zero-padded past the edges;
       lda and ldb are the panel strides (a launch may multiply a slice of k) */
    A += (int)get_global_id(1) * lda;
    B += (int)get_global_id(0) * ldb;
    const int p0 = tp, q0 = tq;"""


def _pack_kernel(name: str, width: int, kmajor: bool) -> str:
    """Copies X (X[i,k] at k*ldx + i if kmajor, else at i*ldx + k) into K-major panels of
    `width` rows, panel j at out[j*K*width + k*width + c]; rows past R are zeros.  Each
    work-item reads memory contiguously: whole rows of X when kmajor (a row feeds every
    panel), else `width` rows along k for one panel."""
    if kmajor:
        return f"""__kernel void {name}(const int R, const int K,
    __global const float *X, const int x_off, const int ldx,
    __global float *out, const int out_off)
{{
    const int k0 = (int)get_global_id(0) * {PACK_ROWS};
    if (k0 >= K) return;
    X += x_off;
    out += out_off;
    const int whole = R / {width}, panel = K * {width};
    for (int k = k0; k < min(K, k0 + {PACK_ROWS}); ++k) {{
        const __global float *src = X + k * ldx;
        __global float *dst = out + k * {width};
        for (int j = 0; j < whole; ++j, src += {width}, dst += panel) {{
            {_copy_row("dst", "src", width)}
        }}
        if (whole * {width} < R)
            for (int c = 0; c < {width}; ++c) dst[c] = whole * {width} + c < R ? src[c] : 0.0f;
    }}
}}"""
    rows = range(width)
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
        {" ".join(f"const __global float *x{c} = X + (i0 + {c}) * ldx;" for c in rows)}
        int k = k0;
        for (; k + 8 <= k1; k += 8) {{   /* a {width}×8 block, transposed in registers */
            {" ".join(f"const float8 v{c} = LOAD8(x{c} + k);" for c in rows)}
            {_transposed_stores(width)}
        }}
        for (; k < k1; ++k) {{
            {" ".join(f"out[k * {width} + {c}] = x{c}[k];" for c in rows)}
        }}
    }} else {{
        for (int k = k0; k < k1; ++k)
            for (int c = 0; c < {width}; ++c)
                out[k * {width} + c] = i0 + c < R ? X[(i0 + c) * ldx + k] : 0.0f;
    }}
}}"""


def _transposed_stores(width: int) -> str:
    """Stores rows v0..v{width-1} (8 values of k each) K-major: the 8·width floats at
    out + k*width are out[kk*width + c] = v{c}.s{kk}, written as float8 vectors."""
    vecs = []
    for j in range(width):
        lanes = [divmod(f, width) for f in range(8 * j, 8 * j + 8)]
        vecs.append(f"STORE8(out + k * {width} + {8 * j}, (float8)("
                    + ", ".join(f"v{c}.s{kk}" for kk, c in lanes) + "));")
    return "\n            ".join(vecs)


def _copy_row(dst: str, src: str, width: int) -> str:
    """`width` floats from src to dst, as float8 vectors where they fit."""
    parts = [f"STORE8({dst} + {i}, LOAD8({src} + {i}));" for i in range(0, width - 7, 8)]
    parts += [f"{dst}[{i}] = {src}[{i}];" for i in range(width - width % 8, width)]
    return " ".join(parts)


def _store_scalar(spec: GemmSpec, ro: _Roles, p: str, q: str, value: str) -> str:
    idx = ro.c_index(p, q)
    bias = f" o += bias[{p if ro.bias_on_p else q}];" if spec.bias else ""
    return (f"{{ float o = alpha * {value}; if (beta != 0.0f) o = beta * C[{idx}] + o;"
            f"{bias}{' o = act_s(o);' if spec.act else ''} UPD_S(o, {idx}) NOTE_S(o) "
            f"C[{idx}] = o; }}")


def _outer_body(spec: GemmSpec, t: GemmTile, ro: _Roles) -> list[str]:
    w, nv = t.vw, t.nr // t.vw
    rows, vecs = range(t.mr), range(nv)
    out = [f"    float{w} " + ", ".join(f"acc{r}_{v} = 0.0f" for r in rows for v in vecs) + ";",
           f"    const __global float *rp = {'B' if spec.packed else ro.R + ' + q0'};"]
    if ro.l_kmajor:
        out.append(f"    const __global float *lp = {'A' if spec.packed else ro.L + ' + p0'};")
    else:
        out += [f"    const __global float *l{r} = {ro.L} + (p0 + {r}) * {ro.ldl};" for r in rows]
    if not ro.c_trans:
        # A fused update reads its block of C (the param) after the loop: ask for it now, so
        # that the rows (a page apart) arrive while the block is computed.
        out.append("#if defined(SINGA_GEMM_UPDATE) && defined(SINGA_CPU_DEVICE)")
        out += [f"    __builtin_prefetch(C + (p0 + {r}) * ldc + q0); "
                f"__builtin_prefetch(C + (p0 + {r}) * ldc + q0 + {t.nr - 1});" for r in rows]
        out.append("#ifdef SINGA_GEMM_MOMENTUM")     # and the same block of the history
        out += [f"    __builtin_prefetch(H + (p0 + {r}) * ldc + q0); "
                f"__builtin_prefetch(H + (p0 + {r}) * ldc + q0 + {t.nr - 1});" for r in rows]
        out.append("#endif")
        out.append("#endif")
    out += ["    for (int k = 0; k < K; ++k) {"]
    if t.pf and not spec.packed:   # strided rows defeat the hardware prefetcher: help it
        # clang's __builtin_prefetch is a CPU hint: PoCL takes it, NVIDIA's OpenCL compiler
        # rejects a __global pointer there.  runtime/device.py defines SINGA_CPU_DEVICE on CPUs.
        out.append("#ifdef SINGA_CPU_DEVICE")
        out.append(f"        __builtin_prefetch(rp + {t.pf} * {ro.ldr});")
        if ro.l_kmajor:
            out.append(f"        __builtin_prefetch(lp + {t.pf} * {ro.ldl});")
        out.append("#endif")
    out += ["        " + " ".join(f"const float{w} r{v} = LOADV(rp + {v * w});" for v in vecs),
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


def _outer_vec_result(spec: GemmSpec, r: int, v: int, w: int, ptr: str,
                      update: bool = True) -> str:
    """`o`, the vector of C to store at `ptr`; ``update=False`` leaves a momentum update to
    the caller (a block over the edge recomputes lanes another work-item owns: their
    history must not be stepped twice)."""
    bias = f" o += LOADV(bias + q0 + {v * w});" if spec.bias else ""
    return (f"float{w} o = alpha * acc{r}_{v}; "
            f"if (beta != 0.0f) o = beta * LOADV({ptr}) + o;{bias}"
            f"{' o = act_v(o);' if spec.act else ''}{f' UPD_V(o, {ptr})' if update else ''}"
            " NOTE_V(o)")


def _outer_store(spec: GemmSpec, t: GemmTile, ro: _Roles) -> list[str]:
    w, nv = t.vw, t.nr // t.vw
    full, edge = [], []
    for r in range(t.mr):
        full.append(f"        {{ __global float *c = C + (p0 + {r}) * ldc + q0;")
        edge.append(f"        if (p0 + {r} >= tp) {{ __global float *c = C + (p0 + {r}) * ldc + q0;")
        for v in range(nv):
            res = _outer_vec_result(spec, r, v, w, f"c + {v * w}")
            full.append(f"            {{ {res} STOREV(c + {v * w}, o); }}")
            edge_res = _outer_vec_result(spec, r, v, w, f"c + {v * w}", update=False)
            lanes = " ".join(f"if (q0 + {v * w + i} >= tq) {{ float e = o.s{LANES[i]}; "
                             f"UPD_S(e, (p0 + {r}) * ldc + q0 + {v * w + i}) NOTE_S(e) c[{v * w + i}] = e; }}"
                             for i in range(w))
            edge.append(f"            {{ {edge_res} {lanes} }}")
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


def _lane_sum(vec: str, out: str, width: int) -> str:
    """Sum of a vector's lanes by halving, inline (a helper taking float16 would change
    the call ABI without AVX-512)."""
    parts, name = [], vec
    while width > 2:
        width //= 2
        parts.append(f"const float{width} h{width} = {name}.lo + {name}.hi;")
        name = f"h{width}"
    return "{ " + " ".join(parts) + f" {out} = {name}.x + {name}.y; }}"


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
            *(f"    float s{r}_{c}; {_lane_sum(f'acc{r}_{c}', f's{r}_{c}', w)}"
              for r in rows for c in cols),
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
