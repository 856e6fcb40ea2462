"""`singac completion bash|zsh|tcsh` prints a script built from the parser (shtab), and every
subcommand's --help ends with an example."""
from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from singa_dsl import cli

pytest.importorskip("shtab")


def singac(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "singa_dsl.cli", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def subcommands() -> list[str]:
    return list(cli._parser()._subparsers._group_actions[0].choices)


def test_bash_script_names_every_subcommand():
    r = singac("completion", "bash")
    assert r.returncode == 0, r.stderr
    assert "complete -o bashdefault -F _shtab_singac singac" in r.stdout
    line = next(l for l in r.stdout.splitlines() if l.startswith("_shtab_singac_subparsers="))
    assert line.split("=", 1)[1].strip("()").split() == subcommands()
    assert "--steps" in r.stdout and "--explain" in r.stdout


@pytest.mark.parametrize("shell", ["zsh", "tcsh"])
def test_other_shells(shell):
    r = singac("completion", shell)
    assert r.returncode == 0, r.stderr
    for name in ("check", "run", "plan", "filters"):
        assert name in r.stdout


def test_unknown_shell_is_a_usage_error():
    r = singac("completion", "fish")
    assert r.returncode != 0 and "invalid choice" in r.stderr


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash on this machine")
def test_bash_completes_subcommands_options_and_sample_files(tmp_path):
    script = tmp_path / "singac.bash"
    script.write_text(singac("completion", "bash").stdout)
    (tmp_path / "samples").mkdir()
    (tmp_path / "samples" / "mnist_mlp.singa").write_text("")

    def complete(*words):
        cmd = (f"source {script}; COMP_WORDS=(singac {' '.join(words)}); "
               f"COMP_CWORD={len(words)}; _shtab_singac; printf '%s\\n' \"${{COMPREPLY[@]}}\"")
        r = subprocess.run(["bash", "-c", cmd], cwd=tmp_path, capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 0, r.stderr
        return r.stdout.split()

    assert complete("fil") == ["filters"]
    assert sorted(complete("pl")) == ["plan", "plot"]
    assert "--explain" in complete("plan", "--ex")
    assert complete("run", "samples/mn") == ["samples/mnist_mlp.singa"]


def test_every_subcommand_help_has_an_example():
    for name in subcommands():
        r = singac(name, "--help")
        assert r.returncode == 0, name
        assert "example:\n  singac " in r.stdout, f"singac {name} --help shows no example"
