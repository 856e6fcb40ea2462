"""Each data source on small files written here, the real MNIST test set, and the error
messages for missing and malformed files."""
from __future__ import annotations

import gzip
import io
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from singa_dsl.errors import SingaDataError
from singa_dsl.runtime.data import SOURCES, source_args, text_vocabulary

MNIST = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mnist"


# ---- writers, independent of the code under test ----

def idx_bytes(array: np.ndarray, code: int = 0x08) -> bytes:
    dtype = {0x08: ">u1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4"}[code]
    head = struct.pack(">HBB", 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return head + array.astype(dtype).tobytes()


def write_idx(tmp: Path, images: np.ndarray, labels: np.ndarray, gz: bool) -> dict:
    names = {}
    for key, array in (("images", images), ("labels", labels)):
        data = idx_bytes(array)
        name = f"{key}.idx" + (".gz" if gz else "")
        (tmp / name).write_bytes(gzip.compress(data) if gz else data)
        names[key] = name
    return names


def small_mnist(n: int = 12) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, 3, 4), dtype=np.uint8), (np.arange(n) % 10).astype(np.uint8)


def first_batch(name: str, base: Path, seed: int = 0, **attrs) -> dict:
    return SOURCES[name].open(source_args(name, **attrs), base, seed=seed).next_batch()


def fields(name: str, base: Path, **attrs) -> dict:
    return SOURCES[name].fields(source_args(name, **attrs), base)


def data_error(call) -> str:
    with pytest.raises(SingaDataError) as err:
        call()
    return err.value.message


# ---- the registry ----

def test_registry_lists_every_source_with_the_common_attributes():
    assert SOURCES.names() == ["cifar", "csv", "digits", "idx", "npz", "synthetic", "text"]
    for name in SOURCES:
        attrs = {a.name: a for a in SOURCES[name].attrs}
        assert {"batch", "shuffle", "normalize", "shape", "range"} <= set(attrs), name
        assert attrs["batch"].required and attrs["batch"].range_error(0)
        assert attrs["shuffle"].default is False and attrs["range"].default is None
    assert [a.name for a in SOURCES["npz"].attrs if a.positional] == ["path"]
    assert "did you mean 'idx'" in SOURCES.unknown_hint("idz")


# ---- digits ----

def _digits_direct() -> np.ndarray:
    import importlib.util
    folder = Path(importlib.util.find_spec("sklearn").submodule_search_locations[0])
    raw = gzip.decompress((folder / "datasets" / "data" / "digits.csv.gz").read_bytes())
    return np.loadtxt(io.StringIO(raw.decode()), delimiter=",")


def test_digits_split_is_fixed_and_stratified():
    table = _digits_direct()
    labels = table[:, 64].astype(int)
    expected_test = np.concatenate([np.flatnonzero(labels == c)[4::5] for c in range(10)])
    expected_test.sort()
    expected_train = np.setdiff1d(np.arange(len(labels)), expected_test)
    for split, rows in (("train", expected_train), ("test", expected_test)):
        reader = SOURCES["digits"].open(source_args("digits", split=split, batch=len(rows)),
                                        Path("."), seed=0)
        assert reader.records == len(rows)
        got = reader.next_batch()
        np.testing.assert_array_equal(got["label"], labels[rows])
        np.testing.assert_array_equal(got["image"], table[rows, :64])
    assert (len(expected_train), len(expected_test)) == (1442, 355)
    for c in range(10):    # every class is within one sample of a fifth in test
        in_class = np.sum(labels == c)
        assert np.sum(labels[expected_test] == c) == in_class // 5


def test_digits_fields_and_it_never_imports_sklearn_datasets():
    info = fields("digits", Path("."), split="test", batch=5, shape=[1, 8, 8])
    assert info["image"].shape == (1, 8, 8) and info["image"].dtype == "float32"
    assert info["label"].shape == () and info["label"].dtype == "int32"
    code = ("import sys; from pathlib import Path; "
            "from singa_dsl.runtime.data import SOURCES, source_args; "
            "SOURCES['digits'].open(source_args('digits', split='train', batch=4), Path('.'), "
            "seed=0).next_batch(); print('sklearn.datasets' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ---- idx ----

@pytest.mark.parametrize("gz", [False, True])
def test_idx_reads_raw_and_gzipped_files(tmp_path, gz):
    images, labels = small_mnist()
    names = write_idx(tmp_path, images, labels, gz)
    info = fields("idx", tmp_path, batch=4, **names)
    assert info["image"].shape == (12,) and info["label"].shape == ()
    got = first_batch("idx", tmp_path, batch=12, **names)
    np.testing.assert_array_equal(got["image"], images.reshape(12, 12).astype(np.float32))
    np.testing.assert_array_equal(got["label"], labels)
    assert got["image"].dtype == np.float32 and got["label"].dtype == np.int32


def test_idx_shape_option_reshapes_images(tmp_path):
    images, labels = small_mnist()
    names = write_idx(tmp_path, images, labels, gz=True)
    assert fields("idx", tmp_path, batch=4, shape=[1, 3, 4], **names)["image"].shape == (1, 3, 4)
    got = first_batch("idx", tmp_path, batch=3, shape=(1, 3, 4), **names)
    np.testing.assert_array_equal(got["image"][:, 0], images[:3])


@pytest.mark.skipif(not MNIST.is_dir(), reason=f"MNIST test set not found at {MNIST}")
def test_real_mnist_test_set_matches_a_direct_read():
    names = {"images": str(MNIST / "t10k-images-idx3-ubyte.gz"),
             "labels": str(MNIST / "t10k-labels-idx1-ubyte.gz")}
    info = fields("idx", Path("."), batch=100, **names)
    assert info["image"].shape == (784,)
    with gzip.open(names["labels"]) as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    with gzip.open(names["images"]) as f:
        first = np.frombuffer(f.read(16 + 784 * 50), np.uint8, offset=16).reshape(50, 784)
    reader = SOURCES["idx"].open(source_args("idx", batch=50, **names), Path("."), seed=0)
    assert reader.records == 10_000 == len(labels)
    got = reader.next_batch()
    np.testing.assert_array_equal(got["label"], labels[:50])
    assert list(got["label"][:5]) == [7, 2, 1, 0, 4]     # the well-known start of t10k
    np.testing.assert_array_equal(got["image"], first)
    ranged = SOURCES["idx"].open(source_args("idx", batch=10, range=[9990, 10000], **names),
                                 Path("."), seed=0)
    np.testing.assert_array_equal(ranged.next_batch()["label"], labels[9990:])


# ---- cifar ----

def cifar_bytes(labels: list[int], seed: int) -> tuple[bytes, np.ndarray]:
    images = np.random.default_rng(seed).integers(0, 256, (len(labels), 3072), dtype=np.uint8)
    rows = np.concatenate([np.array(labels, np.uint8)[:, None], images], axis=1)
    return rows.tobytes(), images


def test_cifar_reads_a_bin_file(tmp_path):
    data, images = cifar_bytes([3, 0, 9, 1], seed=1)
    (tmp_path / "test_batch.bin").write_bytes(data)
    info = fields("cifar", tmp_path, path="test_batch.bin", batch=2)
    assert info["image"].shape == (3, 32, 32) and info["label"].dtype == "int32"
    got = first_batch("cifar", tmp_path, path="test_batch.bin", batch=4)
    assert list(got["label"]) == [3, 0, 9, 1]
    np.testing.assert_array_equal(got["image"], images.reshape(4, 3, 32, 32))


def test_cifar_directory_reads_data_batches_in_numeric_order_without_the_test_batch(tmp_path):
    folder = tmp_path / "cifar"
    folder.mkdir()
    for number, label in ((10, 5), (2, 2), (1, 1)):       # 10 sorts after 2
        (folder / f"data_batch_{number}.bin").write_bytes(cifar_bytes([label] * 2, number)[0])
    (folder / "test_batch.bin").write_bytes(cifar_bytes([7] * 2, 99)[0])
    reader = SOURCES["cifar"].open(source_args("cifar", path="cifar", batch=6), tmp_path, seed=0)
    assert reader.records == 6
    assert list(reader.next_batch()["label"]) == [1, 1, 2, 2, 5, 5]


# ---- npz ----

def test_npz_reads_named_arrays_with_their_sample_shape(tmp_path):
    x = np.arange(5 * 2 * 3, dtype=np.float64).reshape(5, 2, 3)
    np.savez_compressed(tmp_path / "d.npz", a=x, b=np.array([4, 3, 2, 1, 0]))
    info = fields("npz", tmp_path, path="d.npz", x="a", y="b", batch=5)
    assert info["image"].shape == (2, 3) and info["label"].shape == ()
    got = first_batch("npz", tmp_path, path="d.npz", x="a", y="b", batch=5)
    np.testing.assert_array_equal(got["image"], x)
    assert list(got["label"]) == [4, 3, 2, 1, 0] and got["label"].dtype == np.int32


# ---- csv ----

def test_csv_skips_a_header_and_blank_lines_and_picks_the_label_column(tmp_path):
    (tmp_path / "t.csv").write_text("label,a,b\n1,0.5,2\n\n0,1.5,-3\n2,7,8\n")
    assert fields("csv", tmp_path, path="t.csv", batch=2)["image"].shape == (2,)
    got = first_batch("csv", tmp_path, path="t.csv", batch=3)
    assert list(got["label"]) == [1, 0, 2]
    np.testing.assert_array_equal(got["image"], [[0.5, 2], [1.5, -3], [7, 8]])
    last = first_batch("csv", tmp_path, path="t.csv", batch=3, label_column=-1)
    assert list(last["label"]) == [2, -3, 8]
    np.testing.assert_array_equal(last["image"], [[1, 0.5], [0, 1.5], [2, 7]])


# ---- text ----

def test_text_windows_vocab_and_consecutive_streams(tmp_path):
    corpus = "hello world, the quick brown fox jumps over the lazy dog. " * 3
    (tmp_path / "c.txt").write_text(corpus, encoding="utf-8")
    args = source_args("text", path="c.txt", seq=5, batch=3)
    vocab = text_vocabulary(args, tmp_path)
    assert vocab == tuple(sorted(set(corpus)))
    assert SOURCES["text"].constants(args, tmp_path) == {"vocab": len(vocab)}
    info = SOURCES["text"].fields(args, tmp_path)
    assert info["chars"].shape == (5,) and info["next"].dtype == "int32"
    reader = SOURCES["text"].open(args, tmp_path, seed=0)
    windows = (len(corpus) - 1) // 5
    per_row = windows // 3
    assert reader.records == per_row * 3 and reader.vocabulary == vocab
    batches = [reader.next_batch() for _ in range(per_row)]
    decode = lambda ids: "".join(vocab[i] for i in ids)     # noqa: E731
    for t, b in enumerate(batches):
        for row in range(3):
            start = (row * per_row + t) * 5        # row i walks stream i, window after window
            assert decode(b["chars"][row]) == corpus[start:start + 5]
            assert decode(b["next"][row]) == corpus[start + 1:start + 6]


def test_text_rejects_image_options(tmp_path):
    (tmp_path / "c.txt").write_text("abcdefghij" * 5)
    msg = data_error(lambda: fields("text", tmp_path, path="c.txt", seq=4, batch=2,
                                    normalize={"mean": 0, "std": 1}))
    assert "normalize" in msg and "image" in msg


# ---- synthetic ----

def test_synthetic_is_deterministic_and_learnable():
    args = source_args("synthetic", shape=[2, 4, 4], classes=4, size=600, batch=300)
    info = SOURCES["synthetic"].fields(args, Path("."))
    assert info["image"].shape == (2, 4, 4)
    a = SOURCES["synthetic"].open(args, Path("."), seed=7)
    b = SOURCES["synthetic"].open(args, Path("."), seed=7)
    c = SOURCES["synthetic"].open(args, Path("."), seed=8)
    train, again, other = a.next_batch(), b.next_batch(), c.next_batch()
    np.testing.assert_array_equal(train["image"], again["image"])
    assert not np.allclose(train["image"], other["image"])
    held_out = a.next_batch()
    assert set(np.unique(train["label"])) == {0, 1, 2, 3}
    flat = train["image"].reshape(300, -1)
    means = np.stack([flat[train["label"] == k].mean(0) for k in range(4)])
    test = held_out["image"].reshape(300, -1)
    guess = np.argmin(((test[:, None] - means[None]) ** 2).sum(-1), axis=1)
    assert np.mean(guess == held_out["label"]) > 0.9      # nearest class mean learns it


# ---- malformed and missing files: always SingaDataError, naming file and problem ----

def test_missing_file_is_named_with_where_it_was_looked_for(tmp_path):
    msg = data_error(lambda: fields("idx", tmp_path, images="nope.gz", labels="l.gz", batch=1))
    assert "'nope.gz'" in msg and "not found" in msg and str(tmp_path) in msg


@pytest.mark.parametrize("gz", [False, True])
def test_idx_bad_magic(tmp_path, gz):
    images, labels = small_mnist()
    names = write_idx(tmp_path, images, labels, gz)
    bad = b"\x89PNG" + bytes(100)
    (tmp_path / names["images"]).write_bytes(gzip.compress(bad) if gz else bad)
    msg = data_error(lambda: fields("idx", tmp_path, batch=1, **names))
    assert names["images"] in msg and "magic" in msg


@pytest.mark.parametrize("gz", [False, True])
def test_idx_truncated_file(tmp_path, gz):
    images, labels = small_mnist()
    names = write_idx(tmp_path, images, labels, gz)
    path = tmp_path / names["images"]
    path.write_bytes(path.read_bytes()[:-30])
    for call in (lambda: fields("idx", tmp_path, batch=1, **names),
                 lambda: first_batch("idx", tmp_path, batch=1, **names)):
        msg = data_error(call)
        assert names["images"] in msg and "truncated" in msg


def test_idx_count_mismatch_and_wrong_labels_file(tmp_path):
    images, labels = small_mnist()
    names = write_idx(tmp_path, images, labels[:11], gz=False)
    msg = data_error(lambda: fields("idx", tmp_path, batch=1, **names))
    assert "has 11 labels" in msg and "12 images" in msg and names["labels"] in msg
    swapped = {"images": names["images"], "labels": names["images"]}
    msg = data_error(lambda: fields("idx", tmp_path, batch=1, **swapped))
    assert "labels file holds one integer per record" in msg


def test_idx_garbage_after_gzip_magic(tmp_path):
    images, labels = small_mnist()
    names = write_idx(tmp_path, images, labels, gz=True)
    (tmp_path / names["labels"]).write_bytes(b"\x1f\x8b" + b"garbage" * 10)
    msg = data_error(lambda: fields("idx", tmp_path, batch=1, **names))
    assert names["labels"] in msg and "cannot be read" in msg


def test_cifar_size_and_label_errors(tmp_path):
    data, _ = cifar_bytes([1, 2], seed=0)
    (tmp_path / "short.bin").write_bytes(data[:-1])
    msg = data_error(lambda: fields("cifar", tmp_path, path="short.bin", batch=1))
    assert "short.bin" in msg and "not a multiple of 3073" in msg
    (tmp_path / "label.bin").write_bytes(bytes([1]) + data[1:3073] + bytes([200]) + data[3074:])
    msg = data_error(lambda: first_batch("cifar", tmp_path, path="label.bin", batch=1))
    assert "label.bin" in msg and "record 1 has label 200" in msg
    (tmp_path / "empty").mkdir()
    assert "data_batch_" in data_error(lambda: fields("cifar", tmp_path, path="empty", batch=1))


class _Canary:
    """Unpickling this creates a file: proof that a pickle was (or was not) loaded."""
    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_npz_with_pickled_objects_is_rejected_and_never_unpickled(tmp_path):
    canary = tmp_path / "canary"
    objects = np.empty(3, dtype=object)
    objects[:] = [_Canary(str(canary))] * 3
    np.savez(tmp_path / "evil.npz", x=objects, y=np.arange(3))
    for call in (lambda: fields("npz", tmp_path, path="evil.npz", batch=1),
                 lambda: first_batch("npz", tmp_path, path="evil.npz", batch=1)):
        msg = data_error(call)
        assert "evil.npz" in msg and "pickle" in msg
    np.savez(tmp_path / "evil_y.npz", x=np.zeros((3, 2)), y=objects)
    assert "pickle" in data_error(lambda: first_batch("npz", tmp_path, path="evil_y.npz", batch=1))
    assert not canary.exists()


def test_npz_missing_array_count_mismatch_and_garbage(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((4, 2)), y=np.arange(3))
    msg = data_error(lambda: fields("npz", tmp_path, path="d.npz", y="labels", batch=1))
    assert "no array 'labels'" in msg and "x, y" in msg
    msg = data_error(lambda: fields("npz", tmp_path, path="d.npz", batch=1))
    assert "'x' has 4 records but 'y' has 3" in msg
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 this is not a zip")
    assert "junk.npz" in data_error(lambda: fields("npz", tmp_path, path="junk.npz", batch=1))
    np.savez(tmp_path / "s.npz", x=np.array(["a", "b"]), y=np.arange(2))
    assert "dtype <U1" in data_error(lambda: fields("npz", tmp_path, path="s.npz", batch=1))


def test_csv_bad_rows_are_named_by_line(tmp_path):
    (tmp_path / "bad.csv").write_text("1,2,3\n4,5,6\n\n7,x,9\n")
    msg = data_error(lambda: first_batch("csv", tmp_path, path="bad.csv", batch=1))
    assert "bad.csv" in msg and "line 4, column 2: 'x' is not a number" in msg
    (tmp_path / "ragged.csv").write_text("1,2,3\n4,5\n")
    assert "line 2 has 2 columns, expected 3" in data_error(
        lambda: first_batch("csv", tmp_path, path="ragged.csv", batch=1))
    (tmp_path / "frac.csv").write_text("1,2\n0.5,3\n")
    assert "line 2: label 0.5" in data_error(
        lambda: first_batch("csv", tmp_path, path="frac.csv", batch=1))
    (tmp_path / "empty.csv").write_text("\n\n")
    assert "no data rows" in data_error(lambda: fields("csv", tmp_path, path="empty.csv", batch=1))


def test_text_not_utf8_or_too_short(tmp_path):
    (tmp_path / "bin.txt").write_bytes(b"abc\ndef\xff\xfe")
    msg = data_error(lambda: fields("text", tmp_path, path="bin.txt", batch=1))
    assert "bin.txt" in msg and "not utf-8" in msg and "line 2" in msg
    (tmp_path / "short.txt").write_text("abc")
    assert "needs at least 51" in data_error(
        lambda: fields("text", tmp_path, path="short.txt", batch=1))


def test_npz_loader_itself_refuses_pickles(tmp_path):
    # the header check catches object arrays first; this pins the second line of defence
    from singa_dsl.runtime.data import npz
    from singa_dsl.runtime.data.files import DataFile
    canary = tmp_path / "canary"
    objects = np.empty(2, dtype=object)
    objects[:] = [_Canary(str(canary))] * 2
    np.savez(tmp_path / "evil.npz", x=objects)
    msg = data_error(lambda: npz._load_array(DataFile("evil.npz", tmp_path / "evil.npz"), "x"))
    assert "evil.npz" in msg and "allow_pickle" in msg
    assert not canary.exists()


def test_a_file_vanishing_mid_read_is_still_a_data_error(tmp_path, monkeypatch):
    from singa_dsl.runtime.data import cifar
    from singa_dsl.runtime.data.files import DataFile
    gone = DataFile("gone.bin", tmp_path / "gone.bin")
    monkeypatch.setattr(cifar, "_files", lambda args, base_dir: [gone])
    msg = data_error(lambda: fields("cifar", tmp_path, path="x", batch=1))
    assert msg.startswith("cifar: cannot read data file") and "gone.bin" in msg
