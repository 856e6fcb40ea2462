"""Parameter initializers: SINGA's ``ParamGenProto`` init methods, as a registry.

Each initializer declares its attributes and gives ``fn(args, shape, fan_in, fan_out, rng)``
returning a float32 array of ``shape``.  The op that owns a param says what its fan-in and
fan-out are (SINGA reads them off a 2-D shape as ``shape[1]`` and ``shape[0]``; convolution
kernels and RNN weights need the op's own answer, so the caller passes them).

Defaults follow SINGA's ``ParamGenProto`` (value 1, mean 0, std 1, low -1, high 1), except
``glorot``, whose range defaults to ±sqrt(6) so that it is Glorot's uniform (see its doc).
The random stream is a ``numpy.random.Generator`` that the caller seeds, so runs repeat.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from singa_dsl.errors import SingaConfigError
from singa_dsl.registry import Registry
from singa_dsl.schema import Attr, defaults


@dataclass(frozen=True)
class InitDef:
    name: str
    attrs: tuple[Attr, ...]
    doc: str
    fn: Callable[[dict, tuple, int, int, np.random.Generator], np.ndarray]
    # Problems between attributes (low < high) that no single Attr range can express.
    cross_check: Callable[[dict], str | None] | None = field(default=None, compare=False)
    uses_fan: bool = False   # needs fan_in (and maybe fan_out) > 0

    def validate(self, args: dict) -> str | None:
        """A message if the (bound) attributes are inconsistent with each other, else None."""
        if self.cross_check is None:
            return None
        return self.cross_check({**defaults(self.attrs), **args})


INITIALIZERS: Registry[InitDef] = Registry("initializer")


def _initializer(name: str, attrs: tuple[Attr, ...], doc: str, *,
                 cross_check: Callable[[dict], str | None] | None = None,
                 uses_fan: bool = False):
    """Decorator: register ``fn`` as the initializer ``name``."""
    def deco(fn):
        INITIALIZERS.register(name, InitDef(name, attrs, doc, fn, cross_check, uses_fan))
        return fn
    return deco


def _low_below_high(args: dict) -> str | None:
    if not float(args["low"]) < float(args["high"]):
        return f"low must be below high, got low {args['low']} and high {args['high']}"
    return None


def _uniform_attrs(low: float, high: float) -> tuple[Attr, ...]:
    return (Attr("low", "float", low, "lower end of the range", positional=True),
            Attr("high", "float", high, "upper end of the range", positional=True))


def _gaussian_attrs() -> tuple[Attr, ...]:
    return (Attr("mean", "float", 0.0, positional=True),
            Attr("std", "float", 1.0, "standard deviation", positional=True, ge=0))


def _f32(values: np.ndarray) -> np.ndarray:
    # not ascontiguousarray: it turns a 0-d array (shape ()) into shape (1,)
    return np.asarray(values, dtype=np.float32, order="C")


@_initializer("constant", (Attr("value", "float", doc="the value of every element",
                                positional=True),),
              "Every element is `value` (SINGA kConstant).")
def _constant(args, shape, fan_in, fan_out, rng):
    return np.full(shape, float(args["value"]), dtype=np.float32)


@_initializer("uniform", _uniform_attrs(-1.0, 1.0),
              "Uniform in [low, high) (SINGA kUniform; defaults -1, 1 as in SINGA).",
              cross_check=_low_below_high)
def _uniform(args, shape, fan_in, fan_out, rng):
    return _f32(rng.uniform(float(args["low"]), float(args["high"]), size=shape))


@_initializer("gaussian", _gaussian_attrs(),
              "Normal with `mean` and `std` (SINGA kGaussian; defaults 0, 1 as in SINGA).")
def _gaussian(args, shape, fan_in, fan_out, rng):
    return _f32(rng.normal(float(args["mean"]), float(args["std"]), size=shape))


@_initializer("uniform_fan_in", _uniform_attrs(-1.0, 1.0),
              "Uniform in [low, high) times sqrt(3 / fan_in) (SINGA kUniformSqrtFanIn); with "
              "the default range this has variance 1 / fan_in.",
              cross_check=_low_below_high, uses_fan=True)
def _uniform_fan_in(args, shape, fan_in, fan_out, rng):
    values = rng.uniform(float(args["low"]), float(args["high"]), size=shape)
    return _f32(values * math.sqrt(3.0 / fan_in))


@_initializer("gaussian_fan_in", _gaussian_attrs(),
              "Normal with `mean` and `std`, divided by sqrt(fan_in) "
              "(SINGA kGaussianSqrtFanIn); with the defaults its std is 1 / sqrt(fan_in).",
              uses_fan=True)
def _gaussian_fan_in(args, shape, fan_in, fan_out, rng):
    values = rng.normal(float(args["mean"]), float(args["std"]), size=shape)
    return _f32(values / math.sqrt(fan_in))


_SQRT6 = math.sqrt(6.0)


@_initializer("glorot", _uniform_attrs(-_SQRT6, _SQRT6),
              "Uniform in [low, high) divided by sqrt(fan_in + fan_out) (SINGA "
              "kUniformSqrtFanInOut).  The range defaults to [-sqrt(6), sqrt(6)], not SINGA's "
              "[-1, 1], so the result is Glorot & Bengio's U(±sqrt(6 / (fan_in + fan_out))); "
              "SINGA's documentation asks users to put the sqrt(6) in the range themselves.",
              cross_check=_low_below_high, uses_fan=True)
def _glorot(args, shape, fan_in, fan_out, rng):
    values = rng.uniform(float(args["low"]), float(args["high"]), size=shape)
    return _f32(values / math.sqrt(fan_in + fan_out))


@dataclass(frozen=True)
class InitSpec:
    """A chosen initializer and its bound attributes, e.g. InitSpec("gaussian", {"std": 0.01})."""
    kind: str
    args: dict

    def __post_init__(self):
        object.__setattr__(self, "args", dict(self.args))

    def to_json(self) -> dict:
        return {"kind": self.kind, "args": dict(self.args)}

    @classmethod
    def from_json(cls, data: dict) -> "InitSpec":
        if not (isinstance(data, dict) and isinstance(data.get("kind"), str)
                and isinstance(data.get("args", {}), dict)):
            raise SingaConfigError(f"malformed initializer in plan: {data!r}")
        return cls(data["kind"], data.get("args", {}))


def initialize(spec: InitSpec, shape: tuple[int, ...], fan_in: int, fan_out: int,
               rng: np.random.Generator) -> np.ndarray:
    """A new float32 array of ``shape`` filled as ``spec`` says."""
    defn = INITIALIZERS.entry_for(spec.kind, spec.args)
    if defn.uses_fan and (fan_in <= 0 or fan_out < 0):
        # An op's own bug, not the user's: every param with a shape has a positive fan-in.
        raise ValueError(f"initializer {spec.kind} needs fan_in > 0 and fan_out >= 0, "
                         f"got {fan_in} and {fan_out}")
    shape = tuple(int(d) for d in shape)
    values = defn.fn({**defaults(defn.attrs), **spec.args}, shape, fan_in, fan_out, rng)
    assert values.shape == shape and values.dtype == np.float32, (spec, values.shape)
    return values


def initial_values(params, seed: int, loaded: dict):
    """Yield ``(entry, float32 value)`` for every owned param of a plan, in plan order: from
    ``loaded`` (init_from checkpoints, by store name) or drawn from one generator seeded with
    the job's seed — so every rank that calls it draws the same values."""
    rng = np.random.default_rng(seed)
    for p in params:
        if p.store_name in loaded:
            value = loaded[p.store_name]
            if tuple(value.shape) != tuple(p.shape):
                raise SingaConfigError(f"param '{p.store_name}' from init_from has shape "
                                       f"{list(value.shape)}, but {p.key} needs {list(p.shape)}")
        elif p.init is None:
            raise SingaConfigError(f"param '{p.store_name}' ({p.key}) has no initializer and "
                                   "was not found in the init_from checkpoints")
        else:
            value = initialize(InitSpec.from_json(p.init), p.shape, p.fan_in, p.fan_out, rng)
        yield p, np.asarray(value, dtype=np.float32)
