"""singac as a user meets it: exit codes, located errors without tracebacks, each subcommand."""
from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"


def singac(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "singa_dsl.cli", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_check_prints_the_layer_table():
    r = singac("check", SAMPLES / "mnist_mlp.singa")
    assert r.returncode == 0, r.stderr
    assert "total params: 10,172,510" in r.stdout
    assert "fc1    dense" in r.stdout


def test_a_mistake_is_located_with_exit_code_2_and_no_traceback(tmp_path):
    bad = tmp_path / "bad.singa"
    bad.write_text((SAMPLES / "mnist_mlp.singa").read_text().replace("stanh(fc1)", "stanhh(fc1)"))
    r = singac("check", bad)
    assert r.returncode == 2
    assert f"{bad}:18:10: error: unknown op 'stanhh'" in r.stderr
    assert "did you mean 'stanh'?" in r.stderr
    assert "Traceback" not in r.stderr


def test_missing_file_and_usage_errors(tmp_path):
    r = singac("check", tmp_path / "nope.singa")
    assert r.returncode == 2 and "no such file" in r.stderr and "Traceback" not in r.stderr
    assert singac().returncode == 64


def test_fmt_check_and_graph_dot(tmp_path):
    assert singac("fmt", "--check", SAMPLES / "downpour.singa").returncode == 1  # aligned '='
    messy = tmp_path / "m.singa"
    messy.write_text(singac("fmt", SAMPLES / "downpour.singa").stdout)
    assert singac("fmt", "--check", messy).returncode == 0
    dot = singac("graph", SAMPLES / "downpour.singa").stdout
    assert dot.startswith('digraph "mlp"') and '"fc1" -> "h1";' in dot


def test_init_then_run_then_test(tmp_path):
    assert singac("init", "model.singa", cwd=tmp_path).returncode == 0
    assert singac("init", "model.singa", cwd=tmp_path).returncode == 64   # never overwrites
    assert singac("fmt", "--check", "model.singa", cwd=tmp_path).returncode == 0  # canonical
    r = singac("run", "model.singa", "--steps", "60", "--quiet", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    records = [json.loads(l) for l in
               (tmp_path / "runs/starter/metrics.jsonl").read_text().splitlines()]
    assert {"train", "test"} <= {r["phase"] for r in records}
    assert all({"phase", "step", "loss", "time"} <= set(r) for r in records)
    assert all("samples_per_s" in r for r in records if r["phase"] == "train")
    r = singac("test", "model.singa", "--checkpoint", "runs/starter", cwd=tmp_path)
    assert r.returncode == 0 and "accuracy" in r.stdout
    r = singac("plot", "runs/starter", "-o", "curves.svg", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    svg = (tmp_path / "curves.svg").read_text()
    assert svg.lstrip().startswith("<?xml") and "starter test" in svg
    assert singac("plot", "runs/nothing", cwd=tmp_path).returncode == 2


def test_plan_json_is_plain_data():
    r = singac("plan", SAMPLES / "downpour.singa", "--emit", "json")
    assert r.returncode == 0, r.stderr
    plan = json.loads(r.stdout)
    from singa_dsl.compiler.plan import Plan
    assert Plan.from_json(plan).to_json() == plan
    assert {p["key"] for p in plan["params"]} == {"fc1.w", "fc1.b", "fc2.w", "fc2.b"}


@pytest.mark.parametrize("flag", ["--version", "--help"])
def test_version_and_help(flag):
    r = singac(flag)
    assert r.returncode == 0 and ("singac" in r.stdout)


def test_plan_explain_and_picture(tmp_path):
    r = singac("plan", SAMPLES / "cifar_convnet.singa", "--workers", "2", "--explain")
    assert r.returncode == 0, r.stderr
    assert "predicted step:" in r.stdout and "ip1" in r.stdout
    r = singac("plan", SAMPLES / "cifar_convnet.singa", "--format", "svg", "-o", tmp_path / "p.svg")
    assert r.returncode == 0 and (tmp_path / "p.svg").read_text().lstrip().startswith("<?xml")
    r = singac("plan", SAMPLES / "cifar_convnet.singa", "--workers", "4", "--explain")
    assert r.returncode == 2 and "not divisible by 4" in r.stderr   # ip1 @feature has 10 outputs


def test_plot_draws_one_curve_per_worker_group(tmp_path):
    from singa_dsl.plot import plot
    ws = tmp_path / "dp"
    ws.mkdir()
    records = [{"phase": "train", "step": s, "loss": 1.0 / (s + 1), "group": g}
               for s in (0, 10, 20) for g in (0, 1)]
    records.append({"phase": "test", "step": 20, "loss": 0.3, "accuracy": 0.9})
    (ws / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    drawn = dict(plot([str(ws)], str(tmp_path / "c.png")))
    assert drawn == {"dp train group 0": [0, 10, 20], "dp train group 1": [0, 10, 20],
                     "dp test": [20]}
    assert (tmp_path / "c.png").stat().st_size > 1000
