"""SINGA's deep auto-encoder pipeline on digits (examples/rbm): rbm1 → rbm2 by CD, then the
auto-encoder by BP, params passing by name through init_from (shortened runs)."""
from __future__ import annotations

import pathlib

import pytest

import singa_dsl

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_rbm_pipeline_pretrains_the_autoencoder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)          # the samples' workspaces are runs/<job>
    results = {}
    for name, steps in (("rbm1", 300), ("rbm2", 300), ("autoencoder", 300),
                        ("autoencoder_scratch", 300)):
        records = singa_dsl.load(ROOT / "samples" / f"{name}.singa").run(steps=steps,
                                                                         quiet=True)
        results[name] = records
        print(name, [(r["phase"], r["step"], round(r["loss"], 4)) for r in records
                     if r["phase"] == "test" or r["step"] in (0, steps - 1)])
    for rbm in ("rbm1", "rbm2"):
        train = [r for r in results[rbm] if r["phase"] == "train"]
        assert train[-1]["loss"] < 0.5 * train[0]["loss"]
        assert train[-1]["metric"] == "reconstruction_error"
    pre = [r for r in results["autoencoder"] if r["phase"] == "test"]
    scratch = [r for r in results["autoencoder_scratch"] if r["phase"] == "test"]
    # the pre-trained encoder starts far better than random weights, and stays ahead
    assert pre[0]["loss"] < 0.2 * scratch[0]["loss"]
    assert pre[-1]["loss"] < scratch[-1]["loss"]
