"""``singac import``: SINGA job.conf and Caffe prototxt/solver → .singa (issue 10).

Every sample in data/ is imported and the program checked with ``singa_dsl.parse``; the
layer shapes and parameter counts are those the original framework defines (hand counts
below), the updater and its schedule are the same, the output is stable under the formatter,
and every untranslated field is both a located warning and a TODO comment.  A hypothesis test
feeds mutated prototxt: a located SingaError or a result, never another exception.
"""
from __future__ import annotations

import pathlib
import re

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import singa_dsl
from singa_dsl import SingaError
from singa_dsl.compiler.format import format_program
from singa_dsl.compiler.importer import import_file, import_text
from singa_dsl.compiler.parser import parse_program
from singa_dsl.compiler.prototxt import parse_prototxt

DATA = pathlib.Path(__file__).parent / "data"
CORPUS = "the quick brown fox jumps over the lazy dog; " * 40


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    """A folder where the files the imported programs read exist (only char-rnn's corpus:
    every other sample reads a store singa_dsl has no reader for, so it gets a placeholder)."""
    d = tmp_path_factory.mktemp("imported")
    (d / "examples/char-rnn").mkdir(parents=True)
    (d / "examples/char-rnn/linux_input.txt").write_text(CORPUS)
    return d


def imported(name: str, solver: str | None = None):
    return import_file(str(DATA / name), str(DATA / solver) if solver else None)


def check(result, base_dir):
    return singa_dsl.parse(result.source, "imported.singa", base_dir=base_dir)


def strip_comments(text: str) -> str:
    lines = [l for l in text.splitlines() if not l.lstrip().startswith("#")]
    return "\n".join(lines).lstrip("\n") + "\n"


def shapes(program) -> dict:
    return {l.name: tuple(l.out.shape) for l in program.net.layers}


# ---- hand counts: parameters as SINGA / Caffe define them -----------------------------------
# MLP 784-2500-2000-1500-1000-500-10: sum of (in + 1) * out over the six layers
MLP = 785 * 2500 + 2501 * 2000 + 2001 * 1500 + 1501 * 1000 + 1001 * 500 + 501 * 10
# SINGA CIFAR-10 convnet: conv 5x5 3→32, 32→32, 32→64, then 64·4·4 → 10
SINGA_CIFAR = (75 * 32 + 32) + (800 * 32 + 32) + (800 * 64 + 64) + (1024 * 10 + 10)
RBM1 = 784 * 1000 + 784 + 1000                           # w, vbias, hbias
RBM2 = 785 * 1000 + (1000 * 500 + 1000 + 500)            # Inner1 + rbm 1000-500
RBM3 = 785 * 1000 + 1001 * 500 + (500 * 250 + 500 + 250)
RBM4 = 785 * 1000 + 1001 * 500 + 501 * 250 + (250 * 30 + 250 + 30)
# auto-encoder: 4 encoder weights (decoder shares them transposed) + 8 biases
AUTOENCODER = (784 * 1000 + 1000 * 500 + 500 * 250 + 250 * 30) + \
    (1000 + 500 + 250 + 30) + (250 + 500 + 1000 + 784)
# char-rnn: GRU 101→512 (3 W_x, 3 W_h, 3 b) + dense 512→101
CHAR_RNN = 3 * 512 * 101 + 3 * 512 * 512 + 3 * 512 + 512 * 101 + 101
LENET = (25 * 20 + 20) + (500 * 50 + 50) + (800 * 500 + 500) + (500 * 10 + 10)
CIFAR_QUICK = (75 * 32 + 32) + (800 * 32 + 32) + (800 * 64 + 64) + (1024 * 64 + 64) + \
    (64 * 10 + 10)


def test_hand_counts():
    assert (MLP, LENET, CIFAR_QUICK) == (11_972_510, 431_080, 145_578)
    assert (SINGA_CIFAR, RBM1, AUTOENCODER, CHAR_RNN) == (89_578, 785_784, 1_420_814, 994_917)


SAMPLES = {
    # file(s) → (params, {layer: shape}, updater kind, lr (a number or (schedule, args)))
    ("mnist_mlp.conf",): (MLP, {"fc1": (2500,), "fc5": (500,), "fc6": (10,)}, "sgd",
                          ("step", {"base": 0.001, "every": 60, "gamma": 0.997})),
    ("cifar10_convnet.conf",): (SINGA_CIFAR, {"conv1": (32, 32, 32), "pool1": (32, 16, 16),
                                              "pool2": (32, 8, 8), "pool3": (64, 4, 4),
                                              "ip1": (10,)}, "sgd",
                                ("fixed_step", {"at": (0, 60000, 65000),
                                                "lr": (0.001, 0.0001, 1e-05)})),
    ("cifar10_hybrid.conf",): (SINGA_CIFAR, {"pool3": (64, 4, 4)}, "sgd",
                               ("fixed_step", {"at": (0, 60000, 65000),
                                               "lr": (0.001, 0.0001, 1e-05)})),
    ("rbm1.conf",): (RBM1, {"RBMHid": (1000,)}, "sgd", 0.1),
    ("rbm2.conf",): (RBM2, {"Sigmoid1": (1000,), "RBMHid": (500,)}, "sgd", 0.1),
    ("rbm3.conf",): (RBM3, {"RBMHid": (250,)}, "sgd", 0.1),
    ("rbm4.conf",): (RBM4, {"RBMHid": (30,)}, "sgd", 0.001),
    ("autoencoder.conf",): (AUTOENCODER, {"Inner4": (30,), "Inner5": (250,),
                                          "Sigmoid8": (784,)}, "adagrad", 0.01),
    ("char_rnn.conf",): (CHAR_RNN, {"onehot": (101,), "gru1": (512,), "ip1": (101,)},
                         "rmsprop", ("step", {"base": 0.002, "every": 2000, "gamma": 0.97})),
    ("lenet_train_test.prototxt", "lenet_solver.prototxt"): (
        LENET, {"conv1": (20, 24, 24), "pool1": (20, 12, 12), "conv2": (50, 8, 8),
                "pool2": (50, 4, 4), "ip1": (500,), "relu1": (500,), "ip2": (10,)}, "sgd",
        ("inverse", {"base": 0.01, "gamma": 0.0001, "pow": 0.75})),
    ("cifar10_quick_train_test.prototxt", "cifar10_quick_solver.prototxt"): (
        CIFAR_QUICK, {"conv1": (32, 32, 32), "pool1": (32, 16, 16), "conv2": (32, 16, 16),
                      "pool2": (32, 8, 8), "conv3": (64, 8, 8), "pool3": (64, 4, 4),
                      "ip1": (64,), "ip2": (10,)}, "sgd", 0.001),
}


@pytest.fixture(scope="module")
def results():
    return {files: imported(*files) for files in SAMPLES}


@pytest.mark.parametrize("files", list(SAMPLES), ids=lambda f: f[0])
def test_sample_checks_with_the_original_shapes_and_counts(files, results, base_dir):
    params, layer_shapes, kind, lr = SAMPLES[files]
    program = check(results[files], base_dir)
    assert program.param_count == params
    got = shapes(program)
    assert {k: got[k] for k in layer_shapes} == layer_shapes
    assert program.updater.kind == kind
    if isinstance(lr, float):
        assert program.updater.lr == pytest.approx(lr)
    else:
        assert (program.updater.lr.kind, dict(program.updater.lr.args)) == lr


@pytest.mark.parametrize("files", list(SAMPLES), ids=lambda f: f[0])
def test_output_is_stable_under_the_formatter(files, results):
    out = results[files].source
    # the formatter drops comments; all else is the same text
    assert format_program(parse_program(out)) == strip_comments(out)
    assert format_program(results[files].program) == strip_comments(out)


@pytest.mark.parametrize("files", list(SAMPLES), ids=lambda f: f[0])
def test_every_warning_is_located_and_marked_in_the_output(files, results):
    result = results[files]
    names = {str(DATA / f) for f in files}
    for w in result.warnings:
        assert w.span is not None and w.span.line >= 1 and w.span.file in names, w.render()
        assert w.render().splitlines()[0].startswith(f"{w.span.file}:{w.span.line}:")
    assert result.source.count("# TODO(import):") == len(result.warnings)


def test_singa_settings_carry_over(results, base_dir):
    mlp = check(results[("mnist_mlp.conf",)], base_dir)
    assert (mlp.job.steps, mlp.job.test.every, mlp.job.test.batches) == (1000, 60, 10)
    assert mlp.job.display.every == 10 and mlp.job.workspace == "examples/mnist"
    assert mlp.net.layer("fc1").params[0].name == "w1"
    assert [s.kind for s in mlp.data["mnist"].phases.values()] == ["synthetic", "synthetic"]
    assert mlp.data["mnist"].phases["train"].args["batch"] == 64

    cifar = check(results[("cifar10_convnet.conf",)], base_dir)
    ip1 = cifar.net.layer("ip1").params
    assert (ip1[0].wd_scale, ip1[1].lr_scale, ip1[1].wd_scale) == (250, 2, 0)
    assert cifar.updater.args["momentum"] == 0.9 and cifar.updater.args["weight_decay"] == 0.004

    hybrid = check(results[("cifar10_hybrid.conf",)], base_dir)
    assert hybrid.cluster.workers_per_group == 2 and hybrid.job.test is None
    assert hybrid.net.layer("ip1").partition == "feature"
    assert hybrid.net.layer("conv1").partition == "batch"

    rbm4 = check(results[("rbm4.conf",)], base_dir)
    assert rbm4.algorithm.kind == "cd" and rbm4.algorithm.args["k"] == 1
    assert rbm4.net.layer("RBMHid").attrs["gaussian_hidden"] is True
    assert rbm4.job.init_from == ("examples/rbm/rbm3", "examples/rbm/rbm2", "examples/rbm/rbm1")
    assert {p.name for p in rbm4.net.layer("RBMHid").params} == {"w4", "b41", "b42"}

    ae = check(results[("autoencoder.conf",)], base_dir)
    inner5 = ae.net.layer("Inner5").params[0]
    assert (inner5.share_of, ae.net.layer("loss").op) == ("Inner4.w", "euclidean_loss")

    rnn = check(results[("char_rnn.conf",)], base_dir)
    assert (rnn.algorithm.kind, rnn.net.unroll) == ("bptt", 50)
    assert rnn.updater.args["rho"] == 0.95 and rnn.updater.args["clip"] == (-5, 5)
    assert rnn.data["char_rnn"].phases["train"].kind == "text"


def test_caffe_settings_carry_over(results, base_dir):
    lenet = check(results[("lenet_train_test.prototxt", "lenet_solver.prototxt")], base_dir)
    job = lenet.job
    assert (job.steps, job.test.every, job.test.batches, job.display.every) == (
        10000, 500, 100, 100)
    assert (job.checkpoint.every, job.checkpoint.after) == (5000, 5000)
    assert lenet.updater.args["momentum"] == 0.9 and lenet.updater.args["weight_decay"] == 5e-4
    conv1 = lenet.net.layer("conv1").params
    assert conv1[0].init.kind == "uniform_fan_in" and conv1[1].lr_scale == 2
    assert [l.op for l in lenet.net.layers][-1] == "softmax_loss"
    assert lenet.data["mnist"].phases["train"].args["batch"] == 64


def test_in_place_layers_chain_under_their_own_names(results):
    out = results[("cifar10_quick_train_test.prototxt", "cifar10_quick_solver.prototxt")].source
    assert "relu1 = relu(pool1)" in out and "conv2 = conv(relu1," in out
    assert "pool2 = avg_pool(relu2," in out
    assert "# Accuracy layer 'accuracy' dropped" in out


def test_a_solver_names_its_net_and_a_net_finds_its_solver():
    both = imported("lenet_train_test.prototxt", "lenet_solver.prototxt").source
    assert import_file(str(DATA / "lenet_solver.prototxt")).source == both
    assert import_file(str(DATA / "lenet_train_test.prototxt")).source == both


def test_untranslatable_things_are_warnings_and_todos():
    conf = """
name: "odd"  train_steps: 10  debug: true
train_one_batch { alg: kBP }
updater { type: kSGD learning_rate { type: kFixed base_lr: 0.1 } }
neuralnet {
  layer { name: "data" type: kCSVInput store_conf { path: "d.csv" batchsize: 4 shape: 3 } }
  layer { name: "mine" type: kUserLayer user_type: "MyLayer" srclayers: "data" }
  layer { name: "fc" type: kInnerProduct srclayers: "mine" innerproduct_conf { num_output: 2 }
          frobnicate: 3 }
  layer { name: "loss" type: kSoftmaxLoss srclayers: "fc" srclayers: "data" }
}
"""
    result = import_text(conf, "odd.conf")
    messages = [w.message for w in result.warnings]
    assert any("MyLayer" in m for m in messages)
    assert any("'frobnicate'" in m for m in messages)
    assert any("'debug'" in m for m in messages)
    assert "fc = dense(data_layer, 2)" in result.source       # wired around the user layer
    assert 'csv("d.csv", label_column: 0, batch: 4)' in result.source
    lines = result.source.splitlines()
    todo = next(i for i, l in enumerate(lines) if "MyLayer" in l)
    assert lines[todo].lstrip().startswith("# TODO(import):")
    assert all(w.span.file == "odd.conf" and w.span.line >= 2 for w in result.warnings)


def test_singa_v01_parser_and_label_layers():
    conf = """
name: "mlp"  train_steps: 100  test_steps: 10  test_freq: 60
train_one_batch { alg: kBP }
updater { type: kSGD learning_rate { base_lr: 0.001 type: kFixed } }
neuralnet {
  layer { name: "data" type: kShardData sharddata_conf { path: "mnist_train_shard"
          batchsize: 1000 } exclude: kTest }
  layer { name: "data" type: kShardData sharddata_conf { path: "mnist_test_shard"
          batchsize: 1000 } exclude: kTrain }
  layer { name: "mnist" type: kMnist srclayers: "data" mnist_conf { norm_a: 127.5 norm_b: 1 } }
  layer { name: "label" type: kLabel srclayers: "data" }
  layer { name: "fc1" type: kInnerProduct srclayers: "mnist" innerproduct_conf { num_output: 10 }
          param { name: "w1" init { type: kUniform low: -0.05 high: 0.05 } } }
  layer { name: "loss" type: kSoftmaxLoss srclayers: "fc1" srclayers: "label" }
}
"""
    result = import_text(conf, "v01.conf")
    program = singa_dsl.parse(result.source, "v01.singa")
    assert program.param_count == 7850 and [l.op for l in program.net.layers] == [
        "input", "dense", "softmax_loss"]
    assert program.data["mnist_2"].phases["test"].args["batch"] == 1000
    assert "normalize: (mean: 127.5, std: 127.5)" in result.source     # from norm_a, norm_b


def test_csv_sources_point_at_the_same_files(tmp_path):
    conf = """
name: "csvjob" train_steps: 5 test_steps: 2 test_freq: 5
train_one_batch { alg: kBP }
updater { type: kNesterov momentum: 0.5 learning_rate { type: kExponential base_lr: 0.1
          exponential_conf { change_freq: 100 } } }
neuralnet {
  layer { name: "d" type: kCSVInput include: kTrain
          store_conf { backend: "textfile" path: "train.csv" batchsize: 2 shape: 3 } }
  layer { name: "d" type: kCSVInput include: kTest
          store_conf { backend: "textfile" path: "test.csv" batchsize: 2 shape: 3 } }
  layer { name: "fc" type: kInnerProduct srclayers: "d" innerproduct_conf { num_output: 2 } }
  layer { name: "loss" type: kSoftmaxLoss srclayers: "fc" srclayers: "d" }
}
"""
    for name in ("train.csv", "test.csv"):
        (tmp_path / name).write_text("0,1,2,3\n1,4,5,6\n0,7,8,9\n1,1,1,1\n")
    result = import_text(conf, "csv.conf")
    assert result.warnings == []
    program = singa_dsl.parse(result.source, "csv.singa", base_dir=tmp_path)
    assert program.data[program.net.layers[0].sources[0].split(".")[0]].phases["test"].kind \
        == "csv"
    assert program.updater.kind == "nesterov" and program.updater.args["momentum"] == 0.5
    assert program.updater.lr.kind == "exponential"


TINY_NET = """
name: "tiny"
layer { name: "d" type: "DummyData" top: "data" top: "label"
        dummy_data_param { shape { dim: 8 dim: 2 dim: 6 dim: 6 } shape { dim: 8 } } }
layer { name: "cut" type: "Slice" bottom: "data" top: "a" top: "b"
        slice_param { slice_point: 1 } }
layer { name: "both" type: "Concat" bottom: "a" bottom: "b" top: "both" }
layer { name: "conv" type: "Convolution" bottom: "both" top: "conv"
        param { name: "shared_w" } param { lr_mult: 2 decay_mult: 0 }
        convolution_param { num_output: 4 kernel_size: 3 weight_filler { type: "msra" } } }
layer { name: "gap" type: "Pooling" bottom: "conv" top: "gap"
        pooling_param { pool: AVE global_pooling: true } }
layer { name: "ip" type: "InnerProduct" bottom: "gap" top: "ip"
        inner_product_param { num_output: 3 weight_filler { type: "xavier"
                              variance_norm: AVERAGE } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss"
        loss_weight: 2 }
"""


@pytest.mark.parametrize("solver, kind, lr", [
    ('type: "Adam" momentum: 0.8 momentum2: 0.99', "adam", 0.1),
    ('solver_type: ADAGRAD lr_policy: "step" stepsize: 10 gamma: 0.5', "adagrad",
     ("step", {"base": 0.1, "every": 10, "gamma": 0.5})),
    ('type: "RMSProp" rms_decay: 0.9 lr_policy: "multistep" gamma: 0.1 stepvalue: 5 '
     'stepvalue: 8', "rmsprop", ("fixed_step", {"at": (0, 5, 8), "lr": (0.1, 0.01, 0.001)})),
    ('type: "AdaDelta" momentum: 0.95 lr_policy: "exp" gamma: 0.5', "adadelta",
     ("exponential", {"base": 0.1, "every": 1})),
    ('type: "Nesterov" momentum: 0.9 lr_policy: "poly" power: 1', "nesterov",
     ("linear", {"base": 0.1, "final": 0, "every": 20})),
])
def test_caffe_layers_and_solvers(solver, kind, lr, tmp_path):
    text = f'base_lr: 0.1 max_iter: 20 lr_policy: "fixed" {solver}'
    if "lr_policy" in solver:
        text = text.replace('lr_policy: "fixed" ', "")
    result = import_text(TINY_NET, "tiny.prototxt", text, "tiny_solver.prototxt")
    program = singa_dsl.parse(result.source, "tiny.singa", base_dir=tmp_path)
    assert program.updater.kind == kind
    if isinstance(lr, float):
        assert program.updater.lr == lr
    else:
        assert (program.updater.lr.kind, dict(program.updater.lr.args)) == lr
    s = shapes(program)
    assert (s["a"], s["b"], s["both"], s["conv"], s["gap"]) == (
        (1, 6, 6), (1, 6, 6), (2, 6, 6), (4, 4, 4), (4, 1, 1))
    conv = program.net.layer("conv").params
    assert conv[0].name == "shared_w" and conv[0].init.kind == "gaussian_fan_in"
    assert (conv[1].lr_scale, conv[1].wd_scale) == (2, 0)
    assert program.net.layer("ip").params[0].init.kind == "glorot"
    assert program.net.layer("loss").attrs["scale"] == 2
    assert program.data["d"].phases["train"].kind == "synthetic"


def test_caffe_v1_layers():
    net = """
name: "old"
layers { name: "mnist" type: DATA top: "data" top: "label"
         data_param { source: "mnist_train_leveldb" batch_size: 16 } include { phase: TRAIN } }
layers { name: "ip" type: INNER_PRODUCT bottom: "data" top: "ip" blobs_lr: 1 blobs_lr: 2
         weight_decay: 1 weight_decay: 0
         inner_product_param { num_output: 10 weight_filler { type: "gaussian" std: 0.01 } } }
layers { name: "loss" type: SOFTMAX_LOSS bottom: "ip" bottom: "label" }
"""
    result = import_text(net, "old.prototxt", "base_lr: 0.01 max_iter: 5", "s.prototxt")
    program = singa_dsl.parse(result.source, "old.singa")
    b = program.net.layer("ip").params[1]
    assert (b.lr_scale, b.wd_scale) == (2, 0) and program.param_count == 785 * 10


@pytest.mark.parametrize("text, line, at", [
    ("name: 'x'\nneuralnet { layer { name: 'a' }", 2, None),          # unclosed: at the end
    ("train_steps = 5", 1, "= 5"),
    ("updater { type: kSGD learning_rate { base_lr: 0.1 type: kStep } }\nneuralnet { }", 1,
     "type: kStep"),                                                    # no step_conf
    ("neuralnet { layer { name: 'a' type: kInnerProduct } }", 1, "type: kInner"),  # no size
    ("train_steps: 'ten'\nneuralnet { }", 1, "'ten'"),
    ("neuralnet { layer { name: 'a' include: kTrain exclude: kTest } }", 1, "exclude"),
    ("hello: 1", 1, "hello"),                                          # not SINGA nor Caffe
])
def test_bad_input_is_a_located_error(text, line, at):
    with pytest.raises(SingaError) as e:
        import_text(text, "bad.conf")
    row = text.splitlines()[line - 1]
    column = row.index(at) + 1 if at else len(row.rstrip()) + 1
    assert (e.value.span.file, e.value.span.line, e.value.span.column) == ("bad.conf", line,
                                                                           column)
    assert e.value.render().startswith(f"bad.conf:{line}:{column}: error:")


def test_deep_nesting_is_a_located_error_not_a_recursion_error():
    text = "neuralnet " + "{ a " * 5000 + "}" * 5000
    with pytest.raises(SingaError) as e:
        import_text(text, "deep.conf")
    assert e.value.span.line == 1 and "nested" in e.value.message


def test_prototxt_format_details():
    top = parse_prototxt('a: "x" \'y\\n\' b: -1.5e-3f c: 0x10 d: [1, 2] e < f: kA >; '
                         '[ext.conf] { g: -inf }, h: true', "t")
    values = [(f.name, getattr(f.value, "value", None)) for f in top.fields]
    assert values[:6] == [("a", "xy\n"), ("b", -0.0015), ("c", 16), ("d", 1), ("d", 2),
                          ("e", None)]
    assert [f.name for f in top.fields][-2:] == ["[ext.conf]", "h"]
    assert top.fields[1].span.line == 1 and top.fields[1].name_span.column == 14


# ---- fuzzing: mutated prototxt gives a located SingaError or a result, nothing else ---------
FUZZ_SOURCES = [(DATA / n).read_text() for n in
                ("mnist_mlp.conf", "char_rnn.conf", "rbm2.conf", "lenet_train_test.prototxt")]
LENET_SOLVER = (DATA / "lenet_solver.prototxt").read_text()
TOKEN = re.compile(r'\s*(#[^\n]*|"(?:[^"\\\n]|\\.)*"|[A-Za-z_]\w*|-?[0-9.][0-9.eE+-]*|\S)')
EXTRA_LINES = ["}", "layer {", "param {", 'name: "fc1"', "type: kUserLayer", "type: kSlice",
               'srclayers: "data"', 'srclayers: "nowhere"', "partition_dim: 1",
               "include: kTest", "unroll_len: 3", "num_output: 0", 'share_from: "w1"',
               'bottom: "label"', 'top: "data"', 'type: "Slice"', "include { phase: TEST }",
               "lr_mult: 0", "kernel_size: 99", "alg: kCD", "type: kAdam", "gpu: 1"]
EXTRA_TOKENS = ["{", "}", ":", "[", "]", "-", '"', "layer", "param", "kInnerProduct",
                "num_output", "0", "-3", "1e999", '"x"', "include", "kTest", "srclayers",
                "share_from", "top", "bottom", "Slice"]


@st.composite
def mutated(draw):
    """Token-level edits break the syntax (a located error); line-level ones (the samples
    hold about one field a line) keep it and reach the mappings with odd structure."""
    text = draw(st.sampled_from(FUZZ_SOURCES))
    by_lines = draw(st.booleans())
    units = text.splitlines() if by_lines else TOKEN.findall(text)
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(units) - 1))
        op = draw(st.sampled_from(["delete", "duplicate", "swap", "insert"]))
        if op == "delete":
            del units[i]
        elif op == "duplicate":
            units.insert(i, units[i])
        elif op == "swap":
            j = draw(st.integers(0, len(units) - 1))
            units[i], units[j] = units[j], units[i]
        else:
            units.insert(i, draw(st.sampled_from(EXTRA_LINES if by_lines else EXTRA_TOKENS)))
    return "\n".join(units)      # one unit a line: a comment ends where it did


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(mutated())
def test_mutated_prototxt_never_crashes(text):
    solver = LENET_SOLVER if "layer {" in text else None
    try:
        result = import_text(text, "fuzz.prototxt", solver, "fuzz_solver.prototxt")
    except SingaError as e:
        spans = [x.span for x in getattr(e, "errors", [e])]
        assert all(s is not None and s.line >= 1 for s in spans), e.render()
        e.render()
        return
    for w in result.warnings:
        assert w.span is not None and w.span.line >= 1, w.render()
    parse_program(result.source)          # whatever came in, the output is valid syntax
