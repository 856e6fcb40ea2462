"""The Plan: a compiled job as plain data.  The runtime reads only this (and never imports
lark or the passes); ``singac plan FILE --emit json`` writes it, and it loads back with
``Plan.from_json`` — JSON, never pickle."""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from singa_dsl.runtime.plan_types import KernelPlan, Launch

PLAN_VERSION = 1


@dataclass(frozen=True)
class ParamEntry:
    key: str                     # "<layer>.<slot>"
    store_name: str              # name in checkpoints and init_from
    shape: tuple[int, ...]
    init: dict | None            # {"kind": ..., "args": {...}}, None: must be loaded
    fan_in: int
    fan_out: int
    lr_scale: float
    wd_scale: float
    buffer: str
    grad: str
    state: tuple[str, ...]       # updater state buffers


@dataclass(frozen=True)
class Feed:
    """A data field the host uploads before each step: ``block.field`` → buffer."""
    field: str
    buffer: str
    shape: tuple[int, ...]       # with the batch first
    dtype: str


@dataclass(frozen=True)
class LossOut:
    layer: str
    kind: str                    # softmax_loss | euclidean_loss
    loss: str                    # buffer of per-sample losses
    correct: str | None          # buffer of per-sample top-k hits (softmax_loss)


@dataclass(frozen=True)
class PhasePlan:
    name: str                    # train | test | validate
    batch: int
    data_block: str
    feeds: tuple[Feed, ...]
    launch_list: str             # name of its launch list in the KernelPlan
    losses: tuple[LossOut, ...]


@dataclass(frozen=True)
class UpdateLaunch:
    """An updater launch; the runtime sets its learning-rate argument every step."""
    param: str
    index: int                   # position in the "update" launch list
    lr_arg: int                  # argument index of lr


@dataclass(frozen=True)
class FusedUpdate:
    """A param whose SGD step the GEMM computing its gradient applies
    (compiler/fuse_update.py): every step the runtime sets that launch's alpha to
    -lr·grad_scale and its beta to 1 - lr·wd (plain SGD), or its ``lr_arg`` to lr (with
    momentum), lr the param's learning rate."""
    param: str
    index: int                   # position of the GEMM in the "train" launch list
    alpha_arg: int
    beta_arg: int
    wd: float                    # weight_decay × the param's wd_scale
    grad_scale: float            # the updater's grad_scale × the GEMM's own alpha
    flag_slot: int               # its element of FUSED_FLAGS (raised on a NaN or Inf)
    # with momentum: the argument set to lr every step (alpha = grad_scale and beta = 0
    # then stay as compiled); -1: plain SGD, alpha and beta set as above
    lr_arg: int = -1


@dataclass(frozen=True)
class Plan:
    job: dict
    data: dict                   # data block → phase → {"kind", "args", "base_dir"}
    updater: dict
    algorithm: dict
    cluster: dict
    params: tuple[ParamEntry, ...]
    phases: tuple[PhasePlan, ...]
    updates: tuple[UpdateLaunch, ...]
    kernels: KernelPlan
    version: int = PLAN_VERSION
    # How the runtime reports the loss outputs; None: BP's (losses summed, per-sample means).
    # {"name": "reconstruction_error" | "nats_per_char", "reduce": "sum" | "mean" (over the
    # loss outputs; with "steps", each output holds per-sequence sums over the steps, as bptt
    # writes them), "perplexity": bool}.
    metric: dict | None = None
    fused_updates: tuple[FusedUpdate, ...] = ()

    def phase(self, name: str) -> PhasePlan | None:
        return next((p for p in self.phases if p.name == name), None)

    # ---- JSON ----------------------------------------------------------------------------
    def to_json(self) -> dict:
        return {
            "version": self.version, "job": self.job, "data": self.data,
            "updater": self.updater, "algorithm": self.algorithm, "cluster": self.cluster,
            "params": [_asdict(p) for p in self.params],
            "phases": [{**_asdict(p), "feeds": [_asdict(f) for f in p.feeds],
                        "losses": [_asdict(l) for l in p.losses]} for p in self.phases],
            "updates": [_asdict(u) for u in self.updates],
            "kernels": self.kernels.to_json(),
            "metric": self.metric,
            "fused_updates": [_asdict(u) for u in self.fused_updates],
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, d: dict) -> "Plan":
        if d.get("version") != PLAN_VERSION:
            raise ValueError(f"plan version {d.get('version')!r} is not {PLAN_VERSION}")
        return cls(
            d["job"], d["data"], d["updater"], d["algorithm"], d["cluster"],
            tuple(ParamEntry(**{**p, "shape": tuple(p["shape"]), "state": tuple(p["state"])})
                  for p in d["params"]),
            tuple(PhasePlan(p["name"], p["batch"], p["data_block"],
                            tuple(Feed(**{**f, "shape": tuple(f["shape"])}) for f in p["feeds"]),
                            p["launch_list"], tuple(LossOut(**l) for l in p["losses"]))
                  for p in d["phases"]),
            tuple(UpdateLaunch(**u) for u in d["updates"]),
            KernelPlan.from_json(d["kernels"]), metric=d.get("metric"),
            fused_updates=tuple(FusedUpdate(**u) for u in d.get("fused_updates", ())))


def _asdict(obj) -> dict:
    out = {}
    for k in obj.__dataclass_fields__:
        v = getattr(obj, k)
        out[k] = list(v) if isinstance(v, tuple) else v
    return out
