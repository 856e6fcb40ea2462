"""OpenCL sgemm against numpy float64: all transposes, alpha/beta, bias, odd shapes, offsets."""
import numpy as np
import pytest

from singa_dsl.compiler.gemm import (GemmSpec, GemmTile, fit_tile, gemm_launch,
                                     largest_buffers, render_gemm)
from singa_dsl.runtime.device import Device
from singa_dsl.runtime.executor import Executor
from singa_dsl.runtime.plan_types import BufferDecl

SHAPES = [(1, 1, 1), (7, 13, 5), (33, 65, 17), (100, 257, 129)]
TRANSPOSES = [(False, False), (False, True), (True, False), (True, True)]


@pytest.fixture(scope="module")
def device():
    return Device.open()


def run_gemm(device, m, n, k, ta, tb, *, alpha=1.0, beta=0.0, bias=False, pack=None,
             offsets=(0, 0, 0, 0), pad=(0, 0, 0), tile=None, c_init=None, k_chunk=None,
             seed=0, tiled=None):
    """Run one GEMM on buffers with leading offsets and row padding; return (got, want)."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(np.float32)
    b = rng.standard_normal((n, k) if tb else (k, n)).astype(np.float32)
    c = rng.standard_normal((m, n)).astype(np.float32) if c_init is None else c_init
    v = rng.standard_normal(n).astype(np.float32)
    store = {"a": _embed(a, offsets[0], pad[0]), "b": _embed(b, offsets[1], pad[1]),
             "c": _embed(c, offsets[2], pad[2]), "v": _embed(v[None], offsets[3], 0)}
    emit = gemm_launch(m=m, n=n, k=k, a="a", b="b", c="c", trans_a=ta, trans_b=tb,
                       alpha=alpha, beta=beta, bias="v" if bias else None,
                       lda=a.shape[1] + pad[0], ldb=b.shape[1] + pad[1], ldc=n + pad[2],
                       a_offset=offsets[0], b_offset=offsets[1], c_offset=offsets[2],
                       bias_offset=offsets[3], pack=pack, tile=tile, k_chunk=k_chunk,
                       tiled=tiled, tag="gemm")
    decls = [BufferDecl(name, arr.nbytes) for name, arr in store.items()]
    ex = Executor(device, [*decls, *emit.buffers], emit.programs, {"gemm": emit.launches})
    for name, arr in store.items():
        ex.write(name, arr)
    ex.run("gemm")
    flat = ex.read("c")[offsets[2]:offsets[2] + m * (n + pad[2])]
    got = flat.reshape(m, n + pad[2])[:, :n]
    opa, opb = (a.T if ta else a).astype(np.float64), (b.T if tb else b).astype(np.float64)
    want = alpha * (opa @ opb) + (beta * c if beta else 0.0) + (v if bias else 0.0)
    return got, want


def _embed(x: np.ndarray, offset: int, pad: int) -> np.ndarray:
    """x's rows padded by `pad` columns (of NaN, which must never be read), after `offset`."""
    rows = np.pad(x, ((0, 0), (0, pad)), constant_values=np.nan)
    return np.concatenate([np.full(offset, np.nan, np.float32), rows.ravel()]).astype(np.float32)


def assert_close(got, want, k):
    tol = 1e-5 * max(1.0, np.sqrt(k)) * max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=tol)


@pytest.mark.parametrize("ta,tb", TRANSPOSES, ids=["NN", "NT", "TN", "TT"])
@pytest.mark.parametrize("m,n,k", SHAPES, ids=lambda s: str(s))
@pytest.mark.parametrize("pack", [False, True], ids=["direct", "packed"])
def test_gemm_alpha_beta_bias(device, m, n, k, ta, tb, pack):
    got, want = run_gemm(device, m, n, k, ta, tb, alpha=0.5, beta=0.25, bias=True, pack=pack)
    assert_close(got, want, k)


@pytest.mark.parametrize("ta,tb", TRANSPOSES, ids=["NN", "NT", "TN", "TT"])
@pytest.mark.parametrize("pack", [False, True], ids=["direct", "packed"])
def test_gemm_offsets_and_leading_dims(device, ta, tb, pack):
    got, want = run_gemm(device, 33, 65, 17, ta, tb, alpha=0.5, beta=0.25, bias=True,
                         pack=pack, offsets=(3, 5, 7, 2), pad=(4, 1, 3))
    assert_close(got, want, 17)


@pytest.mark.parametrize("ta,tb", TRANSPOSES, ids=["NN", "NT", "TN", "TT"])
@pytest.mark.parametrize("pack", [False, True], ids=["direct", "packed"])
def test_beta_zero_never_reads_c(device, ta, tb, pack):
    garbage = np.full((37, 41), np.nan, np.float32)
    got, want = run_gemm(device, 37, 41, 19, ta, tb, c_init=garbage, bias=True, pack=pack)
    assert_close(got, want, 19)


def test_without_bias(device):
    got, want = run_gemm(device, 37, 41, 19, False, False, beta=0.5)
    assert_close(got, want, 19)


@pytest.mark.parametrize("ta,tb", TRANSPOSES, ids=["NN", "NT", "TN", "TT"])
def test_packed_k_in_slices_applies_beta_and_bias_once(device, ta, tb):
    got, want = run_gemm(device, 33, 65, 37, ta, tb, alpha=0.5, beta=0.25, bias=True,
                         pack=True, k_chunk=16, offsets=(1, 2, 3, 4))
    assert_close(got, want, 37)


def test_empty_k_gives_beta_c_plus_bias(device):
    got, want = run_gemm(device, 9, 20, 0, False, False, alpha=2.0, beta=0.5, bias=True)
    assert_close(got, want, 1)


def test_a_tile_chosen_by_an_autotuner(device):
    tile = GemmTile(mr=4, nr=8, vw=4, lx=2, ly=2)
    for ta, tb, pack in ((False, False, False), (True, True, True)):
        got, want = run_gemm(device, 50, 70, 30, ta, tb, beta=1.0, bias=True, pack=pack,
                             tile=tile)
        assert_close(got, want, 30)


def test_launch_records_and_scratch():
    emit = gemm_launch(m=300, n=200, k=100, a="x", b="w", c="y", pack=True, tag="fc1")
    assert [l.tag for l in emit.launches] == ["fc1"] * 3     # pack A, pack B, multiply
    sliced = gemm_launch(m=300, n=200, k=100, a="x", b="w", c="y", pack=True, k_chunk=40)
    assert len(sliced.launches) == 3 * 3                     # each slice: pack, pack, multiply
    # the scratch holds one slice's panels: 300 rows (mr 6 divides it), 200 → 208 columns (nr 16)
    assert sliced.buffers[0].nbytes == (300 + 208) * 40 * 4
    packs_a = [l for l in sliced.launches if l.kernel.startswith("sgemm_pack_rk")]
    assert [l.args[3] for l in packs_a] == [("int", 0), ("int", 40), ("int", 80)]
    assert len(emit.programs) == 1 and emit.buffers[0].name == "gemm_scratch"
    small = gemm_launch(m=10, n=10, k=10, a="x", b="w", c="y", pack=True)
    merged = largest_buffers([*emit.buffers, *small.buffers])
    assert merged == emit.buffers
    assert gemm_launch(m=0, n=5, k=3, a="x", b="w", c="y").launches == ()


def test_small_matrices_keep_vector_tiles():
    spec = GemmSpec(tile=GemmTile(6, 16, 8))
    assert fit_tile(spec, 64, 10) == GemmTile(6, 8, 8)
    assert fit_tile(spec, 3, 5) == GemmTile(3, 4, 4)
    assert render_gemm(spec) == render_gemm(spec)            # deterministic: a cache key
