"""The checker on whole programs: the examples check, their parameter totals match a count
by hand, init_from warns instead of failing, the front end holds no eval/exec/pickle, a
40-layer program checks in well under a second, and numbers outside what a float can hold
are errors, not crashes."""
from __future__ import annotations

import io
import math
import pathlib
import statistics
import time
import tokenize

import pytest

import singa_dsl
from singa_dsl import SingaError

from singa_testlib import BASE, REPO, check_text, example_paths, substitute, write_corpus

EXAMPLES = {p.stem: p for p in example_paths()}
INIT_FROM_EXAMPLES = ("rbm2", "autoencoder")


def load_example(name: str, tmp_path: pathlib.Path):
    """Check an example as `singac check` would; char_rnn gets a corpus written next to it."""
    path = EXAMPLES.get(name)
    if path is None:
        pytest.skip(f"example {name} is not in this checkout")
    if name == "char_rnn":
        write_corpus(tmp_path)
        return singa_dsl.parse(path.read_text(), filename=str(path), base_dir=tmp_path)
    return singa_dsl.load(path)


# ---- the examples check ---------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_example_checks_cleanly(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)          # no runs/ folder here: init_from has no checkpoints
    program = load_example(name, tmp_path)
    assert program.net.layers and program.param_count > 0
    assert program.summary().startswith(f"net {program.net.name}: {len(program.net.layers)} layers")
    if name in INIT_FROM_EXAMPLES:
        assert program.warnings, "a job with init_from and no checkpoints must warn"
    else:
        assert program.warnings == ()


def test_char_rnn_vocab_comes_from_the_corpus(tmp_path):
    program = load_example("char_rnn", tmp_path)
    from singa_testlib import CORPUS
    vocab = len(set(CORPUS))
    y = next(l for l in program.net.layers if l.name == "y")
    assert y.out.shape == (vocab,)
    assert program.net.unroll == 50


def test_char_rnn_without_its_corpus_is_a_data_error(tmp_path):
    path = EXAMPLES.get("char_rnn")
    if path is None:
        pytest.skip("no char_rnn example")
    with pytest.raises(SingaError) as info:
        singa_dsl.parse(path.read_text(), filename="char_rnn.singa", base_dir=tmp_path)
    [err] = info.value.errors
    assert err.message.startswith("data file 'corpus.txt': not found")
    assert err.span.line == 11


# ---- parameter totals, counted by hand ------------------------------------------------------
def dense_params(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out


def conv_params(channels: int, filters: int, kernel: int) -> int:
    return channels * kernel * kernel * filters + filters


def conv_size(size: int, kernel: int, stride: int, pad: int) -> int:
    return (size + 2 * pad - kernel) // stride + 1


def pool_size(size: int, kernel: int, stride: int) -> int:
    # Caffe (and SINGA's CPooling) round the number of windows up
    return math.ceil((size - kernel) / stride) + 1


def test_mnist_mlp_param_total_matches_a_hand_count(tmp_path):
    sizes = [64, 2500, 2000, 1500, 1000, 500, 10]        # 8x8 digits in, 10 classes out
    by_hand = sum(dense_params(a, b) for a, b in zip(sizes, sizes[1:]))
    assert by_hand == 10_172_510
    program = load_example("mnist_mlp", tmp_path)
    assert program.param_count == by_hand
    assert f"total params: {by_hand:,} " in program.summary()
    fc1 = next(l for l in program.net.layers if l.name == "fc1")
    assert {p.slot: p.shape for p in fc1.params} == {"w": (2500, 64), "b": (2500,)}


def test_cifar_convnet_param_total_matches_a_hand_count(tmp_path):
    side = 32
    conv1 = conv_params(3, 32, 5)
    side = conv_size(side, 5, 1, 2)          # 32
    side = pool_size(side, 3, 2)             # 16
    conv2 = conv_params(32, 32, 5)
    side = conv_size(side, 5, 1, 2)          # 16
    side = pool_size(side, 3, 2)             # 8
    conv3 = conv_params(32, 64, 5)
    side = conv_size(side, 5, 1, 2)          # 8
    side = pool_size(side, 3, 2)             # 4
    ip1 = dense_params(64 * side * side, 10)
    by_hand = conv1 + conv2 + conv3 + ip1
    assert (side, by_hand) == (4, 89_578)
    program = load_example("cifar_convnet", tmp_path)
    assert program.param_count == by_hand
    pool3 = next(l for l in program.net.layers if l.name == "pool3")
    assert pool3.out.shape == (64, 4, 4)


def test_shared_params_count_once(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    program = load_example("autoencoder", tmp_path)
    # e1 64x1000, e2 1000x500 and four biases; d2/d1 share e2.w/e1.w transposed
    by_hand = (64 * 1000 + 1000) + (1000 * 500 + 500) + 1000 + 64
    assert program.param_count == by_hand
    d1 = next(l for l in program.net.layers if l.name == "d1")
    w = next(p for p in d1.params if p.slot == "w")
    assert w.share_of == "e1.w" and w.transpose


# ---- init_from ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", INIT_FROM_EXAMPLES)
def test_init_from_without_checkpoints_is_a_warning(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    program = load_example(name, tmp_path)
    path = EXAMPLES[name]
    line = next(i for i, l in enumerate(path.read_text().splitlines(), 1) if "init_from" in l)
    assert program.warnings
    for w in program.warnings:
        assert w.message.startswith("init_from workspace 'runs/rbm")
        assert w.message.endswith("' has no checkpoint yet")
        assert w.span.line == line
        rendered = w.render()
        assert rendered.startswith(f"{path}:{line}:3: warning: init_from workspace")
        assert "hint: run the job that writes it first" in rendered


def test_init_from_with_a_checkpoint_does_not_warn(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)              # workspaces are relative to where the job runs
    (tmp_path / "runs" / "rbm1" / "checkpoints").mkdir(parents=True)
    program = load_example("rbm2", tmp_path)
    assert program.warnings == ()


def test_named_param_without_init_is_fine_with_init_from(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    text = substitute(BASE, "w: uniform(-0.1, 0.1)", 'w: param(name: "w1")',
                      'workspace: "runs/demo"', 'workspace: "runs/demo"\n  init_from: ["runs/x"]')
    program = check_text(text, base_dir=tmp_path)
    [w] = program.warnings
    assert w.message == "init_from workspace 'runs/x' has no checkpoint yet"
    fc1 = next(l for l in program.net.layers if l.name == "fc1")
    assert next(p for p in fc1.params if p.slot == "w").name == "w1"


# ---- no code execution in the front end ---------------------------------------------------
FORBIDDEN_CALLS = {"eval", "exec", "compile", "__import__"}


def forbidden_uses(source: str) -> list[str]:
    """eval(/exec(/compile(/__import__( called as builtins, and any pickle/marshal/shelve
    module used, found on real tokens (comments and strings — docs saying 'never pickle' —
    are not code)."""
    found = []
    toks = [t for t in tokenize.generate_tokens(io.StringIO(source).readline)
            if t.type not in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT,
                              tokenize.DEDENT)]
    for i, t in enumerate(toks):
        if t.type != tokenize.NAME:
            continue
        prev = toks[i - 1].string if i else ""
        nxt = toks[i + 1].string if i + 1 < len(toks) else ""
        if t.string in FORBIDDEN_CALLS and nxt == "(" and prev not in (".", "def"):
            found.append(f"{t.start[0]}: {t.string}(")
        if t.string in ("pickle", "cPickle", "marshal", "shelve", "dill", "cloudpickle"):
            found.append(f"{t.start[0]}: {t.string}")
    return found


def test_the_scanner_finds_what_it_looks_for():
    assert forbidden_uses("x = eval('1')\n") == ["1: eval("]
    assert forbidden_uses("import pickle\n") == ["1: pickle"]
    assert forbidden_uses("from os import path\nexec (code)\n") == ["2: exec("]
    assert forbidden_uses("import pickle as p\n") == ["1: pickle"]
    # not code, or not the builtin
    assert forbidden_uses('"""never pickle"""\n# eval(x)\ny = evaluate(x)\nz.eval()\n'
                          "np.load(f, allow_pickle=False)\ndef exec(self): pass\n") == []


def test_front_end_sources_have_no_eval_exec_or_pickle():
    files = sorted((REPO / "compiler").rglob("*.py")) + sorted((REPO / "singa_dsl").rglob("*.py"))
    assert len(files) > 10
    offenders = {}
    for f in files:
        hits = forbidden_uses(f.read_text(encoding="utf-8"))
        if hits:
            offenders[str(f.relative_to(REPO))] = hits
    assert offenders == {}


# ---- speed --------------------------------------------------------------------------------
def forty_layer_program() -> str:
    lines = ["job big {", "  steps: 10", "}", "",
             "data d {", "  train: synthetic(shape: [64], classes: 10, size: 256, batch: 32)", "}",
             "", "net deep {", "  x = input(d.image)"]
    prev = "x"
    for i in range(1, 19):                                       # 36 layers
        lines.append(f"  fc{i} = dense({prev}, {32 + 8 * (i % 4)}, w: gaussian(0, 0.01))")
        lines.append(f"  a{i} = {('relu', 'sigmoid', 'tanh')[i % 3]}(fc{i})")
        prev = f"a{i}"
    lines += [f"  drop = dropout({prev}, rate: 0.5)", "  out = dense(drop, 10)",
              "  loss = softmax_loss(out, d.label)", "}", "", "algorithm bp", "",
              "updater sgd {", "  lr: 0.1", "}"]
    return "\n".join(lines) + "\n"


def test_forty_layer_program_checks_well_under_a_second(tmp_path):
    text = forty_layer_program()
    try:                                  # build the parser once; that is not checking
        singa_dsl.parse("const A = 1", base_dir=tmp_path)
    except SingaError:
        pass
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        program = singa_dsl.parse(text, filename="deep.singa", base_dir=tmp_path)
        times.append(time.perf_counter() - t0)
    assert len(program.net.layers) == 40
    median = statistics.median(times)
    print(f"\n40-layer program: median check time {median * 1000:.1f} ms "
          f"(runs: {', '.join(f'{t * 1000:.1f}' for t in times)} ms)")
    assert median < 1.0


# ---- numbers a float cannot hold --------------------------------------------------------------
HUGE = "1" + "0" * 400          # an integer literal beyond float range
NOT_FINITE = "1e999"            # a float literal that overflows to inf
TOO_LARGE = ("number is too large", "numbers must be finite and at most 1e+300 in size")


@pytest.mark.parametrize("old, new, column", [
    ("momentum: 0.9", f"momentum: {HUGE}", 13),
    ("lr: step(0.01, every: 60, gamma: 0.9)", f"lr: {HUGE}", 7),
    ("uniform(-0.1, 0.1)", f"uniform(-0.1, {HUGE})", 39),
    ("uniform(-0.1, 0.1)", f"param(init: glorot(), lr_scale: {HUGE})", 57),
], ids=["momentum", "lr", "uniform", "lr_scale"])
def test_integer_beyond_float_range_is_an_error_not_a_crash(old, new, column, tmp_path):
    text = substitute(BASE, old, new)
    with pytest.raises(SingaError) as info:
        check_text(text, base_dir=tmp_path)
    [err] = info.value.errors
    assert (err.message, err.hint) == TOO_LARGE
    line = next(i for i, l in enumerate(text.splitlines(), 1) if HUGE in l)
    assert (err.span.line, err.span.column, err.span.end_column) == (line, column, column + 401)


def test_too_large_number_inside_a_record_is_reported_once(tmp_path):
    text = substitute(BASE, 'digits(split: "train", batch: 32)',
                      f'digits(split: "train", batch: 32, normalize: (mean: 0, std: {HUGE}))')
    with pytest.raises(SingaError) as info:
        check_text(text, base_dir=tmp_path)
    assert [(e.message, e.hint) for e in info.value.errors] == [TOO_LARGE]
    assert "INVALID" not in info.value.render()


@pytest.mark.parametrize("old, new, columns", [
    ("lr: step(0.01, every: 60, gamma: 0.9)", f"lr: {NOT_FINITE}", [7]),
    ("lr: step(0.01, every: 60, gamma: 0.9)", f"lr: {NOT_FINITE} - {NOT_FINITE}", [7, 15]),
    ("uniform(-0.1, 0.1)", f"uniform(-{NOT_FINITE}, {NOT_FINITE})", [34, 41]),
    ("momentum: 0.9", "momentum: " + " * ".join(["99999999999"] * 30), [13]),
    ("momentum: 0.9", "momentum: 1e300 / 1e-300", [13]),
], ids=["inf_lr", "nan_lr", "inf_uniform", "int_product", "float_quotient"])
def test_non_finite_numbers_are_errors(old, new, columns, tmp_path):
    with pytest.raises(SingaError) as info:
        check_text(substitute(BASE, old, new), base_dir=tmp_path)
    assert [(e.message, e.hint) for e in info.value.errors] == [TOO_LARGE] * len(columns)
    assert [e.span.column for e in info.value.errors] == columns


# ---- phases the job and the net need ----------------------------------------------------------
def test_a_net_reading_data_without_a_train_phase_is_a_check_error(tmp_path):
    text = substitute(BASE, '  train: digits(split: "train", batch: 32)\n', "")
    with pytest.raises(SingaError) as info:
        check_text(text, base_dir=tmp_path)
    assert "train" in info.value.errors[0].message


def test_testing_without_test_data_is_reported(tmp_path):
    text = substitute(BASE, '  test:  digits(split: "test", batch: 32)\n', "")
    try:
        program = check_text(text, base_dir=tmp_path)
    except SingaError as e:
        assert "test" in e.errors[0].message
    else:
        assert any("test" in w.message for w in program.warnings)
