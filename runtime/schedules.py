"""Learning-rate schedules: SINGA's ``LRGenProto`` change methods, as a registry.

Each schedule declares its attributes (``Attr``) so the checker can bind
``step(0.01, every: 60, gamma: 0.9)`` and the language reference can list it, and gives a
pure function ``fn(args, step) -> float``.  The formulas follow SINGA v0.3's
``src/utils/updater.cc`` code, not its documentation, where the two differ:

* ``step``       integer division ``step / change_freq`` (a staircase, not a smooth decay);
* ``fixed_step`` the lr of the *last* boundary ``at[i] <= step``;
* ``linear`` and ``exponential`` use float division (smooth).

A schedule travels to the runtime inside the plan file as a ``ScheduleSpec``, which is a
plain JSON object (``{"kind": ..., "args": {...}}``) so nothing needs pickling.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

from singa_dsl.errors import SingaConfigError
from singa_dsl.registry import Registry
from singa_dsl.schema import Attr, defaults


@dataclass(frozen=True)
class ScheduleDef:
    name: str
    attrs: tuple[Attr, ...]
    doc: str
    fn: Callable[[dict, int], float]
    # Problems between attributes that no single Attr range can express (e.g. two lists of
    # equal length).  Takes the bound args, returns a message or None.
    cross_check: Callable[[dict], str | None] | None = field(default=None, compare=False)

    def validate(self, args: dict) -> str | None:
        """A message if the (bound) attributes are inconsistent with each other, else None."""
        if self.cross_check is None:
            return None
        return self.cross_check({**defaults(self.attrs), **args})


SCHEDULES: Registry[ScheduleDef] = Registry("schedule")


def _schedule(name: str, attrs: tuple[Attr, ...], doc: str,
              cross_check: Callable[[dict], str | None] | None = None):
    """Decorator: register ``fn`` as the schedule ``name``."""
    def deco(fn):
        SCHEDULES.register(name, ScheduleDef(name, attrs, doc, fn, cross_check))
        return fn
    return deco


# The base learning rate, given by position as in ``step(0.01, every: 60)``.
_BASE = Attr("base", "float", doc="base learning rate (SINGA's base_lr)", positional=True, ge=0)


@_schedule("fixed", (_BASE,), "lr = base at every step (SINGA kFixed).")
def _fixed(args: dict, step: int) -> float:
    return float(args["base"])


@_schedule("step", (
    _BASE,
    Attr("every", "int", doc="steps between changes (change_freq)", gt=0),
    Attr("gamma", "float", 1.0, "factor applied every `every` steps", ge=0),
), "lr = base * gamma^floor(step / every): a staircase (SINGA kStep, integer division).")
def _step(args: dict, step: int) -> float:
    # SINGA writes `step / change_freq` with two ints: C++ integer division.
    return float(args["base"]) * float(args["gamma"]) ** (step // int(args["every"]))


def _as_tuple(value) -> tuple:
    """Kinds "ints"/"floats" accept a single number as a one-element list."""
    return tuple(value) if isinstance(value, (list, tuple)) else (value,)


def _check_fixed_step(args: dict) -> str | None:
    at, lrs = _as_tuple(args.get("at", ())), _as_tuple(args.get("lr", ()))
    if len(at) == 0:
        return "fixed_step needs at least one step in at"
    if len(at) != len(lrs):
        return (f"fixed_step needs one lr per step: at has {len(at)} entries, "
                f"lr has {len(lrs)}")
    for prev, nxt in zip(at, at[1:]):
        if not nxt > prev:
            return f"fixed_step's at must be increasing, but {nxt} follows {prev}"
    return None


@_schedule("fixed_step", (
    Attr("at", "ints", doc="steps where the lr changes, increasing", ge=0),
    Attr("lr", "floats", doc="the lr from each of those steps on", ge=0),
), "lr = lr[i] for the last i with step >= at[i]; steps before at[0] use lr[0], as SINGA's "
   "index starts at 0 (SINGA kFixedStep; its base_lr is unused).",
   cross_check=_check_fixed_step)
def _fixed_step(args: dict, step: int) -> float:
    at, lrs = _as_tuple(args["at"]), _as_tuple(args["lr"])
    index = 0
    for i, boundary in enumerate(at):
        if step >= boundary:
            index = i
    return float(lrs[index])


@_schedule("linear", (
    _BASE,
    Attr("final", "float", doc="lr reached at step `every` (final_lr)", ge=0),
    Attr("every", "int", doc="steps to go from base to final (change_freq)", gt=0),
), "lr = (1 - r) * base + r * final with r = step / every (float division; SINGA kLinear). "
   "As in SINGA it is not clamped: past step `every` it keeps moving the same way.")
def _linear(args: dict, step: int) -> float:
    r = step / int(args["every"])
    return (1.0 - r) * float(args["base"]) + r * float(args["final"])


@_schedule("exponential", (
    _BASE,
    Attr("every", "int", doc="steps over which the lr halves (change_freq)", gt=0),
), "lr = base / 2^(step / every) (float division; SINGA kExponential).")
def _exponential(args: dict, step: int) -> float:
    # Written as a negative power so very late steps underflow to 0 instead of overflowing.
    return float(args["base"]) * 2.0 ** (-(step / int(args["every"])))


@_schedule("inverse", (
    _BASE,
    Attr("gamma", "float", 1.0, ge=0),
    Attr("pow", "float", 0.0, ge=0),
), "lr = base * (1 + gamma * step)^(-pow) (SINGA kInverse; defaults gamma 1, pow 0 as in "
   "SINGA, which makes it constant until pow is set).")
def _inverse(args: dict, step: int) -> float:
    return float(args["base"]) * (1.0 + float(args["gamma"]) * step) ** (-float(args["pow"]))


@_schedule("inverse_t", (
    _BASE,
    Attr("final", "float", doc="steps until the lr is halved (SINGA's final_lr)", gt=0),
), "lr = base / (1 + step / final) (SINGA kInverseT).")
def _inverse_t(args: dict, step: int) -> float:
    return float(args["base"]) / (1.0 + step / float(args["final"]))


def _freeze(value):
    """Lists become tuples so a spec is immutable and compares equal after a JSON trip."""
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value


def _thaw(value):
    """Tuples become lists: what json.dumps would write anyway, made explicit."""
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


@dataclass(frozen=True)
class ScheduleSpec:
    """A chosen schedule and its bound attributes, e.g. ScheduleSpec("step", {...})."""
    kind: str
    args: dict

    def __post_init__(self):
        object.__setattr__(self, "args", {k: _freeze(v) for k, v in dict(self.args).items()})

    def to_json(self) -> dict:
        return {"kind": self.kind, "args": {k: _thaw(v) for k, v in self.args.items()}}

    @classmethod
    def from_json(cls, data: dict) -> "ScheduleSpec":
        if not (isinstance(data, dict) and isinstance(data.get("kind"), str)
                and isinstance(data.get("args", {}), dict)):
            raise SingaConfigError(f"malformed learning-rate schedule in plan: {data!r}")
        return cls(data["kind"], data.get("args", {}))


def lr_to_json(spec: ScheduleSpec | float) -> dict | float:
    """A learning rate (number or schedule) as it is written in a plan file."""
    return spec.to_json() if isinstance(spec, ScheduleSpec) else float(spec)


def lr_from_json(data) -> ScheduleSpec | float:
    if isinstance(data, (int, float)) and not isinstance(data, bool):
        return float(data)
    return ScheduleSpec.from_json(data)


def bound_args(spec: ScheduleSpec) -> dict:
    """The spec's args with defaults filled; an error for an unknown kind or a missing attr."""
    defn = SCHEDULES.entry_for(spec.kind, spec.args, "schedule")
    return {**defaults(defn.attrs), **spec.args}


def learning_rate(spec: ScheduleSpec | float | int, step: int) -> float:
    """The learning rate at ``step`` (0-based, as SINGA's server passes it)."""
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if isinstance(spec, ScheduleSpec):
        args = bound_args(spec)
        try:
            value = SCHEDULES[spec.kind].fn(args, int(step))
        except OverflowError:
            value = math.inf
    elif isinstance(spec, (int, float)) and not isinstance(spec, bool):
        value = float(spec)
    else:
        raise TypeError(f"a learning rate is a number or a ScheduleSpec, got {spec!r}")
    if not math.isfinite(value):
        raise SingaConfigError(f"learning rate at step {step} is {value}")
    return value
