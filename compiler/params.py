"""Resolve each param slot of a layer to its ParamSpec: an initializer, ``param(...)`` with
scales and a binding name, or ``share(other.w, transpose: true)``."""
from __future__ import annotations

from singa_dsl.errors import Diagnostics, SingaConfigError, SingaNameError, SingaShapeError, Span
from singa_dsl.runtime.initializers import INITIALIZERS
from singa_dsl.schema import Attr
from .model import InitChoice, ParamSpec
from .ops import ParamSlot
from .values import INVALID, CallValue, RefValue, bind, bind_registered_call

PARAM_ATTRS = (
    Attr("init", "init", None, "initializer, e.g. gaussian(0, 0.01)"),
    Attr("lr_scale", "float", 1.0, "multiplies the learning rate for this param", ge=0),
    Attr("wd_scale", "float", 1.0, "multiplies the weight decay for this param", ge=0),
    Attr("name", "str", None, "binds the param across jobs (init_from) and checkpoints"),
)
SHARE_ATTRS = (
    Attr("param", "any", doc="the param whose values to use, e.g. enc1.w", positional=True),
    Attr("transpose", "bool", False, "use the shared values transposed"),
)


def slot_value(values: dict, slot: ParamSlot, groups: bool):
    """The attribute that sets a slot: its own name, else the w:/b: group shorthand."""
    own = values.get(slot.name)
    if own is not None or not groups:
        return own
    return values.get("w" if slot.role == "weight" else "b")


def resolve_param(layer: str, slot: ParamSlot, value, span: Span, diag: Diagnostics) -> ParamSpec:
    key = f"{layer}.{slot.name}"
    base = dict(key=key, layer=layer, slot=slot.name, shape=slot.shape, role=slot.role,
                fan_in=slot.fan_in, fan_out=slot.fan_out, span=span)
    if value is None or value is INVALID:
        kind, args = slot.default_init
        return ParamSpec(init=InitChoice(kind, dict(args)), **base)
    if not isinstance(value, CallValue):
        diag.error(SingaConfigError, f"param '{slot.name}' of layer '{layer}' needs an "
                   "initializer, param(...) or share(...)", span,
                   "for a fixed value write constant(v)")
        return ParamSpec(init=None, **base)
    if value.func == "param":
        b = bind("param()", PARAM_ATTRS, value.args, value.kwargs, value.node, value.span, diag)
        v = b.values
        init = None
        if v["init"] not in (None, INVALID):
            init = initializer(v["init"], b.spans.get("init", value.span), diag)
        return ParamSpec(init=init, lr_scale=_num(v["lr_scale"], 1.0),
                         wd_scale=_num(v["wd_scale"], 1.0),
                         name=v["name"] if isinstance(v["name"], str) else None, **base)
    if value.func == "share":
        b = bind("share()", SHARE_ATTRS, value.args, value.kwargs, value.node, value.span, diag)
        target = b.values["param"]
        if not isinstance(target, RefValue) or len(target.parts) < 2:
            if target is not INVALID:
                diag.error(SingaConfigError, "share() takes the param to share, e.g. "
                           "share(enc1.w)", b.spans.get("param", value.span))
            return ParamSpec(init=None, **base)
        return ParamSpec(init=None, share_of=target.dotted,
                         transpose=bool(b.values["transpose"]), span=b.spans["param"],
                         **{k: v for k, v in base.items() if k != "span"})
    return ParamSpec(init=initializer(value, span, diag), **base)


def initializer(value, span: Span, diag: Diagnostics) -> InitChoice | None:
    if not isinstance(value, CallValue):
        diag.error(SingaConfigError, "expected an initializer such as uniform(-0.1, 0.1)", span,
                   "initializers: " + ", ".join(INITIALIZERS.names()))
        return None
    args = bind_registered_call(INITIALIZERS, "initializer", value, span, diag)
    return None if args is None else InitChoice(value.func, dict(args))


def check_shares_and_names(params: list[ParamSpec], init_from: tuple, diag: Diagnostics):
    table = {p.key: p for p in params}
    names: dict[str, ParamSpec] = {}
    for p in params:
        if p.name is not None:
            if p.name in names:
                diag.error(SingaNameError, f"param name '{p.name}' is used twice",
                           p.span, f"also used by {names[p.name].key} (line "
                           f"{names[p.name].span.line})")
            names[p.name] = p
            if p.init is None and p.share_of is None and not init_from:
                diag.error(SingaConfigError, f"param '{p.name}' ({p.key}) has no initializer "
                           "and no init_from to load it", p.span,
                           "add init: ... to param(...), or init_from: [\"runs/...\"] to the job")
        if p.share_of is None:
            continue
        owner = table.get(p.share_of)
        if p.share_of == p.key:
            diag.error(SingaConfigError, f"{p.key} cannot share itself", p.span)
            continue
        if owner is None:
            diag.error(SingaNameError, f"share() of unknown param '{p.share_of}'", p.span,
                       _close(p.share_of, table))
            continue
        if owner.share_of is not None:
            diag.error(SingaConfigError, f"'{p.share_of}' is itself shared; share its owner "
                       f"'{owner.share_of}' instead", p.span)
            continue
        want = tuple(reversed(owner.shape)) if p.transpose else owner.shape
        if want != p.shape:
            t = " transposed" if p.transpose else ""
            diag.error(SingaShapeError, f"cannot share {p.share_of}{t}: its shape is "
                       f"{list(want)} but {p.key} needs {list(p.shape)}", p.span,
                       "try transpose: " + ("false" if p.transpose else "true")
                       if tuple(reversed(owner.shape)) == p.shape or owner.shape == p.shape
                       else None)


def _num(v, default: float) -> float:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else default


def _close(name: str, table) -> str:
    import difflib
    close = difflib.get_close_matches(name, list(table), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else "params are named <layer>.<param>"
