"""Property tests with hypothesis: over generated nets (chains and DAGs of dense, conv,
pooling, activations, concat, dropout off, softmax_loss), random partition dimensions per
layer and 1-4 workers per group,

* the partitioned step (all workers simulated in one process, float64 references) gives the
  loss, the param gradients and every layer's output of the unpartitioned step, to 1e-9;
* every layer is computed exactly once per sample: its copies' parts tile its output;
* every bridge has its pair, and no other edge joins two workers;
* the bytes the bridges move equal what the cost model predicts.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings, strategies as st

from singa_dsl.compiler.cost import predict
from singa_dsl.compiler.partition import partition_program
from singa_dsl.compiler.partition_dims import assign_partition_dims, logical_graph
from singa_dsl.compiler.partition_regions import computes_whole
from singa_dsl.compiler.partition_types import payloads
from singa_dsl.runtime.simulate import reference_step, simulate

from partition_netgen import dims_for, nets, parse, step_inputs

RTOL = 1e-9
QUICK = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
SLOW = settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck))


def close(got, want, what):
    scale = float(np.max(np.abs(want))) if np.size(want) else 0.0
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=RTOL * scale + 1e-300, err_msg=what)


def check_equivalent(program, g):
    data, values = step_inputs(program)
    ref = reference_step(program.graph, data, values)
    got = simulate(g, data, values)
    close(got.loss, ref.loss, "loss")
    for key in values:
        close(got.grads[key], ref.grads[key], f"gradient of {key}")
    for layer, out in ref.outputs.items():
        close(got.outputs[layer], out, f"output of {layer}")
    for layer, count in got.coverage.items():
        assert (count == 1).all(), f"{layer} computed {count.min()}..{count.max()} times"


def check_once_per_sample(program, g):
    """From the graph alone: each layer's copies hold disjoint parts covering its output."""
    b = program.batch
    for l in program.net.layers:
        parts = [n.region for n in payloads(g) if n.kind == "layer" and n.of == l.name]
        f = l.out.shape[0] if l.out.shape else 1
        cells = np.zeros((b, f), dtype=int)
        for r in parts:
            cells[r.rows[0]:r.rows[1], r.feats[0]:r.feats[1]] += 1
        assert (cells == 1).all(), l.name


def check_bridges(g):
    nodes = {n.name: n for n in payloads(g)}
    for n in nodes.values():
        if n.kind == "bridge_src":
            pair = nodes[n.pair]
            assert pair.kind == "bridge_dst" and pair.pair == n.name
            assert list(g.successors(n.name)) == [pair.name]
            assert list(g.predecessors(pair.name)) == [n.name]
            assert pair.region == n.region and pair.worker != n.worker
        elif n.kind == "bridge_dst":
            assert nodes[n.pair].kind == "bridge_src"
    for u, v in g.edges:
        a, b = nodes[u], nodes[v]
        if a.worker is not None and a.worker != b.worker:
            assert a.kind == "bridge_src" and b.name == a.pair, f"{u} -> {v} crosses workers"


def bridge_bytes(g) -> int:
    """What the bridges carry per step: values forward, gradients back (real tensors)."""
    return sum(n.nbytes * (2 if n.dtype == "float32" else 1)
               for n in payloads(g) if n.kind == "bridge_src")


def check_bytes(program, g, workers, dims):
    logical = assign_partition_dims(logical_graph(program, workers), dims)
    assert bridge_bytes(g) == predict(logical).moved_bytes


def run_case(data, max_layers):
    workers = data.draw(st.integers(1, 4), label="workers")
    text, _ = data.draw(nets(workers, max_layers), label="program")
    program = parse(text)
    dims = dims_for(data.draw, program, workers)
    g = partition_program(program, workers=workers, dims=dims)
    event(f"{workers} workers")
    if any(n.inserted for n in payloads(g)):
        event("connection layers inserted")
    if any(n.kind == "layer" and computes_whole(n.layer.op, n.layer.attrs, n.dim)
           for n in payloads(g)):
        event("feature copy of concat(dim 1)")
    check_equivalent(program, g)
    check_once_per_sample(program, g)
    check_bridges(g)
    check_bytes(program, g, workers, dims)


@QUICK
@given(st.data())
def test_partitioned_step_equals_unpartitioned(data):
    run_case(data, max_layers=6)


@pytest.mark.slow
@SLOW
@given(st.data())
def test_partitioned_step_equals_unpartitioned_bigger(data):
    run_case(data, max_layers=12)


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data())
def test_auto_choice_is_equivalent_and_no_worse_than_all_batch(data):
    from singa_dsl.compiler.partition_auto import auto_candidates, with_dims
    from singa_dsl.compiler.partition_explain import resolve
    workers = data.draw(st.integers(2, 4), label="workers")
    text, _ = data.draw(nets(workers, 5), label="program")
    program = parse(text.replace("partition: batch", "partition: auto"))
    chosen, auto = resolve(program, workers)
    assert auto == {l.name for l in program.net.layers}
    first = {s: c[0] for s, c in auto_candidates(logical_graph(program, workers)).items()}
    assert predict(chosen).step_s <= predict(with_dims(chosen, first)).step_s * (1 + 1e-12)
    g = partition_program(program, workers=workers)
    check_equivalent(program, g)
    check_bridges(g)
