"""Initializers: shapes, dtype, the statistics of what they draw, and fan-in scaling.

Tolerances are a few standard errors of the estimate for the sample sizes used, so they
hold for any seed yet fail for a wrong scale (a factor sqrt(3), sqrt(6) or 2 is far out).
"""
import json
import math

import numpy as np
import pytest

from singa_dsl.errors import SingaConfigError
from singa_dsl.runtime.initializers import INITIALIZERS, InitSpec, initialize

SHAPE = (300, 400)            # 120 000 samples
N = SHAPE[0] * SHAPE[1]


def draw(kind, args=None, shape=SHAPE, fan_in=400, fan_out=300, seed=0):
    return initialize(InitSpec(kind, args or {}), shape, fan_in, fan_out,
                      np.random.default_rng(seed))


def assert_uniform(values, low, high):
    """Bounds respected and reached, mean and std those of U(low, high)."""
    width = high - low
    assert values.min() >= np.float32(low) and values.max() <= np.float32(high)
    assert values.min() < low + 0.001 * width and values.max() > high - 0.001 * width
    std = width / math.sqrt(12)
    assert abs(values.mean() - (low + high) / 2) < 5 * std / math.sqrt(values.size)
    assert values.std() == pytest.approx(std, rel=0.02)


def assert_gaussian(values, mean, std):
    assert abs(values.mean() - mean) < 5 * std / math.sqrt(values.size)
    assert values.std() == pytest.approx(std, rel=0.02)
    # a normal, not a uniform of the same std: about 4.6% of it lies beyond 2 std
    beyond = np.mean(np.abs(values - mean) > 2 * std)
    assert 0.040 < beyond < 0.052


@pytest.mark.parametrize("kind", sorted(INITIALIZERS.names()))
@pytest.mark.parametrize("shape", [(7,), (5, 3), (8, 3, 5, 5), ()])
def test_shape_and_dtype(kind, shape):
    args = {"value": 0.5} if kind == "constant" else {}
    values = draw(kind, args, shape=shape, fan_in=75, fan_out=200)
    assert values.shape == shape
    assert values.dtype == np.float32 and values.flags.c_contiguous


def test_constant():
    values = draw("constant", {"value": -0.25})
    assert np.all(values == np.float32(-0.25))


def test_uniform():
    assert_uniform(draw("uniform", {"low": -0.3, "high": 0.7}), -0.3, 0.7)
    assert_uniform(draw("uniform"), -1.0, 1.0)                 # SINGA's defaults


def test_gaussian():
    assert_gaussian(draw("gaussian", {"mean": 1.5, "std": 0.2}), 1.5, 0.2)
    assert_gaussian(draw("gaussian"), 0.0, 1.0)                # SINGA's defaults
    assert np.all(draw("gaussian", {"mean": 3.0, "std": 0.0}) == 3.0)


@pytest.mark.parametrize("fan_in", [3, 100, 2500])
def test_uniform_fan_in_is_sqrt_3_over_fan_in(fan_in):
    bound = math.sqrt(3.0 / fan_in)
    values = draw("uniform_fan_in", fan_in=fan_in, fan_out=10)
    assert_uniform(values, -bound, bound)
    assert values.var() == pytest.approx(1.0 / fan_in, rel=0.04)
    # a user range is scaled the same way
    assert_uniform(draw("uniform_fan_in", {"low": 0.0, "high": 2.0}, fan_in=fan_in),
                   0.0, 2 * bound)


@pytest.mark.parametrize("fan_in", [3, 100, 2500])
def test_gaussian_fan_in_is_divided_by_sqrt_fan_in(fan_in):
    assert_gaussian(draw("gaussian_fan_in", fan_in=fan_in), 0.0, 1.0 / math.sqrt(fan_in))
    assert_gaussian(draw("gaussian_fan_in", {"mean": 2.0, "std": 3.0}, fan_in=fan_in),
                    2.0 / math.sqrt(fan_in), 3.0 / math.sqrt(fan_in))


@pytest.mark.parametrize("fan_in,fan_out", [(784, 2500), (10, 10), (75, 32)])
def test_glorot_is_true_glorot_uniform(fan_in, fan_out):
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    assert_uniform(draw("glorot", fan_in=fan_in, fan_out=fan_out), -bound, bound)
    # SINGA's kUniformSqrtFanInOut with an explicit range: U(low, high) / sqrt(in + out)
    assert_uniform(draw("glorot", {"low": -1.0, "high": 1.0}, fan_in=fan_in, fan_out=fan_out),
                   -1 / math.sqrt(fan_in + fan_out), 1 / math.sqrt(fan_in + fan_out))


def test_fan_scaling_between_two_fans():
    # Quadrupling fan_in halves the spread of every fan-in initializer.
    for kind in ("uniform_fan_in", "gaussian_fan_in"):
        small, large = draw(kind, fan_in=50), draw(kind, fan_in=200)
        assert small.std() / large.std() == pytest.approx(2.0, rel=0.03), kind
    # glorot depends on fan_in + fan_out, not on either alone
    a = draw("glorot", fan_in=100, fan_out=500)
    b = draw("glorot", fan_in=500, fan_out=100)
    c = draw("glorot", fan_in=100, fan_out=2300)
    assert a.std() == pytest.approx(b.std(), rel=0.03)
    assert a.std() / c.std() == pytest.approx(2.0, rel=0.03)


def test_seeded_draws_repeat_and_differ_between_seeds():
    for kind in ("uniform", "gaussian", "glorot"):
        assert np.array_equal(draw(kind, seed=7), draw(kind, seed=7))
        assert not np.array_equal(draw(kind, seed=7), draw(kind, seed=8))


def test_declarations_ranges_and_cross_checks():
    assert INITIALIZERS.names() == sorted(["constant", "uniform", "gaussian", "uniform_fan_in",
                                           "gaussian_fan_in", "glorot"])
    std = {a.name: a for a in INITIALIZERS["gaussian"].attrs}["std"]
    assert std.range_error(-0.1) is not None and std.range_error(0.1) is None
    positional = [a.name for a in INITIALIZERS["uniform"].attrs if a.positional]
    assert positional == ["low", "high"]
    assert [a.name for a in INITIALIZERS["constant"].attrs if a.required] == ["value"]
    assert INITIALIZERS["uniform"].validate({"low": 0.1, "high": -0.1}) is not None
    assert INITIALIZERS["uniform"].validate({"low": -0.1, "high": 0.1}) is None
    assert INITIALIZERS["glorot"].validate({}) is None
    assert "sqrt(6)" in INITIALIZERS["glorot"].doc


def test_errors():
    with pytest.raises(SingaConfigError) as err:
        draw("gausian")
    assert "did you mean 'gaussian'" in err.value.hint
    with pytest.raises(SingaConfigError, match="missing value"):
        draw("constant")
    with pytest.raises(ValueError):
        draw("uniform_fan_in", fan_in=0)


def test_spec_json_round_trip():
    spec = InitSpec("gaussian", {"mean": 0.0, "std": 0.01})
    back = InitSpec.from_json(json.loads(json.dumps(spec.to_json())))
    assert back == spec
    assert np.array_equal(initialize(back, (4, 4), 4, 4, np.random.default_rng(1)),
                          initialize(spec, (4, 4), 4, 4, np.random.default_rng(1)))
    with pytest.raises(SingaConfigError):
        InitSpec.from_json(["gaussian"])
