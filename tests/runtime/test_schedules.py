"""Learning-rate schedules against plain transcriptions of SINGA v0.3's LRGen classes.

The transcriptions below are written the way SINGA's C++ reads (int arithmetic where C++
has ints, the stateful index of FixedStepLRGen), not by calling into the module, so a
wrong formula in runtime/schedules.py shows up as a mismatch.
"""
import json
import math

import pytest

from singa_dsl.errors import SingaConfigError
from singa_dsl.runtime.schedules import (SCHEDULES, ScheduleSpec, learning_rate, lr_from_json,
                                         lr_to_json)

STEPS = list(range(0, 1500)) + [9_999, 10_000, 123_456, 1_000_000]


# --- SINGA's code, transcribed -------------------------------------------------------------

def singa_step(base, change_freq, gamma, step):
    # C++: base_lr * pow(gamma, step / change_freq) with int step, int change_freq
    return base * math.pow(gamma, int(step / change_freq))


def singa_linear(base, change_freq, final_lr, step):
    r = step * 1.0 / change_freq
    return (1.0 - r) * base + r * final_lr


def singa_exponential(base, change_freq, step):
    return base / math.pow(2, step * 1.0 / change_freq)


def singa_inverse(base, gamma, pow_, step):
    return base * math.pow(1.0 + gamma * step, -pow_)


def singa_inverse_t(base, final_lr, step):
    return base / (1.0 + step * 1.0 / final_lr)


class SingaFixedStep:
    """FixedStepLRGen: an index that starts at 0 and moves up one boundary per call."""

    def __init__(self, steps, lrs):
        self.steps, self.lrs, self.last_idx = steps, lrs, 0

    def get(self, step):
        if self.last_idx < len(self.steps) - 1 and step >= self.steps[self.last_idx + 1]:
            self.last_idx += 1
        return self.lrs[self.last_idx]


def assert_close(got, want):
    assert got == pytest.approx(want, rel=1e-12, abs=1e-300), (got, want)


# --- each schedule over many steps ---------------------------------------------------------

def test_fixed_and_plain_numbers():
    spec = ScheduleSpec("fixed", {"base": 0.05})
    for step in STEPS:
        assert learning_rate(spec, step) == 0.05
        assert learning_rate(0.05, step) == 0.05
    assert learning_rate(3, 7) == 3.0 and isinstance(learning_rate(3, 7), float)


@pytest.mark.parametrize("every,gamma", [(60, 0.997), (7, 0.5), (1, 0.9), (100, 2.0)])
def test_step_matches_singa(every, gamma):
    spec = ScheduleSpec("step", {"base": 0.001, "every": every, "gamma": gamma})
    for step in STEPS:
        if gamma > 1 and step > 10_000:
            continue      # 2^(10^4) overflows a double; SINGA would print inf too
        assert_close(learning_rate(spec, step), singa_step(0.001, every, gamma, step))


def test_step_is_a_staircase_at_integer_division_boundaries():
    spec = ScheduleSpec("step", {"base": 1.0, "every": 10, "gamma": 0.5})
    # Within a block of `every` steps the lr does not move; it halves exactly at multiples.
    assert learning_rate(spec, 0) == 1.0
    assert learning_rate(spec, 9) == 1.0
    assert learning_rate(spec, 10) == 0.5
    assert learning_rate(spec, 19) == 0.5
    assert learning_rate(spec, 20) == 0.25
    assert learning_rate(spec, 29) == 0.25
    assert learning_rate(spec, 30) == 0.125


def test_step_gamma_defaults_to_singas_one():
    spec = ScheduleSpec("step", {"base": 0.3, "every": 5})
    assert [learning_rate(spec, s) for s in (0, 5, 50, 5000)] == [0.3] * 4


@pytest.mark.parametrize("at,lrs", [
    ([0, 60000, 65000], [0.001, 1e-4, 1e-5]),
    ([0, 1, 2, 3], [4.0, 3.0, 2.0, 1.0]),
    ([100, 200], [0.5, 0.25]),            # before at[0]: SINGA's index starts at 0
    ([0], [0.125]),
])
def test_fixed_step_matches_singas_stateful_index(at, lrs):
    spec = ScheduleSpec("fixed_step", {"at": at, "lr": lrs})
    singa = SingaFixedStep(at, lrs)
    for step in range(0, 70_001):       # SINGA's index moves one boundary per call
        want = singa.get(step)
        if step in (0, 1, 2, 3, 99, 100, 199, 200, 59_999, 60_000, 64_999, 65_000) \
                or step % 997 == 0:
            assert learning_rate(spec, step) == want, step


def test_fixed_step_boundaries_exactly():
    spec = ScheduleSpec("fixed_step", {"at": [0, 60000, 65000], "lr": [0.001, 1e-4, 1e-5]})
    assert learning_rate(spec, 59_999) == 0.001
    assert learning_rate(spec, 60_000) == 1e-4
    assert learning_rate(spec, 64_999) == 1e-4
    assert learning_rate(spec, 65_000) == 1e-5
    assert learning_rate(spec, 10**7) == 1e-5


@pytest.mark.parametrize("every,final", [(100, 0.0), (1000, 0.001), (3, 0.5)])
def test_linear_matches_singa_including_past_the_end(every, final):
    spec = ScheduleSpec("linear", {"base": 0.1, "final": final, "every": every})
    for step in STEPS:
        assert learning_rate(spec, step) == pytest.approx(
            singa_linear(0.1, every, final, step), rel=1e-12, abs=1e-15)
    # half way is the mean; SINGA's formula is not clamped after `every` steps
    assert learning_rate(spec, every) == pytest.approx(final, abs=1e-15)
    if every % 2 == 0:
        assert learning_rate(spec, every // 2) == pytest.approx((0.1 + final) / 2)


@pytest.mark.parametrize("every", [1, 7, 300])
def test_exponential_matches_singa(every):
    spec = ScheduleSpec("exponential", {"base": 0.02, "every": every})
    for step in STEPS:
        want = singa_exponential(0.02, every, step) if step / every < 1000 else 0.0
        assert_close(learning_rate(spec, step), want)
    # float division: smooth, not a staircase
    if every > 1:
        assert 0.01 < learning_rate(spec, 1) < 0.02
    assert learning_rate(spec, every) == pytest.approx(0.01)


@pytest.mark.parametrize("gamma,pow_", [(1e-4, 0.75), (0.5, 2.0), (1.0, 0.0)])
def test_inverse_matches_singa(gamma, pow_):
    spec = ScheduleSpec("inverse", {"base": 0.01, "gamma": gamma, "pow": pow_})
    for step in STEPS:
        assert_close(learning_rate(spec, step), singa_inverse(0.01, gamma, pow_, step))


def test_inverse_defaults_are_singas_gamma_1_pow_0():
    spec = ScheduleSpec("inverse", {"base": 0.01})
    assert [learning_rate(spec, s) for s in (0, 10, 10_000)] == [0.01] * 3
    spec = ScheduleSpec("inverse", {"base": 0.01, "pow": 1.0})      # gamma still 1
    assert learning_rate(spec, 9) == pytest.approx(0.001)


@pytest.mark.parametrize("final", [1.0, 100.0, 2500.0])
def test_inverse_t_matches_singa(final):
    spec = ScheduleSpec("inverse_t", {"base": 0.3, "final": final})
    for step in STEPS:
        assert_close(learning_rate(spec, step), singa_inverse_t(0.3, final, step))
    assert learning_rate(spec, int(final)) == pytest.approx(0.15)


# --- declarations, validation, errors ------------------------------------------------------

def test_registry_has_exactly_the_language_schedules():
    assert SCHEDULES.names() == sorted(["fixed", "step", "fixed_step", "linear",
                                        "exponential", "inverse", "inverse_t"])
    for name, defn in SCHEDULES.items():
        assert defn.name == name and defn.doc
        positional = [a.name for a in defn.attrs if a.positional]
        assert positional == ([] if name == "fixed_step" else ["base"]), name


def test_attr_ranges_reject_nonsense():
    every = {a.name: a for a in SCHEDULES["step"].attrs}["every"]
    assert every.range_error(0) is not None and every.range_error(1) is None
    base = {a.name: a for a in SCHEDULES["fixed"].attrs}["base"]
    assert base.range_error(-0.1) is not None
    final = {a.name: a for a in SCHEDULES["inverse_t"].attrs}["final"]
    assert final.range_error(0) is not None


def test_fixed_step_validate():
    v = SCHEDULES["fixed_step"].validate
    assert v({"at": [0, 10, 20], "lr": [0.1, 0.01, 0.001]}) is None
    assert "2 entries" in v({"at": [0, 10], "lr": [0.1, 0.01, 0.001]})
    assert "increasing" in v({"at": [0, 20, 10], "lr": [0.1, 0.01, 0.001]})
    assert "increasing" in v({"at": [0, 10, 10], "lr": [0.1, 0.01, 0.001]})
    assert v({"at": 5, "lr": 0.1}) is None            # one number is a one-element list
    assert SCHEDULES["step"].validate({"base": 0.1, "every": 3}) is None


def test_unknown_kind_and_missing_attr_are_config_errors():
    with pytest.raises(SingaConfigError) as err:
        learning_rate(ScheduleSpec("stepp", {"base": 0.1, "every": 2}), 0)
    assert "did you mean 'step'" in err.value.hint
    with pytest.raises(SingaConfigError, match="missing every"):
        learning_rate(ScheduleSpec("step", {"base": 0.1}), 0)
    with pytest.raises(ValueError):
        learning_rate(0.1, -1)


def test_spec_json_round_trip_through_text():
    specs = [ScheduleSpec("fixed_step", {"at": [0, 60000], "lr": [0.001, 1e-4]}),
             ScheduleSpec("step", {"base": 0.001, "every": 60, "gamma": 0.997}),
             ScheduleSpec("inverse", {"base": 0.01})]
    for spec in specs:
        text = json.dumps(spec.to_json())
        back = ScheduleSpec.from_json(json.loads(text))
        assert back == spec
        assert learning_rate(back, 60_001) == learning_rate(spec, 60_001)
    assert lr_from_json(json.loads(json.dumps(lr_to_json(0.5)))) == 0.5
    assert lr_from_json(json.loads(json.dumps(lr_to_json(specs[1])))) == specs[1]
    with pytest.raises(SingaConfigError):
        ScheduleSpec.from_json({"args": {}})


def test_spec_is_immutable_and_copies_its_args():
    args = {"at": [0, 10], "lr": [1.0, 0.5]}
    spec = ScheduleSpec("fixed_step", args)
    args["at"].append(20)
    assert spec.args["at"] == (0, 10)
    with pytest.raises(AttributeError):
        spec.kind = "fixed"
