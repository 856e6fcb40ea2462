"""Memory per device, estimated at check time from shapes alone (nothing is allocated), and
the fit check run before the runtime allocates anything.

What one device holding the whole net allocates (as compiler/lower.py lays the Plan out):
every param with its gradient and its updater state; for every phase (train, test,
validate) each layer's output for that phase's batch (times the unroll), and for train the
gradient of each output too; and the GEMM/convolution scratch, which is about the largest
operand pair one layer multiplies.  A partitioned job needs less per worker; this is the
single-device figure ``singac check`` prints.

Two limits make a program impossible on a device: the total against its global memory, and
the largest single buffer against its max allocation size (CL_DEVICE_MAX_MEM_ALLOC_SIZE,
often a quarter of the memory).  A third holds on every device: kernels index tensors with
32-bit ints, so no tensor may hold more than 2**31 - 1 values.
"""
from __future__ import annotations

from dataclasses import dataclass

from singa_dsl.errors import SingaConfigError, SingaErrors

BYTES = 4                      # float32 and int32 alike
INDEX_LIMIT = 2**31 - 1        # values per tensor: kernels index with int


@dataclass(frozen=True)
class Tensor:
    """One buffer the runtime will allocate, with the layer it belongs to."""
    layer: str
    what: str                  # "weight fc1.w", "output (train batch 64)", "im2col scratch"
    values: int
    span: object               # the layer's Span

    @property
    def nbytes(self) -> int:
        return self.values * BYTES


@dataclass(frozen=True)
class MemoryEstimate:
    params: int
    gradients: int
    updater_state: int
    activations: dict          # phase -> bytes of layer outputs (train: and their gradients)
    scratch: int
    largest: Tensor | None

    @property
    def total(self) -> int:
        return self.params + self.gradients + self.updater_state + \
            sum(self.activations.values()) + self.scratch

    def parts(self) -> dict[str, int]:
        out = {"params": self.params, "gradients": self.gradients,
               "updater state": self.updater_state}
        out.update({f"{phase} activations": v for phase, v in self.activations.items()})
        out["scratch"] = self.scratch
        return out


# Per-sample buffers some ops keep beside their output, in multiples of the output size
# (recurrent gates for the backward pass; pooling's argmax; lrn's scale; dropout's mask).
EXTRA_OUTPUTS = {"gru": 4, "lstm": 5, "rnn": 1, "max_pool": 1, "lrn": 1}
TRAIN_ONLY_OUTPUTS = {"dropout": 1}


def _extra_values(layer, phase: str) -> int:
    """Values per sample a layer keeps besides its output in one phase."""
    out = layer.out.size if layer.out is not None else 0
    extra = EXTRA_OUTPUTS.get(layer.op, 0) * out
    if phase == "train":
        extra += TRAIN_ONLY_OUTPUTS.get(layer.op, 0) * out
    if layer.op == "rbm" and layer.in_shapes:       # cd's positive and negative phases
        extra += 2 * out + layer.in_shapes[0].size
    if layer.op == "conv" and phase == "train":     # kept until the backward
        extra += _conv_input_values(layer)
    return extra


def _im2col(layer) -> bool:
    """conv_cl.py: stride 1 and pad < kernel run the direct kernels (a padded input copy);
    anything else unfolds the input into a column matrix."""
    a = layer.attrs
    return a.get("stride", 1) != 1 or a.get("pad", 0) >= a.get("kernel", 1)


def _conv_input_values(layer) -> int:
    """Per sample: the column matrix (im2col) or the zero-padded input copy (direct)."""
    if not layer.in_shapes or layer.out is None or len(layer.in_shapes[0].shape) != 3:
        return 0
    c, h, w = layer.in_shapes[0].shape
    k, pad = layer.attrs.get("kernel", 1), layer.attrs.get("pad", 0)
    if _im2col(layer):
        return c * k * k * (layer.out.size // max(1, layer.out.shape[0]))
    return c * (h + 2 * pad) * (w + 2 * pad)


def phase_batches(program) -> dict[str, tuple[int, object]]:
    """phase -> (batch, span of its data source call), for the data block the net reads."""
    blocks = {s.split(".")[0] for l in program.net.layers for s in l.sources if "." in s}
    out = {}
    for name in sorted(blocks & set(program.data)):
        for phase, spec in program.data[name].phases.items():
            batch = spec.args.get("batch", 1)
            if phase not in out or batch > out[phase][0]:
                out[phase] = (batch, spec.span)
    return out or {"train": (program.batch, program.net.span)}


def tensors(program) -> list[Tensor]:
    """Every param and every per-phase output the runtime allocates, by layer."""
    unroll = program.net.unroll
    batches = phase_batches(program)
    out = []
    for layer in program.net.layers:
        for p in layer.params:
            if p.share_of is None:
                out.append(Tensor(layer.name, f"{p.role} {p.key}", p.size, layer.span))
        if layer.out is not None:
            for phase, (batch, _) in batches.items():
                out.append(Tensor(layer.name, f"output ({phase} batch {batch})",
                                  layer.out.size * batch * unroll, layer.span))
        if layer.op == "conv":
            col = _conv_input_values(layer) * max(b for b, _ in batches.values())
            out.append(Tensor(layer.name, "im2col columns" if _im2col(layer) else
                              "padded input", col, layer.span))
    return out


def _gemm_scratch(program, batch: int) -> int:
    """The shared GEMM packing buffer: about the largest weight plus its input panel."""
    best = 0
    for layer in program.net.layers:
        if layer.op in ("dense", "conv", "rbm") and layer.in_shapes:
            weights = sum(p.size for p in layer.params if p.role == "weight")
            best = max(best, weights + layer.in_shapes[0].size * batch)
    return best * BYTES


def estimate(program) -> MemoryEstimate:
    params = program.param_count * BYTES
    updater = program.updater
    states = len(updater.definition.state_for(updater.args)) if updater is not None else 1
    unroll = program.net.unroll
    batches = phase_batches(program)
    outputs = sum(l.out.size for l in program.net.layers if l.out is not None)
    activations = {}
    for phase, (batch, _) in batches.items():
        extra = sum(_extra_values(l, phase) for l in program.net.layers)
        per_sample = outputs * (2 if phase == "train" else 1) + extra   # train: + gradients
        activations[phase] = per_sample * batch * unroll * BYTES
    scratch = _gemm_scratch(program, max(b for b, _ in batches.values()))
    all_tensors = tensors(program)
    largest = max(all_tensors, key=lambda t: t.values) if all_tensors else None
    return MemoryEstimate(params, params, params * states, activations, scratch, largest)


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def describe(est: MemoryEstimate) -> str:
    """The line ``singac check`` prints."""
    parts = ", ".join(f"{k} {human_bytes(v)}" for k, v in est.parts().items() if v)
    line = f"memory per device (estimate): {parts}; total {human_bytes(est.total)}"
    if est.largest is not None:
        line += f"; largest buffer {human_bytes(est.largest.nbytes)} ({est.largest.what})"
    return line


# ---- limits ------------------------------------------------------------------------------

def index_errors(program) -> list[SingaConfigError]:
    """Tensors too large for 32-bit indexing, on any device."""
    errors, seen = [], set()
    for t in tensors(program):
        if t.values > INDEX_LIMIT and t.layer not in seen:
            seen.add(t.layer)
            errors.append(SingaConfigError(
                f"layer '{t.layer}': its {t.what} has {t.values:,} values; kernels index "
                f"a tensor with 32-bit ints, so at most {INDEX_LIMIT:,}",
                t.span, _hint(t), program.source))
    return errors


def fit_errors(program, device: str, global_memory: int, max_alloc: int,
               est: MemoryEstimate | None = None) -> list[SingaConfigError]:
    """Why the program cannot run on a device with these limits (empty: it fits)."""
    est = est or estimate(program)
    errors = index_errors(program)
    too_wide = {t.layer for t in tensors(program) if t.values > INDEX_LIMIT}
    too_big = [t for t in tensors(program) if t.nbytes > max_alloc and t.layer not in too_wide]
    for t in sorted(too_big, key=lambda t: -t.values)[:3]:
        errors.append(SingaConfigError(
            f"layer '{t.layer}': its {t.what} needs {human_bytes(t.nbytes)} in one buffer, "
            f"more than {device} allocates at once ({human_bytes(max_alloc)})",
            t.span, _hint(t), program.source))
    if est.total > global_memory:
        acts = sum(est.activations.values())
        phase = max(est.activations, key=est.activations.get)
        span = phase_batches(program)[phase][1] if acts > est.total / 2 else program.net.span
        errors.append(SingaConfigError(
            f"the job needs about {human_bytes(est.total)} on {device}, which has "
            f"{human_bytes(global_memory)} of global memory ("
            + ", ".join(f"{k} {human_bytes(v)}" for k, v in est.parts().items() if v) + ")",
            span, "use a smaller batch (activations grow with it)" if acts > est.total / 2
            else "use fewer units or filters, or partition the net over several workers",
            program.source))
    return errors


def check_fit(program, device: str, global_memory: int, max_alloc: int) -> None:
    """Raise every reason the program cannot fit the device, located in the program."""
    errors = fit_errors(program, device, global_memory, max_alloc)
    if errors:
        raise SingaErrors(errors) if len(errors) > 1 else errors[0]


def _hint(t: Tensor) -> str:
    if t.what.startswith("output"):
        return "use a smaller batch or fewer units/filters in this layer"
    return "use fewer units or filters in this layer (or a smaller kernel)"


def check_device_fit(program, selector: str | None = None) -> None:
    """check_fit against the OpenCL device a run would open (``--device``, PYOPENCL_CTX or
    PoCL's CPU device), reading its limits without creating a context."""
    import os
    from singa_dsl.runtime.device import select_device
    device = select_device(selector or os.environ.get("PYOPENCL_CTX") or None)
    check_fit(program, device.name.strip(), int(device.global_mem_size),
              int(device.max_mem_alloc_size))
