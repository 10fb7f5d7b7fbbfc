"""Render time of every figure of :mod:`viz` for MiniLM traces of 16 to 512 tokens.

Each time is one figure built and saved as PNG (100 dpi, into memory): the median of
``--repeats`` runs, as wall-clock time and as the process's CPU time (steadier when other
programs share the CPUs: it leaves out the time spent waiting for a CPU). The figures are
those of the gallery (:func:`gallery.figure_builders`), plus the slide frames of the
step-by-step figure, the attention-over-training strip and GIF (8 snapshots of the trace's
weights), and the explorer's redraw after a view change.

    python benchmarks/figures.py [--sizes 16 64 128 200 512] [--repeats 3] [--only NAME ...]

Targets: the 6 x 12 model view renders in under 2 s at 64 tokens (issue 5) and in under 3 s
at 512 tokens (issue 14). The machine may be shared: the load average is printed with the
numbers (1-, 5- and 15-minute averages), and the CPU time beside the wall-clock time.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from gallery import LONG_TEXT, Subject, figure_builders, minilm_subject  # noqa: E402

import viz  # noqa: E402
from viz.training import animate_attention, attention_over_training  # noqa: E402

#: Targets of the 6 x 12 model view, in seconds, by number of tokens.
TARGET_SECONDS = {64: 2.0, 512: 3.0}


def timed(run: Callable[[], object]) -> tuple[float, float]:
    """(wall-clock seconds, CPU seconds) of ``run()``."""
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return time.perf_counter() - wall, time.process_time() - cpu


def save_png(made: Figure | list[Figure]) -> None:
    """Save the figure(s) as PNG into memory: what rendering costs."""
    for fig in made if isinstance(made, list) else [made]:
        fig.savefig(io.BytesIO(), format="png", dpi=100)


def explorer_redraw(subject: Subject) -> tuple[float, float]:
    """(wall, CPU) seconds of the explorer's redraw after switching to the model view."""
    explorer = viz.explore(subject.trace, subject.tokens)

    def switch() -> None:
        explorer.view.value = "model view"

    return timed(switch)


def timings(
    subject: Subject, repeats: int, folder: Path, only: list[str] | None = None
) -> dict[str, tuple[float, float]]:
    """Median (wall, CPU) seconds of every figure (or those named in ``only``) for one subject."""
    weights = np.stack(
        [subject.trace[f"blocks.{l}.attn.weights"][0] for l in range(subject.trace.n_layers)]
    )  # (L, H, S, S)
    snapshots = SimpleNamespace(steps=list(range(0, 80, 10)), weights=np.stack([weights] * 8))
    s = subject
    makers: dict[str, Callable[[], tuple[float, float]]] = {}
    for name, _, build in figure_builders():
        makers[name] = lambda build=build: timed(lambda: save_png(build(s)))
    makers["step_frames (15 PNGs)"] = lambda: timed(
        lambda: save_png(
            viz.attention_step_frames(s.trace, s.layer, s.head, s.tokens, s.model.params)
        )
    )
    makers["training_strip (8 steps)"] = lambda: timed(
        lambda: save_png(attention_over_training(snapshots, s.layer, s.head, s.tokens))
    )
    makers["training GIF (8 frames)"] = lambda: timed(
        lambda: animate_attention(snapshots, s.layer, s.head, folder / "head.gif", tokens=s.tokens)
    )
    makers["explorer redraw (model view)"] = lambda: explorer_redraw(s)  # fmt: skip
    result = {}
    for name, run in makers.items():
        if only and name not in only:
            continue
        runs = [run() for _ in range(repeats)]
        wall = statistics.median(w for w, _ in runs)
        cpu = statistics.median(c for _, c in runs)
        result[name] = (wall, cpu)
        print(f"  {len(s.tokens):4d} tokens  {name:30s} {wall:6.2f} s  (CPU {cpu:5.2f} s)",
              flush=True)  # fmt: skip
    return result


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 64, 128, 200, 512])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", nargs="+", default=None, help="figure names to time")
    args = parser.parse_args(argv)
    print(f"start: {load()}", flush=True)
    table: dict[int, dict[str, tuple[float, float]]] = {}
    folder = Path(os.environ.get("TMPDIR", "/tmp"))
    for size in args.sizes:
        subject = minilm_subject(LONG_TEXT, max_length=size)
        if len(subject.tokens) != size:
            raise ValueError(f"the text gives {len(subject.tokens)} tokens, not {size}")
        table[size] = timings(subject, args.repeats, folder, args.only)
    print(f"end:   {load()}\n")
    names = list(next(iter(table.values())))
    print("wall-clock seconds (CPU seconds), median of", args.repeats, "runs\n")
    print("| figure | " + " | ".join(f"{s} tokens" for s in args.sizes) + " |")
    print("|---|" + "---:|" * len(args.sizes))
    for name in names:
        cells = " | ".join(f"{table[s][name][0]:.2f} ({table[s][name][1]:.2f})" for s in args.sizes)
        print(f"| {name} | {cells} |")
    for size, target in TARGET_SECONDS.items():
        if size in table and "model_view" in table[size]:
            wall, cpu = table[size]["model_view"]
            verdict = "meets" if wall < target else "MISSES"
            print(f"model view 6 x 12 at {size} tokens: {wall:.2f} s wall, {cpu:.2f} s CPU "
                  f"({verdict} the {target:.0f} s target in wall time)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
