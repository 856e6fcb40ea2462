"""Starting a distributed job on MPI, and what each rank runs.

``launch``: the ``singac`` a user typed starts ``mpiexec -n SIZE python -m mpi4py -m
singa_dsl.cli run FILE ...`` from the installed MPICH (``python -m mpi4py`` turns an uncaught
exception in any rank into MPI_Abort, so a failing rank ends the job instead of hanging it).
It forwards the job's output, and when a rank dies it names the rank and its role (each rank
writes its pid and role into a run folder; MPICH's report names the pid).  With
``max_restarts`` a failed job starts again from its newest intact checkpoint.

``run_rank``: inside an MPI job (started by ``launch`` or by the user's own
``mpiexec -f HOSTS -n N singac run FILE``), take this rank's role from the cluster block and
run it; any error is printed with the rank's role and ends the whole job with its exit code.
"""
from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time

from singa_dsl.errors import SingaConfigError, SingaError
from .cluster import Layout, ParamLayout

RUN_DIR_ENV = "SINGA_DSL_RUN_DIR"
_BAD_PID = re.compile(r"PID (\d+) RUNNING AT (\S+)")
_EXIT = re.compile(r"(?:EXIT CODE|EXIT STRING): (.*)")


class RankFailure(SingaError):
    """A rank died or failed; the job was stopped."""
    exit_code = 5


def in_mpi_job() -> bool:
    return RUN_DIR_ENV in os.environ or any(
        int(os.environ.get(v, "1")) > 1 for v in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE"))


def mpiexec_path() -> str:
    here = pathlib.Path(sys.executable).parent / "mpiexec"
    found = str(here) if here.exists() else shutil.which("mpiexec")
    if found is None:
        raise SingaConfigError("this cluster block needs MPI, and no mpiexec was found",
                               hint="pip install mpi4py mpich (singa_dsl's dependencies "
                               "install them)")
    return found


# ---- the launcher ----------------------------------------------------------------------------
def launch(file: str, layout: Layout, options: list[str], *, hosts: str | None = None,
           max_restarts: int = 0, resume: bool = False, threads: int | None = None) -> int:
    """Run the job in ``file`` on ``layout.size`` ranks; returns the exit code."""
    attempt = 0
    while True:
        code, failure = _launch_once(file, layout, options + (["--resume"] if resume else []),
                                     hosts, threads)
        if code == 0:
            return 0
        if failure is None or attempt >= max_restarts:
            if failure is not None:
                raise RankFailure(failure)
            return code
        attempt += 1
        print(f"warning: {failure}; restarting from the newest checkpoint "
              f"({attempt} of {max_restarts})", file=sys.stderr, flush=True)
        resume = True


def worker_threads(layout, threads: int | None = None) -> int:
    """OpenCL threads per worker rank: ``threads``, else this machine's cores shared out."""
    return threads or max(1, (os.cpu_count() or 1) // max(1, layout.nworkers))


def _launch_once(file, layout, options, hosts, threads) -> tuple[int, str | None]:
    run_dir = pathlib.Path(tempfile.mkdtemp(prefix="singa-run-"))
    monitor = _Monitor(run_dir / "monitor.sock")
    env = dict(os.environ)
    env[RUN_DIR_ENV] = str(run_dir)
    # Each worker's OpenCL driver gets its share of this machine's cores, not all of them
    # (the servers use numpy on one thread).
    env.setdefault("POCL_MAX_PTHREAD_COUNT", str(worker_threads(layout, threads)))
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    env.setdefault("OMP_NUM_THREADS", "1")
    cmd = [mpiexec_path()]
    if hosts:
        cmd += ["-f", hosts]
    cmd += ["-n", str(layout.size), sys.executable, "-m", "mpi4py", "-m", "singa_dsl.cli",
            "run", file, *options]
    report: list[str] = []
    proc = None
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=None, env=env, text=True,
                                bufsize=1)
        in_report = False
        for line in proc.stdout:
            # MPICH's own account of a dead process names a pid, often the wrong one (the
            # first it cleaned up); the monitor knows better, so the report is held back.
            if "BAD TERMINATION" in line or (in_report and line.startswith("=")) or \
                    line.startswith("YOUR APPLICATION TERMINATED") or \
                    "problem with your application" in line or "FAQ page" in line:
                in_report = True
                report.append(line)
                continue
            sys.stdout.write(line)
            sys.stdout.flush()
        code = proc.wait()
    except KeyboardInterrupt:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        raise
    finally:
        dead = monitor.close()
        shutil.rmtree(run_dir, ignore_errors=True)
    if code == 0 or (dead is None and not report):
        return code, None
    how = "; ".join(h.strip() for h in _EXIT.findall("".join(report))) or f"exit {code}"
    if dead is not None:
        return code, f"{dead} died ({how}); the job was stopped"
    pid = _BAD_PID.search("".join(report))
    where = f" (pid {pid.group(1)} on {pid.group(2)})" if pid else ""
    return code, f"a rank{where} died ({how}); the job was stopped"


class _Monitor:
    """Which rank died first.  Every rank on this machine connects to a Unix socket and says
    who it is; a rank that ends normally, reports its own error or a failed link to another
    rank says so before closing.
    A connection that closes without that is a death; the first one is the culprit — MPICH
    kills the other ranks only after noticing it, several hops later."""

    def __init__(self, path: pathlib.Path):
        import socket
        import threading
        self.first_dead: str | None = None
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(str(path))
        self._sock.listen(256)
        self._stopping = False
        self._orderly = False
        self._thread = threading.Thread(target=self._serve, name="singa-monitor", daemon=True)
        self._thread.start()

    def _serve(self):
        import selectors
        sel = selectors.DefaultSelector()
        sel.register(self._sock, selectors.EVENT_READ)
        conns: dict = {}                 # socket → [role, unparsed bytes, said goodbye]
        while not self._stopping:
            for key, _ in sel.select(timeout=0.1):
                if key.fileobj is self._sock:
                    try:
                        conn, _ = self._sock.accept()
                    except OSError:
                        return
                    sel.register(conn, selectors.EVENT_READ)
                    conns[conn] = ["a rank", b"", False]
                    continue
                conn = key.fileobj
                try:
                    data = conn.recv(4096)
                except OSError:
                    data = b""
                state = conns[conn]
                if data:
                    lines = (state[1] + data).split(b"\n")
                    for line in lines[:-1]:
                        if line.startswith(b"role "):
                            state[0] = line[5:].decode("utf-8", "replace")
                        elif line in (b"done", b"error", b"lost"):
                            # (lost: its link to a rank that died failed; not a death)
                            state[2] = True
                            # a rank's own error stops the job: the others' ends follow
                            self._orderly |= line == b"error"
                    state[1] = lines[-1][:4096]
                    continue
                sel.unregister(conn)
                conn.close()
                if not state[2] and not self._orderly and self.first_dead is None:
                    self.first_dead = state[0]

    def close(self) -> str | None:
        self._stopping = True
        self._thread.join(2)
        self._sock.close()
        return self.first_dead


# ---- inside the job ----------------------------------------------------------------------------
def run_rank(program, plan_for, *, model_parallel=None, steps=None, device=None,
             workspace=None, resume=False, quiet=False, profile=False, on_nan="stop") -> int:
    """This rank's part of the job.  ``plan_for(batch, row0)``: the program's plan with the
    train batch set to ``batch`` rows from global row ``row0`` (each worker computes its rows
    of the global batch).  ``model_parallel`` (compiler/lower_worker.ModelParallel): a group
    whose layers are not all split on the batch — each worker runs its partition of each
    layer (``worker_plan(index)``) and the servers aggregate its ``units``."""
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    layout = Layout.from_cluster(dataclasses.asdict(program.cluster))   # (no lowering)
    role = None
    try:
        if comm.Get_size() != layout.size:
            raise SingaConfigError(f"the cluster block needs {layout.size} ranks "
                                   f"({layout.nworkers} workers, {layout.nservers} servers), "
                                   f"but mpiexec started {comm.Get_size()}",
                                   hint=f"use mpiexec -n {layout.size}, or let singac "
                                   "start the job")
        if on_nan != "stop":
            raise SingaConfigError(f"--on-nan {on_nan} is for one-process jobs; a distributed "
                                   "job stops at the first NaN/Inf, naming the rank, layer "
                                   "and tensor", hint="use --on-nan stop (the default)")
        role = layout.role(comm.Get_rank())
        _register(role)
        _run_role(comm, layout, role, program, plan_for, model_parallel, steps=steps,
                  device=device, workspace=workspace, resume=resume, quiet=quiet,
                  profile=profile)
        _unregister("done")
        return 0
    except MPI.Exception as e:
        # MPI reports a failed link: another rank died (the monitor names it — this rank
        # says it is not the culprit, so the report stays right whichever end closes first)
        _unregister("lost")
        who = role.describe() if role else f"rank {comm.Get_rank()}"
        last = (str(e).strip().splitlines() or [type(e).__name__])[-1].strip()  # the cause
        print(f"{who}: lost contact with another rank (MPI: {last[:160]})", file=sys.stderr,
              flush=True)
        _abort(comm, RankFailure.exit_code)
    except SingaError as e:
        _unregister("error")
        who = role.describe() if role else f"rank {comm.Get_rank()}"
        if role is not None or comm.Get_rank() == 0:      # a job-wide mistake: said once
            print(f"{who}: {e.render()}", file=sys.stderr, flush=True)
        _abort(comm, e.exit_code)
    except KeyboardInterrupt:
        _unregister("error")
        _abort(comm, 130)
    return 1


def _abort(comm, code: int) -> None:
    # MPICH forwards a rank's output asynchronously and drops what is in flight when the
    # job is aborted: give the message a moment to reach the user first.
    time.sleep(0.5)
    comm.Abort(code)


_MONITOR = None      # this rank's connection to the launcher's monitor (kept open)


def _register(role) -> None:
    """Tell the launcher on this machine who this rank is (a file with the pid, for tools
    and tests, and a monitor connection whose closing without 'done' means death)."""
    global _MONITOR
    run_dir = os.environ.get(RUN_DIR_ENV)
    if not run_dir:
        return
    path = pathlib.Path(run_dir)
    try:
        (path / f"rank-{role.rank}.json").write_text(
            json.dumps({"pid": os.getpid(), "role": role.describe()}))
        import socket
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(str(path / "monitor.sock"))
        sock.sendall(f"role {role.describe()}\n".encode())
        _MONITOR = sock
    except OSError:
        pass        # another host's rank: MPICH's report is all there is


def _unregister(how: str) -> None:
    if _MONITOR is not None:
        try:
            _MONITOR.sendall(f"{how}\n".encode())
        except OSError:
            pass


def _run_role(comm, layout, role, program, plan_for, model_parallel, *, steps, device,
              workspace, resume, quiet, profile):
    from . import checkpoint
    from .transport import Transport
    base = plan_for(None)
    global_batch = base.phase("train").batch
    mp = model_parallel        # None: every worker computes its rows of every layer
    params = ParamLayout.build(base.params, layout,
                               updated={u.param for u in base.updates},
                               parts=mp.units if mp is not None else None)
    transport = Transport(comm)
    ws = pathlib.Path(workspace or base.job["workspace"])
    if role.kind == "worker":
        if mp is not None:      # its partition of each layer, bridges to the others
            from .model_parallel import ModelParallelWorker
            wp = mp.worker_plan(role.index)
            ModelParallelWorker(wp.plan, layout, role, params, transport, global_batch,
                                exchanges=wp.exchanges, device=device, workspace=str(ws),
                                steps=steps, quiet=quiet or role.rank != layout.driver,
                                resume=resume, profile=profile).run()
            return
        if layout.ring:
            from .allreduce import RingWorker as worker_class
            extra = {"comm": comm}
        else:
            from .worker import DistributedWorker as worker_class
            extra = {}
        lo, hi = layout.rows(role.index, global_batch)
        worker_class(plan_for(hi - lo, lo), layout, role, params, transport, global_batch,
                     device=device, workspace=str(ws), steps=steps,
                     quiet=quiet or role.rank != layout.driver, resume=resume, profile=profile,
                     **extra).run()
        return
    from .server import ParamServer, initial_range
    loaded, state = {}, {}
    folder = checkpoint.latest(ws, warn=_warn) if resume else None
    if folder is not None:
        loaded, state, _ = checkpoint.load(folder)
    else:
        loaded = checkpoint.load_init_from(base.job.get("init_from", []), warn=_warn)
    values, upd_state = initial_range(base, params, role, loaded, state)
    ParamServer(base, layout, params, role, transport, values, upd_state).run()


def _warn(text: str) -> None:
    print(f"warning: {text}", file=sys.stderr)
