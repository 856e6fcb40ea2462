"""Checkpoints that survive a crash: one folder per step, written under a temporary name,
every file's SHA-256 in a manifest written last, then an atomic rename.  A damaged or partial
checkpoint is detected on load and the next older intact one is used.

Layout: WORKSPACE/checkpoints/step-00000500/{params.npz, state.npz, meta.json, MANIFEST.json}.
Arrays are stored with numpy's npz (no pickle, and loaded with allow_pickle=False);
meta.json holds the step, RNG and data-reader states as plain JSON.
"""
from __future__ import annotations

import hashlib
import json
import os
import pathlib
import shutil
import tempfile

import numpy as np

from singa_dsl.errors import SingaError

FILES = ("params.npz", "state.npz", "meta.json")
KEEP = 3     # checkpoints kept; older ones are removed once a newer one is complete


class CheckpointError(SingaError):
    exit_code = 3


def _sha256(path: pathlib.Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save(workspace: str | pathlib.Path, step: int, params: dict[str, np.ndarray],
         state: dict[str, np.ndarray], meta: dict) -> pathlib.Path:
    root = pathlib.Path(workspace) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:08d}"
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".tmp-step-{step:08d}-", dir=root))
    try:
        np.savez(tmp / "params.npz", **params)
        np.savez(tmp / "state.npz", **state)
        (tmp / "meta.json").write_text(json.dumps({**meta, "step": step}, sort_keys=True))
        manifest = {name: _sha256(tmp / name) for name in FILES}
        for name in FILES:
            _fsync(tmp / name)
        (tmp / "MANIFEST.json").write_text(json.dumps({"step": step, "sha256": manifest}))
        _fsync(tmp / "MANIFEST.json")
        if final.exists():
            shutil.rmtree(final)
        os.rename(tmp, final)          # atomic on one file system
        _fsync_dir(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for old in sorted(root.glob("step-*"))[:-KEEP]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _fsync(path: pathlib.Path):
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def _fsync_dir(path: pathlib.Path):
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def verify(folder: pathlib.Path) -> str | None:
    """None if the checkpoint is intact, else what is wrong with it."""
    manifest_path = folder / "MANIFEST.json"
    try:
        manifest = json.loads(manifest_path.read_text())
        hashes = manifest["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return f"{manifest_path} is missing or unreadable"
    for name in FILES:
        if not isinstance(hashes, dict) or name not in hashes:
            return f"{manifest_path} does not list {name}"
        path = folder / name
        if not path.exists():
            return f"{path} is missing"
        if _sha256(path) != hashes[name]:
            return f"{path} is damaged (its SHA-256 does not match the manifest)"
    return None


def latest(workspace: str | pathlib.Path, warn=None) -> pathlib.Path | None:
    """The newest intact checkpoint; damaged ones are reported through ``warn`` and skipped."""
    root = pathlib.Path(workspace) / "checkpoints"
    for folder in sorted(root.glob("step-*"), reverse=True):
        problem = verify(folder)
        if problem is None:
            return folder
        if warn is not None:
            warn(f"skipping checkpoint {folder.name}: {problem}")
    return None


def load(folder: pathlib.Path) -> tuple[dict, dict, dict]:
    problem = verify(folder)
    if problem:
        raise CheckpointError(f"checkpoint {folder} cannot be used: {problem}")
    try:
        with np.load(folder / "params.npz", allow_pickle=False) as z:
            params = {k: z[k] for k in z.files}
        with np.load(folder / "state.npz", allow_pickle=False) as z:
            state = {k: z[k] for k in z.files}
        meta = json.loads((folder / "meta.json").read_text())
    except (OSError, ValueError) as e:
        raise CheckpointError(f"checkpoint {folder} cannot be read: {e}") from None
    return params, state, meta
