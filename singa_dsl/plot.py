"""``singac plot``: loss and accuracy curves from workspaces' metrics.jsonl, several runs
overlaid (e.g. sync vs Downpour vs Hogwild), to PNG or SVG."""
from __future__ import annotations

import json
import pathlib

from .errors import SingaError

PHASE_STYLE = {"train": "-", "validate": "--", "test": ":"}


def read_metrics(workspace: str | pathlib.Path) -> list[dict]:
    path = pathlib.Path(workspace) / "metrics.jsonl"
    if not path.exists():
        raise SingaError(f"no metrics in {workspace} (looked for {path})",
                         hint="give the workspace of a job that has run, e.g. runs/mnist_mlp")
    records = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        try:
            r = json.loads(line)
        except ValueError:
            continue          # a line cut short by an interrupted run
        if isinstance(r, dict) and {"phase", "step", "loss"} <= set(r):
            records.append(r)
    return records


def plot(workspaces: list[str], output: str, fmt: str | None = None) -> list[tuple[str, list]]:
    """Draw the runs' curves into ``output``; returns (label, steps) of every curve drawn."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    runs = [(pathlib.Path(w).name or str(w), read_metrics(w)) for w in workspaces]
    has_acc = any("accuracy" in r for _, recs in runs for r in recs)
    fig, axes = plt.subplots(1, 2 if has_acc else 1, figsize=(11 if has_acc else 6, 4))
    axes = list(axes) if has_acc else [axes]
    drawn: list[tuple[str, list]] = []
    for i, (name, records) in enumerate(runs):
        colour = f"C{i % 10}"
        # a distributed job's train records come per worker group: one curve each
        series = [(phase, group) for phase in PHASE_STYLE
                  for group in sorted({r.get("group") for r in records
                                       if r["phase"] == phase}, key=lambda g: (g is None, g))]
        for phase, group in series:
            style = PHASE_STYLE[phase]
            rs = sorted((r for r in records if r["phase"] == phase and r.get("group") == group),
                        key=lambda r: r["step"])
            if not rs:
                continue
            steps = [r["step"] for r in rs]
            label = f"{name} {phase}" + ("" if group is None else f" group {group}")
            drawn.append((label, steps))
            alpha = 1.0 if not group else max(0.35, 1.0 - 0.25 * group)
            axes[0].plot(steps, [r["loss"] for r in rs], style, color=colour, label=label,
                         alpha=alpha)
            if has_acc and any("accuracy" in r for r in rs):
                axes[1].plot(steps, [r.get("accuracy") for r in rs], style, color=colour,
                             label=label, alpha=alpha)
    metric = next((r.get("metric") for _, recs in runs for r in recs if r.get("metric")), None)
    axes[0].set_ylabel(metric or "loss")
    if has_acc:
        axes[1].set_ylabel("accuracy")
    for ax in axes:
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(output, format=fmt or pathlib.Path(output).suffix.lstrip(".") or "png")
    plt.close(fig)
    return drawn
