"""Responsiveness of the explorer: the time from a control change to the new picture.

A MiniLM-sized encoder (6 layers, 12 heads, d_model 384) at 32 and 128 tokens; for every view
the head control is changed a few times, and the what-if controls re-run the model (the
heatmap then shows the model as it is beside the what-if). Prints, per control, the median
time from setting the control's value to the new PNG in the image widget (Python side: the
callback's re-run, figure update and PNG; not the browser's decoding and painting), wall
clock and CPU time of this process (the machine may be shared: CPU time is what the callback
itself costs, wall-clock time what a user waits). Issue 6 targets: under 100 ms at 32 tokens
and under 300 ms at 128 tokens; issue 16: 150 ms in the browser at 32 tokens.

    python benchmarks/explorer.py [--repeats R] [--pixel-ratio 1|2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

from minitransformer import Encoder, EncoderConfig
from viz.explorer import ALL_TOKENS, PIXEL_RATIO, VIEWS, Explorer, explore

LENGTHS = (32, 128)


def minilm_sized_model() -> Encoder:
    config = EncoderConfig(
        vocab_size=1000, d_model=384, n_heads=12, n_layers=6, d_ff=1536, max_len=128,
        positional="learned", activation="gelu", embed_layer_norm=True,
    )  # fmt: skip
    return Encoder(config, seed=0)


def median_ms(explorer: Explorer, change: list[tuple[object, object]]) -> tuple[float, float]:
    """Apply each (widget, value) in turn; the medians of the wall-clock times of the callbacks
    (re-run and redraw) and of the CPU times they took."""
    wall, cpu = [], []
    for widget, value in change:
        start, start_cpu = time.perf_counter(), time.process_time()
        widget.value = value  # type: ignore[attr-defined]
        wall.append((time.perf_counter() - start) * 1e3)
        cpu.append((time.process_time() - start_cpu) * 1e3)
    return statistics.median(wall), statistics.median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=4, help="changes per control")
    parser.add_argument(
        "--pixel-ratio", type=int, default=PIXEL_RATIO, choices=(1, 2),
        help="PNG pixels per pixel shown (2: sharp on high-DPI screens)",
    )  # fmt: skip
    args = parser.parse_args()
    model = minilm_sized_model()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores, "
          f"pixel ratio {args.pixel_ratio}")  # fmt: skip
    print(f"{'median ms per change':<34}" + "".join(f"{n:>8} tok (CPU)" for n in LENGTHS))
    rows: dict[str, list[tuple[float, float]]] = {}
    for n in LENGTHS:
        ids = np.random.default_rng(0).integers(0, 1000, n)
        tokens = [f"tok{i}" for i in range(n)]
        explorer = explore(model=model, token_ids=ids, tokens=tokens, pixel_ratio=args.pixel_ratio)
        heads = [(explorer.head, h) for h in range(1, args.repeats + 1)]
        for view in VIEWS:
            explorer.view.value = view
            rows.setdefault(f"head, in the {view}", []).append(median_ms(explorer, heads))
            if view in ("head view", "query breakdown"):
                queries = [(explorer.query, q) for q in range(1, args.repeats + 1)]
                rows.setdefault(f"query token, in the {view}", []).append(
                    median_ms(explorer, queries)
                )
                explorer.query.value = ALL_TOKENS
            if view == "step by step":
                steps = [(explorer.step, s) for s in range(2, args.repeats + 2)]
                rows.setdefault("step slider", []).append(median_ms(explorer, steps))
        explorer.view.value = "heatmap"
        layers = [(explorer.layer, l % 6) for l in range(1, args.repeats + 1)]
        rows.setdefault("layer, in the heatmap", []).append(median_ms(explorer, layers))
        queries = [(explorer.query, q) for q in range(1, args.repeats + 1)]
        rows.setdefault("query token, in the heatmap", []).append(median_ms(explorer, queries))
        masks = [(explorer.masked, (q,)) for q in range(1, args.repeats + 1)]
        rows.setdefault("what if: mask a token (re-run)", []).append(median_ms(explorer, masks))
        temps = [(explorer.temperature, t) for t in (0.5, 2.0, 0.8, 1.25)[: args.repeats]]
        rows.setdefault("what if: temperature (re-run)", []).append(median_ms(explorer, temps))
        ablate = [(explorer.ablated, ((0, h),)) for h in range(args.repeats)]
        rows.setdefault("what if: ablate a head (re-run)", []).append(median_ms(explorer, ablate))
        heads = [(explorer.head, h) for h in range(1, args.repeats + 1)]
        rows.setdefault("head, beside a what-if (heatmap)", []).append(median_ms(explorer, heads))
    for name, times in rows.items():
        print(f"{name:<34}" + "".join(f"{wall:8.0f} ms ({cpu:3.0f})" for wall, cpu in times))


if __name__ == "__main__":
    main()
