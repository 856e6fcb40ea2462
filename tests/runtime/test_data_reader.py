"""BatchReader behaviour: epochs and wrap-around, shuffle determinism, shard disjointness,
state/restore, prefetch, and the common options normalize, shape and range."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from singa_dsl.errors import SingaDataError
from singa_dsl.runtime.data import SOURCES, source_args

N = 23        # records in the test file: prime, so batches and shards never divide evenly


@pytest.fixture
def ids(tmp_path) -> Path:
    """An npz whose image is the record's own number (so a batch shows which records it holds)."""
    x = np.arange(N, dtype=np.float32).reshape(N, 1)
    np.savez(tmp_path / "ids.npz", x=x, y=np.arange(N) % 5)
    return tmp_path


def open_ids(base: Path, seed: int = 0, shard: int = 0, num_shards: int = 1,
             prefetch: bool = False, **attrs):
    attrs.setdefault("batch", 5)
    return SOURCES["npz"].open(source_args("npz", path="ids.npz", **attrs), base, seed=seed,
                               shard=shard, num_shards=num_shards, prefetch=prefetch)


def record_ids(reader, batches: int) -> list[list[int]]:
    return [reader.next_batch()["image"][:, 0].astype(int).tolist() for _ in range(batches)]


def test_unshuffled_stream_wraps_around_epochs_with_full_batches(ids):
    got = record_ids(open_ids(ids, batch=5), 6)
    flat = [r for b in got for r in b]
    assert all(len(b) == 5 for b in got)
    assert flat == (list(range(N)) * 2)[:30]          # epoch 2 starts inside batch 5


def test_shuffle_is_a_fresh_permutation_each_epoch_and_deterministic(ids):
    a = sum(record_ids(open_ids(ids, seed=3, shuffle=True, batch=N), 3), [])
    b = sum(record_ids(open_ids(ids, seed=3, shuffle=True, batch=N), 3), [])
    c = sum(record_ids(open_ids(ids, seed=4, shuffle=True, batch=N), 3), [])
    epochs = [a[i * N:(i + 1) * N] for i in range(3)]
    assert a == b and a != c
    assert all(sorted(e) == list(range(N)) for e in epochs)
    assert epochs[0] != list(range(N)) and epochs[0] != epochs[1] != epochs[2]


@pytest.mark.parametrize("shuffle", [False, True])
def test_shards_are_disjoint_and_cover_the_data(ids, shuffle):
    seen = []
    for shard in range(3):
        reader = open_ids(ids, seed=1, shard=shard, num_shards=3, shuffle=shuffle, batch=2)
        epoch = sum(record_ids(reader, reader.records), [])[:reader.records]
        seen.append(set(epoch))
        assert len(epoch) == reader.records == len(set(epoch))
    assert seen[0].isdisjoint(seen[1]) and seen[1].isdisjoint(seen[2])
    assert seen[0].isdisjoint(seen[2]) and set.union(*seen) == set(range(N))


def test_text_shards_are_contiguous_runs_of_the_corpus(tmp_path):
    rng = np.random.default_rng(0)
    corpus = "".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz"), 401))
    (tmp_path / "c.txt").write_text(corpus)
    args = source_args("text", path="c.txt", seq=8, batch=2)
    vocab = sorted(set(corpus))
    # 50 windows: shard 0 holds windows 0..24 (2 streams of 12: rows start at 0 and 12),
    # shard 1 holds windows 25..49 (rows start at 25 and 37)
    for shard, rows in ((0, [0, 12]), (1, [25, 37])):
        reader = SOURCES["text"].open(args, tmp_path, seed=0, shard=shard, num_shards=2)
        assert reader.records == 24
        for t in range(2):
            chars = reader.next_batch()["chars"]
            got = ["".join(vocab[i] for i in row) for row in chars]
            assert got == [corpus[(w + t) * 8:(w + t + 1) * 8] for w in rows]


@pytest.mark.parametrize("prefetch", [False, True])
def test_restored_reader_continues_exactly(ids, prefetch):
    original = open_ids(ids, seed=9, shuffle=True, batch=4, prefetch=prefetch)
    record_ids(original, 7)                           # into the second epoch
    state = json.loads(json.dumps(original.state()))  # plain JSON values
    assert set(state) >= {"epoch", "position", "seed"} and state["epoch"] == 1
    expected = record_ids(original, 12)
    resumed = open_ids(ids, seed=123, shuffle=True, batch=4, prefetch=not prefetch)
    resumed.restore(state)
    assert record_ids(resumed, 12) == expected
    original.close(), resumed.close()


def test_restore_while_a_batch_is_prefetched_drops_the_stale_batch(ids):
    reader = open_ids(ids, seed=2, shuffle=True, prefetch=True)
    start = reader.state()
    first = record_ids(reader, 3)
    reader.restore(start)
    assert record_ids(reader, 3) == first
    reader.close()


def test_prefetch_gives_the_same_batches(ids):
    plain = record_ids(open_ids(ids, seed=5, shuffle=True, batch=6), 10)
    with open_ids(ids, seed=5, shuffle=True, batch=6, prefetch=True) as reader:
        assert record_ids(reader, 10) == plain


def test_restore_rejects_state_from_other_data(ids):
    state = open_ids(ids, range=[0, 20]).state()
    msg = pytest.raises(SingaDataError, open_ids(ids).restore, state).value.message
    assert "records 20" in msg and "23" in msg
    with pytest.raises(SingaDataError, match="lacks integer position"):
        open_ids(ids).restore({"epoch": 0})


def test_normalize_shape_and_range(tmp_path):
    x = np.arange(10 * 6, dtype=np.float32).reshape(10, 6)
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(10))
    args = source_args("npz", path="d.npz", batch=3, range=[4, 9], shape=[2, 3],
                       normalize={"mean": 10, "std": 4})
    assert SOURCES["npz"].fields(args, tmp_path)["image"].shape == (2, 3)
    reader = SOURCES["npz"].open(args, tmp_path, seed=0)
    assert reader.records == 5
    got = reader.next_batch()
    np.testing.assert_allclose(got["image"], ((x[4:7] - 10) / 4).reshape(3, 2, 3))
    assert got["label"].tolist() == [4, 5, 6]
    assert reader.next_batch()["label"].tolist() == [7, 8, 4]     # wraps inside the range


@pytest.mark.parametrize("attrs, words", [
    ({"shape": [4, 2]}, ["shape [4, 2] holds 8 values", "6"]),
    ({"range": [5, 11]}, ["range [5, 11] is out of bounds", "10 records"]),
    ({"range": [3, 3]}, ["out of bounds"]),
    ({"range": [2]}, ["range needs two numbers"]),
    ({"normalize": {"mean": 0, "std": 0}}, ["std must be > 0"]),
    ({"normalize": {"mean": 0}}, ["normalize needs exactly (mean: M, std: S)"]),
])
def test_bad_common_options_fail_at_check_time(tmp_path, attrs, words):
    np.savez(tmp_path / "d.npz", x=np.zeros((10, 6)), y=np.arange(10))
    args = source_args("npz", path="d.npz", batch=3, **attrs)
    msg = pytest.raises(SingaDataError, SOURCES["npz"].fields, args, tmp_path).value.message
    assert all(w in msg for w in words), msg


def test_csv_range_is_checked_when_opened(tmp_path):
    (tmp_path / "t.csv").write_text("0,1\n1,2\n")
    args = source_args("csv", path="t.csv", batch=1, range=[0, 3])
    SOURCES["csv"].fields(args, tmp_path)                 # counting rows would read it all
    with pytest.raises(SingaDataError, match="out of bounds: the data has 2 records"):
        SOURCES["csv"].open(args, tmp_path, seed=0)


def test_fewer_records_than_batch_is_an_error(ids):
    with pytest.raises(SingaDataError, match="shard 1 of 5 has 5 records, fewer than batch 6"):
        open_ids(ids, shard=1, num_shards=5, batch=6)


def test_synthetic_range_splits_one_set_into_disjoint_parts():
    base = dict(shape=[8], classes=3, size=100)
    whole = SOURCES["synthetic"].open(source_args("synthetic", batch=100, **base), Path("."),
                                      seed=1).next_batch()
    tail = SOURCES["synthetic"].open(source_args("synthetic", batch=20, range=[80, 100], **base),
                                     Path("."), seed=1).next_batch()
    np.testing.assert_array_equal(tail["image"], whole["image"][80:])
    np.testing.assert_array_equal(tail["label"], whole["label"][80:])


def test_csv_range_form_is_checked_at_check_time(tmp_path):
    (tmp_path / "t.csv").write_text("0,1\n1,2\n")
    args = source_args("csv", path="t.csv", batch=1, range=[3, 1])
    with pytest.raises(SingaDataError, match=r"range \[3, 1\] is empty or negative"):
        SOURCES["csv"].fields(args, tmp_path)
