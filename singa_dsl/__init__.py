"""singa_dsl: SINGA's distributed deep-learning jobs as a small declarative language.

    import singa_dsl
    program = singa_dsl.load("samples/mnist_mlp.singa")   # parse + check, or SingaError
    print(program.summary())
"""
from __future__ import annotations

import pathlib

from .errors import SingaError, SingaErrors, Span  # noqa: F401

__version__ = "0.1.0"


def parse(text: str, filename: str = "<string>", base_dir: str | pathlib.Path | None = None):
    """Parse and check a program given as text; paths in it are relative to ``base_dir``
    (default: the folder of ``filename``, or the current folder)."""
    from .compiler.check import check_program
    from .compiler.parser import parse_program
    if base_dir is None:
        base_dir = pathlib.Path(filename).parent if filename != "<string>" else pathlib.Path(".")
    try:
        tree = parse_program(text, filename)
    except SingaError as e:
        raise e.with_source(text)
    return check_program(tree, text, pathlib.Path(base_dir))


def load(path: str | pathlib.Path):
    """Read, parse and check a .singa file."""
    p = pathlib.Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SingaError(f"no such file: {p}", hint="check the path") from None
    except (OSError, UnicodeDecodeError) as e:
        raise SingaError(f"cannot read {p}: {e}") from None
    return parse(text, str(p), p.parent)
