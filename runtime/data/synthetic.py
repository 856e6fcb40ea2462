"""``synthetic(shape: [...], classes: 10, size: 50000)`` — random, learnable data.

For speed runs and quick checks without files.  Each class has a fixed random mean pattern
(drawn from the shape and class count alone, so every reader of the same ``shape`` and
``classes`` faces the same task whatever its seed); record r has a random label and its
class's pattern plus noise of variance 1 (uniform: cheaper to draw than Gaussian,
and just as learnable), both drawn from ``(seed, r)``.  A record is thus a
pure function of the seed and its number: nothing is held in memory but the labels, any
record can be made in any order, and ``range`` splits one set into disjoint train and test
parts (a test phase reading the same seed and range as training sees the same records).
"""
from __future__ import annotations

import math
import pathlib

import numpy as np

from singa_dsl.errors import SingaDataError
from singa_dsl.schema import Attr

from .registry import FieldInfo, Header, define_source

TASK_SEED = 2015        # the class patterns depend on this, the shape and the class count
NOISE = 1.0             # noise std; patterns have std 1, so classes separate well
_UNIT = np.float32(12 ** 0.5)   # (u - 0.5) * sqrt(12) has variance 1 for u ~ U[0, 1)


def _shape(args: dict) -> tuple[int, ...]:
    shape = args["shape"] if isinstance(args["shape"], (tuple, list)) else (args["shape"],)
    if not shape or any(d <= 0 for d in shape):
        raise SingaDataError(f"synthetic: shape {list(shape)} needs dimensions > 0")
    return tuple(shape)


def _fields(shape: tuple[int, ...]) -> dict[str, FieldInfo]:
    return {"image": FieldInfo("image", shape, "float32", "its class's pattern plus noise"),
            "label": FieldInfo("label", (), "int32", "the class, 0..classes-1")}


def header(args: dict, base_dir: pathlib.Path) -> Header:
    return Header(_fields(_shape(args)), args["size"])


class SyntheticRecords:
    def __init__(self, shape: tuple[int, ...], classes: int, size: int, seed: int):
        self.count, self.fields = size, _fields(shape)
        self.size = math.prod(shape)
        self.key = int(seed) % (1 << 64)
        task = np.random.default_rng([TASK_SEED, classes, *shape])
        self.patterns = task.standard_normal((classes, self.size), dtype=np.float32)
        self.labels = np.random.default_rng([self.key, 1]).integers(0, classes, size,
                                                                    dtype=np.int32)

    def noise(self, record: int) -> np.ndarray:
        # Philox is counter-based: record r's stream is found without drawing r-1 others
        gen = np.random.Generator(np.random.Philox(key=self.key, counter=record))
        return (gen.random(self.size, dtype=np.float32) - np.float32(0.5)) * _UNIT

    def take(self, index: np.ndarray) -> dict[str, np.ndarray]:
        labels = self.labels[index]
        images = self.patterns[labels]
        for row, record in enumerate(index):
            images[row] += NOISE * self.noise(int(record))
        return {"image": images, "label": labels}


def load(args: dict, base_dir: pathlib.Path, seed: int) -> SyntheticRecords:
    return SyntheticRecords(_shape(args), args["classes"], args["size"], seed)


SOURCE = define_source(
    "synthetic", "random learnable data of a given shape: fields image, label",
    (Attr("shape", "ints", doc="per-sample shape of image, e.g. [3, 32, 32]"),
     Attr("classes", "int", 10, "number of classes", gt=0),
     Attr("size", "int", 50000, "number of records", gt=0)),
    header, load)
