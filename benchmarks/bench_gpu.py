"""The OpenCL path on a GPU beside PyTorch CUDA, in one process: sgemm GFLOP/s and SINGA-MLP
training samples/s.  Run where an OpenCL GPU driver is installed:

    PYOPENCL_CTX=0 python benchmarks/bench_gpu.py
"""
from __future__ import annotations

import time

import numpy as np


def _median_rate(fn, sync, seconds=2.0):
    fn(); sync()
    rates, end = [], time.perf_counter() + seconds
    while time.perf_counter() < end or len(rates) < 3:
        t0 = time.perf_counter()
        for _ in range(5):
            fn()
        sync()
        rates.append(5 / (time.perf_counter() - t0))
    rates.sort()
    return rates[len(rates) // 2]


def sgemm_rows(device):
    from singa_dsl.compiler.gemm import gemm_launch
    from singa_dsl.runtime.executor import Executor
    from singa_dsl.runtime.plan_types import BufferDecl
    rows = []
    for n in (1024, 2048, 4096):
        emit = gemm_launch(m=n, n=n, k=n, a="a", b="b", c="c")
        bufs = [BufferDecl(x, n * n * 4) for x in "abc"] + list(emit.buffers)
        ex = Executor(device, bufs, emit.programs, {"g": emit.launches})
        rng = np.random.default_rng(0)
        a, b = (rng.standard_normal((n, n), dtype=np.float32) for _ in range(2))
        ex.write("a", a); ex.write("b", b)
        ex.run("g"); ex.finish()
        err = np.abs(ex.read("c", (n, n)) - a @ b).max() / np.abs(a @ b).max()
        ours = _median_rate(lambda: ex.run("g"), ex.finish) * 2 * n ** 3 / 1e9
        torch_rate = None
        try:
            import torch
            ta, tb = torch.from_numpy(a).cuda(), torch.from_numpy(b).cuda()
            torch.backends.cuda.matmul.allow_tf32 = False
            torch_rate = _median_rate(lambda: ta @ tb, torch.cuda.synchronize) * 2 * n ** 3 / 1e9
        except Exception as e:  # no torch / no CUDA: report ours alone
            print("torch unavailable:", e)
        rows.append((f"sgemm {n} (GFLOP/s, max rel err {err:.1e})", ours, torch_rate))
    return rows


def mlp_rows(device):
    import singa_dsl
    from singa_dsl.run import compile_plan
    from singa_dsl.runtime.trainer import Trainer
    import bench_training as bt
    rows = []
    for batch in (64, 256):
        trainer = Trainer(compile_plan(singa_dsl.parse(bt._mlp_program(batch))), device=device,
                          quiet=True)
        trainer.init_params()
        counter = iter(range(10 ** 9))
        ours = _median_rate(lambda: trainer.train_step(next(counter)), lambda: None) * batch
        for r in trainer.readers.values():
            r.close()
        torch_rate = None
        try:
            import torch
            mods = []
            for a, b in zip(bt.MLP_SIZES[:-2], bt.MLP_SIZES[1:-1]):
                mods += [torch.nn.Linear(a, b), torch.nn.Tanh()]
            model = torch.nn.Sequential(*mods, torch.nn.Linear(500, 10)).cuda()
            opt = torch.optim.SGD(model.parameters(), lr=0.01)
            x, y = torch.randn(batch, 784).cuda(), torch.randint(0, 10, (batch,)).cuda()
            lf = torch.nn.CrossEntropyLoss()

            def step():
                opt.zero_grad(set_to_none=True)
                loss = lf(model(x), y)
                loss.backward()
                opt.step()
                loss.item()
            torch_rate = _median_rate(step, torch.cuda.synchronize) * batch
        except Exception as e:
            print("torch unavailable:", e)
        rows.append((f"SINGA MLP batch {batch} (samples/s)", ours, torch_rate))
    return rows


def main():
    import sys
    sys.path.insert(0, __file__.rsplit("/", 1)[0])
    from singa_dsl.runtime.device import Device
    device = Device.open()
    print(f"device: {device.name} ({device.platform})")
    for name, ours, ref in sgemm_rows(device) + mlp_rows(device):
        ratio = f"{ours / ref:.2f}" if ref else "-"
        print(f"{name:<45} singa_dsl {ours:10.1f}   torch {ref or 0:10.1f}   ratio {ratio}")


if __name__ == "__main__":
    main()
