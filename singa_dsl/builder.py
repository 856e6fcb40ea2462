"""Write .singa programs in Python: a small declarative builder that produces the same AST the
parser does, so a program built here prints (``to_source()``), checks and runs exactly like
the text.

    from singa_dsl.builder import Program, fn
    p = Program()
    p.job("mlp", steps=1000, test=fn.every(60, batches=10), display=fn.every(10))
    mnist = p.data("mnist", train=fn.digits(split="train", batch=64),
                   test=fn.digits(split="test", batch=100))
    net = p.net("mlp")
    net.x = net.input(mnist.image)
    net.h1 = net.stanh(net.dense(net.x, 2500, w=fn.uniform(-0.05, 0.05)))
    net.fc2 = net.dense(net.h1, 10) @ "feature"          # a partition annotation
    net.loss = net.softmax_loss(net.fc2, mnist.label)
    p.algorithm("bp")
    p.updater("sgd", lr=fn.step(0.01, every=60, gamma=0.997))
    program = p.check()                                   # a CheckedProgram, or SingaError
"""
from __future__ import annotations

from singa_dsl.compiler import ast


def expr(value) -> ast.Expr:
    """A Python value → the expression the parser would build for its literal."""
    if isinstance(value, (ast.Num, ast.Str, ast.Bool, ast.Ref, ast.Call, ast.ListExpr,
                          ast.Record, ast.BinOp, ast.Neg)):
        return value
    if isinstance(value, (_Ref, LayerCall)):
        return value.node
    if isinstance(value, bool):
        return ast.Bool(value)
    if isinstance(value, (int, float)):
        # "-0.05" parses as a negation of 0.05; build the same tree.
        return ast.Neg(ast.Num(-value)) if value < 0 else ast.Num(value)
    if isinstance(value, str):
        return ast.Str(value)
    if isinstance(value, (list, tuple)):
        return ast.ListExpr(tuple(expr(v) for v in value))
    if isinstance(value, dict):
        return ast.Record(tuple(ast.Kwarg(k, expr(v)) for k, v in value.items()))
    raise TypeError(f"cannot write {value!r} in a .singa program")


def _call(name: str, args, kwargs) -> ast.Call:
    return ast.Call(name, tuple(expr(a) for a in args),
                    tuple(ast.Kwarg(k, expr(v)) for k, v in kwargs.items()))


class _Functions:
    """``fn.uniform(-0.1, 0.1)``, ``fn.every(10)``, ``fn.digits(...)``: any call by name."""
    def __getattr__(self, name: str):
        return lambda *args, **kwargs: _call(name, args, kwargs)


fn = _Functions()


class _Ref:
    """A name (layer, data block, const) that grows dotted parts: ``mnist.image``, ``e2.w``."""
    def __init__(self, *parts: str):
        self.node = ast.Ref(tuple(parts))

    def __getattr__(self, part: str) -> "_Ref":
        if part.startswith("_"):
            raise AttributeError(part)
        return _Ref(*self.node.parts, part)


def word(name: str) -> _Ref:
    """A bare word such as ``batch`` in ``partition: batch`` (a string works the same)."""
    return _Ref(name)


class LayerCall:
    """An op call not yet named: assign it to a net attribute, or nest it in another call."""
    def __init__(self, node: ast.Call, annotations: tuple[str, ...] = ()):
        self.node, self.annotations = node, annotations

    def __matmul__(self, partition: str) -> "LayerCall":
        return LayerCall(self.node, self.annotations + (partition,))


class Net:
    def __init__(self, name: str, entries: dict):
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_items", [ast.Entry(k, expr(v)) for k, v in entries.items()])

    def __setattr__(self, name: str, value):
        if not isinstance(value, LayerCall):
            raise TypeError(f"net.{name} must be an op call such as net.dense(x, 10)")
        self._items.append(ast.Layer(name, value.node,
                                     tuple(ast.Annotation(a) for a in value.annotations)))

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        if any(isinstance(i, ast.Layer) and i.name == name for i in self._items):
            return _Ref(name)
        return lambda *args, **kwargs: LayerCall(_call(name, args, kwargs))

    def to_ast(self) -> ast.NetDecl:
        return ast.NetDecl(self._name, tuple(self._items))


class Program:
    def __init__(self):
        self._items: list = []

    def _add(self, item):
        self._items.append(item)
        return item

    def const(self, name: str, value) -> _Ref:
        self._add(ast.ConstDecl(name, expr(value)))
        return _Ref(name)

    def _block(self, keyword: str, name, entries: dict, has_body=True):
        self._add(ast.Block(keyword, name, tuple(ast.Entry(k, expr(v))
                                                 for k, v in entries.items()), has_body))

    def job(self, name: str, **settings):
        self._block("job", name, settings)

    def data(self, name: str, **phases) -> _Ref:
        self._block("data", name, phases)
        return _Ref(name)

    def net(self, name: str, **settings) -> Net:
        return self._add(Net(name, settings))

    def algorithm(self, kind: str, **settings):
        self._block("algorithm", kind, settings, has_body=bool(settings))

    def updater(self, kind: str, **settings):
        self._block("updater", kind, settings)

    def cluster(self, **settings):
        self._block("cluster", None, settings)

    def to_ast(self, file: str = "<builder>") -> ast.Program:
        return ast.Program(tuple(i.to_ast() if isinstance(i, Net) else i for i in self._items),
                           file)

    def to_source(self) -> str:
        from singa_dsl.compiler.format import format_program
        return format_program(self.to_ast())

    def check(self, base_dir: str = "."):
        """Check the program as if it were a file in ``base_dir``."""
        import singa_dsl
        return singa_dsl.parse(self.to_source(), "<builder>", base_dir)
