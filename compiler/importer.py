"""``singac import``: a SINGA v0.1–v0.3 job.conf, or a Caffe net prototxt with its solver, →
an equivalent .singa program, canonically formatted, with comments where the mapping is not
one to one.

    from singa_dsl.compiler.importer import import_file
    result = import_file("examples/mnist/job.conf")          # or a Caffe net / solver file
    print(result.source)                                      # the .singa program
    for w in result.warnings: print(w.render())               # file:line:col: warning: ...

Which format a file is in is decided by its top-level fields (``neuralnet`` → SINGA, ``layer``
→ Caffe net, ``base_lr`` → Caffe solver).  The mappings themselves live in ``import_singa``
and ``import_caffe``; this module holds what both share: ``Out`` (the program being written,
with its comments and warnings), naming, param values, data placeholders and shape inference.

Comments: the AST has no comment nodes, so the program is printed with ``format_program`` and
comment lines are then inserted above the line of the block, entry or layer they are keyed to
(``"job.test"``, ``"net.fc1"``, ``"data.mnist.train"``...).  Deleting the comment lines gives
exactly ``format_program``'s text, so the output is stable under ``singac fmt``.
Anything that could not be translated is both a located warning (at the input field) and a
``# TODO(import): ...`` comment at the spot; nothing is dropped silently.
"""
from __future__ import annotations

import math
import pathlib
import re
import textwrap
from collections import defaultdict
from dataclasses import dataclass, field

from singa_dsl.builder import expr
from singa_dsl.errors import SingaError, SingaErrors, SingaSyntaxError, SingaWarning, Span
from . import ast
from .format import format_program
from .prototxt import Message, parse_prototxt

COMMENT_WIDTH = 96


@dataclass
class ImportResult:
    source: str                                   # the .singa program, with its comments
    warnings: list[SingaWarning] = field(default_factory=list)
    kind: str = ""                                # "singa" | "caffe"
    program: ast.Program | None = None            # its AST (format_program: no comments)


# ---- entry points ----------------------------------------------------------------------------
def import_file(path: str, solver: str | None = None) -> ImportResult:
    """Translate a SINGA job.conf, or a Caffe net prototxt (with ``solver``, its
    solver.prototxt), into a .singa program.  A Caffe solver may be given as ``path`` itself
    (its ``net:`` names the net); a Caffe net given alone takes the solver beside it whose
    ``net:`` names it, if there is one.  Raises SingaError for unreadable or malformed input;
    everything else comes back as located warnings."""
    from . import import_caffe          # it imports this module: load it late
    text = _read(path)
    if solver is None and detect_kind(_parse(text, path), text, path) == "caffe-net":
        solver = import_caffe.find_solver(path)
    solver_text = _read(solver) if solver is not None else None
    return import_text(text, path, solver_text, solver)


def import_text(text: str, filename: str = "<string>", solver_text: str | None = None,
                solver_filename: str | None = None) -> ImportResult:
    """``import_file`` on text already read (``filename`` is what messages call it)."""
    from . import import_caffe, import_singa   # they import this module: load them late
    top = _parse(text, filename)
    kind = detect_kind(top, text, filename)
    if kind == "singa":
        out = import_singa.translate(top, text, filename)
        if solver_text is not None:
            out.todo("top", "a solver file is a Caffe notion; it was ignored for a SINGA "
                     "job.conf, whose updater block sets the training",
                     Span(solver_filename or "<solver>", 1, 1, 1, 2), source=solver_text)
        return ImportResult(out.render(), out.warnings, "singa", out.program())
    solver = None
    if solver_text is not None:
        solver_file = solver_filename or "<solver>"
        solver_top = _parse(solver_text, solver_file)
        if detect_kind(solver_top, solver_text, solver_file) != "caffe-solver":
            raise SingaErrors([SingaSyntaxError(
                f"{pathlib.Path(solver_file).name} is not a Caffe solver (it has no base_lr, "
                "lr_policy or max_iter)", Span(solver_file, 1, 1, 1, 2), None, solver_text)])
        solver = (solver_top, solver_text, solver_file)
    if kind == "caffe-solver":
        if solver is not None:
            raise SingaErrors([SingaSyntaxError(
                f"{pathlib.Path(filename).name} is a Caffe solver; give the net as FILE and "
                "this file with --solver", Span(filename, 1, 1, 1, 2), None, text)])
        solver = (top, text, filename)
        top, text, filename = import_caffe.net_of_solver(top, text, filename)
        if detect_kind(top, text, filename) != "caffe-net":
            raise SingaErrors([SingaSyntaxError(
                f"{pathlib.Path(filename).name} is not a Caffe net (it has no layer fields)",
                Span(filename, 1, 1, 1, 2), None, text)])
    out = import_caffe.translate(top, text, filename, solver)
    return ImportResult(out.render(), out.warnings, "caffe", out.program())


def _read(path: str) -> str:
    p = pathlib.Path(path)
    try:
        return p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SingaError(f"no such file: {p}", hint="check the path") from None
    except (OSError, UnicodeDecodeError) as e:
        raise SingaError(f"cannot read {p}: {e}") from None


def _parse(text: str, filename: str) -> Message:
    try:
        return parse_prototxt(text, filename)
    except SingaError as e:
        raise e.with_source(text)


# Top-level fields that only one of the formats has (the name field both have).
SINGA_FIELDS = {"neuralnet", "train_one_batch", "updater", "cluster", "train_steps",
                "disp_freq", "test_freq", "test_steps", "checkpoint_path", "checkpoint_freq",
                "validate_freq", "gpu", "warmup_steps", "num_openblas_threads"}
CAFFE_NET_FIELDS = {"layer", "layers", "input", "input_dim", "input_shape", "force_backward",
                    "state", "debug_info"}
CAFFE_SOLVER_FIELDS = {"base_lr", "lr_policy", "max_iter", "net", "train_net", "test_net",
                       "net_param", "solver_mode", "test_iter", "test_interval",
                       "snapshot_prefix", "solver_type", "stepsize", "stepvalue", "display"}


def detect_kind(top: Message, text: str, filename: str) -> str:
    """"singa", "caffe-net" or "caffe-solver", by the top-level fields present."""
    names = top.names()
    scores = {"singa": len(names & SINGA_FIELDS), "caffe-net": len(names & CAFFE_NET_FIELDS),
              "caffe-solver": len(names & CAFFE_SOLVER_FIELDS)}
    best = max(scores, key=lambda k: scores[k])
    if scores[best] == 0:
        raise SingaErrors([SingaSyntaxError(
            f"cannot tell what {pathlib.Path(filename).name} is: it has none of the top-level "
            "fields of a SINGA job.conf (neuralnet, updater, ...), a Caffe net (layer) or a "
            "Caffe solver (base_lr, net, ...)", top.span if top.span.line else
            Span(filename, 1, 1, 1, 2), "singac import reads SINGA v0.1-v0.3 job.conf files "
            "and Caffe train_val.prototxt / solver.prototxt files", text)])
    return best


# ---- the program being written ---------------------------------------------------------------
# Words the .singa grammar reserves (a layer named so does not parse in every position).
RESERVED = {"const", "job", "data", "net", "algorithm", "updater", "cluster", "true", "false"}


class Names:
    """Identifiers of the output: sanitized from the input's names, unique in one namespace
    (layers and data blocks share one: a layer may not be named as a data block)."""

    def __init__(self):
        self.taken: set[str] = set()

    def claim(self, want: str, fallback: str = "layer") -> str:
        base = identifier(want, fallback)
        if base in RESERVED:
            base = f"{base}_{fallback}"
        name, k = base, 2
        while name in self.taken:
            name, k = f"{base}_{k}", k + 1
        self.taken.add(name)
        return name


def identifier(name: str, fallback: str = "x") -> str:
    """A .singa identifier for any name: other characters become '_' ("cifar10-convnet" →
    "cifar10_convnet", "inception_3a/1x1" → "inception_3a_1x1"), a leading digit gets a
    prefix, and Python keywords are left alone (the grammar has no reserved words)."""
    s = re.sub(r"[^A-Za-z0-9_]", "_", name).strip("_") or fallback
    if s[0].isdigit():
        s = f"{fallback}_{s}"
    return s


class Out:
    """Declarations in output order, comments keyed by where they go, and the warnings."""

    def __init__(self, text: str, file: str):
        self.text, self.file = text, file
        self.job: ast.Block | None = None
        self.consts: list[ast.ConstDecl] = []
        self.data: list[ast.Block] = []
        self.net: ast.NetDecl | None = None
        self.algorithm: ast.Block | None = None
        self.updater: ast.Block | None = None
        self.cluster: ast.Block | None = None
        self.comments: dict[str, list[str]] = defaultdict(list)
        self.warnings: list[SingaWarning] = []
        self.names = Names()
        self._seen: set[tuple] = set()

    # -- comments and warnings --
    def note(self, key: str, message: str):
        """A comment only: translated, but not one to one."""
        if message not in self.comments[key]:
            self.comments[key].append(message)

    def flush(self, key: str, pending: list) -> None:
        """Attach a layer's collected ("todo" | "note", message, span) entries to ``key``."""
        for kind, message, span in pending:
            if kind == "todo":
                self.todo(key, message, span)
            else:
                self.note(key, message)
        pending.clear()

    def note_once(self, key: str, message: str):
        """A note that explains a mapping used many times: said at its first use only."""
        if ("once", message) not in self._seen:
            self._seen.add(("once", message))
            self.note(key, message)

    def todo(self, key: str, message: str, span: Span | None, hint: str | None = None,
             source: str | None = None):
        """Not translated: a located warning, and a TODO comment at the spot (once: a conf
        read for two phases reports its fields at the first)."""
        if (message, span) in self._seen:
            return
        self._seen.add((message, span))
        self.warnings.append(SingaWarning(message, span, hint, source or self.text))
        where = f" [{pathlib.Path(span.file).name}:{span.line}]" if span and span.line else ""
        self.comments[key].append(f"TODO(import): {message}{where}")

    # -- output --
    def program(self) -> ast.Program:
        items = [*self.consts]
        for block in (self.job, *self.data, self.net, self.algorithm, self.updater,
                      self.cluster):
            if block is not None:
                items.append(block)
        return ast.Program(tuple(items), self.file)

    def render(self) -> str:
        return insert_comments(format_program(self.program()), self.comments)


def insert_comments(text: str, comments: dict[str, list[str]]) -> str:
    """Put each comment above the formatted line its key names.  Keys: "top" (head of the
    file), a block ("job", "data.NAME", "net", "algorithm", "updater", "cluster"), a line in
    a block ("job.steps", "net.fc1", "data.NAME.train"), and "net.end" (before the net's
    closing brace).  A comment whose place is missing goes to the end: never lost."""
    left = {k: list(v) for k, v in comments.items() if v}
    out: list[str] = []

    def put(key: str, indent: str):
        for message in left.pop(key, []):
            out.extend(_comment_lines(message, indent))

    put("top", "")
    if out:
        out.append("")
    block = None
    for line in text.splitlines():
        if line and not line[0].isspace():
            if line == "}":
                if block == "net":
                    put("net.end", "  ")
                out.append(line)
                continue
            words = line.split()
            block = f"data.{words[1]}" if words[0] == "data" else \
                f"const.{words[1]}" if words[0] == "const" else words[0]
            put(block, "")
        elif line.strip():
            m = re.match(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*[:=]", line)
            if m and block is not None:
                put(f"{block}.{m.group(1)}", line[:len(line) - len(line.lstrip())])
        out.append(line)
    rest = [m for msgs in left.values() for m in msgs]
    if rest:
        out.append("")
        for message in rest:
            out.extend(_comment_lines(message, ""))
    return "\n".join(out) + "\n"


def _comment_lines(message: str, indent: str) -> list[str]:
    lines = textwrap.wrap(" ".join(message.split()), COMMENT_WIDTH - len(indent) - 2,
                          break_long_words=False, break_on_hyphens=False) or [""]
    return [f"{indent}# {lines[0]}"] + [f"{indent}#   {l}" for l in lines[1:]]


# ---- building blocks of the AST --------------------------------------------------------------
def ref(*parts: str) -> ast.Ref:
    return ast.Ref(tuple(parts))


def call(func: str, *args, **kwargs) -> ast.Call:
    """``func(args..., key: value...)`` from Python values (None-valued kwargs are left out)."""
    return ast.Call(func, tuple(expr(a) for a in args),
                    tuple(ast.Kwarg(k, expr(v)) for k, v in kwargs.items() if v is not None))


def block(keyword: str, name: str | None, entries: list[tuple[str, object]],
          has_body: bool = True) -> ast.Block:
    return ast.Block(keyword, name, tuple(ast.Entry(k, expr(v)) for k, v in entries
                                          if v is not None), has_body)


def nice(v):
    """A number as a person writes it: 2.0 → 2, 0.0001 stays, float noise such as
    0.001 * 0.1 = 0.00010000000000000002 is rounded to 12 significant digits."""
    if isinstance(v, bool) or not isinstance(v, float):
        return v
    if math.isfinite(v) and v == int(v) and abs(v) < 1e15:
        return int(v)
    return float(f"{v:.12g}")


def param_value(init: ast.Expr | None, *, name: str | None = None, lr_scale: float = 1.0,
                wd_scale: float = 1.0) -> ast.Expr | None:
    """What a param attribute says: a bare initializer when that is all there is, else
    ``param(init: ..., lr_scale: ..., wd_scale: ..., name: ...)`` without its defaults."""
    if name is None and lr_scale == 1 and wd_scale == 1:
        return init
    return call("param", init=init, lr_scale=None if lr_scale == 1 else nice(lr_scale),
                wd_scale=None if wd_scale == 1 else nice(wd_scale), name=name)


def share_value(owner: str, slot: str, transpose: bool = False) -> ast.Call:
    return call("share", ref(owner, slot), transpose=True if transpose else None)


def layer(name: str, op: str, args: list, kwargs: dict, partition: str | None = None) -> ast.Layer:
    notes = (ast.Annotation(partition),) if partition else ()
    return ast.Layer(name, call(op, *args, **kwargs), notes)


# ---- data: real sources where singa_dsl reads the format, else a marked placeholder ----------
@dataclass(frozen=True)
class Dataset:
    """What the path of a well-known data set tells: its per-sample shape, classes and record
    counts (for a placeholder of the right size), and the singa_dsl source that reads its
    original files (for the TODO that asks the user to point at them)."""
    shape: tuple[int, ...]
    classes: int
    train: int
    test: int
    reader: str


DATASETS = {
    "mnist": Dataset((1, 28, 28), 10, 60000, 10000,
                     'idx(images: "{mnist}-images-idx3-ubyte.gz", labels: '
                     '"{mnist}-labels-idx1-ubyte.gz", ...)'),
    "cifar100": Dataset((3, 32, 32), 100, 50000, 10000, "npz(...) after converting it"),
    "cifar": Dataset((3, 32, 32), 10, 50000, 10000, 'cifar("{cifar}", ...)'),
    "imagenet": Dataset((3, 256, 256), 1000, 1281167, 50000, "npz(...) after converting it"),
    "ilsvrc": Dataset((3, 256, 256), 1000, 1281167, 50000, "npz(...) after converting it"),
}
# How the original files of those sets are named, per phase (for the hints above).
_SPLIT_FILES = {"train": {"mnist": "train", "cifar": "cifar-10-batches-bin/"},
                "test": {"mnist": "t10k", "cifar": "cifar-10-batches-bin/test_batch.bin"},
                "validate": {"mnist": "t10k", "cifar": "cifar-10-batches-bin/test_batch.bin"}}


def reader_hint(ds: Dataset, phase: str) -> str:
    """The source that reads the original files of a known data set, for a TODO."""
    return ds.reader.format(**_SPLIT_FILES.get(phase, _SPLIT_FILES["train"]))


def dataset_of(path: str) -> tuple[str, Dataset] | None:
    low = path.lower()
    for key, ds in DATASETS.items():
        if key in low:
            return key, ds
    return None


def data_block_name(out: Out, path: str, fallback: str) -> str:
    """A data block is named after its data set (mnist, cifar10...) when the path tells,
    else after the folder holding the file, else after the layer."""
    low = path.lower()
    m = re.search(r"(mnist|cifar-?100|cifar-?10|cifar|imagenet|ilsvrc\d*)", low)
    if m:
        return out.names.claim(m.group(1).replace("-", ""), "set")
    parent = pathlib.PurePosixPath(path).parent.name if path else ""
    if parent and parent not in (".", "..", "examples", "data"):
        return out.names.claim(parent, "set")
    return out.names.claim(fallback, "set")


def placeholder(shape, batch: int, classes: int | None, size: int) -> ast.Call:
    shape = list(shape) if isinstance(shape, (list, tuple)) else [shape]
    return call("synthetic", shape=shape, classes=classes, size=size, batch=batch)


def normalize_record(mean: float | None, std: float | None) -> dict | None:
    """``(mean: M, std: S)``, or None when it is the identity."""
    mean = 0.0 if mean is None else mean
    std = 1.0 if std is None else std
    if mean == 0 and std == 1:
        return None
    return {"mean": nice(mean), "std": nice(std)}


# ---- shapes: the compiler's own rules, for the few mappings that need a size ------------------
def infer_shape(op: str, ins: list, args=(), kwargs: dict | None = None):
    """The output TensorInfo of ``op(ins..., args..., kwargs...)`` (ins: TensorInfos) by the
    op's own shape rule; None when an input is unknown or the rule refuses (the checker then
    reports it at the layer)."""
    from .ops import OPS, ShapeProblem
    d = OPS.get(op)
    if d is None or not ins or any(i is None for i in ins):
        return None
    attrs = {a.name: a.default for a in d.attrs}
    attrs.update(zip([a.name for a in d.attrs if a.positional], args))
    attrs.update({k: v for k, v in (kwargs or {}).items()
                  if isinstance(v, (int, float, bool)) and not isinstance(v, ast.Expr)})
    try:
        return d.infer(attrs, tuple(ins))
    except (ShapeProblem, KeyError, TypeError, ValueError, ZeroDivisionError):
        # a best-effort guess: a rule that cannot take these values gives no shape
        return None


def tensor(shape, dtype: str = "float32"):
    from .ops import TensorInfo
    return TensorInfo(tuple(shape), dtype)


