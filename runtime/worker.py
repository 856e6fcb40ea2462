"""A worker rank (SINGA's Worker): the job loop of ``Trainer`` with the updates done by the
parameter servers.

Per step: upload this worker's rows of the global batch and enqueue forward and backward with
a non-blocking copy of each param's gradient right after the launch that finishes it; as each
copy lands, weight it by rows/batch and send its parts to the servers holding them (UPDATE),
while the device goes on with the rest of backward.  Then wait for the updated values
(R_UPDATE, param by param) and write each param back as soon as all its parts are in.
Workers of a group all read the same stream of global batches (the group's shard of the data)
and each takes its rows, so a group computes exactly the batch one worker would.

Worker 0 of group 0 is the driver: it tests, validates, writes metrics.jsonl (adding the
records the other groups' leaders send it, with their group id) and writes checkpoints from
the servers' ranges, as logical params by name — loadable by any cluster shape.
"""
from __future__ import annotations

import math
import pathlib
import sys
import time

import numpy as np

from . import checkpoint
from .cluster import Layout, ParamLayout, Role
from .data import SOURCES
from .messages import Frame, FrameError, Kind
from .progress import Progress
from .trainer import CARRY_KEY, Trainer


class RowSlice:
    """A reader of global batches that hands out rows [lo, hi) of each one."""

    def __init__(self, reader, lo: int, hi: int):
        self._reader, self.lo, self.hi = reader, lo, hi
        self.records = reader.records

    def next_batch(self) -> dict[str, np.ndarray]:
        return {k: v[self.lo:self.hi] for k, v in self._reader.next_batch().items()}

    def state(self) -> dict:
        return self._reader.state()

    def restore(self, state: dict) -> None:
        self._reader.restore(state)

    def close(self) -> None:
        self._reader.close()


class _GroupProgress:
    """What a worker other than the driver shows: nothing; a group leader forwards its
    display records to the driver, which writes them with the group id."""

    def __init__(self, worker: "DistributedWorker"):
        self.worker = worker
        self.records: list[dict] = []
        self.metrics_path = None

    def elapsed(self) -> float:
        return time.monotonic()

    def record(self, record: dict) -> None:
        w = self.worker
        record = {**record, "group": w.role.group}
        self.records.append(record)
        if w.role.index == 0:
            w.transport.send(w.layout.driver, Frame(Kind.METRIC, w.role.rank, w.role.group,
                                                    w.step, 0.0, record))

    def advance(self, step: int) -> None:
        pass

    def message(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass


class DistributedWorker(Trainer):
    def __init__(self, plan, layout: Layout, role: Role, params: ParamLayout, transport,
                 global_batch: int, **kwargs):
        self.layout, self.role, self.params_layout = layout, role, params
        self.transport = transport
        self.global_batch = global_batch
        self.rows = self._train_rows(layout, role, global_batch)
        self.weight = (self.rows[1] - self.rows[0]) / global_batch
        self.is_driver = role.rank == layout.driver
        self.is_leader = role.index == 0
        self.servers = self._server_ranks()
        self._inbox: list[Frame] = []
        self._flat = np.zeros(params.total, np.float32)
        self._flat_grad = np.zeros(params.total, np.float32)
        self._progress = None
        # where a step's time goes: forward+backward with each gradient read and sent as it
        # is produced; then waiting for the servers' values (their update of what came last,
        # the group's slowest worker, MPI)
        self.timing = {"compute+push": 0.0, "wait": 0.0, "steps": 0}
        super().__init__(plan, **kwargs)
        self.samples_per_step = global_batch     # the display's samples/s is the group's
        self._plan_pipeline()

    def _train_rows(self, layout: Layout, role: Role, global_batch: int) -> tuple[int, int]:
        """The rows of each global batch this worker reads (and weighs its gradients by)."""
        return layout.rows(role.index, global_batch)

    def _server_ranks(self) -> list[int]:
        sg = self.layout.server_group_of(self.role.group)
        return [self.layout.server_rank(sg, s) for s in range(self.layout.servers_per_group)]

    # ---- the pipeline: each gradient leaves as soon as backward has produced it -------------
    def _plan_pipeline(self) -> None:
        """Where each updated param's gradient is final in the train list (the last launch
        that writes it); the param units this worker pushes (each whole param, unless a
        layer is split on features: then only the slices it computes) and the parts of
        each the servers hold."""
        updated = {u.param for u in self.plan.updates}
        launches = dict(self.plan.kernels.launch_lists)["train"]
        last = {}
        for i, launch in enumerate(launches):
            for arg in launch.args:
                if arg[0] in ("buf", "buf_offset"):
                    last[arg[1]] = i
        pushed = {pi for pi, p in enumerate(self.plan.params)
                  if p.key in updated and p.grad in last}
        units = self.params_layout.units
        self._pushed = [ui for ui, u in enumerate(units)
                        if u.param in pushed and self.role.index in u.workers]
        self._copy_after = sorted((last[self.plan.params[units[ui].param].grad], ui)
                                  for ui in self._pushed)
        self._pieces = {}
        self._piece_of = {}
        for ui, u in enumerate(units):
            parts = []
            for s, (lo, hi) in enumerate(self.params_layout.servers):
                a, b = max(lo, u.lo), min(hi, u.hi)
                if a < b:
                    parts.append((s, a, b))
                    self._piece_of[(ui, s)] = (a, b)
            self._pieces[ui] = parts

    def _copy_grad(self, ui: int):
        """A non-blocking copy of param unit ``ui``'s gradient off the device."""
        import pyopencl as cl
        u = self.params_layout.units[ui]
        r = self.params_layout.params[u.param]
        return cl.enqueue_copy(self.device.queue, self._flat_grad[u.lo:u.hi],
                               self.executor.buffer(self.plan.params[u.param].grad),
                               src_offset=(u.lo - r.lo) * 4, is_blocking=False)

    def _enqueue_train(self) -> list:
        """Enqueue the train list in segments, a non-blocking copy of each gradient right
        after the launch that finishes it; returns (param unit, copy event) in that order."""
        out, start = [], 0
        for index, ui in self._copy_after:
            if index + 1 > start:
                self.executor.run("train", start, index + 1)
                start = index + 1
            out.append((ui, self._copy_grad(ui)))
        self.executor.run("train", start)
        return out

    # how long _await sleeps between checks, at most (the ring worker polls collectives
    # more often: MPICH moves them only inside MPI calls)
    _AWAIT_MAX_SLEEP = 1e-3

    def _keep_moving(self) -> None:
        """Let MPI move the sends in flight (they progress only when this rank calls MPI)."""
        self.transport.progress()

    def _await(self, event) -> None:
        """Wait for a copy off the device while keeping MPI moving."""
        import pyopencl as cl
        done = cl.command_execution_status.COMPLETE
        sleep = 20e-6
        while event.command_execution_status != done:
            self._keep_moving()
            time.sleep(sleep)
            sleep = min(self._AWAIT_MAX_SLEEP, sleep * 2)

    # ---- data: the group's shard, this worker's rows --------------------------------------
    def _open_reader(self, phase):
        if phase.name != "train":
            return super()._open_reader(phase)
        d = self.plan.data[phase.data_block][phase.name]
        args = {**d["args"], "batch": self.global_batch}
        reader = SOURCES[d["kind"]].open(args, pathlib.Path(d["base_dir"]),
                                         seed=self.job["seed"], shard=self.role.group,
                                         num_shards=self.layout.worker_groups, prefetch=True)
        return RowSlice(reader, *self.rows)

    # ---- frames ---------------------------------------------------------------------------
    def _next(self, want) -> Frame:
        """The first frame for which ``want(frame)`` holds; records from other groups are
        written as they come, anything else waits in the inbox."""
        for i, f in enumerate(self._inbox):
            if want(f):
                return self._inbox.pop(i)
        while True:
            f = self.transport.wait(self._sink, idle=self._keep_moving)
            if want(f):
                return f
            if self.is_driver and f.kind is Kind.METRIC and isinstance(f.data, dict):
                self._write_group_record(f)
            else:
                self._inbox.append(f)

    def _sink(self, header):
        """Param values from my servers are received straight into their place: a whole
        range (R_GET) or one param unit's part (R_UPDATE, target = the unit's index)."""
        if header.src not in self.servers:
            return None
        s = self.servers.index(header.src)
        if header.kind is Kind.R_GET:
            lo, hi = self.params_layout.servers[s]
            return self._flat[lo:hi]
        if header.kind is Kind.R_UPDATE:
            piece = self._piece_of.get((header.target, s))
            if piece is not None:
                return self._flat[piece[0]:piece[1]]
        return None

    def _write_group_record(self, f: Frame) -> None:
        if self._progress is not None:
            record = f.record()
            record["group"] = self.layout.role(f.src).group
            self._progress.record(record)

    def _collect(self, kind: Kind, srcs, step: int | None = None) -> dict[int, Frame]:
        out = {}
        srcs = set(srcs)
        while srcs - set(out):
            f = self._next(lambda f: f.kind is kind and f.src in srcs and f.src not in out
                           and (step is None or f.step == step))
            out[f.src] = f
        return out

    # ---- params from the servers ------------------------------------------------------------
    def _place(self, f: Frame, lo: int, hi: int) -> None:
        """A server's values for flat[lo:hi] (usually received there already)."""
        values = f.floats()
        if len(values) != hi - lo:
            raise FrameError(f"{self.layout.role(f.src).describe()} sent {len(values)} values "
                             f"for {hi - lo} (a {f.kind.name} frame)")
        if not np.shares_memory(values, self._flat):     # (it was received elsewhere)
            self._flat[lo:hi] = values

    def _pull_ranges(self) -> None:
        """Every server's whole range (R_GET: the start, or a resume)."""
        for s, f in self._collect(Kind.R_GET, self.servers).items():
            self._place(f, *self.params_layout.servers[self.servers.index(s)])
        for p, r in zip(self.plan.params, self.params_layout.params):
            self.executor.write(p.buffer, self._flat[r.lo:r.hi])

    def _pull_updates(self) -> None:
        """Wait for every updated param unit this worker pushed; each goes to the device as
        soon as all its parts are in."""
        missing = {ui: {s for s, _, _ in self._pieces[ui]} for ui in self._pushed}
        while missing:
            f = self._next(lambda f: f.kind is Kind.R_UPDATE and f.target in missing and
                           f.src in self.servers and
                           self.servers.index(f.src) in missing[f.target])
            s = self.servers.index(f.src)
            self._place(f, *self._piece_of[(f.target, s)])
            missing[f.target].discard(s)
            if not missing[f.target]:
                del missing[f.target]
                u = self.params_layout.units[f.target]
                r = self.params_layout.params[u.param]
                self.executor.write(self.plan.params[u.param].buffer, self._flat[u.lo:u.hi],
                                    offset=u.lo - r.lo)

    def init_params(self):
        for s in self.servers:
            self.transport.send(s, Frame(Kind.GET, self.role.rank))
        self._pull_ranges()
        for p in self.plan.params:
            self.executor.write(p.grad, np.zeros(p.shape, np.float32))

    def restore_checkpoint(self, folder=None) -> bool:
        """The servers loaded the params and updater state; the worker takes the data
        position and the step from the checkpoint's meta."""
        folder = folder or checkpoint.latest(self.workspace, warn=self._warn)
        if folder is None:
            return False
        _, state, meta = checkpoint.load(folder)
        self.init_params()
        self.run_init()
        for name in self._persistent_buffers():
            saved = state.get(f"{CARRY_KEY}/{name}")
            # carried recurrent state has one row per batch row: only a worker with the
            # driver's rows can take it; the others start it from zeros
            if saved is not None and saved.size == self.executor.read(name).size:
                self.executor.write(name, saved)
        state = meta.get("readers", {}).get("train")
        if state is not None:
            reader = self.readers["train"]
            if self.role.group:        # another shard: same epoch, the position kept in range
                mine = reader.state()
                state = {**mine, "epoch": state["epoch"],
                         "position": state["position"] % max(1, mine["records"])}
            reader.restore(state)
        for name, st in meta.get("readers", {}).items():
            if name != "train" and name in self.readers:
                self.readers[name].restore(st)
        self._display_acc.update(meta.get("display", {}))
        self.step = int(meta["step"])
        return True

    # ---- one step -------------------------------------------------------------------------
    def train_step(self, step: int):
        train = self._start_step(step)
        t0 = time.perf_counter()
        self.transport.flush()           # last step's gradients are out of _flat_grad
        copies = self._enqueue_train()
        self.numerics.enqueue()
        for ui, event in copies:         # in the order backward finishes them
            self._await(event)
            self._push(ui, step)
        t1 = t2 = time.perf_counter()
        loss, acc = self._read_losses(train)
        loss, acc = self._group_metric(step, loss, acc)
        self._pull_updates()
        t3 = time.perf_counter()
        for key, dt in (("compute+push", t1 - t0), ("wait", t3 - t2)):
            self.timing[key] += dt
        self.timing["steps"] += 1
        if not math.isfinite(loss) or self.numerics.tripped():
            raise self._numerical_error(step, loss)
        return loss, acc

    def _push(self, ui: int, step: int) -> None:
        """Send param unit ``ui``'s gradient (off the device) to the servers holding it."""
        u = self.params_layout.units[ui]
        if self.weight != 1.0:
            grad = self._flat_grad[u.lo:u.hi]
            grad *= np.float32(self.weight)
        for s, a, b in self._pieces[ui]:
            self.transport.send(self.servers[s], Frame(
                Kind.UPDATE, self.role.rank, ui, step, self.weight, self._flat_grad[a:b]))

    def _group_metric(self, step: int, loss: float, acc: float | None):
        """The group's loss: each worker's batch mean weighted by its share of the rows."""
        if self.layout.workers_per_group == 1:
            return loss, acc
        mine = np.array([loss * self.weight, (acc or 0.0) * self.weight], np.float32)
        if not self.is_leader:
            self.transport.send(self.layout.worker_rank(self.role.group, 0),
                                Frame(Kind.METRIC, self.role.rank, self.role.group, step, 0.0,
                                      mine))
            return loss, acc
        others = [r for r in self.layout.group_ranks(self.role.group) if r != self.role.rank]
        total = mine.astype(np.float64)
        for f in self._collect(Kind.METRIC, others, step).values():
            total += f.floats()
        return float(total[0]), (None if acc is None else float(total[1]))

    # ---- what only the driver does ---------------------------------------------------------
    def _open_progress(self, steps: int, resumed: bool):
        if self.is_driver:
            self._progress = _DriverProgress(self, self.job["name"], steps, self.step,
                                             self.workspace, self.quiet, resume=resumed)
        else:
            self._progress = _GroupProgress(self)
        return self._progress

    def _evaluations(self, step, progress, final=False):
        if self.is_driver:
            super()._evaluations(step, progress, final)

    def save_checkpoint(self, step: int):
        if not self.is_driver:
            return
        for s in self.servers:
            self.transport.send(s, Frame(Kind.CKPT_REQUEST, self.role.rank, 0, step))
        names = sorted(self.updater.definition.state_for(self.updater.args))
        flat = {"": np.zeros(self.params_layout.total, np.float32)}
        flat.update({n: np.zeros(self.params_layout.total, np.float32) for n in names})
        for s, f in self._collect(Kind.CKPT_DATA, self.servers).items():
            lo, hi = self.params_layout.servers[self.servers.index(s)]
            blob = f.floats()
            if len(blob) != (hi - lo) * (1 + len(names)):
                raise FrameError(f"{self.layout.role(s).describe()} sent a checkpoint of "
                                 f"{len(blob)} values for a range of {hi - lo}")
            for k, key in enumerate([""] + names):
                flat[key][lo:hi] = blob[k * (hi - lo):(k + 1) * (hi - lo)]
        params, state = {}, {}
        for p, r in zip(self.plan.params, self.params_layout.params):
            params[p.store_name] = flat[""][r.lo:r.hi].reshape(p.shape)
            for n in names:
                state[f"{p.store_name}/{n}"] = flat[n][r.lo:r.hi].reshape(p.shape)
        for name in self._persistent_buffers():     # batchnorm averages, carried state
            state[f"{CARRY_KEY}/{name}"] = self.executor.read(name)
        meta = {"readers": {n: r.state() for n, r in self.readers.items()},
                "display": {k: v for k, v in self._display_acc.items() if k != "t0"},
                "job": self.job["name"], "cluster": self.plan.cluster}
        checkpoint.save(self.workspace, step, params, state, meta)

    # ---- the end ---------------------------------------------------------------------------
    def _timing_note(self) -> str:
        """What a subclass adds to the driver's step-time line."""
        return ""

    def run(self) -> list[dict]:
        records = super().run()
        if self.is_driver and not self.quiet and self.timing["steps"]:
            n = self.timing["steps"]
            print("step time on " + self.role.describe() + ": " + ", ".join(
                f"{k} {self.timing[k] / n * 1e3:.1f} ms" for k in ("compute+push", "wait")) +
                self._timing_note(), file=sys.stderr, flush=True)
        for s in self.servers:
            self.transport.send(s, Frame(Kind.STOP, self.role.rank))
        if self.is_leader and not self.is_driver:
            self.transport.send(self.layout.driver, Frame(Kind.DONE, self.role.rank,
                                                          self.role.group))
        self.transport.flush()
        return records


class _DriverProgress(Progress):
    """The driver's display and metrics.jsonl: its own train records carry group 0, and it
    stays open until every other group's leader has sent its last record."""

    def __init__(self, worker: DistributedWorker, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.worker = worker

    def record(self, record: dict):
        if record.get("phase") == "train" and "group" not in record:
            record = {**record, "group": self.worker.role.group}
        super().record(record)

    def close(self):
        import sys
        w = self.worker
        leaders = [w.layout.worker_rank(g, 0) for g in range(1, w.layout.worker_groups)]
        if leaders and sys.exc_info()[0] is None:      # not while an error unwinds
            w._collect(Kind.DONE, leaders)
        super().close()
