"""Lowering ``algorithm bptt``: SINGA's kBPTT — BP over the net unrolled ``unroll`` steps
(truncated BPTT of that length).

``compiler/unroll.py`` makes the copies; then this is BP's lowering with three additions:

* a prologue per phase cutting each sequence field [B, T, ...] (uploaded once per batch)
  into its T per-step buffers ``<phase>:data:block.f[t]`` (kernel take_step_*);
* the copies' shared params: every copy's gradient lands in copy 0's pgrad buffer (written
  by the first copy the backward sweep reaches, the last step, and accumulated by the
  others), and only copy 0's params get updater launches (they are the owners);
* ``bptt { carry_state: true }``: copy 0 of each recurrent layer reads, instead of zeros,
  the last step's state of the previous batch (text batches are parallel streams, so row i
  continues where row i stopped); the copy is made at the end of each phase's list, and
  the launch list "init" zeroes it before training, and "reset:<phase>" before each
  evaluation (which reads its held-out streams from their start).

The metric is the loss per step — nats per character for a text source — averaged over the
steps and the batch, with its perplexity; each step's loss still has SINGA's gradient
(p − onehot)/B, so the gradient is that of the sum over steps.
"""
from __future__ import annotations

import dataclasses
import math

from .emit import Emitter, b, i
from .lower import ALGORITHM_LOWERINGS, _emit_backward, lower_with
from .ops import OPS
from .ops.recurrent_cl import carry_buffers, cell_buffer
from .program import CheckedProgram
from .unroll import copy_name, field_step, unroll_net


def lower_bptt(program: CheckedProgram):
    steps = program.net.unroll
    carry = bool(program.algorithm.args.get("carry_state", False))
    original = program.net
    unrolled = dataclasses.replace(program, net=unroll_net(original, steps))
    recurrent = [l for l in original.layers if OPS[l.op].recurrent]
    used_fields = {s for l in unrolled.net.layers for s in l.sources}

    def prologue(program, em: Emitter, phase: str):
        em.extras["carry_state"] = carry
        _slice_fields(program, em, steps, used_fields)

    def carry_over(em: Emitter):
        if not carry:
            return
        n_of = {l.name: em.batch * l.attrs["hidden"] for l in recurrent}
        for layer in recurrent:
            last = copy_name(layer.name, steps - 1)
            sources = (em.act(last), cell_buffer(em.prefix, last))
            for src, dst in zip(sources, carry_buffers(em.prefix, layer.name, layer.op)):
                n = n_of[layer.name]
                em.declare(dst, n)
                em.launch("common", "copy", n, (b(src), b(dst), i(n), i(0)), f"carry {layer.name}")
                for side in ("init", f"reset:{em.prefix}"):
                    with em.into(side):
                        em.fill(dst, n, 0.0, f"carry {layer.name}")

    def train_step(program, em):
        _emit_backward(program, em)
        carry_over(em)

    def eval_step(program, em, phase):
        carry_over(em)

    kind = _source_kind(program)
    metric = {"name": "nats_per_char" if kind == "text" else "nats_per_step",
              "reduce": "mean", "steps": steps, "perplexity": True}
    return lower_with(unrolled, train_step, emit_eval_step=eval_step, emit_prologue=prologue,
                      metric=metric)


def _source_kind(program) -> str | None:
    for spec in program.data.values():
        train = spec.phases.get("train")
        if train is not None:
            return train.kind
    return None


def _slice_fields(program, em: Emitter, steps: int, used: set[str]):
    """Per-step buffers for every sequence field a copy reads."""
    for ref, buffer in list(em.field_buffers.items()):
        block, name = ref.split(".", 1)
        shape, dtype = program.data[block].phases["train"].fields[name]
        if not shape or shape[0] != steps:
            continue
        inner = math.prod(shape[1:])
        kernel = "take_step_int" if dtype == "int32" else "take_step_float"
        for t in range(steps):
            step_ref = field_step(ref, t)
            if step_ref not in used:
                continue
            dst = em.declare(f"{em.prefix}:data:{step_ref}", em.batch * inner, dtype)
            em.field_buffers[step_ref] = dst
            em.launch("recurrent", kernel, em.batch * inner,
                      (b(buffer), b(dst), i(em.batch), i(steps), i(inner), i(t)), step_ref)


ALGORITHM_LOWERINGS["bptt"] = lower_bptt
