"""Data sources: what a ``data`` block's phases read.

``SOURCES[name]`` is a ``SourceDef``: its ``attrs``, ``fields(args, base_dir)`` (cheap, at
check time), ``constants(args, base_dir)`` and ``open(args, base_dir, seed=...)`` giving a
``BatchReader``.  Importing this package registers every built-in source.
"""
from .reader import BatchReader, RecordSet
from .registry import COMMON_ATTRS, SOURCES, FieldInfo, SourceDef, define_source, source_args
from . import cifar, csvfile, digits, idx, npz, synthetic, text   # noqa: F401  (they register)
from .text import vocabulary as text_vocabulary

__all__ = ["SOURCES", "SourceDef", "FieldInfo", "BatchReader", "RecordSet", "COMMON_ATTRS",
           "define_source", "source_args", "text_vocabulary"]
