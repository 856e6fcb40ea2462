"""`singac fmt` keeps comments: every comment of every sample survives formatting, in order,
the result parses to the same program and formatting it again changes nothing."""
from __future__ import annotations

import pathlib

import pytest

from singa_dsl.compiler.format import _scan, format_program
from singa_dsl.compiler.parser import parse_program

ROOT = pathlib.Path(__file__).resolve().parents[2]
SAMPLES = sorted((ROOT / "samples").glob("*.singa"))

TRICKY = '''# head comment
const H = 64   # hidden units

# the job
job j { steps: 5  # five
  seed: 4 }    # closing
data d {  # data block
  # the train set
  train: digits(split: "train#x", batch: 12)
  # after the last entry
}
net n {
  x = input(d.image)
  fc = dense(x, H,   # inside a call
     w: gaussian(0, 0.1))
  loss = softmax_loss(fc, d.label)
}
algorithm bp  # bare
# end of file
'''

EXPECTED = '''# head comment
const H = 64  # hidden units

# the job
job j {
  steps: 5  # five
  seed: 4  # closing
}

data d {  # data block
  # the train set
  train: digits(split: "train#x", batch: 12)
  # after the last entry
}

net n {
  x = input(d.image)
  fc = dense(x, H, w: gaussian(0, 0.1))  # inside a call
  loss = softmax_loss(fc, d.label)
}

algorithm bp  # bare

# end of file
'''


def _comments(text):
    return [c[2] for c in _scan(text)]


def test_comments_keep_their_places():
    out = format_program(parse_program(TRICKY, "t.singa"), TRICKY)
    assert out == EXPECTED
    assert format_program(parse_program(out, "t.singa"), out) == out


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_samples_keep_every_comment(path):
    text = path.read_text()
    program = parse_program(text, str(path))
    out = format_program(program, text)
    assert _comments(out) == _comments(text)          # all of them, in order
    assert parse_program(out, str(path)) == program
    assert format_program(parse_program(out, str(path)), out) == out


def test_a_hash_inside_a_string_is_not_a_comment():
    assert _comments('data d { train: csv(file: "a#b.csv")  # real\n}\n') == ["# real"]
    assert _comments('x = "q\\\\"  # after an escaped backslash\n') == [
        "# after an escaped backslash"]
