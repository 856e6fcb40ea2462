"""The partitioning passes one by one: SINGA's rule table, deterministic names, shapes per
partition, param splitting, and located errors."""
from __future__ import annotations

import pathlib

import networkx as nx
import pytest

import singa_dsl
from singa_dsl import SingaError
from singa_dsl.compiler.model import LayerSpec
from singa_dsl.compiler.ops import TensorInfo
from singa_dsl.compiler.partition import (edge_kinds, insert_bridges, insert_partition_layers,
                                          partition_program, replicate_layers)
from singa_dsl.compiler.partition_dims import assign_partition_dims, logical_graph
from singa_dsl.compiler.partition_types import payloads

from partition_netgen import parse, program_text

SAMPLES = pathlib.Path(__file__).resolve().parents[2] / "samples"


def spec(name, op, dim, shape, attrs=None):
    return LayerSpec(name, op, ("src",), attrs or {}, dim, (TensorInfo(shape),), TensorInfo(shape))


DENSE = {"units": 8, "transpose": False, "bias": True}


# SINGA v0.3 AddPartitionConnectionLayers, row by row (src_pdim, dst_pdim, connection).
@pytest.mark.parametrize("src_dim, dst_dim, dst_op, attrs, expected", [
    ("batch", "batch", "relu", {}, None),                         # 0 | 0 | OneToOne: direct
    ("batch", "batch", "dense", DENSE, None),                     # 0 | 0 | OneToAll: direct
    ("feature", "feature", "relu", {}, None),                     # 1 | 1 | OneToOne: direct
    ("feature", "batch", "relu", {}, ("slice", "concate")),       # 1 | 0 | OneToOne
    ("batch", "feature", "relu", {}, ("slice", "concate")),       # 0 | 1 | OneToOne
    ("feature", "batch", "dense", DENSE, ("slice", "concate")),   # 1 | 0 | OneToAll
    ("batch", "feature", "dense", DENSE, ("split", "concate")),   # 0 | 1 | OneToAll
    ("feature", "feature", "dense", DENSE, ("split", "concate")),  # 1 | 1 | OneToAll
    ("batch", "none", "relu", {}, (None, "concate")),             # gather on worker 0
    ("none", "batch", "relu", {}, ("slice", None)),               # scatter from worker 0
    ("none", "feature", "dense", DENSE, ("split", None)),         # broadcast from worker 0
])
def test_singa_rule_table(src_dim, dst_dim, dst_op, attrs, expected):
    src = spec("src", "relu", src_dim, (8,))
    dst = spec("dst", dst_op, dst_dim, (8,), attrs)
    assert edge_kinds(src, dst, 2, 4) == expected


def test_one_worker_needs_no_connection_layers():
    src = spec("src", "relu", "feature", (8,))
    assert edge_kinds(src, spec("dst", "dense", "batch", (8,), DENSE), 1, 4) is None


def cifar():
    return singa_dsl.load(SAMPLES / "cifar_convnet.singa")


def line_of(text: str) -> int:
    lines = (SAMPLES / "cifar_convnet.singa").read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if line.strip().startswith(text))


def test_cifar_hybrid_names_and_shapes():
    """SINGA's hybrid.conf: convolutions on the batch, the classifier on features."""
    g = partition_program(cifar(), workers=2)
    nodes = {n.name: n for n in payloads(g)}
    inserted = sorted(n for n, p in nodes.items() if p.inserted)
    assert inserted == sorted([
        "split(pool3)@0", "split(pool3)@1", "concate(split(pool3))@0", "concate(split(pool3))@1",
        "slice(ip1)@0", "slice(ip1)@1", "concate(slice(ip1))@0", "concate(slice(ip1))@1",
        "bridge_src(split(pool3)@0->concate(split(pool3))@1)",
        "bridge_dst(split(pool3)@0->concate(split(pool3))@1)",
        "bridge_src(split(pool3)@1->concate(split(pool3))@0)",
        "bridge_dst(split(pool3)@1->concate(split(pool3))@0)",
        "bridge_src(slice(ip1)@0->concate(slice(ip1))@1)",
        "bridge_dst(slice(ip1)@0->concate(slice(ip1))@1)",
        "bridge_src(slice(ip1)@1->concate(slice(ip1))@0)",
        "bridge_dst(slice(ip1)@1->concate(slice(ip1))@0)"])
    assert nodes["conv1@1"].shape == (50, 32, 32, 32)          # half the batch each
    assert nodes["concate(split(pool3))@0"].shape == (100, 64, 4, 4)   # all of it
    assert nodes["ip1@1"].shape == (100, 5)                    # half the features
    w = {p.name: p for p in nodes["ip1@1"].params}
    assert w["ip1.w@1"].shape == (5, 1024) and (w["ip1.w@1"].start, w["ip1.w@1"].stop) == (5, 10)
    assert [p.name for p in nodes["conv1@1"].params] == ["conv1.w", "conv1.b"]
    assert nodes["bridge_src(slice(ip1)@1->concate(slice(ip1))@0)"].shape == (50, 5)
    assert nodes["loss@0"].inputs[0].node == "concate(slice(ip1))@0"


def test_passes_one_by_one_are_deterministic():
    p = cifar()
    g1 = assign_partition_dims(logical_graph(p, 2))
    g2 = insert_partition_layers(g1)
    assert set(g2) - set(g1) == {"split(pool3)", "concate(split(pool3))", "slice(ip1)",
                                 "concate(slice(ip1))"}
    g3 = replicate_layers(g2)
    assert not any(n.kind.startswith("bridge") for n in payloads(g3))
    g4 = insert_bridges(g3)
    again = insert_bridges(replicate_layers(insert_partition_layers(g1)))
    assert [n for n in nx.lexicographical_topological_sort(g4)] == \
        [n for n in nx.lexicographical_topological_sort(again)]
    assert [g4.nodes[n]["node"] for n in g4] == [again.nodes[n]["node"] for n in again]


def test_consumers_partitioned_differently_get_their_own_connection_layers():
    body = ["x = input(d.image)", "h = dense(x, 8)", "a = dense(h, 4) @feature",
            "b = relu(h) @feature", "c = concat(a, b, dim: 1)",
            "loss = softmax_loss(c, d.label)"]
    g = partition_program(parse(program_text(body, (2, 2, 2), 3)), workers=2)
    names = {n.name for n in payloads(g) if n.kind in ("slice", "split", "concate")}
    assert {"split(h->a)@0", "concate(split(h->a))@1", "slice(h->b)@0",
            "concate(slice(h->b))@1"} <= names


def test_same_source_twice():
    body = ["x = input(d.image)", "h = relu(x)", "c = concat(h, h, dim: 1) @feature",
            "loss = softmax_loss(dense(c, 3), d.label)"]
    g = partition_program(parse(program_text(body, (2, 2, 2), 3)), workers=2)
    names = {n.name for n in payloads(g)}
    assert "concate(split(h->c#0))@1" in names and "concate(split(h->c#1))@1" in names


def test_unsplittable_dimension_is_a_located_error():
    with pytest.raises(SingaError) as e:
        partition_program(cifar(), workers=2, dims={"norm1": "feature"})
    assert e.value.span.line == line_of("norm1 =")
    assert "norm1 = lrn(" in e.value.render()          # the caret line is shown
    assert "lrn layer 'norm1' cannot be partitioned on the feature dimension" in e.value.message
    assert "@batch" in e.value.hint


def test_features_not_divisible_by_workers_is_a_located_error():
    with pytest.raises(SingaError) as e:
        partition_program(cifar(), workers=4)            # ip1 @feature has 10 features
    assert e.value.span.line == line_of("ip1 ")
    assert "10 features, not divisible by 4 workers" in e.value.message


def test_annotation_the_op_cannot_honour_is_a_checker_error():
    body = ["x = input(d.image)", "n = lrn(x) @feature",
            "loss = softmax_loss(dense(n, 3), d.label)"]
    with pytest.raises(SingaError) as e:
        parse(program_text(body, (2, 2, 2), 3))
    assert "lrn cannot be partitioned on the feature dimension" in str(e.value)


def test_none_runs_on_worker_zero():
    body = ["x = input(d.image)", "h = dense(x, 4) @none", "loss = softmax_loss(h, d.label)"]
    g = partition_program(parse(program_text(body, (2, 2, 2), 4)), workers=3)
    nodes = {n.name: n for n in payloads(g)}
    assert "h@1" not in nodes and nodes["h@0"].shape == (12, 4)
    assert nodes["concate(x)@0"].inputs[1].node == "bridge_dst(x@1->concate(x)@0)"
    assert nodes["slice(h)@0"].worker == 0
    assert nodes["loss@2"].inputs[0].node == "bridge_dst(slice(h)@0->loss@2)"


def test_batch_not_divisible_points_at_the_batch():
    with pytest.raises(SingaError) as e:
        partition_program(cifar(), workers=3)
    assert e.value.message.startswith("batch 100 is not divisible by 3 workers per group")
    assert e.value.span.line == line_of("train:")
