"""docs/api.md's examples run: its ```python blocks are executed in order, in one namespace, in
a folder holding a copy of samples/ (their own asserts check what they claim)."""
from __future__ import annotations

import os
import pathlib
import re
import shutil


ROOT = pathlib.Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "api.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"(?m)^```python\n(.*?)^```", text, re.S)


def test_the_examples_cover_the_api():
    code = "\n".join(python_blocks(DOC.read_text()))
    for name in ("singa_dsl.load(", "singa_dsl.parse(", ".summary()", ".graph", ".to_source()",
                 ".plan()", ".run(", "from singa_dsl.builder import", ".check()", ".errors"):
        assert name in code, f"docs/api.md has no example of {name}"


def test_only_python_blocks_are_examples():
    text = "```python\na = 1\n```\n```sh\nrm -rf /\n```\n```\nb = 2\n```\n```python\nc = a\n```\n"
    assert python_blocks(text) == ["a = 1\n", "c = a\n"]


def test_api_examples_run(tmp_path, monkeypatch, capsys):
    shutil.copytree(ROOT / "samples", tmp_path / "samples")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "api_doc"}
    blocks = python_blocks(DOC.read_text())
    assert len(blocks) >= 8
    for i, block in enumerate(blocks):
        exec(compile(block, f"docs/api.md python block {i + 1}", "exec"), namespace)
    out = capsys.readouterr().out
    assert "total params: 10,172,510" in out                  # summary() was printed
    assert "error: unknown op 'rleu'" in out
    for picture in ("mlp.svg", "curves.png", "h1-filters.png"):
        assert (tmp_path / picture).stat().st_size > 0
    assert os.path.exists(tmp_path / "runs" / "api_built" / "metrics.jsonl")
