"""Checkpoint fault injection: the writer SIGKILLed at 50 points of a checkpoint write, and
1,000 seeded byte flips in saved checkpoints.  Every load gives back exactly what was saved
or raises a CheckpointError naming the damaged file; ``latest`` always finds an intact one.

The writer is a real child process running ``checkpoint.save``; it kills itself with SIGKILL
at its N-th fault point (``checkpoint._fault_point`` is called after every 256-byte piece of
a file, every fsync'd file and every rename), so the 50 crash points are deterministic.
"""
from __future__ import annotations

import os
import pathlib
import shutil
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from singa_dsl.runtime import checkpoint
from singa_dsl.runtime.checkpoint import CheckpointError

ROOT = pathlib.Path(__file__).resolve().parents[2]

# What a checkpoint of a small MLP holds (params, momentum history, reader and display
# state), different for every step; exec'd here and in the child so both build the same.
PAYLOAD = textwrap.dedent("""
    import numpy as np
    def payload(step):
        rng = np.random.default_rng(step)
        shapes = {"fc1.w": (23, 64), "fc1.b": (23,), "fc2.w": (10, 23), "fc2.b": (10,)}
        params = {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}
        state = {f"{k}/history": rng.standard_normal(s).astype(np.float32)
                 for k, s in shapes.items()}
        meta = {"readers": {"train": {"epoch": step // 7, "position": step % 7 * 16,
                                      "seed": 3, "records": 1257, "shard": 0,
                                      "num_shards": 1}},
                "display": {"loss": float(rng.random()), "hits": 0.5, "count": 3,
                            "samples": 48}, "job": "tiny"}
        return params, state, meta
""")
_ns: dict = {}
exec(PAYLOAD, _ns)
payload = _ns["payload"]

CHILD = PAYLOAD + textwrap.dedent("""
    import os, signal, sys
    from singa_dsl.runtime import checkpoint
    ws, step, kill_at = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    checkpoint.PIECE = 256
    points = 0
    def fault_point():
        global points
        points += 1
        if points == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
    checkpoint._fault_point = fault_point
    checkpoint.save(ws, step, *payload(step))
    print(points)
""")


def _write_in_child(ws: pathlib.Path, step: int, kill_at: int) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", CHILD, str(ws), str(step), str(kill_at)],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)


def _same(loaded, step) -> bool:
    """Bit for bit what payload(step) saved (meta gains the step)."""
    params, state, meta = loaded
    want_p, want_s, want_m = payload(step)
    return (_same_arrays(params, want_p) and _same_arrays(state, want_s)
            and meta == {**want_m, "step": step})


def _same_arrays(got: dict, want: dict) -> bool:
    return got.keys() == want.keys() and all(
        got[k].dtype == want[k].dtype and got[k].shape == want[k].shape
        and got[k].tobytes() == want[k].tobytes() for k in want)


def _steps(ws: pathlib.Path) -> list[str]:
    return sorted(p.name for p in (ws / "checkpoints").iterdir())


@pytest.fixture(scope="module")
def three_checkpoints(tmp_path_factory) -> pathlib.Path:
    ws = tmp_path_factory.mktemp("template")
    for step in (10, 20, 30):
        checkpoint.save(ws, step, *payload(step))
    return ws


def test_a_writer_killed_at_50_points_never_leaves_a_corrupt_checkpoint(tmp_path,
                                                                       three_checkpoints):
    shutil.copytree(three_checkpoints, tmp_path / "count")
    full = _write_in_child(tmp_path / "count", 40, kill_at=0)      # 0: never killed
    assert full.returncode == 0, full.stderr
    total = int(full.stdout)
    assert total >= 50, f"only {total} fault points"
    # 44 points spread over the whole write, and the last 6 (manifest done, the renames,
    # the removal of the oldest checkpoint) where the order of operations matters most
    offsets = sorted({round(1 + i * (total - 7) / 43) for i in range(44)}
                     | set(range(total - 5, total + 1)))
    assert len(offsets) == 50
    outcomes = {"old": 0, "new": 0}
    corrupt = 0
    for kill_at in offsets:
        ws = tmp_path / f"kill-{kill_at}"
        shutil.copytree(three_checkpoints, ws)
        child = _write_in_child(ws, 40, kill_at)
        assert child.returncode == -signal.SIGKILL, (kill_at, child.returncode, child.stderr)
        # whatever a reader can see is complete: every step-* folder verifies
        for name in _steps(ws):
            if name.startswith("step-"):
                assert checkpoint.verify(ws / "checkpoints" / name) is None, (kill_at, name)
        found = checkpoint.latest(ws)
        assert found is not None and found.name in ("step-00000030", "step-00000040"), kill_at
        step = int(found.name[5:])
        outcomes["new" if step == 40 else "old"] += 1
        corrupt += not _same(checkpoint.load(found), step)
        # the workspace stays usable: the next save clears the leftovers and keeps three
        checkpoint.save(ws, 50, *payload(50))
        assert [n for n in _steps(ws)] == ["step-00000030", "step-00000040", "step-00000050"] \
            if step == 40 else ["step-00000020", "step-00000030", "step-00000050"], \
            (kill_at, _steps(ws))
        assert _same(checkpoint.load(checkpoint.latest(ws)), 50)
    print(f"\n{len(offsets)} kill offsets over {total} fault points: {corrupt} corrupt loads; "
          f"latest() found the previous checkpoint {outcomes['old']} times, "
          f"the new one {outcomes['new']} times")
    assert corrupt == 0
    assert outcomes["old"] and outcomes["new"]      # crashes before and after the rename


FLIPS = 1000


def test_1000_byte_flips_are_detected_or_harmless(tmp_path, three_checkpoints):
    ws = tmp_path / "ws"
    shutil.copytree(three_checkpoints, ws)
    victim = ws / "checkpoints" / "step-00000030"
    names = list(checkpoint.FILES) + ["MANIFEST.json"]
    originals = {n: (victim / n).read_bytes() for n in names}
    rng = np.random.default_rng(8)
    counts = {"detected": 0, "harmless": 0, "corrupt": 0}
    for trial in range(FLIPS):
        name = names[rng.integers(len(names))]
        data = bytearray(originals[name])
        for _ in range(rng.integers(1, 4)):
            data[rng.integers(len(data))] ^= int(rng.integers(1, 256))
        (victim / name).write_bytes(bytes(data))
        try:
            loaded = checkpoint.load(victim)
        except CheckpointError as e:
            assert str(victim / name) in str(e), (trial, name, str(e))
            counts["detected"] += 1
            expect_latest = 20
        else:
            ok = _same(loaded, 30)
            counts["harmless" if ok else "corrupt"] += 1
            expect_latest = 30
        found = checkpoint.latest(ws)
        assert found == ws / "checkpoints" / f"step-{expect_latest:08d}", (trial, name, found)
        assert _same(checkpoint.load(found), expect_latest)
        (victim / name).write_bytes(originals[name])
    print(f"\n{FLIPS} flips: {counts['detected']} detected, {counts['harmless']} harmless "
          f"(the data read back unchanged), {counts['corrupt']} corrupt loads")
    assert counts["corrupt"] == 0
    assert counts["detected"] >= FLIPS * 0.9


def test_a_checkpoint_written_again_replaces_the_old_one_only_when_complete(tmp_path,
                                                                           three_checkpoints):
    """A resumed run that fell back past a damaged step-30 writes step 30 again."""
    ws = tmp_path / "ws"
    shutil.copytree(three_checkpoints, ws)
    (ws / "checkpoints" / "step-00000030" / "params.npz").write_bytes(b"damaged")
    warnings = []
    assert checkpoint.latest(ws, warn=warnings.append).name == "step-00000020"
    assert "step-00000030" in warnings[0] and "params.npz is damaged" in warnings[0]
    checkpoint.save(ws, 30, *payload(30))
    assert _same(checkpoint.load(checkpoint.latest(ws)), 30)
    assert _steps(ws) == ["step-00000010", "step-00000020", "step-00000030"]


def test_newer_leftover_folders_never_push_out_the_checkpoint_just_written(tmp_path):
    ws = tmp_path / "ws"
    for step in (50, 60, 70):
        checkpoint.save(ws, step, *payload(step))
        (ws / "checkpoints" / f"step-{step:08d}" / "MANIFEST.json").unlink()   # unfinished
    checkpoint.save(ws, 40, *payload(40))
    assert checkpoint.latest(ws).name == "step-00000040"


def test_steps_order_by_number_beyond_eight_digits(tmp_path):
    ws = tmp_path / "ws"
    checkpoint.save(ws, 99_999_999, *payload(1))
    checkpoint.save(ws, 100_000_000, *payload(2))
    assert checkpoint.latest(ws).name == "step-100000000"


def test_a_missing_or_foreign_manifest_is_named(tmp_path, three_checkpoints):
    folder = three_checkpoints / "checkpoints" / "step-00000030"
    copy = tmp_path / "step-00000030"
    shutil.copytree(folder, copy)
    (copy / "MANIFEST.json").write_text("[1, 2]")
    with pytest.raises(CheckpointError, match="MANIFEST.json is damaged"):
        checkpoint.load(copy)
    (copy / "MANIFEST.json").unlink()
    with pytest.raises(CheckpointError, match="MANIFEST.json is missing"):
        checkpoint.load(copy)
