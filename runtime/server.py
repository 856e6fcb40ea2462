"""A parameter server rank (SINGA's Server, server.cc): holds one contiguous range of the flat
params for its server group and applies the updater to it.

- UPDATE from a worker of group g, one param unit at a time (workers push each as their
  backward pass produces it; a unit is a whole param, or in a model-parallel job a feature
  slice of one — ``ParamLayout.units``): summed with the other copies of group g's step
  (workers pre-weight their gradient by rows/batch, so the sum is the gradient of the
  group's batch mean — SINGA's sum-then-scale-by-1/num_total with unequal rows allowed);
  when the copies of exactly the unit's contributing workers are in (all the group's for a
  batch-split layer, the one worker that computes a feature slice), update that unit and
  reply R_UPDATE with its new values to them; the version is bumped when all are applied.
  Groups are never waited for by each other (Downpour: each group's update is applied as
  it arrives).
- Distributed Hogwild: after every ``sync_every`` local updates, for each run of the range
  mastered by another server group, send Δ = values − last-synced to the master server; the
  master adds it and replies with its values; on the reply,
  values += master − values-at-request and last-synced = master (no local update is lost).
- CKPT_REQUEST: reply with the range's values and updater state.
- STOP: a worker (or a syncing server) is done; the rank exits when all it serves are.
"""
from __future__ import annotations

import numpy as np

from .cluster import Layout, ParamLayout, Role
from .messages import Frame, FrameError, Kind
from .schedules import learning_rate
from .updaters import UpdaterSpec


class ParamServer:
    def __init__(self, plan, layout: Layout, params: ParamLayout, role: Role, transport,
                 values: np.ndarray, state: dict[str, np.ndarray]):
        self.plan, self.layout, self.params, self.role = plan, layout, params, role
        self.transport = transport
        self.lo, self.hi = params.servers[role.index]
        self.values = values                    # float32 [hi - lo]
        self.state = state                      # updater state name → float32 [hi - lo]
        self.spec = UpdaterSpec.from_json(plan.updater)
        self.defn = self.spec.definition
        self.args = self.spec.bound_args()
        self.version = 0
        self.updates = 0                        # local updates since start (Hogwild sync)
        self._pending: dict[tuple, tuple[int, list[int]]] = {}  # (group, param) → (step, srcs)
        # Hogwild: the runs of my range another server group masters, and what I last knew
        self.runs = [(i, max(lo, self.lo), min(hi, self.hi)) for i, (lo, hi, grp)
                     in enumerate(params.masters) if grp != role.group and
                     max(lo, self.lo) < min(hi, self.hi)] if layout.server_groups > 1 else []
        self._synced = {i: values[a - self.lo:b - self.lo].copy() for i, a, b in self.runs}
        self._asked: dict[int, np.ndarray] = {}  # run → values when the request went out
        self.serves = {layout.worker_rank(g, j) for g in layout.worker_groups_of(role.group)
                       for j in range(layout.workers_per_group)}
        self.stopped: set[int] = set()
        self._recv: dict[int, np.ndarray] = {}   # worker rank → its gradient's buffer
        self._sums: dict[int, np.ndarray] = {}   # worker group → the sum of its copies
        self._done: dict[int, set] = {}          # worker group → units of its step applied
        # the param units (by index) with a part here that the algorithm updates
        self._mine = [i for i, u in enumerate(params.units) if params.params[u.param].updated
                      and max(u.lo, self.lo) < min(u.hi, self.hi)]
        self._shared = len(layout.worker_groups_of(role.group)) > 1   # Downpour: async

    # ---- who syncs with me --------------------------------------------------------------
    def syncing_servers(self) -> set[int]:
        """Servers of other groups that send me (a master) their Δ for some run."""
        if self.layout.server_groups == 1:
            return set()
        mine = {i for i, (lo, hi, grp) in enumerate(self.params.masters)
                if grp == self.role.group and max(lo, self.lo) < min(hi, self.hi)}
        if not mine:
            return set()
        return {self.layout.server_rank(g, self.role.index)
                for g in range(self.layout.server_groups) if g != self.role.group}

    # ---- the loop -----------------------------------------------------------------------
    def run(self) -> None:
        expected = self.serves | self.syncing_servers()
        workers_done = False
        while self.stopped != expected:
            frame = self.transport.wait(self._sink)
            self.handle(frame)
            if not workers_done and self.serves <= self.stopped:
                workers_done = True
                self._finish_syncs()
        self.transport.flush()

    def _finish_syncs(self) -> None:
        """My workers are done: one last sync of what they changed, then tell the masters."""
        if not self.runs:
            return
        self._sync()
        while self._asked:
            self.handle(self.transport.wait(self._sink))
        for rank in {self.layout.server_rank(self.params.masters[i][2], self.role.index)
                     for i, _, _ in self.runs}:
            self.transport.send(rank, Frame(Kind.STOP, self.role.rank))

    def _sink(self, header):
        """A worker's gradient is received straight into its own buffer (kept per worker:
        the frames of one group's step arrive in any order)."""
        if header.kind is Kind.UPDATE and 0 <= header.target < len(self.params.units):
            a, b = self._piece(header.target)
            if header.nbytes == 4 * (b - a) and a < b:
                buf = self._recv.get(header.src)
                if buf is None:
                    buf = self._recv[header.src] = np.empty(self.hi - self.lo, np.float32)
                return buf[a - self.lo:b - self.lo]
        return None

    def handle(self, f: Frame) -> None:
        if f.kind is Kind.UPDATE:
            self._update(f)
        elif f.kind is Kind.GET:
            # a copy when the values may change before the reply has left: another group's
            # update (Downpour), or in a model-parallel group a worker that owns other slices
            self.transport.send(f.src, Frame(Kind.R_GET, self.role.rank, self.role.index,
                                             self.version, 0.0,
                                             self.values.copy() if self._shared or
                                             self.params.model_parallel else self.values))
        elif f.kind is Kind.SYNC_REQUEST:
            a, b = self._run_bounds(f.target)
            delta = f.floats()
            if len(delta) != b - a:
                raise FrameError(f"a sync of {len(delta)} values for a run of {b - a}")
            self.values[a - self.lo:b - self.lo] += delta
            # a copy: this master's own workers may update the run while the reply travels
            self.transport.send(f.src, Frame(Kind.SYNC_RESPONSE, self.role.rank, f.target,
                                             self.version, 0.0,
                                             self.values[a - self.lo:b - self.lo].copy()))
        elif f.kind is Kind.SYNC_RESPONSE:
            self._synced_reply(f)
        elif f.kind is Kind.CKPT_REQUEST:
            blob = np.concatenate([self.values] + [self.state[n] for n in sorted(self.state)])
            self.transport.send(f.src, Frame(Kind.CKPT_DATA, self.role.rank, self.role.index,
                                             self.version, 0.0, blob))
        elif f.kind is Kind.STOP:
            self.stopped.add(f.src)
        else:
            raise FrameError(f"server {self.role.describe()} got an unexpected "
                             f"{f.kind.name} frame from rank {f.src}")

    def _run_bounds(self, run: int) -> tuple[int, int]:
        if not 0 <= run < len(self.params.masters):
            raise FrameError(f"a sync frame names run {run}, not one of "
                             f"{len(self.params.masters)}")
        lo, hi, _ = self.params.masters[run]
        return max(lo, self.lo), min(hi, self.hi)

    # ---- updates ------------------------------------------------------------------------
    def _piece(self, unit: int) -> tuple[int, int]:
        """The part of param unit ``unit`` (its index in ParamLayout.units) this server
        holds."""
        if not 0 <= unit < len(self.params.units):
            raise FrameError(f"a frame names param unit {unit}, not one of "
                             f"{len(self.params.units)}")
        u = self.params.units[unit]
        return max(u.lo, self.lo), min(u.hi, self.hi)

    def _update(self, f: Frame) -> None:
        """One worker's gradient for one param unit (its part here).  Workers push each
        as soon as their backward pass has produced it, so the server updates the last
        layers while the workers still compute the first ones."""
        a, b = self._piece(f.target)
        grad = f.floats()
        if len(grad) != b - a or a >= b:
            raise FrameError(f"an update of {len(grad)} values for param unit {f.target} from "
                             f"rank {f.src}, but {self.role.describe()} holds {max(0, b - a)}")
        unit = self.params.units[f.target]
        sender = self.layout.role(f.src)
        if sender.kind != "worker" or sender.index not in unit.workers:
            raise FrameError(f"{sender.describe()} sent a gradient for param unit {f.target} "
                             f"of {self.params.params[unit.param].key}, which only workers "
                             f"{list(unit.workers)} of a group compute")
        group = sender.group
        key = (group, f.target)
        step, srcs = self._pending.get(key, (f.step, []))
        if step != f.step:
            raise FrameError(f"rank {f.src} sent step {f.step} while its group is at {step}")
        total = self._sums.get(group)
        if total is None:
            total = self._sums[group] = np.zeros(self.hi - self.lo, np.float32)
        acc = total[a - self.lo:b - self.lo]
        if srcs:
            np.add(acc, grad, out=acc)
        else:
            np.copyto(acc, grad)
        srcs.append(f.src)
        if len(srcs) < len(unit.workers):
            self._pending[key] = (step, srcs)
            return
        self._pending.pop(key, None)
        part = slice(a - self.lo, b - self.lo)
        self.apply_param(self.params.params[unit.param], part, acc, step)
        values = self.values[part]
        if self._shared:        # another group may change these while the reply is in flight
            values = values.copy()
        for rank in srcs:
            self.transport.send(rank, Frame(Kind.R_UPDATE, self.role.rank, f.target,
                                            self.version + 1, 0.0, values))
        done = self._done.setdefault(group, set())
        done.add(f.target)
        if len(done) == len(self._mine):          # the group's whole step is applied here
            done.clear()
            self.version += 1
            self.updates += 1
            if self.runs and self.updates % self.layout.sync_every == 0:
                self._sync()

    def apply_param(self, p, part: slice, grad: np.ndarray, step: int) -> None:
        if not p.updated:
            return
        base = learning_rate(self.spec.lr, step)
        wd = float(self.args["weight_decay"])
        state = {n: s[part] for n, s in self.state.items()}
        # overflow to inf is reported by the workers, at the loss, naming the step
        with np.errstate(over="ignore", invalid="ignore"):
            self.defn.reference(self.values[part], grad, state, base * p.lr_scale,
                                wd * p.wd_scale, 1.0, self.args, dtype=np.float32)

    # ---- Hogwild sync -------------------------------------------------------------------
    def _sync(self) -> None:
        for i, a, b in self.runs:
            if i in self._asked:
                continue                       # one request per run in flight
            cur = self.values[a - self.lo:b - self.lo]
            master = self.layout.server_rank(self.params.masters[i][2], self.role.index)
            self._asked[i] = cur.copy()
            self.transport.send(master, Frame(Kind.SYNC_REQUEST, self.role.rank, i,
                                              self.version, 0.0, cur - self._synced[i]))

    def _synced_reply(self, f: Frame) -> None:
        if f.target not in self._asked:
            raise FrameError(f"a sync reply from rank {f.src} for run {f.target}, "
                             "which was not asked")
        a, b = self._run_bounds(f.target)
        master = f.floats()
        if len(master) != b - a:
            raise FrameError(f"a sync reply of {len(master)} values for a run of {b - a}")
        at_request = self._asked.pop(f.target)
        self.values[a - self.lo:b - self.lo] += master - at_request
        self._synced[f.target] = master.copy()


def initial_range(plan, params: ParamLayout, role: Role, loaded: dict, state_loaded: dict
                  ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """This server's values and updater state: drawn as the one-process trainer draws them
    (same seed, same order, so every cluster shape starts from the same params), or taken
    from a checkpoint (``loaded``: store name → array; ``state_loaded``: 'name/state')."""
    from .initializers import initial_values
    lo, hi = params.servers[role.index]
    values = np.zeros(hi - lo, np.float32)
    spec = UpdaterSpec.from_json(plan.updater)
    names = spec.definition.state_for(spec.args)
    state = {n: np.zeros(hi - lo, np.float32) for n in names}
    by_key = {p.key: p for p in params.params}
    for entry, value in initial_values(plan.params, plan.job["seed"], loaded):
        r = by_key[entry.key]
        a, b = max(lo, r.lo), min(hi, r.hi)
        if a >= b:
            continue
        values[a - lo:b - lo] = value.reshape(-1)[a - r.lo:b - r.lo]
        for n in names:
            saved = state_loaded.get(f"{entry.store_name}/{n}")
            if saved is not None:
                state[n][a - lo:b - lo] = saved.reshape(-1)[a - r.lo:b - r.lo]
    return values, state
