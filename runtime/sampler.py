"""``singac sample``: text from a trained character model (SINGA's char-rnn sample.conf,
which feeds each step's choice back as the next input).

The net is run one character at a time, batch 1, in numpy float64 through the ops'
reference forwards (``compiler/ops``) with the params of a checkpoint (matched by their
store names, which unrolling keeps): recurrent layers keep their state from one character
to the next (h, and c for lstm), dropout is off, and the loss layer is replaced by a
softmax over its logits, divided by the temperature.  The prime text is fed first; then
each sampled character is fed back.  For a char model of a few hundred units this is
~0.1 ms a character, so no device plan is needed.

Unlike the trainer, which reads only a Plan, the sampler works from the checked program
(the net's structure, the text source's vocabulary).
"""
from __future__ import annotations

import pathlib

import numpy as np

from singa_dsl.errors import SingaConfigError
from . import checkpoint

LOSS_OPS = ("softmax_loss",)


class CharModel:
    """A trained char net stepping one id at a time."""

    def __init__(self, program, params: dict[str, np.ndarray]):
        from singa_dsl.compiler.ops import OPS
        self.OPS = OPS
        self.net = program.net
        self.block, self.field = self._input_field(program)
        loss = [l for l in self.net.layers if l.op in LOSS_OPS]
        if len(loss) != 1:
            raise SingaConfigError("sampling needs a net with one softmax_loss layer "
                                   f"(found {len(loss)})")
        self.logits = loss[0].sources[0]
        self.layers = self._needed(self.logits)
        owners = {p.key: p for p in self.net.params}
        self.params = {}
        for layer in self.layers:
            slots = {}
            for p in layer.params:
                owner = owners[p.share_of] if p.share_of else p
                if owner.store_name not in params:
                    raise SingaConfigError(f"the checkpoint has no param '{owner.store_name}' "
                                           f"({p.key})")
                value = np.asarray(params[owner.store_name], dtype=np.float64)
                slots[p.slot] = value.T if p.transpose else value
            self.params[layer.name] = slots
        self.reset()

    @staticmethod
    def _input_field(program) -> tuple[str, str]:
        for block, spec in program.data.items():
            train = spec.phases.get("train")
            if train is not None and train.kind == "text":
                return block, "chars"
        raise SingaConfigError("sampling needs a program whose data is text(...)",
                               hint="singac sample generates characters from a char model")

    def _needed(self, target: str):
        """The layers the logits depend on, in the net's (topological) order."""
        by_name = {l.name: l for l in self.net.layers}
        need, stack = set(), [target]
        while stack:
            name = stack.pop()
            if name in by_name and name not in need:
                need.add(name)
                stack.extend(by_name[name].sources)
        return [l for l in self.net.layers if l.name in need]

    def reset(self):
        self.state: dict[str, dict] = {l.name: {} for l in self.layers
                                       if self.OPS[l.op].recurrent}

    def step(self, char_id: int) -> np.ndarray:
        """Feed one id; the logits for the next character."""
        from singa_dsl.compiler.ops.registry import RefContext
        ref = f"{self.block}.{self.field}"
        values: dict[str, np.ndarray] = {}
        for layer in self.layers:
            xs = []
            for s in layer.sources:
                if s == ref:
                    xs.append(np.array([char_id], dtype=np.int32))
                elif s in values:
                    xs.append(values[s])
                else:
                    raise SingaConfigError(f"layer '{layer.name}' reads {s}, which sampling "
                                           "cannot provide")
            op = self.OPS[layer.op]
            if op.recurrent:
                st = self.state[layer.name]
                ctx = RefContext(train=False, cache={"h_prev": st.get("h"),
                                                     "c_prev": st.get("c")})
                y = op.forward(layer.attrs, xs, self.params[layer.name], ctx)
                st["h"], st["c"] = y, ctx.cache.get("c")
            else:
                ctx = RefContext(train=False, rng=np.random.default_rng(0))
                y = op.forward(layer.attrs, xs, self.params[layer.name], ctx)
            values[layer.name] = y
        return np.asarray(values[self.logits], dtype=np.float64).reshape(-1)


def load_params(path: str | pathlib.Path) -> dict[str, np.ndarray]:
    folder = pathlib.Path(path)
    if not (folder / "MANIFEST.json").exists():
        found = checkpoint.latest(folder)
        if found is None:
            raise SingaConfigError(f"no intact checkpoint in {path}",
                                   hint="give a workspace that training wrote, or one of its "
                                        "checkpoints/step-N folders")
        folder = found
    params, _, _ = checkpoint.load(folder)
    return params


def vocabulary(program) -> tuple[str, ...]:
    from .data.text import vocabulary as text_vocabulary
    for spec in program.data.values():
        train = spec.phases.get("train")
        if train is not None and train.kind == "text":
            return text_vocabulary(train.args, pathlib.Path(train.base_dir))
    raise SingaConfigError("sampling needs a program whose data is text(...)")


def generate(program, checkpoint_path: str | pathlib.Path, length: int,
             temperature: float = 1.0, prime: str = "", seed: int = 0) -> str:
    """``length`` characters generated after ``prime`` (which is not included)."""
    if length < 0:
        raise SingaConfigError(f"--length must be >= 0, got {length}")
    if not temperature > 0:
        raise SingaConfigError(f"--temperature must be > 0, got {temperature}")
    vocab = vocabulary(program)
    index = {c: i for i, c in enumerate(vocab)}
    unknown = sorted({c for c in prime if c not in index})
    if unknown:
        raise SingaConfigError(f"the prime text has characters the corpus does not: "
                               f"{''.join(unknown)!r}")
    model = CharModel(program, load_params(checkpoint_path))
    rng = np.random.default_rng(seed)
    ids = [index[c] for c in prime] or [index.get("\n", 0)]
    logits = None
    for i in ids:
        logits = model.step(i)
    out = []
    for _ in range(length):
        z = logits / temperature
        p = np.exp(z - z.max())
        p /= p.sum()
        nxt = int(rng.choice(len(p), p=p))
        out.append(vocab[nxt])
        logits = model.step(nxt)
    return "".join(out)
