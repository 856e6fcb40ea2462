"""A worker rank of a model-parallel group: it runs only its partition of each layer — its
rows of a layer split on the batch, its features (over the group's whole batch) of one split
on features, a ``@none`` layer if it is worker 0 — from the plan ``compiler/lower_worker.py``
lowers for it, and moves what its layer copies need from the other workers' copies as MPI
messages (SINGA's bridge layers).

The train list comes with its ``Exchange`` points.  A step enqueues the list in segments:

* after the launch that finishes a param unit's gradient, a non-blocking copy of it off the
  device (as ``DistributedWorker``): pushed to the servers as soon as it has landed;
* at a send point, a non-blocking read of the piece; once it has landed it leaves for the peer
  as a BRIDGE frame (a fixed header and the raw values, ``runtime/messages.py``);
* at a receive point, the enqueueing waits for the peer's frame — taking in the meantime
  whatever else has landed: pieces to send, gradients to push — and writes it into its buffer
  (non-blocking: the device is already busy with what came before).

Every worker walks one global order of the partitioned graph, so waits never form a cycle
(compiler/lower_worker.py); a peer that dies leaves the others polling a receive, which costs
nothing, until mpiexec ends the job (launch.py names the dead rank: exit 5).

Gradients: the partitioned plan already weighs a batch copy's gradients by its rows (its loss
copy scales them), so nothing is scaled here; each worker pushes the param units it computes
(the whole param for a batch-split layer, its slice for a feature-split one) and the servers
sum each unit over exactly its workers (``ParamLayout.units``).

Every worker reads the group's whole batch (a feature copy computes all rows; the plan picks
each copy's rows out of the fed batch).  The loss each worker reads is its share of the batch
mean (its loss copies' rows; the other rows are zeros), and the group's is their sum.

Evaluation (test, validate) runs on the driver as one worker, with the unpartitioned lists of
the plan: before it, the driver pulls every param whole from the servers.  Each worker sends
its step's loss to the group leader only after it has its updated params back, so when the
leader has them all, every unit of the step is applied on the servers and the pull (or a
checkpoint) sees the group's whole step."""
from __future__ import annotations

import time
from collections import deque

import numpy as np

from .messages import Frame, FrameError, Kind
from .trainer import Trainer, _every_fires
from .worker import DistributedWorker


class ModelParallelWorker(DistributedWorker):
    def __init__(self, plan, layout, role, params, transport, global_batch, *, exchanges,
                 **kwargs):
        self.exchanges = tuple(exchanges)
        self._outbox: deque = deque()     # (exchange, host array, read event): to send
        self._copies: deque = deque()     # (param unit, copy event): gradients to push
        self._uploads: list = []          # (event, array) kept alive until the step ends
        self._peers = {x.peer: layout.worker_rank(role.group, x.peer) for x in self.exchanges}
        # one host array per exchange (each number is sent by one end, received by the other)
        self._host = {x.ident: np.empty(x.count, np.dtype(x.dtype)) for x in self.exchanges}
        self.bridge_bytes = {"sent": 0, "received": 0}
        super().__init__(plan, layout, role, params, transport, global_batch, **kwargs)

    def _train_rows(self, layout, role, global_batch):
        return 0, global_batch            # the whole batch; the plan takes each copy's rows

    # ---- the step's points: gradient copies and exchanges, in train-list order --------------
    def _plan_pipeline(self) -> None:
        super()._plan_pipeline()
        points = [(index + 1, 0, "copy", ui) for index, ui in self._copy_after]
        for x in self.exchanges:
            # at one place, sends before receives: what the peer may be waiting for goes first
            points.append((x.at, 0 if x.send else 1, "send" if x.send else "recv", x))
        self._points = sorted(points, key=lambda p: p[:2])

    def _enqueue_train(self) -> list:
        start = 0
        for at, _, kind, item in self._points:
            if at > start:
                self.executor.run("train", start, at)
                start = at
            if kind == "copy":
                self._copies.append((item, self._copy_grad(item)))
            elif kind == "send":
                self._read_piece(item)
            else:
                self._receive_piece(item)
        self.executor.run("train", start)
        return []

    def _read_piece(self, x) -> None:
        import pyopencl as cl
        host = self._host[x.ident]
        event = cl.enqueue_copy(self.device.queue, host, self.executor.buffer(x.buffer),
                                is_blocking=False)
        self._outbox.append((x, host, event))

    def _receive_piece(self, x) -> None:
        import pyopencl as cl
        peer, step = self._peers[x.peer], self.step
        f = self._next(lambda f: f.kind is Kind.BRIDGE and f.src == peer and
                       f.target == x.ident and f.step == step)
        values = f.floats()
        if values.size != x.count:
            raise FrameError(f"{self.layout.role(peer).describe()} sent {values.size} values "
                             f"for {x.name}, which carries {x.count}")
        values = values.view(np.dtype(x.dtype))
        event = cl.enqueue_copy(self.device.queue, self.executor.buffer(x.buffer), values,
                                is_blocking=False)
        self._uploads.append((event, values))
        self.bridge_bytes["received"] += values.nbytes

    def _sink(self, header):
        """A piece for this step is received straight into its exchange's host array."""
        if header.kind is Kind.BRIDGE:
            host = self._host.get(header.target)
            if host is not None and header.step == self.step and header.nbytes == host.nbytes:
                return host.view(np.float32)
            return None
        return super()._sink(header)

    # ---- whatever has landed leaves: pieces to the peers, gradients to the servers ---------
    def _service(self) -> None:
        import pyopencl as cl
        done = cl.command_execution_status.COMPLETE
        while self._outbox and self._outbox[0][2].command_execution_status == done:
            x, host, _ = self._outbox.popleft()
            self.transport.send(self._peers[x.peer], Frame(
                Kind.BRIDGE, self.role.rank, x.ident, self.step, 0.0, host.view(np.float32)))
            self.bridge_bytes["sent"] += host.nbytes
        while self._copies and self._copies[0][1].command_execution_status == done:
            ui, _ = self._copies.popleft()
            self._push(ui, self.step)
        self.transport.progress()

    _keep_moving = _service        # called by every wait: device copies, frames

    # ---- one step ---------------------------------------------------------------------------
    def train_step(self, step: int):
        import math
        train = self._start_step(step)
        t0 = time.perf_counter()
        self.transport.flush()           # last step's pieces and gradients have left
        self._uploads.clear()
        self._enqueue_train()
        self.numerics.enqueue()
        while self._outbox or self._copies:
            self._await(self._outbox[0][2] if self._outbox else self._copies[0][1])
            self._service()
        t1 = time.perf_counter()
        loss, acc = self._read_losses(train)
        self._pull_updates()
        # after the pull: when the leader has every worker's loss, the group's step is
        # applied on the servers (the driver's evaluation pulls see it whole)
        loss, acc = self._group_metric(step, loss, acc)
        t2 = time.perf_counter()
        self.timing["compute+push"] += t1 - t0
        self.timing["wait"] += t2 - t1
        self.timing["steps"] += 1
        if not math.isfinite(loss) or self.numerics.tripped():
            raise self._numerical_error(step, loss)
        return loss, acc

    # ---- evaluation on the driver, with the whole params ------------------------------------
    def _evaluations(self, step, progress, final=False):
        if not self.is_driver:
            return
        due = False
        for name in ("validate", "test"):
            every = self.job.get(name)
            if self.plan.phase(name) is not None and every is not None:
                due |= final or _every_fires(every, step)
        if due:              # this worker holds only its slices of feature-split params
            for s in self.servers:
                self.transport.send(s, Frame(Kind.GET, self.role.rank))
            self._pull_ranges()
        Trainer._evaluations(self, step, progress, final)

    def _timing_note(self) -> str:
        n = max(1, self.timing["steps"])
        return (f", bridges: sent {self.bridge_bytes['sent'] // n} B, received "
                f"{self.bridge_bytes['received'] // n} B per step")
