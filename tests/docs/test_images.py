"""The pictures in the docs: each one referenced exists, each one made is referenced, and the
cluster diagrams draw the groups the compiler fills in for each framework."""
from __future__ import annotations

import importlib.util
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def make_images():
    spec = importlib.util.spec_from_file_location("make_images", DOCS / "make_images.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def referenced() -> set[str]:
    refs = set()
    for md in [*DOCS.glob("*.md"), ROOT / "README.md"]:
        refs |= set(re.findall(r"\]\((?:docs/)?(images/[^)\s]+)\)", md.read_text()))
    return refs


def test_every_referenced_image_exists_and_every_image_is_referenced():
    refs = referenced()
    assert refs, "no pictures in the docs"
    for ref in refs:
        assert (DOCS / ref).is_file() and (DOCS / ref).stat().st_size > 0, ref
    made = {f"images/{p.name}" for p in (DOCS / "images").iterdir()}
    assert made - refs == set(), "pictures no doc shows"


def test_docs_link_to_existing_docs():
    for md in DOCS.glob("*.md"):
        for link in re.findall(r"\]\(([a-z_]+\.md)(?:#[^)]*)?\)", md.read_text()):
            assert (DOCS / link).is_file(), f"{md.name} links to missing {link}"


@pytest.mark.parametrize("name", ["sandblaster", "allreduce", "downpour", "hogwild"])
def test_framework_picture_draws_the_filled_in_groups(name, tmp_path):
    m = make_images()
    c = m.framework_cluster(name)
    assert c.framework == name
    out = tmp_path / f"{name}.svg"
    m.draw_cluster(c, m.FRAMEWORK_TITLES[name], out)
    svg = out.read_text()
    texts = re.findall(r"<text[^>]*>([^<]*)</text>", svg)
    assert sum(t.startswith("worker group ") for t in texts) == c.worker_groups
    assert sum(t.startswith("server group ") for t in texts) == c.server_groups
    assert sum(t == "worker 0" for t in texts) == c.worker_groups
    assert sum(t.startswith("server ") and not t.startswith("server group") for t in texts) \
        == c.server_groups * c.servers_per_group
    assert any(t.startswith("sync") for t in texts) == (c.server_groups > 1)


def test_cluster_guide_shows_the_blocks_drawn_and_every_attribute():
    m = make_images()
    text = (DOCS / "cluster.md").read_text()
    for name, rest in m.FRAMEWORK_EXAMPLES.items():
        assert f"cluster {{ framework: {name}, {rest} }}" in text
        assert f"(images/framework-{name}.svg)" in text
    from singa_dsl.compiler.algorithms import CLUSTER_ATTRS
    for a in CLUSTER_ATTRS:
        row = next((l for l in text.splitlines() if l.startswith(f"| `{a.name}` |")), None)
        assert row is not None, f"cluster.md has no row for {a.name}"
        default = ("none" if a.default is None else str(a.default).lower()
                   if isinstance(a.default, bool) else str(a.default))
        assert re.split(r"(?<!\\)\|", row)[3].strip() == default, a.name
