"""docs/reference.md is what the registries say today, and names every op and attribute."""
import pathlib

from singa_dsl.compiler.ops import OPS
from singa_dsl.docgen import reference

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_reference_is_up_to_date():
    assert (ROOT / "docs" / "reference.md").read_text() == reference(), \
        "regenerate with: python -m singa_dsl.docgen > docs/reference.md"


def test_reference_lists_every_op_and_attribute():
    text = reference()
    for name, op in OPS.items():
        assert f"### `{name}`" in text
        section = text.split(f"### `{name}`", 1)[1].split("\n### ", 1)[0]
        for a in op.attrs:
            assert f"- `{a.name}`" in section, f"{name}.{a.name} missing from the reference"
