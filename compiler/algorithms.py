"""Training algorithms (SINGA's TrainOneBatch kinds) and cluster frameworks, as registries."""
from __future__ import annotations

from dataclasses import dataclass

from singa_dsl.registry import Registry
from singa_dsl.schema import Attr


@dataclass(frozen=True)
class AlgorithmDef:
    name: str
    doc: str
    attrs: tuple[Attr, ...] = ()


ALGORITHMS: Registry[AlgorithmDef] = Registry("algorithm")
for _a in (
    AlgorithmDef("bp", "Back-propagation: forward, backward, push each gradient as soon as it "
                       "is computed (SINGA kBP)."),
    AlgorithmDef("cd", "Contrastive divergence for rbm layers: positive phase, k Gibbs steps "
                       "(SINGA kCD); other layers are fixed feature extractors.",
                 (Attr("k", "int", 1, "Gibbs steps", gt=0),)),
    AlgorithmDef("bptt", "Truncated back-propagation through time over the net unrolled "
                         "`unroll` steps (SINGA kBPTT).",
                 (Attr("carry_state", "bool", False,
                       "carry the hidden state from one batch to the next"),)),
):
    ALGORITHMS.register(_a.name, _a)


@dataclass(frozen=True)
class FrameworkDef:
    """A named SINGA framework: the cluster numbers it implies, as functions of the rest."""
    name: str
    doc: str
    fill: tuple  # ((key, function(values) -> int|bool), ...), applied in order
    soft: tuple = ()  # keys the framework only defaults; a user's own number stands


FRAMEWORKS: Registry[FrameworkDef] = Registry("framework")
for _f in (
    FrameworkDef("sandblaster", "one synchronous group of workers, servers in their own "
                 "processes", (("worker_groups", lambda v: 1), ("server_groups", lambda v: 1),
                               ("separate_servers", lambda v: True))),
    FrameworkDef("allreduce", "one synchronous group, a server beside every worker",
                 (("worker_groups", lambda v: 1), ("server_groups", lambda v: 1),
                  ("servers_per_group", lambda v: v["workers_per_group"]),
                  ("separate_servers", lambda v: False))),
    FrameworkDef("downpour", "several asynchronous worker groups sharing one server group",
                 (("worker_groups", lambda v: 2), ("server_groups", lambda v: 1)),
                 soft=("worker_groups",)),
    FrameworkDef("hogwild", "a server group per worker group, synced every sync_every updates",
                 (("worker_groups", lambda v: 2),
                  ("server_groups", lambda v: v["worker_groups"])), soft=("worker_groups",)),
):
    FRAMEWORKS.register(_f.name, _f)


CLUSTER_ATTRS = (
    Attr("framework", "choice", None, "fills in the numbers below",
         choices=("sandblaster", "allreduce", "downpour", "hogwild")),
    Attr("worker_groups", "int", 1, "model replicas, asynchronous to each other", gt=0),
    Attr("workers_per_group", "int", 1, "workers sharing one mini-batch synchronously", gt=0),
    Attr("server_groups", "int", 1, "each holds a full copy of the params", gt=0),
    Attr("servers_per_group", "int", 1, "servers the params are sliced over", gt=0),
    Attr("separate_servers", "bool", False, "servers in processes of their own"),
    Attr("sync_every", "int", 1, "updates between syncs of server groups", gt=0),
    Attr("reduce", "choice", "servers", "how a synchronous group sums its gradients: "
         "parameter servers (SINGA's way) or a ring allreduce among the workers, each then "
         "updating its own copy (one worker group only; no server ranks)",
         choices=("servers", "ring")),
)
