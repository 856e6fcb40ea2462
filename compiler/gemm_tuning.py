"""Which GEMM kernel each shape gets: the autotuner's choices, as the lowering sees them.

``gemm_launch`` decides by rules when a caller leaves packing and tile open (``should_pack``,
the DEFAULT_TILES).  The rules were measured on one machine and are right on average; per
shape and per device the best kernel differs by up to ~2× (a 64-row GEMM that packs its
20 MB B spends as long packing as multiplying; the dot family's best block depends on k).
``runtime/autotune.py`` measures the candidates below on the device and caches the winners;
lowering under ``tuned(table)`` then gives every GEMM that was left to the rules the
measured choice instead, and records the shapes the table lacks (``misses``) so that they
can be tuned and the plan lowered again.

Only GEMMs whose caller left both ``pack`` and ``tile`` open and passed no pre-packed B are
tuned: a pre-packed B fixes the panel width, and explicit choices are the caller's.

The rules are the CPU's.  A device that is not a CPU is lowered under ``tuned(table,
cpu=False)``: its GEMMs without a tuned choice (too small to tune, or not measured yet) take
the tiled family (compiler/gemm_tiled.py), its tuner measures tiled blocks, and the
rules' CPU kernel is one more candidate.  Outside such a scope lowering stays device-
agnostic: the CPU rules.
"""
from __future__ import annotations

import contextlib
from collections import Counter
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import Iterator, Mapping

from .gemm import DEFAULT_TILES, K_CHUNK, TILED_TILE, GemmTile


@dataclass(frozen=True, order=True)
class GemmKey:
    """A GEMM as the tuner sees it: transposes, bias epilogue and sizes (leading dimensions
    and offsets do not change which kernel is fastest enough to matter)."""
    variant: str        # "nn", "nt", "tn" or "tt"
    bias: bool
    m: int
    n: int
    k: int

    @property
    def trans_a(self) -> bool:
        return self.variant[0] == "t"

    @property
    def trans_b(self) -> bool:
        return self.variant[1] == "t"

    @property
    def text(self) -> str:
        return f"{self.variant}{'+bias' if self.bias else ''} {self.m}x{self.n}x{self.k}"

    @classmethod
    def parse(cls, text: str) -> "GemmKey":
        """The inverse of ``text`` (the cache's keys); ValueError when malformed."""
        head, sizes = text.split(" ")
        variant, bias = (head[:-5], True) if head.endswith("+bias") else (head, False)
        m, n, k = (int(s) for s in sizes.split("x"))
        if variant not in ("nn", "nt", "tn", "tt") or min(m, n, k) < 1:
            raise ValueError(f"not a GEMM key: {text!r}")
        return cls(variant, bias, m, n, k)

    @property
    def flop(self) -> int:
        return 2 * self.m * self.n * self.k


FAMILIES = ("direct", "packed", "tiled")     # direct: outer or dot, by the variant


@dataclass(frozen=True)
class GemmChoice:
    """How to run one GEMM: packed, in place or tiled, the register tile, and (packed) the
    slice of k multiplied per launch."""
    pack: bool
    tile: GemmTile
    k_chunk: int = K_CHUNK
    tiled: bool = False

    @property
    def family(self) -> str:
        return "tiled" if self.tiled else "packed" if self.pack else "direct"

    @property
    def label(self) -> str:
        t = self.tile
        if self.tiled:
            return f"tiled {t.mr * t.ly}x{t.nr * t.lx} {t.tiled_label}"
        how = f"packed k{self.k_chunk}" if self.pack else "direct"
        return f"{how} {t.label} wg{t.lx}x{t.ly}"

    def to_json(self) -> dict:
        t = self.tile
        # a tiled tile has a 7th number (bk): a version without the family skips the entry
        # (a 6-number tile is all it reads) instead of running a CPU kernel with its blocks
        return {"family": self.family, "pack": self.pack, "k_chunk": self.k_chunk,
                "tile": [t.mr, t.nr, t.vw, t.lx, t.ly, t.pf] + ([t.bk] if self.tiled else [])}

    @classmethod
    def from_json(cls, d: Mapping) -> "GemmChoice":
        """From a cache entry; ValueError/TypeError/KeyError when it is not one (the cache
        is a file on disk: anything may be in it).  An entry without a family was written
        before the tiled family: packed or direct, as its ``pack`` says."""
        if not isinstance(d["pack"], bool) or not isinstance(d["tile"], list):
            raise ValueError(f"bad choice {d!r}")
        family = d.get("family", "packed" if d["pack"] else "direct")
        if family not in FAMILIES or (family == "packed") != d["pack"]:
            raise ValueError(f"bad family in {d!r}")
        tiled = family == "tiled"
        numbers = [int(v) for v in d["tile"]]
        if len(numbers) != (7 if tiled else 6):
            raise ValueError(f"tile of {len(numbers)} numbers for the {family} family")
        mr, nr, vw, lx, ly, pf, *bk = numbers
        if max(mr, nr) > 64 or max(lx, ly) > 64 or not 0 <= pf <= 256:
            raise ValueError(f"tile out of range: {d['tile']}")
        k_chunk = int(d["k_chunk"])
        if not 16 <= k_chunk <= 1 << 16:
            raise ValueError(f"bad choice {d!r}")
        return cls(d["pack"], GemmTile(mr, nr, vw, lx, ly, pf, *bk), k_chunk, tiled)

    def check(self, key: GemmKey) -> None:
        """ValueError when this choice cannot run ``key`` (a cache entry written for another
        shape or by another version)."""
        from .gemm import GemmSpec
        GemmSpec(key.trans_a, key.trans_b, key.bias, self.pack, self.tile,
                 tiled=self.tiled).resolved_tile


def default_choice(key: GemmKey, cpu: bool = True) -> GemmChoice:
    """What the rules pick for this shape on a CPU (gemm.py's), or the tiled default on a
    device that is not one: the tuner's baseline."""
    if not cpu:
        return GemmChoice(False, TILED_TILE, K_CHUNK, tiled=True)
    from .gemm import should_pack
    pack = should_pack(key.m, key.n, key.k, key.trans_a, key.trans_b)
    family = "packed" if pack else ("dot" if key.variant == "nt" else "outer")
    return GemmChoice(pack, DEFAULT_TILES[family], K_CHUNK)


# Register blocks to try, by vector width.  AVX2 (8 floats, 16 registers): an MR×NR block
# of C takes MR·NR/8 accumulators, plus the B vectors and a broadcast — 6×16 and 4×24 fill
# 12 of them, 8×8 and 4×16 leave room for deeper prefetch.  AVX-512 (16 floats,
# 32 registers): 8×32 and 6×32 (16 and 12 zmm accumulators).
# (Each block is a program to build — ~0.3 s cold on PoCL — so the list keeps the blocks
# that won some shape of the samples here, not every shape that fits the registers.)
_OUTER_TILES = {8: ((6, 16), (4, 16), (4, 24), (8, 8)),
                16: ((8, 32), (6, 32), (4, 32))}
_DOT_TILES = {8: ((4, 3), (2, 4), (6, 2), (4, 4)),
              16: ((4, 3), (2, 4), (4, 2))}
# Work-group shapes: PoCL runs a group's work-items as one loop, so 4×4 shares op(A) rows
# and op(B) columns between neighbours in cache; 16×1 walks one row of blocks (one A panel
# against 16 B panels), 2×8 one column.  Each shape is one more JIT of the kernel.
_GROUPS = ((16, 1), (2, 8))
_K_CHUNKS = (256, 1024)
# The tiled family's blocks, the classic GPU shapes (mr, nr, lx, ly: a work-group computes
# mr·ly × nr·lx of C): 64×64 by 256 work-items of 4×4 or by 128 of 8×4 (more values of C
# per value read from local memory), 128×128 by 256 of 8×8 for big matrices, 32×32 by 64
# of 4×4 for small ones (more work-groups to fill the multiprocessors); each with k in
# steps of 8 and 16.
_TILED_BLOCKS = ((4, 4, 16, 16), (8, 4, 16, 8), (8, 8, 16, 16), (4, 4, 8, 8))
_TILED_BK = (8, 16)
_TILED_GROUPS = ((16, 16), (16, 8), (8, 16), (32, 8))


def candidates(key: GemmKey, vector_widths=(8,), cpu: bool = True) -> list[GemmChoice]:
    """The first round the tuner measures for ``key`` on a device whose native float vectors
    are ``vector_widths`` wide: every register block, packed and in place, in the default
    work-group shape; the rules' choice first (ties keep it).  On a device that is not a
    CPU: the tiled blocks, and the CPU rules' kernel as a control."""
    if not cpu:
        tiled = [GemmChoice(False, GemmTile(mr, nr, 4, lx, ly, bk=bk), K_CHUNK, True)
                 for mr, nr, lx, ly in _TILED_BLOCKS for bk in _TILED_BK]
        return list(dict.fromkeys([default_choice(key, cpu=False), *tiled,
                                   default_choice(key)]))
    out = [default_choice(key)]
    packable = key.m >= 2 and key.n >= 8
    for vw in vector_widths:
        for mr, nr in _OUTER_TILES.get(vw, ()):
            if packable:
                out.append(GemmChoice(True, GemmTile(mr, nr, vw)))
            if key.variant != "nt":
                out.append(GemmChoice(False, GemmTile(mr, nr, vw, pf=16)))
        if key.variant == "nt":
            out += [GemmChoice(False, GemmTile(mr, nr, vw)) for mr, nr in _DOT_TILES.get(vw, ())]
    return list(dict.fromkeys(out))


def refinements(choice: GemmChoice, key: GemmKey) -> list[GemmChoice]:
    """The second round around a good first-round choice: other work-group shapes, the
    software prefetch toggled (in place), other slices of k (packed, where k is long
    enough to be cut); tiled: other work-group shapes (block sizes) and the other bk."""
    if choice.tiled:
        t = choice.tile
        tiles = [replace(t, lx=lx, ly=ly) for lx, ly in _TILED_GROUPS
                 if (lx, ly) != (t.lx, t.ly)]
        tiles += [replace(t, bk=bk) for bk in _TILED_BK if bk != t.bk]
        return [replace(choice, tile=x) for x in tiles if _tiled_fits(x)]
    groups = list(_GROUPS)
    # A short C (few row blocks): one work-group down all of its rows, so each B panel is
    # read from memory once and by the other row blocks from cache (the batch-64 GEMMs
    # whose B is a big weight matrix)
    rows = -(-key.m // choice.tile.mr)
    if 4 < rows <= 16:
        groups += [(1, rows), (2, rows)]
    out = [GemmChoice(choice.pack, replace(choice.tile, lx=lx, ly=ly), choice.k_chunk)
           for lx, ly in groups]
    if not choice.pack and key.variant != "nt":      # the software prefetch, off or on
        out.append(replace(choice, tile=replace(choice.tile, pf=0 if choice.tile.pf else 16)))
    if choice.pack:
        out += [replace(choice, k_chunk=kc) for kc in _K_CHUNKS
                if kc != choice.k_chunk and (kc < key.k or choice.k_chunk < key.k)]
    return out


def _tiled_fits(tile: GemmTile) -> bool:
    from .gemm_tiled import check_tile
    try:
        check_tile(tile)
    except ValueError:
        return False
    return True


@dataclass
class TuningScope:
    """The table one lowering reads, and the keys it asked for that the table lacks;
    ``cpu``: whether the device lowered for is a CPU (else untuned GEMMs are tiled)."""
    table: Mapping[GemmKey, GemmChoice]
    cpu: bool = True
    misses: set[GemmKey] = field(default_factory=set)
    used: set[GemmKey] = field(default_factory=set)
    launches: Counter = field(default_factory=Counter)    # GEMMs of each shape emitted


_SCOPE: ContextVar[TuningScope | None] = ContextVar("singa_gemm_tuning", default=None)


@contextlib.contextmanager
def tuned(table: Mapping[GemmKey, GemmChoice], *, cpu: bool = True) -> Iterator[TuningScope]:
    """Lower under ``table``: GEMMs left to the rules take its choice for their shape, or
    (``cpu`` False, a device that is not a CPU) the tiled default where it has none."""
    scope = TuningScope(dict(table), cpu)
    token = _SCOPE.set(scope)
    try:
        yield scope
    finally:
        _SCOPE.reset(token)


# GEMMs smaller than this (2·m·n·k; ~0.2 ms at 80 GFLOP/s) are left to the rules: measuring
# their candidates costs more start-up (a JIT each) than they could ever repay.
MIN_TUNED_FLOP = 1 << 24


def most_work(keys, launches: Mapping[GemmKey, int], share: float) -> list[GemmKey]:
    """The biggest shapes that together do ``share`` of the work of ``keys`` (flops times
    GEMMs emitted, e.g. a recurrent step's GEMM once per step): the ones worth measuring."""
    ranked = sorted(keys, key=lambda k: (-k.flop * launches.get(k, 1), k))
    total = sum(k.flop * launches.get(k, 1) for k in ranked)
    out, done = [], 0
    for k in ranked:
        if out and done >= share * total:
            break
        out.append(k)
        done += k.flop * launches.get(k, 1)
    return out


def lookup(key: GemmKey) -> GemmChoice | None:
    """The tuned choice for ``key`` in the current scope, noting a miss for the tuner; where
    the table has none, the device's default (None: use the CPU rules)."""
    scope = _SCOPE.get()
    if scope is None:
        return None
    fallback = None if scope.cpu else default_choice(key, cpu=False)
    if key.flop == 0 or key.flop < MIN_TUNED_FLOP:
        return fallback
    choice = scope.table.get(key)
    (scope.used if choice is not None else scope.misses).add(key)
    scope.launches[key] += 1
    return choice if choice is not None else fallback
