"""Caffe ``NetParameter`` (train_val.prototxt) + ``SolverParameter`` (solver.prototxt) → .singa.

Caffe wires layers by named blobs: ``bottom`` is read, ``top`` is written, and an in-place
layer (top == bottom, e.g. ReLU) overwrites its blob.  Here every layer becomes a .singa layer
named after the Caffe *layer* (unique, unlike the blobs), and a blob name always means the
layer that last wrote it — so ``relu1`` on blob ``ip1`` is ``relu1 = relu(ip1)`` and later
readers of ``ip1`` read ``relu1``.  One net serves every phase: TEST-only layers (Accuracy)
are dropped with a comment, TRAIN/TEST data layers become one ``data`` block's sources.

The tables below are the mapping; a layer type without an equivalent is dropped with a
located warning and a ``# TODO(import)`` comment, and its tops read its first bottom so the
rest of the net stays wired.
"""
from __future__ import annotations

import math
import pathlib
from dataclasses import dataclass, field

from singa_dsl.errors import SingaError, Span
from . import ast
from .importer import (Out, block, call, dataset_of, identifier, infer_shape, layer, nice,
                       normalize_record, param_value, placeholder, reader_hint, ref,
                       share_value, tensor)
from .prototxt import Message, Reader, parse_prototxt

# ---- tables ----------------------------------------------------------------------------------
PHASES = {"TRAIN": "train", "TEST": "test", 0: "train", 1: "test"}
# V1LayerParameter (``layers { type: CONVOLUTION }``) enum → the type string of ``layer``.
V1_TYPES = {
    "ABSVAL": "AbsVal", "ACCURACY": "Accuracy", "ARGMAX": "ArgMax", "BNLL": "BNLL",
    "CONCAT": "Concat", "CONTRASTIVE_LOSS": "ContrastiveLoss", "CONVOLUTION": "Convolution",
    "DATA": "Data", "DECONVOLUTION": "Deconvolution", "DROPOUT": "Dropout",
    "DUMMY_DATA": "DummyData", "EUCLIDEAN_LOSS": "EuclideanLoss", "ELTWISE": "Eltwise",
    "EXP": "Exp", "FLATTEN": "Flatten", "HDF5_DATA": "HDF5Data", "HDF5_OUTPUT": "HDF5Output",
    "HINGE_LOSS": "HingeLoss", "IM2COL": "Im2col", "IMAGE_DATA": "ImageData",
    "INFOGAIN_LOSS": "InfogainLoss", "INNER_PRODUCT": "InnerProduct", "LRN": "LRN",
    "MEMORY_DATA": "MemoryData", "MULTINOMIAL_LOGISTIC_LOSS": "MultinomialLogisticLoss",
    "MVN": "MVN", "POOLING": "Pooling", "POWER": "Power", "RELU": "ReLU",
    "SIGMOID": "Sigmoid", "SIGMOID_CROSS_ENTROPY_LOSS": "SigmoidCrossEntropyLoss",
    "SILENCE": "Silence", "SOFTMAX": "Softmax", "SOFTMAX_LOSS": "SoftmaxWithLoss",
    "SPLIT": "Split", "SLICE": "Slice", "TANH": "TanH", "WINDOW_DATA": "WindowData",
    "THRESHOLD": "Threshold",
}
# Layer type → the method that translates it (data layers are gathered separately).
HANDLERS = {
    "Convolution": "_conv", "Pooling": "_pool", "InnerProduct": "_inner_product",
    "ReLU": "_relu", "Sigmoid": "_plain", "TanH": "_plain", "Softmax": "_softmax",
    "LRN": "_lrn", "Dropout": "_dropout", "SoftmaxWithLoss": "_softmax_loss",
    "EuclideanLoss": "_euclidean_loss", "Accuracy": "_accuracy", "Concat": "_concat",
    "Slice": "_slice", "Split": "_split", "Flatten": "_flatten", "BatchNorm": "_batchnorm",
    "Scale": "_scale", "Embed": "_embed", "ArgMax": "_argmax", "Silence": "_silence",
}
V1_TYPE_ENUM = {**V1_TYPES, **{v: v for v in V1_TYPES.values()}}   # either spelling
PLAIN = {"Sigmoid": "sigmoid", "TanH": "tanh"}
LOSSES = ("softmax_loss", "euclidean_loss")
DATA_TYPES = ("Data", "ImageData", "MemoryData", "HDF5Data", "DummyData", "Input",
              "WindowData")
# Layer types with no equivalent: why (the layer is dropped, its tops read its first bottom).
NO_EQUIVALENT = {
    "Deconvolution": "no transposed convolution op",
    "Eltwise": "no element-wise sum/product/max op",
    "Power": "no power op", "AbsVal": "no abs op", "BNLL": "no softplus op",
    "ELU": "no ELU op", "PReLU": "relu's slope is fixed, not learned", "Exp": "no exp op",
    "Log": "no log op", "Threshold": "no threshold op", "Reshape": "no reshape op",
    "Crop": "no crop op", "Bias": "no separate bias op", "Tile": "no tile op",
    "Reduction": "no reduction op", "MVN": "no mean-variance normalisation op",
    "SPP": "no spatial pyramid pooling", "Im2col": "no im2col op",
    "LSTM": "Caffe's LSTM is unrolled over its input's time axis; write lstm(x, hidden) in a "
            "net with unroll: N and algorithm bptt",
    "RNN": "write rnn(x, hidden) in a net with unroll: N and algorithm bptt",
    "InfogainLoss": "no infogain loss", "HingeLoss": "no hinge loss",
    "SigmoidCrossEntropyLoss": "no sigmoid cross-entropy loss",
    "ContrastiveLoss": "no contrastive loss",
    "MultinomialLogisticLoss": "no multinomial logistic loss on probabilities; "
                               "softmax_loss takes logits",
    "HDF5Output": "outputs are written by singac run, not by layers",
    "Python": "a user-written Python layer", "Filter": "no filter op",
    "BatchReindex": "no batch reindexing", "Parameter": "no free-standing parameter op",
}
FILLER_NORMS = {"FAN_IN": "in", "FAN_OUT": "out", "AVERAGE": "avg", 0: "in", 1: "out", 2: "avg"}
POOLS = {"MAX": "max_pool", "AVE": "avg_pool", "STOCHASTIC": None, 0: "max_pool",
         1: "avg_pool", 2: None}
LRN_REGIONS = {"ACROSS_CHANNELS": "across", "WITHIN_CHANNEL": "within", 0: "across",
               1: "within"}
ROUND_MODES = {"CEIL": "ceil", "FLOOR": "floor", 0: "ceil", 1: "floor"}
ENGINES = {"DEFAULT": 0, "CAFFE": 1, "CUDNN": 2, 0: 0, 1: 1, 2: 2}
BACKENDS = {"LEVELDB": "leveldb", "LMDB": "lmdb", 0: "leveldb", 1: "lmdb"}

# Solver.  type strings and the old solver_type enum → updater kind.
SOLVER_TYPES = {"SGD": "sgd", "Nesterov": "nesterov", "AdaGrad": "adagrad",
                "RMSProp": "rmsprop", "AdaDelta": "adadelta", "Adam": "adam"}
SOLVER_ENUM = {"SGD": "sgd", "NESTEROV": "nesterov", "ADAGRAD": "adagrad",
               "RMSPROP": "rmsprop", "ADADELTA": "adadelta", "ADAM": "adam",
               0: "sgd", 1: "nesterov", 2: "adagrad", 3: "rmsprop", 4: "adadelta", 5: "adam"}
# Where Caffe's update rule and singa_dsl's (SINGA's) differ: a note, or a TODO for Adam,
# whose missing bias correction changes the first thousands of steps.
UPDATER_NOTES = {
    "adagrad": "Caffe divides by sqrt(H) + delta, singa_dsl (as SINGA) by sqrt(H + delta)",
    "rmsprop": "Caffe divides by sqrt(H) + delta, singa_dsl (as SINGA) by sqrt(H + delta)",
}
SOLVER_NO_EQUIVALENT = {
    "solver_mode": "devices are chosen when the program runs (singac run --device)",
    "device_id": "devices are chosen when the program runs (singac run --device)",
    "debug_info": "no per-blob debug output; singac graph draws the net",
    "snapshot_diff": "checkpoints hold values only",
    "snapshot_format": "checkpoints have one format",
    "test_net": "one net serves every phase; TEST-phase layers come from the train net file",
    "test_net_param": "one net serves every phase",
    "train_state": "no net states or stages", "test_state": "no net states or stages",
    "test_compute_loss": "tests always report the loss",
    "clip_gradients": "clip: bounds each gradient value; Caffe scales by the global L2 norm",
    "iter_size": "no gradient accumulation over several batches: raise the batch instead",
    "snapshot_after_train": "a checkpoint is always written at the end of training",
    "weights": "load params with init_from (by name) instead",
}
SOLVER_HARMLESS = {"average_loss": "the display shows the average over the steps since the "
                                   "last display", "layer_wise_reduce": None}


@dataclass
class Blob:
    """What a Caffe blob name means now: the expression to read it, and its per-sample shape
    (None where unknown)."""
    expr: ast.Expr
    info: object = None


@dataclass
class LayerInfo:
    r: Reader
    name: str
    type: str
    bottoms: list[str]
    tops: list[str]
    phases: set[str]
    explicit: bool
    span: object
    out_name: str = ""
    loss_weight: float | None = None


@dataclass
class DataGroup:
    name: str
    block: str = ""
    kind: str = ""
    tops: tuple = ()
    sources: dict = field(default_factory=dict)     # phase → LayerInfo
    shape: tuple | None = None
    batch: int | None = None            # a deploy input's batch
    input_layer: str | None = None


def translate(top: Message, text: str, file: str, solver=None) -> Out:
    return _Caffe(top, text, file, solver).run()


def net_of_solver(top: Message, text: str, filename: str) -> tuple[Message, str, str]:
    """The net a solver names: an inline net_param, or the file in ``net``/``train_net``,
    looked for as written, beside the solver, and from each folder above it (Caffe's paths
    are relative to the Caffe root, e.g. examples/mnist/lenet_train_test.prototxt)."""
    r = Reader(top, "the solver", text)
    for inline in ("net_param", "train_net_param"):
        found = r.message(inline, inline)
        if found is not None:
            return found.msg, text, filename
    for key in ("net", "train_net"):
        path = r.str(key)
        if path is None:
            continue
        here = pathlib.Path(filename).resolve().parent
        tries = [pathlib.Path(path), here / path, here / pathlib.Path(path).name]
        tries += [d / path for d in here.parents]
        for p in tries:
            if p.is_file():
                try:
                    net_text = p.read_text(encoding="utf-8")
                except (OSError, UnicodeDecodeError) as e:
                    raise SingaError(f"cannot read {p}: {e}") from None
                return _parse(net_text, str(p)), net_text, str(p)
        raise r.error(f"cannot find the net file {path!r} named by the solver", r.span(key),
                      "give the net file to singac import and the solver with --solver")
    return _no_net(r, text)


def _no_net(r: Reader, text: str):
    raise r.error("the solver names no net (net, train_net or net_param)", r.msg.span,
                  "give the net file to singac import and the solver with --solver")


def _parse(text: str, filename: str) -> Message:
    try:
        return parse_prototxt(text, filename)
    except SingaError as e:
        raise e.with_source(text)


def find_solver(net_file: str) -> str | None:
    """A *solver*.prototxt beside the net whose ``net:`` names the net's file, if one."""
    p = pathlib.Path(net_file)
    if not p.is_file():
        return None
    for cand in sorted(p.parent.glob("*solver*.prototxt")):
        try:
            text = cand.read_text(encoding="utf-8")
            top = parse_prototxt(text, str(cand))
        except (OSError, UnicodeDecodeError, SingaError):
            continue
        for key in ("net", "train_net"):
            for f in top.all(key):
                if not isinstance(f.value, Message) and f.value.kind == "string" and \
                        pathlib.PurePosixPath(f.value.value).name == p.name:
                    return str(cand)
    return None


class _Caffe:
    def __init__(self, top: Message, text: str, file: str, solver):
        self.text, self.file = text, file
        self.out = Out(text, file)
        self.top = Reader(top, "the net", text)
        self.solver = solver                       # (Message, text, file) or None
        self.readers: list[tuple[Reader, str, str]] = []
        self.layers: list[LayerInfo] = []
        self.groups: dict[tuple, DataGroup] = {}
        self.blobs: dict[str, Blob] = {}
        self.params: dict[str, tuple[str, str]] = {}
        self.items: list = []
        self.pending: list[tuple[str, str, object]] = []
        self.units: dict[str, int] = {}            # blob → num_output of its InnerProduct
        self.loss_labels: dict[str, str] = {}      # label blob → logits blob
        self.accuracy_topk: dict[str, tuple[int, object]] = {}
        self.bn_blobs: set[str] = set()
        self.scales: dict[str, tuple[float, float]] = {}   # shared param → (lr, wd) of owner

    def track(self, r: Reader | None, key: str, text: str | None = None) -> Reader | None:
        if r is not None:
            self.readers.append((r, key, text or self.text))
        return r

    # -- the whole program --
    def run(self) -> Out:
        out, r = self.out, self.top
        self.track(r, "net")
        name = identifier(r.str("name") or pathlib.Path(self.file).stem, "net")
        self._read_layers()
        self._deploy_inputs()
        self._name_things()
        self._prescan_accuracy()
        for info in self.layers:
            self._layer(info)
        for kind, message, span in self.pending:
            if kind == "todo":
                out.todo("net.end", message, span)
            else:
                out.note("net.end", message)
        for f in ("force_backward", "state", "debug_info"):
            for found in r.fields(f):
                out.todo("net", f"net field '{f}' has no equivalent", found.name_span)
        if not any(isinstance(i.value, ast.Call) and i.value.func in LOSSES for i in self.items):
            out.todo("net", "the TRAIN net has no loss that singa_dsl has (a deploy net?), so "
                     "algorithm bp cannot train it", r.msg.span if r.msg.span.line else
                     Span(self.file, 1, 1, 1, 2))
        out.net = ast.NetDecl(name, tuple(self.items))
        out.data = [self._data_block(g) for g in self.groups.values()]
        out.algorithm = block("algorithm", "bp", [], has_body=False)
        if self.solver is not None:
            self._solver(name)
        else:
            self._no_solver(name)
        for reader, key, text in self.readers:
            for f in reader.unread():
                out.todo(key, f"field '{f.name}' of {reader.what} has no equivalent in "
                         "singa_dsl and was not translated", f.name_span, source=text)
        solver = f" with the solver {pathlib.Path(self.solver[2]).name}" if self.solver else ""
        out.note("top", f"Imported from the Caffe net {pathlib.Path(self.file).name}{solver} "
                 "by singac import. Each layer keeps its Caffe layer name; a blob means the "
                 "layer that last wrote it, so in-place layers (top = bottom) chain.")
        return out

    # -- reading the layers --
    def _read_layers(self):
        v1 = self.top.messages("layers", "a layer")
        for r in self.top.messages("layer", "a layer") + v1:
            name = r.str("name") or f"layer{len(self.layers) + 1}"
            r.what = f"layer '{name}'"
            if any(r is v for v in v1):
                typ = r.enum("type", V1_TYPE_ENUM, "")
            else:
                typ = r.str("type", "")
            phases, explicit = self._phases(r, name)
            info = LayerInfo(r, name, typ, r.strs("bottom"), r.strs("top"), phases, explicit,
                             r.msg.span)
            self.layers.append(info)
            if typ in DATA_TYPES:
                g = self.groups.setdefault(tuple(info.tops),
                                           DataGroup(name, tops=tuple(info.tops)))
                if g.kind and g.kind != typ:
                    self.out.todo("net", f"data layers writing {list(info.tops)} are of two "
                                  f"types, {g.kind} and {typ}", r.span("type"))
                g.kind = g.kind or typ
                for p in sorted(phases):
                    if p in g.sources:
                        raise r.error(f"two data layers write {list(info.tops)} in the {p} "
                                      "phase", r.span("name"), "give them include { phase: "
                                      "TRAIN } and include { phase: TEST }")
                    g.sources[p] = info

    def _phases(self, r: Reader, name: str) -> tuple[set[str], bool]:
        """A layer's phases from include/exclude rules (NetStateRule) or its ``phase``."""
        everything = {"train", "test"}
        includes = r.messages("include", f"an include rule of '{name}'")
        excludes = r.messages("exclude", f"an exclude rule of '{name}'")
        if includes and excludes:
            raise r.error(f"layer '{name}' has both include and exclude rules (Caffe refuses "
                          "that too)", r.span("exclude"), "keep one kind")
        phase = r.enum("phase", PHASES)
        if phase is not None and not includes and not excludes:
            return {phase}, True
        rules = includes or excludes
        found = set()
        for rule in rules:
            self.track(rule, "net")
            p = rule.enum("phase", PHASES)
            for f in ("stage", "not_stage", "min_level", "max_level"):
                for s in rule.fields(f):
                    self.out.todo("net", f"{f} in a rule of layer '{name}' has no "
                                  "equivalent (no net states); only its phase counts",
                                  s.name_span)
            found |= {p} if p else everything
        if not rules:
            return everything, False
        return (found if includes else everything - found), True

    def _deploy_inputs(self):
        """``input: "data"`` with input_dim/input_shape (deploy nets) → a data placeholder."""
        r = self.top
        names = r.strs("input")
        dims = r.ints("input_dim")
        shapes = [s.ints("dim") for s in r.messages("input_shape", "input_shape")]
        for s in r.messages("input_shape", "input_shape"):
            s.skip("dim")
        for i, name in enumerate(names):
            shape = shapes[i] if i < len(shapes) else dims[4 * i:4 * i + 4]
            g = DataGroup(name, kind="Input", tops=(name,))
            g.shape = tuple(shape[1:]) if len(shape) > 1 else None
            g.sources["train"] = LayerInfo(r, name, "Input", [], [name], {"train"}, False,
                                           r.span("input"))
            g.batch = shape[0] if shape else 1
            self.groups[(name,)] = g
            self.layers.insert(i, g.sources["train"])

    def _name_things(self):
        """Data blocks are named after their Caffe data layer (mnist, cifar), then every
        layer claims its own name."""
        for g in self.groups.values():
            g.block = self.out.names.claim(g.name, "set")
        for info in self.layers:
            if info.type not in DATA_TYPES and info.type != "Input" and "train" in info.phases:
                info.out_name = self.out.names.claim(info.name)

    def _prescan_accuracy(self):
        """Accuracy's top_k moves to the softmax_loss of the same logits (which reports it)."""
        for info in self.layers:
            if info.type == "Accuracy" and info.bottoms:
                acc = info.r.msg.all("accuracy_param")
                k = 1
                if len(acc) == 1 and isinstance(acc[0].value, Message):
                    t = acc[0].value.all("top_k")
                    if t and not isinstance(t[0].value, Message) and t[0].value.kind == "int":
                        k = t[0].value.value
                self.accuracy_topk.setdefault(info.bottoms[0], (k, info.span))

    # -- one layer --
    def _layer(self, info: LayerInfo):
        t = info.type
        if t in DATA_TYPES:
            return self._data_layer(info)
        if "train" not in info.phases:
            info.r.skip(*info.r.msg.names())
            if t == "Accuracy":
                self.pending.append(("note", f"Accuracy layer '{info.name}' dropped: "
                                     "softmax_loss reports accuracy itself", info.span))
            else:
                self.pending.append(("todo", f"{t} layer '{info.name}' is only in the TEST "
                                     "phase: the program has one net for every phase",
                                     info.span))
            return
        key = f"net.{info.out_name}"
        self.track(info.r, key)
        self._common(info, key)
        method = HANDLERS.get(t)
        if method is not None:
            return getattr(self, method)(info, key)
        why = NO_EQUIVALENT.get(t, "singa_dsl has no such op" if t else "the layer has no type")
        self._drop(info, f"{t or '(no type)'} layer '{info.name}' has no equivalent: {why}",
                   info.r.span("type"))

    def _common(self, info: LayerInfo, key: str):
        r = info.r
        weights = r.floats("loss_weight")
        info.loss_weight = weights[0] if weights else None
        if weights and info.type not in ("SoftmaxWithLoss", "EuclideanLoss"):
            if any(w != 0 for w in weights):
                self.out.todo(key, f"loss_weight on a {info.type} layer has no equivalent "
                              "(only loss ops make a loss)", r.span("loss_weight"))
        for f in ("propagate_down", "blobs", "exclude_from_summary"):
            for found in r.fields(f):
                self.out.todo(key, f"field '{f}' has no equivalent", found.name_span)

    def _drop(self, info: LayerInfo, message: str, span=None, todo: bool = True):
        info.r.skip(*info.r.msg.names())
        src = self.blobs.get(info.bottoms[0]) if info.bottoms else None
        for t in info.tops:
            if src is not None:
                self.blobs[t] = src
        self.out.names.taken.discard(info.out_name)
        self.pending.append(("todo" if todo else "note", message, span or info.span))

    def _flush(self, name: str):
        self.out.flush(f"net.{name}", self.pending)

    def _emit(self, info: LayerInfo, op: str, sources: list[ast.Expr], args: list,
              kwargs: dict, name: str | None = None, top: str | None = None):
        """Write ``name = op(sources..., args..., kwargs...)`` and make its top blob mean it."""
        name = name or info.out_name
        self._flush(name)
        self.items.append(layer(name, op, sources + args, kwargs))
        out_info = infer_shape(op, [self._info_of(s) for s in sources], args, kwargs)
        for t in ([top] if top else info.tops[:1]):
            self.blobs[t] = Blob(ref(name), out_info)
        return out_info

    def _info_of(self, e: ast.Expr):
        for b in self.blobs.values():
            if b.expr == e:
                return b.info
        return None

    def _bottom(self, info: LayerInfo, i: int, key: str) -> ast.Expr:
        name = info.bottoms[i]
        b = self.blobs.get(name)
        if b is None:
            self.out.todo(key, f"bottom '{name}' of layer '{info.name}' is written by no "
                          "layer of the TRAIN net", info.r.span("bottom"))
            return ref(identifier(name))
        return b.expr

    def _bottoms(self, info: LayerInfo, key: str, want: int | None) -> list[ast.Expr]:
        n = len(info.bottoms)
        if want is not None and n != want:
            self.out.todo(key, f"layer '{info.name}' has {n} bottoms; its op takes {want}",
                          info.r.span("bottom") if n else info.span)
        if want is not None and len(info.tops) > 1:
            self.out.todo(key, f"layer '{info.name}' has {len(info.tops)} tops; only the "
                          "first is written", info.r.span("top"))
        return [self._bottom(info, i, key) for i in range(n if want is None else min(n, want))]

    def _conf(self, info: LayerInfo, name: str, key: str) -> Reader | None:
        r = self.track(info.r.message(name, f"{name} of '{info.name}'"), key)
        if r is not None:
            r.enum("engine", ENGINES, 0)     # CAFFE or CUDNN: the same function either way
        return r

    # -- params --
    def _params(self, info: LayerInfo, key: str, fillers: list[tuple[str, Reader | None, bool]]
                ) -> dict:
        """param { name lr_mult decay_mult } (V1: param names, blobs_lr, weight_decay) and
        the fillers → the op's param attributes.  ``fillers``: (slot, filler, is_weight)."""
        r = info.r
        specs, v1_names = [], []          # V1 layers name their params with plain strings
        for f in r.fields("param"):
            if isinstance(f.value, Message):
                specs.append(r._message(f, f"a param of '{info.name}'"))
            else:
                v1_names.append(r._str(f))
        lrs, decays = r.floats("blobs_lr"), r.floats("weight_decay")
        kwargs = {}
        for i, (slot, filler, is_weight) in enumerate(fillers):
            name, lr, wd = (v1_names[i] if i < len(v1_names) else None), 1.0, 1.0
            if i < len(specs):
                s = self.track(specs[i], key)
                name = s.str("name") or None
                lr, wd = s.float("lr_mult", 1.0), s.float("decay_mult", 1.0)
                mode = s.enum("share_mode", {"STRICT": 0, "PERMISSIVE": 1, 0: 0, 1: 1}, 0)
                if mode:
                    self.out.note(key, "share_mode PERMISSIVE: shares must match in shape "
                                  "here")
            if i < len(lrs):
                lr = lrs[i]
            if i < len(decays):
                wd = decays[i]
            if name and name in self.params:
                owner = self.params[name]
                if filler is not None:
                    filler.skip(*filler.msg.names())
                if (lr, wd) != self.scales.get(name, (1.0, 1.0)):
                    self.out.todo(key, f"param '{name}' is shared with {owner[0]}.{owner[1]} "
                                  "but asks for other lr_mult/decay_mult; the owner's apply",
                                  specs[i].msg.span if i < len(specs) else info.span)
                kwargs[slot] = share_value(*owner)
                continue
            if name:
                self.params[name] = (info.out_name, slot)
                self.scales[name] = (lr, wd)
            init = self._filler(filler, key, is_weight)
            if init is None:            # untranslatable filler: the op's default, reported
                continue
            kwargs[slot] = param_value(init, name=name, lr_scale=lr, wd_scale=wd)
        for s in specs[len(fillers):]:
            self.out.todo(key, f"layer '{info.name}' has more param specs than params "
                          f"({len(fillers)}); this one is dropped", s.msg.span)
            s.skip(*s.msg.names())
        return kwargs

    def _filler(self, f: Reader | None, key: str, is_weight: bool) -> ast.Expr | None:
        """A FillerParameter → an initializer (Caffe's default filler is constant 0)."""
        if f is None:
            if is_weight:
                self.out.note_once(key, "no weight_filler: Caffe's default filler, all zeros")
            return call("constant", 0)
        kind = f.str("type", "constant")
        norm = f.enum("variance_norm", FILLER_NORMS, "in")
        if kind == "constant":
            return call("constant", nice(f.float("value", 0.0)))
        if kind == "gaussian":
            if f.int("sparse", -1) > 0:
                self.out.todo(key, "a sparse gaussian filler has no equivalent; a dense one "
                              "stands in", f.span("sparse"))
            return call("gaussian", nice(f.float("mean", 0.0)), nice(f.float("std", 1.0)))
        if kind == "uniform":
            return call("uniform", nice(f.float("min", 0.0)), nice(f.float("max", 1.0)))
        if kind == "xavier":
            # Caffe: U(±sqrt(3/n)); n = fan_in (default), fan_out, or their mean
            if norm == "in":
                self.out.note_once(key, "Caffe's xavier filler (n = fan_in) is "
                                   "U(±sqrt(3/fan_in)), which is uniform_fan_in(); glorot() "
                                   "is its AVERAGE variant")
                return call("uniform_fan_in")
            if norm == "avg":
                self.out.note_once(key, "Caffe's xavier filler with variance_norm AVERAGE "
                                   "is U(±sqrt(6/(fan_in + fan_out))): glorot()")
                return call("glorot")
            self.out.todo(key, "xavier with variance_norm FAN_OUT has no equivalent; glorot() "
                          "(the AVERAGE variant) stands in", f.span("variance_norm"))
            return call("glorot")
        if kind == "msra":
            if norm != "in":
                self.out.todo(key, "msra with variance_norm other than FAN_IN has no "
                              "equivalent; the FAN_IN variant stands in",
                              f.span("variance_norm"))
            self.out.note_once(key, "Caffe's msra filler is N(0, sqrt(2/fan_in)): "
                               "gaussian_fan_in(0, sqrt(2))")
            return call("gaussian_fan_in", 0, nice(math.sqrt(2.0)))
        self.out.todo(key, f"filler {kind!r} has no equivalent; the op's default stands in",
                      f.span("type"))
        f.skip(*f.msg.names())
        return None

    # -- layer kinds --
    def _square(self, c: Reader, key: str, name: str, default: int | None) -> int | None:
        """kernel_size/stride/pad (repeated, or _h/_w) → one size: ours are square."""
        values = c.ints(name)
        base = name.replace("_size", "")
        h, w = c.int(f"{base}_h"), c.int(f"{base}_w")
        if h is not None or w is not None:
            values = [v for v in (h, w) if v is not None]
        if len(set(values)) > 1:
            self.out.todo(key, f"{base} {values}: kernels, strides and pads are square; "
                          f"{values[0]} is used", c.span(name) if c.has(name) else
                          c.span(f"{base}_h"))
        return values[0] if values else default

    def _conv(self, info: LayerInfo, key: str):
        c = self._conf(info, "convolution_param", key)
        if c is None or c.int("num_output") is None:
            raise info.r.error(f"Convolution layer '{info.name}' needs convolution_param "
                               "{ num_output: ... }", info.span)
        n = c.int("num_output")
        kernel = self._square(c, key, "kernel_size", None)
        if kernel is None:
            raise c.error(f"Convolution layer '{info.name}' needs kernel_size", c.msg.span)
        kwargs = {"kernel": kernel}
        for f in ("stride", "pad"):
            v = self._square(c, key, f, None)
            if v is not None:
                kwargs[f] = v
        for f, default in (("group", 1), ("axis", 1)):
            v = c.int(f, default)
            if v != default:
                self.out.todo(key, f"{f} {v} has no equivalent (no grouped convolution)"
                              if f == "group" else f"axis {v}: conv reads channels at axis 1",
                              c.span(f))
        for d in c.ints("dilation"):
            if d != 1:
                self.out.todo(key, "dilated convolution has no equivalent", c.span("dilation"))
                break
        c.skip("engine", "force_nd_im2col")
        bias = c.bool("bias_term", True)
        if not bias:
            kwargs["bias"] = False
        fillers = [("w", self.track(c.message("weight_filler", "weight_filler"), key), True)]
        if bias:
            fillers.append(("b", self.track(c.message("bias_filler", "bias_filler"), key), False))
        kwargs.update(self._params(info, key, fillers))
        self._emit(info, "conv", self._bottoms(info, key, 1), [n], kwargs)

    def _pool(self, info: LayerInfo, key: str):
        c = self._conf(info, "pooling_param", key)
        if c is None:
            raise info.r.error(f"Pooling layer '{info.name}' needs pooling_param", info.span)
        op = c.enum("pool", POOLS, "max_pool")
        if op is None:
            self.out.todo(key, "STOCHASTIC pooling has no equivalent; max_pool stands in",
                          c.span("pool"))
            op = "max_pool"
        sources = self._bottoms(info, key, 1)
        kernel = self._square(c, key, "kernel_size", None)
        stride = self._square(c, key, "stride", 1)       # Caffe's default stride is 1
        pad = self._square(c, key, "pad", None)
        if c.bool("global_pooling", False):
            src = self._info_of(sources[0]) if sources else None
            if src is None or len(src.shape) != 3 or src.shape[1] != src.shape[2]:
                self.out.todo(key, "global_pooling needs the input's size, which is not known "
                              "here; write kernel: SIZE", c.span("global_pooling"))
            else:
                kernel, stride, pad = src.shape[1], 1, None
                self.out.note(key, f"global_pooling: the input is {src.shape[1]}x"
                              f"{src.shape[2]}, so kernel {kernel}")
        if kernel is None:
            raise c.error(f"Pooling layer '{info.name}' needs kernel_size", c.msg.span)
        if c.enum("round_mode", ROUND_MODES, "ceil") == "floor":
            self.out.todo(key, "round_mode FLOOR: pooling rounds its output size up, as "
                          "Caffe's default does", c.span("round_mode"))
        c.skip("engine")
        kwargs = {"kernel": kernel, "stride": stride}
        if pad is not None:
            kwargs["pad"] = pad
        self._emit(info, op, sources, [], kwargs)

    def _inner_product(self, info: LayerInfo, key: str):
        c = self._conf(info, "inner_product_param", key)
        if c is None or c.int("num_output") is None:
            raise info.r.error(f"InnerProduct layer '{info.name}' needs inner_product_param "
                               "{ num_output: ... }", info.span)
        n = c.int("num_output")
        kwargs = {}
        if c.bool("transpose", False):
            kwargs["transpose"] = True
        axis = c.int("axis", 1)
        if axis != 1:
            self.out.todo(key, f"axis {axis}: dense flattens everything after the batch "
                          "(axis 1)", c.span("axis"))
        bias = c.bool("bias_term", True)
        if not bias:
            kwargs["bias"] = False
        fillers = [("w", self.track(c.message("weight_filler", "weight_filler"), key), True)]
        if bias:
            fillers.append(("b", self.track(c.message("bias_filler", "bias_filler"), key), False))
        kwargs.update(self._params(info, key, fillers))
        self._emit(info, "dense", self._bottoms(info, key, 1), [n], kwargs)
        self.units[info.tops[0] if info.tops else ""] = n

    def _relu(self, info: LayerInfo, key: str):
        c = self._conf(info, "relu_param", key)
        kwargs = {}
        if c is not None:
            slope = c.float("negative_slope", 0.0)
            if slope:
                kwargs["slope"] = nice(slope)
            c.skip("engine")
        self._emit(info, "relu", self._bottoms(info, key, 1), [], kwargs)

    def _plain(self, info: LayerInfo, key: str):
        for conf in ("sigmoid_param", "tanh_param"):
            c = self._conf(info, conf, key)
            if c is not None:
                c.skip("engine")
        self._emit(info, PLAIN[info.type], self._bottoms(info, key, 1), [], {})

    def _softmax(self, info: LayerInfo, key: str):
        self._softmax_axis(info, key)
        self._emit(info, "softmax", self._bottoms(info, key, 1), [], {})

    def _softmax_axis(self, info: LayerInfo, key: str):
        c = self._conf(info, "softmax_param", key)
        if c is not None:
            axis = c.int("axis", 1)
            if axis != 1:
                self.out.todo(key, f"softmax over axis {axis}: softmax is over the features "
                              "(axis 1)", c.span("axis"))
            c.skip("engine")

    def _lrn(self, info: LayerInfo, key: str):
        c = self._conf(info, "lrn_param", key)
        kwargs = {}
        if c is not None:
            for f, attr, get in (("local_size", "size", c.int), ("alpha", "alpha", c.float),
                                 ("beta", "beta", c.float), ("k", "k", c.float)):
                v = get(f)
                if v is not None:
                    kwargs[attr] = nice(v)
            if c.enum("norm_region", LRN_REGIONS, "across") == "within":
                self.out.todo(key, "WITHIN_CHANNEL normalisation has no equivalent; lrn "
                              "normalises across channels", c.span("norm_region"))
            c.skip("engine")
        self._emit(info, "lrn", self._bottoms(info, key, 1), [], kwargs)

    def _dropout(self, info: LayerInfo, key: str):
        c = self._conf(info, "dropout_param", key)
        kwargs = {}
        if c is not None:
            ratio = c.float("dropout_ratio")
            if ratio is not None:
                kwargs["rate"] = nice(ratio)
            if c.bool("scale_train", True) is False:
                self.out.todo(key, "scale_train: false (scaling at test time) has no "
                              "equivalent; dropout scales at train time", c.span("scale_train"))
        self._emit(info, "dropout", self._bottoms(info, key, 1), [], kwargs)

    def _loss_param(self, info: LayerInfo, key: str):
        c = self._conf(info, "loss_param", key)
        if c is None:
            return
        if c.int("ignore_label") is not None:
            self.out.todo(key, "ignore_label has no equivalent: every label counts",
                          c.span("ignore_label"))
        for f in ("normalize", "normalization"):
            for found in c.fields(f):
                self.out.note(key, f"loss_param {f}: the loss is averaged over the batch")

    def _softmax_loss(self, info: LayerInfo, key: str):
        self._loss_param(info, key)
        self._softmax_axis(info, key)
        sources = self._bottoms(info, key, 2)
        kwargs = {}
        if info.loss_weight is not None and info.loss_weight != 1:
            kwargs["scale"] = nice(info.loss_weight)
        if info.bottoms:
            k = self.accuracy_topk.get(info.bottoms[0])
            if k is not None and k[0] != 1:
                kwargs["topk"] = k[0]
                self.out.note(key, f"topk {k[0]} from the Accuracy layer's top_k")
            if len(info.bottoms) > 1:
                self.loss_labels[info.bottoms[1]] = info.bottoms[0]
        self._emit(info, "softmax_loss", sources, [], kwargs)

    def _euclidean_loss(self, info: LayerInfo, key: str):
        self._loss_param(info, key)
        if info.loss_weight is not None and info.loss_weight != 1:
            self.out.todo(key, f"loss_weight {nice(info.loss_weight)} has no equivalent on "
                          "euclidean_loss", info.r.span("loss_weight"))
        self.out.note_once(key, "Caffe's EuclideanLoss is Σ(x - t)²/(2N), as euclidean_loss")
        self._emit(info, "euclidean_loss", self._bottoms(info, key, 2), [], {})

    def _accuracy(self, info: LayerInfo, key: str):
        self._drop(info, f"Accuracy layer '{info.name}' dropped: softmax_loss reports "
                   "accuracy itself", todo=False)

    def _silence(self, info: LayerInfo, key: str):
        self._drop(info, f"Silence layer '{info.name}' dropped: unused outputs need no sink",
                   todo=False)

    def _concat(self, info: LayerInfo, key: str):
        c = self._conf(info, "concat_param", key)
        kwargs = {}
        if c is not None:
            axis = c.int("axis")
            old = c.int("concat_dim")
            dim = axis if axis is not None else old
            if dim is not None and dim != 1:
                kwargs["dim"] = dim
        self._emit(info, "concat", self._bottoms(info, key, None), [], kwargs)

    def _split(self, info: LayerInfo, key: str):
        if len(info.bottoms) != 1:
            return self._drop(info, f"Split layer '{info.name}' needs one bottom", info.span)
        self._emit(info, "split", [self._bottom(info, 0, key)], [], {})
        for t in info.tops[1:]:
            self.blobs[t] = self.blobs[info.tops[0]]

    def _flatten(self, info: LayerInfo, key: str):
        self._drop(info, f"Flatten layer '{info.name}' dropped: dense flattens its input "
                   "itself (check any other reader of its top)", todo=False)

    def _slice(self, info: LayerInfo, key: str):
        """One Slice with k tops → k slice layers, named after the tops."""
        c = self._conf(info, "slice_param", key)
        axis, points = 1, []
        if c is not None:
            a, old = c.int("axis"), c.int("slice_dim")
            axis = a if a is not None else old if old is not None else 1
            points = c.ints("slice_point")
        sources = self._bottoms(info, key, 1)[:1]
        if not sources:
            return
        src = self._info_of(sources[0])
        size = src.shape[axis - 1] if src is not None and 1 <= axis <= len(src.shape) else None
        k = len(info.tops)
        if not points and size is not None and k and size % k == 0:
            points = [size // k * i for i in range(1, k)]
        if size is None or len(points) != k - 1:
            return self._drop(info, f"Slice layer '{info.name}' needs its input's size along "
                              f"axis {axis}, which is not known here; write slice(x, begin, "
                              "end) per top", info.span)
        cuts = [0, *points, size]
        self.out.names.taken.discard(info.out_name)
        for i, top in enumerate(info.tops):
            name = self.out.names.claim(top)
            self._emit(info, "slice", sources, [cuts[i], cuts[i + 1]],
                       {"dim": axis} if axis != 1 else {}, name=name, top=top)
        self.out.note(f"net.{self.items[-k].name}", f"Slice layer '{info.name}' → one slice "
                      "per top")

    def _batchnorm(self, info: LayerInfo, key: str):
        c = self._conf(info, "batch_norm_param", key)
        kwargs = {}
        if c is not None:
            maf = c.float("moving_average_fraction")
            if maf is not None:
                kwargs["momentum"] = nice(maf)
            eps = c.float("eps")
            if eps is not None:
                kwargs["eps"] = nice(eps)
            if c.bool("use_global_stats") is not None:
                self.out.note(key, "use_global_stats: batchnorm uses batch statistics in "
                              "training and its running averages in tests")
        # Caffe's three blobs (mean, variance, factor) are not learned: their param specs
        # (lr_mult: 0) have nothing to say here
        info.r.skip("param")
        self.out.note(key, "batchnorm learns a scale and shift (Caffe puts them in a Scale "
                      "layer after BatchNorm)")
        self._emit(info, "batchnorm", self._bottoms(info, key, 1), [], kwargs)
        self.bn_blobs.update(info.tops)

    def _scale(self, info: LayerInfo, key: str):
        if info.bottoms and info.bottoms[0] in self.bn_blobs:
            info.r.skip(*info.r.msg.names())
            self._drop(info, f"Scale layer '{info.name}' dropped: the batchnorm before it "
                       "learns the scale and shift", todo=False)
            return
        self._drop(info, f"Scale layer '{info.name}' has no equivalent (no free-standing "
                   "learned scale)", info.r.span("type"))

    def _embed(self, info: LayerInfo, key: str):
        c = self._conf(info, "embed_param", key)
        if c is None or c.int("num_output") is None or c.int("input_dim") is None:
            raise info.r.error(f"Embed layer '{info.name}' needs embed_param {{ num_output: ... "
                               "input_dim: ... }", info.span)
        n, vocab = c.int("num_output"), c.int("input_dim")
        if c.bool("bias_term", True):
            self.out.todo(key, "embedding has no bias; Caffe's Embed adds one by default",
                          c.span("bias_term") if c.has("bias_term") else c.msg.span)
            bf = c.message("bias_filler")
            if bf is not None:
                bf.skip(*bf.msg.names())
        fillers = [("w", self.track(c.message("weight_filler", "weight_filler"), key), True)]
        kwargs = self._params(info, key, fillers)
        self._emit(info, "embedding", self._bottoms(info, key, 1), [vocab, n], kwargs)

    def _argmax(self, info: LayerInfo, key: str):
        c = self._conf(info, "argmax_param", key)
        if c is not None and (c.int("top_k", 1) != 1 or c.bool("out_max_val", False)
                              or c.has("axis")):
            return self._drop(info, f"ArgMax layer '{info.name}': only the top-1 index "
                              "(argmax) has an equivalent", c.msg.span)
        self._emit(info, "argmax", self._bottoms(info, key, 1), [], {})

    # -- data --
    def _data_layer(self, info: LayerInfo):
        g = self.groups.get(tuple(info.tops))
        if g is None or "train" not in info.phases or g.sources.get("train") is not info:
            return
        if not info.tops:
            return
        g.block = g.block or self.out.names.claim(g.name, "set")
        shape = self._data_shape(g)
        name = self.out.names.claim(info.tops[0])
        g.input_layer = name
        self._flush(name)
        self.items.append(layer(name, "input", [ref(g.block, "image")], {}))
        self.blobs[info.tops[0]] = Blob(ref(name), tensor(shape) if shape else None)
        if len(info.tops) > 1:
            self.blobs[info.tops[1]] = Blob(ref(g.block, "label"), tensor((), "int32"))
        for t in info.tops[2:]:
            self.out.todo(f"data.{g.block}", f"data layer '{info.name}' has a third top "
                          f"'{t}', which has no equivalent", info.r.span("top"))

    def _data_shape(self, g: DataGroup) -> tuple | None:
        """The per-sample image shape of a data group: said by the conf where it can, else
        that of a well-known data set named in the path (or the layer's name)."""
        if g.shape is not None:
            return g.shape
        info = g.sources.get("train") or next(iter(g.sources.values()))
        msg = info.r.msg
        shape = None
        if g.kind == "MemoryData":
            dims = [_peek(msg, "memory_data_param", f) for f in ("channels", "height", "width")]
            if all(isinstance(d, int) and d > 0 for d in dims):
                shape = tuple(dims)
        elif g.kind == "DummyData":
            dims = _dummy_dims(msg)
            if dims and len(dims[0]) > 1:
                shape = tuple(dims[0][1:])
        elif g.kind == "ImageData":
            h, w = (_peek(msg, "image_data_param", f) for f in ("new_height", "new_width"))
            color = _peek(msg, "image_data_param", "is_color")
            if isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0:
                shape = (1 if color == "false" else 3, h, w)
        elif g.kind == "Input":
            dims = _input_dims(msg)
            if dims and len(dims) > 1:
                shape = tuple(dims[1:])
        if shape is None:
            known = dataset_of(_source_path(msg) + " " + g.name)
            shape = known[1].shape if known else None
        crop = _peek(msg, "transform_param", "crop_size")
        if shape is not None and isinstance(crop, int) and crop > 0:
            shape = (shape[0], crop, crop)
        g.shape = shape
        return shape

    def _data_block(self, g: DataGroup) -> ast.Block:
        phases = [p for p in ("train", "test") if p in g.sources]
        if "test" in phases and not g.sources["test"].explicit and not self._tests():
            phases.remove("test")
        entries = [(p, self._source_call(g, p, g.sources[p])) for p in phases]
        return block("data", g.block, entries)

    def _tests(self) -> bool:
        if self.solver is None:
            return False
        top = self.solver[0]
        return any(not isinstance(f.value, Message) and f.value.kind == "int" and f.value.value > 0
                   for f in top.all("test_interval"))

    def _source_call(self, g: DataGroup, phase: str, info: LayerInfo) -> ast.Call:
        out, r = self.out, info.r
        key = f"data.{g.block}.{phase}"
        if info.type == "Input" and info.r is self.top:
            out.todo(key, "a deploy net's input has no data; synthetic(...) stands in",
                     info.span)
            return placeholder(list(g.shape or (3, 32, 32)), g.batch or 1, self._classes(g),
                               1000)
        self.track(r, key)
        shape = list(self._data_shape(g) or ())
        tp = self.track(r.message("transform_param", "transform_param"), key)
        normalize = self._transform(tp, key) if tp is not None else None
        conf_name = {"Data": "data_param", "ImageData": "image_data_param",
                     "MemoryData": "memory_data_param", "HDF5Data": "hdf5_data_param",
                     "DummyData": "dummy_data_param", "Input": "input_param",
                     "WindowData": "window_data_param"}[g.kind]
        c = self.track(r.message(conf_name, f"{conf_name} of '{info.name}'"), key)
        batch, path, what = 1, "", "records"
        if c is not None:
            batch = c.int("batch_size", 0) or 0
            path = c.str("source", "")
            if g.kind == "Data":
                what = f"the {c.enum('backend', BACKENDS, 'leveldb').upper()} database"
                for f, why in (("rand_skip", "each worker group reads its own shard"),
                               ("mirror", "no mirroring"), ("crop_size", "no cropping"),
                               ("mean_file", "normalize: takes one mean and one std")):
                    for found in c.fields(f):
                        out.todo(key, f"data_param {f} has no equivalent: {why}",
                                 found.name_span)
                scale = c.float("scale")
                if scale is not None and scale != 1:
                    normalize = normalize_record(normalize["mean"] if normalize else 0,
                                                 1 / scale if scale else 1)
                c.skip("prefetch")
            elif g.kind == "ImageData":
                what = "the image list"
                for f in ("shuffle",):
                    c.skip(f)
                c.skip("new_height", "new_width", "is_color", "root_folder", "rand_skip")
            elif g.kind == "MemoryData":
                what = "memory, fed by host code"
                c.skip("channels", "height", "width")
            elif g.kind == "HDF5Data":
                what = "the HDF5 file list"
                c.skip("shuffle")
            elif g.kind == "DummyData":
                dims = _dummy_dims(info.r.msg)
                batch = dims[0][0] if dims and dims[0] else 1
                c.skip(*c.msg.names())
                out.note(key, "DummyData → synthetic(...): random data of the same shape "
                         "(its fillers' values are not kept)")
                return call("synthetic", shape=shape, classes=self._classes(g), size=
                            max(batch * 100, 1000), batch=batch)
            elif g.kind == "Input":
                dims = _input_dims(info.r.msg)
                batch = dims[0] if dims else 1
                c.skip(*c.msg.names())
        if batch <= 0:
            out.todo(key, "no batch_size; batch: 1 stands in", info.span)
            batch = 1
        known = dataset_of(path + " " + g.name)
        ds = known[1] if known else None
        if not shape:
            shape = [3, 32, 32]
            out.todo(key, f"nothing tells the shape of {g.kind} '{info.name}'s records; "
                     f"{shape} is a guess", info.span)
        size = (ds.train if phase == "train" else ds.test) if ds else \
            (50000 if phase == "train" else 10000)
        norm = f" (normalize: ({', '.join(f'{k}: {v}' for k, v in normalize.items())}))" \
            if normalize else ""
        hint = f", e.g. {reader_hint(ds, phase)}" if ds else ""
        src = f" {path!r}" if path else ""
        out.todo(key, f"{g.kind} layer '{info.name}' reads {what}{src}, which has no "
                 f"singa_dsl reader: synthetic(...) stands in with the same shape so that the "
                 f"program checks and trains; point {phase} at the real data{hint}{norm}",
                 c.span("source") if c is not None and path else info.span)
        return placeholder(shape, batch, self._classes(g) or (ds.classes if ds else None), size)

    def _transform(self, tp: Reader, key: str) -> dict | None:
        """transform_param: (x − mean)·scale → normalize: (mean: M, std: 1/scale)."""
        scale = tp.float("scale", 1.0)
        means = tp.floats("mean_value")
        mean = 0.0
        if len(set(means)) > 1:
            self.out.todo(key, f"per-channel mean_value {[nice(m) for m in means]} has no "
                          "equivalent: normalize: takes one mean", tp.span("mean_value"))
        elif means:
            mean = means[0]
        for f, why in (("mean_file", "normalize: takes one mean and one std"),
                       ("mirror", "no mirroring"), ("crop_size", "no cropping (the shape "
                                                    "is the cropped one)"),
                       ("force_color", "images are read as stored"),
                       ("force_gray", "images are read as stored")):
            for found in tp.fields(f):
                if f in ("mirror", "force_color", "force_gray") and not tp._bool(found):
                    continue
                self.out.todo(key, f"transform_param {f} has no equivalent: {why}",
                              found.name_span)
        return normalize_record(mean, 1 / scale if scale else 1.0)

    def _classes(self, g: DataGroup) -> int | None:
        if len(g.tops) > 1 and g.tops[1] in self.loss_labels:
            return self.units.get(self.loss_labels[g.tops[1]])
        return None

    # -- solver --
    def _no_solver(self, name: str):
        out = self.out
        out.todo("job", "no solver was given (singac import NET --solver SOLVER): steps "
                 "1000 and updater sgd { lr: 0.01 } stand in", Span(self.file, 1, 1, 1, 2))
        out.job = block("job", name, [("steps", 1000)])
        out.updater = block("updater", "sgd", [("lr", 0.01)])

    def _solver(self, name: str):
        top, text, sfile = self.solver
        out = self.out
        s = Reader(top, "the solver", text)
        self.track(s, "job", text)
        s.skip("net", "train_net", "net_param", "train_net_param")
        steps = s.int("max_iter")
        if steps is None or steps <= 0:
            out.todo("job.steps", "max_iter is missing or not positive; steps: 1000 stands in",
                     s.span("max_iter"), source=text)
            steps = 1000
        entries: list[tuple[str, object]] = [("steps", steps)]
        interval = s.int("test_interval", 0)
        iters = s.ints("test_iter")
        if len(iters) > 1:
            out.todo("job.test", f"test_iter {iters}: one test net here; {iters[0]} batches "
                     "are used", s.span("test_iter"), source=text)
        has_test = any("test" in g.sources for g in self.groups.values())
        init = s.bool("test_initialization", True)
        if interval > 0 and iters and has_test:
            entries.append(("test", call("every", interval, after=None if init else interval,
                                         batches=iters[0])))
        elif interval > 0:
            out.note("job", "test_interval without test_iter or TEST-phase data: no test: entry")
        display = s.int("display", 0)
        if display > 0:
            entries.append(("display", call("every", display)))
        snapshot = s.int("snapshot", 0)
        if snapshot > 0:
            # Caffe snapshots after iterations snapshot, 2·snapshot, ... (not at 0)
            entries.append(("checkpoint", call("every", snapshot, after=snapshot)))
        prefix = s.str("snapshot_prefix")
        if prefix:
            ws = str(pathlib.PurePosixPath(prefix).parent)
            if ws not in ("", "."):
                entries.append(("workspace", ws))
            out.note("job.workspace" if ws not in ("", ".") else "job",
                     f"snapshot_prefix {prefix}: checkpoints go to the workspace's "
                     "checkpoints folder")
        seed = s.int("random_seed", -1)
        if seed >= 0:
            entries.append(("seed", seed))
        for f, why in SOLVER_NO_EQUIVALENT.items():
            for found in s.fields(f):
                out.todo("job", f"solver field '{f}' has no equivalent: {why}",
                         found.name_span, source=text)
        for f, why in SOLVER_HARMLESS.items():
            for found in s.fields(f):
                if why:
                    out.note("job", f"{f}: {why}")
        out.job = block("job", name, entries)
        out.updater = self._updater(s, steps, text)

    def _updater(self, s: Reader, steps: int, text: str) -> ast.Block:
        out = self.out
        t = s.str("type")
        kind = SOLVER_TYPES.get(t) if t else s.enum("solver_type", SOLVER_ENUM, "sgd")
        if t and kind is None:
            out.todo("updater", f"solver type {t!r} has no equivalent; sgd stands in",
                     s.span("type"), source=text)
            kind = "sgd"
        if t and s.has("solver_type"):
            s.skip("solver_type")
        entries: list[tuple[str, object]] = [("lr", self._lr(s, steps, text))]
        momentum = s.float("momentum", 0.0)
        if kind in ("sgd", "nesterov"):
            if momentum or kind == "nesterov":
                entries.append(("momentum", nice(momentum)))
        elif kind == "adadelta":
            entries.append(("rho", nice(momentum)))
        elif kind == "adam":
            entries.append(("beta1", nice(momentum if s.has("momentum") else 0.9)))
            entries.append(("beta2", nice(s.float("momentum2", 0.999))))
            out.todo("updater", "Caffe's Adam corrects the bias of its averages; singa_dsl's "
                     "(SINGA's) does not, so the first steps differ", s.span("type") if
                     s.has("type") else s.span("solver_type"), source=text)
        elif momentum:
            out.note("updater", f"momentum {nice(momentum)} is not used by {kind}")
        if kind == "rmsprop":
            entries.append(("rho", nice(s.float("rms_decay", 0.99))))   # Caffe's default
        if kind in UPDATER_NOTES:
            out.note("updater", UPDATER_NOTES[kind])
        wd = s.float("weight_decay", 0.0)
        if wd:
            entries.append(("weight_decay", nice(wd)))
        reg = s.str("regularization_type", "L2")
        if reg != "L2":
            out.todo("updater", f"regularization_type {reg} has no equivalent: weight_decay "
                     "is L2", s.span("regularization_type"), source=text)
        delta = s.float("delta")
        if delta is not None and delta != 1e-8:
            entries.append(("delta", nice(delta)))
        if kind != "rmsprop":
            s.skip("rms_decay")
        if kind != "adam":
            s.skip("momentum2")
        return block("updater", kind, entries)

    def _lr(self, s: Reader, steps: int, text: str):
        out = self.out
        base = s.float("base_lr")
        if base is None:
            out.todo("updater.lr", "no base_lr; 0.01 stands in", s.msg.span, source=text)
            base = 0.01
        policy = s.str("lr_policy", "fixed")
        gamma, power = s.float("gamma"), s.float("power")
        stepsize, stepvalues = s.int("stepsize"), s.ints("stepvalue")
        base = nice(base)

        def need(value, name):
            if value is None:
                raise s.error(f"lr_policy {policy!r} needs {name}", s.span("lr_policy"))
            return value

        if policy == "fixed":
            return base
        if policy == "step":
            return call("step", base, every=need(stepsize, "stepsize"),
                        gamma=nice(need(gamma, "gamma")))
        if policy == "multistep":
            g = need(gamma, "gamma")
            at = [0, *need(stepvalues or None, "stepvalue")]
            return call("fixed_step", at=at, lr=[nice(base * g ** i) for i in range(len(at))])
        if policy == "inv":
            return call("inverse", base, gamma=nice(need(gamma, "gamma")),
                        pow=nice(need(power, "power")))
        if policy == "exp":
            g = need(gamma, "gamma")
            if g == 1:
                return base
            if not 0 < g < 1:
                out.todo("updater.lr", f"lr_policy exp with gamma {g} has no equivalent; "
                         "the fixed base_lr stands in", s.span("gamma"), source=text)
                return base
            every = math.log(2) / -math.log(g)      # base·gamma^t = base / 2^(t/every)
            if abs(every - round(every)) > 1e-6 * every or round(every) < 1:
                out.todo("updater.lr", f"lr_policy exp (gamma {g}): exponential() halves the "
                         f"lr every whole number of steps; every: {max(1, round(every))} "
                         f"stands in for {every:.4g}", s.span("gamma"), source=text)
            else:
                out.note("updater.lr", f"lr_policy exp: gamma {g} halves the lr every "
                         f"{round(every)} steps")
            return call("exponential", base, every=max(1, round(every)))
        if policy == "poly":
            p = need(power, "power")
            if p == 1:
                out.note("updater.lr", "lr_policy poly with power 1 is linear down to 0 at "
                         "max_iter")
                return call("linear", base, final=0, every=steps)
            out.todo("updater.lr", f"lr_policy poly with power {nice(p)} has no equivalent; "
                     "the fixed base_lr stands in", s.span("lr_policy"), source=text)
            return base
        out.todo("updater.lr", f"lr_policy {policy!r} has no equivalent; the fixed base_lr "
                 "stands in", s.span("lr_policy"), source=text)
        return base


def _peek(msg: Message, conf: str, name: str):
    c = msg.all(conf)
    if len(c) != 1 or not isinstance(c[0].value, Message):
        return None
    f = c[0].value.all(name)
    if len(f) != 1 or isinstance(f[0].value, Message):
        return None
    return f[0].value.value


def _source_path(msg: Message) -> str:
    for conf in ("data_param", "image_data_param", "hdf5_data_param", "window_data_param"):
        v = _peek(msg, conf, "source")
        if isinstance(v, str):
            return v
    return ""


def _dims(shape_msg) -> list[int]:
    if not isinstance(shape_msg, Message):
        return []
    return [f.value.value for f in shape_msg.all("dim")
            if not isinstance(f.value, Message) and f.value.kind == "int"]


def _dummy_dims(msg: Message) -> list[list[int]]:
    c = msg.all("dummy_data_param")
    if len(c) != 1 or not isinstance(c[0].value, Message):
        return []
    return [_dims(f.value) for f in c[0].value.all("shape")]


def _input_dims(msg: Message) -> list[int]:
    c = msg.all("input_param")
    if len(c) != 1 or not isinstance(c[0].value, Message):
        return []
    shapes = c[0].value.all("shape")
    return _dims(shapes[0].value) if shapes else []
