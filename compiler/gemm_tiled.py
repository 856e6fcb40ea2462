"""The tiled GEMM family: the classic GPU design, for devices that are not CPUs.

The CPU families of gemm.py read their operands straight from global memory, one work-item
a register block: on a GPU that is uncoalesced and reuses nothing between work-items (an
earlier run on an H200 measured them at 0.10–0.15× PyTorch CUDA's sgemm).  Here a
work-group of LX×LY work-items computes a BM×BN block of C (BM = MR·LY, BN = NR·LX):

* each work-item keeps MR×NR values of C in registers, its rows strided by LY and its
  columns by LX, so that neighbouring work-items store neighbouring addresses of C
  (coalesced) and read neighbouring words of local memory (no bank conflicts);
* for each BK-deep slice of k the work-group copies op(A)'s BM×BK and op(B)'s BK×BN tiles
  into __local memory between two barriers; every value read from global memory is then
  used BN (A) or BM (B) times.  The four transposes differ only in this copy: consecutive
  work-items read along the stored operand's contiguous dimension (coalesced) and write
  the k-major local tile; when that dimension is k the writes go BM+1 (BN+1) floats
  apart, the padding that keeps them on different banks;
* values past the edges of A and B are staged as zeros and stores are bounds-checked, so
  any m, n, k (k = 0 included) runs without padding the operands.

The signature, the epilogue (alpha, beta — beta == 0 never reads C —, bias along N) and
the SINGA_GEMM_UPDATE flag checks are gemm.py's, so one launch form serves every family.
On PoCL the barriers split each work-group's loop over its work-items (POCL-NOTES.md):
CPUs keep the register micro-kernels, and only a device that is not a CPU gets this
family by default (gemm_tuning.default_choice).
"""
from __future__ import annotations

from .gemm import (_ROLES, GemmSpec, GemmTile, _activation_source, _signature, _store_scalar,
                   _update_defines)

PAD = 1                   # floats after each k-row of a local tile
MAX_ITEMS = 1024          # work-items a group: NVIDIA's limit (PoCL's is 4096)
MAX_ACCUMULATORS = 64     # values of C a work-item: 64 registers of 255 on NVIDIA
MAX_LOCAL_FLOATS = 8192   # 32 KiB: the least local memory OpenCL 1.2 guarantees


def local_floats(t: GemmTile) -> int:
    """Floats of local memory the two tiles take."""
    return t.bk * (t.mr * t.ly + PAD) + t.bk * (t.nr * t.lx + PAD)


def check_tile(t: GemmTile) -> GemmTile:
    """``t`` when it is within the limits above, else ValueError (a tuning cache entry is
    a file's word: it is checked before it is rendered)."""
    if t.mr * t.nr > MAX_ACCUMULATORS or t.lx * t.ly > MAX_ITEMS or t.bk > 64 \
            or local_floats(t) > MAX_LOCAL_FLOATS:
        raise ValueError(f"GemmTile {t}: too big for the tiled family (at most "
                         f"{MAX_ACCUMULATORS} values of C and {MAX_ITEMS} work-items a "
                         f"group, bk 64, {MAX_LOCAL_FLOATS * 4 // 1024} KiB local memory)")
    return t


def render_tiled(spec: GemmSpec, t: GemmTile) -> str:
    """The OpenCL source of one tiled GEMM (deterministic: it is the kernel cache's key)."""
    bm, bn, items = t.mr * t.ly, t.nr * t.lx, t.lx * t.ly
    rows, cols = range(t.mr), range(t.nr)
    store = _ROLES["nn"]      # the tiles hold op(A) and op(B): C is computed untransposed
    head = [f"// singa_dsl sgemm {spec.variant} tiled{' + bias' if spec.bias else ''}, "
            f"tile {t.tiled_label} ({bm}x{bn} of C a work-group); "
            "rendered by singa_dsl.compiler.gemm_tiled",
            *_update_defines(4), *([_activation_source(spec.act, 4)] if spec.act else [])]
    body = [
        "{",
        f"    __local float As[{t.bk}][{bm + PAD}], Bs[{t.bk}][{bn + PAD}];",
        f"    A += a_off; B += b_off; C += c_off;{' bias += bias_off;' if spec.bias else ''}",
        "    const int tx = (int)get_local_id(0), ty = (int)get_local_id(1);",
        f"    const int tid = ty * {t.lx} + tx;",
        f"    const int row0 = (int)get_group_id(1) * {bm}, col0 = (int)get_group_id(0) * {bn};",
        "    float " + ", ".join(f"acc{r}_{c} = 0.0f" for r in rows for c in cols) + ";",
        f"    for (int k0 = 0; k0 < K; k0 += {t.bk}) {{",
        # op(A)[r][kk]: A[r][kk] along kk, or (transposed) A[kk][r] along r
        *(_stage("As", "kk", "r", t.bk, bm, items, "row0 + r < M && k0 + kk < K",
                 "A[(row0 + r) * lda + k0 + kk]") if not spec.trans_a else
          _stage("As", "r", "kk", bm, t.bk, items, "row0 + r < M && k0 + kk < K",
                 "A[(k0 + kk) * lda + row0 + r]")),
        # op(B)[kk][c]: B[kk][c] along c, or (transposed) B[c][kk] along kk
        *(_stage("Bs", "c", "kk", bn, t.bk, items, "k0 + kk < K && col0 + c < N",
                 "B[(k0 + kk) * ldb + col0 + c]") if not spec.trans_b else
          _stage("Bs", "kk", "c", t.bk, bn, items, "k0 + kk < K && col0 + c < N",
                 "B[(col0 + c) * ldb + k0 + kk]")),
        "        barrier(CLK_LOCAL_MEM_FENCE);",
        # unrolled, the local reads take constant offsets (a GPU compiler usually unrolls a
        # short constant loop anyway: the pragma makes sure).  Not on CPUs, which run this
        # family only when asked: PoCL compiled the unrolled kernels twice as slowly here.
        "#ifndef SINGA_CPU_DEVICE",
        "#pragma unroll",
        "#endif",
        f"        for (int kk = 0; kk < {t.bk}; ++kk) {{",
        "            const float " + ", ".join(f"a{r} = As[kk][ty + {r * t.ly}]" for r in rows)
        + ";",
        "            const float " + ", ".join(f"b{c} = Bs[kk][tx + {c * t.lx}]" for c in cols)
        + ";",
        *("            " + " ".join(f"acc{r}_{c} = a{r} * b{c} + acc{r}_{c};" for c in cols)
          for r in rows),
        "        }",
        "        barrier(CLK_LOCAL_MEM_FENCE);",   # before the next slice overwrites the tiles
        "    }",
    ]
    for r in rows:
        body.append(f"    {{ const int p = row0 + ty + {r * t.ly}; if (p < M) {{")
        body += [f"        {{ const int q = col0 + tx + {c * t.lx}; if (q < N) "
                 f"{_store_scalar(spec, store, 'p', 'q', f'acc{r}_{c}')} }}" for c in cols]
        body.append("    } }")
    return "\n".join([*head, _signature(spec), *body, "}", ""])


def _stage(tile: str, fast: str, slow: str, fast_n: int, slow_n: int, items: int,
           inside: str, load: str) -> list[str]:
    """Copy a fast_n × slow_n tile into local memory, work-item `tid` taking elements tid,
    tid + items, ...; element e is (fast = e % fast_n, slow = e / fast_n), `fast` being the
    stored operand's contiguous dimension (coalesced reads); zeros outside the matrix."""
    size = fast_n * slow_n
    steps = -(-size // items)
    guard = "" if size % items == 0 else f"if (e < {size}) "
    kk_first = fast == "kk"
    target = f"{tile}[{fast if kk_first else slow}][{slow if kk_first else fast}]"
    return [f"        for (int s = 0; s < {steps}; ++s) {{",
            f"            const int e = tid + s * {items};",
            f"            {guard}{{ const int {fast} = e % {fast_n}, {slow} = e / {fast_n};",
            f"                {target} = {inside} ? {load} : 0.0f; }}",
            "        }"]
