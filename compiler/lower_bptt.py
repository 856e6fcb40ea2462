"""Lowering ``algorithm bptt``: SINGA's kBPTT — BP over the net unrolled ``unroll`` steps
(truncated BPTT of that length).

The net is lowered once, not as T copies: every layer's batch is the B·T rows of all steps
(batch-major: row b·T + t is step t of sequence b, how a sequence field [B, T, ...] is
uploaded, so the fields need no slicing).  A layer without state computes each row on its
own, so running it once over all steps' rows is running it at every step: one dense GEMM
over B·T rows instead of T GEMMs over B, one launch instead of T.  A recurrent layer
(compiler/ops/recurrent_cl.py) loops over the steps inside its own lowering, reading and
writing its step's rows of the sequence buffers.  The differences from SINGA's unrolled net
are the order of the work (each layer over all steps, then the next), not the values — with
one exception: batchnorm's batch statistics are those of all steps' rows together.  BP's
lowering then does the rest, with these additions:

* each loss layer's per-row losses (and hits) are summed per sequence into a [B] buffer,
  which the runtime averages and divides by the steps: the loss per step;
* a loss layer's gradient is that of each step's batch mean, as in the unrolled net: the
  softmax loss's scale is multiplied by T (its kernel divides by the B·T rows), another loss
  is emitted over B rows of T·size values (its kernel divides by B);
* ``bptt { carry_state: true }``: step 0 of each recurrent layer reads, instead of zeros,
  the last step's state of the previous batch (text batches are parallel streams, so row b
  continues where row b stopped); the copy is made at the end of each phase's list, and
  the launch list "init" zeroes it before training, and "reset:<phase>" before each
  evaluation (which reads its held-out streams from their start).

Random draws (dropout) are counted in the global rows B·T: a group of workers, each with
its share of the sequences, draws one worker's numbers.

The metric is the loss per step — nats per character for a text source — averaged over the
steps and the batch, with its perplexity; each step's loss still has SINGA's gradient
(p − onehot)/B, so the gradient is that of the sum over steps.
"""
from __future__ import annotations

import dataclasses

from .emit import Emitter, b, f, i
from .lower import ALGORITHM_LOWERINGS, _emit_backward, lower_with
from .ops import OPS
from .ops.connection_cl import block_copy
from .ops.recurrent_cl import SEQ_KEY, carry_buffers, cell_buffer
from .ops.registry import TensorInfo
from .program import CheckedProgram


def lower_bptt(program: CheckedProgram):
    steps = program.net.unroll
    carry = bool(program.algorithm.args.get("carry_state", False))
    recurrent = [l for l in program.net.layers if OPS[l.op].recurrent]
    losses = [l for l in program.net.layers if OPS[l.op].role == "loss"]

    def prologue(program, em: Emitter, phase: str):
        em.extras[SEQ_KEY] = {"steps": steps, "carry": carry}
        em.batch *= steps
        em.row0, em.rows_total = em.row0 * steps, em.rows_total * steps

    def per_sequence_losses(em: Emitter):
        rows = em.batch // steps
        for layer in losses:
            facts = dict(em.extras.get(layer.name) or {})
            for key, scale in (("loss", 1.0), ("correct", 1.0 / steps)):
                if facts.get(key) is None:
                    continue
                out = em.declare(f"{facts[key]}:per_sequence", rows)
                em.launch("recurrent", "seq_sum", rows,
                          (b(facts[key]), b(out), i(rows), i(steps), f(scale)), layer.name)
                facts[key] = out
            em.extras[layer.name] = facts

    def backward_layer(op, em: Emitter, layer, targets):
        if op.role != "loss":
            op.emit_backward(em, layer, targets)
        elif layer.op == "softmax_loss":
            attrs = {**layer.attrs, "scale": layer.attrs["scale"] * steps}
            op.emit_backward(em, dataclasses.replace(layer, attrs=attrs), targets)
        else:                        # B rows of T·size values: the kernel divides by B
            ins = tuple(TensorInfo((steps * s.size,), s.dtype) for s in layer.in_shapes)
            em.batch //= steps
            try:
                op.emit_backward(em, dataclasses.replace(layer, in_shapes=ins), targets)
            finally:
                em.batch *= steps

    def carry_over(em: Emitter):
        if not carry:
            return
        rows = em.batch // steps
        for layer in recurrent:
            h = layer.attrs["hidden"]
            sources = (em.act(layer.name), cell_buffer(em.prefix, layer.name))
            for src, dst in zip(sources, carry_buffers(em.prefix, layer.name, layer.op)):
                em.declare(dst, rows * h)
                block_copy(em, f"carry {layer.name}", src, (steps - 1) * h, steps * h, dst,
                           0, h, rows, h)
                for side in ("init", f"reset:{em.prefix}"):
                    with em.into(side):
                        em.fill(dst, rows * h, 0.0, f"carry {layer.name}")

    def epilogue(em: Emitter):
        carry_over(em)
        em.batch //= steps            # the phase's batch again, for its feeds
        em.row0, em.rows_total = em.row0 // steps, em.rows_total // steps

    def train_step(program, em):
        per_sequence_losses(em)
        _emit_backward(program, em, backward_layer)
        epilogue(em)

    def eval_step(program, em, phase):
        per_sequence_losses(em)
        epilogue(em)

    kind = _source_kind(program)
    metric = {"name": "nats_per_char" if kind == "text" else "nats_per_step",
              "reduce": "mean", "steps": steps, "perplexity": True}
    return lower_with(program, train_step, emit_eval_step=eval_step, emit_prologue=prologue,
                      metric=metric)


def _source_kind(program) -> str | None:
    for spec in program.data.values():
        train = spec.phases.get("train")
        if train is not None:
            return train.kind
    return None


ALGORITHM_LOWERINGS["bptt"] = lower_bptt
