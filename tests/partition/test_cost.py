"""The cost model and ``partition: auto``: what it picks for cifar_convnet and mnist_mlp,
``explain``'s report, ``annotate``'s round trip, and bytes = what the bridges carry."""
from __future__ import annotations

import pathlib
import re

import pytest

import singa_dsl
from singa_dsl.compiler.cost import Device, predict
from singa_dsl.compiler.partition import partition_program
from singa_dsl.compiler.partition_explain import annotate, choices, explain, resolve

from test_partition_properties import bridge_bytes

SAMPLES = pathlib.Path(__file__).resolve().parents[2] / "samples"
CONVS = ("conv1", "conv2", "conv3")


def auto(sample: str):
    """The sample with ``partition: auto`` and its annotations removed."""
    path = SAMPLES / sample
    text = re.sub(r"partition: \w+", "partition: auto", path.read_text())
    text = re.sub(r" @(batch|feature|none)", "", text)
    return singa_dsl.parse(text, str(path))


@pytest.mark.parametrize("workers", [2, 4])
def test_cifar_auto_keeps_the_convolutions_on_the_batch(workers):
    dims = choices(auto("cifar_convnet.singa"), workers)
    assert all(dims[c] == "batch" for c in CONVS)
    # The classifier has 10 outputs and 10 250 params: gathering pool3's 100x1024 batch on
    # every worker costs more than syncing its params, so it stays on the batch too (and
    # 10 features cannot be split over 4 workers at all).
    assert dims["ip1"] == "batch"


def test_cifar_feature_classifier_is_predicted_slower():
    p = auto("cifar_convnet.singa")
    g, _ = resolve(p, 2)
    chosen = predict(g).step_s
    hybrid = partition_program(p, workers=2, dims={"ip1": "feature"})
    assert bridge_bytes(hybrid) > 0
    from singa_dsl.compiler.partition_auto import with_dims
    assert predict(with_dims(g, {"ip1": "feature"})).step_s > chosen


def test_mlp_auto_splits_the_big_dense_layers_on_features():
    """Krizhevsky's trick where it pays: 2500x2000 weights against a batch of 64."""
    dims = choices(auto("mnist_mlp.singa"), 2)
    assert all(dims[f"fc{i}"] == "feature" for i in (2, 3, 4))
    assert dims["fc6"] == "batch" and dims["loss"] == "batch"


def test_auto_with_one_worker_is_all_batch():
    dims = choices(auto("cifar_convnet.singa"), 1)
    assert set(dims.values()) == {"batch"}


def test_a_fast_device_changes_nothing_for_cifar_but_memory_can():
    p = auto("cifar_convnet.singa")
    assert choices(p, 2, Device(flops_per_s=1e13))["conv2"] == "batch"
    tiny = Device(memory_bytes=1)            # nothing fits: still a valid choice
    assert set(choices(p, 2, tiny)) == set(choices(p, 2))


def test_explain_reports_choice_time_and_traffic():
    text = explain(auto("cifar_convnet.singa"), 2)
    assert "2 workers per group, batch 100" in text
    assert re.search(r"^conv2\s+conv\s+batch \(auto\)", text, re.M)
    assert "predicted step:" in text and "traffic per step:" in text
    assert re.search(r"^\s+ip1\s+batch [\d.]+ ms <, feature [\d.]+ ms$", text, re.M)


def test_explain_without_auto_has_no_why():
    text = explain(singa_dsl.load(SAMPLES / "cifar_convnet.singa"))
    assert re.search(r"^ip1\s+dense\s+feature\s", text, re.M) and "why" not in text


def test_annotate_round_trips():
    p = auto("cifar_convnet.singa")
    text = annotate(p, 2)
    assert "ip1 = dense(pool3, 10" in text and text.count(" @batch") == len(p.net.layers)
    again = singa_dsl.parse(text, "annotated.singa")
    assert choices(again, 2) == choices(p, 2)
    assert annotate(again, 2) == again.to_source()      # nothing left to decide


def test_annotate_mlp_writes_feature():
    text = annotate(auto("mnist_mlp.singa"), 2)
    assert re.search(r"^  fc2 = dense\(h1, 2000.*\) @feature$", text, re.M)


def test_cost_bytes_equal_bridge_bytes_on_samples():
    for sample, workers in (("cifar_convnet.singa", 2), ("mnist_mlp.singa", 4)):
        p = auto(sample)
        g, _ = resolve(p, workers)
        dims = {n: g.nodes[n]["layer"].partition for n in g if "layer" in g.nodes[n]}
        assert bridge_bytes(partition_program(p, workers, dims)) == predict(g).moved_bytes
