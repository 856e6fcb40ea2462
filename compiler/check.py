"""The checking pass: AST → CheckedProgram.  Every diagnostic is collected, then raised once.

Order: consts, data blocks, job/updater/algorithm/cluster, the net (drafts → graph with shapes
and params), then checks that span blocks (algorithm vs net, partition vs cluster, init_from).
"""
from __future__ import annotations

import pathlib

from singa_dsl.errors import (Diagnostics, SingaConfigError, SingaNameError, SingaShapeError,
                              Span)
from . import ast
from .check_blocks import check_algorithm, check_cluster, check_job, check_updater
from .check_data import check_data
from .check_net import check_net_entries, layer_drafts
from .graph import build_net
from .program import CheckedProgram
from .values import INVALID, RefValue, Scope, evaluate

SINGLE_BLOCKS = ("job", "algorithm", "updater")


def check_program(program: ast.Program, source: str, base_dir: pathlib.Path) -> CheckedProgram:
    diag = Diagnostics(source)
    file = program.file
    consts = _check_consts(program, diag)
    data_specs = {}
    scope = Scope(consts)
    for block in program.blocks("data"):
        if block.name in data_specs:
            diag.error(SingaNameError, f"data block '{block.name}' is defined twice",
                       block.name_span)
            continue
        data_specs[block.name] = check_data(block, scope, base_dir, diag)
    scope = Scope(consts, _dotted_resolver(data_specs, diag))
    singles = {k: _one_block(program, k, file, diag) for k in SINGLE_BLOCKS}
    job = check_job(singles["job"], scope, diag) if singles["job"] else None
    updater = check_updater(singles["updater"], scope, diag) if singles["updater"] else None
    algorithm = check_algorithm(singles["algorithm"], scope, diag) if singles["algorithm"] \
        else None
    clusters = program.blocks("cluster")
    for extra in clusters[1:]:
        diag.error(SingaNameError, "only one cluster block is allowed", extra.span)
    cluster = check_cluster(clusters[0] if clusters else None, scope, diag)
    nets = program.nets
    for extra in nets[1:]:
        diag.error(SingaNameError, "only one net is allowed", extra.name_span)
    if not nets:
        diag.error(SingaConfigError, "the program has no net block", Span(file, 1, 1, 1, 2),
                   "add net NAME { x = input(data.image) ... }")
        diag.raise_if_any()
    net_ast = nets[0]
    net_attrs = check_net_entries(net_ast, scope, diag)
    drafts, broken = layer_drafts(net_ast, scope, set(data_specs), diag)
    init_from = job.init_from if job else ()
    if not _check_algorithm_vs_unroll(algorithm, net_attrs, net_ast, drafts, diag):
        diag.raise_if_any()    # per-step shapes would only add follow-on errors
    net, graph = build_net(net_ast.name, drafts, net_attrs, data_specs, init_from, diag,
                           net_ast.span, broken)
    _check_phases_used(job, singles["job"], net, data_specs, diag)
    if not diag.errors:
        _check_algorithm_fits(algorithm, net, net_attrs, net_ast, diag)
        _check_partitions(net, cluster, data_specs, drafts, diag)
        _warn_init_from(job, singles["job"], diag)
    diag.raise_if_any()
    checked = CheckedProgram(file=file, source=source, base_dir=str(base_dir), ast=program,
                             consts=consts, job=job, data=data_specs, net=net, graph=graph,
                             algorithm=algorithm, updater=updater, cluster=cluster,
                             warnings=tuple(diag.warnings))
    from .memory import index_errors       # a tensor no kernel can index, on any device
    for e in index_errors(checked):
        diag.add(e)
    diag.raise_if_any()
    return checked


def _check_consts(program: ast.Program, diag: Diagnostics) -> dict:
    consts: dict = {}
    spans: dict = {}
    for c in program.consts:
        if c.name in consts:
            diag.error(SingaNameError, f"const '{c.name}' is defined twice", c.name_span,
                       f"the first definition is at line {spans[c.name].line}")
            continue
        consts[c.name] = evaluate(c.value, Scope(consts), diag)
        spans[c.name] = c.name_span
    return consts


def _dotted_resolver(data_specs: dict, diag: Diagnostics):
    """``corpus.vocab`` in a value: a data source's constant; other dotted names pass through
    (``e2.w`` inside share(...) names a param)."""
    def resolve(parts: tuple[str, ...], span: Span):
        spec = data_specs.get(parts[0])
        if spec is None or len(parts) != 2:
            return RefValue(parts, span)
        for phase in spec.phases.values():
            if parts[1] in phase.constants:
                return phase.constants[parts[1]]
        if not spec.phases:
            return INVALID
        known = sorted({c for p in spec.phases.values() for c in p.constants})
        diag.error(SingaNameError, f"data {parts[0]} has no constant '{parts[1]}'", span,
                   f"constants: {', '.join(known)}" if known else
                   "fields such as image and label are layer sources, not values")
        return INVALID
    return resolve


def _one_block(program: ast.Program, keyword: str, file: str, diag: Diagnostics):
    blocks = program.blocks(keyword)
    if not blocks:
        examples = {"job": "job NAME { steps: 1000 }", "algorithm": "algorithm bp",
                    "updater": "updater sgd { lr: 0.01 }"}
        diag.error(SingaConfigError, f"the program has no {keyword} block",
                   Span(file, 1, 1, 1, 2), f"add {examples[keyword]}")
        return None
    for extra in blocks[1:]:
        diag.error(SingaNameError, f"only one {keyword} block is allowed", extra.span,
                   f"the first is at line {blocks[0].span.line}")
    return blocks[0]


def _check_algorithm_vs_unroll(algorithm, net_attrs, net_ast, drafts, diag) -> bool:
    """Checked before shapes: a wrong unroll would otherwise surface as shape errors."""
    if algorithm is None:
        return True
    unroll = net_attrs["unroll"]
    ok = True
    if algorithm.kind != "bptt" and unroll > 1:
        diag.error(SingaConfigError, f"unroll: {unroll} needs algorithm bptt",
                   net_attrs["spans"].get("unroll", net_ast.name_span),
                   "use algorithm bptt to train a recurrent net, or remove unroll")
        ok = False
    if algorithm.kind == "bptt" and unroll < 2:
        diag.error(SingaConfigError, "algorithm bptt needs the net to set unroll: N (N >= 2)",
                   net_ast.name_span, "add unroll: 50 (the sequence length) to the net")
        ok = False
    if algorithm.kind == "bptt" and not any(d.op.recurrent for d in drafts):
        diag.error(SingaConfigError, "algorithm bptt needs a recurrent layer (gru, lstm, rnn)",
                   algorithm.span)
    if algorithm.kind == "cd" and not any(d.op.name == "rbm" for d in drafts):
        diag.error(SingaConfigError, "algorithm cd trains rbm layers, but the net has none",
                   algorithm.span, "add an rbm layer, or use algorithm bp")
    return ok


def _check_algorithm_fits(algorithm, net, net_attrs, net_ast, diag: Diagnostics):
    if algorithm is None:
        return
    if algorithm.kind == "bp" and not any(l.op in ("softmax_loss", "euclidean_loss")
                                          for l in net.layers):
        diag.error(SingaConfigError, "algorithm bp needs a loss layer "
                   "(softmax_loss or euclidean_loss)", algorithm.span)


def _check_partitions(net, cluster, data_specs, drafts, diag: Diagnostics):
    """With several workers per group, each partitioned dimension must divide evenly."""
    n = cluster.workers_per_group
    if n == 1:
        return
    spans = {d.name: (d.partition_span or d.span) for d in drafts}
    for spec in data_specs.values():
        train = spec.phases.get("train")
        if train and train.args["batch"] % n:
            diag.error(SingaShapeError, f"batch {train.args['batch']} is not divisible by "
                       f"{n} workers per group", train.span,
                       f"use a batch that is a multiple of {n}")
    for l in net.layers:
        if l.partition == "feature" and l.out is not None and l.out.shape and l.out.shape[0] % n:
            diag.error(SingaShapeError, f"layer '{l.name}' has {l.out.shape[0]} features, "
                       f"not divisible by {n} workers per group", spans[l.name],
                       f"partition it on the batch (@batch) or make it a multiple of {n}")


def _check_phases_used(job, job_block, net, data_specs, diag: Diagnostics):
    """The data block the net reads must have a train source; a test/validate schedule
    without the matching source would silently never run."""
    read = {s.split(".")[0] for l in net.layers for s in l.sources if "." in s} & set(data_specs)
    for name in sorted(read):
        spec = data_specs[name]
        if "train" not in spec.declared:
            diag.error(SingaConfigError, f"data {name} has no train source", spec.span,
                       "add train: SOURCE(...) to the data block")
    if job is None or job_block is None:
        return
    for phase in ("test", "validate"):
        if getattr(job, phase) is not None and read and not any(
                phase in data_specs[n].declared for n in read):
            entry = next((e for e in job_block.entries if e.key == phase), None)
            diag.warn(f"'{phase}' is scheduled but no data block has a {phase} source, so it "
                      "will not run", entry.span if entry else job_block.span,
                      f"add {phase}: SOURCE(...) to the data block")


def _warn_init_from(job, block, diag: Diagnostics):
    if job is None:
        return
    for ws in job.init_from:
        if not (pathlib.Path(ws) / "checkpoints").exists():
            entry = next((e for e in block.entries if e.key == "init_from"), None)
            diag.warn(f"init_from workspace '{ws}' has no checkpoint yet", entry.span
                      if entry else block.span, "run the job that writes it first; "
                      "running this job before that is an error")
