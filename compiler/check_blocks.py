"""Checks of the job, updater, algorithm and cluster blocks (the net and data have their own)."""
from __future__ import annotations

from singa_dsl.errors import Diagnostics, SingaConfigError, SingaNameError, Span
from singa_dsl.runtime.schedules import SCHEDULES, ScheduleSpec
from singa_dsl.runtime.updaters import UPDATERS, UpdaterSpec
from singa_dsl.schema import Attr
from . import ast
from .algorithms import ALGORITHMS, CLUSTER_ATTRS, FRAMEWORKS
from .model import AlgorithmSpec, ClusterSpec, Every, JobSpec
from .values import INVALID, CallValue, Scope, bind, bind_registered_call, evaluate

JOB_ATTRS = (
    Attr("steps", "int", doc="training steps", gt=0),
    Attr("test", "every", None, "every(N, after: M, batches: K): test on the test data"),
    Attr("validate", "every", None, "every(...): evaluate on the validate data"),
    Attr("display", "every", None, "every(N): show training metrics"),
    Attr("checkpoint", "every", None, "every(N): write a checkpoint"),
    Attr("workspace", "str", None, "folder for checkpoints and metrics (default runs/<job>)"),
    Attr("init_from", "any", (), "workspaces whose latest checkpoints give params by name"),
    Attr("seed", "int", 0, "seed of every random choice", ge=0),
)
EVERY_ATTRS = (
    Attr("every", "int", doc="period in steps", positional=True, gt=0),
    Attr("after", "int", 0, "first step it fires at", ge=0),
    Attr("batches", "int", 10, "batches per test/validation pass", gt=0),
)


def entries_as_call(block_name: str, entries: tuple[ast.Entry, ...], scope: Scope,
                    diag: Diagnostics, bare_words: bool = False):
    """Evaluate ``key: value`` entries into keyword arguments (duplicates are errors)."""
    seen, kwargs, spans = set(), [], {}
    local = Scope(scope.consts, scope.resolve_dotted, bare_words)
    for e in entries:
        if e.key in seen:
            diag.error(SingaNameError, f"'{e.key}' is set twice in {block_name}", e.key_span)
            continue
        seen.add(e.key)
        kwargs.append((e.key, evaluate(e.value, local, diag)))
        spans[e.key] = e.span
    return tuple(kwargs), spans


def _fake_call(func: str, kwargs, spans) -> ast.Call:
    # bind() reads kwarg spans from an ast.Call; entries carry the same information.
    return ast.Call(func, (), tuple(ast.Kwarg(k, ast.Num(0), spans[k]) for k, _ in kwargs))


def check_every(value, span: Span, what: str, diag: Diagnostics) -> Every | None:
    if value is None or value is INVALID:
        return None
    if not isinstance(value, CallValue) or value.func != "every":
        diag.error(SingaConfigError, f"'{what}' must be every(N, after: M, batches: K)", span,
                   "for example every(100) or every(500, after: 1000, batches: 10)")
        return None
    b = bind("every()", EVERY_ATTRS, value.args, value.kwargs, value.node, value.span, diag)
    if INVALID in b.values.values():
        return None
    return Every(b.values["every"], b.values["after"], b.values["batches"])


def check_job(block: ast.Block, scope: Scope, diag: Diagnostics) -> JobSpec | None:
    kwargs, spans = entries_as_call("job", block.entries, scope, diag)
    b = bind(f"job {block.name}", JOB_ATTRS, (), kwargs, _fake_call("job", kwargs, spans),
             block.name_span, diag)
    v = b.values
    everies = {k: check_every(v[k], b.spans.get(k, block.span), k, diag)
               for k in ("test", "validate", "display", "checkpoint")}
    init_from = v["init_from"]
    if isinstance(init_from, str):
        init_from = (init_from,)
    if not (isinstance(init_from, tuple) and all(isinstance(i, str) for i in init_from)):
        diag.error(SingaConfigError, "init_from must be a list of workspace paths (strings)",
                   b.spans.get("init_from", block.span))
        init_from = ()
    if isinstance(v["workspace"], str):
        _check_workspace(v["workspace"], b.spans.get("workspace", block.span), diag)
    if v["steps"] is INVALID:
        return None
    return JobSpec(block.name, v["steps"], everies["test"], everies["validate"],
                   everies["display"], everies["checkpoint"],
                   v["workspace"] if isinstance(v["workspace"], str) else f"runs/{block.name}",
                   tuple(init_from), v["seed"] if v["seed"] is not INVALID else 0, block.span)


def _check_workspace(path: str, span: Span, diag: Diagnostics) -> None:
    """The job writes only inside its workspace; a program may name an absolute folder or one
    under the current folder, never climb out of it with '..' (``--workspace`` on the command
    line may name any folder: the user typed it).  Reads (data, init_from) are not confined."""
    import posixpath
    if not path.strip() or "\0" in path:
        diag.error(SingaConfigError, f"workspace {path!r} is not a folder name", span,
                   "write a folder such as \"runs/NAME\"")
        return
    if posixpath.isabs(path):
        return
    normal = posixpath.normpath(path.replace("\\", "/"))
    if normal == ".." or normal.startswith("../"):
        diag.error(SingaConfigError, f"workspace \"{path}\" leaves the current folder "
                   "(through '..'): a job writes its checkpoints and metrics only inside the "
                   "folders it is given", span,
                   "use a folder under the current one, such as \"runs/NAME\"; for one "
                   "elsewhere give an absolute path, or --workspace on the command line")


def check_schedule(value, span: Span, diag: Diagnostics):
    """A number, or a schedule call → ScheduleSpec (or a float)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value <= 0:
            diag.error(SingaConfigError, f"lr must be > 0, got {value}", span)
        return float(value)
    if not isinstance(value, CallValue):
        if value is not INVALID:
            diag.error(SingaConfigError, "lr must be a number or a schedule such as "
                       "step(0.01, every: 60, gamma: 0.9)", span)
        return INVALID
    args = bind_registered_call(SCHEDULES, "learning-rate schedule", value, span, diag)
    return INVALID if args is None else ScheduleSpec(value.func, args)


def _bind_block(registry, block: ast.Block, scope: Scope, diag: Diagnostics):
    """``updater KIND { ... }`` / ``algorithm KIND { ... }``: the kind's entry and its bound
    entries, or (None, None) after reporting an unknown kind."""
    if block.name not in registry:
        diag.error(SingaNameError, f"unknown {registry.concept} '{block.name}'",
                   block.name_span, registry.unknown_hint(block.name))
        return None, None
    entry = registry[block.name]
    kwargs, spans = entries_as_call(block.keyword, block.entries, scope, diag)
    return entry, bind(f"{block.keyword} {block.name}", entry.attrs, (), kwargs,
                       _fake_call(block.name, kwargs, spans), block.name_span, diag)


def check_updater(block: ast.Block, scope: Scope, diag: Diagnostics) -> UpdaterSpec | None:
    kind, b = _bind_block(UPDATERS, block, scope, diag)
    if kind is None:
        return None
    lr = check_schedule(b.values.get("lr"), b.spans.get("lr", block.span), diag) \
        if b.values.get("lr") is not INVALID else INVALID
    if INVALID in b.values.values() or lr is INVALID:
        return None
    problem = kind.validate(b.values)
    if problem:
        diag.error(SingaConfigError, problem, b.spans.get("clip", block.span))
        return None
    return UpdaterSpec(block.name, lr, {k: v for k, v in b.values.items() if k != "lr"})


def check_algorithm(block: ast.Block, scope: Scope, diag: Diagnostics) -> AlgorithmSpec | None:
    alg, b = _bind_block(ALGORITHMS, block, scope, diag)
    if alg is None or INVALID in b.values.values():
        return None
    return AlgorithmSpec(block.name, b.values, block.span)


def check_cluster(block: ast.Block | None, scope: Scope, diag: Diagnostics) -> ClusterSpec:
    if block is None:
        return ClusterSpec()
    kwargs, spans = entries_as_call("cluster", block.entries, scope, diag, bare_words=True)
    b = bind("cluster", CLUSTER_ATTRS, (), kwargs, _fake_call("cluster", kwargs, spans),
             block.span, diag)
    v = dict(b.values)
    if INVALID in v.values():
        return ClusterSpec(span=block.span)
    given = {k for k, _ in kwargs}
    if v["framework"]:
        framework = FRAMEWORKS[v["framework"]]
        for key, fill in framework.fill:
            implied = fill(v)
            if key not in given:
                v[key] = implied
            elif v[key] != implied and key not in framework.soft:
                diag.error(SingaConfigError, f"{key}: {v[key]} contradicts framework "
                           f"{v['framework']}, which needs {key}: {implied}", b.spans[key],
                           f"remove {key} or the framework shorthand")
    if v["worker_groups"] % v["server_groups"]:
        diag.error(SingaConfigError, f"{v['worker_groups']} worker groups cannot be shared evenly "
                   f"by {v['server_groups']} server groups",
                   b.spans.get("server_groups", block.span),
                   "worker_groups must be a multiple of server_groups")
    if v["reduce"] == "ring":
        for key in ("worker_groups", "server_groups"):
            if v[key] != 1:
                diag.error(SingaConfigError, f"reduce: ring sums the gradients of one "
                           f"synchronous group, but {key} is {v[key]}",
                           b.spans.get(key, b.spans.get("reduce", block.span)),
                           "use reduce: servers (the default) for several groups")
        if v["framework"] in ("downpour", "hogwild"):
            diag.error(SingaConfigError, f"reduce: ring cannot serve framework "
                       f"{v['framework']} (asynchronous groups need servers)",
                       b.spans.get("reduce", block.span), "remove reduce: ring")
    return ClusterSpec(v["worker_groups"], v["workers_per_group"], v["server_groups"],
                       v["servers_per_group"], v["separate_servers"], v["sync_every"],
                       v["framework"], block.span, v["reduce"])
