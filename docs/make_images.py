"""Make the pictures in docs/images/ from real runs of the samples.

    python docs/make_images.py            # everything (about a minute on a laptop CPU)
    python docs/make_images.py frameworks # only the cluster diagrams (no training)

Each training runs in a temporary copy of samples/, like a user's fresh clone; nothing is
written outside docs/images/.  What it makes:

- progress.svg: the live display of `singac run samples/mnist_mlp.singa --steps 120`,
  recorded through runtime.progress.CONSOLE (a rich Console with record=True)
- curves.png: `singac plot` of the Downpour and Hogwild samples' runs, overlaid
- mnist_mlp-graph.svg: `singac graph samples/mnist_mlp.singa --format svg`
- cifar_convnet-plan.svg: `singac plan samples/cifar_convnet.singa --format svg`
- rbm1-filters.png: `singac filters` of the RBM's weights after 2000 steps of CD-1
- char_rnn-sample.svg: `singac sample` of the small char-RNN after 300 steps
- framework-{sandblaster,allreduce,downpour,hogwild}.svg: the four SINGA frameworks, drawn
  from the numbers the compiler fills in for each `framework:` (docs/cluster.md)
"""
from __future__ import annotations

import contextlib
import io
import os
import pathlib
import shutil
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
IMAGES = ROOT / "docs" / "images"

# SINGA's own examples of each framework (SINGA-REFERENCE §6, frameworks.md Fig. 1): the
# numbers given besides `framework:`; the compiler fills in the rest.
FRAMEWORK_EXAMPLES = {
    "sandblaster": "workers_per_group: 3, servers_per_group: 2",
    "allreduce": "workers_per_group: 3",
    "downpour": "workers_per_group: 2, servers_per_group: 2, separate_servers: true",
    "hogwild": "worker_groups: 3, sync_every: 4",
}
FRAMEWORK_TITLES = {
    "sandblaster": "Sandblaster: one synchronous group, dedicated servers",
    "allreduce": "AllReduce: one synchronous group, a server beside every worker",
    "downpour": "Downpour: asynchronous groups share one server group",
    "hogwild": "Distributed Hogwild: a server group per worker group, synced",
}
_NET = """\
job j { steps: 1 }
data d { train: digits(split: "train", batch: 24) }
net n {
  x = input(d.image)
  loss = softmax_loss(dense(x, 10), d.label)
}
algorithm bp
updater sgd { lr: 0.1 }
"""


def framework_cluster(name: str):
    """The ClusterSpec the compiler makes of `cluster { framework: NAME, ... }`."""
    import singa_dsl
    text = _NET + f"cluster {{ framework: {name}, {FRAMEWORK_EXAMPLES[name]} }}\n"
    return singa_dsl.parse(text, f"{name}.singa").cluster


# ---- cluster diagrams ---------------------------------------------------------------------
WORKER, SERVER, EDGE = "#8ecae6", "#ffb703", "#33415c"


def _box(ax, x, y, w, h, fc, text, **kw):
    from matplotlib.patches import FancyBboxPatch
    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h,
                                boxstyle="round,pad=0.02,rounding_size=0.08",
                                fc=fc, ec=kw.pop("ec", EDGE), lw=kw.pop("lw", 1.2), **kw))
    if text:
        ax.text(x, y, text, ha="center", va="center", fontsize=8)


def cluster_layout(c) -> tuple[dict, dict]:
    """x positions of every worker (g, j) and server (g, j); a worker group's servers sit
    above it.  Co-located servers (separate_servers false) share a column with worker k."""
    wx, sx, x = {}, {}, 0.0
    per_sg = c.worker_groups // c.server_groups
    for g in range(c.worker_groups):
        for j in range(c.workers_per_group):
            wx[g, j] = x
            x += 1.4
        x += 0.6 if c.workers_per_group > 1 else 0.9
    for s in range(c.server_groups):
        cols = [wx[g, j] for g in range(s * per_sg, (s + 1) * per_sg)
                for j in range(c.workers_per_group)]
        if not c.separate_servers and c.servers_per_group <= len(cols):
            xs = cols[:c.servers_per_group]
        else:
            mid, n = sum(cols) / len(cols), c.servers_per_group
            xs = [mid + (k - (n - 1) / 2) * 1.4 for k in range(n)]
        for k, xk in enumerate(xs):
            sx[s, k] = xk
    return wx, sx


def _group_width(xs: list[float]) -> float:
    return max(1.75, max(xs) - min(xs) + 1.35)


def draw_cluster(c, title: str, path: str | pathlib.Path) -> None:
    """Worker groups below, server groups above; arrows for who talks to whom (gradients up,
    parameters down); dashed arrows between server groups that sync; dotted boxes around what
    shares a process when servers are not separate."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    plt.rcParams["svg.fonttype"] = "none"          # text stays text: small, searchable files
    plt.rcParams["svg.hashsalt"] = "singa_dsl"
    wx, sx = cluster_layout(c)
    per_sg = c.worker_groups // c.server_groups
    xs = list(wx.values()) + list(sx.values())
    fig, ax = plt.subplots(figsize=(max(5.0, 1.25 * (max(xs) - min(xs)) + 2.5), 3.6))
    wy, sy = 0.0, 2.2
    for g in range(c.worker_groups):
        gx = [wx[g, j] for j in range(c.workers_per_group)]
        _box(ax, sum(gx) / len(gx), wy - 0.05, _group_width(gx), 1.0, "#edf6f9", None)
        ax.text(sum(gx) / len(gx), wy - 0.45, f"worker group {g}", ha="center", fontsize=8,
                weight="bold")
        for j in range(c.workers_per_group):
            _box(ax, wx[g, j], wy + 0.1, 1.15, 0.45, WORKER, f"worker {j}")
    for s in range(c.server_groups):
        gx = [sx[s, k] for k in range(c.servers_per_group)]
        _box(ax, sum(gx) / len(gx), sy + 0.05, _group_width(gx), 1.0, "#fff3d6", None)
        ax.text(sum(gx) / len(gx), sy + 0.38, f"server group {s}", ha="center", fontsize=8,
                weight="bold")
        share = "all params" if c.servers_per_group == 1 else f"1/{c.servers_per_group} params"
        for k in range(c.servers_per_group):
            _box(ax, sx[s, k], sy - 0.1, 1.15, 0.5, SERVER, f"server {k}\n{share}")
    for (g, j), x in wx.items():
        s = g // per_sg
        for k in range(c.servers_per_group):
            ax.annotate("", xy=(sx[s, k], sy - 0.35), xytext=(x, wy + 0.35),
                        arrowprops=dict(arrowstyle="<->", color="#555555", lw=0.9,
                                        shrinkA=2, shrinkB=2))
    for s in range(c.server_groups - 1):
        a = max(sx[s, k] for k in range(c.servers_per_group)) + 0.6
        b = min(sx[s + 1, k] for k in range(c.servers_per_group)) - 0.6
        ax.annotate("", xy=(b, sy - 0.1), xytext=(a, sy - 0.1),
                    arrowprops=dict(arrowstyle="<->", color="#c1121f", ls="--", lw=1.2))
        ax.text((a + b) / 2, sy - 0.75, f"sync\nevery {c.sync_every}", ha="center",
                fontsize=7, color="#c1121f")
    note = "arrows: gradients up, fresh parameters down" + (
        "; worker groups run asynchronously" if c.worker_groups > 1 else
        "; the group's workers share one mini-batch")
    if not c.separate_servers:
        for (s, k), x in sx.items():
            ax.add_patch(plt.Rectangle((x - 0.66, wy - 0.2), 1.32, sy - wy + 0.42, fill=False,
                                       ls=":", ec="#6c757d", lw=1))
        note += "\ndotted: one process (a worker and a server together)"
    ax.text(min(xs) - 0.6, -0.8, note, fontsize=7, color="#444444", va="top")
    ax.set_title(title, fontsize=10)
    ax.set_xlim(min(xs) - 0.8, max(xs) + 0.8)
    ax.set_ylim(-1.3, sy + 0.8)
    ax.set_aspect("equal")
    ax.axis("off")
    fmt = pathlib.Path(path).suffix.lstrip(".")
    fig.savefig(path, format=fmt, bbox_inches="tight",
                metadata={"Date": None} if fmt == "svg" else None)   # same picture, same file
    plt.close(fig)


def make_frameworks(out: pathlib.Path) -> list[pathlib.Path]:
    made = []
    for name in FRAMEWORK_EXAMPLES:
        path = out / f"framework-{name}.svg"
        draw_cluster(framework_cluster(name), FRAMEWORK_TITLES[name], path)
        made.append(path)
    return made


# ---- real runs ------------------------------------------------------------------------------
def singac(*argv: str) -> str:
    """Run a singac command in this process; its stdout, and fail loudly if it fails."""
    from singa_dsl.cli import main
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(list(argv))
    if rc != 0:
        raise SystemExit(f"singac {' '.join(argv)} exited {rc}")
    return buf.getvalue()


def record_progress(out: pathlib.Path, command: list[str]) -> None:
    """Train with the live display drawn on a recording console, and save it as SVG."""
    from rich.console import Console
    from singa_dsl.runtime import progress
    console = Console(record=True, file=io.StringIO(), width=112, color_system="truecolor")
    console.print(f"[bold]$ singac {' '.join(command)}")
    progress.CONSOLE = console
    try:
        singac(*command)
    finally:
        progress.CONSOLE = None
    console.save_svg(str(out), title="singac run")


def record_text(out: pathlib.Path, command: list[str], title: str) -> None:
    from rich.console import Console
    from rich.text import Text
    console = Console(record=True, file=io.StringIO(), width=100)
    console.print(f"[bold]$ singac {' '.join(command)}")
    console.print(Text(singac(*command).rstrip("\n")))
    console.save_svg(str(out), title=title)


def make_runs(out: pathlib.Path) -> None:
    mlp = ["run", "samples/mnist_mlp.singa", "--steps", "120"]
    record_progress(out / "progress.svg", mlp)
    singac("run", "samples/downpour.singa", "--quiet")
    singac("run", "samples/hogwild.singa", "--quiet")
    singac("plot", "runs/downpour", "runs/hogwild", "-o", str(out / "curves.png"))
    singac("graph", "samples/mnist_mlp.singa", "--format", "svg",
           "-o", str(out / "mnist_mlp-graph.svg"))
    singac("plan", "samples/cifar_convnet.singa", "--format", "svg",
           "-o", str(out / "cifar_convnet-plan.svg"))
    singac("run", "samples/rbm1.singa", "--steps", "2000", "--quiet")
    singac("filters", "runs/rbm1", "--param", "w1", "-o", str(out / "rbm1-filters.png"))
    singac("run", "samples/char_rnn_small.singa", "--steps", "300", "--quiet")
    record_text(out / "char_rnn-sample.svg",
                ["sample", "samples/char_rnn_small.singa", "--checkpoint", "runs/char_rnn_small",
                 "--length", "400", "--prime", "def "], "singac sample")


def main(argv: list[str]) -> int:
    out = IMAGES
    out.mkdir(parents=True, exist_ok=True)
    make_frameworks(out)
    if argv[:1] == ["frameworks"]:
        return 0
    here = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(ROOT / "samples", pathlib.Path(tmp) / "samples")
        os.chdir(tmp)
        try:
            make_runs(out)
        finally:
            os.chdir(here)
    for p in sorted(out.iterdir()):
        print(f"{p.relative_to(ROOT)}  {p.stat().st_size // 1024} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
