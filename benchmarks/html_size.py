"""Size and speed of the standalone HTML export (viz.to_html) at 16, 64, 200 and 512 tokens.

For each length, an encoder of all-MiniLM-L6-v2's shape (6 layers x 12 heads, d_model 384;
random weights, or MiniLM itself with --minilm on a long text) runs once and two pages are
made with the defaults (every weight up to 64 tokens, each row's 16 largest past that, and the
vectors of the starting layer for the neuron, step and plane views): one as it is and one with
``norms=value_weighted_norms(model, trace)``. Printed: each file's size, the time to build the
page (to_html without a path) and, with --browser, the time headless Chromium needs to open it
and draw every view (until window.attentionView exists), via Playwright; best of --repeats.
The machine's load average (and its number of CPUs) before and after is printed too: on a busy
machine every time is longer.

    python benchmarks/html_size.py [--browser] [--minilm] [--repeats 3]

Targets (issue 14): at most 1 MB at 64 tokens; at 512 tokens at most 5 MB, open in at most
2 s. For comparison, BertViz's published behaviour (measured in issue 14 on the same
lengths): its page loads its script from a CDN, so it is blank offline; its files are 11 to
17 times larger than this page was before quantisation; and its head view takes 13 s to draw
at 200 tokens.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from minitransformer.config import EncoderConfig
from minitransformer.encoder import Encoder
from minitransformer.interpret import value_weighted_norms
from viz.html_export import to_html

LENGTHS = [16, 64, 200, 512]
TARGETS = {64: (1_000_000, None), 512: (5_000_000, 2.0)}  # tokens -> (bytes, seconds)


def random_trace(tokens: int):
    """A random encoder of MiniLM's shape, its trace of one sequence of ``tokens`` ids, and the
    tokens."""
    config = EncoderConfig(
        vocab_size=1000, d_model=384, n_heads=12, n_layers=6, d_ff=1536, max_len=tokens
    )
    ids = np.random.default_rng(0).integers(0, 1000, size=(1, tokens))
    model = Encoder(config, seed=0)
    return model, model.run_with_trace(ids)[1], [f"tok{i}" for i in range(tokens)]


def minilm_trace(tokens: int):
    """MiniLM, its trace of the README cut to ``tokens`` tokens, and the tokens."""
    from minitransformer import load_pretrained

    model, tokenizer = load_pretrained("all-MiniLM-L6-v2")
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text().replace("\n", " ")
    batch = tokenizer([text], max_length=tokens)
    return model, model.run_with_trace(batch)[1], batch.tokens[0]


def load() -> str:
    """The machine's load averages over 1, 5 and 15 minutes, and its CPUs."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


def best_time(function, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def browser_times(paths: list[Path], repeats: int) -> list[float]:
    """Seconds from navigation until the page has drawn, in headless Chromium (best of)."""
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    times = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, args=["--no-sandbox", "--disable-gpu", "--no-first-run"]
        )
        for path in paths:
            best = float("inf")
            for _ in range(repeats):
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                start = time.perf_counter()
                page.goto(path.as_uri())
                page.wait_for_function("window.attentionView !== undefined", timeout=60_000)
                best = min(best, time.perf_counter() - start)
                page.close()
            times.append(best)
        browser.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--browser", action="store_true", help="also time Chromium's load")
    parser.add_argument("--minilm", action="store_true", help="MiniLM on the README's text")
    parser.add_argument("--repeats", type=int, default=3, help="best of this many runs")
    args = parser.parse_args()

    before = load()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for tokens in LENGTHS:
            model, trace, labels = (minilm_trace if args.minilm else random_trace)(tokens)
            norms = value_weighted_norms(model, trace)
            for kind, extra in (("", {}), (" + norms", {"norms": norms})):
                path = Path(folder) / f"{tokens}{kind.strip(' +')}.html"
                to_html(trace, labels, path, **extra)
                build = best_time(
                    lambda t=trace, l=labels, e=extra: to_html(t, l, **e), args.repeats
                )
                rows.append((f"{tokens}{kind}", tokens, path.stat().st_size, build))
                paths.append(path)
        opens = browser_times(paths, args.repeats) if args.browser else [None] * len(rows)

    source = "all-MiniLM-L6-v2 on the README" if args.minilm else "random MiniLM-shaped encoder"
    print(f"to_html, 6 layers x 12 heads, d_model 384 ({source}), default options")
    print(f"before: {before}; after: {load()}")
    print(f"{'tokens':>14} {'bytes':>11} {'build s':>8} {'chromium s':>11}  target")
    for (name, tokens, size, build), opened in zip(rows, opens, strict=True):
        shown = "-" if opened is None else f"{opened:.2f}"
        limit, seconds = TARGETS.get(tokens, (None, None))
        target = ""
        if limit is not None:
            target = f"<= {limit / 1e6:g} MB: {'yes' if size <= limit else 'NO'}"
        if seconds is not None and opened is not None:
            target += f"; <= {seconds:g} s: {'yes' if opened <= seconds else 'NO'}"
        print(f"{name:>14} {size:>11,} {build:>8.2f} {shown:>11}  {target}")


if __name__ == "__main__":
    main()
