"""Independent numpy transcriptions the CD and BPTT tests compare the OpenCL path with:
the device's counter-based RNG (activation.cl / rbm.cl), and BPTT over a net unrolled by
chaining the ops' float64 reference forwards/backwards step by step."""
from __future__ import annotations

import math

import numpy as np

from singa_dsl.compiler.ops import OPS
from singa_dsl.compiler.ops.registry import RefContext

M32 = 0xFFFFFFFF


def _mix32(h):
    h = np.asarray(h, dtype=np.uint64) & M32
    h ^= h >> np.uint64(16)
    h = (h * np.uint64(0x7feb352d)) & M32
    h ^= h >> np.uint64(15)
    h = (h * np.uint64(0x846ca68b)) & M32
    h ^= h >> np.uint64(16)
    return h


def uniform01(seed: int, layer: int, step: int, index) -> np.ndarray:
    """rbm.cl's uniform01(seed, layer, step, i), bit for bit (float64 of the float32 value)."""
    i = np.asarray(index, dtype=np.uint64)
    inner = _mix32((np.uint64(step) + np.uint64(0x632be5ab) * i) & M32)
    mid = _mix32(((np.uint64(layer) * np.uint64(0x9e3779b9)) & M32) ^ inner)
    h = _mix32(np.uint64(seed & M32) ^ mid)
    return (h >> np.uint64(8)).astype(np.float64) / 16777216.0


def cd_noise(seed, layer, step, k, batch, hidden, gaussian):
    """The numbers rbm_sample uses in Gibbs steps 0..k-1: uniforms, or Box–Muller normals."""
    n = batch * hidden
    out = []
    for g in range(k):
        idx = g * n + np.arange(n, dtype=np.uint64)
        if gaussian:
            u1 = uniform01(seed, layer, step, 2 * idx)
            u2 = uniform01(seed, layer, step, 2 * idx + 1)
            z = np.sqrt(-2.0 * np.log(1.0 - u1)) * np.cos(2.0 * math.pi * u2)
        else:
            z = uniform01(seed, layer, step, idx)
        out.append(z.reshape(batch, hidden))
    return out


def bptt_reference(net, params: dict, fields: dict, steps: int, masks=None, state=None):
    """Loss (mean over steps of the batch-mean loss) and param gradients (keyed by the
    un-unrolled param key) of ``net`` unrolled ``steps`` steps.

    params: layer name → {slot: array}; fields: "block.f" → array [B, T, ...];
    masks: (t, layer) → dropout mask used on the device; state: layer → {"h", "c"} at
    step 0 (carried), else zeros.  Returns (loss, grads, last_state)."""
    names = {l.name for l in net.layers}
    vals = [dict() for _ in range(steps)]
    ctxs = [dict() for _ in range(steps)]
    xs_at = [dict() for _ in range(steps)]
    losses = []
    for t in range(steps):
        for layer in net.layers:
            op = OPS[layer.op]
            xs = [vals[t][s] if s in names else np.asarray(fields[s])[:, t]
                  for s in layer.sources]
            xs = [x if np.asarray(x).dtype.kind in "iu" else np.asarray(x, np.float64)
                  for x in xs]
            ctx = RefContext(train=True)
            if op.recurrent:
                if t > 0:
                    ctx.cache["h_prev"] = vals[t - 1][layer.name]
                    ctx.cache["c_prev"] = ctxs[t - 1][layer.name].cache.get("c")
                elif state and layer.name in state:
                    ctx.cache["h_prev"] = state[layer.name].get("h")
                    ctx.cache["c_prev"] = state[layer.name].get("c")
            if layer.op == "dropout":
                y = xs[0] * masks[(t, layer.name)]
            else:
                y = op.forward(layer.attrs, xs, params.get(layer.name, {}), ctx)
            if op.role == "loss":
                losses.append(float(np.mean(y)))
            vals[t][layer.name], ctxs[t][layer.name], xs_at[t][layer.name] = y, ctx, xs
    grads: dict[str, np.ndarray] = {}
    dvals = [dict() for _ in range(steps)]
    carry_dc: dict[str, np.ndarray] = {}
    for t in reversed(range(steps)):
        for layer in reversed(net.layers):
            op = OPS[layer.op]
            dy = dvals[t].get(layer.name)
            if op.role != "loss" and dy is None:
                continue
            ctx, xs = ctxs[t][layer.name], xs_at[t][layer.name]
            if layer.op == "lstm" and layer.name in carry_dc:
                ctx.cache["dc"] = carry_dc.pop(layer.name)
            if layer.op == "dropout":
                dxs, pg = [dy * masks[(t, layer.name)]], {}
            else:
                dxs, pg = op.backward(layer.attrs, xs, params.get(layer.name, {}),
                                      vals[t][layer.name], dy, ctx)
            for slot, g in pg.items():
                key = f"{layer.name}.{slot}"
                grads[key] = grads.get(key, 0.0) + g
            for s, g in zip(layer.sources, dxs):
                if g is not None and s in names:
                    dvals[t][s] = dvals[t].get(s, 0.0) + g
            if op.recurrent and t > 0:
                dvals[t - 1][layer.name] = dvals[t - 1].get(layer.name, 0.0) + \
                    ctx.cache["dh_prev"]
                if layer.op == "lstm":
                    carry_dc[layer.name] = ctx.cache["dc_prev"]
    last = {l.name: {"h": vals[steps - 1][l.name],
                     "c": ctxs[steps - 1][l.name].cache.get("c")}
            for l in net.layers if OPS[l.op].recurrent}
    return float(np.mean(losses)), grads, last
