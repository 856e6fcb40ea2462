"""``singac filters``: a layer's learned weights as a picture, one tile per unit.

A weight matrix is stored (units, inputs) — dense ``w`` is (out, in), rbm ``w`` is
(hidden, visible) — so row ``i`` holds the weights unit ``i`` gives each input pixel: drawn
as an image of the input's shape it shows what the unit looks for (the RBM's pen strokes).
The side of a tile is inferred from the number of inputs (64 → 8x8 digits, 784 → 28x28
MNIST); ``side`` overrides it (tiles side x inputs/side).  A conv kernel (filters, channels,
k, k) is drawn per filter: in colour for 3 channels, else its first channel.  Each tile is
scaled to its own minimum..maximum, as SINGA's and Hinton's filter pictures are.
"""
from __future__ import annotations

import math
import pathlib

import numpy as np

from .errors import SingaConfigError


def load_param(checkpoint: str | pathlib.Path, name: str) -> np.ndarray:
    """The param called ``name`` in a checkpoint folder, or in a workspace's newest one."""
    from .runtime.sampler import load_params
    params = load_params(checkpoint)
    if name not in params:
        import difflib
        close = difflib.get_close_matches(name, sorted(params), n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise SingaConfigError(f"no param '{name}' in {checkpoint}",
                               hint=hint + f"params there: {', '.join(sorted(params))}")
    return params[name]


def tiles(w: np.ndarray, name: str = "param", side: int | None = None) -> np.ndarray:
    """(n, h, w) grey tiles or (n, h, w, 3) colour tiles, each scaled to 0..1."""
    w = np.asarray(w, dtype=np.float64)
    if w.ndim == 4:
        t = w.transpose(0, 2, 3, 1) if w.shape[1] == 3 else w[:, 0]
    elif w.ndim == 2:
        t = w.reshape(w.shape[0], *_tile_shape(w.shape[1], name, w.shape, side))
    else:
        raise SingaConfigError(f"{name} has shape {list(w.shape)}; filters draws weight "
                               "matrices (units, inputs) and conv kernels "
                               "(filters, channels, k, k)")
    lo = t.min(axis=tuple(range(1, t.ndim)), keepdims=True)
    hi = t.max(axis=tuple(range(1, t.ndim)), keepdims=True)
    return (t - lo) / np.where(hi > lo, hi - lo, 1.0)


def _tile_shape(inputs: int, name: str, shape, side: int | None) -> tuple[int, int]:
    if side is None:
        side = math.isqrt(inputs)
        if side * side != inputs:
            raise SingaConfigError(
                f"{name} has {inputs} inputs per unit (shape {list(shape)}), not a square "
                "image", hint="give the tile width with --side N")
    if side <= 0 or inputs % side:
        raise SingaConfigError(f"--side {side} does not divide the {inputs} inputs of {name}")
    return inputs // side, side


def mosaic(t: np.ndarray, columns: int | None = None) -> np.ndarray:
    """Tiles laid out in a grid, one blank (NaN) pixel between them."""
    n, h, w = t.shape[:3]
    columns = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    out = np.full((rows * (h + 1) + 1, columns * (w + 1) + 1) + t.shape[3:], np.nan)
    for i in range(n):
        r, c = divmod(i, columns)
        out[1 + r * (h + 1):1 + r * (h + 1) + h, 1 + c * (w + 1):1 + c * (w + 1) + w] = t[i]
    return out


def draw_filters(w: np.ndarray, output: str | pathlib.Path, name: str = "param",
                 side: int | None = None, count: int = 100, title: str | None = None) -> int:
    """Write the picture; returns how many units it shows."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    if count <= 0:
        raise SingaConfigError(f"--count must be > 0, got {count}")
    t = tiles(w, name, side)[:count]
    grid = mosaic(t)
    fig, ax = plt.subplots(figsize=(6, 6 * grid.shape[0] / grid.shape[1] + 0.4))
    cmap = matplotlib.colormaps["gray"].with_extremes(bad="#3b4d6b")
    if grid.ndim == 3:
        grid = np.where(np.isnan(grid), 0.25, grid)
    ax.imshow(grid, cmap=cmap, interpolation="nearest", vmin=0, vmax=1)
    ax.set_axis_off()
    unit = "filters" if np.ndim(w) == 4 else "units"
    ax.set_title(title or f"{name}: {len(t)} of {np.shape(w)[0]} {unit}, "
                          f"{t.shape[1]}x{t.shape[2]}", fontsize=10)
    fig.tight_layout()
    out = pathlib.Path(output)
    fig.savefig(out, format=out.suffix.lstrip(".") or "png", dpi=100)
    plt.close(fig)
    return len(t)
