"""``reduce: ring``: a synchronous group without parameter servers.  Every worker keeps the
whole params and updater state on its own device; after each gradient leaves backward it is
summed over the group with MPI's non-blocking allreduce (MPICH runs a ring or recursive
halving on the link it has), and each worker then applies the same update with its own
update kernels — the replicas stay equal, as the servers' single copy would be.

Faster than servers where the update is cheap on the workers' devices and the servers'
extra hop (gradients up, values down, an update in numpy) is what costs: the 10 M-param
MLP on this 2-core machine (BENCHMARKS.md).  Servers remain the way for several groups.
"""
from __future__ import annotations

import time

import numpy as np

from .trainer import Trainer
from .worker import DistributedWorker


class RingWorker(DistributedWorker):
    def __init__(self, *args, comm, **kwargs):
        self.comm = comm
        self._requests = []
        super().__init__(*args, **kwargs)

    def _server_ranks(self) -> list[int]:
        return []

    # the params start and resume on every worker alike (same seed, same checkpoint)
    def init_params(self):
        Trainer.init_params(self)

    def restore_checkpoint(self, folder=None) -> bool:
        return Trainer.restore_checkpoint(self, folder)

    def save_checkpoint(self, step: int):
        if self.is_driver:
            Trainer.save_checkpoint(self, step)

    # MPICH moves a non-blocking collective only inside MPI calls: whoever waits here, for a
    # copy off the device or for the sums, keeps testing the collectives in flight (sleeping
    # ~50 µs between tests: a core kept nearly idle, the ring kept moving).
    _AWAIT_MAX_SLEEP = 50e-6

    def _keep_moving(self) -> bool:
        from mpi4py import MPI
        return MPI.Request.Testall(self._requests) if self._requests else True

    def _wait(self) -> None:
        while not self._keep_moving():
            time.sleep(self._AWAIT_MAX_SLEEP)
        self._requests = []

    def train_step(self, step: int):
        from mpi4py import MPI
        train = self._start_step(step)
        t0 = time.perf_counter()
        copies = self._enqueue_train()
        self.numerics.enqueue()
        self._requests, summed = [], []
        requests = self._requests
        for ui, event in copies:          # each gradient enters the ring as it is produced
            self._await(event)
            u = self.params_layout.units[ui]      # (a whole param: no feature splits here)
            grad = self._flat_grad[u.lo:u.hi]
            if self.weight != 1.0:
                grad *= np.float32(self.weight)
            requests.append(self.comm.Iallreduce(MPI.IN_PLACE, [grad, MPI.FLOAT], op=MPI.SUM))
            summed.append((u.param, grad))
        t1 = time.perf_counter()
        loss, acc = self._read_losses(train)
        metric = np.array([loss * self.weight, (acc or 0.0) * self.weight], np.float64)
        requests.append(self.comm.Iallreduce(MPI.IN_PLACE, [metric, MPI.DOUBLE], op=MPI.SUM))
        self._wait()
        for pi, grad in summed:
            self.executor.write(self.plan.params[pi].grad, grad)
        self._set_learning_rates(step)
        self.executor.run("update")
        self.executor.finish()
        t2 = time.perf_counter()
        self.timing["compute+push"] += t1 - t0
        self.timing["wait"] += t2 - t1
        self.timing["steps"] += 1
        loss, acc = float(metric[0]), (None if acc is None else float(metric[1]))
        if not np.isfinite(loss) or self.numerics.tripped():
            raise self._numerical_error(step, loss)
        return loss, acc
