"""`singac filters`: a param's rows drawn as tiles of the input's image shape."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from singa_dsl import SingaError
from singa_dsl.filters import draw_filters, mosaic, tiles
from singa_dsl.runtime import checkpoint


def singac(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "singa_dsl.cli", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def workspace(tmp_path):
    rng = np.random.default_rng(0)
    params = {"w1": rng.normal(size=(20, 64)).astype(np.float32),
              "fc1.w": rng.normal(size=(12, 30)).astype(np.float32),
              "b11": np.zeros(64, np.float32)}
    checkpoint.save(tmp_path / "ws", 10, params, {}, {"job": "t"})
    return tmp_path / "ws"


def test_each_row_becomes_one_tile_of_the_input_shape():
    images = np.arange(3 * 16, dtype=np.float64).reshape(3, 4, 4) ** 1.5
    images[1] *= -1                                  # scaled per tile, so sign flips the tile
    t = tiles(images.reshape(3, 16))
    assert t.shape == (3, 4, 4)
    for i in range(3):
        lo, hi = images[i].min(), images[i].max()
        np.testing.assert_allclose(t[i], (images[i] - lo) / (hi - lo))
    assert t[1][0, 0] == 1.0 and t[0][0, 0] == 0.0


def test_side_sets_a_non_square_tile_and_bad_sides_are_errors():
    w = np.random.default_rng(1).normal(size=(5, 30))
    with pytest.raises(SingaError, match="not a square image") as info:
        tiles(w, "fc1.w")
    assert "--side" in info.value.hint
    assert tiles(w, "fc1.w", side=6).shape == (5, 5, 6)
    with pytest.raises(SingaError, match="does not divide"):
        tiles(w, "fc1.w", side=7)
    with pytest.raises(SingaError, match="filters draws weight matrices"):
        tiles(np.zeros(64), "b11")


def test_conv_kernels_with_three_channels_are_colour_tiles():
    w = np.random.default_rng(2).normal(size=(8, 3, 5, 5))
    t = tiles(w)
    assert t.shape == (8, 5, 5, 3)
    np.testing.assert_allclose(t[2].transpose(2, 0, 1).argmax(), w[2].argmax())
    assert tiles(np.ones((4, 16, 3, 3))).shape == (4, 3, 3)


def test_mosaic_places_tile_i_at_row_i_div_columns():
    t = np.stack([np.full((2, 3), float(i)) for i in range(5)])
    m = mosaic(t, columns=2)
    assert m.shape == (3 * 3 + 1, 2 * 4 + 1)
    assert m[1 + 2 * 3, 1 + 0 * 4] == 4.0          # tile 4: third row, first column
    assert m[1 + 0 * 3, 1 + 1 * 4] == 1.0          # tile 1: first row, second column
    assert np.isnan(m[0]).all() and np.isnan(m[-1, -1])


def test_draw_filters_writes_png_and_svg(tmp_path):
    import matplotlib.image
    w = np.random.default_rng(3).normal(size=(30, 64))
    assert draw_filters(w, tmp_path / "f.png", "w", count=12) == 12
    assert matplotlib.image.imread(tmp_path / "f.png").shape[0] > 100
    draw_filters(w, tmp_path / "f.svg", "w")
    assert "<svg" in (tmp_path / "f.svg").read_text()[:500]


def test_cli_draws_a_workspaces_newest_checkpoint(workspace, tmp_path):
    r = singac("filters", workspace, "--param", "w1", "-o", tmp_path / "w1.png")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"wrote {tmp_path / 'w1.png'} (20 tiles)"
    assert (tmp_path / "w1.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    folder = next((workspace / "checkpoints").iterdir())
    r = singac("filters", folder, "--param", "fc1.w", "--side", "5", "--count", "4", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "fc1-w-filters.png").exists() and "(4 tiles)" in r.stdout


def test_cli_errors_are_reported_without_traceback(workspace, tmp_path):
    r = singac("filters", workspace, "--param", "w", "-o", tmp_path / "x.png")
    assert r.returncode == 2
    assert "no param 'w'" in r.stderr and "did you mean 'w1'?" in r.stderr
    r = singac("filters", workspace, "--param", "fc1.w", "-o", tmp_path / "x.png")
    assert r.returncode == 2 and "--side" in r.stderr and "Traceback" not in r.stderr
    r = singac("filters", tmp_path / "empty", "--param", "w1")
    assert r.returncode != 0 and "no intact checkpoint" in r.stderr
    assert not (tmp_path / "x.png").exists()
