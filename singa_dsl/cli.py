"""``singac``: check, compile and run .singa programs.

Exit codes scripts can rely on: 0 success; 2 a mistake in the program (located errors);
3 a data problem; 4 a kernel build failure; 5 a worker failure; 64 bad command-line usage;
70 an internal error (our bug); 130 interrupted.
"""
from __future__ import annotations

import argparse
import pathlib
import sys

from . import __version__
from .errors import SingaError

EXAMPLES = {
    "check": "singac check samples/mnist_mlp.singa",
    "graph": "singac graph samples/cifar_convnet.singa --format svg -o convnet.svg",
    "fmt": "singac fmt samples/mnist_mlp.singa --write",
    "run": "singac run samples/mnist_mlp.singa --steps 200",
    "tune": "singac tune samples/mnist_mlp.singa --threads 1",
    "plan": "singac plan samples/cifar_convnet.singa --workers 2 --explain",
    "test": "singac test samples/mnist_mlp.singa --checkpoint runs/mnist_mlp",
    "init": "singac init model.singa && singac model.singa",
    "plot": "singac plot runs/downpour runs/hogwild -o compare.svg",
    "import": "singac import lenet_train_test.prototxt --solver lenet_solver.prototxt -o lenet.singa",
    "sample": "singac sample samples/char_rnn.singa --checkpoint runs/char_rnn --length 300 "
              "--prime 'def '",
    "filters": "singac filters runs/rbm1 --param w1 -o rbm1-filters.png",
    "completion": "singac completion bash > ~/.local/share/bash-completion/completions/singac",
}


class _Parser(argparse.ArgumentParser):
    """A mistake on the command line exits 64 (EX_USAGE), as the README promises, not
    argparse's 2, which singac gives to a mistake in a program."""

    def error(self, message):
        self.print_usage(sys.stderr)
        self.exit(64, f"{self.prog}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="singac", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Check, compile and run SINGA training jobs written in the .singa language.",
        epilog="examples:\n  " + "\n  ".join(EXAMPLES.values()) +
               "\n\n'singac FILE' is short for 'singac run FILE'.")
    p.add_argument("--version", action="version", version=f"singac {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def cmd(name, help_text):
        c = sub.add_parser(name, help=help_text, description=help_text,
                           epilog=f"example:\n  {EXAMPLES[name]}" if name in EXAMPLES else None,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        return c

    c = cmd("check", "check a program and print its layers, shapes and parameter counts")
    c.add_argument("files", nargs="+", metavar="FILE")
    c.add_argument("--quiet", "-q", action="store_true", help="print errors only")

    c = cmd("graph", "draw the net as DOT, SVG or PNG")
    c.add_argument("file", metavar="FILE")
    c.add_argument("--format", choices=("dot", "svg", "png"), default="dot")
    c.add_argument("-o", "--output", help="output file (default: stdout for dot, "
                   "NET.FORMAT for pictures)")

    c = cmd("fmt", "print a program in canonical form")
    c.add_argument("files", nargs="+", metavar="FILE")
    c.add_argument("--write", "-w", action="store_true", help="rewrite the files in place")
    c.add_argument("--check", action="store_true",
                   help="exit 1 if a file is not canonically formatted")

    c = cmd("run", "check, compile and train; several files run in order")
    c.add_argument("files", nargs="+", metavar="FILE")
    c.add_argument("--steps", type=int, help="override the job's steps")
    c.add_argument("--device", help="OpenCL device: 'PLATFORM:DEVICE' indices or a name part "
                   "(default: PYOPENCL_CTX, else PoCL's CPU device)")
    c.add_argument("--workspace", help="override the job's workspace folder")
    c.add_argument("--resume", action="store_true", help="continue from the latest checkpoint")
    c.add_argument("--on-nan", choices=("stop", "skip"), default="stop",
                   help="a NaN/Inf loss or gradient: stop naming the layer and tensor (exit 6), "
                   "or skip that step's update and go on (default: stop)")
    c.add_argument("--hosts", metavar="HOSTFILE",
                   help="run the ranks on these machines (an MPICH hostfile: 'host[:n]' lines)")
    c.add_argument("--max-restarts", type=int, default=0, metavar="N",
                   help="restart a distributed job whose rank died from its newest "
                   "checkpoint, up to N times (0)")
    c.add_argument("--threads", type=int, metavar="N",
                   help="OpenCL threads per worker rank (default: the cores shared out)")
    c.add_argument("--simulate", action="store_true",
                   help="train one worker group's partitioned net with every worker "
                   "simulated in this process on one OpenCL device")
    c.add_argument("--workers", type=int, metavar="N",
                   help="with --simulate: workers per group (default: the cluster block's)")
    c.add_argument("--quiet", "-q", action="store_true", help="no progress display")
    c.add_argument("--profile", action="store_true",
                   help="print the time spent per layer and per kernel (OpenCL events)")
    c.add_argument("--tune", action=argparse.BooleanOptionalAction, default=None,
                   help="first measure the fastest GEMM kernels for shapes missing from the "
                   "tuning cache (default: SINGA_TUNE=1 or not; cached choices always apply)")

    c = cmd("tune", "measure the fastest GEMM kernels for a program's shapes on this device "
            "and cache them for every later run")
    c.add_argument("files", nargs="+", metavar="FILE")
    c.add_argument("--device", help="OpenCL device, as for run")
    c.add_argument("--threads", type=int, metavar="N",
                   help="OpenCL threads to tune for (default: what PoCL uses, all cores)")
    c.add_argument("--force", action="store_true", help="measure cached shapes again")
    c.add_argument("--quiet", "-q", action="store_true", help="print nothing")
    c.add_argument("--brief", action="store_true", help=argparse.SUPPRESS)  # (run's pre-tune)

    c = cmd("import", "translate a SINGA job.conf or a Caffe prototxt (+ solver) into .singa")
    c.add_argument("file", metavar="FILE", help="job.conf, train_val.prototxt or solver.prototxt")
    c.add_argument("--solver", help="Caffe solver.prototxt (found beside the net if omitted)")
    c.add_argument("-o", "--output", help="write the program here instead of stdout")

    c = cmd("plot", "draw loss and accuracy curves of one or more runs")
    c.add_argument("workspaces", nargs="+", metavar="WORKSPACE")
    c.add_argument("-o", "--output", default="curves.png", help="OUT.png or OUT.svg")

    c = cmd("init", "write a starter program to edit")
    c.add_argument("file", nargs="?", default="model.singa", metavar="FILE")
    c.add_argument("--force", action="store_true", help="overwrite an existing file")

    c = cmd("plan", "compile a program and show the Plan the runtime executes")
    c.add_argument("file", metavar="FILE")
    c.add_argument("--emit", choices=("json", "cl", "summary"), default="summary",
                   help="json: the whole Plan; cl: every OpenCL program; summary: launch lists")
    c.add_argument("-o", "--output", help="write to this file instead of stdout")
    c.add_argument("--workers", type=int, metavar="N",
                   help="workers per group to partition for (default: the cluster block's)")
    c.add_argument("--explain", action="store_true",
                   help="each layer's partition dimension, predicted step time and traffic")
    c.add_argument("--annotate", action="store_true",
                   help="print the program with partition: auto's choices as @ annotations")
    c.add_argument("--format", choices=("dot", "svg", "png"),
                   help="draw the partitioned graph (layers coloured by worker)")

    c = cmd("test", "evaluate a trained model on the program's test data")
    c.add_argument("file", metavar="FILE")
    c.add_argument("--checkpoint", required=True, metavar="DIR",
                   help="a workspace (its newest intact checkpoint) or one checkpoint folder")
    c.add_argument("--batches", type=int, help="test batches (default: the whole test set)")
    c.add_argument("--device", help="OpenCL device, as for run")

    c = cmd("sample", "generate text from a trained character model (text data, softmax_loss)")
    c.add_argument("file", metavar="FILE")
    c.add_argument("--checkpoint", required=True, metavar="DIR",
                   help="a workspace (its newest intact checkpoint) or one checkpoint folder")
    c.add_argument("--length", type=int, default=300, help="characters to generate (300)")
    c.add_argument("--temperature", type=float, default=1.0,
                   help="below 1: safer choices, above 1: more varied (1.0)")
    c.add_argument("--prime", default="", help="text fed to the model first (printed too)")
    c.add_argument("--seed", type=int, default=0, help="random seed of the sampling (0)")

    c = cmd("filters", "draw a trained layer's weights as images, one tile per unit")
    c.add_argument("checkpoint", metavar="CHECKPOINT_OR_WORKSPACE")
    c.add_argument("--param", required=True, metavar="NAME",
                   help="the param, by its store name (w1, fc1.w, conv1.w)")
    c.add_argument("-o", "--output", help="OUT.png or OUT.svg (default: PARAM-filters.png)")
    c.add_argument("--side", type=int, metavar="N",
                   help="tile width in pixels (default: the square root of the inputs)")
    c.add_argument("--count", type=int, default=100, help="units to draw (100)")

    c = cmd("completion", "print a shell completion script")
    c.add_argument("shell", choices=("bash", "zsh", "tcsh"))
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _parser()
    if argv and argv[0].endswith(".singa"):
        argv = ["run"] + argv
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 64
    try:
        return _COMMANDS[args.command](args)
    except SingaError as e:
        print(e.render(), file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


def _print_warnings(program) -> None:
    for w in program.warnings:
        print(w.render(), file=sys.stderr)


def _check(args) -> int:
    from . import load
    for i, f in enumerate(args.files):
        program = load(f)
        _print_warnings(program)
        if not args.quiet:
            if i:
                print()
            print(f"{f}: ok")
            print(program.summary())
    return 0


def _graph(args) -> int:
    from . import load
    from .compiler.draw import draw, to_dot
    program = load(args.file)
    name = program.net.name
    if args.format == "dot":
        text = to_dot(program.graph, name)
        if args.output:
            pathlib.Path(args.output).write_text(text)
        else:
            sys.stdout.write(text)
        return 0
    out = args.output or f"{name}.{args.format}"
    draw(program.graph, name, out, args.format)
    print(f"wrote {out}")
    return 0


def _fmt(args) -> int:
    from .compiler.format import format_program
    from .compiler.parser import parse_program
    changed = 0
    for f in args.files:
        p = pathlib.Path(f)
        text = _read(p)
        try:
            formatted = format_program(parse_program(text, f), text)
        except SingaError as e:
            raise e.with_source(text)
        if formatted != text:
            changed += 1
        if args.write:
            if formatted != text:
                p.write_text(formatted)
        elif not args.check:
            sys.stdout.write(formatted)
    if args.check and changed:
        print(f"{changed} file(s) would be reformatted", file=sys.stderr)
        return 1
    return 0


def _run(args) -> int:
    from . import load
    try:
        from .run import run_program
    except ImportError:
        for f in args.files:
            load(f)
        print("checked; training needs the runtime, which this build does not include",
              file=sys.stderr)
        return 64
    for f in args.files:
        program = load(f)
        _print_warnings(program)
        if args.simulate or args.workers is not None:
            from .run import simulate_program
            if not args.simulate:
                from .errors import SingaConfigError
                raise SingaConfigError("--workers needs --simulate")
            simulate_program(program, workers=args.workers, steps=args.steps,
                             device=args.device, workspace=args.workspace, resume=args.resume,
                             quiet=args.quiet, profile=args.profile, on_nan=args.on_nan)
            continue
        result = run_program(program, steps=args.steps, device=args.device,
                             workspace=args.workspace, resume=args.resume, quiet=args.quiet,
                             profile=args.profile, hosts=args.hosts,
                             max_restarts=args.max_restarts, threads=args.threads,
                             on_nan=args.on_nan, tune=args.tune)
        if isinstance(result, int) and result:
            return result          # a distributed job's exit code
    return 0


def _tune(args) -> int:
    import os
    from . import load
    from .run import tune_program
    if args.threads is not None:      # PoCL reads it when its platform starts, below
        if args.threads < 1:
            from .errors import SingaConfigError
            raise SingaConfigError(f"--threads must be at least 1, not {args.threads}")
        os.environ["POCL_MAX_PTHREAD_COUNT"] = str(args.threads)
    for f in args.files:
        program = load(f)
        tune_program(program, device=args.device, force=args.force, quiet=args.quiet,
                     brief=args.brief)
    return 0


STARTER = """\
# A starter job: an MLP on the 8x8 digits that scikit-learn ships.  Train it with
#   singac {file}
job starter {{
  steps: 500
  test: every(100, batches: 4)
  display: every(50)
  workspace: "runs/starter"
}}

data digits {{
  train: digits(split: "train", batch: 64, shuffle: true, normalize: (mean: 8, std: 8))
  test: digits(split: "test", batch: 100, normalize: (mean: 8, std: 8))
}}

net mlp {{
  x = input(digits.image)
  h1 = relu(dense(x, 128))
  fc2 = dense(h1, 10)
  loss = softmax_loss(fc2, digits.label)
}}

algorithm bp

updater sgd {{
  lr: 0.05
  momentum: 0.9
}}
"""


def _import(args) -> int:
    from .compiler.importer import import_file
    result = import_file(args.file, args.solver)
    for w in result.warnings:
        print(w.render(), file=sys.stderr)
    if args.output:
        pathlib.Path(args.output).write_text(result.source)
        print(f"wrote {args.output} ({len(result.warnings)} warning"
              f"{'s' if len(result.warnings) != 1 else ''})", file=sys.stderr)
    else:
        sys.stdout.write(result.source)
    return 0


def _plot(args) -> int:
    from .plot import plot
    plot(args.workspaces, args.output)
    print(f"wrote {args.output}")
    return 0


def _init(args) -> int:
    p = pathlib.Path(args.file)
    if p.exists() and not args.force:
        print(f"{p} exists; use --force to overwrite it", file=sys.stderr)
        return 64
    p.write_text(STARTER.format(file=p))
    print(f"wrote {p}; train it with: singac {p}")
    return 0


def _plan(args) -> int:
    from . import load
    if args.explain or args.annotate or args.format:
        return _partition_views(load(args.file), args)
    from .run import compile_plan
    plan = compile_plan(load(args.file))
    if args.emit == "json":
        text = plan.dumps() + "\n"
    elif args.emit == "cl":
        text = "".join(f"/* ==== program {p.name} ({p.origin}); options: {' '.join(p.options)} "
                       f"==== */\n{p.source}\n" for p in plan.kernels.programs)
    else:
        lines = [f"buffers: {len(plan.kernels.buffers)} "
                 f"({sum(b.nbytes for b in plan.kernels.buffers) / 2**20:.1f} MiB), "
                 f"programs: {len(plan.kernels.programs)}, params: {len(plan.params)}"]
        for name, launches in plan.kernels.launch_lists:
            lines.append(f"launch list {name}: {len(launches)} launches")
            lines += [f"  {l.tag:<24} {l.kernel:<28} global {list(l.global_size)}"
                      for l in launches]
        text = "\n".join(lines) + "\n"
    if args.output:
        pathlib.Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def _partition_views(program, args) -> int:
    """--explain / --annotate / --format: views of the partitioned net (issue 5's passes)."""
    from .compiler import partition_explain
    if args.explain:
        text = partition_explain.explain(program, workers=args.workers)
    elif args.annotate:
        text = partition_explain.annotate(program, workers=args.workers)
    else:
        from .compiler.partition import partition_program
        from .compiler.partition_draw import draw_plan, to_dot
        graph = partition_program(program, workers=args.workers)
        if args.format == "dot":
            text = to_dot(graph, program.net.name)
        else:
            out = args.output or f"{program.net.name}-plan.{args.format}"
            draw_plan(graph, out, args.format)
            print(f"wrote {out}")
            return 0
    if args.output:
        pathlib.Path(args.output).write_text(text)
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0


def _test(args) -> int:
    from . import load
    from .run import compile_plan
    from .runtime.trainer import Trainer
    program = load(args.file)
    trainer = Trainer(compile_plan(program), device=args.device, quiet=True)
    record = trainer.test_from_checkpoint(args.checkpoint, args.batches)
    print("  ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                    for k, v in record.items()))
    return 0


def _sample(args) -> int:
    from . import load
    from .runtime.sampler import generate
    program = load(args.file)
    text = generate(program, args.checkpoint, args.length, args.temperature, args.prime,
                    args.seed)
    sys.stdout.write(args.prime + text + "\n")
    return 0


def _filters(args) -> int:
    from .filters import draw_filters, load_param
    w = load_param(args.checkpoint, args.param)
    out = args.output or f"{args.param.replace('.', '-')}-filters.png"
    n = draw_filters(w, out, args.param, side=args.side, count=args.count)
    print(f"wrote {out} ({n} tiles)")
    return 0


def _completion(args) -> int:
    """A completion script from the parser itself (shtab), so it never drifts."""
    try:
        import shtab
    except ImportError:
        raise SingaError("shell completion needs the shtab package",
                         hint="pip install 'shtab>=1.7'") from None
    parser = _parser()
    paths = {"FILE", "WORKSPACE", "CHECKPOINT_OR_WORKSPACE", "DIR", "HOSTFILE"}
    for sub in parser._subparsers._group_actions[0].choices.values():
        for action in sub._actions:
            if action.metavar in paths or action.dest in ("output", "workspace", "solver"):
                action.complete = shtab.FILE
    sys.stdout.write(shtab.complete(parser, shell=args.shell))
    return 0


def _read(p: pathlib.Path) -> str:
    try:
        return p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SingaError(f"no such file: {p}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise SingaError(f"cannot read {p}: {e}") from None


_COMMANDS = {"check": _check, "graph": _graph, "fmt": _fmt, "run": _run, "tune": _tune,
             "plan": _plan,
             "test": _test, "sample": _sample, "init": _init,
             "import": _import, "plot": _plot, "filters": _filters,
             "completion": _completion}

if __name__ == "__main__":
    sys.exit(main())
