"""CheckedProgram: what a program means, as the compiler's front end hands it on."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from . import ast
from .model import AlgorithmSpec, ClusterSpec, DataSpec, JobSpec, NetSpec



@dataclass(frozen=True)
class CheckedProgram:
    file: str
    source: str
    base_dir: str
    ast: ast.Program
    consts: dict
    job: JobSpec
    data: dict[str, DataSpec]
    net: NetSpec
    graph: nx.DiGraph = field(compare=False, repr=False)
    algorithm: AlgorithmSpec | None = None
    updater: Any = None            # runtime.updaters.UpdaterSpec
    cluster: ClusterSpec = ClusterSpec()
    warnings: tuple = ()

    # ---- facts about the net -------------------------------------------------------------
    @property
    def batch(self) -> int:
        """The training batch: the train source of the data block the net reads."""
        for l in self.net.layers:
            for s in l.sources:
                if "." in s and s.split(".")[0] in self.data:
                    train = self.data[s.split(".")[0]].phases.get("train")
                    if train is not None:
                        return train.args["batch"]
        return 1

    @property
    def param_count(self) -> int:
        """Values the servers hold: shared params count once, at their owner."""
        return sum(p.size for p in self.net.params if p.share_of is None)

    def memory_bytes(self) -> dict[str, int]:
        """The device memory one worker needs, by part (``compiler.memory``'s estimate, the
        one ``singac check`` prints and ``singac run`` checks against the device)."""
        from .memory import estimate
        return estimate(self).parts()

    def summary(self) -> str:
        from .summary import render_summary
        return render_summary(self)

    def run(self, **options) -> list[dict]:
        """Compile and train; returns the metrics records (see ``singac run`` for options:
        steps, device, workspace, resume, quiet)."""
        from singa_dsl.run import run_program
        return run_program(self, **options)

    def plan(self):
        """The compiled Plan (plain data; ``.dumps()`` gives its JSON)."""
        from singa_dsl.run import compile_plan
        return compile_plan(self)

    def to_source(self) -> str:
        from .format import format_program
        return format_program(self.ast)
