r"""The page skeleton, style sheet and script of :func:`viz.html_export.to_html`.

Kept apart from the Python that fills them in, so each reads as what it is: HTML, CSS and
JavaScript. The script uses no library and fetches nothing: it reads the JSON that
``to_html`` wrote into ``<script type="application/json" id="attention-data">``, decodes the
weights and draws with plain DOM elements and ``<canvas>``.

``PAGE`` holds five placeholders, ``{{csp}}``, ``{{title}}``, ``{{css}}``, ``{{data}}`` and
``{{script}}``, filled in one pass by ``to_html`` (so text put in one placeholder is never read
as another).
"""

from __future__ import annotations

#: What the page may load: nothing from anywhere (no network, no fonts, no frames), only its
#: own inline script and style, and ``data:`` images.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "img-src data:; base-uri 'none'; form-action 'none'"
)

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{{csp}}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{title}}</title>
<style>
{{css}}
</style>
</head>
<body>
<header>
  <h1 id="title"></h1>
  <p id="about"></p>
  <noscript><p>This page draws the attention weights with JavaScript: please enable it.</p>
  </noscript>
</header>

<nav id="controls">
  <label>Layer <select id="layer-select"></select></label>
  <label>Head <select id="head-select"></select></label>
  <span id="cell-readout" aria-live="polite"></span>
</nav>

<main>
  <section id="heatmap-section">
    <h2>One head: the attention weights as a heatmap</h2>
    <p class="hint">Row i is query token i, column j is key token j: cell (i, j) is how much
      token i reads from token j, and every row sums to 1. Hover a row (or its token) to
      list its weights; click to keep it there (click again to let go).</p>
    <div id="heatmap">
      <div></div>
      <div id="heatmap-keys" class="key-labels"></div>
      <div id="heatmap-queries" class="query-labels"></div>
      <div id="heatmap-box">
        <canvas id="heatmap-canvas"></canvas>
        <div id="heatmap-row" hidden></div>
      </div>
    </div>
    <p id="heatmap-scale" class="hint"></p>
    <h3 id="row-title"></h3>
    <ol id="row-values" start="0"></ol>
  </section>

  <section id="head-view-section">
    <h2>Head view: who attends to whom</h2>
    <p class="hint">Queries on the left, keys on the right; the line from query i to key j is
      as opaque as the weight. Click a head to show or hide it (double-click: only
      that head); hover a query token to see only its lines.</p>
    <div id="head-swatches"></div>
    <p id="head-view-note" class="hint"></p>
    <div id="head-view">
      <div id="head-view-queries" class="token-column"></div>
      <canvas id="head-view-canvas"></canvas>
      <div id="head-view-keys" class="token-column"></div>
    </div>
  </section>

  <section id="model-view-section">
    <h2>Model view: every head of every layer</h2>
    <p class="hint">Row = layer, column = head; each thumbnail is scaled to its own largest
      weight. Click one to select it above.</p>
    <div id="model-view"></div>
  </section>
</main>

<script type="application/json" id="attention-data">{{data}}</script>
<script>
{{script}}
</script>
</body>
</html>
"""

CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; max-width: 80em; }
h1 { font-size: 1.4em; margin: 0 0 0.3em; }
h2 { font-size: 1.1em; margin: 1.2em 0 0.3em; }
h3 { font-size: 1em; margin: 0.8em 0 0.3em; font-weight: normal; }
.hint { color: #555; font-size: 0.9em; max-width: 50em; }
#controls { display: flex; gap: 1.5em; align-items: center; padding: 0.5em 0;
  position: sticky; top: 0; background: white; border-bottom: 1px solid #ddd; z-index: 2; }
#cell-readout { font-family: ui-monospace, monospace; white-space: pre; }
main { display: flex; flex-wrap: wrap; align-items: flex-start; gap: 0 3em; }
section { min-width: 0; }
#model-view-section { flex-basis: 100%; }
.hint { max-width: 34em; }

/* Heatmap: a 2 x 2 grid of (empty corner, key labels / query labels, canvas). */
#heatmap { display: grid; grid-template-columns: auto auto; justify-content: start; }
.key-labels { display: flex; align-items: flex-end; }
.key-labels div { writing-mode: vertical-rl; transform: rotate(180deg); max-height: 8em; }
.query-labels div { text-align: right; padding-right: 4px; max-width: 10em; }
.key-labels div, .query-labels div { overflow: hidden; text-overflow: ellipsis;
  white-space: pre; cursor: default; }
.focus { color: #d62728; font-weight: bold; }
#heatmap-box { position: relative; }
#heatmap-canvas { display: block; image-rendering: pixelated; border: 1px solid #ccc; }
#heatmap-row { position: absolute; left: 0; box-sizing: border-box;
  border: 2px solid #d62728; pointer-events: none; }
#row-values { font-family: ui-monospace, monospace; font-size: 0.85em; line-height: 1.4em;
  overflow-y: auto; padding-left: 3em; margin: 0; }
#row-values li { white-space: pre; }
/* Text that changes on hover must not change the layout: these boxes take their width from
   the section (contain: inline-size), never from their text. */
#heatmap-scale, #row-title, #row-values, #head-view-note { contain: inline-size; }
#head-view-note { min-height: 1.2em; margin: 0 0 0.3em; }
#row-title { min-height: 2.6em; }
#row-values .bar { display: inline-block; height: 0.7em; background: #4a89c3;
  margin-left: 0.5em; }

/* Head view: query tokens | lines | key tokens. */
#head-swatches button { border: 2px solid transparent; color: white; font-weight: bold;
  margin: 0 2px 4px 0; min-width: 2.2em; cursor: pointer; }
#head-swatches button[aria-pressed="false"] { opacity: 0.25; }
#head-view { display: flex; align-items: flex-start; }
.token-column div { white-space: pre; overflow: hidden; text-overflow: ellipsis;
  max-width: 10em; padding: 0 4px; cursor: default; }
#head-view-queries div { text-align: right; }
.token-column div.focus { outline: 2px solid #d62728; }

/* Model view: a grid of small canvases, one per (layer, head). */
#model-view { display: grid; gap: 3px; align-items: center; justify-content: start; }
#model-view .label { font-size: 0.8em; color: #555; text-align: center; }
#model-view button { padding: 0; border: 2px solid transparent; background: none;
  cursor: pointer; line-height: 0; }
#model-view button.selected { border-color: #d62728; }
#model-view canvas { image-rendering: pixelated; border: 1px solid #ddd; }
"""

SCRIPT = r"""
// The attention view of one minitransformer trace: plain JavaScript, no libraries, no network.
//
// viz/html_export.py wrote everything this script needs into the JSON script element with
// id "attention-data": the tokens, the layer and head numbers, and the attention weights as
// small integers (base64). This script
//   1. reads and decodes that data,
//   2. builds the controls, the heatmap, the head view and the model view,
//   3. redraws when the selected (layer, head) or the focused query token changes.
// Tokens are only ever inserted with textContent, never as HTML: a token that looks like an
// image tag with an onerror handler is shown as text and runs nothing.
(function () {
  "use strict";

  // ---- 1. The data ---------------------------------------------------------------------------

  const data = JSON.parse(document.getElementById("attention-data").textContent);
  const tokens = data.tokens; // the n tokens shown (padding removed)
  const n = tokens.length;
  const layers = data.layers; // layer numbers of the trace, in display order
  const heads = data.heads; // head numbers of the trace, in display order

  /** The bytes of a base64 string, as a Uint8Array. */
  function base64Bytes(text) {
    const binary = atob(text); // a string with one character per byte
    const bytes = new Uint8Array(binary.length);
    for (let k = 0; k < binary.length; k++) {
      bytes[k] = binary.charCodeAt(k);
    }
    return bytes;
  }

  /** The weights as floats: each stored integer divided by the scale (1000 for 3 decimals). */
  function decodeWeights(spec) {
    const bytes = base64Bytes(spec.base64);
    const view = new DataView(bytes.buffer);
    const values = new Float32Array(bytes.length / spec.bytes_per_weight);
    for (let k = 0; k < values.length; k++) {
      const integer = spec.bytes_per_weight === 1
        ? view.getUint8(k)
        : view.getUint16(2 * k, true); // true: little-endian, as NumPy's "<u2"
      values[k] = integer / spec.scale;
    }
    return values;
  }

  // weights[((li * heads.length + hi) * n + i) * n + j] = weight of query i on key j in head
  // heads[hi] of layer layers[li]: the NumPy array (layers, heads, n, n) in row-major order.
  const weights = decodeWeights(data.weights);
  // mask[(li * n + i) * n + j] = 1 if query i may attend to key j in layer layers[li];
  // null when every query may attend to every key shown (no causal mask).
  const mask = data.mask === null ? null : base64Bytes(data.mask);

  /** The n x n weights of one head (a view into `weights`, row-major: query i, key j). */
  function headWeights(li, hi) {
    const start = (li * heads.length + hi) * n * n;
    return weights.subarray(start, start + n * n);
  }

  function mayAttend(li, i, j) {
    return mask === null || mask[(li * n + i) * n + j] === 1;
  }

  /** "#rrggbb" -> [r, g, b] */
  function rgb(hex) {
    return [1, 3, 5].map((k) => parseInt(hex.slice(k, k + 2), 16));
  }
  const colormap = data.colormap.map(rgb); // white (weight 0) ... dark blue (largest weight)
  const maskedColor = rgb(data.masked_color);

  function format(weight) {
    return weight.toFixed(data.decimals);
  }

  // ---- 2. State: what is selected, and what was drawn (read by the tests) -----------------

  const state = {
    li: 0, // index into `layers` of the selected layer
    hi: 0, // index into `heads` of the selected head
    query: null, // the focused query token (hovered or clicked), or null
    pinned: false, // true after a click: the focus stays when the mouse leaves
    shown: heads.map(() => true), // which heads the head view draws
  };
  const drawn = { heatmap: null, headView: null };

  // ---- 3. Building the page --------------------------------------------------------------

  /** A new element with the given text (as text: textContent never parses HTML). */
  function element(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined) node.textContent = text;
    if (className !== undefined) node.className = className;
    return node;
  }

  const $ = (id) => document.getElementById(id);

  $("title").textContent = data.title;
  $("about").textContent = data.about;

  // Layer and head selectors.
  layers.forEach((layer, li) => {
    const option = element("option", "layer " + layer);
    option.value = String(li);
    $("layer-select").append(option);
  });
  heads.forEach((head, hi) => {
    const option = element("option", "head " + head);
    option.value = String(hi);
    $("head-select").append(option);
  });
  $("layer-select").addEventListener("change", (e) => select(Number(e.target.value), state.hi));
  $("head-select").addEventListener("change", (e) => select(state.li, Number(e.target.value)));

  // Heatmap: one canvas pixel per (query, key) cell, enlarged by CSS to `cell` screen pixels.
  // Below 6 pixels per cell the token labels could not be read: then only hovering names them.
  const cell = Math.max(2, Math.min(28, Math.floor(640 / n)));
  const labelled = cell >= 6;
  const fontSize = Math.max(6, Math.min(13, cell - 2)) + "px";
  const heatmapCanvas = $("heatmap-canvas");
  heatmapCanvas.width = n;
  heatmapCanvas.height = n;
  heatmapCanvas.style.width = heatmapCanvas.style.height = n * cell + "px";
  // The list of the focused row's weights keeps its height, so hovering never moves the page.
  $("row-values").style.height = 1.4 * Math.min(n, 12) + "em";
  const rowFrame = $("heatmap-row");
  rowFrame.style.width = n * cell + "px";
  rowFrame.style.height = cell + "px";

  const heatmapQueryLabels = [];
  const heatmapKeyLabels = [];
  tokens.forEach((token, i) => {
    if (!labelled) return;
    const title = "position " + data.positions[i] + ": " + token;
    const query = element("div", token);
    query.title = title;
    query.dataset.index = String(i);
    query.style.height = query.style.lineHeight = cell + "px";
    query.style.fontSize = fontSize;
    hoverFocuses(query, i);
    $("heatmap-queries").append(query);
    heatmapQueryLabels.push(query);

    const key = element("div", token);
    key.title = title;
    key.style.width = key.style.lineHeight = cell + "px";
    key.style.fontSize = fontSize;
    $("heatmap-keys").append(key);
    heatmapKeyLabels.push(key);
  });

  // Hovering a cell focuses its row (the query), marks its key and shows the cell's value.
  heatmapCanvas.addEventListener("mousemove", (e) => {
    const box = heatmapCanvas.getBoundingClientRect();
    const i = Math.min(n - 1, Math.floor(((e.clientY - box.top) / box.height) * n));
    const j = Math.min(n - 1, Math.floor(((e.clientX - box.left) / box.width) * n));
    if (!state.pinned) setFocus(i);
    heatmapKeyLabels.forEach((label, k) => label.classList.toggle("focus", k === j));
    const w = headWeights(state.li, state.hi)[i * n + j];
    const value = mayAttend(state.li, i, j) ? format(w) : "masked";
    $("cell-readout").textContent = "query " + i + " " + JSON.stringify(tokens[i]) +
      " \u2192 key " + j + " " + JSON.stringify(tokens[j]) + ": " + value;
  });
  heatmapCanvas.addEventListener("mouseleave", () => {
    $("cell-readout").textContent = "";
    heatmapKeyLabels.forEach((label) => label.classList.remove("focus"));
    if (!state.pinned) setFocus(null);
  });
  heatmapCanvas.addEventListener("click", () => togglePin());

  // Head view: token columns in HTML (so they are text), the lines on a canvas between them.
  const row = n <= 32 ? 18 : 14; // height of one token row, in pixels
  const MAX_LINES = 50000; // more lines than this take too long to draw: see drawHeadView
  const headCanvas = $("head-view-canvas");
  const headCanvasWidth = 220;
  const pixelRatio = window.devicePixelRatio || 1;
  headCanvas.width = headCanvasWidth * pixelRatio;
  headCanvas.height = n * row * pixelRatio;
  headCanvas.style.width = headCanvasWidth + "px";
  headCanvas.style.height = n * row + "px";

  const headQueryLabels = [];
  const headKeyLabels = [];
  tokens.forEach((token, i) => {
    for (const [column, list] of [["head-view-queries", headQueryLabels],
      ["head-view-keys", headKeyLabels]]) {
      const label = element("div", token);
      label.title = "position " + data.positions[i] + ": " + token;
      label.dataset.index = String(i);
      label.style.height = label.style.lineHeight = row + "px";
      label.style.fontSize = (row - 4) + "px";
      $(column).append(label);
      list.push(label);
    }
    hoverFocuses(headQueryLabels[i], i);
  });

  // Head swatches: one button per head, in the head's colour; a click shows or hides it.
  const swatches = [];
  heads.forEach((head, hi) => {
    const button = element("button", String(head));
    button.style.background = data.head_colors[hi];
    button.title = "head " + head + ": click to show or hide";
    button.dataset.head = String(head);
    button.setAttribute("aria-pressed", "true");
    button.addEventListener("click", () => {
      state.shown[hi] = !state.shown[hi];
      button.setAttribute("aria-pressed", String(state.shown[hi]));
      drawHeadView();
    });
    button.addEventListener("dblclick", () => { // a double click shows this head alone
      state.shown = heads.map((_, k) => k === hi);
      swatches.forEach((other, k) => other.setAttribute("aria-pressed", String(k === hi)));
      drawHeadView();
    });
    $("head-swatches").append(button);
    swatches.push(button);
  });

  // Model view: a grid with a corner, head numbers across, then per layer its number and one
  // thumbnail button per head.
  const grid = $("model-view");
  const thumb = Math.max(48, Math.min(96, 2 * n)); // thumbnail size on screen, in pixels
  grid.style.gridTemplateColumns = "auto repeat(" + heads.length + ", " + (thumb + 6) + "px)";
  grid.append(element("div", "", "label"));
  heads.forEach((head) => grid.append(element("div", "head " + head, "label")));
  const thumbnails = [];
  layers.forEach((layer, li) => {
    grid.append(element("div", "layer " + layer, "label"));
    heads.forEach((head, hi) => {
      const button = element("button");
      button.title = "layer " + layer + ", head " + head;
      button.dataset.layer = String(layer);
      button.dataset.head = String(head);
      const canvas = element("canvas");
      canvas.width = canvas.height = n;
      canvas.style.width = canvas.style.height = thumb + "px";
      paintPattern(canvas, li, hi);
      button.append(canvas);
      button.addEventListener("click", () => select(li, hi));
      grid.append(button);
      thumbnails.push(button);
    });
  });

  // ---- 4. Drawing ---------------------------------------------------------------------------

  /**
   * Paint one head's weights into an n x n canvas, one pixel per cell, coloured on the scale
   * [0, largest weight of this head]; masked cells are grey. Returns that largest weight.
   */
  function paintPattern(canvas, li, hi) {
    const w = headWeights(li, hi);
    let top = 0;
    for (let k = 0; k < w.length; k++) top = Math.max(top, w[k]);
    const context = canvas.getContext("2d");
    const image = context.createImageData(n, n);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        const k = i * n + j;
        const level = Math.round((w[k] / Math.max(top, 1e-12)) * (colormap.length - 1));
        const color = mayAttend(li, i, j) ? colormap[level] : maskedColor;
        image.data[4 * k] = color[0]; // pixel (x = j, y = i): red, green, blue, opacity
        image.data[4 * k + 1] = color[1];
        image.data[4 * k + 2] = color[2];
        image.data[4 * k + 3] = 255;
      }
    }
    context.putImageData(image, 0, 0);
    return top;
  }

  function drawHeatmap() {
    const top = paintPattern(heatmapCanvas, state.li, state.hi);
    heatmapCanvas.dataset.layer = String(layers[state.li]);
    heatmapCanvas.dataset.head = String(heads[state.hi]);
    $("heatmap-scale").textContent = "Layer " + layers[state.li] + ", head " + heads[state.hi] +
      ": white = 0, darkest blue = " + format(top) + " (the largest weight of this head)" +
      (mask === null ? "." : "; grey = masked (the query may not attend to that key).");
    drawn.heatmap = {
      layer: layers[state.li],
      head: heads[state.hi],
      vmax: top,
      weights: Array.from(headWeights(state.li, state.hi)),
    };
  }

  /**
   * The head view of the selected layer: for every head shown, a line from query i (left) to
   * key j (right) in the head's colour, as opaque as weight / (largest weight drawn), as in
   * viz.head_view. A canvas keeps opacity in 8 bits, so the opacity is rounded to a level
   * 0 ... 255 (alpha = level / 255); lines of level 0 would not change a pixel and are skipped.
   *
   * Long inputs have too many lines to draw quickly (12 heads at 256 tokens: 786,432). Then
   * only the MAX_LINES most opaque are drawn: the faintest levels are left out, and the note
   * under the head swatches says so.
   */
  function drawHeadView() {
    const context = headCanvas.getContext("2d");
    context.setTransform(pixelRatio, 0, 0, pixelRatio, 0, 0);
    context.clearRect(0, 0, headCanvasWidth, n * row);
    context.lineWidth = n <= 32 ? 2 : 1;
    const shown = heads.map((_, hi) => hi).filter((hi) => state.shown[hi]);
    const queries = state.query === null ? tokens.map((_, i) => i) : [state.query];

    let top = 1e-12;
    for (const hi of shown) {
      const w = headWeights(state.li, hi);
      for (const i of queries) {
        for (let j = 0; j < n; j++) top = Math.max(top, w[i * n + j]);
      }
    }
    const levelOf = (weight) => Math.round((weight / top) * 255);

    // How many lines each opacity level has; then the faintest level that keeps the count
    // at most MAX_LINES.
    const perLevel = new Array(256).fill(0);
    for (const hi of shown) {
      const w = headWeights(state.li, hi);
      for (const i of queries) {
        for (let j = 0; j < n; j++) perLevel[levelOf(w[i * n + j])] += 1;
      }
    }
    let lowest = 1;
    const all = perLevel.slice(1).reduce((a, b) => a + b, 0); // every visible line
    let count = all;
    while (count > MAX_LINES) {
      count -= perLevel[lowest];
      lowest += 1;
    }

    const lines = []; // recorded for a focused query only (n per head), to keep this light
    const y = (i) => (i + 0.5) * row;
    for (const hi of shown) {
      const w = headWeights(state.li, hi);
      context.strokeStyle = data.head_colors[hi];
      for (const i of queries) {
        for (let j = 0; j < n; j++) {
          const level = levelOf(w[i * n + j]);
          if (level < lowest) continue;
          context.globalAlpha = level / 255;
          context.beginPath();
          context.moveTo(0, y(i));
          context.lineTo(headCanvasWidth, y(j));
          context.stroke();
          if (state.query !== null) {
            lines.push({ head: heads[hi], query: i, key: j, weight: w[i * n + j],
              alpha: level / 255 });
          }
        }
      }
    }
    context.globalAlpha = 1;
    $("head-view-note").textContent = lowest === 1 ? "" : "Showing the " + count +
      " most opaque of " + all + " lines (opacity at least " + lowest + "/255).";
    drawn.headView = {
      layer: layers[state.li],
      heads: shown.map((hi) => heads[hi]),
      query: state.query,
      top: top,
      count: count,
      all: all,
      lowest: lowest,
      lines: state.query === null ? null : lines,
    };
  }

  /** Frame the focused row, mark its tokens, and list its weights under the heatmap. */
  function drawFocus() {
    const i = state.query;
    for (const list of [heatmapQueryLabels, headQueryLabels]) {
      list.forEach((label, k) => label.classList.toggle("focus", k === i));
    }
    rowFrame.hidden = i === null;
    const values = $("row-values");
    values.replaceChildren();
    if (i === null) {
      rowFrame.removeAttribute("data-row");
      $("row-title").textContent = "Hover a query token to list its weights.";
      return;
    }
    rowFrame.style.top = i * cell + "px";
    rowFrame.dataset.row = String(i);
    const w = headWeights(state.li, state.hi);
    let sum = 0;
    for (let j = 0; j < n; j++) sum += w[i * n + j];
    $("row-title").textContent = "Query " + i + " " + JSON.stringify(tokens[i]) + " in layer " +
      layers[state.li] + ", head " + heads[state.hi] + " reads from each key " +
      "(sum of the rounded weights: " + format(sum) + "):";
    for (let j = 0; j < n; j++) {
      const allowed = mayAttend(state.li, i, j);
      const item = element("li");
      item.dataset.key = String(j);
      item.dataset.weight = allowed ? format(w[i * n + j]) : "masked";
      item.append(element("span", allowed ? format(w[i * n + j]) : "masked", "value"));
      item.append(element("span", "  " + tokens[j], "token"));
      const bar = element("span", undefined, "bar");
      bar.style.width = (allowed ? 10 * w[i * n + j] : 0) + "em";
      item.append(bar);
      values.append(item);
    }
  }

  // ---- 5. Changing the selection and the focus ---------------------------------------------

  /** Select head heads[hi] of layer layers[li]: update the controls and redraw. */
  function select(li, hi) {
    state.li = li;
    state.hi = hi;
    $("layer-select").value = String(li);
    $("head-select").value = String(hi);
    thumbnails.forEach((button, k) => {
      const selected = k === li * heads.length + hi;
      button.classList.toggle("selected", selected);
      button.setAttribute("aria-pressed", String(selected));
    });
    drawHeatmap();
    drawHeadView();
    drawFocus();
  }

  /** Focus query token i (or nothing, for null) in every view. */
  function setFocus(i) {
    if (i === state.query) return;
    state.query = i;
    drawFocus();
    drawHeadView();
  }

  function togglePin() {
    state.pinned = !state.pinned && state.query !== null;
    if (!state.pinned) setFocus(null);
  }

  /** Hovering `label` focuses query i (unless a click pinned a focus); a click pins it. */
  function hoverFocuses(label, i) {
    label.addEventListener("mouseenter", () => { if (!state.pinned) setFocus(i); });
    label.addEventListener("mouseleave", () => { if (!state.pinned) setFocus(null); });
    label.addEventListener("click", () => {
      const unpin = state.pinned && state.query === i; // a second click releases the focus
      setFocus(i);
      state.pinned = !unpin;
    });
  }

  // The head (and the pinned query, if any) the page opens at, as to_html was asked.
  select(data.start.layer, data.start.head);
  if (data.start.query !== null) {
    setFocus(data.start.query);
    state.pinned = true;
  }

  // ---- 6. A read-only view of the state, for tests and the curious -------------------------

  window.attentionView = Object.freeze({
    /** A copy of what is selected and what was drawn (the heatmap's weights, the lines). */
    state: () => JSON.parse(JSON.stringify({
      layer: layers[state.li],
      head: heads[state.hi],
      query: state.query,
      pinned: state.pinned,
      shownHeads: heads.filter((_, hi) => state.shown[hi]),
      heatmap: drawn.heatmap,
      headView: drawn.headView,
    })),
  });
})();
"""
