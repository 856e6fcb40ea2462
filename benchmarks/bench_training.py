"""Training throughput: singa_dsl on OpenCL beside PyTorch CPU and a plain numpy step, measured
in one process with the same thread count, printed as a table with ratios.

    python benchmarks/bench_training.py               # 1 thread and all cores, each in a subprocess
    python benchmarks/bench_training.py --threads 1   # one configuration, in this process
    python benchmarks/bench_training.py --models conv,gru   # some rows only

Rows (each the same training step three times: singa_dsl's compiled plan run by its executor,
PyTorch, and numpy written by hand):

    mlp64, mlp256  SINGA's MLP 784-2500-2000-1500-1000-500-10 (tanh), SGD, batch 64 / 256
    conv           SINGA's CIFAR-10 convnet (samples/cifar_convnet.singa: conv 5×5 32-32-64,
                   max/avg pooling 3/2 with Caffe's ceil rounding, LRN 3, dense 10), SGD with
                   momentum 0.9 and weight decay, batch 100 of synthetic 3×32×32 images
    rbm            RBM 784-1000 trained by CD-1 on MNIST images scaled to [0, 1]
                   (samples/rbm1.singa's recipe: h⁺ = σ(vWᵀ + c), a Bernoulli sample of h⁺,
                   v⁻ = σ(sW + b) unsampled, h⁻ = σ(v⁻Wᵀ + c), ΔW ∝ h⁻ᵀv⁻ − h⁺ᵀv⁺), SGD
                   momentum 0.8, batch 100
    gru            samples/char_rnn.singa: one-hot chars (vocabulary 158), GRU 512, dropout 0.5,
                   dense to the vocabulary, softmax loss at each of 50 unrolled steps, BPTT over
                   the 50 steps with the state carried across batches, RMSProp with clip 5,
                   batch 32 (rate in characters per second)

Thread counts are fixed before numpy, PoCL or torch start (OPENBLAS_NUM_THREADS,
POCL_MAX_PTHREAD_COUNT, torch.set_num_threads), which is why each count runs in its own process.
Each row times the three implementations in interleaved rounds (see `measure`), so that load
from other processes falls on all three; rates are medians of 3-step windows.  The load
average is printed with the table: on this 2-core VM, above ~0.5 other processes ran too.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
CORPUS = ROOT / "samples" / "corpus.txt"
MLP_SIZES = (784, 2500, 2000, 1500, 1000, 500, 10)
GRU_HIDDEN, GRU_UNROLL, GRU_BATCH = 512, 50, 32
RBM_VISIBLE, RBM_HIDDEN, RBM_BATCH = 784, 1000, 100
CONV_BATCH = 100

HEADER = 'job bench { steps: 1000000  workspace: "/tmp/singa_bench" }\n'


# ---- the singa_dsl programs -----------------------------------------------------------------

def _mlp_program(batch: int) -> str:
    layers, prev = [], "x"
    for i, units in enumerate(MLP_SIZES[1:-1], 1):
        layers.append(f"  h{i} = stanh(dense({prev}, {units}, w: uniform(-0.05, 0.05), "
                      f"b: uniform(-0.05, 0.05)))")
        prev = f"h{i}"
    return HEADER + f"""
data d {{ train: synthetic(shape: [784], classes: 10, size: {batch * 8}, batch: {batch}) }}
net mlp {{
  x = input(d.image)
{chr(10).join(layers)}
  fc = dense({prev}, 10, w: uniform(-0.05, 0.05), b: uniform(-0.05, 0.05))
  loss = softmax_loss(fc, d.label)
}}
algorithm bp
updater sgd {{ lr: 0.01 }}
"""


# samples/cifar_convnet.singa's net and updater, on one worker (no partitioning or cluster).
CONV_PROGRAM = HEADER + f"""
data cifar {{ train: synthetic(shape: [3, 32, 32], classes: 10, size: {CONV_BATCH * 8}, batch: {CONV_BATCH}) }}
net convnet {{
  x     = input(cifar.image)
  conv1 = conv(x, 32, kernel: 5, stride: 1, pad: 2, w: gaussian(0, 0.0001), b: param(init: constant(0), lr_scale: 2))
  pool1 = max_pool(conv1, kernel: 3, stride: 2)
  relu1 = relu(pool1)
  norm1 = lrn(relu1, size: 3, alpha: 5e-05, beta: 0.75)
  conv2 = conv(norm1, 32, kernel: 5, stride: 1, pad: 2, w: gaussian(0, 0.01), b: param(init: constant(0), lr_scale: 2))
  relu2 = relu(conv2)
  pool2 = avg_pool(relu2, kernel: 3, stride: 2)
  norm2 = lrn(pool2, size: 3, alpha: 5e-05, beta: 0.75)
  conv3 = conv(norm2, 64, kernel: 5, stride: 1, pad: 2, w: gaussian(0, 0.01), b: constant(0))
  relu3 = relu(conv3)
  pool3 = avg_pool(relu3, kernel: 3, stride: 2)
  ip1   = dense(pool3, 10, w: param(init: gaussian(0, 0.01), wd_scale: 250), b: param(init: constant(0), lr_scale: 2, wd_scale: 0))
  loss  = softmax_loss(ip1, cifar.label)
}}
algorithm bp
updater sgd {{ lr: 0.001  momentum: 0.9  weight_decay: 0.004 }}
"""

# samples/rbm1.singa's layer and updater at 784-1000 on MNIST images scaled to [0, 1] (the
# visible units are probabilities: unscaled data would saturate the sigmoids into denormals).
MNIST_IMAGES = ROOT.parent / "shared" / "data" / "mnist" / "t10k-images-idx3-ubyte.gz"
MNIST_LABELS = MNIST_IMAGES.with_name("t10k-labels-idx1-ubyte.gz")
RBM_PROGRAM = HEADER + f"""
data d {{ train: idx(images: "{MNIST_IMAGES}", labels: "{MNIST_LABELS}", batch: {RBM_BATCH},
                    normalize: (mean: 0, std: 255)) }}
net rbm1 {{
  v   = input(d.image)
  rbm = rbm(v, {RBM_HIDDEN}, w: gaussian(0, 0.1), vbias: constant(0), hbias: constant(0))
}}
algorithm cd {{ k: 1 }}
updater sgd {{ lr: 0.1  momentum: 0.8  weight_decay: 0.0002 }}
"""

# samples/char_rnn.singa's net, unroll, batch and updater.
GRU_PROGRAM = HEADER + f"""
data corpus {{ train: text("{CORPUS}", seq: {GRU_UNROLL}, batch: {GRU_BATCH}) }}
net char_rnn {{
  unroll: {GRU_UNROLL}
  x    = input(corpus.chars)
  e    = onehot(x, corpus.vocab)
  h    = gru(e, {GRU_HIDDEN}, w: uniform(-0.08, 0.08))
  d    = dropout(h, rate: 0.5)
  y    = dense(d, corpus.vocab, w: uniform(-0.08, 0.08), b: uniform(-0.08, 0.08))
  loss = softmax_loss(y, corpus.next)
}}
algorithm bptt {{ carry_state: true }}
updater rmsprop {{ rho: 0.95  lr: 0.002  clip: 5 }}
"""


def _vocab() -> int:
    return len(set(CORPUS.read_text(encoding="utf-8-sig")))


# ---- timing -----------------------------------------------------------------------------------

SPIN_SECONDS = 0.3      # longer than OpenBLAS's / OpenMP's idle threads keep spinning
ROUNDS = 3


def measure(steps: dict, seconds: float, rounds: int = ROUNDS, *, pause: float = SPIN_SECONDS,
            sync: dict | None = None) -> tuple[dict, dict]:
    """Steps per second of each step function: the median (and the best) of timed windows
    of 3 steps,
    taken in `rounds` rounds that visit the implementations in turn (so that a burst of
    load from other processes falls on all of them), seconds/rounds per visit, after 2
    warm-up steps each.  A visit starts with a pause and one untimed step: another
    library's idle threads spin for a while after its last call and would take a core.
    ``sync`` (name → function) waits for an implementation's queued work (a GPU's) before
    the clock is read: after the warm-up, the untimed step and each window."""
    rates = {name: [] for name in steps}
    wait = {name: (sync or {}).get(name) or (lambda: None) for name in steps}
    for name, step in steps.items():
        for _ in range(2):
            step()
        wait[name]()
    for _ in range(rounds):
        for name, step in steps.items():
            time.sleep(pause)
            step()
            wait[name]()
            deadline = time.perf_counter() + seconds / rounds
            while True:
                t0 = time.perf_counter()
                for _ in range(3):
                    step()
                wait[name]()
                rates[name].append(3 / (time.perf_counter() - t0))
                if time.perf_counter() >= deadline:
                    break
    return ({name: statistics.median(r) for name, r in rates.items()},
            {name: max(r) for name, r in rates.items()})


def singa_trainer(program_text: str, profile: bool = False, tuned: bool = True, *,
                  device=None, quiet: bool = True, stats: dict | None = None):
    """The program's Trainer as `singac run --tune` builds it: GEMM kernels from the tuning
    cache, shapes missing from it measured first (``tuned``; else gemm.py's defaults).
    ``device``: an open Device, or a selector for Device.open (None: PoCL's CPU device or
    $PYOPENCL_CTX).  ``quiet=False`` lets the tuner report its shapes on stderr.  ``stats``
    (a dict) receives the set-up times: ``plan_s`` (lowering, and measuring the GEMM shapes
    missing from the tuning cache), ``tuned_shapes`` (how many it measured), ``init_s``
    (the kernels' builds, allocation, initialisation)."""
    import singa_dsl
    from singa_dsl.compiler.fuse_update import fuse_sgd
    from singa_dsl.run import compile_plan, training_plan
    from singa_dsl.runtime.device import Device
    from singa_dsl.runtime.trainer import Trainer
    program = singa_dsl.parse(program_text)
    if device is None or isinstance(device, str):
        device = Device.open(device, profile=profile)
    measured = _measured_shapes(device) if stats is not None else 0
    t0 = time.perf_counter()
    plan = training_plan(program, device, tune=tuned, quiet=quiet) if tuned else \
        fuse_sgd(compile_plan(program))
    t1 = time.perf_counter()
    trainer = Trainer(plan, device=device, quiet=True, profile=profile)
    trainer.init_params()
    trainer.run_init()
    device.finish()
    if stats is not None:
        stats.update(plan_s=t1 - t0, init_s=time.perf_counter() - t1,
                     tuned_shapes=_measured_shapes(device) - measured)
    return trainer


def _measured_shapes(device) -> int:
    """How many GEMM shapes the tuning cache holds measurements of for ``device``."""
    from singa_dsl.runtime import autotune
    cache = autotune.TuneCache()
    entries = cache._read().get(autotune.device_key(device), {})
    return sum(1 for e in (entries.values() if isinstance(entries, dict) else ())
               if isinstance(e, dict) and e.get("us") is not None)


def singa_step(trainer):
    """Trainer.train_step: upload the batch, the compiled plan's train and update launch
    lists, and the read-back of the losses (the step's one wait)."""
    counter = iter(range(10 ** 9))
    return lambda: trainer.train_step(next(counter))


def _torch(threads: int):
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    return torch


# ---- MLP ----------------------------------------------------------------------------------------

# Each torch step builder takes the torch device to build on ("cpu": the CPU suite; "cuda":
# bench_gpu.py).  Initial values are drawn on the CPU and moved, so both see the same ones.

def torch_mlp(torch, batch: int, device: str = "cpu"):
    mods = []
    for a, b in zip(MLP_SIZES[:-2], MLP_SIZES[1:-1]):
        mods += [torch.nn.Linear(a, b), torch.nn.Tanh()]
    model = torch.nn.Sequential(*mods, torch.nn.Linear(MLP_SIZES[-2], MLP_SIZES[-1]))
    model.to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    return _torch_classifier_step(model, opt, torch.randn(batch, 784).to(device),
                                  torch.randint(0, 10, (batch,)).to(device))


def _torch_classifier_step(model, opt, x, y):
    """One SGD step of a classifier with cross-entropy, as the torch rows time it."""
    import torch
    loss_fn = torch.nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        loss.item()
    return step


def numpy_mlp(batch: int):
    import numpy as np
    rng = np.random.default_rng(0)
    ws = [rng.uniform(-0.05, 0.05, (b, a)).astype(np.float32)
          for a, b in zip(MLP_SIZES[:-1], MLP_SIZES[1:])]
    bs = [np.zeros(b, np.float32) for b in MLP_SIZES[1:]]
    x = rng.standard_normal((batch, 784)).astype(np.float32)
    y = rng.integers(0, 10, batch)

    def step():
        acts = [x]
        for i, (w, b) in enumerate(zip(ws, bs)):
            z = acts[-1] @ w.T + b
            acts.append(np.tanh(z) if i < len(ws) - 1 else z)
        d = _softmax_grad(acts[-1], y)
        for i in range(len(ws) - 1, -1, -1):
            gw, gb = d.T @ acts[i], d.sum(0)
            if i:
                d = (d @ ws[i]) * (1 - acts[i] ** 2)
            ws[i] -= 0.01 * gw
            bs[i] -= 0.01 * gb
    return step


def _softmax_grad(z, y):
    """(softmax(z) − onehot(y)) / batch, the softmax loss's gradient."""
    import numpy as np
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p[np.arange(len(y)), y] -= 1
    p /= len(y)
    return p


# ---- CIFAR-10 convnet ------------------------------------------------------------------------

def torch_conv(torch, device: str = "cpu"):
    nn = torch.nn
    model = nn.Sequential(
        nn.Conv2d(3, 32, 5, padding=2), nn.MaxPool2d(3, 2, ceil_mode=True), nn.ReLU(),
        nn.LocalResponseNorm(3, alpha=5e-5, beta=0.75, k=1.0),
        nn.Conv2d(32, 32, 5, padding=2), nn.ReLU(), nn.AvgPool2d(3, 2, ceil_mode=True),
        nn.LocalResponseNorm(3, alpha=5e-5, beta=0.75, k=1.0),
        nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.AvgPool2d(3, 2, ceil_mode=True),
        nn.Flatten(), nn.Linear(64 * 4 * 4, 10)).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9, weight_decay=0.004)
    return _torch_classifier_step(model, opt, torch.randn(CONV_BATCH, 3, 32, 32).to(device),
                                  torch.randint(0, 10, (CONV_BATCH,)).to(device))


class _NumpyConvnet:
    """The convnet's step in numpy: im2col convolutions (one GEMM each), pooling by strided
    window views with Caffe's ceil rounding, LRN across channels, SINGA's momentum SGD."""
    K, PAD = 5, 2

    def __init__(self):
        import numpy as np
        self.np = np
        rng = np.random.default_rng(0)
        shapes = {"w1": (32, 3 * 25), "b1": (32,), "w2": (32, 32 * 25), "b2": (32,),
                  "w3": (64, 32 * 25), "b3": (64,), "w4": (10, 1024), "b4": (10,)}
        self.p = {k: (rng.standard_normal(s) * 0.01).astype(np.float32) for k, s in
                  shapes.items()}
        self.v = {k: np.zeros_like(v) for k, v in self.p.items()}
        self.x = rng.standard_normal((CONV_BATCH, 3, 32, 32)).astype(np.float32)
        self.y = rng.integers(0, 10, CONV_BATCH)
        self.area = {h: self._area(h) for h in (16, 8)}

    # convolution, 5×5, pad 2, stride 1
    def conv_fwd(self, x, w, b):
        np = self.np
        bs, c, h, wd = x.shape
        xp = np.pad(x, ((0, 0), (0, 0), (2, 2), (2, 2)))
        win = np.lib.stride_tricks.sliding_window_view(xp, (5, 5), axis=(2, 3))
        col = np.ascontiguousarray(win.transpose(1, 4, 5, 0, 2, 3)).reshape(c * 25, -1)
        yp = w @ col + b[:, None]
        return yp.reshape(len(w), bs, h, wd).transpose(1, 0, 2, 3), col

    def conv_bwd(self, dy, col, w, xshape, want_dx):
        np = self.np
        bs, c, h, wd = xshape
        dyp = dy.transpose(1, 0, 2, 3).reshape(len(w), -1)
        dw, db = dyp @ col.T, dyp.sum(1)
        if not want_dx:
            return None, dw, db
        dcol = (w.T @ dyp).reshape(c, 5, 5, bs, h, wd)
        dxp = np.zeros((bs, c, h + 4, wd + 4), np.float32)
        for kh in range(5):
            for kw in range(5):
                dxp[:, :, kh:kh + h, kw:kw + wd] += dcol[:, kh, kw].transpose(1, 0, 2, 3)
        return dxp[:, :, 2:-2, 2:-2], dw, db

    # pooling 3/2, ceil rounding: out = ceil((h − 3)/2) + 1, windows padded to 2·(out−1)+3
    @staticmethod
    def _out(h):
        return -(-(h - 3) // 2) + 1

    def _area(self, h):
        np = self.np
        o = self._out(h)
        n = np.minimum(np.arange(o) * 2 + 3, h) - np.arange(o) * 2
        return np.outer(n, n).astype(np.float32)

    def max_fwd(self, x):
        np = self.np
        bs, c, h, w = x.shape
        o = self._out(h)
        xp = np.full((bs, c, 2 * o + 1, 2 * o + 1), -np.inf, np.float32)
        xp[:, :, :h, :w] = x
        win = np.lib.stride_tricks.sliding_window_view(xp, (3, 3), axis=(2, 3))[:, :, ::2, ::2]
        win = win.reshape(bs, c, o, o, 9)
        arg = win.argmax(-1)
        return np.take_along_axis(win, arg[..., None], -1)[..., 0], arg

    def max_bwd(self, dy, arg, xshape):
        np = self.np
        bs, c, h, w = xshape
        o = dy.shape[2]
        dxp = np.zeros((bs, c, 2 * o + 1, 2 * o + 1), np.float32)
        for idx in range(9):
            i, j = divmod(idx, 3)
            dxp[:, :, i:i + 2 * o:2, j:j + 2 * o:2] += np.where(arg == idx, dy, 0)
        return dxp[:, :, :h, :w]

    def avg_fwd(self, x):
        np = self.np
        bs, c, h, w = x.shape
        o = self._out(h)
        xp = np.zeros((bs, c, 2 * o + 1, 2 * o + 1), np.float32)
        xp[:, :, :h, :w] = x
        s = sum(xp[:, :, i:i + 2 * o:2, j:j + 2 * o:2] for i in range(3) for j in range(3))
        return s / self.area[h]

    def avg_bwd(self, dy, xshape):
        np = self.np
        bs, c, h, w = xshape
        o = dy.shape[2]
        g = dy / self.area[h]
        dxp = np.zeros((bs, c, 2 * o + 1, 2 * o + 1), np.float32)
        for i in range(3):
            for j in range(3):
                dxp[:, :, i:i + 2 * o:2, j:j + 2 * o:2] += g
        return dxp[:, :, :h, :w]

    # LRN across 3 channels, k = 1
    @staticmethod
    def _window3(a):
        s = a.copy()
        s[:, 1:] += a[:, :-1]
        s[:, :-1] += a[:, 1:]
        return s

    def lrn_fwd(self, x, alpha=5e-5, beta=0.75):
        s = 1.0 + alpha / 3 * self._window3(x * x)
        sb = s ** -beta
        return x * sb, (s, sb)

    def lrn_bwd(self, dy, x, cache, alpha=5e-5, beta=0.75):
        s, sb = cache
        back = self._window3(dy * x * sb / s)
        return dy * sb - (2 * alpha * beta / 3) * x * back

    def step(self):
        np, p = self.np, self.p
        x = self.x
        c1, col1 = self.conv_fwd(x, p["w1"], p["b1"])
        p1, arg1 = self.max_fwd(c1)
        r1 = np.maximum(p1, 0)
        n1, l1 = self.lrn_fwd(r1)
        c2, col2 = self.conv_fwd(n1, p["w2"], p["b2"])
        r2 = np.maximum(c2, 0)
        p2 = self.avg_fwd(r2)
        n2, l2 = self.lrn_fwd(p2)
        c3, col3 = self.conv_fwd(n2, p["w3"], p["b3"])
        r3 = np.maximum(c3, 0)
        p3 = self.avg_fwd(r3)
        flat = p3.reshape(CONV_BATCH, -1)
        z = flat @ p["w4"].T + p["b4"]
        g = {}
        d = _softmax_grad(z, self.y)
        g["w4"], g["b4"] = d.T @ flat, d.sum(0)
        d = (d @ p["w4"]).reshape(p3.shape)
        d = self.avg_bwd(d, r3.shape) * (r3 > 0)
        d, g["w3"], g["b3"] = self.conv_bwd(d, col3, p["w3"], n2.shape, True)
        d = self.lrn_bwd(d, p2, l2)
        d = self.avg_bwd(d, r2.shape) * (r2 > 0)
        d, g["w2"], g["b2"] = self.conv_bwd(d, col2, p["w2"], n1.shape, True)
        d = self.lrn_bwd(d, r1, l1) * (p1 > 0)
        d = self.max_bwd(d, arg1, c1.shape)
        _, g["w1"], g["b1"] = self.conv_bwd(d, col1, p["w1"], x.shape, False)
        for k, w in p.items():        # SINGA's SGD: v = m·v + lr·(g + wd·w); w −= v
            v = self.v[k]
            v *= 0.9
            v += 0.001 * (g[k] + 0.004 * w)
            w -= v


def numpy_conv():
    return _NumpyConvnet().step


# ---- RBM CD-1 -----------------------------------------------------------------------------------

def _mnist_batch():
    """The first RBM_BATCH MNIST test images, scaled to [0, 1], as float32 (batch, 784)."""
    import gzip
    import numpy as np
    raw = gzip.decompress(MNIST_IMAGES.read_bytes())
    n = RBM_BATCH * RBM_VISIBLE
    return (np.frombuffer(raw, np.uint8, n, 16).reshape(RBM_BATCH, RBM_VISIBLE) / 255.0
            ).astype(np.float32)


def torch_rbm(torch, device: str = "cpu"):
    """CD-1 written with torch tensors (no autograd: CD's statistics are not a gradient)."""
    w = (torch.randn(RBM_HIDDEN, RBM_VISIBLE) * 0.1).to(device)
    vb = torch.zeros(RBM_VISIBLE, device=device)
    hb = torch.zeros(RBM_HIDDEN, device=device)
    state = [torch.zeros_like(t) for t in (w, vb, hb)]
    v_pos = torch.from_numpy(_mnist_batch()).to(device)
    gen = torch.Generator(device=device).manual_seed(0)

    def step():
        h_pos = torch.sigmoid(torch.addmm(hb, v_pos, w.t()))
        s = (torch.rand(h_pos.shape, generator=gen, device=device) < h_pos).float()
        v_neg = torch.sigmoid(torch.addmm(vb, s, w))
        err = ((v_pos - v_neg) ** 2).sum(1)
        h_neg = torch.sigmoid(torch.addmm(hb, v_neg, w.t()))
        gw = torch.addmm(h_neg.t() @ v_neg, h_pos.t(), v_pos, alpha=-1.0) / RBM_BATCH
        grads = (gw, (v_neg - v_pos).sum(0) / RBM_BATCH, (h_neg - h_pos).sum(0) / RBM_BATCH)
        for p, g, m, wd in zip((w, vb, hb), grads, state, (0.0002, 0.0, 0.0)):
            m.mul_(0.8).add_(g + wd * p, alpha=0.1)
            p.sub_(m)
        err.mean().item()
    return step


def numpy_rbm():
    import numpy as np
    rng = np.random.default_rng(0)
    w = (rng.standard_normal((RBM_HIDDEN, RBM_VISIBLE)) * 0.1).astype(np.float32)
    vb, hb = np.zeros(RBM_VISIBLE, np.float32), np.zeros(RBM_HIDDEN, np.float32)
    state = [np.zeros_like(t) for t in (w, vb, hb)]
    v_pos = _mnist_batch()

    def sigmoid(a):
        return 1.0 / (1.0 + np.exp(-a))

    def step():
        h_pos = sigmoid(v_pos @ w.T + hb)
        s = (rng.random(h_pos.shape, np.float32) < h_pos).astype(np.float32)
        v_neg = sigmoid(s @ w + vb)
        err = ((v_pos - v_neg) ** 2).sum(1)
        h_neg = sigmoid(v_neg @ w.T + hb)
        gw = (h_neg.T @ v_neg - h_pos.T @ v_pos) / RBM_BATCH
        grads = (gw, (v_neg - v_pos).sum(0) / RBM_BATCH, (h_neg - h_pos).sum(0) / RBM_BATCH)
        for p, g, m, wd in zip((w, vb, hb), grads, state, (0.0002, 0.0, 0.0)):
            m *= 0.8
            m += 0.1 * (g + wd * p)
            p -= m
        float(err.mean())
    return step


# ---- char-GRU -----------------------------------------------------------------------------------

def torch_gru(torch, device: str = "cpu"):
    nn, vocab = torch.nn, _vocab()
    gru = nn.GRU(vocab, GRU_HIDDEN, batch_first=True)
    for p in gru.parameters():
        nn.init.uniform_(p, -0.08, 0.08)
    with torch.no_grad():
        gru.bias_hh_l0.zero_()      # SINGA's GRU has one bias per gate
    gru.bias_hh_l0.requires_grad_(False)
    drop, fc = nn.Dropout(0.5), nn.Linear(GRU_HIDDEN, vocab)
    gru.to(device)
    fc.to(device)
    params = [p for p in (*gru.parameters(), *fc.parameters()) if p.requires_grad]
    opt = torch.optim.RMSprop(params, lr=0.002, alpha=0.95, eps=1e-8)
    ids = torch.randint(0, vocab, (GRU_BATCH, GRU_UNROLL + 1)).to(device)
    x = nn.functional.one_hot(ids[:, :-1], vocab).float()
    y = ids[:, 1:].reshape(-1)
    loss_fn = nn.CrossEntropyLoss()
    h = [torch.zeros(1, GRU_BATCH, GRU_HIDDEN, device=device)]

    def step():
        opt.zero_grad(set_to_none=True)
        out, h_last = gru(x, h[0])
        loss = loss_fn(fc(drop(out)).reshape(-1, vocab), y)
        loss.backward()
        torch.nn.utils.clip_grad_value_(params, 5.0)
        opt.step()
        h[0] = h_last.detach()      # carry_state: the next batch continues each stream
        loss.item()
    return step


class _NumpyGRU:
    """The char-GRU's BPTT step in numpy: the gates' input projections of all 50 steps as one
    GEMM, the recurrence step by step, the weight gradients over all steps as one GEMM each;
    gates stacked [z, r, c] as SINGA's gru.cc computes them."""

    def __init__(self):
        import numpy as np
        self.np = np
        rng = np.random.default_rng(0)
        v, h = _vocab(), GRU_HIDDEN
        u = lambda *s: rng.uniform(-0.08, 0.08, s).astype(np.float32)  # noqa: E731
        self.p = {"wx": u(3 * h, v), "wh": u(3 * h, h), "b": u(3 * h), "wy": u(v, h),
                  "by": u(v)}
        self.hist = {k: np.zeros_like(a) for k, a in self.p.items()}
        ids = rng.integers(0, v, (GRU_BATCH, GRU_UNROLL + 1))
        eye = np.eye(v, dtype=np.float32)
        self.x = eye[ids[:, :-1].T]                        # (T, B, V) one-hot
        self.y = ids[:, 1:].T                              # (T, B)
        self.h0 = np.zeros((GRU_BATCH, h), np.float32)
        self.rng = rng
        self.vocab = v

    def step(self):
        np, p = self.np, self.p
        T, B, H, V = GRU_UNROLL, GRU_BATCH, GRU_HIDDEN, self.vocab
        sig = lambda a: 1.0 / (1.0 + np.exp(-a))  # noqa: E731
        ax = (self.x.reshape(T * B, V) @ p["wx"].T + p["b"]).reshape(T, B, 3 * H)
        hs = np.empty((T + 1, B, H), np.float32)
        hs[0] = self.h0
        z, r, c, hc = (np.empty((T, B, H), np.float32) for _ in range(4))
        for t in range(T):
            hh = hs[t] @ p["wh"].T
            z[t] = sig(ax[t, :, :H] + hh[:, :H])
            r[t] = sig(ax[t, :, H:2 * H] + hh[:, H:2 * H])
            hc[t] = hh[:, 2 * H:]
            c[t] = np.tanh(r[t] * hc[t] + ax[t, :, 2 * H:])
            hs[t + 1] = z[t] * (hs[t] - c[t]) + c[t]
        mask = (self.rng.random((T, B, H), np.float32) >= 0.5) * np.float32(2.0)
        hd = (hs[1:] * mask).reshape(T * B, H)
        logits = hd @ p["wy"].T + p["by"]
        e = np.exp(logits - logits.max(1, keepdims=True))
        e /= e.sum(1, keepdims=True)
        loss = -np.log(e[np.arange(T * B), self.y.reshape(-1)]).mean()
        e[np.arange(T * B), self.y.reshape(-1)] -= 1
        e /= B                                             # each step's loss is a batch mean
        g = {"wy": e.T @ hd, "by": e.sum(0)}
        dh_all = ((e @ p["wy"]).reshape(T, B, H)) * mask
        da_x = np.empty((T, B, 3 * H), np.float32)         # gradients of x·Wxᵀ + b
        da_h = np.empty((T, B, 3 * H), np.float32)         # gradients of h·Whᵀ
        dh = np.zeros((B, H), np.float32)
        for t in range(T - 1, -1, -1):
            gt = dh_all[t] + dh
            dac = gt * (1 - z[t]) * (1 - c[t] ** 2)
            da_x[t, :, :H] = da_h[t, :, :H] = gt * (hs[t] - c[t]) * z[t] * (1 - z[t])
            da_x[t, :, H:2 * H] = da_h[t, :, H:2 * H] = dac * hc[t] * r[t] * (1 - r[t])
            da_x[t, :, 2 * H:] = dac
            da_h[t, :, 2 * H:] = dac * r[t]
            dh = gt * z[t] + da_h[t] @ p["wh"]
        g["wx"] = da_x.reshape(T * B, 3 * H).T @ self.x.reshape(T * B, V)
        g["b"] = da_x.reshape(T * B, 3 * H).sum(0)
        g["wh"] = da_h.reshape(T * B, 3 * H).T @ hs[:-1].reshape(T * B, H)
        for k, w in p.items():          # RMSProp with SINGA's clip
            gk = np.clip(g[k], -5.0, 5.0)
            hk = self.hist[k]
            hk *= 0.95
            hk += 0.05 * gk * gk
            w -= 0.002 * gk / np.sqrt(hk + 1e-8)
        self.h0 = hs[-1]
        float(loss)


def numpy_gru():
    return _NumpyGRU().step


# ---- the table ----------------------------------------------------------------------------------

# name → (label, unit, units per step, singa program, torch step maker, numpy step maker);
# a torch step maker is called as maker(torch) or maker(torch, device)
MODELS = {
    "mlp64": (f"SINGA MLP {'-'.join(map(str, MLP_SIZES))}, batch 64", "samples", 64,
              lambda: _mlp_program(64), lambda t, device="cpu": torch_mlp(t, 64, device),
              lambda: numpy_mlp(64)),
    "mlp256": (f"SINGA MLP {'-'.join(map(str, MLP_SIZES))}, batch 256", "samples", 256,
               lambda: _mlp_program(256), lambda t, device="cpu": torch_mlp(t, 256, device),
               lambda: numpy_mlp(256)),
    "conv": (f"CIFAR-10 convnet (cifar10_quick), batch {CONV_BATCH}", "samples", CONV_BATCH,
             lambda: CONV_PROGRAM, torch_conv, numpy_conv),
    "rbm": (f"RBM {RBM_VISIBLE}-{RBM_HIDDEN} CD-1, batch {RBM_BATCH}", "samples", RBM_BATCH,
            lambda: RBM_PROGRAM, torch_rbm, numpy_rbm),
    "gru": (f"char-GRU {GRU_HIDDEN}, unroll {GRU_UNROLL}, batch {GRU_BATCH}", "chars",
            GRU_BATCH * GRU_UNROLL, lambda: GRU_PROGRAM, torch_gru, numpy_gru),
}


def unavailable(key: str) -> str | None:
    """Why a row cannot run on this machine (its data is missing), or None."""
    if key == "rbm" and not (MNIST_IMAGES.is_file() and MNIST_LABELS.is_file()):
        return f"MNIST not found ({MNIST_IMAGES.parent} lacks {MNIST_IMAGES.name} or " \
               f"{MNIST_LABELS.name})"
    return None


def run_one(threads: int, seconds: float, models: list[str],
            default_kernels: bool = False) -> list[dict]:
    rows = []
    torch = _torch(threads)
    for key in models:
        label, unit, per_step, program, torch_maker, numpy_maker = MODELS[key]
        reason = unavailable(key)
        if reason:
            rows.append({"model": label, "unit": unit, "threads": threads, "skipped": reason})
            continue
        trainers = [singa_trainer(program())]
        steps = {"singa_dsl": singa_step(trainers[0])}
        if default_kernels:       # the same program on gemm.py's untuned defaults
            trainers.append(singa_trainer(program(), tuned=False))
            steps["untuned"] = singa_step(trainers[1])
        if torch:
            steps["torch"] = torch_maker(torch)
        steps["numpy"] = numpy_maker()
        try:
            rates, best = measure(steps, seconds)
        finally:
            for trainer in trainers:
                for r in trainer.readers.values():
                    r.close()
        row = {"model": label, "unit": unit, "threads": threads}
        for name in ("singa_dsl", "untuned", "torch", "numpy"):
            row[name] = rates[name] * per_step if name in rates else None
            row[f"{name}_best"] = best[name] * per_step if name in best else None
        rows.append(row)
    return rows


def load_average() -> str:
    try:
        return " ".join(pathlib.Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def thread_env(threads: int) -> dict:
    return dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads),
                MKL_NUM_THREADS=str(threads), POCL_MAX_PTHREAD_COUNT=str(threads))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, help="run one thread count in this process")
    ap.add_argument("--seconds", type=float, default=6.0, help="timed seconds per measurement")
    ap.add_argument("--models", default=",".join(MODELS),
                    help=f"comma-separated rows to run (default all: {','.join(MODELS)})")
    ap.add_argument("--json", action="store_true", help="print rows as JSON (for the driver)")
    ap.add_argument("--untuned", action="store_true",
                    help="also time singa_dsl on gemm.py's default GEMM kernels (no autotune)")
    ap.add_argument("--write-programs", metavar="DIR",
                    help="write each row's singa_dsl program to DIR/<model>.singa and exit "
                         "(to profile one: singac run DIR/conv.singa --steps 20 --profile)")
    args = ap.parse_args()
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        ap.error(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(MODELS)}")
    if args.write_programs:
        folder = pathlib.Path(args.write_programs)
        folder.mkdir(parents=True, exist_ok=True)
        for key in models:
            (folder / f"{key}.singa").write_text(MODELS[key][3](), encoding="utf-8")
            print(folder / f"{key}.singa")
        return
    if args.threads:
        rows = run_one(args.threads, args.seconds, models, args.untuned)
        print(json.dumps(rows) if args.json else _table(rows))
        return
    rows, loads = [], [load_average()]
    for threads in sorted({1, os.cpu_count() or 1}):
        out = subprocess.run([sys.executable, __file__, "--threads", str(threads), "--json",
                              "--seconds", str(args.seconds), "--models", ",".join(models),
                              *["--untuned"] * args.untuned],
                             env=thread_env(threads), check=True, capture_output=True,
                             text=True).stdout
        rows += json.loads(out.strip().splitlines()[-1])
        loads.append(load_average())
    print(_table(rows))
    print(f"load average (1/5/15 min) before, between and after: {' | '.join(loads)}")


def _ratio(a, b) -> str:
    return f"{a / b:6.2f}" if a and b else f"{'-':>6}"


def _table(rows: list[dict]) -> str:
    """Rates are medians of the timed windows; the 'best' ratios compare the fastest windows
    (least disturbed by other processes)."""
    untuned = any(r.get("untuned") for r in rows)
    extra = f" {'untuned':>9} {'vs untuned':>10}" if untuned else ""
    head = (f"{'model':<52} {'thr':>3} {'singa_dsl':>9} {'torch':>9} {'numpy':>9} "
            f"{'vs torch':>8} {'vs numpy':>8}  {'best: vs torch':>14} {'vs numpy':>8}"
            f"{extra}  unit/s")
    lines = [head, "-" * len(head)]
    for r in rows:
        if r.get("skipped"):
            lines.append(f"{r['model']:<52} {r['threads']:>3} skipped: {r['skipped']}")
            continue
        t = f"{r['torch']:9.0f}" if r["torch"] else f"{'-':>9}"
        u = (f" {r['untuned']:9.0f} {_ratio(r['singa_dsl'], r['untuned']):>10}"
             if r.get("untuned") else f" {'-':>9} {'-':>10}") if untuned else ""
        lines.append(
            f"{r['model']:<52} {r['threads']:>3} {r['singa_dsl']:9.0f} {t} {r['numpy']:9.0f} "
            f"{_ratio(r['singa_dsl'], r['torch']):>8} {_ratio(r['singa_dsl'], r['numpy']):>8}  "
            f"{_ratio(r.get('singa_dsl_best'), r.get('torch_best')):>14} "
            f"{_ratio(r.get('singa_dsl_best'), r.get('numpy_best')):>8}{u}  "
            f"{r.get('unit', 'samples')}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
