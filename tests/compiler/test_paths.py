"""Path confinement.  The rule (docs: the reply of issue 8, and check_blocks._check_workspace):

* reads are the user's choice: a data path is absolute or relative to the program's folder,
  and may climb out of it with '..' (samples/mnist_real.singa reads ../../shared/data/mnist);
  init_from names workspaces to read from, anywhere;
* writes are confined: a job writes only inside its workspace.  The program's workspace is
  absolute or under the current folder — '..' may not climb out of it (--workspace on the
  command line may name any folder: the user typed it);
* inside the workspace the runtime composes every name itself (checkpoints/step-N/...,
  metrics.jsonl) and refuses a symbolic link there that leads outside the workspace; a
  linked step-* folder is never read, counted or removed.
"""
from __future__ import annotations

import os
import pathlib

import numpy as np
import pytest

import singa_dsl
from singa_dsl import cli
from singa_dsl.errors import SingaError
from singa_dsl.runtime import checkpoint

PROGRAM = """job paths {{ steps: 2  workspace: "{ws}" }}
data d {{ train: npz("{data}", batch: 4) }}
net n {{
  x    = input(d.image)
  fc   = dense(x, 3)
  loss = softmax_loss(fc, d.label)
}}
algorithm bp
updater sgd {{ lr: 0.1 }}
"""


def _data(path: pathlib.Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, x=np.ones((8, 5), np.float32), y=np.arange(8, dtype=np.int32) % 3)


def _parse(tmp_path, ws="runs/paths", data="data.npz", folder="prog"):
    (tmp_path / folder).mkdir(parents=True, exist_ok=True)
    _data(tmp_path / "prog" / "data.npz")
    path = tmp_path / folder / "p.singa"
    path.write_text(PROGRAM.format(ws=ws, data=data))
    return singa_dsl.parse(path.read_text(), str(path))


@pytest.mark.parametrize("ws", ["../elsewhere", "runs/../../x", "..", "./../x"])
def test_a_workspace_that_climbs_out_of_the_current_folder_is_a_located_error(tmp_path, ws):
    with pytest.raises(SingaError) as info:
        _parse(tmp_path, ws=ws)
    e = info.value
    assert e.exit_code == 2
    assert e.span.line == 1 and e.span.column == 23      # the workspace entry
    assert f'workspace "{ws}" leaves the current folder (through \'..\')' in e.message
    assert "absolute path, or --workspace" in e.hint


@pytest.mark.parametrize("ws", ["runs/paths", "runs/../x", "ws", "/tmp/singa-ws", "~/runs"])
def test_a_workspace_under_the_current_folder_or_absolute_is_fine(tmp_path, ws):
    assert _parse(tmp_path, ws=ws).job.workspace == ws


def test_an_empty_workspace_is_refused(tmp_path):
    with pytest.raises(SingaError, match="workspace '' is not a folder name"):
        _parse(tmp_path, ws="")


def test_a_data_path_may_climb_out_of_the_program_folder(tmp_path):
    """The user wrote the '..': reading ../data.npz from prog/sub/ is their choice."""
    program = _parse(tmp_path, data="../data.npz", folder="prog/sub")
    assert program.data["d"].phases["train"].fields["image"][0] == (5,)


def test_the_mnist_real_sample_keeps_its_shared_data_path():
    text = (pathlib.Path(__file__).resolve().parents[2] / "samples" / "mnist_real.singa") \
        .read_text()
    assert "../../shared/data/mnist" in text or "../shared/data/mnist" in text


def test_the_command_line_workspace_may_be_anywhere(tmp_path, capsys, monkeypatch):
    program = tmp_path / "prog" / "p.singa"
    _parse(tmp_path)
    monkeypatch.chdir(tmp_path / "prog")
    assert cli.main(["run", str(program), "--quiet", "--workspace", "../chosen"]) == 0, \
        capsys.readouterr().err
    assert (tmp_path / "chosen" / "checkpoints" / "step-00000002").is_dir()


@pytest.mark.parametrize("name", ["checkpoints", "metrics.jsonl"])
def test_a_link_out_of_the_workspace_is_refused_before_anything_is_written(tmp_path, capsys,
                                                                          name):
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "precious"
    victim.write_text("keep me")
    ws = tmp_path / "ws"
    ws.mkdir()
    os.symlink(outside if name == "checkpoints" else victim, ws / name)
    _parse(tmp_path, ws=str(ws))
    code = cli.main(["run", str(tmp_path / "prog" / "p.singa"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 3, err
    assert f"{ws / name} is a link to" in err and "outside the workspace" in err
    assert "Traceback" not in err
    assert victim.read_text() == "keep me" and sorted(p.name for p in outside.iterdir()) == \
        ["precious"]


def test_a_linked_step_folder_is_never_read_counted_or_removed(tmp_path):
    outside = tmp_path / "outside"
    good = {"w": np.ones(3, np.float32)}
    real = checkpoint.save(outside, 99, good, {}, {})
    ws = tmp_path / "ws"
    (ws / "checkpoints").mkdir(parents=True)
    os.symlink(real, ws / "checkpoints" / "step-00000001")
    for step in (10, 20, 30, 40):
        checkpoint.save(ws, step, good, {}, {"n": step})
    assert checkpoint.latest(ws).name == "step-00000040"
    assert (ws / "checkpoints" / "step-00000001").is_symlink()
    assert checkpoint.verify(real) is None                     # untouched


def test_a_link_inside_the_workspace_is_fine(tmp_path):
    ws = tmp_path / "ws"
    (ws / "store").mkdir(parents=True)
    os.symlink(ws / "store", ws / "checkpoints")
    checkpoint.save(ws, 1, {"w": np.zeros(2, np.float32)}, {}, {})
    assert (ws / "store" / "step-00000001" / "MANIFEST.json").exists()
