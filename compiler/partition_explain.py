"""What ``partition: auto`` chose and why: ``explain`` (the choice, the predicted step time and
traffic per layer, and what each alternative would cost) and ``annotate`` (the program with
the choice written back as ``@`` annotations, via the AST and ``format_program``)."""
from __future__ import annotations

import dataclasses

from singa_dsl.errors import SingaError
from . import ast
from .cost import Device, predict
from .partition_auto import auto_candidates, statements, with_dims
from .format import format_program
from .partition_dims import assign_partition_dims, layers, logical_graph


def resolve(program, workers: int | None = None, device: Device | None = None):
    """(the logical graph with every dimension resolved, the set of layers auto chose)."""
    try:
        g = logical_graph(program, workers)
        auto = {l.name for l in layers(g) if l.partition == "auto"}
        return assign_partition_dims(g, device=device), auto
    except SingaError as e:
        raise e.with_source(program.source)


def choices(program, workers: int | None = None, device: Device | None = None) -> dict[str, str]:
    """Layer → partition dimension, ``auto`` resolved for the cluster (or ``workers``)."""
    g, _ = resolve(program, workers, device)
    return {l.name: l.partition for l in layers(g)}


def _bytes(n: float) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


def _ms(s: float) -> str:
    return f"{s * 1e3:.3f}"


def explain(program, workers: int | None = None, device: Device | None = None) -> str:
    device = device or Device()
    g, auto = resolve(program, workers, device)
    p = predict(g, device)
    w, b = p.workers, p.batch
    lines = [f"net {g.graph['net']}: {w} worker{'s' * (w > 1)} per group, batch {b}; device "
             f"{device.flops_per_s / 1e9:g} GFLOP/s, link {device.link_bytes_per_s / 1e9:g} GB/s, "
             f"latency {device.latency_s * 1e6:g} us",
             f"{'layer':<12} {'op':<13} {'partition':<15} {'GFLOP/worker':>12} "
             f"{'compute ms':>10} {'moved in':>10} {'comm ms':>8} {'param sync':>10}"]
    for c in p.layers:
        dim = c.dim + (" (auto)" if c.name in auto else "")
        lines.append(f"{c.name:<12} {c.op:<13} {dim:<15} {c.flops / 1e9:>12.4f} "
                     f"{_ms(c.compute_s):>10} {_bytes(c.moved_bytes):>10} {_ms(c.comm_s):>8} "
                     f"{_bytes(c.param_bytes):>10}")
    compute = sum(c.compute_s for c in p.layers)
    comm = sum(c.comm_s for c in p.layers)
    lines += [f"predicted step: {_ms(p.step_s)} ms = compute {_ms(compute)} + activations "
              f"{_ms(comm)} + param sync {_ms(p.param_s)}",
              f"traffic per step: activations {_bytes(p.moved_bytes)}, params "
              f"{_bytes(p.param_bytes)}; memory per worker: up to {_bytes(max(p.memory))}"]
    lines += _alternatives(program, workers, device, g, auto)
    return "\n".join(lines) + "\n"


def _alternatives(program, workers, device, chosen, auto) -> list[str]:
    """For each statement auto decided: the predicted step with each dimension it could take,
    everything else as chosen."""
    if not auto:
        return []
    if chosen.graph["workers"] == 1:
        return ["with one worker every dimension computes the same: auto keeps the batch"]
    g = logical_graph(program, workers)
    groups = statements(chosen)
    now = {s: ls[0].partition for s, ls in groups.items()}
    out = ["why (predicted step with each choice, the rest as chosen):"]
    for stmt, cands in auto_candidates(g).items():
        costs = []
        for d in cands:
            step = predict(with_dims(chosen, {**now, stmt: d}), device).step_s
            costs.append(f"{d} {_ms(step)} ms" + (" <" if d == now[stmt] else ""))
        out.append(f"  {stmt:<12} " + ", ".join(costs))
    batch = {s: c[0] for s, c in auto_candidates(g).items()}
    out.append(f"  all auto layers on their first choice (batch where possible): "
               f"{_ms(predict(with_dims(chosen, {**now, **batch}), device).step_s)} ms")
    return out


def annotate(program, workers: int | None = None, device: Device | None = None) -> str:
    """The program's source with each layer ``auto`` decided annotated ``@batch``/``@feature``/
    ``@none`` (other layers keep what they had); checking it gives the same partitioning."""
    g, auto = resolve(program, workers, device)
    dims = {l.name: l.partition for l in layers(g)}
    items = []
    for item in program.ast.items:
        if isinstance(item, ast.NetDecl) and item.name == program.net.name:
            item = dataclasses.replace(item, items=tuple(
                dataclasses.replace(i, annotations=(ast.Annotation(dims[i.name]),))
                if isinstance(i, ast.Layer) and i.name in auto else i for i in item.items))
        items.append(item)
    return format_program(dataclasses.replace(program.ast, items=tuple(items)))


def describe(g) -> str:
    """A partitioned graph as text: what each worker computes, sends and receives, which
    server holds which param slice, and which process runs what."""
    from .partition_types import payloads
    nodes = [n for n in payloads(g) if n.worker is not None]
    lines = [f"net {g.graph['net']} over {g.graph['workers']} worker(s) per group, batch "
             f"{g.graph['batch']}"]
    for w in sorted({n.worker for n in nodes}):
        lines.append(f"worker {w}:")
        for n in (n for n in nodes if n.worker == w):
            what = n.layer.op if n.kind == "layer" else n.kind
            shape = "x".join(map(str, n.shape)) or "scalar"
            params = "".join(f" {p.name}{list(p.shape)}" for p in n.params)
            lines.append(f"  {n.name:<44} {what:<12} {shape:<14}{params}")
    for s in g.graph.get("param_slices", ()):
        lines.append(f"slice {s.slice_id}: {s.part}[{s.offset}:{s.offset + s.size}] -> server "
                     f"{s.server} (master group {s.master_group})")
    p = g.graph.get("placement")
    if p is not None:
        lines.append(f"processes: {p.nprocs}; workers (group, id, process) {list(p.workers)}; "
                     f"servers {list(p.servers)}")
    return "\n".join(lines) + "\n"
