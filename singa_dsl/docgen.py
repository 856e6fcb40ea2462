"""Generate docs/reference.md from the registries, so the reference cannot drift from what the
compiler accepts.  ``python -m singa_dsl.docgen > docs/reference.md``; a test compares."""
from __future__ import annotations

from singa_dsl.schema import Attr


def _attrs(attrs: tuple[Attr, ...]) -> list[str]:
    if not attrs:
        return ["  (no attributes)"]
    return [f"- `{a.name}`{' (positional)' if a.positional else ''}: " + a.describe().split(" ", 1)[1]
            for a in attrs]


def reference() -> str:
    from singa_dsl.compiler.algorithms import ALGORITHMS, CLUSTER_ATTRS
    from singa_dsl.compiler.check_blocks import EVERY_ATTRS, JOB_ATTRS
    from singa_dsl.compiler.check_net import NET_ATTRS
    from singa_dsl.compiler.ops import OPS
    from singa_dsl.compiler.params import PARAM_ATTRS, SHARE_ATTRS
    from singa_dsl.runtime.data import SOURCES
    from singa_dsl.runtime.initializers import INITIALIZERS
    from singa_dsl.runtime.schedules import SCHEDULES
    from singa_dsl.runtime.updaters import UPDATERS

    out = ["# singa_dsl language reference", "",
           "Generated from the registries by `python -m singa_dsl.docgen`; do not edit by hand.",
           ""]

    def section(title, registry, describe):
        out.extend([f"## {title}", ""])
        for name, item in registry.items():
            out.extend(describe(name, item))
            out.append("")

    out.extend(["## job", ""] + _attrs(JOB_ATTRS) + ["", "`every(...)`:"] + _attrs(EVERY_ATTRS)
               + ["", "## net settings", ""] + _attrs(NET_ATTRS) + [""])
    section("ops", OPS, lambda n, op: [
        f"### `{n}` ({op.family})", "", op.doc, "",
        f"sources: {', '.join(op.sources)}; partition dimensions: "
        f"{', '.join(op.partition) or 'none'}", ""] + _attrs(op.attrs))
    out.extend(["## param(...) and share(...)", "", "`param`:"] + _attrs(PARAM_ATTRS) +
               ["", "`share`:"] + _attrs(SHARE_ATTRS) + [""])
    section("initializers", INITIALIZERS, lambda n, d: [f"### `{n}()`", "", d.doc, ""] +
            _attrs(d.attrs))
    section("data sources", SOURCES, lambda n, d: [f"### `{n}(...)`", "", d.doc, ""] +
            _attrs(d.attrs))
    section("algorithms", ALGORITHMS, lambda n, d: [f"### `algorithm {n}`", "", d.doc, ""] +
            _attrs(d.attrs))
    section("updaters", UPDATERS, lambda n, d: [f"### `updater {n}`", "", d.doc, ""] +
            _attrs(d.attrs))
    section("learning-rate schedules", SCHEDULES, lambda n, d: [f"### `{n}(...)`", "", d.doc, ""]
            + _attrs(d.attrs))
    out.extend(["## cluster", ""] + _attrs(CLUSTER_ATTRS) + [""])
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":
    import sys
    sys.stdout.write(reference())
