"""``partition: auto``: one dimension per statement (a nested call shares its statement's
annotation) minimising the cost model's predicted step time.  Every combination is tried when
there are at most ``EXHAUSTIVE`` of them, else coordinate descent from all-batch; ties go to
the earlier candidate (batch, then feature, then none); a choice whose memory per worker
exceeds the device's loses to any that fits."""
from __future__ import annotations

import dataclasses
import itertools
import math

import networkx as nx

from .cost import Device, CostModel
from .partition_dims import feasible_dims, layers
from .partition_regions import BATCH, FEATURE, NONE

EXHAUSTIVE = 4096


def statements(g: nx.DiGraph) -> dict[str, list]:
    """Layers grouped by the statement they come from (``h`` and its nested ``h.dense``)."""
    groups: dict[str, list] = {}
    for l in layers(g):
        groups.setdefault(l.name.split(".")[0], []).append(l)
    return groups


def auto_candidates(g: nx.DiGraph) -> dict[str, tuple[str, ...]]:
    """Statement → the dimensions auto may give all its layers (batch first)."""
    w, b = g.graph["workers"], g.graph["batch"]
    out = {}
    for stmt, ls in statements(g).items():
        if all(l.partition == "auto" for l in ls):
            ok = [set(feasible_dims(l, w, b)) for l in ls]
            common = [d for d in (BATCH, FEATURE, NONE) if all(d in s for s in ok)]
            out[stmt] = tuple(common) or (NONE,)
    return out


def with_dims(g: nx.DiGraph, choice: dict[str, str]) -> nx.DiGraph:
    """A copy of the graph whose statements in ``choice`` get that dimension."""
    out = g.copy()
    for stmt, ls in statements(g).items():
        if stmt in choice:
            for l in ls:
                out.nodes[l.name]["layer"] = dataclasses.replace(l, partition=choice[stmt])
    return out


def _cost(model: "CostModel", choice, groups) -> float:
    p = model.predict({l.name: d for s, d in choice.items() for l in groups[s]})
    over = max(p.memory) > model.device.memory_bytes
    return p.step_s + (1e9 if over else 0.0)


def choose_dims(g: nx.DiGraph, device: Device | None = None) -> dict[str, str]:
    """Layer → dimension for every ``auto`` layer, minimising the predicted step time."""
    model = CostModel(g, device or Device())
    groups = statements(g)
    cands = auto_candidates(g)
    stmts = list(cands)
    if math.prod(len(c) for c in cands.values()) <= EXHAUSTIVE:
        best, best_cost = None, math.inf
        for combo in itertools.product(*(cands[s] for s in stmts)):
            c = _cost(model, dict(zip(stmts, combo)), groups)
            if c < best_cost * (1 - 1e-12):
                best, best_cost = dict(zip(stmts, combo)), c
    else:
        best = {s: cands[s][0] for s in stmts}
        for _ in range(20):
            changed = False
            for s in stmts:
                costs = [(_cost(model, {**best, s: d}, groups), k, d)
                         for k, d in enumerate(cands[s])]
                pick = min(costs)[2]
                changed |= pick != best[s]
                best[s] = pick
            if not changed:
                break
    return {l.name: best[s] for s in stmts for l in groups[s]}
