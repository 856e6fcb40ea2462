"""Who is who in a distributed job: ranks, roles, rows and param ranges — plain data, no MPI.

One MPI rank per worker and per server (SINGA runs them as threads of a process; Python's
GIL makes ranks the better unit).  Workers in (group, index) order, then servers in (server
group, index) order, take MPI ranks as ``hosts_order`` says; rank 0 — worker 0 of group 0 —
is the driver: it
tests, validates, displays and writes checkpoints, as SINGA's group-0 worker does.
``separate_servers`` decides placement on hosts (``hosts_order``), not the number of ranks.

Params are one flat float32 vector in net order.  SINGA's Slice/PartitionSlices
(compiler/place.py) cut it into slices; PartitionSlices fills servers with consecutive
slices, so each server of a group owns one contiguous range, and each slice has a master
server group for Hogwild's inter-group sync.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from singa_dsl.errors import SingaConfigError


@dataclass(frozen=True)
class Role:
    kind: str          # "worker" | "server"
    group: int
    index: int
    rank: int

    def describe(self) -> str:
        if self.kind == "worker":
            return f"rank {self.rank} (worker {self.index} of worker group {self.group})"
        return f"rank {self.rank} (server {self.index} of server group {self.group})"


@dataclass(frozen=True)
class Layout:
    worker_groups: int
    workers_per_group: int
    server_groups: int
    servers_per_group: int
    separate_servers: bool = False
    sync_every: int = 1
    ring: bool = False       # reduce: ring — the workers allreduce; there are no servers

    @classmethod
    def from_cluster(cls, c: dict) -> "Layout":
        layout = cls(c["worker_groups"], c["workers_per_group"], c["server_groups"],
                     c["servers_per_group"], bool(c.get("separate_servers")),
                     int(c.get("sync_every", 1)), c.get("reduce", "servers") == "ring")
        if layout.worker_groups % layout.server_groups:
            raise SingaConfigError(f"{layout.worker_groups} worker groups cannot share "
                                   f"{layout.server_groups} server groups evenly")
        return layout

    @property
    def nworkers(self) -> int:
        return self.worker_groups * self.workers_per_group

    @property
    def nservers(self) -> int:
        return 0 if self.ring else self.server_groups * self.servers_per_group

    @property
    def size(self) -> int:
        return self.nworkers + self.nservers

    @property
    def distributed(self) -> bool:
        return self.nworkers > 1 or self.nservers > 1

    # Each worker and server has a logical id (workers first, then servers); MPI ranks take
    # them in ``hosts_order``, because mpiexec fills each host's slots with consecutive ranks.
    # (computed once: role() and the ranks are asked for every frame a rank handles)
    @functools.cached_property
    def _order(self) -> tuple[int, ...]:
        return tuple(self.hosts_order())

    @functools.cached_property
    def _rank_of(self) -> tuple[int, ...]:
        out = [0] * len(self._order)
        for rank, logical in enumerate(self._order):
            out[logical] = rank
        return tuple(out)

    def _mpi_rank(self, logical: int) -> int:
        return self._rank_of[logical]

    def worker_rank(self, group: int, index: int) -> int:
        return self._mpi_rank(group * self.workers_per_group + index)

    def server_rank(self, group: int, index: int) -> int:
        return self._mpi_rank(self.nworkers + group * self.servers_per_group + index)

    @property
    def driver(self) -> int:
        """Worker 0 of group 0: tests, displays, writes metrics and checkpoints."""
        return self.worker_rank(0, 0)

    def role(self, rank: int) -> Role:
        if not 0 <= rank < self.size:
            raise ValueError(f"rank {rank} is outside the job's {self.size} ranks")
        logical = self._order[rank]
        if logical < self.nworkers:
            return Role("worker", *divmod(logical, self.workers_per_group), rank)
        return Role("server", *divmod(logical - self.nworkers, self.servers_per_group), rank)

    def server_group_of(self, worker_group: int) -> int:
        """SINGA: worker group g talks to server group g / (groups per server group)."""
        return worker_group // (self.worker_groups // self.server_groups)

    def worker_groups_of(self, server_group: int) -> list[int]:
        return [g for g in range(self.worker_groups) if self.server_group_of(g) == server_group]

    def group_ranks(self, group: int) -> list[int]:
        return [self.worker_rank(group, j) for j in range(self.workers_per_group)]

    def rows(self, index: int, batch: int) -> tuple[int, int]:
        """The rows of each global batch worker ``index`` of a group computes."""
        if batch < self.workers_per_group:
            raise SingaConfigError(f"a batch of {batch} cannot be shared by "
                                   f"{self.workers_per_group} workers",
                                   hint="use a batch of at least workers_per_group")
        bounds = np.linspace(0, batch, self.workers_per_group + 1)
        cuts = [int(b) for b in np.floor(bounds)]
        return cuts[index], cuts[index + 1]

    def hosts_order(self) -> list[int]:
        """Logical ids in MPI rank order.  Separate servers come after all the workers (their
        own hosts, at the end of a hostfile); co-located ones (SINGA's default) each beside
        a worker, so that a hostfile of 2 slots per host puts one worker and one server on
        each machine, as SINGA's processes hold one of each."""
        workers = list(range(self.nworkers))
        servers = list(range(self.nworkers, self.size))
        if self.separate_servers:
            return workers + servers
        out = []
        for i in range(max(len(workers), len(servers))):
            out += workers[i:i + 1] + servers[i:i + 1]
        return out


@dataclass(frozen=True)
class ParamRange:
    key: str
    lo: int            # in the flat vector
    hi: int
    lr_scale: float
    wd_scale: float
    updated: bool = True     # False: the algorithm never updates it (kept as loaded)


@dataclass(frozen=True)
class ParamUnit:
    """A run of one param whose gradient the same workers of a group produce — the unit the
    servers aggregate (SINGA's owner params of the partitioned net): the whole param (every
    worker, for a layer split on the batch; worker 0 for an unsplit one) or a feature slice
    (``ip1.w@1``: the one worker that computes those features).  UPDATE and R_UPDATE frames
    name a unit by its index; in a job without feature splits each param is one unit, with
    the param's index."""
    param: int                 # index in ParamLayout.params
    lo: int                    # in the flat vector
    hi: int
    workers: tuple[int, ...]   # worker indices (in a group) that contribute to it


@dataclass(frozen=True)
class ParamLayout:
    params: tuple[ParamRange, ...]
    total: int
    servers: tuple[tuple[int, int], ...]       # server index → its flat [lo, hi)
    masters: tuple[tuple[int, int, int], ...]  # (lo, hi, master server group) runs
    units: tuple[ParamUnit, ...] = ()          # in flat order; they tile the params
    model_parallel: bool = False   # some unit comes from fewer than all of a group's workers

    @classmethod
    def build(cls, entries, layout: Layout, updated=None, parts=None) -> "ParamLayout":
        """``parts``: param key → ((offset, size, workers), ...) — the units of a param of a
        model-parallel job (compiler/lower_worker.param_units); any other param is one unit
        of every worker of the group."""
        from singa_dsl.compiler.place import partition_slices, slice_sizes
        params, units, offset = [], [], 0
        everyone = tuple(range(layout.workers_per_group))
        for i, p in enumerate(entries):
            size = int(np.prod(p.shape))
            params.append(ParamRange(p.key, offset, offset + size, p.lr_scale, p.wd_scale,
                                     updated is None or p.key in updated))
            mine = sorted((parts or {}).get(p.key, ((0, size, everyone),)))
            at = 0
            for off, n, workers in mine:
                if off != at or n <= 0:
                    raise ValueError(f"the units of param {p.key} do not tile it: "
                                     f"{list(mine)}")
                units.append(ParamUnit(i, offset + off, offset + off + n, tuple(workers)))
                at += n
            if at != size:
                raise ValueError(f"the units of param {p.key} cover {at} of its {size} values")
            offset += size
        num = math.lcm(layout.servers_per_group, layout.server_groups)
        # SINGA slices the owner params of the partitioned net: a feature slice is a param
        # of its own (without feature splits, units are the params)
        flat = [s for cut in slice_sizes(num, [u.hi - u.lo for u in units]) for s in cut]
        to_server = partition_slices(layout.servers_per_group, flat)
        to_group = partition_slices(layout.server_groups, flat)
        bounds = np.concatenate([[0], np.cumsum(flat, dtype=np.int64)]).astype(int)
        servers = []
        for s in range(layout.servers_per_group):
            mine = [i for i, t in enumerate(to_server) if t == s]
            servers.append((int(bounds[mine[0]]), int(bounds[mine[-1] + 1])) if mine else
                           (int(bounds[sum(1 for t in to_server if t < s)]),) * 2)
        masters = []
        for i, grp in enumerate(to_group):
            lo, hi = int(bounds[i]), int(bounds[i + 1])
            if masters and masters[-1][2] == grp and masters[-1][1] == lo:
                masters[-1] = (masters[-1][0], hi, grp)
            else:
                masters.append((lo, hi, grp))
        return cls(tuple(params), offset, tuple(servers), tuple(masters), tuple(units),
                   any(u.workers != everyone for u in units))

    def overlapping(self, lo: int, hi: int):
        """(param, part lo, part hi) for every param overlapping [lo, hi), flat offsets."""
        for p in self.params:
            a, b = max(lo, p.lo), min(hi, p.hi)
            if a < b:
                yield p, a, b
