"""The context op lowerings write into: buffers, programs and launches of one Plan.

An op's ``emit_forward(em, layer)`` and ``emit_backward(em, layer, grads)`` call ``em.launch``
and ``em.gemm``; they name tensors through ``em.act``, ``em.grad``, ``em.param`` and
``em.pgrad`` so that sharing (a decoder using an encoder's weights) and aliasing (an input
layer is its data buffer) are decided here, once, not in every op.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from importlib import resources

from singa_dsl.runtime.plan_types import BufferDecl, Launch, ProgramDecl
from . import gemm as gemm_mod
from .model import LayerSpec, ParamSpec

COL_SUM_COLS = 8                # columns one work-item of common.cl's col_sum adds up
LOCAL = 64                      # one work-group size for element-wise kernels: few JITs
BUILD_OPTIONS = ("-cl-mad-enable", "-cl-fast-relaxed-math")


def round_up(n: int, step: int) -> int:
    return max(step, -(-n // step) * step)


@dataclass(frozen=True)
class BackwardTargets:
    """Which gradients a layer's backward must produce, and whether each overwrites its
    buffer (the first writer) or adds to it (a later consumer of the same tensor)."""
    dx: tuple[bool, ...]             # per source: produce its gradient?
    dx_accumulate: tuple[bool, ...]
    dparam_accumulate: dict          # param key → accumulate?


class Emitter:
    def __init__(self, batch: int, prefix: str, params: dict[str, ParamSpec],
                 field_buffers: dict[str, str], seed: int = 0):
        self.batch = batch
        self.seed = seed
        self.prefix = prefix                     # "train" / "test": activations are per phase
        self.params = params
        self.field_buffers = field_buffers       # "mnist.image" → buffer name
        self.buffers: dict[str, BufferDecl] = {}
        self.programs: dict[str, ProgramDecl] = {}
        self.launches: list[Launch] = []
        self.aliases: dict[str, str] = {}        # layer → buffer of another tensor
        self.layer_ids: dict[str, int] = {}
        self.extras: dict[str, dict] = {}        # per-layer facts the runtime needs (losses)
        self.side_lists: dict[str, list[Launch]] = {}   # other launch lists ("init", ...)
        # Which rows of the global batch this plan computes (a distributed worker: its
        # share); random draws are counted in global rows, so that a group of workers draws
        # the numbers one worker would.
        self.row0, self.rows_total = 0, batch
        # Activations a producer's kernel may apply in its epilogue (set by the lowering:
        # producer → the activation layer that alone reads it), and those taken (activation
        # → producer): a taken activation emits no forward of its own.
        self.epilogue_candidates: dict[str, LayerSpec] = {}
        self.fused_into: dict[str, str] = {}

    def rng_offset(self, n: int) -> tuple[int, int]:
        """(first global element index, elements in the global batch) for a tensor of ``n``
        values in this plan's rows."""
        per = n // self.batch if self.batch else 0
        return self.row0 * per, self.rows_total * per

    # ---- naming -------------------------------------------------------------------------
    def source(self, layer: LayerSpec, i: int) -> str:
        """Buffer holding source i of a layer (a data field or another layer's output)."""
        s = layer.sources[i]
        return self.field_buffers[s] if s in self.field_buffers else self.act(s)

    def take_activation(self, layer: LayerSpec, kinds) -> LayerSpec | None:
        """The activation layer that alone reads ``layer``'s output, when it is one of
        ``kinds`` (what ``layer``'s kernel can apply as it stores): ``layer`` then writes
        that activation's output, and the activation's own forward emits nothing."""
        act = self.epilogue_candidates.get(layer.name)
        if act is None or act.op not in kinds:
            return None
        self.fused_into[act.name] = layer.name
        return act

    def act(self, layer: str) -> str:
        return self.aliases.get(layer, f"{self.prefix}:act:{layer}")

    def grad(self, layer: str) -> str:
        return f"{self.prefix}:grad:{layer}"

    def source_grad(self, layer: LayerSpec, i: int) -> str:
        return self.grad(layer.sources[i])

    def owner(self, layer: LayerSpec, slot: str) -> tuple[ParamSpec, bool]:
        """The param that holds a slot's values, and whether it is used transposed."""
        p = self.params[f"{layer.name}.{slot}"]
        if p.share_of is None:
            return p, False
        return self.params[p.share_of], p.transpose

    def param(self, layer: LayerSpec, slot: str) -> str:
        return f"param:{self.owner(layer, slot)[0].key}"

    def pgrad(self, layer: LayerSpec, slot: str) -> str:
        return f"pgrad:{self.owner(layer, slot)[0].key}"

    def layer_id(self, name: str) -> int:
        return self.layer_ids.setdefault(name, len(self.layer_ids) + 1)

    # ---- declaring ----------------------------------------------------------------------
    def declare(self, name: str, elements: int, dtype: str = "float32") -> str:
        nbytes = max(4, int(elements) * 4)
        old = self.buffers.get(name)
        if old is None or old.nbytes < nbytes:
            self.buffers[name] = BufferDecl(name, nbytes, dtype)
        return name

    def alias(self, layer: str, buffer: str):
        self.aliases[layer] = buffer

    def program(self, family: str) -> str:
        """The program built from compiler/ops/<family>.cl (one per family)."""
        name = f"ops_{family}"
        if name not in self.programs:
            ops = resources.files("singa_dsl.compiler.ops")
            text = ops.joinpath("fastmath.cl").read_text() + "\n" + \
                ops.joinpath(f"{family}.cl").read_text()
            self.programs[name] = ProgramDecl(name, text, BUILD_OPTIONS, f"{family} kernels")
        return name

    # ---- launching ----------------------------------------------------------------------
    def launch(self, family: str, kernel: str, items: int | tuple, args: tuple, tag: str,
               local: int | tuple = LOCAL):
        """Launch ``kernel`` over ``items`` work-items (rounded up to whole work-groups; each
        kernel checks its own bounds)."""
        if isinstance(items, int):
            gsize, lsize = (round_up(items, local),), (local,)
        else:
            lsize = local if isinstance(local, tuple) else (local,) + (1,) * (len(items) - 1)
            gsize = tuple(round_up(n, l) for n, l in zip(items, lsize))
        self.launches.append(Launch(self.program(family), kernel, gsize, lsize, tuple(args), tag))

    @contextlib.contextmanager
    def into(self, list_name: str):
        """Send the launches emitted inside the block to another launch list of the plan
        (e.g. "init", run once before training) instead of this phase's list."""
        saved = self.launches
        self.launches = self.side_lists.setdefault(list_name, [])
        try:
            yield
        finally:
            self.launches = saved

    def gemm(self, tag: str, **kw):
        self._add(gemm_mod.gemm_launch(tag=tag, origin=f"sgemm in layer {tag}", **kw))

    def gemm_pack_b(self, tag: str, into: str, **kw) -> str:
        """Pack B's GEMM panels into buffer ``into`` once (see gemm_launch's b_packed)."""
        self._add(gemm_mod.gemm_pack_b(into=into, tag=tag, origin=f"sgemm in layer {tag}",
                                       **kw))
        return into

    def _add(self, emit) -> None:
        for p in emit.programs:
            self.programs.setdefault(p.name, p)
        for b in emit.buffers:
            self.declare(b.name, b.nbytes // 4)
        self.launches.extend(emit.launches)

    def fill(self, buffer: str, n: int, value: float, tag: str):
        self.launch("common", "fill", n, (("buf", buffer), ("int", n), ("float", value)), tag)

    def col_sum(self, x: str, out: str, rows: int, cols: int, accumulate: bool, tag: str):
        """out[j] (+)= the sum of column j of x[rows, cols] (a bias gradient)."""
        self.launch("common", "col_sum", -(-cols // COL_SUM_COLS),
                    (("buf", x), ("buf", out), ("int", rows), ("int", cols),
                     ("int", int(accumulate))), tag)


def f(x: float) -> tuple:
    return ("float", float(x))


def i(x: int) -> tuple:
    return ("int", int(x))


def b(name: str) -> tuple:
    return ("buf", name)


def size(shape) -> int:
    return math.prod(shape)
