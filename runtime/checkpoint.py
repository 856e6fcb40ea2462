"""Checkpoints that survive a crash: one folder per step, written under a temporary name,
every file's SHA-256 in a manifest written last, then an atomic rename.  A damaged or partial
checkpoint is detected on load and the next older intact one is used.

Layout: WORKSPACE/checkpoints/step-00000500/{params.npz, state.npz, meta.json, MANIFEST.json}.
Arrays are stored with numpy's npz (no pickle, and loaded with allow_pickle=False);
meta.json holds the step, RNG and data-reader states as plain JSON.  The manifest carries a
SHA-256 of its own content too, so a damaged manifest is named as such.

What a crash at any point of ``save`` leaves (tests/runtime/test_checkpoint_faults.py kills the
writer at 50 points): a ``.tmp-*`` folder that ``latest`` never looks at and the next ``save``
removes, or the complete new checkpoint; the older checkpoints are removed only after the new
one is in place.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import pathlib
import re
import shutil
import tempfile

import numpy as np

from singa_dsl.errors import SingaError

FILES = ("params.npz", "state.npz", "meta.json")
KEEP = 3     # checkpoints kept; older ones are removed once a newer one is complete
PIECE = 1 << 20          # bytes per write call (tests make it small to crash mid-file)
_STEP_DIR = re.compile(r"step-(\d+)")


class CheckpointError(SingaError):
    exit_code = 3


def _fault_point() -> None:
    """Called after every write, fsync and rename of ``save``; a no-op.  The fault-injection
    test replaces it in a forked child with one that SIGKILLs the process at the N-th call."""


def _sha256(path: pathlib.Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class _PieceFile(io.FileIO):
    """A file whose writes go out in PIECE-byte pieces, each followed by a fault point."""

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        done = 0
        while done < len(view):
            done += super().write(view[done:done + PIECE])
            _fault_point()
        return done


def _write_npz(path: pathlib.Path, arrays: dict[str, np.ndarray]) -> None:
    with _PieceFile(path, "w") as fh:
        np.savez(fh, **arrays)
        os.fsync(fh.fileno())
    _fault_point()


def _write_text(path: pathlib.Path, text: str) -> None:
    with _PieceFile(path, "w") as fh:
        fh.write(text.encode())
        os.fsync(fh.fileno())
    _fault_point()


def _manifest_digest(step: int, hashes: dict) -> str:
    body = json.dumps({"step": step, "sha256": hashes}, sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()


def inside_workspace(workspace: str | pathlib.Path, name: str) -> pathlib.Path:
    """WORKSPACE/name, refused when a symbolic link there leads outside the workspace: a job
    writes (and removes old checkpoints) only inside its workspace."""
    ws = pathlib.Path(workspace)
    path = ws / name
    real_ws, target = ws.resolve(), path.resolve()
    if target != real_ws and real_ws not in target.parents:
        raise CheckpointError(f"{path} is a link to {target}, outside the workspace {ws}: a "
                              "job writes only inside its workspace",
                              hint="remove the link, or choose another workspace")
    return path


def save(workspace: str | pathlib.Path, step: int, params: dict[str, np.ndarray],
         state: dict[str, np.ndarray], meta: dict) -> pathlib.Path:
    root = inside_workspace(workspace, "checkpoints")
    root.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(root)
    final = root / f"step-{step:08d}"
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".tmp-step-{step:08d}-", dir=root))
    try:
        _write_npz(tmp / "params.npz", params)
        _write_npz(tmp / "state.npz", state)
        _write_text(tmp / "meta.json", json.dumps({**meta, "step": step}, sort_keys=True))
        hashes = {name: _sha256(tmp / name) for name in FILES}
        _write_text(tmp / "MANIFEST.json", json.dumps(
            {"step": step, "sha256": hashes, "manifest": _manifest_digest(step, hashes)}))
        _fsync_dir(tmp)
        _fault_point()
        aside = None
        if final.exists():             # the same step written again (e.g. after a fallback)
            aside = root / f".old-{final.name}-{os.getpid()}"
            os.rename(final, aside)
            _fault_point()
        os.rename(tmp, final)          # atomic on one file system
        _fsync_dir(root)
        _fault_point()
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _remove_old(root, step)
    return final


def _remove_leftovers(root: pathlib.Path) -> None:
    """Temporary folders of a writer that crashed (one writer per workspace: rank 0)."""
    for p in root.glob(".tmp-step-*"):
        shutil.rmtree(p, ignore_errors=True)
    for p in root.glob(".old-step-*"):
        shutil.rmtree(p, ignore_errors=True)


def _remove_old(root: pathlib.Path, step: int) -> None:
    """Keep the new checkpoint and the KEEP-1 newest older ones.  Newer folders (left by a
    run that was resumed from an earlier step) are not counted: they must never push the
    checkpoint just written out."""
    older = [f for s, f in _step_folders(root) if s < step]
    for old in older[KEEP - 1:]:
        aside = root / f".old-{old.name}-{os.getpid()}"   # gone at once, removed at leisure
        os.rename(old, aside)
        _fault_point()
        shutil.rmtree(aside, ignore_errors=True)
        _fault_point()


def _step_folders(root: pathlib.Path) -> list[tuple[int, pathlib.Path]]:
    """(step, folder) of every checkpoint folder, newest first (by number, not by name)."""
    out = []
    if not root.is_dir():
        return out
    for p in root.iterdir():
        m = _STEP_DIR.fullmatch(p.name)
        if m and p.is_dir() and not p.is_symlink():
            out.append((int(m.group(1)), p))
    return sorted(out, reverse=True)


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
    """None if the checkpoint is intact, else what is wrong with it (naming the file)."""
    folder = pathlib.Path(folder)
    manifest_path = folder / "MANIFEST.json"
    try:
        manifest = json.loads(manifest_path.read_bytes())
    except FileNotFoundError:
        return f"{manifest_path} is missing (the checkpoint was not finished)"
    except (OSError, ValueError) as e:
        return f"{manifest_path} is unreadable ({type(e).__name__})"
    hashes = manifest.get("sha256") if isinstance(manifest, dict) else None
    if not isinstance(hashes, dict):
        return f"{manifest_path} is damaged (it has no sha256 table)"
    # a manifest without its own digest was written by an earlier version: files still checked
    if "manifest" in manifest and \
            manifest["manifest"] != _manifest_digest(manifest.get("step"), hashes):
        return f"{manifest_path} is damaged (its own SHA-256 does not match)"
    for name in FILES:
        if not isinstance(hashes.get(name), str):
            return f"{manifest_path} does not list {name}"
        path = folder / name
        try:
            digest = _sha256(path)
        except FileNotFoundError:
            return f"{path} is missing"
        except OSError as e:
            return f"{path} cannot be read ({e.strerror or e})"
        if digest != hashes[name]:
            return f"{path} is damaged (its SHA-256 does not match the manifest)"
    return None


def latest(workspace: str | pathlib.Path, warn=None) -> pathlib.Path | None:
    """The newest intact checkpoint; damaged ones are reported through ``warn`` and skipped."""
    for _, folder in _step_folders(pathlib.Path(workspace) / "checkpoints"):
        problem = verify(folder)
        if problem is None:
            return folder
        if warn is not None:
            warn(f"skipping checkpoint {folder.name}: {problem}")
    return None


def load(folder: pathlib.Path) -> tuple[dict, dict, dict]:
    folder = pathlib.Path(folder)
    problem = verify(folder)
    if problem:
        raise CheckpointError(f"checkpoint {folder} cannot be used: {problem}",
                              hint="resume falls back to the newest intact checkpoint")
    try:
        with np.load(folder / "params.npz", allow_pickle=False) as z:
            params = {k: z[k] for k in z.files}
        with np.load(folder / "state.npz", allow_pickle=False) as z:
            state = {k: z[k] for k in z.files}
        meta = json.loads((folder / "meta.json").read_text())
    except (OSError, ValueError) as e:
        raise CheckpointError(f"checkpoint {folder} cannot be read: {e}") from None
    return params, state, meta


def load_init_from(workspaces, warn=None) -> dict[str, np.ndarray]:
    """The params of every ``init_from`` workspace's newest intact checkpoint, by store name
    (later workspaces win)."""
    from singa_dsl.errors import SingaConfigError
    out = {}
    for ws in workspaces:
        folder = latest(ws, warn=warn)
        if folder is None:
            raise SingaConfigError(f"init_from workspace '{ws}' has no checkpoint",
                                   hint="run the job that writes it first")
        out.update(load(folder)[0])
    return out
