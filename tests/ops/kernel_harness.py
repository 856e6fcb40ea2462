"""Runs one layer's OpenCL lowering on the device and its numpy float64 reference side by side.

A layer comes from a tiny checked program (``program(...)``: synthetic data and a few layers);
``LayerCase`` emits that layer's forward and backward into an Emitter of its own, declares
the buffers the lowering expects to exist (sources, params, gradients), runs the launches
through ``Executor`` and returns what the device computed next to what the reference
(``OPS[op].forward``/``backward``) computes from the same float32-rounded inputs.

Gradient buffers are pre-filled before the backward: with NaN when the lowering is the first
writer (so a kernel that reads what it should overwrite is caught), with random values when it
must accumulate (the expectation is then that value plus the reference gradient).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

import singa_dsl
from singa_dsl.compiler.emit import BackwardTargets, Emitter
from singa_dsl.compiler.ops import OPS
from singa_dsl.compiler.ops.registry import RefContext
from singa_dsl.runtime.executor import Executor


def program(net: str, shape, batch: int, classes: int = 3):
    """A checked program whose data block ``d`` has ``image`` of ``shape`` and int ``label``."""
    dims = ", ".join(str(s) for s in shape)
    if "loss(" not in net:      # bp needs a loss layer; one on the raw input stays apart
        net += "\nzz_image = input(d.image)\nzz_loss = euclidean_loss(zz_image, zz_image)"
    text = (f"job t {{ steps: 1 }}\n"
            f"data d {{\n  train: synthetic(shape: [{dims}], classes: {classes}, size: 64, "
            f"batch: {batch})\n}}\n"
            f"net n {{\n{net}\n}}\nalgorithm bp\nupdater sgd {{ lr: 0.1 }}\n")
    return singa_dsl.parse(text)


@dataclass
class Outcome:
    """Device results (float64 copies) and the reference's, for one run of one layer."""
    y: np.ndarray
    y_ref: np.ndarray
    dx: list = field(default_factory=list)          # per source: (got, want) or None
    dparams: dict = field(default_factory=dict)     # slot → (got, want)
    buffers: dict = field(default_factory=dict)     # other buffers read back on request


class LayerCase:
    """One layer of a checked program, with inputs and params drawn at random (or given)."""

    def __init__(self, prog, name: str, *, inputs: dict | None = None,
                 params: dict | None = None, seed: int = 0):
        self.prog = prog
        self.layer = prog.net.layer(name)
        self.op = OPS[self.layer.op]
        self.batch = prog.data["d"].phases["train"].args["batch"]
        self.rng = np.random.default_rng(seed)
        self.all_params = {p.key: p for p in prog.net.params}
        self.inputs = [self._input(k, (inputs or {}).get(k))
                       for k in range(len(self.layer.sources))]
        self.owner_values = {}                     # owner key → float32 array (owner's shape)
        for p in self.layer.params:
            owner = self.all_params[p.share_of] if p.share_of else p
            given = (params or {}).get(p.slot)
            if given is not None:
                value = np.asarray(given, np.float64).T if p.transpose else given
            else:
                value = self.rng.standard_normal(owner.shape) * 0.5
            self.owner_values[owner.key] = np.asarray(value, np.float32)

    # ---- values ---------------------------------------------------------------------------
    def _input(self, k: int, given):
        info = self.layer.in_shapes[k]
        shape = (self.batch,) + tuple(info.shape)
        if given is not None:
            return np.asarray(given, np.int32 if info.dtype == "int32" else np.float32)
        if info.dtype == "int32":
            return self.rng.integers(0, 3, size=shape).astype(np.int32)
        return self.rng.standard_normal(shape).astype(np.float32)

    def param_value(self, slot: str) -> np.ndarray:
        """The value the layer's reference sees for a slot (a transposed share transposed)."""
        p = self._pspec(slot)
        v = self.owner_values[p.share_of or p.key].astype(np.float64)
        return v.T if p.transpose else v

    def _pspec(self, slot: str):
        return next(p for p in self.layer.params if p.slot == slot)

    def reference(self, dy, train: bool = True, cache=None):
        xs = [x if x.dtype == np.int32 else x.astype(np.float64) for x in self.inputs]
        params = {p.slot: self.param_value(p.slot) for p in self.layer.params}
        ctx = RefContext(train=train, rng=np.random.default_rng(0),
                         cache={} if cache is None else cache)
        y = self.op.forward(self.layer.attrs, xs, params, ctx)
        if dy is None or self.op.backward is None:
            return y, None, None
        dxs, grads = self.op.backward(self.layer.attrs, xs, params, y, dy, ctx)
        return y, dxs, grads

    # ---- the device run -------------------------------------------------------------------
    def emitter(self, prefix: str = "train") -> Emitter:
        fields = {s: f"{prefix}:data:{s}" for s in self.layer.sources if "." in s}
        em = Emitter(self.batch, prefix, self.all_params, fields)
        for k, s in enumerate(self.layer.sources):
            em.declare(em.source(self.layer, k), self.inputs[k].size,
                       "int32" if self.inputs[k].dtype == np.int32 else "float32")
            if "." not in s:
                em.declare(em.grad(s), self.inputs[k].size)
        for key, v in self.owner_values.items():
            em.declare(f"param:{key}", v.size)
            em.declare(f"pgrad:{key}", v.size)
        em.declare("dummy", 16)
        return em

    def targets(self, dx_acc: bool, param_acc: bool) -> BackwardTargets:
        dx = tuple("." not in s and self.layer.in_shapes[k].dtype == "float32"
                   for k, s in enumerate(self.layer.sources))
        return BackwardTargets(dx, tuple(dx_acc for _ in dx),
                               {p.key: param_acc for p in self.layer.params})

    def run(self, device, *, dx_acc: bool = False, param_acc: bool = False,
            backward: bool = True, dy=None, read: tuple = ()) -> Outcome:
        layer, em = self.layer, self.emitter()
        self.op.emit_forward(em, layer)
        n_fwd = len(em.launches)
        is_loss = self.op.role == "loss"
        out_name = em.extras[layer.name]["loss"] if is_loss else em.act(layer.name)
        out_shape = (self.batch,) + tuple(layer.out.shape)
        if backward:
            if dy is None and not is_loss:
                dy = self.rng.standard_normal(out_shape)
            if not is_loss:
                em.declare(em.grad(layer.name), int(np.prod(out_shape)))
            t = self.targets(dx_acc, param_acc)
            self.op.emit_backward(em, layer, t)
        ex = Executor(device, em.buffers.values(), em.programs.values(),
                      {"fwd": em.launches[:n_fwd], "bwd": em.launches[n_fwd:]})
        for k in range(len(layer.sources)):
            ex.write(em.source(layer, k), self.inputs[k])
        for key, v in self.owner_values.items():
            ex.write(f"param:{key}", v)
        ex.run("fwd")
        ref_dy = None if not backward else np.ones(self.batch) if is_loss else dy
        y_ref, dxs, grads = self.reference(ref_dy)      # a loss's backward ignores dy
        out_dtype = np.int32 if layer.out.dtype == "int32" else None
        got_y = ex.read(out_name)[:int(np.prod(out_shape))].reshape(out_shape)
        outcome = Outcome(got_y if out_dtype else got_y.astype(np.float64), np.asarray(y_ref))
        if backward:
            outcome = self._backward(ex, em, t, dy, dxs, grads, outcome, is_loss)
        for name in read:
            outcome.buffers[name] = ex.read(name)
        return outcome

    def _backward(self, ex, em, t, dy, dxs, grads, outcome, is_loss):
        layer = self.layer
        prefill = {}
        for k, s in enumerate(layer.sources):
            if t.dx[k]:
                g = em.grad(s)
                prefill[g] = self._prefill(self.inputs[k].shape, t.dx_accumulate[k])
                ex.write(g, prefill[g])
        for key, v in self.owner_values.items():
            acc = any(t.dparam_accumulate.values())
            prefill[f"pgrad:{key}"] = self._prefill(v.shape, acc)
            ex.write(f"pgrad:{key}", prefill[f"pgrad:{key}"])
        if not is_loss:
            ex.write(em.grad(layer.name), np.asarray(dy, np.float32))
        ex.run("bwd")
        for k, s in enumerate(layer.sources):
            if not t.dx[k]:
                outcome.dx.append(None)
                continue
            g = em.grad(s)
            got = ex.read(g)[:self.inputs[k].size].reshape(self.inputs[k].shape)
            want = np.asarray(dxs[k], np.float64).reshape(self.inputs[k].shape)
            if t.dx_accumulate[k]:
                want = want + prefill[g]
            outcome.dx.append((got.astype(np.float64), want))
        for p in layer.params:
            owner = p.share_of or p.key
            got = ex.read(f"pgrad:{owner}").reshape(self.owner_values[owner].shape)
            want = np.asarray(grads[p.slot], np.float64)
            want = want.T if p.transpose else want
            if t.dparam_accumulate[p.key]:
                want = want + prefill[f"pgrad:{owner}"]
            outcome.dparams[p.slot] = (got.astype(np.float64), want)
        return outcome

    def _prefill(self, shape, acc: bool) -> np.ndarray:
        if acc:
            return self.rng.standard_normal(shape).astype(np.float32)
        return np.full(shape, np.nan, np.float32)


def close(got, want, rtol: float = 2e-4, atol: float = 2e-5, what: str = ""):
    """float32 results against a float64 reference: |got − want| ≤ atol + rtol·scale, the scale
    being the largest |want| (so a sum of many terms is judged by its size)."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    assert np.all(np.isfinite(got)), f"{what}: non-finite values {got[~np.isfinite(got)][:5]}"
    scale = max(1.0, float(np.abs(want).max(initial=0.0)))
    err = np.abs(got - want)
    worst = np.unravel_index(np.argmax(err), err.shape) if err.size else ()
    assert float(err.max(initial=0.0)) <= atol + rtol * scale, \
        f"{what}: max error {err.max():.3g} at {worst} (got {got[worst]}, want {want[worst]})"


def check(outcome: Outcome, label: str = "", **tol):
    """Every output the run produced against the reference."""
    if outcome.y.dtype == np.int32:
        np.testing.assert_array_equal(outcome.y, outcome.y_ref, err_msg=f"{label} forward")
    else:
        close(outcome.y, outcome.y_ref, what=f"{label} forward", **tol)
    for k, pair in enumerate(outcome.dx):
        if pair is not None:
            close(*pair, what=f"{label} dx[{k}]", **tol)
    for slot, pair in outcome.dparams.items():
        close(*pair, what=f"{label} d{slot}", **tol)
