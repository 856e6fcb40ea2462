"""BPTT on OpenCL (float32) against the numpy float64 reference chained over the unrolled
steps (algo_ref.bptt_reference; the reference cells themselves are checked against finite
differences in tests/ops/test_reference.py), and the unrolling pass itself."""
from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest

import singa_dsl
from singa_dsl.compiler.unroll import unroll_net
from singa_dsl.run import compile_plan
from singa_dsl.runtime.trainer import Trainer

from algo_ref import bptt_reference

ROOT = pathlib.Path(__file__).resolve().parents[2]

NET = """
job b {{ steps: {steps}  seed: 5  workspace: "{ws}"  display: every(2)  checkpoint: every(4) }}
data d {{ train: text("{corpus}", seq: {T}, batch: {B}) }}
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
}


def _corpus(tmp_path) -> pathlib.Path:
    rng = np.random.default_rng(0)
    path = tmp_path / "corpus.txt"
    path.write_text("".join(rng.choice(list("abcdefg \n"), 2000)))
    return path


def _program(tmp_path, body="gru", T=5, B=4, carry=False, steps=3):
    layers, top = BODIES[body]
    text = NET.format(steps=steps, ws=tmp_path / "ws", corpus=_corpus(tmp_path), T=T, B=B,
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
    """The dropout masks the device drew (the reference multiplies by the same ones)."""
    return {(t, l.name): ex.read(f"train:mask:{t}#{l.name}")[:B * l.out.size].reshape(B, -1)
            for l in program.net.layers if l.op == "dropout" for t in range(T)}


def _compare(plan, ex, grads, what):
    for p in plan.params:
        np.testing.assert_allclose(ex.read(p.grad, p.shape), grads[p.store_name], rtol=2e-3,
                                   atol=2e-5, err_msg=f"{what}: gradient of {p.store_name}")


@pytest.mark.parametrize("body", sorted(BODIES))
def test_bptt_gradients_match_reference(tmp_path, body):
    T = 5
    program = _program(tmp_path, body, T=T)
    plan = compile_plan(program)
    trainer = Trainer(plan, quiet=True)
    try:
        trainer.init_params()
        trainer.run_init()
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
    finally:
        for r in trainer.readers.values():
            r.close()


@pytest.mark.parametrize("body", ["gru", "lstm"])
def test_carry_state_continues_the_streams(tmp_path, body):
    """With carry_state, batch 2's step 0 starts from batch 1's last state (the reference
    is given that state; the W_hh gradients then include step 0's)."""
    T = 4
    program = _program(tmp_path, body, T=T, carry=True)
    plan = compile_plan(program)
    trainer = Trainer(plan, quiet=True)
    try:
        trainer.init_params()
        trainer.run_init()
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
        np.testing.assert_allclose(ex.read("train:carry:h")[:4 * 6].reshape(4, 6),
                                   state["h"]["h"], rtol=1e-4, atol=1e-6)
    finally:
        for r in trainer.readers.values():
            r.close()


def test_unroll_names_sources_and_shared_params(tmp_path):
    program = _program(tmp_path, "stacked", T=3)
    net = unroll_net(program.net)
    names = [l.name for l in net.layers]
    assert names[:6] == ["0#x", "0#e", "0#h1", "0#dr", "0#h", "0#y"] and len(names) == 3 * 7
    layers = {l.name: l for l in net.layers}
    assert layers["0#x"].sources == ("d.chars[0]",)
    assert layers["2#loss"].sources == ("2#y", "d.next[2]")
    assert layers["0#h"].sources == ("0#dr",)                 # step 0: no context
    assert layers["2#h"].sources == ("2#dr", "1#h")           # chained to step t-1
    assert layers["2#h1"].attrs["unroll"] == {"index": 2, "steps": 3, "of": "h1"}
    p0 = {p.key: p for p in layers["0#h"].params}
    p2 = {p.key: p for p in layers["2#h"].params}
    assert p0["0#h.z_hx"].share_of is None and p0["0#h.z_hx"].store_name == "h.z_hx"
    assert p2["2#h.z_hx"].share_of == "0#h.z_hx" and p2["2#h.z_hx"].init is None
    assert unroll_net(program.net) == net                     # deterministic
    plan = compile_plan(program)
    assert sorted(p.store_name for p in plan.params) == sorted(p.key for p in program.net.params)
    assert {u.param for u in plan.updates} == {p.key for p in plan.params}
    again = type(plan).from_json(json.loads(plan.dumps()))
    assert again.to_json() == plan.to_json() and again.metric["steps"] == 3


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
