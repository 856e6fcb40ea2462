"""SINGA v0.1–v0.3 ``job.conf`` (JobProto, protobuf text) → a .singa program.

The field sets that matter are tables below; the code walks the conf once, reading every field
through a ``Reader`` so that whatever it did not translate is reported (a located warning and a
``# TODO(import)`` comment), never dropped.  Enum defaults follow SINGA's job.proto: a missing
``alg``, updater ``type``, learning-rate ``type`` or init ``type`` names a *user* class
(kUserAlg, kUserUpdater, kUserChange, kUserInit), which we cannot translate either.
"""
from __future__ import annotations

import pathlib
import re
from dataclasses import dataclass, field

from singa_dsl.builder import expr
from . import ast
from .importer import (Out, block, call, data_block_name, dataset_of, identifier, layer, nice,
                       normalize_record, param_value, placeholder, reader_hint, ref,
                       share_value)
from .prototxt import Message, Reader

# ---- enums (words; numbers only where every version agrees) ---------------------------------
PHASES = {"kUnknown": None, "kTrain": "train", "kVal": "validate", "kTest": "test",
          "kPositive": None, "kNegative": None, "kForward": None, "kBackward": None,
          "kLoss": None, "kDeploy": None, "kAggGrad": None,
          0: None, 1: "train", 2: "validate", 4: "test"}
ALL_PHASES = ("train", "test", "validate")
ALGORITHMS = {"kBP": "bp", "kCD": "cd", "kBPTT": "bptt", "kUserAlg": None,
              1: "bp", 2: "cd"}
UPDATERS = {"kSGD": "sgd", "kAdaGrad": "adagrad", "kRMSProp": "rmsprop",
            "kNesterov": "nesterov", "kAdaDelta": "adadelta", "kAdam": "adam",
            "kAdamMax": "adamax", "kUserUpdater": None,
            1: "sgd", 2: "adagrad", 3: "rmsprop", 4: "nesterov", 105: None}
# ChangeMethod → (schedule, its conf message, conf fields → schedule kwargs)
# (conf field, schedule argument, type, SINGA's default or None where it is required)
SCHEDULES = {
    "kFixed": ("fixed", None, ()),
    "kInverseT": ("inverse_t", "inverset_conf", (("final_lr", "final", "float", None),)),
    "kInverse": ("inverse", "inverse_conf", (("gamma", "gamma", "float", 1.0),
                                             ("pow", "pow", "float", 0.0))),
    "kExponential": ("exponential", "exponential_conf", (("change_freq", "every", "int", None),)),
    "kLinear": ("linear", "linear_conf", (("final_lr", "final", "float", None),
                                          ("change_freq", "every", "int", None))),
    "kStep": ("step", "step_conf", (("change_freq", "every", "int", None),
                                    ("gamma", "gamma", "float", 1.0))),
    "kFixedStep": ("fixed_step", "fixedstep_conf", ()),
    "kUserChange": (None, None, ()),
}
CHANGE_METHODS = {**{k: k for k in SCHEDULES},
                  0: "kFixed", 1: "kInverseT", 2: "kInverse", 3: "kExponential", 4: "kLinear",
                  5: "kStep", 6: "kFixedStep", 100: "kUserChange"}
# InitMethod → initializer, and which ParamGenProto fields are its arguments (SINGA defaults)
INITS = {
    "kConstant": ("constant", (("value", 1.0),)),
    "kGaussian": ("gaussian", (("mean", 0.0), ("std", 1.0))),
    "kUniform": ("uniform", (("low", -1.0), ("high", 1.0))),
    "kGaussianSqrtFanIn": ("gaussian_fan_in", (("mean", 0.0), ("std", 1.0))),
    "kUniformSqrtFanIn": ("uniform_fan_in", (("low", -1.0), ("high", 1.0))),
    # SINGA's range defaults to [-1, 1]; glorot()'s to ±sqrt(6): always write the range
    "kUniformSqrtFanInOut": ("glorot", (("low", -1.0), ("high", 1.0))),
    "kUserInit": (None, ()),
}
INIT_METHODS = {**{k: k for k in INITS}, 0: "kConstant", 1: "kGaussian", 2: "kUniform",
                4: "kGaussianSqrtFanIn", 5: "kUniformSqrtFanIn", 6: "kUniformSqrtFanInOut",
                101: "kUserInit"}
POOLS = {"MAX": "max_pool", "AVG": "avg_pool", 0: "max_pool", 1: "avg_pool"}
ACTIVATIONS = {"RELU": "relu", "SIGMOID": "sigmoid", "TANH": "tanh", "STANH": "stanh"}
PARTITIONS = {0: "batch", 1: "feature", -1: "none"}
UNROLL_CONN = {"kUnrollOneToOne": "one", "kUnrollOneToAll": "all",
               "kUnrollOneToLast": "last", "kUnrollFirstToLast": "last",
               "kUnrollCustomized": "custom", 1: "one", 2: "all", 3: "last", 4: "custom"}

# updater conf messages → (the updater they belong to, their fields, named as our attributes)
UPDATER_CONFS = {"rmsprop_conf": ("rmsprop", ("rho",)), "adadelta_conf": ("adadelta", ("rho",)),
                 "adam_conf": ("adam", ("beta1", "beta2")),
                 "adammax_conf": ("adamax", ("beta1", "beta2")),
                 "adamax_conf": ("adamax", ("beta1", "beta2"))}

# job fields → every(...) entries: (entry, freq field, after field, batches field)
EVERY_FIELDS = (("test", "test_freq", "test_after", "test_steps"),
                ("validate", "validate_freq", "validate_after", "validate_steps"),
                ("display", "disp_freq", "disp_after", None),
                ("checkpoint", "checkpoint_freq", "checkpoint_after", None))
JOB_NO_EQUIVALENT = {
    "gpu": "devices are chosen when the program runs (singac run --device)",
    "warmup_steps": "params are fetched from the servers at step 0",
    "debug": "per-layer dumps are not written; singac graph draws the net",
    "reset_param_version": "params loaded by init_from start at version 0",
    "num_openblas_threads": "kernels run on the OpenCL device",
    "resume": "resume with singac run --resume",
    "step": "resume with singac run --resume",
    "id": "a job id is a ZooKeeper notion",
}
# ClusterProto field → (cluster entry, type)
CLUSTER_FIELDS = (("nworker_groups", "worker_groups", "int"),
                  ("nworkers_per_group", "workers_per_group", "int"),
                  ("nserver_groups", "server_groups", "int"),
                  ("nservers_per_group", "servers_per_group", "int"),
                  ("server_worker_separate", "separate_servers", "bool"),
                  ("sync_freq", "sync_every", "int"))
CLUSTER_NO_EQUIVALENT = {
    "nworkers_per_procs": "processes are laid out by the launcher, one rank per worker",
    "nservers_per_procs": "processes are laid out by the launcher, one rank per server",
    "start_port": "ranks talk through the launcher's transport, not fixed ZeroMQ ports",
    "share_memory": "worker groups never share param memory",
    "poll_time": "there is no polling loop to tune",
}


@dataclass(frozen=True)
class OpMap:
    """How a layer type becomes an op: its conf message, conf fields that are the op's
    positional sizes, conf fields → attributes, its params in SINGA's order, conf fields that
    are derived (nothing to write) and ones with no equivalent."""
    op: str
    conf: str | None = None
    sizes: tuple = ()                  # ((field, type), ...)
    attrs: tuple = ()                  # ((field, attr, type), ...)
    slots: tuple = ()
    derived: tuple = ()
    unsupported: tuple = ()


GRU_SLOTS = ("z_hx", "r_hx", "c_hx", "z_hh", "r_hh", "c_hh", "z_b", "r_b", "c_b")
_CONV = OpMap("conv", "convolution_conf", (("num_filters", "int"),),
              (("kernel", "kernel", "int"), ("stride", "stride", "int"), ("pad", "pad", "int"),
               ("bias_term", "bias", "bool")), ("w", "b"),
              unsupported=("kernel_x", "kernel_y", "pad_x", "pad_y", "stride_x", "stride_y"))
_LOSS = OpMap("softmax_loss", "softmaxloss_conf", (),
              (("topk", "topk", "int"), ("scale", "scale", "float")))
OPS = {
    "kInnerProduct": OpMap("dense", "innerproduct_conf", (("num_output", "int"),),
                           (("transpose", "transpose", "bool"), ("bias_term", "bias", "bool")),
                           ("w", "b")),
    "kConvolution": _CONV, "kCConvolution": _CONV, "kCudnnConv": _CONV,
    "kLRN": OpMap("lrn", "lrn_conf", (), (("local_size", "size", "int"),
                                          ("alpha", "alpha", "float"), ("beta", "beta", "float"),
                                          ("knorm", "k", "float"))),
    "kDropout": OpMap("dropout", "dropout_conf", (), (("dropout_ratio", "rate", "float"),)),
    "kReLU": OpMap("relu", "relu_conf", (), (("negative_slope", "slope", "float"),)),
    "kSTanh": OpMap("stanh"), "kSigmoid": OpMap("sigmoid"),
    "kSoftmax": OpMap("softmax"), "kCudnnSoftmax": OpMap("softmax"),
    "kGRU": OpMap("gru", "gru_conf", (("dim_hidden", "int"),), (), GRU_SLOTS),
    "kEmbedding": OpMap("embedding", "embedding_conf", (("vocab_size", "int"),
                                                        ("feature_dim", "int")), (), ("w",)),
    "kOneHot": OpMap("onehot", "onehot_conf", (("vocab_size", "int"),)),
    "kBM": OpMap("batchnorm", None, (), (), ("w", "b")),
    "kCudnnBM": OpMap("batchnorm", None, (), (), ("w", "b")),
    "kConcate": OpMap("concat", "concate_conf", (), (("concate_dim", "dim", "int"),),
                      derived=("num_concates",)),
    "kSplit": OpMap("split", "split_conf", derived=("num_splits", "split_num")),
    "kSoftmaxLoss": _LOSS, "kCudnnSoftmaxLoss": _LOSS,
    "kEuclideanLoss": OpMap("euclidean_loss"),
}
POOLING = ("kPooling", "kCPooling", "kCudnnPool")
ACTIVATION = ("kActivation", "kCudnnActivation")
RBM = ("kRBMVis", "kRBMHid")
# Input layers → the conf message holding path and batch size.
DATA = {"kRecordInput": "store_conf", "kCSVInput": "store_conf", "kCharRNN": "char_rnn_conf",
        "kShardData": "sharddata_conf", "kLMDBData": "lmdbdata_conf"}
PARSERS = {"kMnist": "mnist_conf", "kRGBImage": "rgbimage_conf"}   # v0.1: data → parser
LABELS = ("kLabel", "kRNNLabel")                                     # a data layer's labels
# Layer types with no equivalent, and why (the layer is dropped, its consumers read its
# first source instead, and the spot gets a TODO).
NO_EQUIVALENT = {
    "kAccuracy": None,   # a note only: softmax_loss reports accuracy itself
    "kArgSort": "argmax(x) is the top-1 prediction; top-k lists have no equivalent",
    "kCSVOutput": "outputs are written by singac run, not by layers",
    "kRecordOutput": "outputs are written by singac run, not by layers",
    "kCharRNNOutput": "outputs are written by singac run, not by layers",
    "kBridgeSrc": "bridge layers are inserted by the partitioning pass",
    "kBridgeDst": "bridge layers are inserted by the partitioning pass",
    "kRNNDummy": "sampling from a trained RNN is not a training job",
    "kDummy": "kDummy is a test stub",
    "kImagePreprocess": "no crop/mirror preprocessing; normalize: on the data source scales",
    "kPrefetch": "sources prefetch by themselves",
    "kSlice": "kSlice cuts its source into pieces, one per destination layer; write "
              "slice(x, begin, end) per destination",
}


@dataclass
class LayerInfo:
    r: Reader
    name: str
    type: str                      # a LayerType word, or "user:NAME"
    srcs: list[str]
    phases: set[str]
    span: object
    partition: int | None = None
    out_name: str = ""             # its name in the .singa program


@dataclass
class DataGroup:
    """Data layers of one name (SINGA has one per phase) → one data block."""
    name: str
    kind: str
    block: str = ""
    sources: dict = field(default_factory=dict)      # phase → LayerInfo
    normalize: dict | None = None                    # from a v0.1 parser layer
    features: str = "image"
    labels: str = "label"
    input_layer: str | None = None                   # its input(...) layer, once written
    shape_guessed: bool = False


def translate(top: Message, text: str, file: str) -> Out:
    return _Singa(top, text, file).run()


class _Singa:
    def __init__(self, top: Message, text: str, file: str):
        self.text, self.file = text, file
        self.out = Out(text, file)
        self.top = Reader(top, "the job", text)
        self.readers: list[tuple[Reader, str]] = []
        self.layers: list[LayerInfo] = []
        self.groups: dict[str, DataGroup] = {}
        self.dropped: dict[str, str] = {}          # dropped layer → the source it passes on
        self.aliases: dict[str, ast.Expr] = {}     # label layers → their data field
        self.refs: dict[str, str] = {}             # SINGA layer name → .singa layer name
        self.rbm: dict[str, tuple[LayerInfo, LayerInfo]] = {}   # either of a pair → (vis, hid)
        self.params: dict[str, tuple[str, str] | None] = {}  # param name → (layer, slot)
        self.pending: list[tuple[str, str, object]] = []      # comments for the next layer
        self.items: list = []
        self.init_from: list[str] = []
        self.workspace: str | None = None
        self.unroll = 1
        self.net_partition = "batch"

    def track(self, r: Reader | None, key: str) -> Reader | None:
        """Remember a reader: its unread fields are reported at the end."""
        if r is not None:
            self.readers.append((r, key))
        return r

    # -- the whole job --
    def run(self) -> Out:
        out, r = self.out, self.top
        self.track(r, "job")
        job_name = r.str("name")
        if job_name is None:
            out.todo("job", "the conf has no name; the job is called 'imported'", r.msg.span)
        name = identifier(job_name or "imported", "job")
        self.cluster_r = self.track(r.message("cluster", "cluster"), "cluster")
        if self.cluster_r is not None:
            ws = self.cluster_r.str("workspace")
            self.workspace = ws.rstrip("/") or ws if ws else None
        self.init_from = self._init_from()
        net = r.message("neuralnet", "neuralnet")
        if net is None:
            raise r.error("the job has no neuralnet", r.msg.span,
                          "add neuralnet { layer { ... } ... }")
        self._net(net, name)
        out.job = self._job(name)
        out.algorithm = self._algorithm()
        out.updater = self._updater()
        out.cluster = self._cluster()
        for reader, key in self.readers:
            for f in reader.unread():
                out.todo(key, f"field '{f.name}' of {reader.what} has no equivalent in "
                         "singa_dsl and was not translated", f.name_span)
        out.note("top", f"Imported from the SINGA job {pathlib.Path(self.file).name} by "
                 "singac import. Paths are as the conf wrote them: SINGA's were relative to "
                 "where singa-run.sh ran, a .singa file's are relative to the file.")
        return out

    def _job(self, name: str) -> ast.Block:
        r, out = self.top, self.out
        entries: list[tuple[str, object]] = []
        steps = r.int("train_steps")
        if steps is None or steps <= 0:
            out.todo("job.steps", "train_steps is missing or not positive; steps: 1000 "
                     "stands in", r.span("train_steps"))
            steps = 1000
        entries.append(("steps", steps))
        for key, freq_f, after_f, batches_f in EVERY_FIELDS:
            freq, after = r.int(freq_f, 0), r.int(after_f, 0)
            batches = r.int(batches_f, 0) if batches_f else None
            if freq <= 0:
                if batches:
                    out.note("job", f"{batches_f}: {batches} without {freq_f} only matters "
                             "to singa-run.sh -test (singac test --batches); there is no "
                             f"{key}: entry")
                continue
            if batches_f and batches <= 0:
                out.note("job", f"{freq_f}: {freq} with no {batches_f} never runs in SINGA; "
                         f"there is no {key}: entry")
                continue
            if batches_f and not any(key in g.sources for g in self.groups.values()):
                out.todo("job", f"{freq_f}: {freq} but no data layer is in the "
                         f"{'kTest' if key == 'test' else 'kVal'} phase; no {key}: entry",
                         r.span(freq_f))
                continue
            entries.append((key, call("every", freq, after=after or None, batches=batches)))
        if self.workspace:
            entries.append(("workspace", self.workspace))
        if self.init_from:
            entries.append(("init_from", self.init_from))
        for f, why in JOB_NO_EQUIVALENT.items():
            for found in r.fields(f):
                out.todo("job", f"field '{f}' has no equivalent: {why}", found.name_span)
        return block("job", name, entries)

    def _init_from(self) -> list[str]:
        """checkpoint_path files → the workspaces whose latest checkpoints init_from loads."""
        spaces: list[str] = []
        steps: set[str] = set()
        for path, span in zip(self.top.strs("checkpoint_path"),
                              [f.value.span for f in self.top.msg.all("checkpoint_path")]):
            m = re.match(r"(.*?)/*checkpoint/step(\d+)-worker\d+$", path)
            if m:
                space = m.group(1) or "."
                steps.add(m.group(2))
            else:
                space = str(pathlib.PurePosixPath(path).parent)
                self.out.todo("job.init_from", f"checkpoint_path {path!r} is not "
                              "WORKSPACE/checkpoint/stepN-workerM; its folder stands in", span)
            if space not in spaces:
                spaces.append(space)
        if steps:
            self.out.note("job.init_from", "checkpoint_path names checkpoint files (step "
                          f"{', '.join(sorted(steps, key=int))}); init_from names workspaces "
                          "and loads the latest checkpoint of each, by param name")
        return spaces

    # -- algorithm, updater, cluster --
    def _algorithm(self) -> ast.Block:
        out = self.out
        r = self.track(self.top.message("train_one_batch", "train_one_batch"), "algorithm")
        if r is None:
            out.todo("algorithm", "the job has no train_one_batch; algorithm bp stands in",
                     self.top.msg.span)
            return block("algorithm", "bp", [], has_body=False)
        kind = r.enum("alg", ALGORITHMS, "kUserAlg")
        user = r.str("user_alg")
        if kind in (None, "kUserAlg") or user:
            out.todo("algorithm", f"user algorithm {user or '(alg kUserAlg, the default)'} "
                     "has no equivalent; algorithm bp stands in",
                     r.span("user_alg") if user else r.span("alg"))
            kind = "bp"
        cd = self.track(r.message("cd_conf", "cd_conf"), "algorithm")
        if kind == "cd":
            return block("algorithm", "cd", [("k", cd.int("cd_k", 1) if cd else 1)])
        if cd is not None:
            out.note("algorithm", "cd_conf only matters to kCD; dropped")
            cd.skip(*cd.msg.names())
        return block("algorithm", kind, [], has_body=False)

    def _updater(self) -> ast.Block:
        out = self.out
        r = self.track(self.top.message("updater", "updater"), "updater")
        if r is None:
            out.todo("updater", "the job has no updater; updater sgd { lr: 0.01 } stands in",
                     self.top.msg.span)
            return block("updater", "sgd", [("lr", 0.01)])
        kind = r.enum("type", UPDATERS, "kUserUpdater")
        user = r.str("user_type")
        if kind in (None, "kUserUpdater") or user:
            out.todo("updater", f"user updater {user or '(type kUserUpdater, the default)'} "
                     "has no equivalent; sgd stands in",
                     r.span("user_type") if user else r.span("type"))
            kind = "sgd"
        entries: list[tuple[str, object]] = [("lr", self._lr(r))]
        momentum = r.float("momentum")
        if kind in ("sgd", "nesterov"):
            # nesterov's momentum defaults to 0.9 in singa_dsl but 0 in SINGA: always write it
            if momentum or kind == "nesterov":
                entries.append(("momentum", nice(momentum or 0.0)))
        elif momentum:
            out.note("updater", f"momentum {nice(momentum)} is ignored by SINGA's {kind} too")
        wd = r.float("weight_decay")
        if wd:
            entries.append(("weight_decay", nice(wd)))
        delta = r.float("delta")
        if delta is not None and delta != 1e-8:
            entries.append(("delta", nice(delta)))
        low, high = r.float("clip_low", 0.0), r.float("clip_high", 0.0)
        if high > low:          # SINGA clips only then
            entries.append(("clip", nice(high) if low == -high else [nice(low), nice(high)]))
            if kind in ("adadelta", "adam", "adamax"):
                out.note("updater.clip", f"SINGA's {kind} ignores clip_low/clip_high, and so "
                         "does singa_dsl")
        for conf, (owner, names) in UPDATER_CONFS.items():
            c = self.track(r.message(conf, conf), "updater")
            if c is None:
                continue
            if owner != kind:
                out.note("updater", f"{conf} only matters to {owner}; dropped")
                c.skip(*c.msg.names())
                continue
            for n in names:
                v = c.float(n)
                if v is not None:
                    entries.append((n, nice(v)))
        return block("updater", kind, entries)

    def _lr(self, updater: Reader):
        out = self.out
        r = self.track(updater.message("learning_rate", "learning_rate"), "updater.lr")
        if r is None:
            out.note("updater.lr", "no learning_rate: SINGA's default base_lr 0.01")
            return 0.01
        base = r.float("base_lr", 0.01)
        method = r.enum("type", CHANGE_METHODS, "kUserChange")
        sched, conf_name, fields = SCHEDULES[method]
        user = r.str("user_type")
        if sched is None or user:
            out.todo("updater.lr", f"user learning-rate generator "
                     f"{user or '(type kUserChange, the default)'} has no equivalent; the "
                     f"fixed base_lr {nice(base)} stands in",
                     r.span("user_type") if user else r.span("type"))
            return nice(base)
        if sched == "fixed":
            return nice(base)
        c = self.track(r.message(conf_name, conf_name), "updater.lr")
        if c is None:
            raise r.error(f"learning_rate type {method} needs {conf_name} {{ ... }}",
                          r.span("type"))
        if sched == "fixed_step":
            steps, lrs = c.ints("step"), c.floats("step_lr")
            if not steps or len(steps) != len(lrs):
                raise c.error(f"fixedstep_conf needs as many step as step_lr fields, got "
                              f"{len(steps)} and {len(lrs)}", c.msg.span)
            if r.has("base_lr"):
                out.note("updater.lr", "kFixedStep ignores base_lr, as fixed_step() does")
            return call("fixed_step", at=steps, lr=[nice(v) for v in lrs])
        kwargs = {}
        for conf_f, kw, typ, default in fields:
            v = c.int(conf_f) if typ == "int" else c.float(conf_f)
            if v is None and default is None:
                raise c.error(f"{conf_name} needs its field '{conf_f}'", c.msg.span)
            kwargs[kw] = nice(default if v is None else v)
        return call(sched, nice(base), **kwargs)

    def _cluster(self) -> ast.Block | None:
        out, r = self.out, self.cluster_r
        if r is None:
            return None
        entries = []
        for conf_f, key, typ in CLUSTER_FIELDS:
            v = r.int(conf_f) if typ == "int" else r.bool(conf_f)
            if v is not None:
                entries.append((key, v))
        for f, why in CLUSTER_NO_EQUIVALENT.items():
            for found in r.fields(f):
                out.todo("cluster" if entries else "job", f"cluster field '{f}' has no "
                         f"equivalent: {why}", found.name_span)
        return block("cluster", None, entries) if entries else None

    # -- the net --
    def _net(self, net: Reader, name: str):
        out = self.out
        self.track(net, "net")
        entries = []
        pdim = net.int("partition_dim")
        if pdim is not None:
            if pdim not in PARTITIONS:
                out.todo("net", f"partition_dim {pdim} is not 0, 1 or -1; batch stands in",
                         net.span("partition_dim"))
            self.net_partition = PARTITIONS.get(pdim, "batch")
            entries.append(("partition", ref(self.net_partition)))
        self.unroll = net.int("unroll_len", 1)
        if self.unroll > 1:
            entries.append(("unroll", self.unroll))
        for found in net.fields("layer_group"):
            out.todo("net", "layer_group has no equivalent (SINGA v0.3 does not use it "
                     "either)", found.name_span)
        self._read_layers(net.messages("layer", "a layer"))
        self._name_things()
        for info in self.layers:
            self._layer(info)
        for kind, message, span in self.pending:
            if kind == "todo":
                out.todo("net.end", message, span)
            else:
                out.note("net.end", message)
        out.net = ast.NetDecl(name, tuple(ast.Entry(k, expr(v)) for k, v in entries)
                              + tuple(self.items))
        out.data = [self._data_block(g) for g in self.groups.values()]

    def _read_layers(self, readers: list[Reader]):
        for r in readers:
            name = r.str("name")
            if name is None:
                raise r.error("a layer has no name", r.msg.span, 'add name: "..."')
            r.what = f"layer '{name}'"
            user = r.str("user_type")
            typ = r.word("type", "kUserLayer")
            if user or typ == "kUserLayer":
                typ = f"user:{user or '(no user_type)'}"
            elif not isinstance(typ, str):
                raise r.error(f"layer type {typ} is a number; write the LayerType word "
                              "(the numbers changed between SINGA versions)", r.span("type"))
            include = r.enums("include", PHASES)
            exclude = r.enums("exclude", PHASES)
            if include and exclude:
                raise r.error(f"layer '{name}' has both include and exclude (SINGA refuses "
                              "that too)", r.span("exclude"), "keep one of them")
            phases = {p for p in include if p} if include else \
                set(ALL_PHASES) - {p for p in exclude if p}
            if not include and typ in DATA:
                # in every net; but a data block's test/validate phases only where the job
                # tests/validates, so that no unused source is written
                phases = {p for p in phases if p == "train" or self._uses(p)}
            info = LayerInfo(r, name, typ, r.strs("srclayers"), phases, r.msg.span,
                             r.int("partition_dim"))
            self.layers.append(info)
            if typ in DATA:
                g = self.groups.setdefault(name, DataGroup(name, typ))
                if g.kind != typ:
                    raise r.error(f"data layers named '{name}' are of two types, {g.kind} and "
                                  f"{typ}", r.span("type"))
                for p in sorted(phases):
                    if p in g.sources:
                        raise r.error(f"two data layers '{name}' are both in the {p} phase",
                                      r.span("name"), "give them include: kTrain / kTest")
                    g.sources[p] = info

    def _uses(self, phase: str) -> bool:
        """Whether the job runs ``phase`` (peeked at: the job fields are read later)."""
        freq_f, batches_f = {"test": ("test_freq", "test_steps"),
                             "validate": ("validate_freq", "validate_steps")}[phase]
        values = [_scalar(self.top.msg, f) for f in (freq_f, batches_f)]
        return all(isinstance(v, int) and v > 0 for v in values)

    def _name_things(self):
        """Layer names first, so that SINGA's survive; then RBM pairs, param names, and data
        blocks (named after their data set) take what is left."""
        train = [l for l in self.layers if "train" in l.phases and l.type not in DATA]
        for info in train:
            if info.name in self.refs:
                raise info.r.error(f"two layers are named '{info.name}' in the training net",
                                   info.r.span("name"))
            info.out_name = self.out.names.claim(info.name)
            self.refs[info.name] = info.out_name
        for vis in (l for l in train if l.type == "kRBMVis"):
            hid = next((l for l in train if l.type == "kRBMHid" and vis.name in l.srcs), None)
            if hid is not None and hid.name not in self.rbm:
                self.rbm[vis.name] = self.rbm[hid.name] = (vis, hid)
                self.refs[vis.name] = hid.out_name
                self.out.names.taken.discard(vis.out_name)
                vis.out_name = hid.out_name
        for info in train:
            for p, slot in zip(info.r.msg.all("param"), self._slots(info)):
                names = p.value.all("name") if isinstance(p.value, Message) else []
                if names and not isinstance(names[0].value, Message):
                    target = (info.out_name, slot) if slot else None
                    self.params.setdefault(str(names[0].value.value), target)
        for g in self.groups.values():
            first = next(iter(g.sources.values()))
            g.block = data_block_name(self.out, _path_of(first.r.msg, DATA[g.kind]), "dataset")
            if g.kind == "kCharRNN":
                g.features, g.labels = "chars", "next"

    def _slots(self, info: LayerInfo) -> tuple:
        """The op params a layer's param fields fill, in SINGA's order."""
        if info.name in self.rbm:
            vis, hid = self.rbm[info.name]
            return ("w", "vbias") if info is vis else ("w", "hbias")
        m = OPS.get(info.type)
        if m is None:
            return ()
        if m.op in ("dense", "conv") and _conf_bool(info.r.msg, m.conf, "bias_term") is False:
            return m.slots[:1]
        return m.slots

    # -- one layer --
    def _layer(self, info: LayerInfo):
        t = info.type
        if t in DATA:
            g = self.groups[info.name]
            self._common(info, f"data.{g.block}")
            info.r.skip("partition_dim")   # input layers are always split on the batch
            return
        if "train" not in info.phases:
            return self._drop(info, f"layer '{info.name}' is only in the "
                              f"{', '.join(sorted(info.phases)) or 'no'} phase: the program "
                              "has one net for every phase", todo=t != "kAccuracy")
        if info.name in self.rbm:
            vis, hid = self.rbm[info.name]
            if info is hid and vis in self.layers[:self.layers.index(info)]:
                return                      # written with its partner
            return self._rbm(vis, hid)
        self._common(info, f"net.{info.out_name}")
        if t in PARSERS:
            return self._parser(info)
        if t in LABELS:
            return self._label(info)
        if t in RBM:
            return self._drop(info, f"{t} layer '{info.name}' has no partner (an rbm is a "
                              "kRBMVis and a kRBMHid naming each other in srclayers)", todo=True)
        if t in POOLING:
            return self._pool(info)
        if t in ACTIVATION:
            return self._activation(info)
        if t in OPS:
            return self._op(info, OPS[t])
        if t.startswith("user:"):
            return self._drop(info, f"user layer type {t[5:]} of '{info.name}' has no "
                              "equivalent", todo=True, span=info.r.span("user_type"))
        if t == "kAccuracy":
            return self._drop(info, f"kAccuracy layer '{info.name}' dropped: softmax_loss "
                              "reports accuracy itself")
        why = NO_EQUIVALENT.get(t, "singa_dsl has no such op")
        return self._drop(info, f"{t} layer '{info.name}' has no equivalent: {why}", todo=True,
                          span=info.r.span("type"))

    def _common(self, info: LayerInfo, key: str):
        """Fields every layer has that the program expresses by its structure."""
        r, out = info.r, self.out
        own = r.int("unroll_len")
        if own is not None and own not in (1, self.unroll):
            out.todo(key, f"unroll_len {own} of '{info.name}' differs from the net's "
                     f"{self.unroll}: a .singa net is unrolled as a whole", r.span("unroll_len"))
        for conn in r.enums("unroll_conn_type", UNROLL_CONN):
            if conn not in ("one", "all"):
                out.todo(key, f"unroll_conn_type of '{info.name}' other than one-to-one or "
                         "one-to-all has no equivalent", r.span("unroll_conn_type"))
        for f in ("shift", "unroll_src_conn", "share_src_blobs"):
            for found in r.fields(f):
                out.todo(key, f"field '{f}' of '{info.name}' has no equivalent",
                         found.name_span)
        r.skip("partition_id", "num_partitions", "unroll_index")   # internal, set by SINGA
        self.track(r, key)

    def _drop(self, info: LayerInfo, message: str, todo: bool = False, span=None):
        """The layer goes; its consumers read its first source instead, so the wiring holds."""
        info.r.skip(*info.r.msg.names())
        if info.srcs:
            self.dropped[info.name] = info.srcs[0]
        self.pending.append(("todo" if todo else "note", message, span or info.span))

    def _flush(self, name: str):
        self.out.flush(f"net.{name}", self.pending)

    def _emit(self, info: LayerInfo, op: str, args: list, kwargs: dict):
        name = info.out_name
        self._flush(name)
        part = None
        if info.partition is not None:
            want = PARTITIONS.get(info.partition)
            if want is None:
                self.out.todo(f"net.{name}", f"partition_dim {info.partition} is not 0, 1 "
                              "or -1", info.r.span("partition_dim"))
            elif want != self.net_partition:
                part = want
        self.items.append(layer(name, op, args, kwargs, part))

    def _source(self, name: str, role: str, info: LayerInfo, seen=()) -> ast.Expr:
        """A srclayers name as a source: a layer, a data field, or what a dropped layer
        read.  ``role`` is x (features), label or ids."""
        if name in self.groups:
            g = self.groups[name]
            if role == "label":
                return ref(g.block, g.labels)
            if g.input_layer is None:
                g.input_layer = self.out.names.claim(name)
                self._flush(g.input_layer)
                self.items.append(layer(g.input_layer, "input", [ref(g.block, g.features)], {}))
            return ref(g.input_layer)
        if name in self.aliases:
            return self.aliases[name]
        if name in self.dropped and name not in seen:
            return self._source(self.dropped[name], role, info, (*seen, name))
        if name in self.refs:
            return ref(self.refs[name])
        self.out.todo(f"net.{info.out_name}", f"srclayers '{name}' of layer '{info.name}' "
                      "names no layer of the training net", info.r.span("srclayers"))
        return ref(identifier(name))

    def _sources(self, info: LayerInfo, op: str, want: int | None) -> list[ast.Expr]:
        srcs = info.srcs if want is None else info.srcs[:want]
        if want is not None and len(info.srcs) != want:
            self.out.todo(f"net.{info.out_name}", f"layer '{info.name}' has "
                          f"{len(info.srcs)} srclayers; {op} takes {want}",
                          info.r.span("srclayers") if info.srcs else info.span)
        label_at = 1 if op == "softmax_loss" else None
        role = "ids" if op in ("onehot", "embedding") else "x"
        return [self._source(s, "label" if i == label_at else role, info)
                for i, s in enumerate(srcs)]

    # -- layer kinds --
    def _op(self, info: LayerInfo, m: OpMap):
        r, key = info.r, f"net.{info.out_name}"
        conf = self.track(r.message(m.conf, f"{m.conf} of '{info.name}'"), key) if m.conf \
            else None
        args: list = []
        kwargs: dict = {}
        for f, typ in m.sizes:
            v = _get(conf, f, typ) if conf is not None else None
            if v is None:
                raise r.error(f"layer '{info.name}' ({info.type}) needs {m.conf} {{ {f}: ... }}",
                              conf.msg.span if conf is not None else r.span("type"))
            args.append(v)
        for f, attr, typ in m.attrs:
            v = _get(conf, f, typ) if conf is not None else None
            if v is not None:
                kwargs[attr] = nice(v)
        if conf is not None:
            conf.skip(*m.derived)
            for f in m.unsupported:
                for found in conf.fields(f):
                    self.out.todo(key, f"{f} has no equivalent: kernels, strides and pads "
                                  "are square", found.name_span)
            if m.op == "gru" and conf.bool("bias_term", True) is False:
                self.out.todo(key, "gru without biases has no equivalent; the biases stay",
                              conf.span("bias_term"))
        want = None if m.op == "concat" else 2 if m.op in ("softmax_loss", "euclidean_loss") \
            else 1
        sources = self._sources(info, m.op, want)
        kwargs.update(self._params(info, self._slots(info), key))
        self._emit(info, m.op, sources + args, kwargs)

    def _pool(self, info: LayerInfo):
        key = f"net.{info.out_name}"
        conf = self.track(info.r.message("pooling_conf", f"pooling_conf of '{info.name}'"), key)
        op, kwargs = "max_pool", {}
        if conf is not None:
            op = conf.enum("pool", POOLS, "max_pool")
            for f in ("kernel", "stride", "pad"):
                v = conf.int(f)
                if v is not None:
                    kwargs[f] = v
        self._emit(info, op, self._sources(info, op, 1), kwargs)

    def _activation(self, info: LayerInfo):
        conf = self.track(info.r.message("activation_conf", "activation_conf"),
                          f"net.{info.out_name}")
        op = conf.enum("type", ACTIVATIONS, None) if conf is not None else None
        if op is None:
            raise info.r.error(f"layer '{info.name}' needs activation_conf {{ type: ... }}",
                               info.span)
        self._emit(info, op, self._sources(info, op, 1), {})

    def _rbm(self, vis: LayerInfo, hid: LayerInfo):
        """kRBMVis + kRBMHid (each other's srclayers: an undirected edge) → one rbm op, written
        where the first of the two is and named after the hidden layer, whose output it is."""
        out, name = self.out, hid.out_name
        key = f"net.{name}"
        for l in (vis, hid):
            self._common(l, key)
        out.note(key, f"kRBMVis '{vis.name}' + kRBMHid '{hid.name}' → one rbm op (its output "
                 "is the hidden probabilities)")
        confs = [self.track(l.r.message("rbm_conf", f"rbm_conf of '{l.name}'"), key)
                 for l in (vis, hid)]
        hdims = [h for h in (c.int("hdim") for c in confs if c is not None) if h is not None]
        if not hdims:
            raise hid.r.error(f"rbm layer '{hid.name}' needs rbm_conf {{ hdim: ... }}", hid.span)
        if len(set(hdims)) > 1:
            out.todo(key, f"the RBM pair disagrees on hdim {hdims}; {hdims[-1]} is used",
                     hid.span)
        gaussian = any(c.bool("gaussian", False) for c in confs if c is not None)
        for c in confs:
            if c is not None and c.bool("bias_term", True) is False:
                out.todo(key, "an rbm without biases has no equivalent", c.span("bias_term"))
        v_srcs = [s for s in vis.srcs if s != hid.name]
        if len(v_srcs) != 1:
            out.todo(key, f"kRBMVis '{vis.name}' should read one layer besides "
                     f"'{hid.name}'; it reads {v_srcs}", vis.r.span("srclayers"))
        extra = [s for s in hid.srcs if s != vis.name]
        if extra:
            out.todo(key, f"kRBMHid '{hid.name}' reads {extra} besides '{vis.name}'",
                     hid.r.span("srclayers"))
        sources = [self._source(s, "x", vis) for s in v_srcs[:1]]
        vparams = vis.r.messages("param", f"a param of '{vis.name}'")
        hparams = hid.r.messages("param", f"a param of '{hid.name}'")
        kwargs: dict = {"gaussian_hidden": True if gaussian else None}
        if hparams:
            # the hidden layer's first param is the visible layer's weight, shared
            owner = hparams[0].str("share_from")
            w_name = vparams[0].str("name") if vparams else None
            if owner is None or owner != w_name:
                out.todo(key, f"kRBMHid '{hid.name}' should share its weight with kRBMVis "
                         f"'{vis.name}' (share_from); the rbm has one w", hparams[0].msg.span)
            hparams[0].skip(*hparams[0].msg.names())
        for p, slot in [*zip(vparams, ("w", "vbias")), *zip(hparams[1:], ("hbias",))]:
            self.track(p, key)
            v = self._param(p, key)
            if v is not None:
                kwargs[slot] = v
        for p in vparams[2:] + hparams[2:]:
            out.todo(key, "an rbm has three params (w, vbias, hbias); this one is extra",
                     p.msg.span)
            p.skip(*p.msg.names())
        self._emit(hid, "rbm", sources + [hdims[-1]], kwargs)

    def _parser(self, info: LayerInfo):
        """v0.1 parser layers (kMnist, kRGBImage) decode a data layer's records: they become
        the input(...) layer, and their normalisation goes on the data source."""
        r, out = info.r, self.out
        key = f"net.{info.out_name}"
        if len(info.srcs) != 1 or info.srcs[0] not in self.groups:
            return self._drop(info, f"parser layer '{info.name}' should read one data layer",
                              todo=True, span=r.span("srclayers"))
        g = self.groups[info.srcs[0]]
        conf = self.track(r.message(PARSERS[info.type], PARSERS[info.type]), key)
        if conf is not None and info.type == "kMnist":
            a, b = conf.float("norm_a", 1.0), conf.float("norm_b", 0.0)
            g.normalize = normalize_record(a * b, a)        # x/a − b = (x − a·b)/a
            for f in ("kernel", "sigma", "alpha", "beta", "gamma", "resize", "elastic_freq"):
                for found in conf.fields(f):
                    out.todo(key, f"mnist_conf {f}: elastic distortion has no equivalent",
                             found.name_span)
        elif conf is not None:
            scale = conf.float("scale", 1.0)
            g.normalize = normalize_record(0.0, 1.0 / scale if scale else 1.0)
            for f in ("cropsize", "mirror", "meanfile"):
                for found in conf.fields(f):
                    out.todo(key, f"rgbimage_conf {f} has no equivalent (no crop, mirror or "
                             "mean file)", found.name_span)
        g.input_layer = g.input_layer or info.out_name
        self._emit(info, "input", [ref(g.block, g.features)], {})

    def _label(self, info: LayerInfo):
        if len(info.srcs) != 1 or info.srcs[0] not in self.groups:
            return self._drop(info, f"label layer '{info.name}' should read one data layer",
                              todo=True, span=info.r.span("srclayers"))
        g = self.groups[info.srcs[0]]
        self.aliases[info.name] = ref(g.block, g.labels)
        self.out.names.taken.discard(info.out_name)
        self.pending.append(("note", f"{info.type} layer '{info.name}' is the field "
                             f"{g.block}.{g.labels}", info.span))

    # -- params --
    def _params(self, info: LayerInfo, slots: tuple, key: str) -> dict:
        readers = info.r.messages("param", f"a param of '{info.name}'")
        for p in readers[len(slots):]:
            self.out.todo(key, f"layer '{info.name}' has more params than its op has "
                          f"({', '.join(slots) or 'none'}); this one is dropped", p.msg.span)
            p.skip(*p.msg.names())
        kwargs = {}
        for p, slot in zip(readers, slots):
            self.track(p, key)
            v = self._param(p, key)
            if v is not None:
                kwargs[slot] = v
        return kwargs

    def _param(self, p: Reader, key: str) -> ast.Expr | None:
        out = self.out
        name = p.str("name") or None
        owner = p.str("share_from")
        lr, wd = p.float("lr_scale", 1.0), p.float("wd_scale", 1.0)
        init_r = self.track(p.message("init", "init"), key)
        p.skip("id", "owner", "shape", "partition_dim")      # internal, or inferred
        if p.word("type", "kParam") != "kParam":
            out.todo(key, "a user param type has no equivalent", p.span("type"))
        if owner is not None:
            target = self.params.get(owner)
            if target is None:
                out.todo(key, f"share_from '{owner}' names no param of the training net",
                         p.span("share_from"))
            else:
                if init_r is not None or lr != 1 or wd != 1:
                    out.note(key, f"param {name or ''} shares {owner}: SINGA copies the "
                             "owner's settings, so its own init, lr_scale and wd_scale go")
                    if init_r is not None:
                        init_r.skip(*init_r.msg.names())
                if name:
                    out.note(key, f"param '{name}' (share_from '{owner}') is a share(): it has "
                             "no name of its own, as SINGA's checkpoints hold the owner only")
                return share_value(*target)
        init = self._init(init_r, key) if init_r is not None else None
        if init is not None:
            return param_value(init, name=name, lr_scale=lr, wd_scale=wd)
        if name and self.init_from:
            return param_value(None, name=name, lr_scale=lr, wd_scale=wd)   # loaded by name
        if init_r is None:
            scales = ", and its lr_scale/wd_scale go with it" if lr != 1 or wd != 1 else ""
            out.todo(key, f"param {repr(name) + ' ' if name else ''}has no init and no "
                     f"checkpoint_path to load it from; the op's default initializer stands "
                     f"in{scales}", p.msg.span)
        return None

    def _init(self, r: Reader, key: str) -> ast.Expr | None:
        method = r.enum("type", INIT_METHODS, "kUserInit")
        func, fields = INITS[method]
        user = r.str("user_type")
        if func is None or user:
            what = user or "(type kUserInit, the default)"
            self.out.todo(key, f"user param initializer {what} has no equivalent; the op's "
                          "default stands in",
                          r.span("user_type") if user else r.span("type"))
            r.skip(*r.msg.names())
            return None
        values = [r.float(f, d) for f, d in fields]
        scale = r.float("value", 1.0) if func != "constant" else 1.0
        if scale != 1:
            # SINGA multiplies each sample by value: fold it into the distribution
            values = [v * scale for v in values]
            self.out.note(key, f"init value {nice(scale)} is folded into the initializer's "
                          "arguments")
        r.skip("mean", "std", "low", "high", "value")   # other init types' fields: unused
        return call(func, *[nice(v) for v in values])

    # -- data blocks --
    def _data_block(self, g: DataGroup) -> ast.Block:
        entries = [(phase, self._source_call(g, phase, g.sources[phase]))
                   for phase in ALL_PHASES if phase in g.sources]
        if g.input_layer is None:
            self.out.note(f"data.{g.block}", f"no layer reads the image field of data layer "
                          f"'{g.name}' (only its labels, if any)")
        return block("data", g.block, entries)

    def _source_call(self, g: DataGroup, phase: str, info: LayerInfo) -> ast.Call:
        out, r = self.out, info.r
        key = f"data.{g.block}.{phase}"
        conf_name = DATA[g.kind]
        conf = self.track(r.message(conf_name, f"{conf_name} of '{info.name}'"), key)
        if conf is None:
            raise r.error(f"data layer '{info.name}' has no {conf_name}", info.span)
        path = conf.str("path", "")
        batches = conf.ints("batchsize") or [1]
        batch = sum(batches)
        if len(batches) > 1:
            out.note(key, f"batchsize {batches} per partition: batch {batch} in all")
        skip = conf.int("random_skip", 0)
        if skip:
            out.todo(key, f"random_skip {skip} has no equivalent (each worker group reads its "
                     "own shard of the records)", conf.span("random_skip"))
        if g.kind == "kCharRNN":
            seq = conf.int("unroll_len", self.unroll)
            vocab = conf.str("vocab_path")
            if vocab:
                out.note(key, f"vocab_path {vocab}: text() builds the vocabulary from the "
                         "corpus itself (its distinct characters, sorted)")
            return call("text", path, seq=seq, batch=batch)
        mean, std = conf.float("mean_value"), conf.float("std_value")
        normalize = normalize_record(mean, std) if (mean is not None or std is not None) \
            else g.normalize
        shape = conf.ints("shape")
        for f in ("mean_file", "std_file"):
            v = conf.str(f)
            if v:
                out.todo(key, f"{f} {v!r} has no equivalent: normalize: takes one mean "
                         "and one std", conf.span(f))
        if conf.bool("encoded", False):
            out.todo(key, "encoded (JPEG) records have no reader", conf.span("encoded"))
        if conf.bool("prefetching", False):
            out.note(key, "prefetching: sources prefetch by themselves")
        sep = conf.str("separator", ",")
        backend = conf.str("backend", "")
        has_label = conf.bool("has_label", True)
        if g.kind == "kCSVInput":
            if sep != ",":
                out.todo(key, f"separator {sep!r}: csv() reads commas only",
                         conf.span("separator"))
            if not has_label:
                out.todo(key, "has_label: false, but csv() always reads a label column",
                         conf.span("has_label"))
            return call("csv", path, label_column=0, batch=batch, normalize=normalize,
                        shape=shape if len(shape) > 1 else None)
        # A store singa_dsl has no reader for: a placeholder of the right shape, marked so
        # that nobody mistakes it for the data.
        known = dataset_of(path)
        ds = known[1] if known else None
        if not shape:
            # the phases of one block share a shape: take another phase's, else guess
            shape = next((sh for sh in (_conf_ints(l.r.msg, DATA[g.kind], "shape")
                                        for l in g.sources.values()) if sh), None) or \
                (list(ds.shape) if ds else [784])
            if not ds and not g.shape_guessed and not any(
                    _conf_ints(l.r.msg, DATA[g.kind], "shape") for l in g.sources.values()):
                g.shape_guessed = True
                out.todo(key, f"no store_conf shape tells the record's shape; {shape} is a "
                         "guess", conf.msg.span)
        size = (ds.train if phase == "train" else ds.test) if ds else \
            (50000 if phase == "train" else 10000)
        store = backend or {"kShardData": "shard", "kLMDBData": "LMDB"}.get(g.kind, "store")
        what = f"{g.kind} {store} {path!r}" if path else g.kind
        norm = f" (normalize: ({', '.join(f'{k}: {v}' for k, v in normalize.items())}))" \
            if normalize else ""
        hint = f", e.g. {reader_hint(ds, phase)}" if ds else ""
        out.todo(key, f"{what} has no singa_dsl reader: synthetic(...) stands in with the "
                 f"same shape so that the program checks and trains; point {phase} at the "
                 f"real data{hint}{norm}", conf.span("path") if path else info.span)
        return placeholder(shape, batch, self._classes(g) or (ds.classes if ds else None), size)

    def _classes(self, g: DataGroup) -> int | None:
        """A placeholder's classes: the units of the layer whose output the loss compares
        with this data's labels."""
        for info in self.layers:
            if info.type in ("kSoftmaxLoss", "kCudnnSoftmaxLoss") and len(info.srcs) > 1:
                label = info.srcs[1]
                if label == g.name or any(l.name == label and l.type in LABELS
                                          and l.srcs[:1] == [g.name] for l in self.layers):
                    for l in self.layers:
                        if l.name == info.srcs[0] and l.type == "kInnerProduct":
                            n = _conf_int(l.r.msg, "innerproduct_conf", "num_output")
                            if n:
                                return n
        return None


def _path_of(msg: Message, conf: str) -> str:
    v = _conf_scalar(msg, conf, "path")
    return v if isinstance(v, str) else ""


def _scalar(msg: Message, name: str):
    f = msg.all(name)
    if len(f) != 1 or isinstance(f[0].value, Message):
        return None
    return f[0].value.value


def _conf_scalar(msg: Message, conf: str | None, name: str):
    """A scalar inside a conf message, peeked at without reading (None if absent or odd)."""
    if conf is None:
        return None
    c = msg.all(conf)
    if len(c) != 1 or not isinstance(c[0].value, Message):
        return None
    f = c[0].value.all(name)
    if len(f) != 1 or isinstance(f[0].value, Message):
        return None
    return f[0].value.value


def _conf_ints(msg: Message, conf: str, name: str) -> list[int]:
    """A repeated int field inside a conf message, peeked at without reading."""
    c = msg.all(conf)
    if len(c) != 1 or not isinstance(c[0].value, Message):
        return []
    values = [f.value for f in c[0].value.all(name)]
    if not values or any(isinstance(v, Message) or v.kind != "int" or v.value <= 0
                         for v in values):
        return []
    return [v.value for v in values]


def _conf_int(msg: Message, conf: str, name: str) -> int | None:
    v = _conf_scalar(msg, conf, name)
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _conf_bool(msg: Message, conf: str | None, name: str) -> bool | None:
    v = _conf_scalar(msg, conf, name)
    return {"true": True, "false": False, 1: True, 0: False}.get(v) if v is not None else None


def _get(conf: Reader, f: str, typ: str):
    return {"int": conf.int, "float": conf.float, "bool": conf.bool}[typ](f)
