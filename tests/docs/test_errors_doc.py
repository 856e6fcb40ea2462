"""docs/errors.md is what the compiler prints today for every golden error case, each with a fix."""
import pathlib
import re

import pytest

from singa_dsl import errcatalog

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "errors.md"


def test_error_catalogue_is_up_to_date():
    assert DOC.read_text() == errcatalog.catalogue(), \
        "regenerate with: python -m singa_dsl.errcatalog > docs/errors.md"


def test_every_golden_case_has_a_fix_or_a_reason_to_leave_it_out():
    golden = errcatalog.golden_module()
    assert {c.id for c in golden.CASES} == set(errcatalog.FIXES)
    shown = {e["id"] for e in errcatalog.entries()}
    for case in golden.CASES:
        if errcatalog.FIXES[case.id] is not None and not case.xfail:
            assert case.id in shown


def test_every_section_has_entries_and_each_entry_a_located_report():
    entries = errcatalog.entries()
    assert {e["section"] for e in entries} == set(errcatalog.SECTIONS)
    for e in entries:
        assert re.match(r"demo\.singa:\d+:\d+: error: ", e["report"]), e["id"]
        assert e["report"].endswith("error found"), e["id"]
        assert e["fix"].strip(), e["id"]


def test_a_case_without_a_fix_is_caught(monkeypatch):
    fixes = dict(errcatalog.FIXES)
    del fixes["unknown_op"]
    monkeypatch.setattr(errcatalog, "FIXES", fixes)
    with pytest.raises(errcatalog.CatalogueError, match="unknown_op"):
        errcatalog.entries()


def test_exit_codes_cover_the_error_classes():
    from singa_dsl.errors import KernelBuildError, SingaDataError, WorkerError
    rows = {code: names for code, names, _ in errcatalog.exit_codes()}
    for cls in (KernelBuildError, SingaDataError, WorkerError):
        assert cls.__name__ in rows[cls.exit_code]
    text = DOC.read_text()
    for code in rows:
        assert f"\n| {code} | " in text
