"""The unrolling pass for BPTT (SINGA's ``NeuralNet::Unrolling``, SINGA-REFERENCE §2d):
a checked net with ``unroll: T`` → a net of T copies of every layer, NetSpec → NetSpec.

* Copy t of layer ``L`` is named ``"<t>#L"`` and carries ``attrs["unroll"] = {"index": t,
  "steps": T, "of": "L"}``; copies are ordered step by step (all of step 0, then step 1...),
  which is a topological order.
* Sources: a layer source → the same step's copy (SINGA's kUnrollOneToOne); a data field
  ``block.f`` of per-sample shape [T, ...] → ``"block.f[t]"``, its step-t slice (the
  lowering cuts it from the field uploaded once per batch); a recurrent layer's copy t > 0
  gets copy t−1 as a second source — its context h_prev (copy 0 has none: zeros, or the
  carried state).
* Params: copy t's param is ``"<t>#<layer>.<slot>"``.  Copy 0 owns the values and keeps the
  param's store name (so checkpoints are those of the net before unrolling, and
  ``init_from`` and the sampler read them); copies t > 0 share copy 0's values *and*
  gradient buffer (SINGA's ``ShareFrom``): BP's first-writer/accumulate rule on the shared
  pgrad buffer sums their gradients.  A param that already shares another layer's values
  shares that layer's copy 0 (with its transpose).
"""
from __future__ import annotations

import dataclasses

from .model import LayerSpec, NetSpec, ParamSpec
from .ops import OPS


def copy_name(name: str, t: int) -> str:
    return f"{t}#{name}"


def field_step(ref: str, t: int) -> str:
    return f"{ref}[{t}]"


def is_field(name: str, layers: set[str]) -> bool:
    return name not in layers and "." in name


def copy_param(p: ParamSpec, t: int) -> ParamSpec:
    key, layer = copy_name(p.key, t), copy_name(p.layer, t)
    if p.share_of is not None:
        return dataclasses.replace(p, key=key, layer=layer, share_of=copy_name(p.share_of, 0),
                                   name=None if t else p.name)
    if t == 0:
        return dataclasses.replace(p, key=key, layer=layer, name=p.store_name)
    return dataclasses.replace(p, key=key, layer=layer, name=None, init=None,
                               share_of=copy_name(p.key, 0), transpose=False)


def unroll_net(net: NetSpec, steps: int | None = None) -> NetSpec:
    steps = net.unroll if steps is None else steps
    names = {l.name for l in net.layers}
    out: list[LayerSpec] = []
    for t in range(steps):
        for layer in net.layers:
            sources = [field_step(s, t) if is_field(s, names) else copy_name(s, t)
                       for s in layer.sources]
            ins = list(layer.in_shapes)
            if OPS[layer.op].recurrent and t > 0:
                sources.append(copy_name(layer.name, t - 1))
                ins.append(layer.out)
            attrs = dict(layer.attrs)
            attrs["unroll"] = {"index": t, "steps": steps, "of": layer.name}
            out.append(dataclasses.replace(
                layer, name=copy_name(layer.name, t), sources=tuple(sources),
                in_shapes=tuple(ins), attrs=attrs,
                params=tuple(copy_param(p, t) for p in layer.params)))
    return dataclasses.replace(net, layers=tuple(out))


def steps_of(net: NetSpec) -> int:
    for l in net.layers:
        info = l.attrs.get("unroll")
        if info:
            return info["steps"]
    return 1
