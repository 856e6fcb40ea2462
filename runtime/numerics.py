"""NaN/Inf in a training step, caught at the step it appears (TensorFlow's check_numerics).

Every step, ``StepCheck`` scans the step's tensors on the device after the train launch list:
one small kernel per tensor tests each value's exponent bits (so it works in kernels built
with -cl-fast-relaxed-math, where a softmax may swallow an Inf and leave the loss finite) and
raises one flag; the host reads the flag with the losses.  Only when it is raised does
``first_non_finite`` read the tensors back to say where the first one appeared.

The step's tensors are checked in the order the train launch list computes them: the data
fed in, then every buffer in the order a launch first touches it — forward outputs layer by
layer, the loss, the gradients back through the net, the param gradients.  The first
non-finite one names the layer whose launch produced it.  Buffer names say what a tensor is
(compiler/lower.py): ``train:act:<layer>`` a layer's output, ``train:grad:<layer>`` the
gradient of a layer's output, ``pgrad:<param>`` a param's gradient, ``train:data:<field>``
the batch.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyopencl as cl

from .plan_types import FUSED_FLAGS

CHECKED_PREFIXES = ("train:", "pgrad:")
# What the device scans every step: the tensors every value of a step flows into (a NaN in a
# gate or a packed copy reaches its layer's output or a gradient); the diagnosis that runs
# once the flag is up reads every CHECKED buffer, so it can name an intermediate too.
SCANNED_PREFIXES = ("train:data:", "train:act:", "train:grad:", "train:loss:", "pgrad:")
HINT = "lower the learning rate, add clip: to the updater, or run with --on-nan skip to drop " \
       "such steps"


@dataclass(frozen=True)
class Finding:
    buffer: str        # the tensor, by its buffer name
    layer: str         # the layer whose launch produced it ("" for data fed in)
    nan: int
    inf: int
    size: int
    counted: bool = True   # False: a fused update's flag (the gradient was never stored)

    def what(self) -> str:
        parts = self.buffer.split(":")
        if self.buffer.startswith("pgrad:"):
            return f"the gradient of param {parts[1]}"
        if parts[1] == "act":     # another layer's output: an activation its kernel applied
            return "its output" if parts[2] == self.layer else \
                f"the output of '{parts[2]}', which its kernel computes"
        if parts[1] == "grad":
            return f"the gradient of layer '{parts[2]}' output"
        if parts[1] in ("loss", "prob"):
            return f"its {'per-sample loss' if parts[1] == 'loss' else 'probabilities'}"
        return f"tensor {self.buffer}"

    def counts(self) -> str:
        if not self.counted:
            return f"NaN or Inf among {self.size} values"
        kinds = [f"{n} {k}" for n, k in ((self.nan, "NaN"), (self.inf, "Inf")) if n]
        return f"{' and '.join(kinds)} of {self.size} values"

    def hint(self) -> str:
        if self.buffer.startswith("train:data:"):
            return ("a data file holds it (the readers pass values on as stored): clean the "
                    "data, or run with --on-nan skip to drop the batches that carry it")
        return HINT

    def message(self, step: int) -> str:
        """check_numerics' shape: who, which tensor, what was found."""
        if self.buffer.startswith("train:data:"):
            field = self.buffer.split(":", 2)[2]
            return (f"numerics check at step {step}: the data field '{field}' fed to the net "
                    f"holds non-finite values ({self.counts()}; tensor {self.buffer})")
        verb = "the backward pass of layer" if ":grad:" in self.buffer or \
            self.buffer.startswith("pgrad:") else "layer"
        return (f"numerics check at step {step}: {verb} '{self.layer}' produced non-finite "
                f"values in {self.what()} ({self.counts()}; tensor {self.buffer})")


def checked_buffers(plan, list_name: str = "train", fused: bool = False) -> list[tuple[str, str]]:
    """(buffer, layer) in the order the launch list first touches them, data first.
    ``fused``: with the gradient of each param whose update its GEMM applies (never stored;
    its flag tells) at that GEMM."""
    launches = dict(plan.kernels.launch_lists).get(list_name, ())
    phase = plan.phase(list_name)
    at = {fu.index: fu.param for fu in plan.fused_updates} if fused and list_name == "train" \
        else {}
    order: dict[str, str] = {f.buffer: "" for f in (phase.feeds if phase else ())}
    for i, launch in enumerate(launches):
        for arg in launch.args:
            if arg[0] in ("buf", "buf_offset") and arg[1].startswith(CHECKED_PREFIXES):
                order.setdefault(arg[1], launch.tag)
        if i in at:
            order.setdefault(f"pgrad:{at[i]}", launch.tag)
    return list(order.items())


def first_non_finite(executor, plan, list_name: str = "train") -> Finding | None:
    dtypes = {b.name: b.dtype for b in plan.kernels.buffers}
    flags = executor.read(FUSED_FLAGS) if plan.fused_updates and list_name == "train" else None
    fused = {f"pgrad:{fu.param}": fu for fu in plan.fused_updates}
    sizes = {p.key: int(np.prod(p.shape)) for p in plan.params}
    for name, layer in checked_buffers(plan, list_name, fused=True):
        if name in fused and flags is not None:
            fu = fused[name]
            if flags[fu.flag_slot]:
                return Finding(name, layer, 0, 0, sizes[fu.param], counted=False)
            continue
        if np.dtype(dtypes.get(name, "float32")).kind != "f":
            continue
        values = executor.read(name)
        if np.isfinite(values).all():
            continue
        nan = int(np.isnan(values).sum())
        return Finding(name, layer, nan, int(values.size - nan - np.isfinite(values).sum()),
                       int(values.size))
    return None


CHECK_SOURCE = """
__kernel void singa_nonfinite(__global const uint *x, const uint n, const uint chunk,
                              __global int *flag) {
    uint start = get_global_id(0) * chunk;
    uint end = min(n, start + chunk);
    uint bad = 0;
    for (uint i = start; i < end; ++i)
        bad |= (x[i] & 0x7f800000u) == 0x7f800000u;     /* exponent all ones: Inf or NaN */
    if (bad) *flag = 1;
}
"""
# values per work-item: a CPU scans a contiguous run per thread (PoCL: ~17 GB/s on 2 cores);
# a GPU one value per work-item, so that neighbouring work-items read neighbouring words
CPU_CHUNK, GPU_CHUNK = 1024, 1


class StepCheck:
    """The device-side scan of a step's float tensors, enqueued after the train list."""

    def __init__(self, executor, plan, list_name: str = "train"):
        device = executor.device
        self._device, self._executor = device, executor
        program = device.build(CHECK_SOURCE, (), "numerics check (--on-nan)")
        self._flag = device.alloc(4)
        self._zero = np.zeros(1, np.int32)
        # fused updates (compiler/fuse_update.py) flag their own gradients in FUSED_FLAGS
        self._fused = np.zeros(len(plan.fused_updates), np.int32) \
            if plan.fused_updates and list_name == "train" else None
        self.reset()
        decls = {b.name: b for b in plan.kernels.buffers}
        chunk = CPU_CHUNK if device.is_cpu else GPU_CHUNK
        self._launches = []
        self.buffers = []
        for name, _ in checked_buffers(plan, list_name):
            decl = decls.get(name)
            if decl is None or np.dtype(decl.dtype) != np.float32:
                continue
            n = decl.nbytes // 4
            # never-written parts of a buffer must read as finite, not as stale bits
            executor.write(name, np.zeros(n, np.float32))
            if not name.startswith(SCANNED_PREFIXES):
                continue
            kernel = cl.Kernel(program, "singa_nonfinite")
            kernel.set_args(executor.buffer(name), np.uint32(n), np.uint32(chunk), self._flag)
            self._launches.append((kernel, (max(1, -(-n // chunk)),)))
            self.buffers.append(name)

    def enqueue(self) -> None:
        queue = self._device.queue
        for kernel, size in self._launches:
            cl.enqueue_nd_range_kernel(queue, kernel, size, None)

    def tripped(self) -> bool:
        """Whether a scanned tensor held a NaN or Inf, or a GEMM applying a fused update
        stored one (waits for the queued work)."""
        out = np.empty(1, np.int32)
        self._device.download(self._flag, out)
        if self._fused is not None:
            out[0] |= self._executor.read(FUSED_FLAGS).any()
        return bool(out[0])

    def reset(self) -> None:
        self._device.upload(self._flag, self._zero)
        if self._fused is not None:
            self._executor.write(FUSED_FLAGS, self._fused)
