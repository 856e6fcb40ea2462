"""Passes: slice the params over the servers (SINGA's Slice / PartitionSlices, common.cc) and
place workers and servers on processes (cluster.cc), as plain data on the partitioned graph.

``slice_params``: the params the servers hold are the owner params of the partitioned net in
net order: a batch copy's params once (every copy shares them), a feature copy's slice as a
param of its own (``ip1.w@1``).  ``num = lcm(servers_per_group, server_groups)``; Slice cuts
the concatenated sizes into boxes of ``avg = total/num + total%num`` values with tolerance
``avg/10`` (a small param stays whole, a big one spans several slices); PartitionSlices gives
each slice a server of the group (``slice2server``) and a master server group
(``slice2group``, used when server groups sync).

``place``: SINGA's process layout, with ``workers_per_process`` and ``servers_per_process``
(SINGA's nworkers_per_procs, nservers_per_procs; default 1)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import networkx as nx

from singa_dsl.errors import SingaConfigError
from .partition_types import payloads


@dataclass(frozen=True)
class ParamSlice:
    slice_id: int        # position in the flat slice list (SINGA: param_id << 16 | slice_id)
    part: str            # the owner param part: "conv1.w" or "ip1.w@1"
    key: str             # the logical param
    index: int           # slice number within the part
    offset: int          # first value of the part it holds (flattened)
    size: int
    server: int          # server of the group holding it (slice2server)
    master_group: int    # server group that owns it for inter-group sync (slice2group)


@dataclass(frozen=True)
class Placement:
    nprocs: int
    workers: tuple[tuple[int, int, int], ...]    # (group, id, process)
    servers: tuple[tuple[int, int, int], ...]    # (group, id, process)
    separate: bool

    def process_of_worker(self, group: int, i: int) -> int:
        return next(p for g, j, p in self.workers if (g, j) == (group, i))


def slice_sizes(num: int, sizes: list[int]) -> list[list[int]]:
    """SINGA's Slice(num, sizes): each param's sizes cut into boxes of about total/num."""
    if num == 0:
        return []
    avg = sum(sizes)
    avg = avg // num + avg % num
    diff = avg // 10
    capacity, slices = avg, []
    for x in sizes:
        slice_ = []
        while x > 0:
            size = 0
            if capacity >= x:
                capacity, size, x = capacity - x, x, 0
            elif capacity + diff >= x:
                size, x, capacity = x, 0, 0
            elif capacity >= diff:
                x, size, capacity = x - capacity, capacity, avg
            else:
                capacity = avg
            if size:
                slice_.append(size)
        slices.append(slice_)
    return slices


def partition_slices(num: int, slices: list[int]) -> list[int]:
    """SINGA's PartitionSlices(num, slices): consecutive slices filled greedily into num boxes."""
    if num == 0:
        return []
    avg = sum(slices)
    avg = avg // num + avg % num
    box, boxid, diff, out, k = avg, 0, avg // 10, [], 0
    while k < len(slices):
        x = slices[k]
        if box >= x:
            box -= x
            out.append(boxid)
            k += 1
        elif box + diff >= x:
            out.append(boxid)
            k, box = k + 1, 0
        else:
            box, boxid = avg, boxid + 1
    return [min(b, num - 1) for b in out]     # SINGA trusts avg rounding; we clamp


def owner_parts(g: nx.DiGraph) -> list:
    """The param parts servers hold, in net order: (part, key, size), each once."""
    order = {name: i for i, name in enumerate(g.graph.get("order", ()))}
    copies = sorted((n for n in payloads(g) if n.kind == "layer"),
                    key=lambda n: (order.get(n.of, len(order)), n.of, n.part))
    seen, out = set(), []
    for n in copies:
        shared = {p.key for p in n.layer.params if p.share_of is not None}
        for p in n.params:
            if p.name not in seen and p.key not in shared:
                seen.add(p.name)
                out.append((p.name, p.key, p.size))
    return out


def slice_params(g: nx.DiGraph) -> nx.DiGraph:
    """Adds graph attribute ``param_slices``: a tuple of ParamSlice."""
    cluster = g.graph["cluster"]
    parts = owner_parts(g)
    num = math.lcm(cluster.servers_per_group, cluster.server_groups)
    cut = slice_sizes(num, [size for _, _, size in parts])
    flat = [s for c in cut for s in c]
    to_server = partition_slices(cluster.servers_per_group, flat)
    to_group = partition_slices(cluster.server_groups, flat)
    slices, sid = [], 0
    for (part, key, _), sizes in zip(parts, cut):
        offset = 0
        for index, size in enumerate(sizes):
            slices.append(ParamSlice(sid, part, key, index, offset, size, to_server[sid],
                                     to_group[sid]))
            offset, sid = offset + size, sid + 1
    out = g.copy()
    out.graph["param_slices"] = tuple(slices)
    return out


def place(g: nx.DiGraph, workers_per_process: int = 1, servers_per_process: int = 1) -> nx.DiGraph:
    """Adds graph attribute ``placement`` (SINGA's formulas):
    nworker_procs = groups·workers_per_group / workers_per_process, likewise for servers;
    nprocs = separate ? sum : max; worker (g, j) on (g·workers_per_group + j) / per_process;
    server (g, j) on (g·servers_per_group + j) / per_process (+ nworker_procs if separate)."""
    c = g.graph["cluster"]
    nworkers = c.worker_groups * c.workers_per_group
    nservers = c.server_groups * c.servers_per_group
    for what, total, per in (("workers", nworkers, workers_per_process),
                             ("servers", nservers, servers_per_process)):
        if per < 1 or total % per:
            raise SingaConfigError(f"{total} {what} cannot be spread evenly over processes of "
                                   f"{per}", c.span, f"use a number of {what} per process that "
                                   f"divides {total}")
    wprocs, sprocs = nworkers // workers_per_process, nservers // servers_per_process
    nprocs = wprocs + sprocs if c.separate_servers else max(wprocs, sprocs)
    workers = tuple((grp, j, (grp * c.workers_per_group + j) // workers_per_process)
                    for grp in range(c.worker_groups) for j in range(c.workers_per_group))
    shift = wprocs if c.separate_servers else 0
    servers = tuple((grp, j, (grp * c.servers_per_group + j) // servers_per_process + shift)
                    for grp in range(c.server_groups) for j in range(c.servers_per_group))
    out = g.copy()
    out.graph["placement"] = Placement(nprocs, workers, servers, c.separate_servers)
    return out
