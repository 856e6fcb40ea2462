"""OpenCL lowering of connection ops.  Two move no data: input (a view of its data buffer)
and split (a view of its source; its consumers' gradients are summed by accumulation).
concat and slice are strided block copies; embedding gathers rows (its backward scatter-adds
deterministically, one work-item per weight); onehot and argmax have no backward.  Kernels in
connection.cl; argmax (of the loss family) is here because it is a pure data movement too."""
from __future__ import annotations

from ..emit import BackwardTargets, Emitter, b, i
from .registry import attach_lowering


def view_forward(em: Emitter, layer):
    em.alias(layer.name, em.source(layer, 0))


def input_backward(em: Emitter, layer, t: BackwardTargets):
    return   # data needs no gradient


def split_backward(em: Emitter, layer, t: BackwardTargets):
    if t.dx[0]:
        n = em.batch * layer.out.size
        em.launch("common", "copy", n, (b(em.grad(layer.name)), b(em.source_grad(layer, 0)),
                                        i(n), i(int(t.dx_accumulate[0]))), layer.name)


attach_lowering("input", view_forward, input_backward)
attach_lowering("split", view_forward, split_backward)


# ---- concat and slice: strided block copies (kernels in connection.cl) -----------------------

def _blocks(em: Emitter, shape, axis: int) -> tuple[int, int]:
    """(rows, inner): the tensor as rows × (shape[axis]·inner) with the batch in the rows."""
    rows = em.batch
    for d in shape[:axis]:
        rows *= d
    inner = 1
    for d in shape[axis + 1:]:
        inner *= d
    return rows, inner


def _copy(em: Emitter, layer, src, s_off, s_ld, dst, d_off, d_ld, rows, cols, acc, dtype):
    if dtype == "int32":
        em.launch("connection", "block_copy_int", rows * cols,
                  (b(src), i(s_off), i(s_ld), b(dst), i(d_off), i(d_ld), i(rows), i(cols)),
                  layer.name)
    else:
        em.launch("connection", "block_copy", rows * cols,
                  (b(src), i(s_off), i(s_ld), b(dst), i(d_off), i(d_ld), i(rows), i(cols),
                   i(int(acc))), layer.name)


def block_copy(em: Emitter, tag: str, src: str, s_off: int, s_ld: int, dst: str, d_off: int,
               d_ld: int, rows: int, cols: int, *, acc: bool = False, dtype: str = "float32",
               alpha: float = 1.0):
    """dst[d_off + r·d_ld + c] (+)= alpha·src[s_off + r·s_ld + c] for r < rows, c < cols: a
    strided block of one buffer into another (the partitioned executor's gathers, scatters
    and connection layers).  Integer blocks are copied as they are (no acc, no alpha)."""
    if rows * cols == 0:
        return
    if dtype == "int32":
        if acc or alpha != 1.0:
            raise ValueError("integer blocks are only copied")
        em.launch("connection", "block_copy_int", rows * cols,
                  (b(src), i(s_off), i(s_ld), b(dst), i(d_off), i(d_ld), i(rows), i(cols)), tag)
    elif alpha == 1.0:
        em.launch("connection", "block_copy", rows * cols,
                  (b(src), i(s_off), i(s_ld), b(dst), i(d_off), i(d_ld), i(rows), i(cols),
                   i(int(acc))), tag)
    else:
        em.launch("connection", "block_copy_scaled", rows * cols,
                  (b(src), i(s_off), i(s_ld), b(dst), i(d_off), i(d_ld), i(rows), i(cols),
                   i(int(acc)), ("float", float(alpha))), tag)


def concat_forward(em: Emitter, layer):
    axis = layer.attrs["dim"] - 1
    out = layer.out
    y = em.declare(em.act(layer.name), em.batch * out.size, out.dtype)
    rows, inner = _blocks(em, out.shape, axis)
    ld, off = out.shape[axis] * inner, 0
    for k, t in enumerate(layer.in_shapes):
        cols = t.shape[axis] * inner
        _copy(em, layer, em.source(layer, k), 0, cols, y, off, ld, rows, cols, False, out.dtype)
        off += cols


def concat_backward(em: Emitter, layer, t: BackwardTargets):
    axis = layer.attrs["dim"] - 1
    rows, inner = _blocks(em, layer.out.shape, axis)
    ld, off = layer.out.shape[axis] * inner, 0
    for k, s in enumerate(layer.in_shapes):
        cols = s.shape[axis] * inner
        if t.dx[k]:
            _copy(em, layer, em.grad(layer.name), off, ld, em.source_grad(layer, k), 0, cols,
                  rows, cols, t.dx_accumulate[k], "float32")
        off += cols


def _slice_geometry(em: Emitter, layer):
    axis = layer.attrs["dim"] - 1
    shape = layer.in_shapes[0].shape
    rows, inner = _blocks(em, shape, axis)
    return rows, shape[axis] * inner, layer.attrs["begin"] * inner, \
        (layer.attrs["end"] - layer.attrs["begin"]) * inner


def slice_forward(em: Emitter, layer):
    out = layer.out
    y = em.declare(em.act(layer.name), em.batch * out.size, out.dtype)
    rows, ld, off, cols = _slice_geometry(em, layer)
    _copy(em, layer, em.source(layer, 0), off, ld, y, 0, cols, rows, cols, False, out.dtype)


def slice_backward(em: Emitter, layer, t: BackwardTargets):
    if not t.dx[0]:
        return
    rows, ld, off, cols = _slice_geometry(em, layer)
    dx = em.source_grad(layer, 0)
    if not t.dx_accumulate[0]:       # the first writer: zeros outside the slice
        em.fill(dx, rows * ld, 0.0, layer.name)
    _copy(em, layer, em.grad(layer.name), 0, cols, dx, off, ld, rows, cols, True, "float32")


# ---- embedding, onehot, argmax ------------------------------------------------------------

def _ids_count(em: Emitter, layer) -> int:
    return em.batch * layer.in_shapes[0].size


def embedding_forward(em: Emitter, layer):
    n, dim, vocab = _ids_count(em, layer), layer.attrs["dim"], layer.attrs["vocab"]
    y = em.declare(em.act(layer.name), n * dim)
    em.launch("connection", "embedding_fwd", n * dim,
              (b(em.source(layer, 0)), b(em.param(layer, "w")), b(y), i(n), i(dim), i(vocab)),
              layer.name)


def embedding_backward(em: Emitter, layer, t: BackwardTargets):
    n, dim, vocab = _ids_count(em, layer), layer.attrs["dim"], layer.attrs["vocab"]
    acc = t.dparam_accumulate[f"{layer.name}.w"]
    local = 16 if dim >= 16 else 4
    em.launch("connection", "embedding_bwd", (dim, vocab),
              (b(em.source(layer, 0)), b(em.grad(layer.name)), b(em.pgrad(layer, "w")), i(n),
               i(dim), i(vocab), i(int(acc))), layer.name, local=(local, 1))


def onehot_forward(em: Emitter, layer):
    n, vocab = _ids_count(em, layer), layer.attrs["vocab"]
    y = em.declare(em.act(layer.name), n * vocab)
    em.launch("connection", "onehot_fwd", n * vocab,
              (b(em.source(layer, 0)), b(y), i(n), i(vocab)), layer.name)


def argmax_forward(em: Emitter, layer):
    y = em.declare(em.act(layer.name), em.batch, layer.out.dtype)
    em.launch("connection", "argmax_fwd", em.batch,
              (b(em.source(layer, 0)), b(y), i(em.batch), i(layer.in_shapes[0].size)),
              layer.name, local=8)


def no_backward(em: Emitter, layer, t: BackwardTargets):
    return   # integer ids in, or an integer prediction out: no gradient flows


attach_lowering("concat", concat_forward, concat_backward)
attach_lowering("slice", slice_forward, slice_backward)
attach_lowering("embedding", embedding_forward, embedding_backward)
attach_lowering("onehot", onehot_forward, no_backward)
attach_lowering("argmax", argmax_forward, no_backward)
