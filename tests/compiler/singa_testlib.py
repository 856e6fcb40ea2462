"""Shared helpers of the compiler tests: the example programs, a small valid base program
that the golden-error tests change one thing at a time, and a corpus for char_rnn.

Imported by the test modules of this folder (pytest puts the folder on sys.path)."""
from __future__ import annotations

import pathlib

import singa_dsl
from singa_dsl import SingaError

REPO = pathlib.Path(__file__).resolve().parents[2]
SHARED_EXAMPLES = REPO.parent / "shared" / "examples"
SAMPLES = REPO / "samples"


def example_paths(prefer_samples: bool = False) -> list[pathlib.Path]:
    """The example programs: /work/shared/examples (the programs that must check), or the
    repository's samples/ when asked or when the shared folder is absent."""
    dirs = [SAMPLES, SHARED_EXAMPLES] if prefer_samples else [SHARED_EXAMPLES, SAMPLES]
    for d in dirs:
        found = sorted(d.glob("*.singa")) if d.is_dir() else []
        if found:
            return found
    return []


# A corpus for text(): every window of 50 characters fits many times.
CORPUS = ("the quick brown fox jumps over the lazy dog. " * 8 + "\n"
          "SINGA trains deep nets on a cluster; char-rnn reads text one character at a time.\n") * 4


def write_corpus(folder: pathlib.Path, name: str = "corpus.txt") -> pathlib.Path:
    p = pathlib.Path(folder) / name
    p.write_text(CORPUS, encoding="utf-8")
    return p


def check_text(text: str, filename: str = "demo.singa", base_dir=None):
    return singa_dsl.parse(text, filename=filename, base_dir=base_dir)


def rendered_error(text: str, base_dir, filename: str = "demo.singa") -> str:
    """The full rendered report of a program that must fail."""
    try:
        singa_dsl.parse(text, filename=filename, base_dir=base_dir)
    except SingaError as e:
        return e.render()
    raise AssertionError("the program checked cleanly, but an error was expected:\n" + text)


def substitute(base: str, *pairs: str) -> str:
    """Replace each OLD by NEW (pairs OLD, NEW, ...); every OLD must occur exactly once, so a
    test changes exactly what it says it changes."""
    assert len(pairs) % 2 == 0
    text = base
    for old, new in zip(pairs[::2], pairs[1::2]):
        n = text.count(old)
        assert n == 1, f"{old!r} occurs {n} times in the base program"
        text = text.replace(old, new)
    return text


# The valid program the golden tests start from.  Line numbers matter: the golden texts
# point into it.
BASE = '''\
const H = 64

job demo {
  steps: 100
  test: every(50, batches: 2)
  workspace: "runs/demo"
}

data mnist {
  train: digits(split: "train", batch: 32)
  test:  digits(split: "test", batch: 32)
}

net mlp {
  x    = input(mnist.image)
  fc1  = dense(x, H, w: uniform(-0.1, 0.1))
  h1   = relu(fc1)
  fc2  = dense(h1, 10)
  loss = softmax_loss(fc2, mnist.label, topk: 1)
}

algorithm bp

updater sgd {
  lr: step(0.01, every: 60, gamma: 0.9)
  momentum: 0.9
}

cluster {
  workers_per_group: 1
}
'''

# A recurrent base (SINGA's char-rnn, smaller): needs corpus.txt in its folder.
RNN_BASE = '''\
const H = 32

job char_rnn {
  steps: 10
}

data corpus {
  train: text("corpus.txt", seq: 10, batch: 4)
}

net char_rnn {
  unroll: 10
  x    = input(corpus.chars)
  e    = onehot(x, corpus.vocab)
  h    = gru(e, H)
  y    = dense(h, corpus.vocab)
  loss = softmax_loss(y, corpus.next)
}

algorithm bptt

updater rmsprop {
  lr: 0.002
}
'''
