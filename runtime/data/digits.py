"""``digits(split: "train"|"test")`` — the 8x8 handwritten digits that scikit-learn ships
(1,797 images of 64 values 0..16, from the UCI optical-recognition data set).

The file is found next to the installed scikit-learn without importing ``sklearn.datasets``
(which takes over a second).  The split is fixed and stratified: within each class, in file
order, every 5th sample (the 5th, 10th, ...) is a test sample — 355 test and 1,442 train
records, each class within one sample of 1/5 test.  Each split keeps file order.
"""
from __future__ import annotations

import functools
import gzip
import importlib.resources
import importlib.util
import io
import pathlib

import numpy as np

from singa_dsl.errors import SingaDataError
from singa_dsl.schema import Attr

from .reader import ArrayRecords
from .registry import FieldInfo, Header, define_source

RESOURCE = ("data", "digits.csv.gz")     # inside the sklearn.datasets package
TEST_EVERY = 5

FIELDS = {
    "image": FieldInfo("image", (64,), "float32", "8x8 pixel counts 0..16, row-major"),
    "label": FieldInfo("label", (), "int32", "the digit, 0..9"),
}


def _resource() -> bytes:
    """The bundled csv.gz.  find_spec locates the sklearn package without running its
    __init__; only an unusual (e.g. zipped) install falls back to importlib.resources."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None:
        raise SingaDataError("digits: scikit-learn is not installed; it ships the digits data "
                             "(pip install scikit-learn)")
    for folder in spec.submodule_search_locations or ():
        path = pathlib.Path(folder, "datasets", *RESOURCE)
        if path.is_file():
            return path.read_bytes()
    try:
        return importlib.resources.files("sklearn.datasets").joinpath(*RESOURCE).read_bytes()
    except (OSError, ImportError) as e:
        raise SingaDataError(f"digits: cannot find scikit-learn's digits.csv.gz: {e}") from None


@functools.lru_cache(maxsize=1)
def _all() -> tuple[np.ndarray, np.ndarray]:
    try:
        table = np.loadtxt(io.StringIO(gzip.decompress(_resource()).decode("ascii")),
                           delimiter=",", dtype=np.float64, ndmin=2)
    except (OSError, EOFError, ValueError) as e:
        raise SingaDataError(f"digits: scikit-learn's digits.csv.gz is damaged: {e}") from None
    if table.shape[1] != 65:
        raise SingaDataError(f"digits: digits.csv.gz has {table.shape[1]} columns, expected 65")
    images, labels = table[:, :64].astype(np.uint8), table[:, 64].astype(np.int32)
    images.flags.writeable = labels.flags.writeable = False     # cached, shared
    return images, labels


def held_out(labels: np.ndarray) -> np.ndarray:
    """True for every TEST_EVERY-th sample of its class, counting in file order."""
    mask = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        mask[members[TEST_EVERY - 1::TEST_EVERY]] = True
    return mask


def _split(split: str) -> tuple[np.ndarray, np.ndarray]:
    images, labels = _all()
    keep = held_out(labels) == (split == "test")
    return images[keep], labels[keep]


def header(args: dict, base_dir: pathlib.Path) -> Header:
    return Header(FIELDS, len(_split(args["split"])[1]))


def load(args: dict, base_dir: pathlib.Path, seed: int) -> ArrayRecords:
    images, labels = _split(args["split"])
    return ArrayRecords({"image": images, "label": labels}, FIELDS)


SOURCE = define_source(
    "digits", "scikit-learn's 8x8 digits (1,797 images): fields image [64], label",
    (Attr("split", "choice", doc="which fixed part: 1,442 train or 355 test records",
          choices=("train", "test")),),
    header, load)
