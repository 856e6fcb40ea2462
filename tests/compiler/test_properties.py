"""Properties of the front end, with hypothesis.

(a) mutation: every example program, mutated at the token level (delete, duplicate, swap,
    bad numbers, near-miss names, deep nesting, stray punctuation, keywords as names), either
    checks cleanly or raises SingaError whose every error is located in the file and renders;
    never another exception, never a hang.
(b) 10,000-level nesting is a located SingaError, not a RecursionError.
(c) round trip: generated ASTs → format_program → parse_program give back the AST, and
    formatting is idempotent.
(d) every example's to_source() parses and checks to the same summary."""
from __future__ import annotations

import dataclasses
import math
import pathlib
import re
import signal
from contextlib import contextmanager
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, event, given, settings, strategies as st
from hypothesis.control import currently_in_test_context

import singa_dsl
from singa_dsl import SingaError
from singa_dsl.compiler import ast
from singa_dsl.compiler.format import format_program
from singa_dsl.compiler.parser import parse_program

from singa_testlib import SHARED_EXAMPLES, example_paths, write_corpus

MUTATION_PROGRAMS = example_paths(prefer_samples=True)
CHECK_PROGRAMS = example_paths()
HANG_LIMIT_S = 20        # one program taking this long to check is a hang
MISSING_BLOCK = re.compile(r"^the program has no (job|net|algorithm|updater) block$")


# ---- helpers --------------------------------------------------------------------------------
def note(what: str):
    """Count outcomes in hypothesis' statistics (pytest --hypothesis-show-statistics)."""
    if currently_in_test_context():
        event(what)


class Hang(Exception):
    pass


@contextmanager
def time_limit(seconds: float):
    """Fail (instead of waiting forever) when the body runs longer than ``seconds``."""
    def on_alarm(signum, frame):
        raise Hang(f"still running after {seconds} s")
    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def assert_well_behaved(text: str, filename: str, base_dir) -> str:
    """Check ``text``; return "ok" or "error".  Anything but a clean check or a located,
    renderable SingaError fails the test."""
    try:
        with time_limit(HANG_LIMIT_S):
            program = singa_dsl.parse(text, filename=filename, base_dir=base_dir)
    except SingaError as e:
        assert_located(e, text, filename)
        note(f"error: {type(getattr(e, 'errors', [e])[0]).__name__}")
        return "error"
    summary = program.summary()
    assert summary.startswith("net ")
    for w in program.warnings:
        assert w.render()
    # a program that checks prints back to an equal AST
    assert parse_program(program.to_source(), filename) == program.ast
    note("checked cleanly")
    return "ok"


def assert_located(e: SingaError, text: str, filename: str):
    errors = getattr(e, "errors", [e])
    assert errors, "a SingaError group without errors"
    n_lines = max(1, len(text.splitlines()))
    for err in errors:
        assert isinstance(err, SingaError)
        span = err.span
        assert span is not None, f"error without a location: {err.message}"
        assert span.file == filename, (span, err.message)
        assert 1 <= span.line <= n_lines, (span, err.message)
        assert span.column >= 1, (span, err.message)
        assert (span.end_line, span.end_column) >= (span.line, span.column), (span, err.message)
        if MISSING_BLOCK.match(err.message):
            assert (span.line, span.column) == (1, 1)
        rendered = err.render()
        head = f"{filename}:{span.line}:{span.column}: error: {err.message}"
        assert rendered.startswith(head), rendered
        lines = rendered.split("\n")
        # the source line and a caret line follow the head
        assert len(lines) >= 3 and set(lines[2].strip()) == {"^"}, rendered
    whole = e.render()
    n = len(errors)
    assert whole.endswith(f"{n} error{'s' if n != 1 else ''} found")


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("corpus")
    write_corpus(d)
    return d


_BASE_DIRS: dict[pathlib.Path, pathlib.Path] = {}


def base_dir_for(path: pathlib.Path, corpus_dir: pathlib.Path) -> pathlib.Path:
    """A folder against which the unmutated program checks cleanly (its own, the corpus
    folder for char_rnn, or the shared examples for data paths that only resolve there)."""
    if path not in _BASE_DIRS:
        text = path.read_text()
        chosen = path.parent
        for d in (path.parent, corpus_dir, SHARED_EXAMPLES):
            try:
                singa_dsl.parse(text, filename=path.name, base_dir=d)
            except SingaError:
                continue
            chosen = d
            break
        _BASE_DIRS[path] = chosen
    return _BASE_DIRS[path]


# ---- (a) token-level mutation --------------------------------------------------------------
TOKEN = re.compile(r'''
    (?P<ws>\s+) | (?P<comment>\#[^\n]*) | (?P<str>"(?:[^"\\\n]|\\.)*")
  | (?P<num>(?:\d+\.\d*|\.\d+)(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+|\d+)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*) | (?P<other>.)''', re.X | re.S)

BAD_NUMBERS = ["0", "-1", "1e99", "3.5", "-0.5", "1e-99", "99999999999", "2147483648",
               "0.0", "1e308", "-99999999999", "7", "1e999", "-1e999", "4294967296",
               "1" + "0" * 400]
PUNCT = list("{}()[]:=,.@-+*/;\"#") + ["\n", "()", "[]", "{}", "@@"]
KEYWORDS_AND_WORDS = ["net", "job", "data", "const", "algorithm", "updater", "cluster", "true",
                      "false", "input", "dense", "param", "share", "every", "batch", "feature"]
NESTING = [10, 150, 199, 200, 201, 1000]


def tokenize(text: str) -> list[tuple[str, str]]:
    return [(m.lastgroup, m.group()) for m in TOKEN.finditer(text)]


def near_miss(name: str, k: int) -> str:
    """A name one small slip away: a letter dropped, doubled, swapped or changed, or case."""
    if len(name) < 2:
        return name + "x"
    i = k % len(name)
    kind = (k // len(name)) % 5
    if kind == 0:
        return name[:i] + name[i + 1:] or "x"
    if kind == 1:
        return name[:i] + name[i] + name[i:]
    if kind == 2:
        j = min(i + 1, len(name) - 1)
        chars = list(name)
        chars[i], chars[j] = chars[j], chars[i]
        return "".join(chars)
    if kind == 3:
        return name[:i] + ("z" if name[i] != "z" else "q") + name[i + 1:]
    return name.upper() if name.islower() else name.lower()


def mutate(tokens: list[tuple[str, str]], kind: str, a: int, b: int) -> list[tuple[str, str]]:
    tokens = list(tokens)
    solid = [i for i, (k, _) in enumerate(tokens) if k not in ("ws", "comment")]
    if not solid:
        return tokens
    i = solid[a % len(solid)]
    if kind == "delete":
        del tokens[i]
    elif kind == "duplicate":
        tokens.insert(i, tokens[i])
    elif kind == "swap":
        j = solid[(solid.index(i) + 1) % len(solid)]
        tokens[i], tokens[j] = tokens[j], tokens[i]
    elif kind == "bad_number":
        nums = [n for n, (k, _) in enumerate(tokens) if k == "num"]
        if nums:
            tokens[nums[a % len(nums)]] = ("num", BAD_NUMBERS[b % len(BAD_NUMBERS)])
    elif kind == "near_miss":
        names = [n for n, (k, _) in enumerate(tokens) if k == "name"]
        if names:
            n = names[a % len(names)]
            tokens[n] = ("name", near_miss(tokens[n][1], b))
    elif kind == "keyword":
        names = [n for n, (k, _) in enumerate(tokens) if k == "name"]
        if names:
            tokens[names[a % len(names)]] = ("name", KEYWORDS_AND_WORDS[b % len(KEYWORDS_AND_WORDS)])
    elif kind == "nest":
        values = [n for n, (k, _) in enumerate(tokens) if k in ("num", "name", "str")]
        if values:
            n = values[a % len(values)]
            depth = NESTING[b % len(NESTING)]
            opener, closer = [("(", ")"), ("[", "]"), ("-", ""), ("f(", ")")][(b // 7) % 4]
            tokens[n] = ("other", opener * depth + tokens[n][1] + closer * depth)
    elif kind == "punct":
        tokens.insert(i, ("other", PUNCT[b % len(PUNCT)]))
    elif kind == "truncate":
        del tokens[i:]
    return tokens


# Weighted towards the mutations that keep the syntax and reach the checker.
ONE_MUTATION = st.tuples(
    st.sampled_from(["bad_number"] * 4 + ["near_miss"] * 4 + ["nest"] * 2 + ["keyword"] * 2
                    + ["delete", "duplicate", "swap", "punct", "truncate"]),
    st.integers(0, 1 << 16), st.integers(0, 1 << 16))
MUTATIONS = st.lists(ONE_MUTATION, min_size=1, max_size=3)


def run_mutations(path: pathlib.Path, corpus_dir: pathlib.Path, mutations) -> str:
    tokens = tokenize(path.read_text())
    for kind, a, b in mutations:
        tokens = mutate(tokens, kind, a, b)
    text = "".join(t for _, t in tokens)
    return assert_well_behaved(text, path.name, base_dir_for(path, corpus_dir))


def test_tokenizer_round_trips_every_example():
    assert MUTATION_PROGRAMS
    for path in MUTATION_PROGRAMS:
        text = path.read_text()
        tokens = tokenize(text)
        assert "".join(t for _, t in tokens) == text
        assert {k for k, _ in tokens} >= {"ws", "num", "name", "other"}


def test_mutations_change_the_program():
    tokens = tokenize("job j { steps: 10 }")
    assert "".join(t for _, t in mutate(tokens, "delete", 0, 0)) == " j { steps: 10 }"
    assert "".join(t for _, t in mutate(tokens, "bad_number", 0, 2)) == "job j { steps: 1e99 }"
    nested = "".join(t for _, t in mutate(tokens, "nest", 3, 0))
    assert nested == "job j { steps: " + "(" * 10 + "10" + ")" * 10 + " }"
    assert near_miss("dense", 0) == "ense" and near_miss("dense", 6) == "deense"


def test_unmutated_examples_check_cleanly(corpus_dir):
    for path in MUTATION_PROGRAMS:
        text = path.read_text()
        assert assert_well_behaved(text, path.name, base_dir_for(path, corpus_dir)) == "ok", path


@pytest.mark.parametrize("path", MUTATION_PROGRAMS, ids=lambda p: p.stem)
@settings(max_examples=220, deadline=timedelta(seconds=10), derandomize=False,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                 HealthCheck.data_too_large])
@given(mutations=MUTATIONS)
def test_mutated_examples_check_or_fail_with_located_errors(path, corpus_dir, mutations):
    run_mutations(path, corpus_dir, mutations)


@pytest.mark.slow
@pytest.mark.parametrize("path", MUTATION_PROGRAMS, ids=lambda p: p.stem)
# 840 programs from each of the 12 examples: the 10,000 mutated programs of issue 8
@settings(max_examples=840, deadline=timedelta(seconds=20),
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                 HealthCheck.data_too_large])
@given(mutations=st.lists(ONE_MUTATION, min_size=1, max_size=6))
def test_mutated_examples_many(path, corpus_dir, mutations):
    run_mutations(path, corpus_dir, mutations)


# ---- (b) very deep nesting ----------------------------------------------------------------
N = 10_000
DEEP = {
    "parens": "const A = " + "(" * N + "1" + ")" * N,
    "sum": "const A = " + " + ".join(["1"] * N),
    "negation": "const A = " + "-" * N + "1",
    "lists": "const A = " + "[" * N + "]" * N,
    "layer_calls": "net n {\n  y = " + "relu(" * N + "x" + ")" * N + "\n}",
}


@pytest.mark.parametrize("name", list(DEEP))
def test_ten_thousand_levels_is_a_singa_error(name, tmp_path):
    text = DEEP[name]
    with time_limit(HANG_LIMIT_S):
        with pytest.raises(SingaError) as info:
            singa_dsl.parse(text, filename="deep.singa", base_dir=tmp_path)
    [err] = info.value.errors
    assert err.message == "expression nested more than 200 levels deep"
    assert err.span.line == (1 if name != "layer_calls" else 2) and err.span.column >= 1
    assert info.value.render().endswith("1 error found")


def test_two_hundred_levels_still_check(tmp_path):
    """The limit is a limit, not a crash: 199 levels inside a layer check, and print back."""
    write_corpus(tmp_path)
    from singa_testlib import BASE, substitute
    text = substitute(BASE, "h1   = relu(fc1)", "h1   = " + "relu(" * 198 + "fc1" + ")" * 198,
                      "const H = 64", "const H = " + "(" * 150 + "64" + ")" * 150)
    program = singa_dsl.parse(text, filename="demo.singa", base_dir=tmp_path)
    assert sum(1 for l in program.net.layers if l.op == "relu") == 198
    assert parse_program(program.to_source()) == program.ast


# ---- (c) AST → text → AST -------------------------------------------------------------------
KEYWORDS = {"const", "job", "data", "net", "algorithm", "updater", "cluster", "true", "false"}
names = st.one_of(
    st.sampled_from(["x", "fc1", "mnist", "image", "w", "lr", "H", "_", "true_x", "netty",
                     "jobs", "dataset", "constant", "a1"]),
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,7}", fullmatch=True),
).filter(lambda s: s not in KEYWORDS)

numbers = st.one_of(
    st.integers(0, 10 ** 15),
    st.floats(min_value=0.0, allow_nan=False, allow_infinity=False)
    .filter(lambda f: math.copysign(1.0, f) > 0),
)
strings = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12) | st.lists(
    st.sampled_from(list('ab"\\\n\t\r #{}:') + ["\\n", "\\\"", "é", "\\\\"]), max_size=8
).map("".join)
refs = st.lists(names, min_size=1, max_size=3).map(lambda p: ast.Ref(tuple(p)))
leaves = st.one_of(numbers.map(ast.Num), strings.map(ast.Str), st.booleans().map(ast.Bool), refs)


def kwargs_of(children):
    return st.lists(st.builds(ast.Kwarg, names, children), max_size=3).map(tuple)


def compound(children):
    return st.one_of(
        st.builds(ast.BinOp, st.sampled_from("+-*/"), children, children),
        st.builds(ast.Neg, children),
        st.lists(children, max_size=3).map(lambda items: ast.ListExpr(tuple(items))),
        st.lists(st.builds(ast.Kwarg, names, children), min_size=1, max_size=3)
        .map(lambda fields: ast.Record(tuple(fields))),
        st.builds(ast.Call, names, st.lists(children, max_size=3).map(tuple), kwargs_of(children)),
    )


exprs = st.recursive(leaves, compound, max_leaves=8)
entries = st.lists(st.builds(ast.Entry, names, exprs), max_size=3).map(tuple)
annotations = st.lists(names.map(ast.Annotation), max_size=2).map(tuple)
layers = st.builds(ast.Layer, names, exprs, annotations)
net_items = st.lists(st.one_of(layers, st.builds(ast.Entry, names, exprs)), max_size=4).map(tuple)


@st.composite
def algorithm_blocks(draw):
    name = draw(names)
    if draw(st.booleans()):
        return ast.Block("algorithm", name, (), False)
    return ast.Block("algorithm", name, draw(entries), True)


declarations = st.one_of(
    st.builds(ast.ConstDecl, names, exprs),
    st.builds(ast.Block, st.sampled_from(["job", "data", "updater"]), names, entries, st.just(True)),
    st.builds(ast.Block, st.just("cluster"), st.none(), entries, st.just(True)),
    algorithm_blocks(),
    st.builds(ast.NetDecl, names, net_items),
)
programs = st.lists(declarations, max_size=5).map(lambda items: ast.Program(tuple(items)))


def strict(node):
    """The compared content of an AST with the Python type of every literal, so that 1 and
    1.0 (equal as dataclass fields) are told apart."""
    if dataclasses.is_dataclass(node):
        out = [type(node).__name__]
        for f in dataclasses.fields(node):
            if f.compare:
                out.append(strict(getattr(node, f.name)))
        return tuple(out)
    if isinstance(node, tuple):
        return tuple(strict(n) for n in node)
    return (type(node).__name__, node)


@settings(max_examples=250, deadline=timedelta(seconds=5),
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(program=programs)
def test_format_then_parse_gives_the_same_ast(program):
    text = format_program(program)
    again = parse_program(text)
    assert again == program, text
    assert strict(again) == strict(program), text
    assert format_program(again) == text       # idempotent


@settings(max_examples=200, deadline=timedelta(seconds=5))
@given(expr=exprs)
def test_expression_round_trip(expr):
    program = ast.Program((ast.ConstDecl("A", expr),))
    text = format_program(program)
    assert strict(parse_program(text)) == strict(program), text


def test_strict_comparison_tells_int_from_float():
    assert ast.Num(1) == ast.Num(1.0)
    assert strict(ast.Num(1)) != strict(ast.Num(1.0))


def test_an_overflowing_literal_prints_back_as_one():
    # 1e999 reads as inf; printing it as "inf" would read back as a name
    program = parse_program("const A = 1e999")
    assert program.items[0].value == ast.Num(math.inf)
    assert parse_program(format_program(program)) == program


def test_round_trip_keeps_precedence():
    # (1 - 2) - 3 and 1 - (2 - 3) differ; so do (1 + 2) * 3 and 1 + 2 * 3
    one, two, three = ast.Num(1), ast.Num(2), ast.Num(3)
    for e in (ast.BinOp("-", ast.BinOp("-", one, two), three),
              ast.BinOp("-", one, ast.BinOp("-", two, three)),
              ast.BinOp("*", ast.BinOp("+", one, two), three),
              ast.BinOp("/", one, ast.BinOp("*", two, three)),
              ast.Neg(ast.BinOp("+", one, two))):
        program = ast.Program((ast.ConstDecl("A", e),))
        assert parse_program(format_program(program)) == program


# ---- (d) examples print back to themselves ----------------------------------------------------
@pytest.mark.parametrize("path", CHECK_PROGRAMS, ids=lambda p: p.stem)
def test_example_to_source_checks_to_the_same_summary(path, corpus_dir):
    base = base_dir_for(path, corpus_dir)
    program = singa_dsl.parse(path.read_text(), filename=path.name, base_dir=base)
    source = program.to_source()
    again = singa_dsl.parse(source, filename=path.name, base_dir=base)
    assert again.summary() == program.summary()
    assert again.param_count == program.param_count
    assert again.ast == program.ast
    assert again.to_source() == source
