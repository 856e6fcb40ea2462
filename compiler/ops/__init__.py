"""The op registry, filled by importing each op family module."""
from .registry import OPS, OpDef, ParamSlot, ShapeProblem, TensorInfo  # noqa: F401
from . import activation, connection, conv, dense, loss, norm, pool, rbm, recurrent  # noqa: F401
