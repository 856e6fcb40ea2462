"""The parser: examples, comments, separators, nested calls, annotations, constant
expressions and strings.  Values are checked through the whole front end where the language
gives them a meaning (consts), and on the AST where it does not."""
from __future__ import annotations

import pytest

import singa_dsl
from singa_dsl.compiler import ast
from singa_dsl.compiler.parser import parse_program
from singa_dsl.errors import SingaError

from singa_testlib import BASE, check_text, example_paths, substitute

EXAMPLES = example_paths()


def only(program: ast.Program, cls):
    items = [i for i in program.items if isinstance(i, cls)]
    assert len(items) == 1, items
    return items[0]


def const_values(consts: str, tmp_path) -> dict:
    """Check BASE with extra const declarations in front; return the evaluated consts."""
    return dict(check_text(consts + "\n" + BASE, base_dir=tmp_path).consts)


# ---- examples ---------------------------------------------------------------------------
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_parses(path):
    program = parse_program(path.read_text(), str(path))
    keywords = [i.keyword for i in program.items if isinstance(i, ast.Block)]
    assert keywords.count("job") == 1
    assert keywords.count("algorithm") == 1
    assert keywords.count("updater") == 1
    assert "data" in keywords
    net = only(program, ast.NetDecl)
    assert net.layers, "the net has no layers"
    # every layer statement names a call with a real position in the file
    for layer in net.layers:
        assert isinstance(layer.value, ast.Call)
        assert layer.name_span.line >= 1 and layer.name_span.file == str(path)
        line = path.read_text().splitlines()[layer.name_span.line - 1]
        assert line[layer.name_span.column - 1:].startswith(layer.name)


def test_examples_exist():
    names = {p.stem for p in EXAMPLES}
    assert {"mnist_mlp", "cifar_convnet", "char_rnn", "rbm1"} <= names


def test_empty_program_parses_to_nothing():
    assert parse_program("").items == ()
    assert parse_program("# only a comment\n\n   # another\n").items == ()


# ---- comments and separators ------------------------------------------------------------
def test_comments_are_ignored_everywhere():
    plain = parse_program('job j {\n  steps: 10\n  workspace: "w"\n}\n')
    commented = parse_program(
        '# leading comment\n'
        'job j {   # after the brace\n'
        '  # a full-line comment\n'
        '  steps: 10  # trailing\n'
        '  workspace: "w"#no space before the hash\n'
        '}\n'
        '# comment at the end without a newline')
    assert commented == plain


def test_hash_inside_a_string_is_not_a_comment():
    job = only(parse_program('job j { workspace: "runs/#1" }'), ast.Block)
    assert job.entries[0].value == ast.Str("runs/#1")


@pytest.mark.parametrize("text", [
    "job j {\n  steps: 10\n  seed: 2\n}",
    "job j { steps: 10, seed: 2 }",
    "job j { steps: 10, seed: 2, }",
    "job j {\n  steps: 10,\n  seed: 2,\n}",
    "job j { steps: 10 seed: 2 }",
    "job\nj\n{\nsteps\n:\n10\n,\nseed:2}",
])
def test_commas_and_newlines_separate_items_alike(text):
    assert parse_program(text) == parse_program("job j { steps: 10, seed: 2 }")
    job = only(parse_program(text), ast.Block)
    assert [(e.key, e.value) for e in job.entries] == [("steps", ast.Num(10)),
                                                       ("seed", ast.Num(2))]


def test_net_items_separated_by_commas_or_newlines():
    a = parse_program("net n { partition: batch, x = input(d.image), y = relu(x) @none, }")
    b = parse_program("net n {\n  partition: batch\n  x = input(d.image)\n  y = relu(x) @none\n}")
    assert a == b
    net = only(a, ast.NetDecl)
    assert [e.key for e in net.entries] == ["partition"]
    assert [l.name for l in net.layers] == ["x", "y"]


def test_trailing_commas_in_calls_and_lists():
    a = only(parse_program("const a = f(1, 2, k: [3, 4,],)"), ast.ConstDecl).value
    b = only(parse_program("const a = f(1, 2, k: [3, 4])"), ast.ConstDecl).value
    assert a == b
    assert a == ast.Call("f", (ast.Num(1), ast.Num(2)),
                         (ast.Kwarg("k", ast.ListExpr((ast.Num(3), ast.Num(4)))),))


# ---- calls, records, references ---------------------------------------------------------
def test_nested_calls_build_nested_call_nodes():
    net = only(parse_program("net n {\n  h1 = sigmoid(dense(v, 1000, w: glorot()))\n}"),
               ast.NetDecl)
    outer = net.layers[0].value
    assert outer.func == "sigmoid" and outer.kwargs == ()
    inner = outer.args[0]
    assert inner == ast.Call("dense", (ast.Ref(("v",)), ast.Num(1000)),
                             (ast.Kwarg("w", ast.Call("glorot")),))
    # positions: the inner call's name starts at column 16 of line 2
    assert (inner.func_span.line, inner.func_span.column) == (2, 16)
    assert (inner.span.line, inner.span.column, inner.span.end_column) == (2, 16, 43)   # end is exclusive


def test_nested_call_becomes_a_layer_named_after_its_statement(tmp_path):
    text = substitute(BASE, "  h1   = relu(fc1)\n", "  h1   = relu(dense(fc1, 32))\n")
    program = check_text(text, base_dir=tmp_path)
    names = [l.name for l in program.net.layers]
    assert "h1.dense" in names
    inner = next(l for l in program.net.layers if l.name == "h1.dense")
    assert inner.op == "dense" and inner.out.shape == (32,)
    h1 = next(l for l in program.net.layers if l.name == "h1")
    assert h1.sources == ("h1.dense",)


def test_dotted_references_records_and_lists():
    value = only(parse_program(
        "const a = f(mnist.label, e2.w.x, (mean: 1, std: 2.5), [], [true, false])"),
        ast.ConstDecl).value
    refs, record, empty, bools = value.args[0:2], value.args[2], value.args[3], value.args[4]
    assert refs == (ast.Ref(("mnist", "label")), ast.Ref(("e2", "w", "x")))
    assert record == ast.Record((ast.Kwarg("mean", ast.Num(1)), ast.Kwarg("std", ast.Num(2.5))))
    assert empty == ast.ListExpr(())
    assert bools == ast.ListExpr((ast.Bool(True), ast.Bool(False)))


def test_names_that_start_with_true_false_are_names():
    value = only(parse_program("const a = f(true_x, falsehood, true)"), ast.ConstDecl).value
    assert value.args == (ast.Ref(("true_x",)), ast.Ref(("falsehood",)), ast.Bool(True))


# ---- annotations ------------------------------------------------------------------------
def test_annotations_parse_in_order_with_positions():
    net = only(parse_program("net n {\n  fc = dense(x, 10) @feature @batch\n  y = relu(fc)\n}"),
               ast.NetDecl)
    fc, y = net.layers
    assert [a.name for a in fc.annotations] == ["feature", "batch"]
    assert (fc.annotations[0].span.line, fc.annotations[0].span.column) == (2, 21)
    assert (fc.annotations[1].span.column, fc.annotations[1].span.end_column) == (30, 36)
    assert y.annotations == ()


def test_annotation_sets_the_layer_partition(tmp_path):
    text = substitute(BASE, "  fc2  = dense(h1, 10)\n", "  fc2  = dense(h1, 10) @feature\n")
    program = check_text(text, base_dir=tmp_path)
    parts = {l.name: l.partition for l in program.net.layers}
    assert parts["fc2"] == "feature"
    assert parts["fc1"] == "batch"


# ---- constants and expressions ----------------------------------------------------------
@pytest.mark.parametrize("expr, value", [
    ("1 + 2 * 3", 7),
    ("(1 + 2) * 3", 9),
    ("2 * 3 + 1", 7),
    ("10 - 4 - 3", 3),             # left associative
    ("10 - (4 - 3)", 9),
    ("100 / 10 / 5", 2),           # left associative, exact: stays int
    ("-2 * 3", -6),
    ("2 * -3", -6),
    ("-(1 + 2)", -3),
    ("--4", 4),
    ("+4", 4),
    ("1 - -1", 2),
    ("8 / 2 * 3", 12),
    ("2 * 3 / 4", 1.5),
])
def test_precedence_and_associativity(expr, value, tmp_path):
    got = const_values(f"const A = {expr}", tmp_path)["A"]
    assert got == value and type(got) is type(value), (expr, got)


def test_integer_division_stays_int_when_exact(tmp_path):
    v = const_values("const B = 512\nconst HALF = B / 2\nconst THIRD = B / 3\n"
                     "const F = 7.0 / 2\nconst G = 6 / 3.0", tmp_path)
    assert v["HALF"] == 256 and type(v["HALF"]) is int
    assert type(v["THIRD"]) is float and v["THIRD"] == pytest.approx(512 / 3)
    assert v["F"] == 3.5 and type(v["F"]) is float
    assert v["G"] == 2.0 and type(v["G"]) is float


def test_exact_division_can_size_a_layer(tmp_path):
    text = substitute(BASE, "dense(x, H,", "dense(x, H / 2,")
    program = check_text(text, base_dir=tmp_path)
    fc1 = next(l for l in program.net.layers if l.name == "fc1")
    assert fc1.out.shape == (32,)


@pytest.mark.parametrize("literal, value", [
    ("64", 64), ("0.001", 0.001), ("1e-4", 1e-4), ("1E3", 1000.0), ("2.5e+2", 250.0),
    (".5", 0.5), ("5.", 5.0), ("007", 7),
])
def test_number_literals(literal, value):
    num = only(parse_program(f"const A = {literal}"), ast.ConstDecl).value
    assert num == ast.Num(value) and type(num.value) is type(value)


def test_consts_use_earlier_consts(tmp_path):
    v = const_values("const A = 3\nconst B = A * 2 + 1\nconst C = (B - A) / 2", tmp_path)
    assert (v["A"], v["B"], v["C"]) == (3, 7, 2)
    assert v["H"] == 64


def test_const_used_before_its_definition_is_undefined(tmp_path):
    with pytest.raises(SingaError) as info:
        check_text("const A = B + 1\nconst B = 2\n" + BASE, base_dir=tmp_path)
    [err] = info.value.errors
    assert err.message == "undefined name 'B'"
    assert (err.span.line, err.span.column) == (1, 11)


# ---- strings ----------------------------------------------------------------------------
@pytest.mark.parametrize("source, value", [
    (r'"plain"', "plain"),
    (r'"a \"quoted\" word"', 'a "quoted" word'),
    (r'"back\\slash"', "back\\slash"),
    (r'"line\nbreak"', "line\nbreak"),
    (r'"tab\there"', "tab\there"),
    (r'"\\n is not a newline"', "\\n is not a newline"),
    (r'""', ""),
    ('"ünïcødé ✓"', "ünïcødé ✓"),
])
def test_string_escapes(source, value):
    s = only(parse_program(f"job j {{ workspace: {source} }}"), ast.Block).entries[0].value
    assert s == ast.Str(value)


def test_string_value_reaches_the_checked_job(tmp_path):
    text = substitute(BASE, 'workspace: "runs/demo"', r'workspace: "runs/\"q\"\tx"')
    assert check_text(text, base_dir=tmp_path).job.workspace == 'runs/"q"\tx'


def test_a_string_cannot_span_lines():
    with pytest.raises(SingaError):
        parse_program('job j { workspace: "a\nb" }')


# ---- positions --------------------------------------------------------------------------
def test_spans_of_blocks_and_entries():
    program = parse_program(BASE, "demo.singa")
    job = program.blocks("job")[0]
    assert (job.name_span.line, job.name_span.column) == (3, 5)
    steps = job.entries[0]
    assert (steps.key_span.line, steps.key_span.column, steps.key_span.end_column) == (4, 3, 8)
    assert (steps.span.line, steps.span.column, steps.span.end_column) == (4, 3, 13)
    net = program.nets[0]
    loss = net.layers[-1]
    assert (loss.name_span.line, loss.name_span.column) == (19, 3)
    assert (loss.value.func_span.line, loss.value.func_span.column) == (19, 10)
    assert all(s.file == "demo.singa" for s in (job.span, steps.span, loss.span))


def test_public_parse_reports_the_file_name(tmp_path):
    with pytest.raises(SingaError) as info:
        singa_dsl.parse("job j { steps 1 }", filename="x/y.singa", base_dir=tmp_path)
    assert info.value.render().startswith("x/y.singa:1:15: error: ")
