"""The tiled (local-memory, GPU) GEMM family against numpy float64 on PoCL: all transposes,
edges, offsets, beta 0, bias, k = 0, the fused-update flag; when lowering picks it (a
device that is not a CPU) and the tuning cache carrying it; the CPU families unchanged."""
import dataclasses
import hashlib
import itertools
import json

import numpy as np
import pytest

import singa_dsl
from singa_dsl.compiler.fuse_update import UPDATE_DEFINE, fuse_sgd
from singa_dsl.compiler.gemm import (DEFAULT_TILES, TILED_TILE, GemmSpec, GemmTile,
                                     gemm_launch, render_gemm)
from singa_dsl.compiler.gemm_tuning import (GemmChoice, GemmKey, candidates, default_choice,
                                            refinements, tuned)
from singa_dsl.run import compile_plan
from singa_dsl.runtime import autotune
from singa_dsl.runtime.autotune import TuneCache, Tuned
from singa_dsl.runtime.device import Device
from singa_dsl.runtime.executor import Executor
from singa_dsl.runtime.plan_types import BufferDecl, ProgramDecl
from singa_dsl.runtime.trainer import Trainer

from test_autotune import MLP      # a two-layer net with a tanh and plain SGD
from test_gemm import SHAPES, TRANSPOSES, assert_close, run_gemm

IDS = ["NN", "NT", "TN", "TT"]
SMALL = GemmTile(4, 4, 4, 8, 8, bk=8)        # 32×32 blocks: fewer idle work-items on PoCL


@pytest.fixture(scope="module")
def device():
    return Device.open()


@pytest.mark.parametrize("ta,tb", TRANSPOSES, ids=IDS)
@pytest.mark.parametrize("m,n,k", SHAPES, ids=lambda s: str(s))
def test_tiled_alpha_beta_bias(device, m, n, k, ta, tb):
    got, want = run_gemm(device, m, n, k, ta, tb, alpha=0.5, beta=0.25, bias=True,
                         tiled=True)
    assert_close(got, want, k)


@pytest.mark.parametrize("ta,tb", TRANSPOSES, ids=IDS)
def test_tiled_offsets_and_leading_dims(device, ta, tb):
    got, want = run_gemm(device, 33, 65, 17, ta, tb, alpha=0.5, beta=0.25, bias=True,
                         offsets=(3, 5, 7, 2), pad=(4, 1, 3), tiled=True)
    assert_close(got, want, 17)


@pytest.mark.parametrize("ta,tb", TRANSPOSES, ids=IDS)
def test_tiled_beta_zero_never_reads_c(device, ta, tb):
    garbage = np.full((37, 41), np.nan, np.float32)
    got, want = run_gemm(device, 37, 41, 19, ta, tb, c_init=garbage, bias=True, tiled=True)
    assert_close(got, want, 19)


def test_tiled_without_bias(device):
    got, want = run_gemm(device, 37, 41, 19, False, False, beta=0.5, tiled=True)
    assert_close(got, want, 19)


def test_tiled_empty_k_gives_beta_c_plus_bias(device):
    got, want = run_gemm(device, 9, 20, 0, False, False, alpha=2.0, beta=0.5, bias=True,
                         tiled=True)
    assert_close(got, want, 1)


def test_tiled_block_bigger_than_c(device):
    """64×64 blocks on a 5×7 C: the work-items past it load zeros and store nothing."""
    for ta, tb in TRANSPOSES:
        got, want = run_gemm(device, 5, 7, 3, ta, tb, alpha=0.5, beta=0.25, bias=True,
                             tiled=True, pad=(1, 2, 3), offsets=(1, 2, 3, 4))
        assert_close(got, want, 3)


@pytest.mark.parametrize("ta,tb", [(False, True), (True, False)], ids=["NT", "TN"])
def test_tiled_sizes_that_divide_nothing(device, ta, tb):
    """3×5 values a work-item, 7×3 work-items, bk 5: the staging loops end on a partial
    step, along k (NT) and across it (TN)."""
    got, want = run_gemm(device, 45, 38, 23, ta, tb, alpha=0.5, beta=0.25, bias=True,
                         tile=GemmTile(3, 5, 4, 7, 3, bk=5), tiled=True)
    assert_close(got, want, 23)


def test_every_tiled_block_the_tuner_measures_first_computes_the_gemm(device):
    """Each block shape of a GPU's first tuning round, one bk each (bk and the refinements'
    work-group shapes change only constants, which the odd sizes above cover; each block
    is a program PoCL compiles for seconds, and the tuner refuses any candidate whose result
    is wrong anyway)."""
    key = GemmKey("tn", True, 45, 70, 37)
    tiles = {(c.tile.mr, c.tile.nr, c.tile.lx, c.tile.ly): c.tile
             for c in candidates(key, cpu=False) if c.tiled}
    assert len(tiles) == 4
    for tile in tiles.values():
        got, want = run_gemm(device, key.m, key.n, key.k, True, False, bias=True, beta=0.5,
                             tile=tile, tiled=True, pad=(3, 1, 2), offsets=(5, 7, 3, 2))
        assert_close(got, want, key.k)


def test_an_update_build_flags_an_inf_it_stores(device):
    """Built with -DSINGA_GEMM_UPDATE (compiler/fuse_update.py) the kernel takes the flag
    arguments and raises its slot when it stores a NaN or Inf, not before."""
    m, n, k = 20, 30, 9
    emit = gemm_launch(m=m, n=n, k=k, a="a", b="b", c="c", alpha=-0.1, beta=1.0, bias="v",
                       tiled=True, tile=SMALL)
    (program,), (launch,) = emit.programs, emit.launches
    fused = ProgramDecl(program.name + "+sgd", program.source,
                        (*program.options, UPDATE_DEFINE), program.origin)
    launch = dataclasses.replace(launch, program=fused.name,
                                 args=(*launch.args, ("buf", "flags"), ("int", 1)))
    rng = np.random.default_rng(1)
    a, b, v = (rng.standard_normal(s).astype(np.float32) for s in ((m, k), (k, n), n))
    ex = Executor(device, [BufferDecl("a", a.nbytes), BufferDecl("b", b.nbytes),
                           BufferDecl("c", m * n * 4), BufferDecl("v", v.nbytes),
                           BufferDecl("flags", 8, "int32")], [fused], {"g": [launch]})
    for name, value in (("a", a), ("b", b), ("v", v)):
        ex.write(name, value)
    c = rng.standard_normal((m, n)).astype(np.float32)
    for poison, flagged in ((None, 0), ((17, 23), 1)):
        if poison:
            c[poison] = np.inf
        ex.write("c", c)
        ex.write("flags", np.zeros(2, np.int32))
        ex.run("g")
        assert ex.read("flags").tolist() == [0, flagged]
    want = c.astype(np.float64) - 0.1 * (a.astype(np.float64) @ b) + v
    np.testing.assert_allclose(ex.read("c", (m, n)), want, rtol=1e-4, atol=1e-5)


# ---- which family a lowering picks -----------------------------------------------------

def _families(emit) -> set[str]:
    return {"tiled" if "_tiled" in p.name else "cpu" for p in emit.programs}


def test_a_device_that_is_not_a_cpu_gets_the_tiled_family_by_default():
    shapes = [(64, 2500, 784), (8, 16, 64), (9, 20, 0)]      # tuned-size, small, k = 0
    calls = [dict(m=m, n=n, k=k, a="a", b="b", c="c", trans_a=ta, trans_b=tb, bias="v")
             for m, n, k in shapes for ta, tb in TRANSPOSES]
    outside = [gemm_launch(**kw) for kw in calls]
    assert all(_families(e) == {"cpu"} for e in outside)
    with tuned({}):                                       # a CPU: the rules, unchanged
        assert [gemm_launch(**kw) for kw in calls] == outside
    with tuned({}, cpu=False) as scope:
        for kw in calls:
            assert _families(gemm_launch(**kw)) == {"tiled"}
            # explicit choices are the caller's: a CPU kernel stays one
            assert _families(gemm_launch(**kw, tile=GemmTile(4, 8, 4))) == {"cpu"}
    key = GemmKey("nn", True, 64, 2500, 784)
    assert scope.misses == {key, GemmKey("nt", True, 64, 2500, 784),    # still asked for
                            GemmKey("tn", True, 64, 2500, 784),         # tuning
                            GemmKey("tt", True, 64, 2500, 784)}
    packed = GemmChoice(True, GemmTile(6, 16, 8))
    with tuned({key: packed}, cpu=False):                # a measured choice wins
        emit = gemm_launch(m=64, n=2500, k=784, a="a", b="b", c="c", bias="v")
    assert emit.programs[0].name == "sgemm_nn_packed_bias_6x16v8"


def test_the_tuner_baseline_and_candidates_by_device():
    key = GemmKey("nt", False, 64, 256, 128)
    assert default_choice(key) == GemmChoice(False, DEFAULT_TILES["dot"])   # CPU: unchanged
    gpu = default_choice(key, cpu=False)
    assert gpu.tiled and gpu.tile == TILED_TILE and not gpu.pack
    on_gpu = candidates(key, cpu=False)
    assert on_gpu[0] == gpu and default_choice(key) in on_gpu
    assert {(c.tile.mr * c.tile.ly, c.tile.nr * c.tile.lx) for c in on_gpu if c.tiled} >= \
        {(64, 64), (128, 128)}
    assert not any(c.tiled for c in candidates(key, (8, 16)))
    around = refinements(gpu, key)             # other work-groups, the other bk: all valid
    assert around and all(c.tiled for c in around) and {c.tile.bk for c in around} == {8, 16}
    for c in around:
        c.check(key)


class _FakeGpu:
    """What autotune reads of a device, saying GPU (lowering needs no device)."""
    def __init__(self):
        import pyopencl as cl

        class Platform:
            name = "Fake OpenCL"
        self.type, self.platform = cl.device_type.GPU, Platform()
        self.name, self.version, self.driver_version = "Fake GPU", "OpenCL 3.0", "1"
        self.max_compute_units = 132


def test_a_plan_lowered_for_a_gpu_trains_like_the_cpu_plan(device, tmp_path):
    """lower_tuned for a GPU with an empty cache: every GEMM is tiled; with plain SGD fused
    into the weight-gradient GEMMs (their update build) it trains, on PoCL, to the losses of
    the CPU plan (different kernels only reorder float32 sums)."""
    program = singa_dsl.parse(MLP)
    cache = TuneCache(tmp_path / "tune.json")
    gpu_plan = autotune.lower_tuned(lambda: compile_plan(program), _FakeGpu(), tune=False,
                                    cache=cache)
    gemms = [p.name for p in gpu_plan.kernels.programs if p.name.startswith("sgemm")]
    assert gemms and all("_tiled" in name for name in gemms)
    fused = fuse_sgd(gpu_plan)
    assert fused.fused_updates
    losses = []
    for name, p in (("cpu", fuse_sgd(compile_plan(program))), ("gpu", fused)):
        trainer = Trainer(p, device=device, workspace=str(tmp_path / name), quiet=True)
        trainer.init_params()
        trainer.run_init()
        losses.append([trainer.train_step(s)[0] for s in range(6)])
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-5, atol=1e-6)


# ---- the tuning cache -------------------------------------------------------------------

def test_the_cache_carries_the_family(tmp_path):
    cache = TuneCache(tmp_path / "tune.json")
    tiled = GemmChoice(False, GemmTile(8, 4, 4, 16, 8, bk=8), tiled=True)
    direct = GemmChoice(False, GemmTile(2, 4, 8))
    keys = [GemmKey("tt", True, 64, 96, 128), GemmKey("nt", False, 3, 5, 7)]
    cache.record("gpu", [Tuned(keys[0], tiled, 1e-4, 2e-4, 9), Tuned(keys[1], direct, 1, 1, 1)])
    assert TuneCache(cache.path).table("gpu") == {keys[0]: tiled, keys[1]: direct}
    entry = json.loads(cache.path.read_text())["devices"]["gpu"][keys[0].text]
    assert entry["family"] == "tiled" and entry["tile"] == [8, 4, 4, 16, 8, 0, 8]


def test_old_entries_read_as_before_and_bad_families_are_skipped(tmp_path):
    path = tmp_path / "tune.json"
    old = {"pack": True, "k_chunk": 512, "tile": [6, 16, 8, 4, 4, 0]}     # no family
    tiled = {"family": "tiled", "pack": False, "k_chunk": 512,
             "tile": [4, 4, 4, 16, 16, 0, 16]}
    path.write_text(json.dumps({"version": 1, "devices": {"dev": {
        "nn 64x64x64": old,
        "nn 64x64x65": {**old, "pack": False, "tile": [6, 16, 8, 4, 4, 16]},
        "nn 64x64x66": tiled,
        "nn 64x64x67": {**tiled, "tile": [4, 4, 4, 16, 16, 0]},         # bk missing
        "nn 64x64x68": {**old, "tile": [6, 16, 8, 4, 4, 0, 16]},        # bk on a CPU tile
        "nn 64x64x69": {**tiled, "pack": True},                         # tiled does not pack
        "nn 64x64x70": {**old, "family": "direct"},                     # direct but packed
        "nn 64x64x71": {**tiled, "family": "gpu"},
        "nn 64x64x72": {**tiled, "tile": [16, 16, 4, 16, 16, 0, 16]},   # 256 accumulators
        "nn 64x64x73": {**tiled, "tile": [4, 4, 4, 64, 64, 0, 16]},     # 4096 work-items
        "nn 64x64x74": {**tiled, "tile": "4416160"}}}}))
    said = []
    table = TuneCache(path, warn=said.append).table("dev")
    assert table == {
        GemmKey("nn", False, 64, 64, 64): GemmChoice(True, GemmTile(6, 16, 8), 512),
        GemmKey("nn", False, 64, 64, 65): GemmChoice(False, GemmTile(6, 16, 8, pf=16), 512),
        GemmKey("nn", False, 64, 64, 66): GemmChoice(False, TILED_TILE, 512, tiled=True)}
    assert "8 entries" in said[0]


# ---- the CPU families ---------------------------------------------------------------------

# sha256 of the CPU families' names and sources below.  They are PoCL's kernel-cache keys
# and the tests' expectations: a change to them is deliberate (update the digest with it),
# never a side effect of the tiled family.  Last changed by the momentum update's store
# hooks (UPD_V/UPD_S, empty unless built with SINGA_GEMM_MOMENTUM).
CPU_SOURCES_SHA256 = "3acb6cdaab12b46c614ba89700cb24a7bbee8edbf1ec434bd225685340424def"


def test_the_cpu_families_render_as_before():
    tiles = [None, *DEFAULT_TILES.values(), GemmTile(8, 32, 16), GemmTile(4, 24, 8, 16, 1),
             GemmTile(6, 16, 8, 2, 8, 16), GemmTile(2, 4, 8), GemmTile(4, 3, 16, 2, 8),
             GemmTile(3, 4, 4), GemmTile(1, 2, 2)]
    h = hashlib.sha256()
    for ta, tb, bias, packed, tile in itertools.product(
            (False, True), (False, True), (False, True), (False, True), tiles):
        spec = GemmSpec(ta, tb, bias, packed, tile)
        try:
            text = spec.program_name + "\n" + render_gemm(spec)
        except ValueError:
            text = "invalid"
        h.update(text.encode() + b"\0")
    assert h.hexdigest() == CPU_SOURCES_SHA256
    spec = GemmSpec(True, False, True, tiled=True)
    assert render_gemm(spec) == render_gemm(spec)            # deterministic: a cache key
    assert spec.program_name == "sgemm_tn_tiled_bias_4x4w16x16k16"
