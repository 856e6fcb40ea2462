"""BPTT on OpenCL (float32) against the numpy float64 reference chained over the unrolled
steps (algo_ref.bptt_reference; the reference cells themselves are checked against finite
differences in tests/ops/test_reference.py), and the plan's shape."""
from __future__ import annotations

import contextlib
import json
import pathlib

import numpy as np
import pytest

import singa_dsl
from singa_dsl.run import compile_plan
from singa_dsl.runtime.trainer import Trainer

from algo_ref import bptt_reference

ROOT = pathlib.Path(__file__).resolve().parents[2]

NET = """
job b {{ steps: {steps}  seed: 5  workspace: "{ws}"  display: every(2)  checkpoint: every(4) }}
data d {{ train: text("{corpus}", seq: {T}, batch: {B}){test} }}
net n {{
  unroll: {T}
  x    = input(d.chars)
  {body}
  y    = dense({top}, d.vocab, w: uniform(-0.5, 0.5), b: uniform(-0.2, 0.2))
  loss = softmax_loss(y, d.next)
}}
algorithm bptt {{ carry_state: {carry} }}
updater sgd {{ lr: 0.1 }}
"""

W = "w: uniform(-0.6, 0.6), b: uniform(-0.3, 0.3)"
BODIES = {
    "gru": (f"e = onehot(x, d.vocab)\n  h = gru(e, 6, {W})", "h"),
    "lstm": (f"e = embedding(x, d.vocab, 5)\n  h = lstm(e, 6, {W})", "h"),
    "rnn_tanh": (f"e = embedding(x, d.vocab, 5)\n  h = rnn(e, 6, {W})", "h"),
    "rnn_relu": (f'e = onehot(x, d.vocab)\n  h = rnn(e, 6, act: "relu", {W})', "h"),
    # stacked recurrent layers with dropout between them
    "stacked": (f"e = embedding(x, d.vocab, 4)\n  h1 = lstm(e, 5, {W})\n"
                f"  dr = dropout(h1, rate: 0.3)\n  h = gru(dr, 6, {W})", "h"),
    # wider than one float8 of the gru kernels, with a tail (20 = 8 + 8 + 4)
    "gru_wide": (f"e = onehot(x, d.vocab)\n  h = gru(e, 20, w: uniform(-0.3, 0.3), "
                 f"b: uniform(-0.3, 0.3))", "h"),
}


def _corpus(tmp_path) -> pathlib.Path:
    rng = np.random.default_rng(0)
    path = tmp_path / "corpus.txt"
    path.write_text("".join(rng.choice(list("abcdefg \n"), 2000)))
    return path


def _program(tmp_path, body="gru", T=5, B=4, carry=False, steps=3, test_batch=None):
    layers, top = BODIES[body]
    corpus = _corpus(tmp_path)
    test = f'\n  test: text("{corpus}", seq: {T}, batch: {test_batch})' if test_batch else ""
    text = NET.format(steps=steps, ws=tmp_path / "ws", corpus=corpus, T=T, B=B, test=test,
                      body=layers, top=top, carry=str(carry).lower())
    return singa_dsl.parse(text, "bptt.singa")


def _ref_params(plan, ex) -> dict:
    out: dict = {}
    for p in plan.params:
        layer, slot = p.store_name.rsplit(".", 1)
        out.setdefault(layer, {})[slot] = ex.read(p.buffer, p.shape).astype(np.float64)
    return out


def _feed(trainer, phase, batch):
    for feed in phase.feeds:
        trainer.executor.write(feed.buffer, batch[feed.field.split(".")[1]])


def _masks(ex, program, T, B=4):
    """The dropout masks the device drew (the reference multiplies by the same ones): one
    [B·T, size] buffer per layer, row b·T + t for step t of sequence b."""
    out = {}
    for l in program.net.layers:
        if l.op == "dropout":
            mask = ex.read(f"train:mask:{l.name}")[:B * T * l.out.size].reshape(B, T, -1)
            out.update({(t, l.name): mask[:, t] for t in range(T)})
    return out


def _compare(plan, ex, grads, what):
    for p in plan.params:
        np.testing.assert_allclose(ex.read(p.grad, p.shape), grads[p.store_name], rtol=2e-3,
                                   atol=2e-5, err_msg=f"{what}: gradient of {p.store_name}")


@contextlib.contextmanager
def _started(program, run_init=True):
    """The program's Trainer with its params initialised (and its init list run), readers
    closed afterwards: (trainer, plan)."""
    plan = compile_plan(program)
    trainer = Trainer(plan, quiet=True)
    try:
        trainer.init_params()
        if run_init:
            trainer.run_init()
        yield trainer, plan
    finally:
        for r in trainer.readers.values():
            r.close()


@pytest.mark.parametrize("body", sorted(BODIES))
def test_bptt_gradients_match_reference(tmp_path, body):
    T = 5
    program = _program(tmp_path, body, T=T)
    with _started(program) as (trainer, plan):
        ex, train = trainer.executor, plan.phase("train")
        batch = trainer.readers["train"].next_batch()
        _feed(trainer, train, batch)
        if "rng:step" in ex.buffer_names:
            ex.write("rng:step", np.array([4], np.int32))
        ex.run("train")
        got, _ = trainer._read_losses(train)
        fields = {f"d.{k}": v for k, v in batch.items()}
        loss, grads, _ = bptt_reference(program.net, _ref_params(plan, ex), fields, T,
                                        masks=_masks(ex, program, T))
        assert got == pytest.approx(loss, rel=1e-4)
        _compare(plan, ex, grads, body)


@pytest.mark.parametrize("body", ["gru", "lstm", "rnn_tanh", "gru_wide"])
def test_carry_state_continues_the_streams(tmp_path, body):
    """With carry_state, batch 2's step 0 starts from batch 1's last state (the reference
    is given that state; the W_hh gradients then include step 0's)."""
    T = 4
    program = _program(tmp_path, body, T=T, carry=True)
    with _started(program) as (trainer, plan):
        ex, train = trainer.executor, plan.phase("train")
        params = _ref_params(plan, ex)
        state = None
        for k in range(2):
            batch = trainer.readers["train"].next_batch()
            _feed(trainer, train, batch)
            ex.run("train")
            fields = {f"d.{k}": v for k, v in batch.items()}
            loss, grads, state = bptt_reference(program.net, params, fields, T, state=state)
            assert trainer._read_losses(train)[0] == pytest.approx(loss, rel=1e-4)
            _compare(plan, ex, grads, f"{body} batch {k}")
        hidden = program.net.layer("h").attrs["hidden"]
        np.testing.assert_allclose(ex.read("train:carry:h")[:4 * hidden].reshape(4, hidden),
                                   state["h"]["h"], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("body", ["stacked", "gru_wide"])
def test_evaluation_continues_its_own_streams(tmp_path, body):
    """An evaluation phase (its own batch size, dropout off) starts from zeros and carries
    its state from one test batch to the next: its losses are the reference's forward."""
    T = 4
    program = _program(tmp_path, body, T=T, carry=True, test_batch=3)
    with _started(program) as (trainer, plan):
        ex, test = trainer.executor, plan.phase("test")
        train_batch = trainer.readers["train"].next_batch()   # moves the train state off zero
        _feed(trainer, plan.phase("train"), train_batch)
        ex.run("train")
        params = _ref_params(plan, ex)
        ones = {(t, l.name): 1.0 for l in program.net.layers if l.op == "dropout"
                for t in range(T)}
        ex.run("reset:test")
        state = None
        for k in range(2):
            batch = trainer.readers["test"].next_batch()
            _feed(trainer, test, batch)
            ex.run("test")
            fields = {f"d.{k}": v for k, v in batch.items()}
            loss, _, state = bptt_reference(program.net, params, fields, T, masks=ones,
                                            state=state)
            assert trainer._read_losses(test)[0] == pytest.approx(loss, rel=1e-4), k


def test_euclidean_loss_over_steps(tmp_path):
    """A loss other than softmax_loss (whose kernel divides by the rows it is given, and
    has no scale) still has each step's batch-mean gradient: float sequences from an npz."""
    T, B = 4, 4
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "seq.npz", x=rng.standard_normal((16, T, 3)).astype(np.float32),
             y=rng.integers(0, 3, (16, T)).astype(np.int32))
    text = f"""
job e {{ steps: 3  seed: 5  workspace: "{tmp_path / 'ws'}" }}
data d {{ train: npz("{tmp_path / 'seq.npz'}", batch: {B}) }}
net n {{
  unroll: {T}
  x    = input(d.image)
  h    = rnn(x, 5, {W})
  p    = dense(h, 3, w: uniform(-0.5, 0.5))
  loss = euclidean_loss(p, d.image)
}}
algorithm bptt
updater sgd {{ lr: 0.1 }}
"""
    program = singa_dsl.parse(text, "euclid.singa")
    with _started(program, run_init=False) as (trainer, plan):
        ex, train = trainer.executor, plan.phase("train")
        batch = trainer.readers["train"].next_batch()
        _feed(trainer, train, batch)
        ex.run("train")
        fields = {f"d.{k}": v for k, v in batch.items()}
        loss, grads, _ = bptt_reference(program.net, _ref_params(plan, ex), fields, T)
        assert trainer._read_losses(train)[0] == pytest.approx(loss, rel=1e-4)
        _compare(plan, ex, grads, "euclidean")


def test_plan_runs_each_layer_once_over_all_steps(tmp_path):
    """Layers without state run once over the B·T rows of all steps (fields read as
    uploaded, one buffer per layer); each recurrent layer loops over the steps inside; the
    params are the net's, each updated once."""
    T, B = 3, 4
    program = _program(tmp_path, "stacked", T=T, B=B)
    plan = compile_plan(program)
    assert sorted(p.store_name for p in plan.params) == sorted(p.key for p in program.net.params)
    assert {u.param for u in plan.updates} == {p.key for p in plan.params}
    sizes = {d.name: d.nbytes for d in plan.kernels.buffers}
    assert sizes["train:act:y"] == 4 * B * T * program.net.layer("y").out.size
    assert sizes["train:mask:dr"] == 4 * B * T * 5
    assert not any("#" in name for name in sizes)                 # no per-step copies
    train = dict(plan.kernels.launch_lists)["train"]
    per_tag = {}
    for launch in train:
        per_tag.setdefault(launch.tag, []).append(launch.kernel)
    assert per_tag["e"] == ["embedding_fwd", "embedding_bwd"] and per_tag["dr"] == ["dropout_fwd", "dropout_bwd"]
    assert per_tag["h1"].count("lstm_fwd") == T and per_tag["h"].count("gru_bwd") == T
    again = type(plan).from_json(json.loads(plan.dumps()))
    assert again.to_json() == plan.to_json() and again.metric["steps"] == T


def test_char_rnn_small_learns_and_samples(tmp_path):
    from singa_dsl.runtime.data.text import vocabulary
    from singa_dsl.runtime.sampler import generate
    program = singa_dsl.load(ROOT / "samples" / "char_rnn_small.singa")
    ws = tmp_path / "ws"
    records = program.run(steps=100, workspace=str(ws), quiet=True)
    train = [r for r in records if r["phase"] == "train"]
    tests = [r for r in records if r["phase"] == "test"]
    print("char_rnn_small 100 steps:", train[0]["loss"], "->", train[-1]["loss"],
          "test", tests[-1])
    assert train[0]["loss"] == pytest.approx(np.log(158), abs=0.1)
    assert train[-1]["loss"] < 0.6 * train[0]["loss"] and tests[-1]["loss"] < 3.0
    assert tests[-1]["perplexity"] == pytest.approx(np.exp(tests[-1]["loss"]))
    assert tests[-1]["metric"] == "nats_per_char"
    text = generate(program, ws, length=120, temperature=0.8, prime="import ")
    vocab = set(vocabulary(program.data["corpus"].phases["train"].args, ROOT / "samples"))
    assert len(text) == 120 and set(text) <= vocab
    assert generate(program, ws, 50, 0.8, "import ", seed=3) == \
        generate(program, ws, 50, 0.8, "import ", seed=3)


class _Crash(Exception):
    pass


def _metrics(ws):
    return [{k: r[k] for k in ("phase", "step", "loss", "accuracy", "perplexity") if k in r}
            for r in map(json.loads, (ws / "metrics.jsonl").read_text().splitlines())]


def test_resume_with_carried_state_gives_the_same_metrics(tmp_path):
    """The carried state is saved with the checkpoint, so a crashed run resumes exactly."""
    full, crashed = tmp_path / "full", tmp_path / "crashed"
    for d in (full, crashed):
        d.mkdir()
    Trainer(compile_plan(_program(full, "lstm", carry=True, steps=10)), quiet=True).run()
    t = Trainer(compile_plan(_program(crashed, "lstm", carry=True, steps=10)), quiet=True)
    real_step = t.train_step

    def crash_at_7(step):
        if step == 7:
            raise _Crash()
        return real_step(step)
    t.train_step = crash_at_7
    with pytest.raises(_Crash):
        t.run()
    Trainer(compile_plan(_program(crashed, "lstm", carry=True, steps=10)), quiet=True,
            resume=True).run()
    assert _metrics(crashed / "ws") == _metrics(full / "ws")
