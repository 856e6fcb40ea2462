"""The Python builder produces the AST the parser builds for the same program."""
import pathlib

from singa_dsl.builder import Program, fn, word
from singa_dsl.compiler.parser import parse_program

ROOT = pathlib.Path(__file__).resolve().parents[2]


def build_mnist_mlp() -> Program:
    p = Program()
    p.job("mnist_mlp", steps=1000, test=fn.every(60, batches=10), display=fn.every(10),
          workspace="runs/mnist_mlp")
    norm = {"mean": 8, "std": 8}
    mnist = p.data("mnist",
                   train=fn.digits(split="train", batch=64, shuffle=True, normalize=norm),
                   test=fn.digits(split="test", batch=100, normalize=norm))
    net = p.net("mlp", partition=word("batch"))
    net.x = net.input(mnist.image)
    prev = net.x
    for i, units in enumerate([2500, 2000, 1500, 1000, 500], 1):
        setattr(net, f"fc{i}", net.dense(prev, units, w=fn.uniform(-0.05, 0.05),
                                         b=fn.uniform(-0.05, 0.05)))
        setattr(net, f"h{i}", net.stanh(getattr(net, f"fc{i}")))
        prev = getattr(net, f"h{i}")
    net.fc6 = net.dense(prev, 10, w=fn.uniform(-0.05, 0.05), b=fn.uniform(-0.05, 0.05))
    net.loss = net.softmax_loss(net.fc6, mnist.label, topk=1)
    p.algorithm("bp")
    p.updater("sgd", lr=fn.step(0.01, every=60, gamma=0.997))
    p.cluster(worker_groups=1, workers_per_group=1)
    return p


def test_builder_equals_parsed_sample():
    text = (ROOT / "samples" / "mnist_mlp.singa").read_text()
    assert build_mnist_mlp().to_ast() == parse_program(text)


def test_builder_program_checks_like_the_text():
    built = build_mnist_mlp().check()
    assert built.param_count == 10_172_510
    assert [l.name for l in built.net.layers][:3] == ["x", "fc1", "h1"]


def test_nested_calls_annotations_and_shares():
    p = Program()
    p.job("ae", steps=10)
    d = p.data("d", train=fn.digits(split="train", batch=10))
    net = p.net("ae")
    net.v = net.input(d.image)
    net.e1 = net.dense(net.v, 32) @ "batch"
    net.d1 = net.sigmoid(net.dense(net.e1, 64, w=fn.share(net.e1.w, transpose=True)))
    net.loss = net.euclidean_loss(net.d1, net.v)
    p.algorithm("bp")
    p.updater("adagrad", lr=0.01)
    src = p.to_source()
    assert "e1 = dense(v, 32) @batch" in src
    assert "d1 = sigmoid(dense(e1, 64, w: share(e1.w, transpose: true)))" in src
    checked = p.check()
    shared = [q for q in checked.net.params if q.share_of]
    assert [(q.key, q.share_of, q.transpose) for q in shared] == [("d1.dense.w", "e1.w", True)]
