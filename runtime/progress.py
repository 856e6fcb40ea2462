"""What the user watches: a live rich progress bar on a terminal (step, loss, accuracy,
samples/s, ETA), plain log lines otherwise, nothing but errors with --quiet.  Every record
also goes to WORKSPACE/metrics.jsonl, one JSON object per line."""
from __future__ import annotations

import json
import pathlib
import sys
import time

# A rich Console to draw the live display on instead of the terminal (docs/make_images.py
# sets one with record=True to save a real run's display as docs/images/progress.svg).
CONSOLE = None


def _fmt(record: dict) -> str:
    label = {"reconstruction_error": "reconstruction error",
             "nats_per_char": "nats/char"}.get(record.get("metric"), "loss")
    phase = record["phase"] if record.get("group") is None else \
        f"{record['phase']}/g{record['group']}"        # a distributed job's worker group
    parts = [f"{phase:<8} step {record['step']:>6}", f"{label} {record['loss']:.4f}"]
    if record.get("accuracy") is not None:
        parts.append(f"accuracy {record['accuracy']:.4f}")
    if record.get("perplexity") is not None:
        parts.append(f"perplexity {record['perplexity']:.2f}")
    if record.get("skipped"):                      # --on-nan skip: steps not applied
        parts.append(f"skipped {record['skipped']}")
    if record.get("samples_per_s") is not None:
        parts.append(f"{record['samples_per_s']:.0f} samples/s")
    return "  ".join(parts)


class Progress:
    def __init__(self, job_name: str, total_steps: int, start_step: int, workspace: pathlib.Path,
                 quiet: bool = False, resume: bool = False):
        self.quiet = quiet
        self.start = time.perf_counter()
        workspace.mkdir(parents=True, exist_ok=True)
        self.metrics_path = workspace / "metrics.jsonl"
        mode = "a" if resume else "w"
        self._metrics = open(self.metrics_path, mode, encoding="utf-8")
        self.records: list[dict] = []
        self._live = None
        if not quiet and (CONSOLE is not None or sys.stderr.isatty()):
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress as RichProgress,
                                       TextColumn, TimeElapsedColumn, TimeRemainingColumn)
            self._live = RichProgress(
                TextColumn(f"[bold]{job_name}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[status]}"), TimeElapsedColumn(), TextColumn("eta"),
                TimeRemainingColumn(), transient=False, console=CONSOLE)
            self._task = self._live.add_task("train", total=total_steps, completed=start_step,
                                             status="")
            self._live.start()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def record(self, record: dict):
        record = {**record, "time": round(self.elapsed(), 4)}
        self.records.append(record)
        self._metrics.write(json.dumps(record) + "\n")
        self._metrics.flush()
        if self.quiet:
            return
        if self._live is not None:
            self._live.console.print(_fmt(record))
            if record["phase"] == "train":
                self._live.update(self._task, status=_fmt(record).split("  ", 1)[1])
        else:
            print(_fmt(record), flush=True)

    def advance(self, step: int):
        if self._live is not None:
            self._live.update(self._task, completed=step)

    def message(self, text: str):
        if not self.quiet:
            if self._live is not None:
                self._live.console.print(text)
            else:
                print(text, flush=True)

    def close(self):
        if self._live is not None:
            self._live.stop()
            self._live = None
        self._metrics.close()
