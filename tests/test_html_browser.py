"""The HTML export in a real browser: headless Chromium driven by Playwright, checked via the DOM.

Skips when Playwright (the ``test`` extra) or Chromium (Debian's ``chromium`` package, which
``.ci/run`` installs) is missing. One browser serves the whole module; every test opens the
page fresh and records what the page did: dialogs (``alert``), console errors, uncaught
exceptions and every request (the file itself must be the only one).
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field

import numpy as np
import pytest

from minitransformer.config import EncoderConfig
from minitransformer.encoder import Encoder
from minitransformer.interpret import value_weighted_norms
from viz.html_export import asset, to_html

sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not os.path.exists(CHROMIUM):
    pytest.skip(
        "no Chromium: install Debian's chromium package to run the browser tests",
        allow_module_level=True,
    )

LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TOKENS = ["[CLS]", "the", "cat", "sat", "down", "[SEP]", "[PAD]"]
HOSTILE = [
    "[CLS]",
    "<img src=x onerror=alert(1)>",
    "</script><script>window.pwned = 1</script>",
    "\"'&amp;",
    "<!--",
    "a\u2028b",
    "[PAD]",
]
N_REAL = 6  # the last position is padding and is left out of the page


@pytest.fixture(scope="module")
def model():
    return Encoder(EncoderConfig(n_layers=3, n_heads=4), seed=7)


@pytest.fixture(scope="module")
def trace(model):
    _, trace = model.run_with_trace([[2, 8, 9, 10, 11, 3, 0]], mask=[[1] * 6 + [0]])
    return trace


def weights(trace, layer: int, head: int) -> np.ndarray:
    """The (n, n) weights of one head over the real tokens."""
    return trace[f"blocks.{layer}.attn.weights"][0, head, :N_REAL, :N_REAL]


@pytest.fixture(scope="module")
def pages(model, trace, tmp_path_factory):
    folder = tmp_path_factory.mktemp("html")
    paths = {"plain": folder / "plain.html", "hostile": folder / "hostile.html"}
    to_html(trace, TOKENS, paths["plain"])
    to_html(trace, HOSTILE, paths["hostile"], title="<img src=y onerror=alert(3)>",
            norms=value_weighted_norms(model, trace))  # fmt: skip
    return paths


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        except sync_api.Error as error:
            pytest.skip(f"Chromium at {CHROMIUM} did not start: {error}")
        yield browser
        browser.close()


@dataclass
class Events:
    """What a page did while the test drove it."""

    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    failed: dict[str, str | None] = field(default_factory=dict)  # url -> why


@pytest.fixture
def open_page(browser):
    """``open_page(path) -> (page, events)``: the page loaded from the file, watched."""
    opened = []

    def open_(path):
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        opened.append(page)
        events = Events()

        def on_dialog(dialog):
            events.dialogs.append(dialog.message)
            dialog.dismiss()

        page.on("dialog", on_dialog)
        page.on("console", lambda m: events.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda error: events.errors.append(str(error)))
        page.on("request", lambda request: events.requests.append(request.url))
        page.on(
            "requestfailed", lambda request: events.failed.update({request.url: request.failure})
        )
        page.goto(path.as_uri())
        page.wait_for_function("window.attentionView !== undefined")
        return page, events

    yield open_
    for page in opened:
        page.close()


def state(page) -> dict:
    return page.evaluate("window.attentionView.state()")


# --------------------------------------------------------------------- selection


def test_changing_head_and_layer_changes_the_drawn_weights(open_page, pages, trace):
    page, events = open_page(pages["plain"])
    first = state(page)
    assert (first["layer"], first["head"]) == (0, 0)
    drawn = np.array(first["heatmap"]["weights"]).reshape(N_REAL, N_REAL)
    np.testing.assert_allclose(drawn, weights(trace, 0, 0), atol=0.5e-3 + 1e-6)

    page.select_option("#head-select", "2")
    now = state(page)
    assert (now["heatmap"]["layer"], now["heatmap"]["head"]) == (0, 2)
    drawn = np.array(now["heatmap"]["weights"]).reshape(N_REAL, N_REAL)
    np.testing.assert_allclose(drawn, weights(trace, 0, 2), atol=0.5e-3 + 1e-6)
    assert np.abs(drawn - np.array(first["heatmap"]["weights"]).reshape(drawn.shape)).max() > 0.01
    assert now["heatmap"]["vmax"] == pytest.approx(weights(trace, 0, 2).max(), abs=0.5e-3 + 1e-6)

    page.select_option("#layer-select", "2")
    now = state(page)
    assert (now["layer"], now["head"]) == (2, 2)
    drawn = np.array(now["heatmap"]["weights"]).reshape(N_REAL, N_REAL)
    np.testing.assert_allclose(drawn, weights(trace, 2, 2), atol=0.5e-3 + 1e-6)
    assert page.get_attribute("#heatmap-canvas", "data-layer") == "2"
    assert page.get_attribute("#heatmap-canvas", "data-head") == "2"
    assert "Layer 2, head 2" in page.text_content("#heatmap-scale")
    assert events.errors == [] and events.dialogs == []


def test_the_page_opens_at_the_head_and_query_it_was_given(open_page, trace, tmp_path):
    path = tmp_path / "start.html"
    to_html(trace, TOKENS, path, layer=2, head=1, query=3)
    page, events = open_page(path)
    now = state(page)
    assert (now["layer"], now["head"], now["query"], now["pinned"]) == (2, 1, 3, True)
    assert page.input_value("#layer-select") == "2" and page.input_value("#head-select") == "1"
    drawn = np.array(now["heatmap"]["weights"]).reshape(N_REAL, N_REAL)
    np.testing.assert_allclose(drawn, weights(trace, 2, 1), atol=0.5e-3 + 1e-6)
    assert page.get_attribute("#heatmap-row", "data-row") == "3"
    page.hover("h1")  # pinned: the focus stays when the mouse is elsewhere
    assert state(page)["query"] == 3
    assert events.errors == []


def test_heatmap_pixels_have_the_colour_of_their_weight(open_page, pages, trace):
    page, _ = open_page(pages["plain"])
    page.select_option("#head-select", "1")
    heatmap = state(page)["heatmap"]
    drawn = np.array(heatmap["weights"]).reshape(N_REAL, N_REAL)
    colormap = page.evaluate(
        "JSON.parse(document.getElementById('attention-data').textContent).colormap"
    )
    pixels = page.evaluate(
        """() => {
        const canvas = document.getElementById("heatmap-canvas");
        return Array.from(canvas.getContext("2d").getImageData(0, 0, canvas.width,
                                                                canvas.height).data);
    }"""
    )
    rgba = np.array(pixels).reshape(N_REAL, N_REAL, 4)  # (row = query, column = key, RGBA)
    assert (rgba[..., 3] == 255).all()
    for i in range(N_REAL):
        for j in range(N_REAL):
            level = round(drawn[i, j] / heatmap["vmax"] * 255)
            hexes = colormap[max(level - 1, 0) : level + 2]  # float32 vs float64 rounding
            assert "#{:02x}{:02x}{:02x}".format(*rgba[i, j, :3]) in hexes, (i, j)
    darkest = np.unravel_index(np.argmax(drawn), drawn.shape)
    assert "#{:02x}{:02x}{:02x}".format(*rgba[darkest][:3]) == colormap[-1]


def test_clicking_a_thumbnail_selects_that_layer_and_head(open_page, pages, trace):
    page, events = open_page(pages["plain"])
    assert page.locator("#model-view button").count() == 3 * 4
    page.click('#model-view button[data-layer="1"][data-head="3"]')
    now = state(page)
    assert (now["layer"], now["head"]) == (1, 3)
    assert page.input_value("#layer-select") == "1" and page.input_value("#head-select") == "3"
    selected = page.locator("#model-view button.selected")
    assert selected.count() == 1
    assert selected.get_attribute("data-layer") == "1"
    assert selected.get_attribute("data-head") == "3"
    drawn = np.array(now["heatmap"]["weights"]).reshape(N_REAL, N_REAL)
    np.testing.assert_allclose(drawn, weights(trace, 1, 3), atol=0.5e-3 + 1e-6)
    assert now["headView"]["layer"] == 1
    assert events.errors == []


def test_a_causal_mask_is_drawn_grey_and_listed_as_masked(open_page, tmp_path):
    from viz.style import MASKED_COLOR

    model = Encoder(EncoderConfig(n_layers=1, n_heads=2, causal=True), seed=2)
    _, causal = model.run_with_trace([[2, 8, 9, 10]])
    path = tmp_path / "causal.html"
    to_html(causal, ["a", "b", "c", "d"], path)
    page, events = open_page(path)
    pixels = page.evaluate(
        """() => Array.from(document.getElementById("heatmap-canvas").getContext("2d")
                                 .getImageData(0, 0, 4, 4).data)"""
    )
    rgba = np.array(pixels).reshape(4, 4, 4)
    grey = [int(MASKED_COLOR[k : k + 2], 16) for k in (1, 3, 5)]
    for i in range(4):
        for j in range(4):
            assert (list(rgba[i, j, :3]) == grey) == (j > i), (i, j)
    page.hover('#heatmap-queries div[data-index="1"]')
    listed = page.locator("#row-values li")
    assert [listed.nth(j).get_attribute("data-weight") for j in range(4)][2:] == ["masked"] * 2
    assert "grey = masked" in page.text_content("#heatmap-scale")
    assert events.errors == []


# --------------------------------------------------------------------- hover focus


def test_hovering_query_i_frames_row_i_lists_its_weights_and_keeps_its_lines(
    open_page, pages, trace
):
    page, events = open_page(pages["plain"])
    page.select_option("#layer-select", "1")
    before = state(page)["headView"]
    assert before["query"] is None and before["lines"] is None
    assert before["count"] > 4 * N_REAL, "without focus every query draws its lines"

    i = 3
    page.hover(f'#head-view-queries div[data-index="{i}"]')
    now = state(page)
    assert now["query"] == i
    # The heatmap frames row i, at the height of row i.
    frame = page.locator("#heatmap-row")
    assert frame.is_visible() and frame.get_attribute("data-row") == str(i)
    canvas_box = page.locator("#heatmap-canvas").bounding_box()
    frame_box = frame.bounding_box()
    row_height = canvas_box["height"] / N_REAL
    assert frame_box["y"] == pytest.approx(canvas_box["y"] + i * row_height, abs=2)
    assert frame_box["height"] == pytest.approx(row_height, abs=2)
    # Only token i is marked, in the heatmap labels and in the head view.
    for column in ("#heatmap-queries", "#head-view-queries"):
        marked = page.locator(f"{column} div.focus")
        assert marked.count() == 1 and marked.text_content() == TOKENS[i]
    # The list under the heatmap holds row i of layer 1, head 0.
    # ... largest first, each with its key.
    listed = page.locator("#row-values li")
    keys = [int(listed.nth(c).get_attribute("data-key")) for c in range(listed.count())]
    values = [float(listed.nth(c).get_attribute("data-weight")) for c in range(listed.count())]
    assert sorted(keys) == list(range(N_REAL))
    assert values == sorted(values, reverse=True)
    np.testing.assert_allclose(values, weights(trace, 1, 0)[i][keys], atol=0.5e-3 + 1e-6)
    # The head view keeps the lines of query i only: weight from the trace, alpha = w / top.
    view = now["headView"]
    assert view["query"] == i and view["heads"] == [0, 1, 2, 3]
    row = np.stack([weights(trace, 1, h)[i] for h in range(4)])  # (heads, keys)
    assert view["top"] == pytest.approx(row.max(), abs=0.5e-3 + 1e-6)
    assert {line["query"] for line in view["lines"]} == {i}
    for line in view["lines"]:
        assert line["weight"] == pytest.approx(row[line["head"], line["key"]], abs=0.5e-3 + 1e-6)
        level = round(line["weight"] / view["top"] * 255)  # opacity in 8 bits, as a canvas
        assert line["alpha"] == pytest.approx(level / 255, abs=1e-6)
    rounded = np.round(row, 3)
    expected = np.count_nonzero(np.round(rounded / rounded.max() * 255) >= 1)
    assert len(view["lines"]) == view["count"] == expected

    page.hover("h1")  # leaving the token drops the focus
    assert state(page)["query"] is None
    assert not page.locator("#heatmap-row").is_visible()
    assert page.locator("#row-values li").count() == 0
    assert events.errors == []


def test_hovering_a_heatmap_cell_focuses_its_row_and_shows_its_value(open_page, pages, trace):
    page, _ = open_page(pages["plain"])
    box = page.locator("#heatmap-canvas").bounding_box()
    cell = box["width"] / N_REAL
    i, j = 4, 1
    page.mouse.move(box["x"] + (j + 0.5) * cell, box["y"] + (i + 0.5) * cell)
    assert state(page)["query"] == i
    marked_key = page.locator("#heatmap-keys div.focus")
    assert marked_key.count() == 1 and marked_key.text_content() == TOKENS[j]
    readout = page.text_content("#cell-readout")
    assert readout.startswith(f'query {i} "{TOKENS[i]}" \u2192 key {j} "{TOKENS[j]}": ')
    assert float(readout.rsplit(": ", 1)[1]) == pytest.approx(weights(trace, 0, 0)[i, j], abs=6e-4)

    page.mouse.click(box["x"] + (j + 0.5) * cell, box["y"] + (i + 0.5) * cell)  # pin the row
    page.hover("h1")
    assert state(page)["query"] == i and state(page)["pinned"]


def test_head_swatches_show_and_hide_heads(open_page, pages):
    page, _ = open_page(pages["plain"])
    page.click('#head-view-queries div[data-index="0"]')  # a click keeps the focus
    page.click('#head-swatches button[data-head="1"]')  # hide head 1
    view = state(page)["headView"]
    assert view["heads"] == [0, 2, 3]
    assert page.get_attribute('#head-swatches button[data-head="1"]', "aria-pressed") == "false"
    assert {line["head"] for line in view["lines"]} <= {0, 2, 3}
    page.dblclick('#head-swatches button[data-head="2"]')  # head 2 alone
    view = state(page)["headView"]
    assert view["heads"] == [2] and {line["head"] for line in view["lines"]} == {2}
    assert view["query"] == 0
    page.click('#head-view-queries div[data-index="0"]')  # a second click releases it
    page.hover("h1")
    assert state(page)["query"] is None


# --------------------------------------------------------------------- safety


def test_injection_tokens_are_shown_as_text_and_run_nothing(open_page, pages):
    page, events = open_page(pages["hostile"])
    for i in range(N_REAL):  # hover every token, so every view shows every token
        page.hover(f'#head-view-queries div[data-index="{i}"]')
        page.hover(f'#heatmap-queries div[data-index="{i}"]')
    page.click('#model-view button[data-layer="2"][data-head="1"]')

    for column in ("#head-view-queries", "#head-view-keys", "#heatmap-queries", "#norms-keys"):
        texts = page.eval_on_selector_all(f"{column} div", "nodes => nodes.map(n => n.textContent)")
        assert texts == HOSTILE[:N_REAL]
    page.click('#model-view button[data-layer="0"][data-head="1"]')  # a layer with vectors
    page.click('#heatmap-queries div[data-index="2"]')  # pin query 2: the neuron view lists keys
    neuron_tokens = page.eval_on_selector_all(
        "#neuron td.token", "nodes => nodes.map(n => n.textContent)"
    )
    assert set(HOSTILE[:N_REAL]) <= set(neuron_tokens)
    assert f"q: {HOSTILE[2]}" in neuron_tokens
    step_tokens = page.eval_on_selector_all(
        "#steps .query-labels div", "nodes => nodes.map(n => n.textContent)"
    )
    assert step_tokens == HOSTILE[:N_REAL]
    listed = page.eval_on_selector_all(  # the row list with norms: "3 <token>" per key
        "#row-values li[data-norm] .token", "nodes => nodes.map(n => n.textContent.slice(3))"
    )
    assert sorted(listed) == sorted(HOSTILE[:N_REAL])
    assert page.text_content("h1") == "<img src=y onerror=alert(3)>"
    assert page.title() == "<img src=y onerror=alert(3)>"
    assert page.locator("img").count() == 0
    assert page.locator("script").count() == 2
    assert page.evaluate("typeof window.pwned") == "undefined"
    assert page.evaluate("document.querySelectorAll('[onerror]').length") == 0
    assert events.dialogs == []
    assert events.errors == []
    assert events.requests == [pages["hostile"].as_uri()], "the page loads nothing but itself"


def css_rules(source: str) -> list[tuple[str, list[str]]]:
    """The rules of a style sheet without nesting: (selector, [property, ...]) in order."""
    source = re.sub(r"/\*.*?\*/", "", source, flags=re.S)
    rules = []
    for selector, body in re.findall(r"([^{}]+)\{([^{}]*)\}", source):
        declarations = [d.split(":", 1)[0].strip() for d in body.split(";") if d.strip()]
        rules.append((" ".join(selector.split()), declarations))
    return rules


def test_the_browser_understands_every_rule_and_declaration_of_the_style_sheet(open_page, pages):
    """Linting the CSS as CSS: a browser drops a rule with a selector it cannot read and a
    declaration with a property or value it does not know, silently; here none is dropped."""
    page, _ = open_page(pages["plain"])
    rules = css_rules(asset("attention.css"))
    assert len(rules) > 40
    parsed = page.evaluate(
        """(rules) => {
        const sheet = Array.from(document.styleSheets[0].cssRules);
        return [sheet.length, sheet.map((rule, r) => (rules[r] || [null, []])[1]
            .filter((name) => rule.style.getPropertyValue(name) === ""))];
    }""",
        rules,
    )
    count, dropped = parsed
    assert count == len(rules), "a rule the browser could not read"
    assert {rules[r][0]: names for r, names in enumerate(dropped) if names} == {}


def test_the_content_security_policy_blocks_the_network(open_page, pages):
    page, events = open_page(pages["plain"])
    outcome = page.evaluate(
        """async () => {
        const violations = [];
        document.addEventListener("securitypolicyviolation",
                                  (e) => violations.push(e.effectiveDirective));
        let fetched = "loaded";
        try { await fetch("http://127.0.0.1:9/data.json"); } catch (e) { fetched = "blocked"; }
        const image = new Image();
        await new Promise((done) => {
            image.onerror = done; image.onload = done; image.src = "http://127.0.0.1:9/x.png";
        });
        await new Promise((done) => setTimeout(done, 50));
        return { fetched: fetched, image: image.complete && image.naturalWidth, violations };
    }"""
    )
    assert outcome["fetched"] == "blocked"
    assert outcome["image"] == 0
    assert {"connect-src", "img-src"} <= set(outcome["violations"])
    # Chromium reports the image request, then fails it itself, before any network use.
    assert events.requests == [pages["plain"].as_uri(), "http://127.0.0.1:9/x.png"]
    assert events.failed == {"http://127.0.0.1:9/x.png": "csp"}


def test_six_layers_twelve_heads_sixty_four_tokens_load_and_draw(open_page, tmp_path):
    model = Encoder(EncoderConfig(n_layers=6, n_heads=12, d_model=48, max_len=64), seed=0)
    _, big = model.run_with_trace(np.arange(64)[None] % 64)
    path = tmp_path / "big.html"
    to_html(big, [f"tok{i}" for i in range(64)], path)
    page, events = open_page(path)
    assert page.locator("#model-view canvas").count() == 72
    page.click('#model-view button[data-layer="5"][data-head="11"]')
    page.hover('#head-view-queries div[data-index="63"]')
    now = state(page)
    assert (now["layer"], now["head"], now["query"]) == (5, 11, 63)
    drawn = np.array(now["heatmap"]["weights"]).reshape(64, 64)
    np.testing.assert_allclose(drawn, big["blocks.5.attn.weights"][0, 11], atol=0.5e-3 + 1e-6)
    assert events.errors == [] and events.requests == [path.as_uri()]


def test_long_inputs_draw_only_the_most_opaque_lines_and_say_so(open_page, tmp_path):
    model = Encoder(EncoderConfig(n_layers=1, n_heads=12, d_model=48, max_len=72), seed=0)
    _, long = model.run_with_trace(np.arange(72)[None] % 64)
    path = tmp_path / "long.html"
    to_html(long, None, path, top_k=72)  # every key: 12 x 72 x 72 = 62,208 lines
    page, events = open_page(path)
    view = state(page)["headView"]
    # The levels of every line as the page computes them: weights rounded to 3 decimals (as
    # float32), opacity = weight / largest, rounded half up to 1/255 steps.
    rounded = (np.rint(long["blocks.0.attn.weights"][0] * 1000) / 1000).astype(np.float32)
    levels = np.floor(rounded.astype(np.float64) / rounded.max() * 255 + 0.5).astype(int)
    assert view["all"] == np.count_nonzero(levels >= 1) > 50_000
    assert view["count"] == np.count_nonzero(levels >= view["lowest"]) <= 50_000
    assert np.count_nonzero(levels >= view["lowest"] - 1) > 50_000, "the lowest level that fits"
    assert page.text_content("#head-view-note") == (
        f"Showing the {view['count']} most opaque of {view['all']} lines "
        f"(opacity at least {view['lowest']}/255)."
    )
    page.hover('#head-view-queries div[data-index="5"]')  # one query: every line is drawn
    assert state(page)["headView"]["lowest"] == 1
    assert page.text_content("#head-view-note") == ""
    assert events.errors == []


# --------------------------------------------------------------------- lists and keys


def test_the_row_list_sorts_by_weight_or_by_position(open_page, pages, trace):
    page, _ = open_page(pages["plain"])
    page.click('#heatmap-queries div[data-index="2"]')  # pin query 2
    by_weight = state(page)["rowList"]
    expected = np.argsort(-weights(trace, 0, 0)[2], kind="stable").tolist()
    assert by_weight["query"] == 2 and by_weight["keys"][:3] == expected[:3]
    page.select_option("#sort-select", "position")
    assert state(page)["rowList"]["keys"] == list(range(N_REAL))
    listed = page.locator("#row-values li")
    assert [listed.nth(c).get_attribute("data-key") for c in range(N_REAL)] == [
        str(j) for j in range(N_REAL)
    ]
    assert "by position" in page.text_content("#row-title")


def test_the_keyboard_moves_the_query_the_head_and_the_layer(open_page, pages):
    page, events = open_page(pages["plain"])
    page.keyboard.press("ArrowDown")
    assert (state(page)["query"], state(page)["pinned"]) == (0, True)
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    assert state(page)["query"] == 2
    page.keyboard.press("ArrowUp")
    assert state(page)["query"] == 1
    page.keyboard.press("End")
    assert state(page)["query"] == N_REAL - 1
    page.keyboard.press("ArrowDown")  # stays on the last token
    assert state(page)["query"] == N_REAL - 1
    page.keyboard.press("ArrowRight")
    assert (state(page)["layer"], state(page)["head"]) == (0, 1)
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")  # wraps around to the last head
    assert state(page)["head"] == 3
    page.keyboard.press("PageDown")
    assert (state(page)["layer"], page.input_value("#layer-select")) == (1, "1")
    page.keyboard.press("PageUp")
    page.keyboard.press("PageUp")
    assert state(page)["layer"] == 2
    assert state(page)["heatmap"]["layer"] == 2 and state(page)["heatmap"]["head"] == 3
    page.keyboard.press("Escape")
    assert (state(page)["query"], state(page)["pinned"]) == (None, False)
    assert events.errors == []


# --------------------------------------------------------------------- sentence pairs


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    model = Encoder(EncoderConfig(n_layers=1, n_heads=2, type_vocab_size=2), seed=4)
    ids = [[2, 8, 9, 3, 10, 11, 12, 3, 0]]
    types = [[0, 0, 0, 0, 1, 1, 1, 1, 0]]
    _, trace = model.run_with_trace(ids, mask=[[1] * 8 + [0]], token_type_ids=types)
    path = tmp_path_factory.mktemp("pair") / "pair.html"
    to_html(trace, ["[CLS]", "a", "b", "[SEP]", "c", "d", "e", "[SEP]", "[PAD]"], path)
    return path, trace


def test_the_pair_filter_keeps_only_a_to_b(open_page, pair):
    path, trace = pair
    page, events = open_page(path)
    assert page.locator("#filter-label").is_visible()
    page.select_option("#filter-select", "AB")
    view = state(page)["headView"]
    assert view["filter"] == "AB"
    # Lines of A queries to B keys only, as opaque as weight / (largest A -> B weight).
    a_to_b = np.round(trace["blocks.0.attn.weights"][0][:, :4, 4:8], 3)  # (heads, A, B)
    assert view["all"] == np.count_nonzero(np.round(a_to_b / a_to_b.max() * 255) >= 1)
    page.click('#head-view-queries div[data-index="1"]')  # an A query
    view = state(page)["headView"]
    assert {line["key"] for line in view["lines"]} == {4, 5, 6, 7}
    assert state(page)["rowList"]["keys"] and set(state(page)["rowList"]["keys"]) <= {4, 5, 6, 7}
    b_weights = trace["blocks.0.attn.weights"][0, :, 1, 4:8]  # (heads, B keys)
    assert view["top"] == pytest.approx(b_weights.max(), abs=0.5e-3 + 1e-6)
    assert page.locator("#head-view-keys div.outside").count() == 4, "A keys are greyed"
    page.click('#head-view-queries div[data-index="1"]')  # let go
    page.click('#head-view-queries div[data-index="5"]')  # a B query: nothing A -> B
    assert state(page)["headView"]["lines"] == []
    page.select_option("#filter-select", "BA")
    assert {line["key"] for line in state(page)["headView"]["lines"]} == {0, 1, 2, 3}
    assert "faded = outside B \u2192 A" in page.text_content("#heatmap-scale")
    assert events.errors == []


def test_one_sentence_has_no_pair_filter(open_page, pages):
    page, _ = open_page(pages["plain"])
    assert not page.locator("#filter-label").is_visible()
    assert page.locator('#plane-color option[value="segment"]').count() == 0


# --------------------------------------------------------------------- neuron view


def test_the_neuron_view_shows_the_recorded_numbers(open_page, trace, tmp_path):
    path = tmp_path / "neuron.html"
    to_html(trace, TOKENS, path, layer=1, head=2, query=3)
    page, events = open_page(path)
    neuron = state(page)["neuron"]
    assert (neuron["layer"], neuron["head"], neuron["query"]) == (1, 2, 3)
    attn = {name: trace[f"blocks.1.attn.{name}"][0, 2] for name in
            ("q", "z", "qk", "scores", "weights")}  # fmt: skip
    row = attn["weights"][3, :N_REAL]
    assert [entry["key"] for entry in neuron["keys"]] == np.argsort(-row, kind="stable").tolist()
    for entry in neuron["keys"]:
        j = entry["key"]
        qk, score = float(attn["qk"][3, j]), float(attn["scores"][3, j])
        qk_top = float(np.abs(attn["qk"][:N_REAL, :N_REAL]).max())
        score_top = float(np.abs(attn["scores"][:N_REAL, :N_REAL]).max())
        assert entry["qk"] == pytest.approx(qk, abs=qk_top / 3e4)
        assert entry["score"] == pytest.approx(score, abs=score_top / 3e4)
        assert entry["weight"] == pytest.approx(row[j], abs=0.5e-3 + 1e-6)
    for name in ("q", "z"):  # 8 bits: within 1/254 of the vector's largest entry
        recorded = attn[name][3]
        assert np.abs(np.array(neuron[name]) - recorded).max() <= np.abs(recorded).max() / 254
    # The table: a row per key with the recorded numbers as text, largest weight first.
    first = page.locator("#neuron tr[data-key]").first
    assert first.get_attribute("data-key") == str(neuron["keys"][0]["key"])
    cells = first.locator("td.number").all_text_contents()
    assert float(cells[0]) == pytest.approx(neuron["keys"][0]["qk"], rel=2e-3)
    assert float(cells[1]) == pytest.approx(neuron["keys"][0]["score"], rel=2e-3)
    assert "\u00f7 \u221a8 = score" in page.text_content("#neuron tr")
    # Another layer: its vectors are not in the page, and the note says how to add them.
    page.select_option("#layer-select", "2")
    assert state(page)["neuron"] is None
    assert "details=[2]" in page.text_content("#neuron-note")
    assert events.errors == []


def test_unscaled_scores_are_titled_so(open_page, tmp_path):
    model = Encoder(EncoderConfig(n_layers=1, n_heads=2, scale_scores=False), seed=0)
    _, unscaled = model.run_with_trace([[2, 8, 9, 3]])
    path = tmp_path / "unscaled.html"
    to_html(unscaled, None, path, query=1)
    page, _ = open_page(path)
    assert "score (not scaled)" in page.text_content("#neuron tr")
    assert "scores = Q K\u1d40  (" in page.text_content("#steps")
    entry = state(page)["neuron"]["keys"][0]
    assert entry["qk"] == pytest.approx(entry["score"], rel=1e-6)


# --------------------------------------------------------------------- value-weighted norms


def test_the_value_weighted_map_stands_beside_the_weights_with_its_numbers(
    open_page, model, trace, tmp_path
):
    norms = value_weighted_norms(model, trace)
    expected = norms[1, 0, 2, :N_REAL, :N_REAL]  # layer 1, head 2, the real tokens
    path = tmp_path / "norms.html"
    to_html(trace, TOKENS, path, layer=1, head=2, norms=norms)
    page, events = open_page(path)
    heatmap = state(page)["heatmap"]
    drawn = np.array(heatmap["norms"]).reshape(N_REAL, N_REAL)
    step = expected.max() / 65535  # 16 bits, one scale per head
    np.testing.assert_allclose(drawn, expected, atol=step, rtol=1e-6)
    assert heatmap["normsTop"] == pytest.approx(expected.max(), rel=1e-6)
    assert page.is_visible("#norms-canvas") and page.is_visible("#norms-title")
    # its pixels: viridis on [0, the head's largest norm]
    colormap = page.evaluate("JSON.parse(document.getElementById('attention-data')"
                             ".textContent).norms_colormap")  # fmt: skip
    pixels = page.evaluate(
        """() => Array.from(document.getElementById("norms-canvas").getContext("2d")
                                 .getImageData(0, 0, 6, 6).data)"""
    )
    rgba = np.array(pixels).reshape(N_REAL, N_REAL, 4)
    for i in range(N_REAL):
        for j in range(N_REAL):
            level = round(drawn[i, j] / heatmap["normsTop"] * 255)
            assert "#{:02x}{:02x}{:02x}".format(*rgba[i, j, :3]) in colormap[level - 1 : level + 2]
    # hovering a cell of either map names both numbers
    box = page.locator("#norms-canvas").bounding_box()
    i, j = 4, 1
    page.mouse.move(box["x"] + (j + 0.5) * box["width"] / N_REAL,
                    box["y"] + (i + 0.5) * box["height"] / N_REAL)  # fmt: skip
    readout = page.text_content("#cell-readout")
    weight, norm = re.fullmatch(r'query 4 "down" \u2192 key 1 "the": \u03b1 (\S+), '
                                r"\u2016\u03b1 f\(x\)\u2016 (\S+)", readout).groups()  # fmt: skip
    assert float(weight) == pytest.approx(weights(trace, 1, 2)[i, j], abs=0.5e-3 + 1e-6)
    assert float(norm) == pytest.approx(expected[i, j], rel=5e-3)
    assert page.locator("#norms-keys div.focus").text_content() == "the"
    # the row list: weight and norm of every key, sorted by either
    page.click('#heatmap-queries div[data-index="3"]')
    items = page.locator("#row-values li[data-key]")
    listed = {int(items.nth(c).get_attribute("data-key")): (
        float(items.nth(c).get_attribute("data-weight")),
        float(items.nth(c).get_attribute("data-norm"))) for c in range(items.count())}  # fmt: skip
    assert sorted(listed) == list(range(N_REAL))
    for key, (w, norm) in listed.items():
        assert w == pytest.approx(weights(trace, 1, 2)[3, key], abs=0.5e-3 + 1e-6)
        assert norm == pytest.approx(expected[3, key], rel=5e-3)
    page.select_option("#sort-select", "norm")
    assert state(page)["rowList"]["keys"] == np.argsort(-expected[3], kind="stable").tolist()
    assert "largest \u2016\u03b1 f(x)\u2016 first" in page.text_content("#row-title")
    # the neuron view has a column of them
    neuron = state(page)["neuron"]
    for entry in neuron["keys"]:
        assert entry["norm"] == pytest.approx(expected[3, entry["key"]], abs=step, rel=1e-6)
    cells = page.locator("#neuron tr[data-key] td.norm").all_text_contents()
    assert [float(c) for c in cells] == pytest.approx(
        [expected[3, entry["key"]] for entry in neuron["keys"]], rel=5e-3
    )
    # the keyboard moves to the next head: the second map follows it
    page.keyboard.press("ArrowRight")
    drawn = np.array(state(page)["heatmap"]["norms"]).reshape(N_REAL, N_REAL)
    following = norms[1, 0, 3, :N_REAL, :N_REAL]
    np.testing.assert_allclose(drawn, following, atol=following.max() / 65535, rtol=1e-6)
    # a layer whose norms the page does not hold says how to add them
    page.select_option("#layer-select", "2")
    assert state(page)["heatmap"]["norms"] is None
    assert "details=[2]" in page.text_content("#norms-title")
    assert page.locator("#row-values li[data-norm]").count() == 0
    assert events.errors == []


def test_a_page_without_norms_has_no_second_map(open_page, pages):
    page, _ = open_page(pages["plain"])
    assert not page.is_visible("#norms-canvas") and not page.is_visible("#norms-title")
    assert page.locator('#sort-select option[value="norm"]').count() == 0
    assert state(page)["heatmap"]["norms"] is None


def test_long_rows_list_the_keys_of_their_largest_norms_too(open_page, tmp_path):
    model = Encoder(EncoderConfig(n_layers=1, n_heads=2, d_model=16, max_len=80), seed=0)
    _, long = model.run_with_trace(np.arange(80)[None] % 64)
    norms = value_weighted_norms(model, long)[0, 0, 0]  # (80, 80)
    w = long["blocks.0.attn.weights"][0, 0]
    top_w = np.argsort(-w, axis=-1)[:, :16]
    top_n = np.argsort(-norms, axis=-1)[:, :16]
    i = next(q for q in range(80) if set(top_n[q]) - set(top_w[q]))  # a row where they differ
    only_norm = sorted(set(top_n[i]) - set(top_w[i]))
    path = tmp_path / "long-norms.html"
    to_html(long, None, path, query=i, norms=value_weighted_norms(model, long))
    page, events = open_page(path)
    listed = state(page)["rowList"]
    assert set(listed["keys"]) == set(top_w[i]) | set(top_n[i])
    for j in only_norm:  # a key kept for its norm: its weight is below the row's 16th
        item = page.locator(f'#row-values li[data-key="{j}"]')
        assert item.get_attribute("data-weight") == f"<{np.sort(w[i])[-16]:.3f}"
        assert float(item.get_attribute("data-norm")) == pytest.approx(norms[i, j], rel=5e-3)
    rest = np.delete(norms[i], top_n[i]).sum()
    assert listed["normRest"] == pytest.approx(rest, rel=1e-3)
    assert "keys by \u2016\u03b1 f(x)\u2016 together" in page.text_content("#row-values")
    assert events.errors == []


def test_minilm_it_gives_cls_weight_but_because_adds_the_most(open_page, tmp_path):
    """Issue 14's lesson, as the page shows it: MiniLM layer 2, head 0, "it" gives [CLS] 0.285
    of its weight, but [CLS] adds 0.0410 to its output against 2.11 for "because"."""
    try:
        from minitransformer.pretrained import load_pretrained

        minilm, tokenizer = load_pretrained("all-MiniLM-L6-v2")
    except FileNotFoundError as error:
        pytest.skip(f"all-MiniLM-L6-v2 is not installed: {error}")
    batch = tokenizer("The cat sat on the mat because it was tired.")
    tokens = batch.tokens[0]
    _, minilm_trace = minilm.run_with_trace(batch)
    path = tmp_path / "minilm.html"
    norms = value_weighted_norms(minilm, minilm_trace)
    to_html(minilm_trace, tokens, path, layer=2, head=0, query=tokens.index("it"), norms=norms)
    page, events = open_page(path)
    cls = page.locator('#row-values li[data-key="0"]')
    because = page.locator(f'#row-values li[data-key="{tokens.index("because")}"]')
    assert (cls.get_attribute("data-weight"), cls.get_attribute("data-norm")) == ("0.285", "0.0410")
    assert (because.get_attribute("data-weight"), because.get_attribute("data-norm")) == (
        "0.590",
        "2.11",
    )
    assert events.errors == []


# --------------------------------------------------------------------- step view


def test_the_step_view_lights_up_a_query_and_a_key_in_every_panel(open_page, pages, trace):
    page, events = open_page(pages["plain"])

    def bands() -> dict:
        return page.evaluate(
            """() => Object.fromEntries(Array.from(document.querySelectorAll("#steps .box"),
                (box) => [box.querySelector("canvas").dataset.step,
                          Array.from(box.querySelectorAll(".band"),
                                     (b) => [b.dataset.row ?? null, b.dataset.column ?? null])]))"""
        )

    assert all(marks == [] for marks in bands().values())
    scores_canvas = page.locator('#steps canvas[data-step="scores"]')
    scores_canvas.scroll_into_view_if_needed()
    box = scores_canvas.bounding_box()
    i, j = 4, 1
    page.mouse.move(box["x"] + (j + 0.5) * box["width"] / N_REAL,
                    box["y"] + (i + 0.5) * box["height"] / N_REAL)  # fmt: skip
    assert bands() == {
        "Q": [["4", None]], "K": [["1", None]], "scores": [["4", None], [None, "1"]],
        "weights": [["4", None], [None, "1"]], "Z": [["4", None]],
    }  # fmt: skip
    readout = page.text_content("#cell-readout")
    assert readout.startswith(f'query {i} "{TOKENS[i]}", key {j} "{TOKENS[j]}": ')
    expected = trace["blocks.0.attn.scores"][0, 0, i, j]
    assert float(readout.rsplit(": ", 1)[1]) == pytest.approx(expected, rel=2e-3, abs=1e-3)
    page.hover('#heatmap-queries div[data-index="2"]')  # a token: query and key at once
    assert bands()["K"] == [["2", None]] and bands()["weights"] == [["2", None], [None, "2"]]
    steps = state(page)["steps"]
    scores = np.array(steps["scores"], dtype=float).reshape(N_REAL, N_REAL)
    recorded = trace["blocks.0.attn.scores"][0, 0, :N_REAL, :N_REAL]
    assert np.abs(scores - recorded).max() <= np.abs(recorded).max() / 3e4 + 1e-7
    assert events.errors == []


# --------------------------------------------------------------------- query-key plane


def test_the_plane_names_a_hovered_point_and_focuses_a_query(open_page, pages, trace):
    from viz.qk_space import qk_projection

    page, events = open_page(pages["plain"])
    plane = state(page)["plane"]
    assert (plane["layer"], plane["head"], plane["focus"]) == (0, 0, None)
    points = plane["points"]
    assert [p[2] for p in points] == ["query"] * N_REAL + ["key"] * N_REAL
    # The points are the Python projection, scaled into the canvas (y up).
    expected = qk_projection(
        trace["blocks.0.attn.q"][0, 0, :N_REAL].astype(float),
        trace["blocks.0.attn.k"][0, 0, :N_REAL].astype(float),
    )
    xy = np.vstack([expected.queries, expected.keys])
    drawn = np.array([p[:2] for p in points])
    slope_x = np.polyfit(xy[:, 0], drawn[:, 0], 1)[0]
    slope_y = np.polyfit(xy[:, 1], drawn[:, 1], 1)[0]
    assert slope_x > 0 and slope_y < 0
    np.testing.assert_allclose(drawn[:, 0], np.polyval(np.polyfit(xy[:, 0], drawn[:, 0], 1),
                                                       xy[:, 0]), atol=0.01)  # fmt: skip
    page.locator("#plane-canvas").scroll_into_view_if_needed()
    box = page.locator("#plane-canvas").bounding_box()
    x, y, _, index = points[N_REAL + 2]  # key 2
    page.mouse.move(box["x"] + x, box["y"] + y)
    assert page.text_content("#cell-readout") in {
        f'key 2 "{TOKENS[2]}"',
        *(f'query {q} "{TOKENS[q]}"' for q in range(N_REAL)),  # a query on top of it
        *(f'key {q} "{TOKENS[q]}"' for q in range(N_REAL)),
    }
    x, y, _, index = points[3]  # query 3
    page.mouse.move(box["x"] + x, box["y"] + y)
    hovered = state(page)["query"]
    assert page.text_content("#cell-readout") == f'query {hovered} "{TOKENS[hovered]}"'
    assert state(page)["plane"]["focus"] == hovered
    # Small multiples: one per head of the layer; a click enlarges that head.
    assert page.locator("#plane-heads button").count() == 4
    page.click('#plane-heads button[data-head="2"]')
    assert (state(page)["head"], state(page)["plane"]["head"]) == (2, 2)
    assert page.get_attribute("#plane-heads button.selected", "data-head") == "2"
    assert events.errors == []


def plane_pixels(page) -> np.ndarray:
    """The plane canvas as (height, width, RGBA), in CSS pixels' device pixels."""
    size = page.evaluate("document.getElementById('plane-canvas').width")
    pixels = page.evaluate(
        """() => { const c = document.getElementById("plane-canvas");
                   return Array.from(c.getContext("2d").getImageData(0, 0, c.width,
                                                                     c.height).data); }"""
    )
    return np.array(pixels, dtype=int).reshape(size, size, 4)


def check_labels(plane: dict, names: list[str]) -> None:
    """Every label names its point, lies inside the canvas, and overlaps no other label and
    no other point (a point is drawn within 3 pixels of its centre; 6 for a focused query)."""
    size = plane["size"]
    boxes = np.array([label["box"] for label in plane["labels"]])
    for label in plane["labels"]:
        assert label["text"] == names[label["index"]]
        assert label["kind"] == ("query" if label["point"] < len(names) else "key")
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2:] <= size).all()
    for a in range(len(boxes)):
        for b in range(a + 1, len(boxes)):
            apart = (boxes[a, 2] <= boxes[b, 0] or boxes[b, 2] <= boxes[a, 0]
                     or boxes[a, 3] <= boxes[b, 1] or boxes[b, 3] <= boxes[a, 1])  # fmt: skip
            assert apart, (plane["labels"][a], plane["labels"][b])
    for label in plane["labels"]:
        left, top, right, bottom = label["box"]
        for p, (x, y, _, _) in enumerate(plane["points"]):
            if p != label["point"]:
                assert x + 3 <= left or right <= x - 3 or y + 3 <= top or bottom <= y - 3


def canvas_colors(page, selector: str) -> dict[str, int]:
    """How many device pixels of the canvas ``selector`` are the plane's query colour and
    its key colour (green and pink)."""
    counts = page.evaluate(
        """(selector) => { const c = document.querySelector(selector);
             const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
             let query = 0, key = 0;
             for (let i = 0; i < d.length; i += 4) {
               if (d[i] === 0x1b && d[i + 1] === 0x9e && d[i + 2] === 0x77) query++;
               if (d[i] === 0xe7 && d[i + 1] === 0x29 && d[i + 2] === 0x8a) key++;
             }
             return { query, key }; }""",
        selector,
    )
    return counts


def test_at_many_tokens_the_plane_hides_neither_queries_nor_keys(open_page, tmp_path):
    """Drawn all the queries, then all the keys, the keys covered most queries at 512 tokens
    (in the plane and even more in the small multiples). Each token's query and key are drawn
    in turn, with smaller points: both colours keep a fair share of the pixels."""
    config = EncoderConfig(vocab_size=500, d_model=32, n_heads=2, n_layers=1, max_len=512)
    ids = np.random.default_rng(0).integers(0, 500, size=(1, 400))
    _, many = Encoder(config, seed=0).run_with_trace(ids)
    path = tmp_path / "many.html"
    to_html(many, [f"t{i}" for i in range(400)], path)
    page, events = open_page(path)
    page.locator("#plane-canvas").scroll_into_view_if_needed()
    for selector in ("#plane-canvas", '#plane-heads button[data-head="1"] canvas'):
        counts = canvas_colors(page, selector)
        share = counts["query"] / (counts["query"] + counts["key"])
        assert 0.3 < share < 0.7, (selector, counts)
    assert events.errors == []


def test_the_plane_labels_its_points_where_no_label_or_point_is(open_page, pages):
    page, events = open_page(pages["plain"])
    page.click('#heatmap-queries div[data-index="2"]')  # focus query 2: its label comes first
    plane = state(page)["plane"]
    check_labels(plane, TOKENS[:N_REAL])
    assert plane["labels"][0]["point"] == 2, "the focused query's label first"
    assert len(plane["labels"]) >= 10, "6 tokens: (nearly) every point has its label"
    # what is recorded was drawn: each label's box holds pixels of its colour
    pixels = plane_pixels(page)
    ratio = pixels.shape[0] / plane["size"]
    for label in plane["labels"]:
        left, top, right, bottom = (round(v * ratio) for v in label["box"])
        colour = [int(label["color"][c : c + 2], 16) for c in (1, 3, 5)]
        inside = pixels[top:bottom, left:right, :3]
        assert (np.abs(inside - colour).sum(axis=-1) < 60).any(), label
    assert f"{len(plane['labels'])} of 12 points labelled" in page.text_content("#plane-note")
    assert events.errors == []


def test_two_hundred_tokens_label_only_what_fits(open_page, tmp_path):
    model = Encoder(EncoderConfig(n_layers=1, n_heads=2, d_model=16, max_len=200), seed=0)
    _, long = model.run_with_trace(np.arange(200)[None] % 64)
    names = [f"w{i}" for i in range(200)]
    path = tmp_path / "plane-200.html"
    to_html(long, names, path, query=10)
    page, events = open_page(path)
    plane = state(page)["plane"]
    assert 20 < len(plane["labels"]) < 400, "some labelled, not all"
    check_labels(plane, names)
    assert plane["labels"][0]["point"] == 10
    assert events.errors == []


# --------------------------------------------------------------------- corpus mode


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    model = Encoder(EncoderConfig(n_layers=2, n_heads=4), seed=5)
    ids = [[2, 8, 9, 10, 3, 0, 0], [2, 11, 12, 13, 14, 15, 3], [2, 16, 17, 3, 0, 0, 0]]
    mask = [[1] * 5 + [0] * 2, [1] * 7, [1] * 4 + [0] * 3]
    _, trace = model.run_with_trace(ids, mask=mask)
    words = [["[CLS]", "a", "b", "c", "[SEP]", "[PAD]", "[PAD]"],
             ["[CLS]", "d", "e", "f", "g", "h", "[SEP]"],
             ["[CLS]", "i", "j", "[SEP]", "[PAD]", "[PAD]", "[PAD]"]]  # fmt: skip
    path = tmp_path_factory.mktemp("corpus") / "corpus.html"
    to_html(trace, words, path, corpus=True, batch=1)
    return path, trace, words


def test_the_corpus_plane_pools_every_sequence_coloured_by_sequence(open_page, corpus):
    from viz.qk_space import qk_projection

    path, trace, words = corpus
    page, events = open_page(path)
    assert page.input_value("#plane-color") == "sequence"
    plane = state(page)["plane"]
    names = [w for row, n in zip(words, (5, 7, 4), strict=True) for w in row[:n]]  # 16 real
    sequence = [0] * 5 + [1] * 7 + [2] * 4
    assert len(plane["points"]) == 2 * 16
    # The points are the projection of all 16 queries and keys together, scaled into the canvas
    q = np.vstack([trace["blocks.0.attn.q"][b, 0, :n] for b, n in enumerate((5, 7, 4))])
    k = np.vstack([trace["blocks.0.attn.k"][b, 0, :n] for b, n in enumerate((5, 7, 4))])
    expected = qk_projection(q.astype(float), k.astype(float))
    xy = np.vstack([expected.queries, expected.keys])
    drawn = np.array([p[:2] for p in plane["points"]])
    fit = np.polyfit(xy[:, 0], drawn[:, 0], 1)
    np.testing.assert_allclose(drawn[:, 0], np.polyval(fit, xy[:, 0]), atol=0.01)
    check_labels(plane, names)
    # each point in its sequence's colour (checked at points no other point is drawn over)
    colors = page.evaluate(
        "JSON.parse(document.getElementById('attention-data').textContent).corpus.colors"
    )
    pixels = plane_pixels(page)
    ratio = pixels.shape[0] / plane["size"]
    checked = 0
    for p, (x, y, _, t) in enumerate(plane["points"]):
        if any(np.hypot(x - x2, y - y2) < 8 for x2, y2, *_ in plane["points"][p + 1 :]):
            continue
        colour = [int(colors[sequence[t]][c : c + 2], 16) for c in (1, 3, 5)]
        assert list(pixels[round(y * ratio), round(x * ratio), :3]) == colour, (p, t)
        checked += 1
    assert checked >= 8
    # hovering: a point of another sequence is named with its sequence, a query of the shown
    # sequence (1, from point 5 on) takes the focus
    canvas = page.locator("#plane-canvas")
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    points = plane["points"]
    lonely = [p for p, (x, y, _, _) in enumerate(points)  # no other point within 9 pixels
              if all(np.hypot(x - points[o][0], y - points[o][1]) > 9
                     for o in range(len(points)) if o != p)]  # fmt: skip
    other = next(p for p in lonely if sequence[p % 16] != 1)
    x, y, kind, t = plane["points"][other]
    page.mouse.move(box["x"] + x, box["y"] + y)
    b = sequence[t]
    position = t - [0, 5, 12][b]
    assert page.text_content("#cell-readout") == f'{kind} {position} "{names[t]}" (sequence {b})'
    assert state(page)["query"] is None
    mine = next(p for p in lonely if p < 16 and sequence[p] == 1)
    x, y, _, t = plane["points"][mine]
    page.mouse.move(box["x"] + x, box["y"] + y)
    assert state(page)["query"] == t - 5, page.text_content("#cell-readout")
    assert state(page)["plane"]["focus"] == t - 5
    # every head as a small multiple; a click enlarges one
    assert page.locator("#plane-heads button").count() == 4
    page.click('#plane-heads button[data-head="3"]')
    assert state(page)["plane"]["head"] == 3
    note = page.text_content("#plane-note")
    assert "16 of each from the 3 sequences of the batch (the shown one is sequence 1)" in note
    assert "all 3 sequences" in page.text_content("#about")
    assert events.errors == []


@pytest.fixture(scope="module")
def hostile_corpus(tmp_path_factory):
    """A batch of two: the hostile tokens in sequence 0, the page showing sequence 1."""
    model = Encoder(EncoderConfig(n_layers=1, n_heads=4), seed=6)
    ids = [[2, 8, 9, 10, 11, 12, 0], [2, 13, 14, 15, 3, 0, 0]]
    _, trace = model.run_with_trace(ids, mask=[[1] * 6 + [0], [1] * 5 + [0] * 2])
    words = [HOSTILE, ["[CLS]", "p", "q", "r", "[SEP]", "[PAD]", "[PAD]"]]
    path = tmp_path_factory.mktemp("hostile-corpus") / "corpus.html"
    to_html(trace, words, path, corpus=True, batch=1, title="<b>corpus</b>")
    return path, words


def test_corpus_tokens_of_other_sequences_are_text_and_run_nothing(open_page, hostile_corpus):
    path, words = hostile_corpus
    page, events = open_page(path)
    plane = state(page)["plane"]
    names = HOSTILE[:N_REAL] + words[1][:5]  # the 11 real tokens, sequence 0 first
    points = plane["points"]
    assert [p[3] for p in points] == list(range(11)) * 2
    # every label on the canvas is its token (cut to 16 characters), never markup
    for label in plane["labels"]:
        token = names[label["index"]]
        assert label["text"] == (token if len(token) <= 16 else token[:15] + "\u2026")
    assert plane["labels"], "some points are labelled"
    # hovering any point of sequence 0 names its token as text
    canvas = page.locator("#plane-canvas")
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    named = set()
    for x, y, _, t in points:
        if t >= N_REAL:  # a query of the shown sequence takes the focus, tested above
            continue
        page.mouse.move(box["x"] + x, box["y"] + y)
        readout = page.text_content("#cell-readout")
        named.add(readout)
        assert re.fullmatch(r'(query|key) \d "(.*)" \(sequence [01]\)', readout, re.S), readout
    shown = {f'{kind} {t} "{HOSTILE[t]}" (sequence 0)' for kind in ("query", "key")
             for t in range(N_REAL)}  # fmt: skip
    assert len(named & shown) >= 4, "hostile tokens were hovered and shown verbatim"
    assert page.text_content("h1") == "<b>corpus</b>"
    assert page.locator("img").count() == 0 and page.locator("b").count() == 0
    assert page.evaluate("typeof window.pwned") == "undefined"
    assert events.dialogs == [] and events.errors == []
    assert events.requests == [path.as_uri()], "the page loads nothing but itself"


def test_the_keyboard_enlarges_a_small_multiple_and_moves_the_plane_focus(
    open_page, hostile_corpus
):
    path, _ = hostile_corpus
    page, events = open_page(path)
    page.focus('#plane-heads button[data-head="2"]')
    page.keyboard.press("Enter")
    assert (state(page)["head"], state(page)["plane"]["head"]) == (2, 2)
    assert page.get_attribute("#plane-heads button.selected", "data-head") == "2"
    page.focus('#plane-heads button[data-head="1"]')
    page.keyboard.press("Space")
    assert state(page)["plane"]["head"] == 1
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    plane = state(page)["plane"]
    assert (state(page)["query"], plane["focus"]) == (1, 1)
    # the focused query of the shown sequence (point 6 + 1 of the 11) is labelled first
    assert plane["labels"][0]["point"] == 7
    page.keyboard.press("ArrowRight")
    assert state(page)["plane"]["head"] == 2
    page.keyboard.press("Escape")
    assert state(page)["plane"]["focus"] is None
    assert events.errors == []


# --------------------------------------------------------------------- long inputs


def test_long_rows_store_their_largest_weights_and_say_what_is_not_stored(open_page, tmp_path):
    model = Encoder(EncoderConfig(n_layers=1, n_heads=2, d_model=16, max_len=80), seed=0)
    _, long = model.run_with_trace(np.arange(80)[None] % 64)
    path = tmp_path / "top-k.html"
    to_html(long, None, path, query=10)
    page, events = open_page(path)
    w = long["blocks.0.attn.weights"][0, 0, 10]
    top = np.argsort(-w)[:16]
    listed = state(page)["rowList"]
    assert set(listed["keys"]) == set(top.tolist())
    assert listed["rest"] == pytest.approx(np.delete(w, top).sum(), abs=0.5e-3 + 1e-6)
    rest = page.locator("#row-values li.rest")
    assert rest.text_content().endswith("the other 64 keys together")
    outside = next(j for j in range(80) if j not in top)
    box = page.locator("#heatmap-canvas").bounding_box()
    page.mouse.move(box["x"] + (outside + 0.5) * box["width"] / 80,
                    box["y"] + 10.5 * box["height"] / 80)  # fmt: skip
    assert "not stored (below " in page.text_content("#cell-readout")
    assert "white also = not stored" in page.text_content("#heatmap-scale")
    assert events.errors == []


def test_512_tokens_six_layers_twelve_heads_load_and_draw(open_page, tmp_path):
    model = Encoder(EncoderConfig(n_layers=6, n_heads=12, d_model=48, max_len=512), seed=0)
    _, big = model.run_with_trace(np.arange(512)[None] % 64)
    path = tmp_path / "512.html"
    to_html(big, None, path, layer=5, head=11, query=511)
    assert path.stat().st_size <= 5_000_000
    page, events = open_page(path)
    now = state(page)
    assert (now["layer"], now["head"], now["query"]) == (5, 11, 511)
    assert page.locator("#model-view canvas").count() == 72
    assert len(now["neuron"]["keys"]) == 16
    assert events.errors == [] and events.requests == [path.as_uri()]
