"""Pictures and plain-data views of a partitioned graph."""
from __future__ import annotations

import json
import pathlib

import pytest

import singa_dsl
from singa_dsl.compiler.partition import partition_program
from singa_dsl.compiler.partition_draw import draw_plan, to_dot
from singa_dsl.compiler.partition_explain import describe
from singa_dsl.compiler.partition_types import to_data

SAMPLES = pathlib.Path(__file__).resolve().parents[2] / "samples"


@pytest.fixture(scope="module")
def cifar2():
    return partition_program(singa_dsl.load(SAMPLES / "cifar_convnet.singa"), workers=2)


def test_dot_clusters_workers_and_marks_inserted_layers(cifar2):
    dot = to_dot(cifar2)
    assert dot.startswith('digraph "convnet" {') and dot.rstrip().endswith("}")
    assert 'subgraph "cluster_worker0"' in dot and 'subgraph "cluster_worker1"' in dot
    assert '"slice(ip1)@0" [shape=trapezium, style="filled,dashed"' in dot
    assert ('"bridge_src(slice(ip1)@0->concate(slice(ip1))@1)" -> '
            '"bridge_dst(slice(ip1)@0->concate(slice(ip1))@1)" [style=dashed') in dot
    assert "ip1.w@1 -> s0" in dot                  # params by server


@pytest.mark.parametrize("fmt, magic", [("svg", b"<?xml"), ("png", b"\x89PNG")])
def test_draw_plan_writes_pictures(cifar2, tmp_path, fmt, magic):
    path = tmp_path / f"plan.{fmt}"
    draw_plan(cifar2, str(path), fmt)
    assert path.read_bytes().startswith(magic)


def test_plain_data_and_text(cifar2):
    data = json.loads(json.dumps(to_data(cifar2)))
    names = [n["name"] for n in data["nodes"]]
    assert "ip1@1" in names and data["placement"]["nprocs"] == 2
    text = describe(cifar2)
    assert "worker 1:" in text and "ip1.w@1[5, 1024]" in text and "processes: 2" in text
