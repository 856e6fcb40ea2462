"""Compile and run: the bridge from a CheckedProgram to the runtime (which sees only a Plan)."""
from __future__ import annotations


def compile_plan(program):
    from .compiler.lower import lower_program
    return lower_program(program)


def plan_with_train_batch(program, batch: int | None, row0: int = 0):
    """The program's plan, with the train batch set to ``batch`` rows starting at global row
    ``row0`` (None: as written) — what one worker of a group computes."""
    from .compiler.lower import TRAIN_ROWS
    if batch is None:
        return compile_plan(program)
    token = TRAIN_ROWS.set((row0, program.batch))
    try:
        return _compile_with_batch(program, batch)
    finally:
        TRAIN_ROWS.reset(token)


def _compile_with_batch(program, batch: int):
    import dataclasses
    data = {}
    for name, spec in program.data.items():
        train = spec.phases.get("train")
        if train is not None:
            train = dataclasses.replace(train, args={**train.args, "batch": batch})
            spec = dataclasses.replace(spec, phases={**spec.phases, "train": train})
        data[name] = spec
    return compile_plan(dataclasses.replace(program, data=data))


def _say(quiet: bool):
    import sys
    return None if quiet else (lambda text: print(text, file=sys.stderr, flush=True))


def tuned_plan(lower, device, *, tune: bool | None = None, quiet: bool = False):
    """``lower()``'s plan with the GEMM kernels measured fastest on ``device`` (an open
    Device: shapes not yet in the tuning cache are measured first when ``tune`` is True, or
    None and SINGA_TUNE=1; or a selector string/None: cached choices only, nothing
    measured)."""
    from .runtime import autotune
    if device is None or isinstance(device, str):
        return autotune.lower_cached(lower, device)
    return autotune.lower_tuned(lower, device, tune=tune, say=_say(quiet))


def training_plan(program, device, *, tune: bool | None = None, quiet: bool = False,
                  on_nan: str = "stop"):
    """The plan one process trains with: tuned GEMMs (``tuned_plan``), and plain SGD applied
    by the GEMMs computing the gradients where it can be (compiler/fuse_update.py) — not
    under ``--on-nan skip``, which checks a step before any update."""
    from .compiler.fuse_update import fuse_sgd
    plan = tuned_plan(lambda: compile_plan(program), device, tune=tune, quiet=quiet)
    return plan if on_nan == "skip" else fuse_sgd(plan)


def _worker_lowerings(program, layout):
    """A lowering of each distinct plan a group's worker ranks compile: its rows of every
    layer, or, model-parallel, its partition of each layer (and the driver's unpartitioned
    evaluation lists)."""
    if not layout.distributed:
        return [lambda: compile_plan(program)]
    from .compiler.lower_worker import model_parallel
    mp, _ = model_parallel(program, layout.workers_per_group, ring=layout.ring)
    if mp is not None:
        return [lambda w=w: mp.worker_plan(w).plan for w in range(mp.workers)]
    out = {}
    for w in range(layout.workers_per_group):
        lo, hi = layout.rows(w, program.batch)
        out.setdefault(hi - lo, lambda rows=hi - lo, row0=lo:
                       plan_with_train_batch(program, rows, row0))
    return list(out.values())


def tune_program(program, *, device=None, force: bool = False, quiet: bool = False,
                 brief: bool = False):
    """Measure the fastest GEMM kernels for every shape the program's plans use on this
    device (each worker's rows, for a cluster) and cache them (``singac tune``).  Returns
    the measured results.  ``brief``: say nothing when nothing needs measuring."""
    import dataclasses
    from .runtime import autotune
    from .runtime.cluster import Layout
    from .runtime.device import Device
    layout = Layout.from_cluster(dataclasses.asdict(program.cluster))
    dev = device if device is not None and not isinstance(device, str) else Device.open(device)
    keys = set()
    for lower in _worker_lowerings(program, layout):
        keys |= autotune.gemm_keys(lower, dev, cached=not force)
    say = _say(quiet)
    if not keys:
        if say and not brief:
            say(f"nothing to tune: every GEMM of {program.file} big enough to repay it is "
                f"in the cache for {dev.name} ({dev.compute_units} compute units); --force "
                "measures them again")
        return []
    return autotune.tune_and_record(dev, keys, say=say)


def _pretune(program, layout, *, device, threads, quiet, tune) -> None:
    """Before starting the ranks: measure the workers' GEMM shapes not yet cached, in a
    process with a worker's thread count (PoCL's threads are fixed when it starts), so that
    each rank finds its choices in the cache."""
    import os
    import pathlib
    import subprocess
    import sys
    from .runtime import autotune, launch
    if not autotune.tuning_enabled(tune) or not pathlib.Path(program.file).is_file():
        return
    env = dict(os.environ)
    env.setdefault("POCL_MAX_PTHREAD_COUNT", str(launch.worker_threads(layout, threads)))
    cmd = [sys.executable, "-m", "singa_dsl.cli", "tune", str(program.file), "--brief"]
    cmd += ["--device", str(device)] * (device is not None) + ["--quiet"] * bool(quiet)
    if subprocess.run(cmd, env=env).returncode:
        print("warning: tuning the workers' GEMMs failed; they use the default kernels",
              file=sys.stderr)


def run_program(program, *, steps=None, device=None, workspace=None, resume=False, quiet=False,
                reference=False, profile=False, hosts=None, max_restarts=0, threads=None,
                on_nan="stop", tune: bool | None = None):
    """Train: in this process for one worker and one server; on MPI otherwise — ``singac``
    starts the ranks itself, or, inside an ``mpiexec`` the user started, runs this rank.
    ``tune``: measure the GEMM shapes missing from the tuning cache first (None: when
    SINGA_TUNE=1; see runtime/autotune.py).  Cached choices apply either way."""
    import dataclasses
    from .runtime.cluster import Layout
    layout = Layout.from_cluster(dataclasses.asdict(program.cluster))
    if layout.distributed:
        from .runtime import launch
        if launch.in_mpi_job():
            return launch.run_rank(
                program, lambda b, row0=0: tuned_plan(
                    lambda: plan_with_train_batch(program, b, row0), device),
                model_parallel=_model_parallel(program, layout, device),
                steps=steps, device=device, workspace=workspace, resume=resume, quiet=quiet,
                profile=profile, on_nan=on_nan)
        _warn_about_feature_partitions(program, layout, quiet)
        _pretune(program, layout, device=device, threads=threads, quiet=quiet, tune=tune)
        options = []
        for flag, value in (("--steps", steps), ("--device", device),
                            ("--workspace", workspace), ("--on-nan", on_nan)):
            if value is not None:
                options += [flag, str(value)]
        options += ["--quiet"] * bool(quiet) + ["--profile"] * bool(profile)
        return launch.launch(program.file, layout, options, hosts=hosts,
                             max_restarts=max_restarts, resume=resume, threads=threads)
    from .runtime.trainer import Trainer
    if device is None or isinstance(device, str):
        from .compiler.memory import check_device_fit
        check_device_fit(program, device)     # located in the program, before any allocation
    from .runtime.device import Device
    if device is None or isinstance(device, str):
        device = Device.open(device, profile=profile)
    plan = training_plan(program, device, tune=tune, quiet=quiet, on_nan=on_nan)
    trainer = Trainer(plan, device=device, workspace=workspace, steps=steps, quiet=quiet,
                      resume=resume, profile=profile, on_nan=on_nan)
    return trainer.run()


def simulate_program(program, *, workers=None, steps=None, device=None, workspace=None,
                     resume=False, quiet=False, profile=False, on_nan="stop"):
    """Train one worker group's partitioned net with every worker simulated in this process
    on one OpenCL device (``singac run --simulate``): the plan of
    ``compiler.lower_partitioned`` for ``workers`` per group (default: the cluster block's),
    its params, updates, evaluation and checkpoints those of the unpartitioned plan."""
    import sys
    from .compiler.lower_partitioned import lower_partitioned
    from .runtime.trainer import Trainer
    pp = lower_partitioned(program, workers)
    if not quiet:
        dims = {}
        for n in pp.graph.nodes.values():
            node = n["node"]
            if node.kind == "layer":
                dims.setdefault(node.dim, []).append(node.of)
        parts = "; ".join(f"{d}: {', '.join(dict.fromkeys(ls))}" for d, ls in dims.items())
        print(f"simulating {pp.workers} worker(s) of one group in this process ({parts})",
              file=sys.stderr)
    trainer = Trainer(pp.plan, device=device, workspace=workspace, steps=steps, quiet=quiet,
                      resume=resume, profile=profile, on_nan=on_nan)
    return trainer.run()


def _model_parallel(program, layout, device):
    """How an MPI rank runs its group (compiler/lower_worker.model_parallel): None when every
    worker computes its rows of every layer, else the partitioning each worker runs its part
    of — its plans lowered with the cached GEMM choices, as the rows plans are."""
    import dataclasses
    from .compiler.lower_worker import model_parallel
    mp, _ = model_parallel(program, layout.workers_per_group, ring=layout.ring)
    if mp is None:
        return None
    return dataclasses.replace(mp, wrap=lambda lower: tuned_plan(lower, device))


def _warn_about_feature_partitions(program, layout, quiet: bool = False) -> None:
    """Say how the group's workers share the net: layers split on features (or kept whole)
    run model-parallel, each worker its part, bridges between the ranks; where that cannot
    run (compiler/lower_worker.model_parallel says why), every layer is split on the batch,
    which computes the same numbers (the partitioning proof of docs/partitioning.md)."""
    import sys
    from .compiler.lower_worker import model_parallel
    if layout.workers_per_group < 2:
        return
    mp, why = model_parallel(program, layout.workers_per_group, ring=layout.ring)
    if why is not None:
        print(f"warning: {why}; the MPI runtime splits every layer on the batch across a "
              "group's workers instead (same results; the partitioning as written runs in one "
              "process with singac run --simulate)", file=sys.stderr)
    elif mp is not None and not quiet:
        print(f"model parallel: each group's {mp.workers} workers run their partition of "
              f"each layer ({mp.describe()})", file=sys.stderr)
