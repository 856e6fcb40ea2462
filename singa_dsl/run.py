"""Compile and run: the bridge from a CheckedProgram to the runtime (which sees only a Plan)."""
from __future__ import annotations


def compile_plan(program):
    from .compiler.lower import lower_program
    return lower_program(program)


def run_program(program, *, steps=None, device=None, workspace=None, resume=False, quiet=False,
                reference=False, profile=False):
    from .runtime.trainer import Trainer
    plan = compile_plan(program)
    trainer = Trainer(plan, device=device, workspace=workspace, steps=steps, quiet=quiet,
                      resume=resume, profile=profile)
    return trainer.run()
