"""The op registry, filled by importing each op family module, then their OpenCL lowerings."""
from .registry import OPS, OpDef, ParamSlot, ShapeProblem, TensorInfo  # noqa: F401
from . import activation, connection, conv, dense, loss, norm, pool, rbm, recurrent  # noqa: F401
from . import activation_cl, connection_cl, conv_cl, dense_cl, loss_cl, norm_cl, pool_cl  # noqa: F401
from . import rbm_cl, recurrent_cl  # noqa: F401  (CD and BPTT lowerings)
