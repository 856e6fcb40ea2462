"""Generated .singa programs for the partitioning tests: chains and DAGs of conv, pooling,
dense, activations, concat and dropout (rate 0: off) ending in softmax_loss, on synthetic
data; plus random data, param values and per-layer partition dimensions for them."""
from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

import singa_dsl
from singa_dsl.compiler.ops import OPS
from singa_dsl.compiler.ops.conv import conv_out
from singa_dsl.compiler.ops.pool import pool_out

ACTIVATIONS = ("relu", "sigmoid", "tanh", "stanh")
BATCH = 12          # divisible by 1, 2, 3 and 4 workers


def program_text(body: list[str], shape, classes: int, batch: int = BATCH,
                 partition: str = "batch") -> str:
    layers = "\n".join("  " + line for line in body)
    return (f"job gen {{\n  steps: 1\n  workspace: \"/tmp/singa-partition-tests\"\n}}\n\n"
            f"data d {{\n  train: synthetic(shape: {list(shape)}, classes: {classes}, "
            f"size: {4 * batch}, batch: {batch})\n}}\n\n"
            f"net gen {{\n  partition: {partition}\n{layers}\n}}\n\nalgorithm bp\n\n"
            f"updater sgd {{\n  lr: 0.1\n}}\n")


@st.composite
def nets(draw, workers: int, max_layers: int = 6):
    """(program text, per-sample image shape): every feature count a multiple of ``workers``
    so any layer may be split on features; older tensors are reused to make DAGs."""
    k = lambda: workers * draw(st.integers(1, 2))           # noqa: E731
    c, h = k(), draw(st.integers(4, 6))
    tensors = [("x", (c, h, h))]               # name → per-sample shape
    body = ["x = input(d.image)"]
    used = set()
    for n in range(draw(st.integers(1, max_layers))):
        pick = draw(st.integers(0, len(tensors) - 1)) if draw(st.booleans()) else len(tensors) - 1
        src, shape = tensors[pick]
        line, out, sources = _layer(draw, f"l{n}", src, shape, tensors, k)
        body.append(line)
        used.update(sources)
        tensors.append((f"l{n}", out))
    dangling = [s for s, _ in tensors if s not in used]
    flats = []
    for s in dangling:
        flats.append(s if len(dict(tensors)[s]) == 1 else None)
        if flats[-1] is None:
            body.append(f"f_{s} = dense({s}, {k()})")
            flats[-1] = f"f_{s}"
    top = flats[0] if len(flats) == 1 else "joined"
    if len(flats) > 1:
        body.append(f"joined = concat({', '.join(flats)}, dim: 1)")
    classes = draw(st.integers(2, 5))
    body += [f"logits = dense({top}, {classes})", "loss = softmax_loss(logits, d.label)"]
    return program_text(body, (c, h, h), classes), (c, h, h)


def _layer(draw, name, src, shape, tensors, k):
    image = len(shape) == 3
    kinds = ["act", "dropout", "dense", "concat"] + (["conv", "pool"] if image else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "act":
        return f"{name} = {draw(st.sampled_from(ACTIVATIONS))}({src})", shape, [src]
    if kind == "dropout":
        return f"{name} = dropout({src}, rate: 0.0)", shape, [src]
    if kind == "dense":
        units = k()
        return f"{name} = dense({src}, {units})", (units,), [src]
    if kind == "conv":
        stride, pad = draw(st.integers(1, 2)), draw(st.integers(0, 1))
        f, kern = k(), draw(st.integers(1, min(3, min(shape[1:]) + 2 * pad)))
        hw = tuple(conv_out(d, kern, stride, pad) for d in shape[1:])
        return (f"{name} = conv({src}, {f}, kernel: {kern}, stride: {stride}, pad: {pad})",
                (f,) + hw, [src])
    if kind == "pool":
        op = draw(st.sampled_from(("max_pool", "avg_pool")))
        kern, stride = draw(st.integers(1, min(2, min(shape[1:])))), draw(st.integers(1, 2))
        hw = tuple(pool_out(d, kern, stride, 0) for d in shape[1:])
        return (f"{name} = {op}({src}, kernel: {kern}, stride: {stride})",
                (shape[0],) + hw, [src])
    # concat with another tensor that matches on every other dimension
    dims = [1] + ([2] if image else [])
    dim = draw(st.sampled_from(dims))
    mates = [s for s, sh in tensors if len(sh) == len(shape) and
             all(a == b for i, (a, b) in enumerate(zip(sh, shape)) if i != dim - 1)]
    mate = draw(st.sampled_from(mates))
    out = list(shape)
    out[dim - 1] += dict(tensors)[mate][dim - 1]
    return f"{name} = concat({src}, {mate}, dim: {dim})", tuple(out), [src, mate]


def dims_for(draw, program, workers: int) -> dict[str, str]:
    """A random partition dimension per layer among those its op and sizes allow."""
    out = {}
    for l in program.net.layers:
        allowed = [d for d in ("batch", "feature") if d in OPS[l.op].partition and
                   (d == "batch" or (l.out.shape and l.out.shape[0] % workers == 0))]
        out[l.name] = draw(st.sampled_from(allowed + ["none"]))
    return out


def step_inputs(program, seed: int = 0):
    """Random data for one batch and random values for every param."""
    rng = np.random.default_rng(seed)
    spec = program.data["d"].phases["train"]
    shape = spec.fields["image"][0]
    data = {"d.image": rng.normal(size=(program.batch,) + tuple(shape)),
            "d.label": rng.integers(0, spec.args["classes"], size=program.batch).astype(np.int32)}
    values = {p.key: rng.normal(size=p.shape) * 0.5 for p in program.net.params}
    return data, values


def parse(text: str):
    return singa_dsl.parse(text, "gen.singa")
