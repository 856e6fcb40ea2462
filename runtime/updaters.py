"""Parameter updaters: SINGA's server-side update rules, as a registry.

Each rule has three forms that must agree:

* its declared attributes (``Attr``), which the checker binds from ``updater KIND {...}``;
* ``reference``: a float64 numpy transcription of SINGA v0.3's ``src/utils/updater.cc``,
  the ground truth the tests compare the kernels with;
* an OpenCL kernel ``update_<kind>`` in ``updaters.cl``, which the servers run.

Every rule starts with SINGA's common prologue, in SINGA's order::

    if the rule clips and clip_hi > clip_lo: g = clip(g, clip_lo, clip_hi)
    g *= grad_scale ; if wd > 0: g += wd * w

SINGA clips only in SGD, Nesterov, AdaGrad and RMSProp; AdaDelta, Adam and AdaMax accept
``clip`` (every kind takes it) but, as in SINGA, ignore it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from importlib import resources
from typing import Callable

import numpy as np

from singa_dsl.errors import SingaConfigError
from singa_dsl.registry import Registry
from singa_dsl.schema import Attr, defaults

from .schedules import ScheduleSpec, _freeze, _thaw, learning_rate, lr_from_json, lr_to_json

# Elements per work-item in updaters.cl (its UPD_CHUNK); a test keeps the two equal.
UPDATE_CHUNK = 8
UPDATE_LOCAL_SIZE = 64

# The update kernels' arguments, in order (updaters.cl's UPD_ARGS).
KERNEL_ARGS = ("w", "g", "h", "u", "n", "lr", "wd", "grad_scale", "clip_lo", "clip_hi",
               "hyper0", "hyper1", "delta")
ARG_INDEX = {name: i for i, name in enumerate(KERNEL_ARGS)}

# reference(w, g, state, lr, wd, grad_scale, args)
Reference = Callable[[np.ndarray, np.ndarray, dict, float, float, float, dict], None]


def clip_range(clip) -> tuple[float, float] | None:
    """``clip`` as written (None, c, or [lo, hi]) as the interval it means, or None."""
    if clip is None:
        return None
    if isinstance(clip, (list, tuple)):
        lo, hi = clip
        return float(lo), float(hi)
    return -float(clip), float(clip)


def _check_clip(clip) -> str | None:
    if clip is None:
        return None
    if isinstance(clip, (list, tuple)):
        if len(clip) != 2:
            return f"clip takes a number c or a pair [low, high], got {len(clip)} numbers"
        if not clip[0] < clip[1]:
            return f"clip's low must be below its high, got [{clip[0]}, {clip[1]}]"
        return None
    if not clip > 0:
        return f"clip must be > 0 (it means [-clip, clip]), got {clip}"
    return None


@dataclass(frozen=True)
class UpdaterDef:
    name: str
    attrs: tuple[Attr, ...]
    doc: str
    state_names: tuple[str, ...]       # SINGA's per-param buffers: "history", "update"
    reference: Reference
    kernel_name: str
    clips: bool = False                # whether SINGA applies clip_low/clip_high here
    hyper_names: tuple[str, ...] = ()  # attrs passed to the kernel as hyper0, hyper1
    # The state a configuration really uses (sgd without momentum keeps none).
    state_used: Callable[[dict], tuple[str, ...]] | None = field(default=None, compare=False)

    def bind(self, args: dict) -> dict:
        """``args`` with every default filled in."""
        return {**defaults(self.attrs), **args}

    def validate(self, args: dict) -> str | None:
        """A message if the (bound) attributes are inconsistent, else None."""
        return _check_clip(self.bind(args).get("clip"))

    def state_for(self, args: dict) -> tuple[str, ...]:
        """The state buffers this configuration reads and writes."""
        if self.state_used is None:
            return self.state_names
        return self.state_used(self.bind(args))

    def new_state(self, shape, dtype=np.float64) -> dict[str, np.ndarray]:
        """Zeroed state buffers, as SINGA starts them."""
        return {name: np.zeros(shape, dtype=dtype) for name in self.state_names}


UPDATERS: Registry[UpdaterDef] = Registry("updater")

_COMMON = (
    Attr("lr", "schedule", doc="learning rate: a number or a schedule"),
    Attr("weight_decay", "float", 0.0, "L2 penalty: adds weight_decay * w to the gradient",
         ge=0),
    Attr("clip", "clip", None, "clip the gradient into [-c, c] or [low, high] first "
         "(sgd, nesterov, adagrad, rmsprop only, as in SINGA)"),
    Attr("delta", "float", 1e-8, "added under square roots (and to adamax's U)", gt=0),
)


def _updater(name: str, doc: str, kind_attrs: tuple[Attr, ...], state_names: tuple[str, ...],
             *, clips: bool, hyper_names: tuple[str, ...] = (),
             state_used: Callable[[dict], tuple[str, ...]] | None = None):
    """Decorator: register a rule ``rule(w, g, state, lr, args)`` (g already prepared)."""
    attrs = _COMMON + kind_attrs

    def deco(rule):
        def reference(w, g, state, lr, wd, grad_scale, args, dtype=np.float64):
            a = {**defaults(attrs), **args}
            # A copy: the kernel takes g as const, so the reference leaves it alone too.
            # float64 for the tests' oracle; the parameter servers work in float32 as the
            # kernels do (dtype=np.float32).
            g = np.array(g, dtype=dtype)
            bounds = clip_range(a["clip"]) if clips else None
            if bounds is not None and bounds[1] > bounds[0]:
                np.clip(g, bounds[0], bounds[1], out=g)
            g *= grad_scale
            if wd > 0:
                g += wd * w
            rule(w, g, state, lr, a)

        reference.__name__ = f"reference_{name}"
        reference.__doc__ = rule.__doc__
        UPDATERS.register(name, UpdaterDef(name, attrs, doc, state_names, reference,
                                           f"update_{name}", clips, hyper_names, state_used))
        return rule
    return deco


def _decay(name: str, default: float, doc: str) -> Attr:
    return Attr(name, "float", default, doc, ge=0, le=1)


@_updater("sgd", "SGD, with momentum if momentum > 0 (SINGA kSGD).",
          (Attr("momentum", "float", 0.0, "momentum (0: plain SGD)", ge=0),),
          ("history",), clips=True, hyper_names=("momentum",),
          state_used=lambda a: ("history",) if a["momentum"] > 0 else ())
def _sgd(w, g, state, lr, a):
    """H = m*H - lr*g; w += H  (m > 0)  |  w -= lr*g  (m = 0)"""
    m = a["momentum"]
    if m > 0:
        h = state["history"]
        h *= m
        h -= lr * g
        w += h
    else:
        w -= lr * g


@_updater("nesterov", "Nesterov's accelerated gradient (SINGA kNesterov).",
          (Attr("momentum", "float", 0.9, "momentum", ge=0),),
          ("history",), clips=True, hyper_names=("momentum",))
def _nesterov(w, g, state, lr, a):
    """t = H; H = m*H + lr*g; w -= (1+m)*H - m*t"""
    m = a["momentum"]
    h = state["history"]
    previous = h.copy()
    h *= m
    h += lr * g
    w -= (1 + m) * h - m * previous


@_updater("adagrad", "AdaGrad (SINGA kAdaGrad; SINGA ignores momentum here, so it has none).",
          (), ("history",), clips=True)
def _adagrad(w, g, state, lr, a):
    """H += g^2; w -= lr*g / sqrt(H + delta)"""
    h = state["history"]
    h += g * g
    w -= lr * g / np.sqrt(h + a["delta"])


@_updater("rmsprop", "RMSProp (SINGA kRMSProp).",
          (_decay("rho", 0.9, "decay of the mean square"),),
          ("history",), clips=True, hyper_names=("rho",))
def _rmsprop(w, g, state, lr, a):
    """H = rho*H + (1-rho)*g^2; w -= lr*g / sqrt(H + delta)"""
    rho = a["rho"]
    h = state["history"]
    h *= rho
    h += (1 - rho) * g * g
    w -= lr * g / np.sqrt(h + a["delta"])


@_updater("adadelta", "AdaDelta, scaled by lr as SINGA does (SINGA kAdaDelta; no clipping).",
          (_decay("rho", 0.9, "decay of both running averages"),),
          ("history", "update"), clips=False, hyper_names=("rho",))
def _adadelta(w, g, state, lr, a):
    """H = rho*H + (1-rho)*g^2; t = g*sqrt(U+delta)/sqrt(H+delta);
    U = rho*U + (1-rho)*t^2; w -= lr*t"""
    rho, delta = a["rho"], a["delta"]
    h, u = state["history"], state["update"]
    h *= rho
    h += (1 - rho) * g * g
    t = g * np.sqrt(u + delta) / np.sqrt(h + delta)
    u *= rho
    u += (1 - rho) * t * t
    w -= lr * t


@_updater("adam", "Adam without bias correction, as SINGA has it (SINGA kAdam; no clipping).",
          (_decay("beta1", 0.9, "decay of the mean"),
           _decay("beta2", 0.999, "decay of the mean square")),
          ("history", "update"), clips=False, hyper_names=("beta1", "beta2"))
def _adam(w, g, state, lr, a):
    """H = b1*H + (1-b1)*g; U = b2*U + (1-b2)*g^2; w -= lr*H / sqrt(U + delta)"""
    b1, b2 = a["beta1"], a["beta2"]
    h, u = state["history"], state["update"]
    h *= b1
    h += (1 - b1) * g
    u *= b2
    u += (1 - b2) * g * g
    w -= lr * h / np.sqrt(u + a["delta"])


@_updater("adamax", "AdaMax, with delta added to U every step as SINGA does "
          "(SINGA kAdamMax; no clipping).",
          (_decay("beta1", 0.9, "decay of the mean"),
           _decay("beta2", 0.999, "decay of the infinity norm")),
          ("history", "update"), clips=False, hyper_names=("beta1", "beta2"))
def _adamax(w, g, state, lr, a):
    """H = b1*H + (1-b1)*g; U = max(b2*U, |g|) + delta; w -= lr*H / U"""
    b1, b2 = a["beta1"], a["beta2"]
    h, u = state["history"], state["update"]
    h *= b1
    h += (1 - b1) * g
    np.maximum(u * b2, np.abs(g), out=u)
    u += a["delta"]
    w -= lr * h / u


@dataclass(frozen=True)
class UpdaterSpec:
    """A chosen rule: its kind, learning rate (number or schedule) and its other attrs."""
    kind: str
    lr: ScheduleSpec | float
    args: dict

    def __post_init__(self):
        args = {k: _freeze(v) for k, v in dict(self.args).items()}
        args.pop("lr", None)    # the learning rate lives in .lr only
        object.__setattr__(self, "args", args)

    def to_json(self) -> dict:
        return {"kind": self.kind, "lr": lr_to_json(self.lr),
                "args": {k: _thaw(v) for k, v in self.args.items()}}

    @classmethod
    def from_json(cls, data: dict) -> "UpdaterSpec":
        if not (isinstance(data, dict) and isinstance(data.get("kind"), str)
                and "lr" in data and isinstance(data.get("args", {}), dict)):
            raise SingaConfigError(f"malformed updater in plan: {data!r}")
        return cls(data["kind"], lr_from_json(data["lr"]), data.get("args", {}))

    @property
    def definition(self) -> UpdaterDef:
        defn = UPDATERS.get(self.kind)
        if defn is None:
            raise SingaConfigError(f"unknown updater '{self.kind}'",
                                   hint=UPDATERS.unknown_hint(self.kind))
        return defn

    def bound_args(self) -> dict:
        """The attrs other than lr, with defaults filled in."""
        return {k: v for k, v in self.definition.bind(self.args).items() if k != "lr"}


def kernel_source() -> str:
    """The OpenCL C source of every ``update_<kind>`` kernel."""
    return resources.files("singa_dsl.runtime").joinpath("updaters.cl").read_text()


def kernel_args(spec: UpdaterSpec, step: int, lr_scale: float = 1.0, wd_scale: float = 1.0,
                grad_scale: float = 1.0) -> dict[str, float]:
    """The kernel's scalar arguments after ``n``, in the kernel's order:
    lr, wd, grad_scale, clip_lo, clip_hi, hyper0, hyper1, delta."""
    defn = spec.definition
    a = spec.bound_args()
    bounds = clip_range(a["clip"]) if defn.clips else None
    clip_lo, clip_hi = bounds if bounds is not None else (0.0, 0.0)
    hypers = [float(a[name]) for name in defn.hyper_names] + [0.0, 0.0]
    return {
        "lr": learning_rate(spec.lr, step) * lr_scale,
        "wd": float(a["weight_decay"]) * wd_scale,
        "grad_scale": float(grad_scale),
        "clip_lo": clip_lo,
        "clip_hi": clip_hi,
        "hyper0": hypers[0],
        "hyper1": hypers[1],
        "delta": float(a["delta"]),
    }


def launch_size(n: int, local: int = UPDATE_LOCAL_SIZE) -> tuple[int, int]:
    """(global, local) work sizes for an update of ``n`` elements."""
    items = max(1, math.ceil(n / UPDATE_CHUNK))
    return math.ceil(items / local) * local, local
