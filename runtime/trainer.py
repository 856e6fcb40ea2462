"""SINGA's ``Worker::Run`` for one worker and one server in one process: the job loop over a
Plan on one OpenCL device.

Per step, in SINGA's order: validate and test when due, checkpoint when due, then train one
batch (upload the batch, enqueue forward+backward, enqueue the updates, read the per-sample
losses back — the step's single synchronisation), then display when due.
"""
from __future__ import annotations

import math
import pathlib

import numpy as np

from singa_dsl.errors import SingaConfigError, SingaError
from . import checkpoint, numerics
from .data import SOURCES
from .executor import Executor
from .initializers import initial_values
from .progress import Progress
from .schedules import learning_rate
from .updaters import UpdaterSpec


CARRY_KEY = "carried-state"      # state.npz entries holding bptt's carried recurrent state
ON_NAN = ("stop", "skip")
MAX_SKIPPED_IN_A_ROW = 20        # --on-nan skip gives up after this many steps in a row


class NumericalError(SingaError):
    exit_code = 6


def _every_fires(e: dict | None, step: int) -> bool:
    return e is not None and step >= e["after"] and (step - e["after"]) % e["every"] == 0


class Trainer:
    def __init__(self, plan, *, device=None, workspace: str | None = None, steps: int | None = None,
                 quiet: bool = False, resume: bool = False, profile: bool = False,
                 on_nan: str = "stop"):
        from .device import Device
        if on_nan not in ON_NAN:
            raise SingaConfigError(f"on_nan must be one of {', '.join(ON_NAN)}, not {on_nan!r}")
        if on_nan == "skip" and plan.fused_updates:
            raise ValueError("--on-nan skip checks a step before updating: the plan must not "
                             "fuse updates into its GEMMs (compiler/fuse_update.py)")
        self.on_nan = on_nan
        self.last_step_skipped = False
        self.skip_note = ""
        self._skipped_in_a_row = 0
        self.plan = plan
        self.job = dict(plan.job)
        if steps is not None:
            self.job["steps"] = steps
        self.workspace = pathlib.Path(workspace or self.job["workspace"])
        self.resume = resume
        self.quiet = quiet
        self.device = device if device is not None and not isinstance(device, str) else \
            Device.open(device, profile=profile)
        self.profile = profile
        fit = getattr(self.device, "fit_problem", None)      # before anything is allocated
        problem = fit({b.name: b.nbytes for b in plan.kernels.buffers}) if fit else None
        if problem:
            raise SingaConfigError(problem, hint="use a smaller batch or fewer units; "
                                                 "'singac check' prints the estimate")
        self.executor = Executor.from_plan(self.device, plan.kernels, profile=profile)
        self.updater = UpdaterSpec.from_json(plan.updater)
        self.readers = {p.name: self._open_reader(p) for p in plan.phases}
        self.numerics = numerics.StepCheck(self.executor, plan) if plan.phase("train") else None
        self.step = 0
        # samples one training step consumes (a distributed worker: its group's whole batch)
        self.samples_per_step = plan.phase("train").batch if plan.phase("train") else 0
        self._display_acc = {"loss": 0.0, "hits": 0.0, "count": 0, "samples": 0, "t0": 0.0,
                             "skipped": 0}

    # ---- setup ------------------------------------------------------------------------
    def _open_reader(self, phase):
        d = self.plan.data[phase.data_block][phase.name]
        source = SOURCES[d["kind"]]
        return source.open(d["args"], pathlib.Path(d["base_dir"]),
                           seed=self.job["seed"] + (0 if phase.name == "train" else 7919),
                           prefetch=True)

    def init_params(self):
        loaded = checkpoint.load_init_from(self.job.get("init_from", []), warn=self._warn)
        for p, value in initial_values(self.plan.params, self.job["seed"], loaded):
            self.executor.write(p.buffer, value)
            if p.grad in self.executor.buffer_names:    # not where the update is fused
                self.executor.write(p.grad, np.zeros(p.shape, np.float32))
            for s in p.state:
                self.executor.write(s, np.zeros(p.shape, np.float32))

    def _warn(self, text: str):
        import sys
        print(f"warning: {text}", file=sys.stderr)

    # ---- checkpoints --------------------------------------------------------------------
    def save_checkpoint(self, step: int):
        params, state = {}, {}
        for p in self.plan.params:
            params[p.store_name] = self.executor.read(p.buffer, p.shape)
            for s in p.state:
                state[f"{p.store_name}/{s.split(':')[1]}"] = self.executor.read(s, p.shape)
        for name in self._persistent_buffers():
            state[f"{CARRY_KEY}/{name}"] = self.executor.read(name)
        meta = {"readers": {n: r.state() for n, r in self.readers.items()},
                "display": {k: v for k, v in self._display_acc.items() if k != "t0"},
                "job": self.job["name"]}
        checkpoint.save(self.workspace, step, params, state, meta)

    def restore_checkpoint(self, folder: pathlib.Path | None = None) -> bool:
        folder = folder or checkpoint.latest(self.workspace, warn=self._warn)
        if folder is None:
            return False
        params, state, meta = checkpoint.load(folder)
        for p in self.plan.params:
            if p.store_name not in params:
                raise SingaConfigError(f"checkpoint {folder} has no param '{p.store_name}'")
            self.executor.write(p.buffer, params[p.store_name].astype(np.float32))
            for s in p.state:
                key = f"{p.store_name}/{s.split(':')[1]}"
                self.executor.write(s, state.get(key, np.zeros(p.shape, np.float32)))
        self.run_init()
        for name in self._persistent_buffers():
            if f"{CARRY_KEY}/{name}" in state:
                self.executor.write(name, state[f"{CARRY_KEY}/{name}"])
        for name, st in meta.get("readers", {}).items():
            if name in self.readers:
                self.readers[name].restore(st)
        self._display_acc.update(meta.get("display", {}))
        self.step = int(meta["step"])
        return True

    def test_from_checkpoint(self, path: str, batches: int | None = None) -> dict:
        """Load a checkpoint (a workspace's newest intact one, or a given folder) and
        evaluate the test phase; by default over the whole test set."""
        folder = pathlib.Path(path)
        if not (folder / "MANIFEST.json").exists():
            folder = checkpoint.latest(folder, warn=self._warn)
            if folder is None:
                raise SingaConfigError(f"no intact checkpoint in {path}")
        self.restore_checkpoint(folder)
        phase = self.plan.phase("test")
        if phase is None:
            raise SingaConfigError("the program has no test data")
        reader = self.readers["test"]
        reader.restore({**reader.state(), "epoch": 0, "position": 0})
        n = batches or max(1, math.ceil(reader.records / phase.batch))
        try:
            return self.evaluate("test", n)
        finally:
            for r in self.readers.values():
                r.close()

    # ---- one step -----------------------------------------------------------------------
    def _feed(self, phase) -> None:
        batch = self.readers[phase.name].next_batch()
        for feed in phase.feeds:
            self.executor.write(feed.buffer, batch[feed.field.split(".", 1)[1]])

    def _set_learning_rates(self, step: int):
        base = learning_rate(self.updater.lr, step)
        params = {p.key: p for p in self.plan.params}
        for u in self.plan.updates:
            self.executor.set_arg("update", u.index, u.lr_arg,
                                  np.float32(base * params[u.param].lr_scale))
        for fu in self.plan.fused_updates:       # SGD in the gradient's GEMM
            lr = base * params[fu.param].lr_scale
            if fu.lr_arg >= 0:                   # with momentum: lr is an argument of its own
                self.executor.set_arg("train", fu.index, fu.lr_arg, np.float32(lr))
                continue
            self.executor.set_arg("train", fu.index, fu.alpha_arg,
                                  np.float32(-lr * fu.grad_scale))
            self.executor.set_arg("train", fu.index, fu.beta_arg, np.float32(1.0 - lr * fu.wd))

    def _read_losses(self, phase) -> tuple[float, float | None]:
        loss, hits, n = 0.0, None, 0
        for out in phase.losses:
            values = self.executor.read(out.loss, (phase.batch,))
            loss += float(values.mean())
            if out.correct is not None:
                h = float(self.executor.read(out.correct, (phase.batch,)).mean())
                hits = h if hits is None else hits + h
                n += 1
        metric = self.plan.metric or {}
        if metric.get("reduce") == "mean":       # bptt: per-sequence sums over the steps
            loss /= metric.get("steps") or max(1, len(phase.losses))
        return loss, (None if hits is None else hits / n)

    def _metric_fields(self, loss: float) -> dict:
        """What a record adds for non-BP algorithms: the metric's name (its value is the
        record's loss) and, for language models, the perplexity."""
        metric = self.plan.metric
        if not metric:
            return {}
        out = {"metric": metric["name"]}
        if metric.get("perplexity"):
            out["perplexity"] = math.exp(loss) if loss < 700 else math.inf
        return out

    def run_init(self):
        """Launch list "init" (zeroing carried recurrent state), when the plan has one."""
        if self._has_list("init"):
            self.executor.run("init")

    def _carried_state(self) -> list[str]:
        """Buffers of recurrent state carried across training batches (bptt carry_state),
        saved with checkpoints so that a resumed run continues exactly."""
        return [b.name for b in self.plan.kernels.buffers if b.name.startswith("train:carry")]

    def _has_list(self, name: str) -> bool:
        return any(n == name for n, _ in self.plan.kernels.launch_lists)

    def _start_step(self, step: int):
        """Upload the step's batch and its number (for the counter-based random draws);
        returns the train phase."""
        train = self.plan.phase("train")
        self._feed(train)
        if "rng:step" in self.executor.buffer_names:
            self.executor.write("rng:step", np.array([step], np.int32))
        return train

    def train_step(self, step: int) -> tuple[float, float | None]:
        train = self._start_step(step)
        if self.on_nan == "skip":
            return self._train_step_or_skip(step, train)
        self._set_learning_rates(step)      # before "train": it may apply fused updates
        self.executor.run("train")
        self.numerics.enqueue()
        self.executor.run("update")
        loss, acc = self._read_losses(train)
        if not math.isfinite(loss) or self.numerics.tripped():
            raise self._numerical_error(step, loss)
        return loss, acc

    def _train_step_or_skip(self, step: int, train) -> tuple[float, float | None]:
        """--on-nan skip: the numerics check runs before the update does; a non-finite step
        updates nothing (the running state it moved is put back) and returns (nan, None)
        with ``last_step_skipped`` set."""
        kept = {name: self.executor.read(name) for name in self._persistent_buffers()}
        self.executor.run("train")
        self.numerics.enqueue()
        loss, acc = self._read_losses(train)
        self.last_step_skipped = not math.isfinite(loss) or self.numerics.tripped()
        if not self.last_step_skipped:
            self._skipped_in_a_row = 0
            self._set_learning_rates(step)
            self.executor.run("update")
            return loss, acc
        error = self._numerical_error(step, loss)
        self.numerics.reset()
        self._skipped_in_a_row += 1
        if self._skipped_in_a_row >= MAX_SKIPPED_IN_A_ROW:
            raise NumericalError(f"{self._skipped_in_a_row} steps in a row were skipped for "
                                 f"NaN/Inf; the last: {error.message}", hint=error.hint)
        for name, value in kept.items():
            self.executor.write(name, value)
        self.skip_note = f"step {step} skipped: {error.message}"
        return math.nan, None

    def _numerical_error(self, step: int, loss: float) -> NumericalError:
        found = numerics.first_non_finite(self.executor, self.plan)
        text = found.message(step) if found is not None else \
            f"the training loss became {loss} at step {step}"
        if found is not None and not math.isfinite(loss):
            text += f"; the training loss became {loss}"
        return NumericalError(text, hint=found.hint() if found is not None else numerics.HINT)

    def _persistent_buffers(self) -> list[str]:
        """Buffers a train step moves that outlive it besides params and updater state:
        bptt's carried recurrent state and batchnorm's running averages."""
        return self._carried_state() + sorted(n for n in self.executor.buffer_names
                                              if n.startswith("bn:"))

    def evaluate(self, phase_name: str, batches: int) -> dict:
        phase = self.plan.phase(phase_name)
        total, hits, count = 0.0, 0.0, 0
        if self._has_list(f"reset:{phase_name}"):     # bptt carry_state: start from zeros
            self.executor.run(f"reset:{phase_name}")
        if "rng:step" in self.executor.buffer_names:    # cd's test samples: reproducible
            self.executor.write("rng:step", np.array([self.step], np.int32))
        for _ in range(batches):
            self._feed(phase)
            self.executor.run(phase_name)
            loss, acc = self._read_losses(phase)
            total += loss
            hits += acc or 0.0
            count += 1
        record = {"phase": phase_name, "step": self.step, "loss": total / count}
        if phase.losses and phase.losses[0].correct is not None:
            record["accuracy"] = hits / count
        record.update(self._metric_fields(record["loss"]))
        return record

    # ---- the loop -----------------------------------------------------------------------
    def run(self) -> list[dict]:
        try:
            for name in ("metrics.jsonl", "checkpoints"):   # no link out of the workspace
                checkpoint.inside_workspace(self.workspace, name)
        except SingaError:
            for r in self.readers.values():
                r.close()
            raise
        resumed = self.resume and self.restore_checkpoint()
        if not resumed:
            self.init_params()
            self.run_init()
        steps = self.job["steps"]
        display = self.job.get("display") or {"every": max(1, steps // 50), "after": 0}
        progress = self._open_progress(steps, resumed)
        if resumed:
            progress.message(f"resumed {self.job['name']} at step {self.step}")
            _truncate_metrics(progress, self.step)
        start = self.step
        acc = self._display_acc
        acc["t0"] = progress.elapsed()
        try:
            for step in range(start, steps):
                self.step = step
                if step != start or not resumed:
                    self._evaluations(step, progress)
                    if step > 0 and _every_fires(self.job.get("checkpoint"), step):
                        self.save_checkpoint(step)
                loss, hits = self.train_step(step)
                if self.last_step_skipped:           # --on-nan skip
                    acc["skipped"] = acc.get("skipped", 0) + 1
                    progress.message(self.skip_note)
                else:
                    acc["loss"] += loss
                    acc["hits"] += hits or 0.0
                    acc["count"] += 1
                acc["samples"] += self.samples_per_step
                if _every_fires(display, step) or step == steps - 1:
                    self._display(step, progress, hits is not None)
                progress.advance(step + 1)
            self.step = steps
            self._evaluations(steps, progress, final=True)
            self.save_checkpoint(steps)
            if self.profile:
                progress.message(self.executor.profile_report().table())
        finally:
            progress.close()
            for r in self.readers.values():
                r.close()
        return progress.records

    def _open_progress(self, steps: int, resumed: bool) -> Progress:
        return Progress(self.job["name"], steps, self.step, self.workspace, self.quiet,
                        resume=resumed)

    def _evaluations(self, step: int, progress: Progress, final: bool = False):
        for name in ("validate", "test"):
            every = self.job.get(name)
            if self.plan.phase(name) is None or every is None:
                continue
            if _every_fires(every, step) or (final and not _every_fires(every, step)):
                progress.record(self.evaluate(name, every["batches"]))

    def _display(self, step: int, progress: Progress, has_accuracy: bool):
        acc = self._display_acc
        now = progress.elapsed()
        count = acc["count"] or math.nan            # every step since the last one skipped
        record = {"phase": "train", "step": step, "loss": acc["loss"] / count}
        if has_accuracy:
            record["accuracy"] = acc["hits"] / count
        if acc.get("skipped"):
            record["skipped"] = acc["skipped"]        # steps skipped for NaN/Inf since then
        record.update(self._metric_fields(record["loss"]))
        dt = now - acc["t0"]
        record["samples_per_s"] = acc["samples"] / dt if dt > 0 else None
        progress.record(record)
        acc.update(loss=0.0, hits=0.0, count=0, samples=0, t0=now, skipped=0)   # in place


def _truncate_metrics(progress: Progress, step: int):
    """Drop records an interrupted run wrote after its last checkpoint."""
    import json
    path = progress.metrics_path
    if path is None:          # a rank that writes no metrics (a distributed non-driver)
        return
    progress._metrics.close()
    kept = []
    for line in path.read_text().splitlines():
        try:
            r = json.loads(line)
        except ValueError:
            continue       # a line cut short by the interruption
        if (r.get("phase") == "train" and r.get("step", 0) < step) or \
                (r.get("phase") != "train" and r.get("step", 0) <= step):
            kept.append(line)
    path.write_text("".join(l + "\n" for l in kept))
    progress._metrics = open(path, "a", encoding="utf-8")
