"""docs/tutorial.md runs as written: every `$ ` line of its console blocks is run, in order,
in a fresh folder holding a copy of samples/ (as in a fresh clone), and must exit 0 — or with
the status a following `$ echo $?` line shows.  The output the tutorial shows must appear in
what the command printed, numbers aside (timings and last digits differ between machines);
`...` lines stand for output left out, and a block after `<!-- output varies -->` is not
compared (generated text)."""
from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
TUTORIAL = ROOT / "docs" / "tutorial.md"
VARIES = "<!-- output varies -->"
NUMBER = r"-?\d+(?:[.,]\d+)*(?:e[-+]?\d+)?"


@dataclass
class Command:
    line: str
    shown: list[str] = field(default_factory=list)
    compare: bool = True


def console_commands(text: str) -> list[Command]:
    commands = []
    for m in re.finditer(r"(?m)^```console\n(.*?)^```", text, re.S):
        before = text[:m.start()].rstrip().splitlines()
        compare = not (before and before[-1].strip() == VARIES)
        for line in m.group(1).splitlines():
            if line.startswith("$ "):
                commands.append(Command(line[2:], compare=compare))
            elif commands:
                commands[-1].shown.append(line)
    return commands


def line_pattern(shown: str) -> re.Pattern:
    """A shown output line with any number standing for any number, any run of spaces for
    any run of spaces."""
    parts = re.split(rf"(\s+|{NUMBER})", shown.strip())
    out = []
    for p in parts:
        if not p:
            continue
        if p.isspace():
            out.append(r"\s+")
        elif re.fullmatch(NUMBER, p):
            out.append(NUMBER)
        else:
            out.append(re.escape(p))
    return re.compile("".join(out))


def missing_lines(shown: list[str], printed: str) -> list[str]:
    printed_lines = [l.strip() for l in printed.splitlines()]
    return [s for s in shown if s.strip() not in ("", "...") and not any(
        line_pattern(s).fullmatch(p) for p in printed_lines)]


def _path_with_singac(tmp: pathlib.Path) -> str:
    """The installed singac beside this Python; a shim running this Python's singa_dsl else."""
    bin_dir = pathlib.Path(sys.executable).parent
    if not (bin_dir / "singac").exists():
        bin_dir = tmp / "bin"
        bin_dir.mkdir()
        shim = bin_dir / "singac"
        shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m singa_dsl.cli "$@"\n')
        shim.chmod(0o755)
    return f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"


# ---- the checker itself (fast) ---------------------------------------------------------------
def test_commands_are_read_from_console_blocks_only():
    text = ("```sh\npip install x\n```\n```console\n$ singac a\nout 1\n...\n$ echo $?\n2\n```\n"
            f"{VARIES}\n```console\n$ singac b\nrandom\n```\n")
    cmds = console_commands(text)
    assert [(c.line, c.shown, c.compare) for c in cmds] == [
        ("singac a", ["out 1", "..."], True), ("echo $?", ["2"], True),
        ("singac b", ["random"], False)]


def test_shown_lines_match_up_to_numbers_and_spacing():
    printed = "train    step     10  loss 1.7447  accuracy 0.6141  330 samples/s\n"
    assert not missing_lines(["train step 10 loss 1.7 accuracy 0.61  1682 samples/s"], printed)
    assert missing_lines(["train step 10 loss 1.7 accuracy 0.61 1682 samples/sec"], printed)
    assert missing_lines(["test step 10 loss 1.7 accuracy 0.61 1682 samples/s"], printed)
    assert not missing_lines(["...", ""], printed)


def test_the_tutorial_covers_the_tour():
    lines = [c.line for c in console_commands(TUTORIAL.read_text())]
    for needed in ("singac check samples/mnist_mlp.singa", "singac run samples/mnist_mlp.singa",
                   "singac graph ", "singac plot ", "singac plan samples/cifar_convnet.singa "
                   "--explain", "singac filters ", "singac sample ",
                   "singac run samples/downpour.singa --steps 60",
                   "singac run samples/hogwild.singa", "echo $?"):
        assert any(l.startswith(needed) for l in lines), f"the tutorial lost: {needed}"


# ---- the tutorial, run ---------------------------------------------------------------------
@pytest.mark.slow
def test_every_tutorial_command_runs_as_written(tmp_path):
    shutil.copytree(ROOT / "samples", tmp_path / "samples")
    env = {**os.environ, "PATH": _path_with_singac(tmp_path)}
    commands = console_commands(TUTORIAL.read_text())
    assert len(commands) >= 15
    previous = None
    for i, cmd in enumerate(commands):
        if cmd.line == "echo $?":
            assert previous is not None
            assert previous.returncode == int(cmd.shown[0]), \
                f"`{commands[i - 1].line}` exited {previous.returncode}:\n{previous.stderr}"
            continue
        r = subprocess.run(["bash", "-c", cmd.line], cwd=tmp_path, env=env, text=True,
                           capture_output=True, timeout=600, stdin=subprocess.DEVNULL)
        expects_status = i + 1 < len(commands) and commands[i + 1].line == "echo $?"
        if not expects_status:
            assert r.returncode == 0, f"`{cmd.line}` exited {r.returncode}:\n{r.stderr}"
        assert "Traceback" not in r.stderr, f"`{cmd.line}`:\n{r.stderr}"
        if cmd.compare:
            missing = missing_lines(cmd.shown, r.stdout + r.stderr)
            assert not missing, (f"`{cmd.line}` did not print {missing}; it printed:\n"
                                 f"{r.stdout}{r.stderr}")
        for out in re.findall(r"^wrote ([^\s;]+)", r.stdout, re.M):
            assert (tmp_path / out).stat().st_size > 0, out
        if cmd.line.startswith("singac sample "):
            prime = re.search(r"--prime '([^']*)'", cmd.line).group(1)
            assert r.stdout.startswith(prime) and len(r.stdout) > len(prime) + 100
        previous = r
    assert (tmp_path / "runs" / "downpour" / "metrics.jsonl").exists()
    assert (tmp_path / "runs" / "hogwild" / "metrics.jsonl").exists()
