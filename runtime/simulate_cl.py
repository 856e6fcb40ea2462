"""Running a partitioned plan (``compiler/lower_partitioned.py``) on one OpenCL device, every
worker of the group in this process: one step with given data and params (the tests compare it
with ``runtime.simulate``'s float64 reference), and the timing of training steps (``singac run
--simulate``, ``benchmarks/bench_partition.py``).

The workers' launches are enqueued one after another on one device, so a measured step is
the *sum* of every worker's compute (plus the connection layers' copies), not the parallel
step a group of real workers would take; ``StepTiming.by_worker`` splits kernel time by the
worker each launch belongs to (its tag: ``conv1@0`` is worker 0) when profiled."""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

import numpy as np

from .executor import Executor
from .simulate import StepResult


def run_step(plan, data: dict, values: dict, *, device=None, executor: Executor | None = None,
             outputs: dict | None = None) -> StepResult:
    """One forward and backward step of ``plan`` (its train list): ``data`` maps each feed's
    field (``d.image``) to the whole batch, ``values`` each param key to its value (float32 on
    the device).  Returns the loss (the batch mean, summed over loss layers, as the trainer
    reports it), every param's gradient and, given ``outputs`` (layer → OutputParts, from
    ``PartitionedPlan.outputs``), every layer's whole output."""
    from .device import Device
    if executor is None:
        executor = Executor.from_plan(device or Device.open(), plan.kernels)
    for p in plan.params:
        executor.write(p.buffer, np.asarray(values[p.key], np.float32).reshape(p.shape))
    train = plan.phase("train")
    for feed in train.feeds:
        executor.write(feed.buffer, np.asarray(data[feed.field]).astype(feed.dtype))
    if "rng:step" in executor.buffer_names:
        executor.write("rng:step", np.zeros(1, np.int32))
    executor.run("train")
    executor.finish()
    loss = sum(float(executor.read(l.loss, (train.batch,)).astype(np.float64).mean())
               for l in train.losses)
    grads = {p.key: executor.read(p.grad, p.shape).astype(np.float64) for p in plan.params}
    outs = {}
    for layer, parts in (outputs or {}).items():
        outs[layer] = _assemble(executor, parts, train.batch)
    return StepResult(loss, grads, outs)


def _assemble(executor, parts, batch) -> np.ndarray:
    sample = tuple(parts[0].sample)
    whole = None
    for part in parts:
        (br, bf), (rows, feats) = part.base, part.region
        shape = (br[1] - br[0],) + ((bf[1] - bf[0],) + sample[1:] if sample else ())
        arr = executor.read(part.buffer, None)[:int(np.prod(shape))].reshape(shape)
        if whole is None:
            whole = np.zeros((batch,) + sample, dtype=np.float64)
        r = slice(rows[0] - br[0], rows[1] - br[0])
        if sample:
            whole[rows[0]:rows[1], feats[0]:feats[1]] = arr[r, feats[0] - bf[0]:feats[1] - bf[0]]
        else:
            whole[rows[0]:rows[1]] = arr[r]
    return whole


@dataclass
class StepTiming:
    """Wall time of training steps (forward, backward and updates, enqueued and finished;
    the batch upload is not timed), and with profiling the kernel time per launch tag and per
    worker (each tag's least time over the steps)."""
    steps: list[float]
    by_worker: dict = field(default_factory=dict)    # worker → kernel seconds per step
    by_tag: dict = field(default_factory=dict)       # launch tag → kernel seconds per step

    @property
    def mean_s(self) -> float:
        return float(np.mean(self.steps))

    @property
    def median_s(self) -> float:
        return float(np.median(self.steps))

    @property
    def min_s(self) -> float:
        return float(np.min(self.steps))


WORKER_TAG = re.compile(r"@(\d+)$")


def worker_of(tag: str) -> str:
    """The worker a launch tag belongs to: ``conv1@0`` → "0"; bridges, updates and untagged
    launches → "other"."""
    if tag.startswith("bridge"):
        return "other"
    m = WORKER_TAG.search(tag)
    return m.group(1) if m else "other"


def time_steps(plan, *, steps: int = 5, warmup: int = 2, device=None, profile: bool = False,
               workspace: str | None = None) -> StepTiming:
    """Train ``warmup + steps`` steps of ``plan`` (initialized as ``singac run`` does, batches
    from its train source) and time the last ``steps``."""
    import tempfile
    from .device import Device
    from .trainer import Trainer
    dev = device if device is not None and not isinstance(device, str) else \
        Device.open(device, profile=profile)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(plan, device=dev, workspace=workspace or tmp, quiet=True,
                          profile=profile)
        try:
            trainer.init_params()
            trainer.run_init()
            ex, train = trainer.executor, plan.phase("train")
            times, tags = [], []
            for step in range(warmup + steps):
                trainer._feed(train)
                ex.finish()
                t0 = time.perf_counter()
                ex.run("train")
                trainer._set_learning_rates(step)
                ex.run("update")
                ex.finish()
                if step >= warmup:
                    times.append(time.perf_counter() - t0)
                if profile:
                    report = ex.profile_report(reset=True)
                    if step >= warmup:
                        tags.append(report.by_tag)
        finally:
            for r in trainer.readers.values():
                r.close()
        out = StepTiming(times)
        for tag in (tags[0] if tags else ()):
            # the least a launch tag took over the steps: on a shared CPU, the estimate least
            # inflated by other processes' time slices
            out.by_tag[tag] = min(t.get(tag, 0.0) for t in tags)
            w = worker_of(tag)
            out.by_worker[w] = out.by_worker.get(w, 0.0) + out.by_tag[tag]
        return out
