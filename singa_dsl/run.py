"""Compile and run: the bridge from a CheckedProgram to the runtime (which sees only a Plan)."""
from __future__ import annotations


def compile_plan(program):
    from .compiler.lower import lower_program
    return lower_program(program)


def run_program(program, *, steps=None, device=None, workspace=None, resume=False, quiet=False,
                reference=False, profile=False):
    from .runtime.trainer import Trainer
    c = program.cluster
    if (c.worker_groups, c.workers_per_group, c.server_groups, c.servers_per_group) != (1, 1, 1, 1):
        import sys
        print(f"warning: the cluster block asks for {c.worker_groups}x{c.workers_per_group} "
              f"workers and {c.server_groups}x{c.servers_per_group} servers; this build trains "
              "as one worker with one server (the multi-process runtime is not here yet)",
              file=sys.stderr)
    plan = compile_plan(program)
    trainer = Trainer(plan, device=device, workspace=workspace, steps=steps, quiet=quiet,
                      resume=resume, profile=profile)
    return trainer.run()
