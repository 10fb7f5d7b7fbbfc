"""Size and speed of the standalone HTML export (viz.to_html) for several model sizes.

For each (layers, heads, tokens) a random encoder of that shape runs once; the page is made
with 3 decimals (two bytes per weight) and with 2 (one byte). Prints the file size, the part
of it that is the weights, the time to build the page (to_html without a path) and to write it
(to_html with a path). With --browser, also the time headless Chromium needs to open the page
and draw it (until window.attentionView exists), via Playwright.

    python benchmarks/html_size.py [--browser]

Target (issue 6): a 6-layer x 12-head trace at 64 tokens under 2 MB. The weights take
layers * heads * n^2 * bytes, times 4/3 for base64; everything else (script, style, colour
table, tokens) is about 25 KB.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from minitransformer.config import EncoderConfig
from minitransformer.encoder import Encoder
from viz.html_export import to_html

CASES = [(2, 4, 16), (6, 12, 64), (6, 12, 128), (12, 12, 128), (6, 12, 256)]
LIMIT = 2_000_000  # bytes


def trace_of(layers: int, heads: int, tokens: int):
    """A trace of a random encoder with this many layers, heads and tokens (one sequence)."""
    config = EncoderConfig(
        vocab_size=100, d_model=4 * heads, n_heads=heads, n_layers=layers, d_ff=8 * heads,
        max_len=tokens,
    )  # fmt: skip
    ids = np.random.default_rng(0).integers(0, 100, size=(1, tokens))
    return Encoder(config, seed=0).run_with_trace(ids)[1]


def best_time(function, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def browser_times(paths: list[Path]) -> list[float]:
    """Seconds from navigation until the page has drawn, in headless Chromium."""
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    times = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, args=["--no-sandbox", "--disable-gpu", "--no-first-run"]
        )
        for path in paths:
            page = browser.new_page()
            start = time.perf_counter()
            page.goto(path.as_uri())
            page.wait_for_function("window.attentionView !== undefined")
            times.append(time.perf_counter() - start)
            page.close()
        browser.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--browser", action="store_true", help="also time Chromium's load")
    args = parser.parse_args()

    rows = []
    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for layers, heads, tokens in CASES:
            trace = trace_of(layers, heads, tokens)
            labels = [f"tok{i}" for i in range(tokens)]
            for decimals in (3, 2):
                path = Path(folder) / f"{layers}x{heads}@{tokens}-{decimals}.html"
                size = len(to_html(trace, labels, decimals=decimals).encode("utf-8"))
                weights = 4 * -(-layers * heads * tokens**2 * (2 if decimals > 2 else 1) // 3)
                build = best_time(lambda t=trace, l=labels, d=decimals: to_html(t, l, decimals=d))
                write = best_time(
                    lambda t=trace, l=labels, d=decimals, p=path: to_html(t, l, p, decimals=d)
                )
                rows.append([layers, heads, tokens, decimals, size, weights, build, write])
                paths.append(path)
        loads = browser_times(paths) if args.browser else [None] * len(rows)

    print(f"{'layers x heads @ tokens':>24} {'dec':>3} {'bytes':>11} {'weights':>11} "
          f"{'build ms':>9} {'write ms':>9} {'chromium ms':>12}  < 2 MB")  # fmt: skip
    for (layers, heads, tokens, decimals, size, weights, build, write), load in zip(
        rows, loads, strict=True
    ):
        shape = f"{layers} x {heads} @ {tokens}"
        shown = "-" if load is None else f"{1000 * load:.0f}"
        print(f"{shape:>24} {decimals:>3} {size:>11,} {weights:>11,} {1000 * build:>9.1f} "
              f"{1000 * write:>9.1f} {shown:>12}  {'yes' if size < LIMIT else 'NO'}")  # fmt: skip


if __name__ == "__main__":
    main()
