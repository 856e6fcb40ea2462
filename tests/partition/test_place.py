"""Param slicing over servers (SINGA's Slice / PartitionSlices) and process placement
(cluster.cc's formulas, with the four frameworks of SINGA's frameworks.md)."""
from __future__ import annotations

import pathlib

import networkx as nx
import pytest
from hypothesis import given, strategies as st

import singa_dsl
from singa_dsl import SingaError
from singa_dsl.compiler.model import ClusterSpec
from singa_dsl.compiler.partition import partition_program
from singa_dsl.compiler.place import partition_slices, place, slice_sizes

SAMPLES = pathlib.Path(__file__).resolve().parents[2] / "samples"


def test_slice_cuts_big_params_and_keeps_small_ones_whole():
    # total 110 over 2 boxes: avg 55, tolerance 5
    assert slice_sizes(2, [10, 100]) == [[10], [45, 55]]
    assert partition_slices(2, [10, 45, 55]) == [0, 0, 1]
    # 58 overflows the box by 3 <= tolerance: not cut (SINGA's avg/10 rule)
    assert slice_sizes(2, [52, 58]) == [[52], [58]]
    assert slice_sizes(1, [7, 9]) == [[7], [9]]
    assert partition_slices(1, [7, 9]) == [0, 0]


@given(st.integers(1, 6), st.lists(st.integers(1, 5000), min_size=1, max_size=12))
def test_slices_cover_every_param_and_fit_the_boxes(num, sizes):
    cut = slice_sizes(num, sizes)
    assert [sum(c) for c in cut] == sizes
    boxes = partition_slices(num, [s for c in cut for s in c])
    assert boxes == sorted(boxes) and all(0 <= b < num for b in boxes)


def test_cifar_params_over_servers_and_groups():
    text = (SAMPLES / "cifar_convnet.singa").read_text().replace(
        "workers_per_group: 2", "workers_per_group: 2\n  servers_per_group: 2\n  "
                                "server_groups: 3\n  worker_groups: 3")
    p = singa_dsl.parse(text, str(SAMPLES / "cifar_convnet.singa"))
    g = partition_program(p)
    slices = g.graph["param_slices"]
    by_part = {}
    for s in slices:
        by_part.setdefault(s.part, []).append(s)
    # owners: every conv param once, the feature-split classifier once per part
    assert list(by_part) == ["conv1.w", "conv1.b", "conv2.w", "conv2.b", "conv3.w", "conv3.b",
                             "ip1.w@0", "ip1.b@0", "ip1.w@1", "ip1.b@1"]
    total = sum(s.size for s in slices)
    assert total == p.param_count
    assert len(by_part["conv3.w"]) > 1                 # the biggest spans several slices
    assert {s.server for s in slices} == {0, 1} and {s.master_group for s in slices} == {0, 1, 2}
    for part, ss in by_part.items():
        assert [s.offset for s in ss] == [sum(x.size for x in ss[:k]) for k in range(len(ss))]


def placed(**kw):
    return place(nx.DiGraph(cluster=ClusterSpec(**kw))).graph["placement"]


@pytest.mark.parametrize("kw, nprocs, workers, servers", [
    # Sandblaster: 1 group of 3 sync workers, 2 dedicated server processes
    (dict(workers_per_group=3, servers_per_group=2, separate_servers=True), 5,
     [0, 1, 2], [3, 4]),
    # AllReduce: each process one worker and one server
    (dict(workers_per_group=3, servers_per_group=3), 3, [0, 1, 2], [0, 1, 2]),
    # Downpour: 2 async groups of 2 workers, one server group of 2, separate
    (dict(worker_groups=2, workers_per_group=2, servers_per_group=2, separate_servers=True),
     6, [0, 1, 2, 3], [4, 5]),
    # Distributed Hogwild: 3 groups, each with its own server group, together
    (dict(worker_groups=3, server_groups=3), 3, [0, 1, 2], [0, 1, 2]),
])
def test_singa_frameworks_placement(kw, nprocs, workers, servers):
    p = placed(**kw)
    assert p.nprocs == nprocs
    assert [proc for _, _, proc in p.workers] == workers
    assert [proc for _, _, proc in p.servers] == servers


def test_several_workers_per_process():
    g = place(nx.DiGraph(cluster=ClusterSpec(worker_groups=2, workers_per_group=2)), 2)
    assert [proc for _, _, proc in g.graph["placement"].workers] == [0, 0, 1, 1]
    with pytest.raises(SingaError, match="cannot be spread evenly"):
        place(nx.DiGraph(cluster=ClusterSpec(workers_per_group=3)), 2)
