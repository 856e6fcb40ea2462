"""The table ``singac check`` prints: every layer with shapes, params and partition."""
from __future__ import annotations

from .memory import describe, estimate, human_bytes


def _shape(t) -> str:
    if t is None:
        return "?"
    s = "x".join(str(d) for d in t.shape) or "scalar"
    return s + (" int" if t.dtype == "int32" else "")


def layer_rows(program) -> list[tuple[str, ...]]:
    rows = []
    for l in program.net.layers:
        own = sum(p.size for p in l.params if p.share_of is None)
        shared = [p for p in l.params if p.share_of]
        params = f"{own:,}" + (f" (+{len(shared)} shared)" if shared else "")
        rows.append((l.name, l.op, ", ".join(_shape(t) for t in l.in_shapes), _shape(l.out),
                     params, l.partition))
    return rows


def render_summary(program) -> str:
    headers = ("layer", "op", "input", "output", "params", "partition")
    rows = layer_rows(program)
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [f"net {program.net.name}: {len(rows)} layers, batch {program.batch}"
             + (f", unrolled {program.net.unroll} steps" if program.net.unroll > 1 else ""),
             fmt.format(*headers), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*r) for r in rows]
    lines.append(f"total params: {program.param_count:,} "
                 f"({human_bytes(program.param_count * 4)} float32)")
    lines.append(describe(estimate(program)))
    c = program.cluster
    lines.append(f"algorithm {program.algorithm.kind if program.algorithm else '?'}, updater "
                 f"{program.updater.kind if program.updater else '?'}, cluster "
                 f"{c.worker_groups}x{c.workers_per_group} workers, "
                 + ("ring allreduce (no servers)" if c.reduce == "ring" else
                    f"{c.server_groups}x{c.servers_per_group} servers")
                 + (f" ({c.framework})" if c.framework else ""))
    return "\n".join(lines)
