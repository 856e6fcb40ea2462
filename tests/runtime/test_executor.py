"""The executor runs a plain-data plan: allocate once, set args once, enqueue, read back."""
import json

import numpy as np
import pytest

from singa_dsl.errors import SingaConfigError
from singa_dsl.runtime.device import Device
from singa_dsl.runtime.executor import Executor
from singa_dsl.runtime.plan_types import BufferDecl, KernelPlan, Launch, ProgramDecl

SOURCE = """
__kernel void axpy(const float a, __global const float *x, __global float *y,
                   const int off, const int n)
{
    const int i = get_global_id(0);
    if (i < n) y[off + i] = a * x[i] + y[off + i];
}
__kernel void fill(__global float *y, const float v, const int n)
{
    const int i = get_global_id(0);
    if (i < n) y[i] = v;
}
"""
N = 100


def make_plan() -> KernelPlan:
    prog = ProgramDecl("blas1", SOURCE, ("-cl-mad-enable",), "test plan")
    axpy = Launch("blas1", "axpy", (128,), (16,),
                  (("float", 2.0), ("buf", "x"), ("buf", "y"), ("int", 0), ("int", N)), "layer1")
    fill = Launch("blas1", "fill", (128,), (16,), (("buf", "y"), ("float", 1.0), ("int", N)),
                  "init")
    return KernelPlan.build([BufferDecl("x", N * 4), BufferDecl("y", N * 4)], [prog, prog],
                            {"init": [fill], "step": [axpy, axpy]})


@pytest.fixture(scope="module")
def device():
    return Device.open(profile=True)


def test_plan_runs_and_reads_back(device):
    ex = Executor.from_plan(device, make_plan())
    x = np.arange(N, dtype=np.float32)
    ex.write("x", x)
    ex.run("init")
    ex.run("step")
    ex.run("step")                       # args were set once; running again reuses them
    ex.finish()
    np.testing.assert_allclose(ex.read("y"), 1.0 + 8.0 * x)
    assert ex.read("y", (10, 10)).shape == (10, 10)


def test_plain_dicts_are_accepted(device):
    fill = Launch("blas1", "fill", (16,), None, (("buf", "y"), ("float", 7.0), ("int", 16)))
    ex = Executor(device, {"y": 64}, {"blas1": (SOURCE, (), "dict plan")}, {"f": [fill]})
    ex.run("f")
    np.testing.assert_array_equal(ex.read("y"), np.full(16, 7.0, np.float32))


def test_plan_survives_json(device):
    plan = make_plan()
    text = json.dumps(plan.to_json())
    again = KernelPlan.from_json(json.loads(text))
    assert again == plan
    ex = Executor.from_plan(device, again)
    ex.write("x", np.ones(N, np.float32))
    ex.run("init")
    ex.run("step")
    np.testing.assert_allclose(ex.read("y"), np.full(N, 5.0))


def test_same_program_from_two_ops_is_kept_once():
    a = ProgramDecl("p", SOURCE, (), "dense fc1 at m.singa:3:1")
    b = ProgramDecl("p", SOURCE, (), "dense fc2 at m.singa:4:1")
    plan = KernelPlan.build([], [a, b, a], {})
    assert [p.origin for p in plan.programs] == ["dense fc1 at m.singa:3:1; "
                                                 "dense fc2 at m.singa:4:1"]
    with pytest.raises(ValueError, match="both named 'p'"):
        KernelPlan.build([], [a, ProgramDecl("p", SOURCE + " ", (), "")], {})


def test_profile_report_by_kernel_and_tag(device):
    ex = Executor.from_plan(device, make_plan(), profile=True)
    ex.run("init")
    ex.run("step")
    report = ex.profile_report()
    assert report.launches == 3
    assert set(report.by_tag) == {"init", "layer1"}
    assert set(report.by_kernel) == {"fill", "axpy"}
    assert all(t >= 0 for t in report.by_tag.values())
    assert "layer1" in report.table()
    assert ex.profile_report().launches == 0        # reset after reading


def test_sub_buffer_argument(device):
    prog = ProgramDecl("blas1", SOURCE, (), "test plan")
    launch = Launch("blas1", "fill", (16,), (16,),
                    (("buf_offset", "y", 256), ("float", 3.0), ("int", 16)))
    ex = Executor(device, [BufferDecl("y", 512 * 4)], [prog], {"f": [launch]})
    ex.write("y", np.zeros(512, np.float32))
    ex.run("f")
    y = ex.read("y")
    assert (y[256:272] == 3.0).all() and y[:256].sum() == 0 and y[272:].sum() == 0


def test_mistakes_are_named(device):
    plan = make_plan()
    ex = Executor.from_plan(device, plan)
    with pytest.raises(SingaConfigError, match="unknown launch list 'nope'"):
        ex.run("nope")
    with pytest.raises(SingaConfigError, match="unknown buffer 'z'"):
        ex.read("z")
    with pytest.raises(SingaConfigError, match="cannot write"):
        ex.write("x", np.zeros(N + 1, np.float32))
    bad = Launch("missing", "axpy", (1,), None, ())
    with pytest.raises(SingaConfigError, match="unknown program 'missing'"):
        Executor(device, [], [], {"l": [bad]})
    with pytest.raises(ValueError, match="bad argument"):
        Launch("p", "k", (1,), None, (("long", 1),))


def test_profiling_needs_a_profiling_device():
    with pytest.raises(SingaConfigError, match="profile=True"):
        Executor(Device.open(), [], [], {}, profile=True)
