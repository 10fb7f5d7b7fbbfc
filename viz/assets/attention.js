// The attention view of one minitransformer trace: plain JavaScript, no libraries, no network.
//
// viz/html_export.py wrote everything this script needs into the JSON script element with
// id "attention-data": the tokens, the layer and head numbers, and the numbers themselves as
// small integers in one zlib stream (base64). This script
//   1. inflates that stream and views each array in it as a typed array,
//   2. builds the controls and the views (heatmap, head view, neuron view, steps, plane,
//      model view),
//   3. redraws when the selected (layer, head) or the focused query token changes.
// Tokens are only ever inserted with textContent, never as HTML: a token that looks like an
// image tag with an onerror handler is shown as text and runs nothing.
(async function () {
  "use strict";

  // ---- 1. The data ---------------------------------------------------------------------------

  const data = JSON.parse(document.getElementById("attention-data").textContent);
  const $ = (id) => document.getElementById(id);
  const tokens = data.tokens; // the n tokens shown (padding removed)
  const n = tokens.length;
  const layers = data.layers; // layer numbers of the trace, in display order
  const heads = data.heads; // head numbers of the trace, in display order
  const H = heads.length;
  const k = data.top_k; // keys stored per query row (n: all of them)
  const dense = k === n;

  /** The bytes of a base64 string, as a Uint8Array. */
  function base64Bytes(text) {
    const binary = atob(text); // a string with one character per byte
    const bytes = new Uint8Array(binary.length);
    for (let b = 0; b < binary.length; b++) bytes[b] = binary.charCodeAt(b);
    return bytes;
  }

  /** Inflate a zlib stream with the browser's own DecompressionStream (no library). */
  async function inflate(bytes) {
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  }

  // Typed arrays use the machine's byte order; NumPy wrote little-endian, as every browser
  // machine is. Refuse to show wrong numbers on a big-endian one.
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
    $("about").textContent = "This page needs a little-endian machine to read its numbers.";
    return;
  }
  const TYPES = { "|u1": Uint8Array, "<u2": Uint16Array, "|i1": Int8Array, "<i2": Int16Array,
    "<f4": Float32Array };
  const blob = await inflate(base64Bytes(data.arrays.base64));
  const A = {}; // name -> { values: typed array (row-major), shape: [...] }
  for (const [name, [type, shape, offset]] of Object.entries(data.arrays.layout)) {
    const size = shape.reduce((a, b) => a * b, 1);
    A[name] = { values: new TYPES[type](blob.buffer, offset, size), shape: shape };
  }

  // ---- 2. Reading the numbers --------------------------------------------------------------

  // Weights: A.weights is (layers, heads, n, n) when every key is stored ("dense"); else
  // (layers, heads, n, k) with A.keys the key positions (largest weight first) and A.rest the
  // sum of each row's other weights. Stored as integer counts of 1 / data.scale.
  //
  // Value-weighted norms (Kobayashi et al. 2020), if to_html was given norms=: for the detail
  // layers only, the same layout in A.norms, with their own key positions A.norm_keys (each
  // row's largest norms, which need not be the keys of its largest weights) and A.norm_rest,
  // as 16-bit counts of A.norm_scale (one scale per head).
  const hasNorms = A.norms !== undefined;
  const WEIGHTS = { values: A.weights, keys: A.keys, rest: A.rest, unit: () => 1 / data.scale,
    index: (li) => li, rows: new Map(), head: { id: -1 } };
  const NORMS = { values: A.norms, keys: A.norm_keys, rest: A.norm_rest,
    unit: (li, hi) => A.norm_scale.values[detailIndex(li) * H + hi], index: detailIndex,
    rows: new Map(), head: { id: -1 } };

  /** Does the page hold the norms of layer layers[li]? */
  function normsOf(li) {
    return hasNorms && detailIndex(li) >= 0;
  }

  /** Row i of head (li, hi) of `table` (WEIGHTS or NORMS): stored keys, numbers, the rest. */
  function storedRow(table, li, hi, i) {
    const id = (table.index(li) * H + hi) * n + i;
    let cached = table.rows.get(id);
    if (cached !== undefined) return cached;
    const unit = table.unit(li, hi);
    const keys = new Int32Array(k);
    const values = new Float32Array(k);
    for (let s = 0; s < k; s++) {
      keys[s] = dense ? s : table.keys.values[id * k + s];
      values[s] = table.values.values[id * k + s] * unit;
    }
    cached = { keys: keys, values: values, rest: dense ? 0 : table.rest.values[id] * unit };
    if (table.rows.size > 4 * n) table.rows.clear(); // keep memory bounded for long inputs
    table.rows.set(id, cached);
    return cached;
  }

  /** The n x n numbers of one head of `table` (0 where not stored), and which are stored. */
  function storedHead(table, li, hi) {
    const id = table.index(li) * H + hi;
    if (table.head.id === id) return table.head;
    const values = new Float32Array(n * n);
    const stored = new Uint8Array(n * n);
    for (let i = 0; i < n; i++) {
      const r = storedRow(table, li, hi, i);
      for (let s = 0; s < k; s++) {
        values[i * n + r.keys[s]] = r.values[s];
        stored[i * n + r.keys[s]] = 1;
      }
    }
    table.head = { id: id, values: values, stored: stored };
    return table.head;
  }

  const row = (li, hi, i) => storedRow(WEIGHTS, li, hi, i);
  const headWeights = (li, hi) => storedHead(WEIGHTS, li, hi);

  function mayAttend(li, i, j) {
    return A.mask === undefined || A.mask.values[(li * n + i) * n + j] === 1;
  }

  // Details (the neuron, step and plane views): for the layers data.details (indices into
  // `layers`), q, k, v, z as int8 with one scale per (head, token); qk and scores of the
  // stored weights as int16 with one scale per head; the plane's coordinates.
  const d = data.d_head;

  function detailIndex(li) {
    return data.details.indexOf(li); // -1: this layer's vectors are not in the page
  }

  /** Vector `name` (q, k, v or z) of token i in head hi of detail layer di, as floats. */
  function vector(name, di, hi, i) {
    const id = (di * H + hi) * n + i;
    const scale = A[name + "_scale"].values[id];
    const out = new Float32Array(d);
    for (let c = 0; c < d; c++) out[c] = A[name].values[id * d + c] * scale;
    return out;
  }

  /** The recorded qk or scores of query i at stored slot s (dense: key s). */
  function pair(name, di, hi, i, s) {
    const scale = A[name + "_scale"].values[di * H + hi];
    return A[name].values[((di * H + hi) * n + i) * k + s] * scale;
  }

  /** "#rrggbb" -> [r, g, b] */
  function rgb(hex) {
    return [1, 3, 5].map((c) => parseInt(hex.slice(c, c + 2), 16));
  }
  const colormap = data.colormap.map(rgb); // white (weight 0) ... dark blue (largest weight)
  const normsColormap = data.norms_colormap.map(rgb); // dark purple (0) ... yellow (largest)
  const signedColormap = data.signed_colormap.map(rgb); // blue (negative) ... red (positive)
  const maskedColor = rgb(data.masked_color);

  function format(weight) {
    return weight.toFixed(data.decimals);
  }

  /** A number with 3 significant digits (as the figures write them). */
  function number(x) {
    return Math.abs(x) >= 100 ? x.toFixed(0) : x.toPrecision(3);
  }

  // Sentence pairs: the segment (0 = A, 1 = B) of each token, or null for one sentence.
  const segments = data.segments;

  // ---- 3. State: what is selected, and what was drawn (read by the tests) -----------------

  const state = {
    li: data.start.layer, // index into `layers` of the selected layer
    hi: data.start.head, // index into `heads` of the selected head
    query: null, // the focused query token (hovered or clicked), or null
    pinned: false, // true after a click: the focus stays when the mouse leaves
    shown: heads.map(() => true), // which heads the head view draws
    filter: "all", // sentence-pair filter: "all", "AB", "BA", "AA" or "BB"
    sort: "weight", // the focused row's list: "weight" (largest first) or "position"
  };
  const drawn = { heatmap: null, headView: null, rowList: null, neuron: null, steps: null,
    plane: null };

  /** Does the sentence-pair filter keep query i reading key j? */
  function kept(i, j) {
    if (state.filter === "all" || segments === null) return true;
    const from = state.filter[0] === "A" ? 0 : 1;
    const to = state.filter[1] === "A" ? 0 : 1;
    return segments[i] === from && segments[j] === to;
  }

  // ---- 4. Building the page --------------------------------------------------------------

  /** A new element with the given text (as text: textContent never parses HTML). */
  function element(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined) node.textContent = text;
    if (className !== undefined) node.className = className;
    return node;
  }

  function describe(i) {
    return "position " + data.positions[i] + ": " + tokens[i];
  }

  $("title").textContent = data.title;
  $("about").textContent = data.about;

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
  $("filter-label").hidden = segments === null;
  $("filter-select").addEventListener("change", (e) => {
    state.filter = e.target.value;
    redraw();
  });
  $("sort-select").addEventListener("change", (e) => {
    state.sort = e.target.value;
    drawFocus();
  });

  /**
   * Token labels along one side of a view: one per `step` tokens (so they never overlap),
   * each centred on its token's row (or column) of `size` pixels. Returns the labels by
   * token index (undefined where not written).
   */
  function tokenLabels(container, size, minimum, vertical) {
    const step = Math.max(1, Math.ceil(minimum / size));
    const extent = step * size;
    const labels = [];
    container.style[vertical ? "width" : "height"] = n * size + "px";
    for (let i = 0; i < n; i += step) {
      const label = element("div", tokens[i]);
      label.title = describe(i);
      label.dataset.index = String(i);
      const start = i * size + size / 2 - extent / 2;
      label.style[vertical ? "left" : "top"] = start + "px";
      label.style[vertical ? "width" : "height"] = extent + "px";
      label.style.lineHeight = extent + "px";
      label.style.fontSize = Math.max(9, Math.min(13, extent - 3)) + "px";
      container.append(label);
      labels[i] = label;
    }
    // The labels are placed absolutely, so the column takes the size of its longest label.
    let longest = 0;
    for (const label of labels) {
      if (label !== undefined) {
        longest = Math.max(longest, vertical ? label.scrollHeight : label.scrollWidth);
      }
    }
    container.style[vertical ? "height" : "width"] = Math.min(longest, 150) + 2 + "px";
    return labels;
  }

  // Heatmap: one canvas pixel per (query, key) cell, enlarged by CSS to `cell` screen pixels.
  // With norms, the value-weighted map stands beside it at the same size: both fit in the
  // width one map has alone.
  const cell = hasNorms ? Math.max(1, Math.min(28, Math.floor(540 / n)))
    : Math.max(2, Math.min(28, Math.floor(720 / n)));
  const heatmapCanvas = $("heatmap-canvas");
  const normsCanvas = $("norms-canvas");
  const maps = hasNorms ? [heatmapCanvas, normsCanvas] : [heatmapCanvas];
  const rowFrames = hasNorms ? [$("heatmap-row"), $("norms-row")] : [$("heatmap-row")];
  for (const canvas of maps) {
    canvas.width = n;
    canvas.height = n;
    canvas.style.width = canvas.style.height = n * cell + "px";
  }
  for (const frame of rowFrames) {
    frame.style.width = n * cell + "px";
    frame.style.height = cell + "px";
  }
  for (const id of ["norms-title", "norms-keys", "norms-box"]) $(id).hidden = !hasNorms;
  const normsTitle = $("norms-title").textContent;
  if (!hasNorms) $("sort-select").querySelector("[value=norm]").remove();
  $("row-values").style.height = 1.4 * Math.min(n + (hasNorms ? 3 : 1), 14) + "em";
  const heatmapQueryLabels = tokenLabels($("heatmap-queries"), cell, 12, false);
  const heatmapKeyLabels = tokenLabels($("heatmap-keys"), cell, 12, true);
  const normsKeyLabels = hasNorms ? tokenLabels($("norms-keys"), cell, 12, true) : [];
  heatmapQueryLabels.forEach((label, i) => hoverFocuses(label, i));

  function cellAt(canvas, event, rows, columns) {
    const box = canvas.getBoundingClientRect();
    return [
      Math.max(0, Math.min(rows - 1, Math.floor(((event.clientY - box.top) / box.height) * rows))),
      Math.max(0, Math.min(columns - 1,
        Math.floor(((event.clientX - box.left) / box.width) * columns))),
    ];
  }

  // Hovering a cell of either map focuses its row (the query), marks its key above both maps
  // and shows the cell's numbers.
  for (const canvas of maps) {
    canvas.addEventListener("mousemove", (e) => {
      const [i, j] = cellAt(canvas, e, n, n);
      if (!state.pinned) setFocus(i);
      for (const labels of [heatmapKeyLabels, normsKeyLabels]) {
        labels.forEach((label, c) => label.classList.toggle("focus", c === j));
      }
      $("cell-readout").textContent = "query " + i + " " + JSON.stringify(tokens[i]) +
        " \u2192 key " + j + " " + JSON.stringify(tokens[j]) + ": " + (normsOf(state.li) ?
          "\u03b1 " + cellText(i, j) + ", \u2016\u03b1 f(x)\u2016 " + normText(i, j)
          : cellText(i, j));
    });
    canvas.addEventListener("mouseleave", () => {
      $("cell-readout").textContent = "";
      for (const labels of [heatmapKeyLabels, normsKeyLabels]) {
        labels.forEach((label) => label.classList.remove("focus"));
      }
      if (!state.pinned) setFocus(null);
    });
    canvas.addEventListener("click", () => togglePin());
  }

  /** The weight of cell (i, j) of the selected head, in words. */
  function cellText(i, j) {
    if (!mayAttend(state.li, i, j)) return "masked";
    const head = headWeights(state.li, state.hi);
    if (head.stored[i * n + j]) return format(head.values[i * n + j]);
    const r = row(state.li, state.hi, i);
    return "not stored (below " + format(r.values[k - 1]) + "; the " + (n - k) +
      " keys not stored share " + format(r.rest) + ")";
  }

  /** The value-weighted norm of cell (i, j) of the selected head, in words. */
  function normText(i, j) {
    if (!mayAttend(state.li, i, j)) return "masked";
    const head = storedHead(NORMS, state.li, state.hi);
    if (head.stored[i * n + j]) return number(head.values[i * n + j]);
    const r = storedRow(NORMS, state.li, state.hi, i);
    return "not stored (below " + number(r.values[k - 1]) + "; the " + (n - k) +
      " keys not stored share " + number(r.rest) + ")";
  }

  // Head view: token columns in HTML (so they are text), the lines on a canvas between them.
  const rowHeight = n <= 32 ? 18 : Math.max(3, Math.min(14, Math.floor(1400 / n)));
  const MAX_LINES = 50000; // more lines than this take too long to draw: see drawHeadView
  const headCanvas = $("head-view-canvas");
  const headCanvasWidth = 220;
  const pixelRatio = window.devicePixelRatio || 1;
  headCanvas.width = headCanvasWidth * pixelRatio;
  headCanvas.height = n * rowHeight * pixelRatio;
  headCanvas.style.width = headCanvasWidth + "px";
  headCanvas.style.height = n * rowHeight + "px";
  const headQueryLabels = tokenLabels($("head-view-queries"), rowHeight, 12, false);
  const headKeyLabels = tokenLabels($("head-view-keys"), rowHeight, 12, false);
  headQueryLabels.forEach((label, i) => hoverFocuses(label, i));
  headCanvas.addEventListener("mousemove", (e) => {
    if (!state.pinned) setFocus(cellAt(headCanvas, e, n, 1)[0]);
  });
  headCanvas.addEventListener("mouseleave", () => { if (!state.pinned) setFocus(null); });

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
      state.shown = heads.map((_, other) => other === hi);
      swatches.forEach((other, c) => other.setAttribute("aria-pressed", String(c === hi)));
      drawHeadView();
    });
    $("head-swatches").append(button);
    swatches.push(button);
  });

  // Model view: a grid with a corner, head numbers across, then per layer its number and one
  // thumbnail button per head. A thumbnail has at most `side` pixels a side: past that, each
  // pixel shows the largest weight of the cells it covers.
  const grid = $("model-view");
  const thumb = Math.max(48, Math.min(96, 2 * n)); // thumbnail size on screen, in pixels
  const side = Math.min(n, 2 * thumb);
  grid.style.gridTemplateColumns = "auto repeat(" + H + ", " + (thumb + 6) + "px)";
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
      canvas.width = canvas.height = side;
      canvas.style.width = canvas.style.height = thumb + "px";
      paintThumbnail(canvas, li, hi);
      button.append(canvas);
      button.addEventListener("click", () => select(li, hi));
      grid.append(button);
      thumbnails.push(button);
    });
  });

  // Keyboard: arrows move the query and the head, Page Up / Down the layer, Esc lets go.
  document.addEventListener("keydown", (e) => {
    const tag = e.target.tagName;
    if (tag === "SELECT" || tag === "INPUT" || e.altKey || e.ctrlKey || e.metaKey) return;
    const moves = {
      ArrowDown: () => focusKey(state.query === null ? 0 : Math.min(n - 1, state.query + 1)),
      ArrowUp: () => focusKey(state.query === null ? n - 1 : Math.max(0, state.query - 1)),
      Home: () => focusKey(0),
      End: () => focusKey(n - 1),
      ArrowRight: () => select(state.li, (state.hi + 1) % H),
      ArrowLeft: () => select(state.li, (state.hi + H - 1) % H),
      PageDown: () => select((state.li + 1) % layers.length, state.hi),
      PageUp: () => select((state.li + layers.length - 1) % layers.length, state.hi),
      Escape: () => { state.pinned = false; setFocus(null); },
    };
    if (moves[e.key] === undefined) return;
    e.preventDefault();
    moves[e.key]();
  });

  function focusKey(i) {
    setFocus(i);
    state.pinned = true;
  }

  // ---- 5. Drawing ---------------------------------------------------------------------------

  function paint(image, pixel, color) {
    image.data[4 * pixel] = color[0]; // red, green, blue, opacity
    image.data[4 * pixel + 1] = color[1];
    image.data[4 * pixel + 2] = color[2];
    image.data[4 * pixel + 3] = 255;
  }

  /** The colour of `value` on [0, top] of `colors`, faded to white when `faded`. */
  function shade(colors, value, top, faded) {
    const color = colors[Math.round((value / Math.max(top, 1e-12)) * (colors.length - 1))];
    return faded ? color.map((c) => Math.round(255 - (255 - c) * 0.15)) : color;
  }

  /** The colour of a signed `value` on [-top, top] of the diverging map. */
  function signedShade(value, top) {
    const fraction = (value / Math.max(top, 1e-12) + 1) / 2; // -top -> 0, 0 -> 0.5, top -> 1
    const level = Math.round(fraction * (signedColormap.length - 1));
    return signedColormap[Math.max(0, Math.min(signedColormap.length - 1, level))];
  }

  /**
   * Paint one head of `table` (WEIGHTS or NORMS) into an n x n canvas, one pixel per cell,
   * coloured with `colors` on [0, largest number of this head]; masked cells are grey, cells
   * the sentence filter leaves out faded. Returns that largest number.
   */
  function paintPattern(canvas, table, colors, li, hi) {
    const w = storedHead(table, li, hi).values;
    let top = 0;
    for (let c = 0; c < w.length; c++) top = Math.max(top, w[c]);
    const context = canvas.getContext("2d");
    const image = context.createImageData(n, n);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        const color = mayAttend(li, i, j) ? shade(colors, w[i * n + j], top, !kept(i, j))
          : maskedColor;
        paint(image, i * n + j, color); // pixel (x = j, y = i)
      }
    }
    context.putImageData(image, 0, 0);
    return top;
  }

  /** A thumbnail of `side` x `side` pixels: the largest stored weight under each pixel. */
  function paintThumbnail(canvas, li, hi) {
    const block = new Float32Array(side * side);
    let top = 0;
    const first = (li * H + hi) * n * k; // this head's stored entries, read directly
    for (let i = 0; i < n; i++) {
      const y = Math.floor((i * side) / n);
      for (let s = 0; s < k; s++) {
        const entry = first + i * k + s;
        const j = dense ? s : A.keys.values[entry];
        const weight = A.weights.values[entry] / data.scale;
        const p = y * side + Math.floor((j * side) / n);
        if (weight > block[p]) block[p] = weight;
        if (weight > top) top = weight;
      }
    }
    const context = canvas.getContext("2d");
    const image = context.createImageData(side, side);
    for (let p = 0; p < side * side; p++) paint(image, p, shade(colormap, block[p], top, false));
    if (A.mask !== undefined) { // grey where every cell under the pixel is masked
      for (let y = 0; y < side; y++) {
        for (let x = 0; x < side; x++) {
          const i = Math.floor(((y + 0.5) * n) / side);
          const j = Math.floor(((x + 0.5) * n) / side);
          if (!mayAttend(li, i, j) && block[y * side + x] === 0) {
            paint(image, y * side + x, maskedColor);
          }
        }
      }
    }
    context.putImageData(image, 0, 0);
  }

  function drawHeatmap() {
    const top = paintPattern(heatmapCanvas, WEIGHTS, colormap, state.li, state.hi);
    const normsHere = normsOf(state.li);
    const normsTop = normsHere ? paintPattern(normsCanvas, NORMS, normsColormap, state.li,
      state.hi) : null;
    if (hasNorms && !normsHere) {
      normsCanvas.getContext("2d").clearRect(0, 0, n, n);
      $("norms-title").textContent = "value-weighted \u2016\u03b1 f(x)\u2016: this page " +
        "holds it for " + data.details.map((c) => "layer " + layers[c]).join(", ") +
        " only; to_html(..., details=[" + layers[state.li] + "]) adds layer " +
        layers[state.li];
    } else if (hasNorms) {
      $("norms-title").textContent = normsTitle;
    }
    for (const canvas of maps) {
      canvas.dataset.layer = String(layers[state.li]);
      canvas.dataset.head = String(heads[state.hi]);
    }
    $("heatmap-scale").textContent = "Layer " + layers[state.li] + ", head " + heads[state.hi] +
      ": white = 0, darkest blue = " + format(top) + " (the largest weight of this head)" +
      (normsHere ? "; beside it, \u2016\u03b1 f(x)\u2016 = \u03b1 times the length of the " +
        "value vector v W_O the key adds (Kobayashi et al. 2020): dark purple = 0, yellow = " +
        number(normsTop) + " (the largest of this head)" : "") +
      (A.mask === undefined ? "" : "; grey = masked (the query may not attend to that key)") +
      (dense ? "" : "; white" + (normsHere ? " and dark purple" : "") + " also = not stored " +
        "(each row keeps its " + k + " largest)") +
      (state.filter === "all" || segments === null ? "." : "; faded = outside " +
        state.filter[0] + " \u2192 " + state.filter[1] + ".");
    drawn.heatmap = {
      layer: layers[state.li],
      head: heads[state.hi],
      vmax: top,
      weights: Array.from(headWeights(state.li, state.hi).values),
      normsTop: normsTop,
      norms: normsHere ? Array.from(storedHead(NORMS, state.li, state.hi).values) : null,
    };
  }

  /**
   * The head view of the selected layer: for every head shown, a line from query i (left) to
   * key j (right) in the head's colour, as opaque as weight / (largest weight drawn), as in
   * viz.head_view. A canvas keeps opacity in 8 bits, so the opacity is rounded to a level
   * 0 ... 255 (alpha = level / 255); lines of level 0 would not change a pixel and are skipped.
   * Only stored weights have lines, and only pairs the sentence filter keeps.
   *
   * Long inputs have too many lines to draw quickly (12 heads at 256 tokens: 786,432). Then
   * only the MAX_LINES most opaque are drawn: the faintest levels are left out, and the note
   * under the head swatches says so.
   */
  function drawHeadView() {
    const context = headCanvas.getContext("2d");
    context.setTransform(pixelRatio, 0, 0, pixelRatio, 0, 0);
    context.clearRect(0, 0, headCanvasWidth, n * rowHeight);
    context.lineWidth = n <= 32 ? 2 : 1;
    const shown = heads.map((_, hi) => hi).filter((hi) => state.shown[hi]);
    const queries = state.query === null ? tokens.map((_, i) => i) : [state.query];

    // Every line that may be drawn: [head index, query, key, weight].
    const candidates = [];
    let top = 1e-12;
    for (const hi of shown) {
      for (const i of queries) {
        const r = row(state.li, hi, i);
        for (let s = 0; s < k; s++) {
          if (!kept(i, r.keys[s])) continue;
          candidates.push([hi, i, r.keys[s], r.values[s]]);
          top = Math.max(top, r.values[s]);
        }
      }
    }
    const levelOf = (weight) => Math.round((weight / top) * 255);

    // How many lines each opacity level has; then the faintest level that keeps the count
    // at most MAX_LINES.
    const perLevel = new Array(256).fill(0);
    for (const line of candidates) perLevel[levelOf(line[3])] += 1;
    let lowest = 1;
    const all = perLevel.slice(1).reduce((a, b) => a + b, 0); // every visible line
    let count = all;
    while (count > MAX_LINES) {
      count -= perLevel[lowest];
      lowest += 1;
    }

    // Lines of one head and one opacity level are stroked together, as one path: thousands
    // of strokes instead of one per line.
    const lines = []; // recorded for a focused query only (n per head), to keep this light
    const groups = new Map(); // hi * 256 + level -> [[i, j], ...]
    for (const [hi, i, j, weight] of candidates) {
      const level = levelOf(weight);
      if (level < lowest) continue;
      const group = hi * 256 + level;
      if (!groups.has(group)) groups.set(group, []);
      groups.get(group).push([i, j]);
      if (state.query !== null) {
        lines.push({ head: heads[hi], query: i, key: j, weight: weight, alpha: level / 255 });
      }
    }
    const y = (i) => (i + 0.5) * rowHeight;
    for (const [group, pairs] of groups) {
      context.strokeStyle = data.head_colors[Math.floor(group / 256)];
      context.globalAlpha = (group % 256) / 255;
      context.beginPath();
      for (const [i, j] of pairs) {
        context.moveTo(0, y(i));
        context.lineTo(headCanvasWidth, y(j));
      }
      context.stroke();
    }
    context.globalAlpha = 1;
    $("head-view-note").textContent = lowest === 1 ? "" : "Showing the " + count +
      " most opaque of " + all + " lines (opacity at least " + lowest + "/255).";
    for (const labels of [headQueryLabels, headKeyLabels, heatmapQueryLabels,
      heatmapKeyLabels]) {
      const isKey = labels === headKeyLabels || labels === heatmapKeyLabels;
      labels.forEach((label, i) => label.classList.toggle("outside", state.filter !== "all" &&
        segments !== null && segments[i] !== (state.filter[isKey ? 1 : 0] === "A" ? 0 : 1)));
    }
    drawn.headView = {
      layer: layers[state.li],
      heads: shown.map((hi) => heads[hi]),
      query: state.query,
      filter: state.filter,
      top: top,
      count: count,
      all: all,
      lowest: lowest,
      lines: state.query === null ? null : lines,
    };
  }

  /**
   * Frame the focused row, mark its tokens, and list its weights under the heatmap (with
   * norms, each key's weight and value-weighted norm side by side, each with a bar).
   */
  function drawFocus() {
    const i = state.query;
    for (const list of [heatmapQueryLabels, headQueryLabels]) {
      list.forEach((label, c) => label.classList.toggle("focus", c === i));
    }
    for (const frame of rowFrames) frame.hidden = i === null;
    const values = $("row-values");
    values.replaceChildren();
    if (i === null) {
      for (const frame of rowFrames) frame.removeAttribute("data-row");
      $("row-title").textContent = "Hover a query token to list its weights.";
      drawn.rowList = null;
      return;
    }
    for (const frame of rowFrames) {
      frame.style.top = i * cell + "px";
      frame.dataset.row = String(i);
    }
    const r = row(state.li, state.hi, i);
    const weightOf = new Map(Array.from(r.keys, (j, s) => [j, r.values[s]])); // key -> weight
    const withNorms = normsOf(state.li); // the list shows the norms of this layer
    const nr = withNorms ? storedRow(NORMS, state.li, state.hi, i) : null;
    const normOf = new Map(withNorms ? Array.from(nr.keys, (j, s) => [j, nr.values[s]]) : []);
    // The keys listed: those with a stored weight (or norm); sparse rows store different ones.
    const keys = Array.from(new Set([...weightOf.keys(), ...normOf.keys()]));
    // "norm" in a layer without norms lists by weight
    const sort = state.sort === "norm" && !withNorms ? "weight" : state.sort;
    const by = { weight: weightOf, norm: normOf }[sort];
    if (by === undefined) {
      keys.sort((a, b) => a - b);
    } else {
      keys.sort((a, b) => (by.has(b) ? by.get(b) : -1) - (by.has(a) ? by.get(a) : -1) || a - b);
    }
    let sum = r.rest;
    for (let s = 0; s < k; s++) sum += r.values[s];
    const order = { weight: "largest weight first", norm: "largest \u2016\u03b1 f(x)\u2016 first",
      position: "by position" }[sort];
    $("row-title").textContent = "Query " + i + " " + JSON.stringify(tokens[i]) + " in layer " +
      layers[state.li] + ", head " + heads[state.hi] + (withNorms ? ": the weight \u03b1 it " +
        "gives each key, and \u2016\u03b1 f(x)\u2016, how much that key adds to its output; "
        : " reads from each key, ") + order + " (sum of the rounded weights: " + format(sum) +
      "):";
    if (withNorms) { // column heads, laid out as the rows below
      const head = element("li", undefined, "head");
      head.append(element("span", "\u03b1".padEnd(7)), track(element("span")),
        element("span", " \u2016\u03b1 f(x)\u2016"), track(element("span")),
        element("span", " key"));
      head.querySelectorAll(".track").forEach((box) => { box.style.background = "none"; });
      values.append(head);
    }
    let normTop = 1e-12;
    for (const value of normOf.values()) normTop = Math.max(normTop, value);
    const width = String(n - 1).length;
    const listed = [];
    const norms = [];
    for (const j of keys) {
      if (!kept(i, j)) continue;
      const allowed = mayAttend(state.li, i, j);
      const weight = !allowed ? "masked"
        : weightOf.has(j) ? format(weightOf.get(j)) : "<" + format(r.values[k - 1]);
      const item = element("li");
      item.dataset.key = String(j);
      item.dataset.weight = weight;
      const bar = element("span", undefined, "bar");
      bar.style.width = (allowed && weightOf.has(j) ? 10 * weightOf.get(j) : 0) + "em";
      bar.title = "weight \u03b1 on [0, 1]";
      if (withNorms) { // alpha, its bar, the norm, its bar (each in a track), then the key
        const norm = !allowed ? "masked"
          : normOf.has(j) ? number(normOf.get(j)) : "<" + number(nr.values[k - 1]);
        item.dataset.norm = norm;
        norms.push(allowed && normOf.has(j) ? normOf.get(j) : null);
        const normBar = element("span", undefined, "bar norm");
        normBar.style.width = (allowed && normOf.has(j) ? 6 * normOf.get(j) / normTop : 0) +
          "em";
        normBar.title = "\u2016\u03b1 f(x)\u2016 on [0, this row's largest]";
        bar.style.width = parseFloat(bar.style.width) * 0.6 + "em";
        item.append(element("span", weight.padEnd(7), "value"), track(bar),
          element("span", " " + norm.padEnd(8), "norm"), track(normBar),
          element("span", " " + String(j).padStart(width) + " " + tokens[j], "token"));
      } else {
        item.append(element("span", weight, "value"), element("span", "  " +
          String(j).padStart(width) + " " + tokens[j], "token"), bar);
      }
      values.append(item);
      listed.push(j);
    }
    if (!dense) {
      const item = element("li", (withNorms ? "\u03b1 " : "") + format(r.rest) + "  the other " +
        (n - k) + " keys together", "rest");
      item.dataset.weight = format(r.rest);
      values.append(item);
      if (withNorms) {
        const normRest = element("li", "\u2016\u03b1 f(x)\u2016 " + number(nr.rest) +
          "  the other " + (n - k) + " keys by \u2016\u03b1 f(x)\u2016 together", "rest");
        normRest.dataset.norm = number(nr.rest);
        values.append(normRest);
      }
    }
    drawn.rowList = { query: i, keys: listed, rest: dense ? null : r.rest,
      norms: withNorms ? norms : null, normRest: withNorms && !dense ? nr.rest : null };
  }

  /** A bar in a fixed-width track, so that the bars of a list line up. */
  function track(bar) {
    const box = element("span", undefined, "track");
    box.append(bar);
    return box;
  }

  // ---- 5b. The neuron view -----------------------------------------------------------------

  const NEURON_ROWS = 24; // keys listed at most, largest weight first
  const stripCell = Math.max(3, Math.min(8, Math.floor(192 / d))); // pixels per vector entry

  /** A one-row canvas of a vector, coloured on [-top, top]; hovering names the entry. */
  function strip(values, top, name) {
    const canvas = element("canvas");
    canvas.width = values.length;
    canvas.height = 1;
    canvas.style.width = values.length * stripCell + "px";
    canvas.style.height = "14px";
    const context = canvas.getContext("2d");
    const image = context.createImageData(values.length, 1);
    values.forEach((value, c) => paint(image, c, signedShade(value, top)));
    context.putImageData(image, 0, 0);
    canvas.addEventListener("mousemove", (e) => {
      const c = cellAt(canvas, e, 1, values.length)[1];
      $("cell-readout").textContent = name + "[" + c + "] = " + number(values[c]);
    });
    return canvas;
  }

  function maxAbs(vectors) {
    let top = 0;
    for (const v of vectors) for (const x of v) top = Math.max(top, Math.abs(x));
    return top;
  }

  function drawNeuron() {
    const table = $("neuron");
    table.replaceChildren();
    const i = state.query;
    const di = detailIndex(state.li);
    drawn.neuron = null;
    if (di < 0) {
      $("neuron-note").textContent = "This page holds the vectors of " +
        data.details.map((c) => "layer " + layers[c]).join(", ") + " only; to_html(..., " +
        "details=[" + layers[state.li] + "]) adds layer " + layers[state.li] + ".";
      return;
    }
    if (i === null) {
      $("neuron-note").textContent = "Hover or pin a query token to see its numbers.";
      return;
    }
    const hi = state.hi;
    const r = row(state.li, hi, i);
    const slots = Array.from(r.keys.keys()).filter((s) => kept(i, r.keys[s]));
    slots.sort((a, b) => r.values[b] - r.values[a] || r.keys[a] - r.keys[b]);
    const shown = slots.slice(0, NEURON_ROWS);
    const q = vector("q", di, hi, i);
    const keys = shown.map((s) => vector("k", di, hi, r.keys[s]));
    const values = shown.map((s) => vector("v", di, hi, r.keys[s]));
    const products = keys.map((key) => key.map((x, c) => x * q[c])); // display only
    const weighted = values.map((v, row_) => v.map((x) => x * r.values[shown[row_]]));
    const z = vector("z", di, hi, i);
    const qkTop = maxAbs([q, ...keys]);
    const productTop = maxAbs(products);
    const valueTop = maxAbs(values);
    const weightedTop = maxAbs([...weighted, z]);
    const scaled = data.scaled_scores;

    const header = element("tr");
    for (const text of ["key j", "k_j", "q \u2299 k_j", "q \u00b7 k_j",
      scaled ? "\u00f7 \u221a" + d + " = score" : "score (not scaled)", "softmax = w_j", "v_j",
      "w_j v_j", ...(hasNorms ? ["\u2016w_j v_j W_O\u2016"] : [])]) {
      header.append(element("th", text));
    }
    table.append(header);
    const queryRow = element("tr", undefined, "query");
    queryRow.append(element("td", "q: " + tokens[i], "token"));
    const qCell = element("td");
    qCell.append(strip(q, qkTop, "q"));
    queryRow.append(qCell);
    queryRow.append(element("td", "(query " + i + ")"));
    table.append(queryRow);

    const listed = [];
    shown.forEach((s, c) => {
      const j = r.keys[s];
      const line = element("tr");
      line.dataset.key = String(j);
      line.append(element("td", tokens[j], "token"));
      for (const [vec, top, name] of [[keys[c], qkTop, "k_" + j],
        [products[c], productTop, "q\u2299k_" + j]]) {
        const td = element("td");
        td.append(strip(vec, top, name));
        line.append(td);
      }
      const allowed = mayAttend(state.li, i, j);
      const qk = pair("qk", di, hi, i, s);
      const score = pair("scores", di, hi, i, s);
      line.append(element("td", number(qk), "number"));
      line.append(element("td", number(score), "number"));
      line.append(element("td", allowed ? format(r.values[s]) : "masked", "number"));
      for (const [vec, top, name] of [[values[c], valueTop, "v_" + j],
        [weighted[c], weightedTop, "w v_" + j]]) {
        const td = element("td");
        td.append(strip(vec, top, name));
        line.append(td);
      }
      const entry = { key: j, qk: qk, score: score, weight: r.values[s] };
      if (hasNorms) { // Kobayashi et al.'s norm of what this key adds, as to_html was given it
        const norms = storedHead(NORMS, state.li, hi);
        entry.norm = norms.stored[i * n + j] ? norms.values[i * n + j] : null;
        const smallest = storedRow(NORMS, state.li, hi, i).values[k - 1];
        line.append(element("td", !allowed ? "masked" : entry.norm === null ?
          "<" + number(smallest) : number(entry.norm), "number norm"));
      }
      table.append(line);
      listed.push(entry);
    });
    const output = element("tr", undefined, "output");
    output.append(element("td", "z: " + tokens[i], "token"));
    for (let c = 0; c < 6; c++) output.append(element("td"));
    const zCell = element("td");
    zCell.append(strip(z, weightedTop, "z"));
    output.append(zCell);
    table.append(output);
    const more = slots.length - shown.length;
    $("neuron-note").textContent = "Layer " + layers[state.li] + ", head " + heads[hi] +
      ", query " + i + " " + JSON.stringify(tokens[i]) + ": " + shown.length + " keys" +
      (more > 0 ? " with the largest weights (" + more + " more not listed)" : "") +
      (dense ? "" : "; keys beyond the " + k + " stored share " + format(r.rest)) +
      ". z = \u03a3 w_j v_j over every key, as the model recorded it. Vectors stored " +
      "at 8 bits (within 0.4% of each vector's largest entry).";
    drawn.neuron = { layer: layers[state.li], head: heads[hi], query: i, keys: listed,
      q: Array.from(q), z: Array.from(z) };
  }

  // ---- 5c. The step-by-step view -----------------------------------------------------------

  const stepCell = Math.max(1, Math.min(12, Math.floor(360 / n))); // pixels per token row
  const stepColumn = Math.max(2, Math.min(8, Math.floor(160 / d))); // pixels per entry of d
  const steps = {}; // name -> { canvas, box, rows, columns, bands }

  function stepPanel(name, title, columns) {
    const figure = element("figure");
    figure.append(element("figcaption", title));
    const box = element("div", undefined, "box");
    const canvas = element("canvas");
    canvas.width = columns;
    canvas.height = n;
    const width = columns === n ? stepCell : stepColumn;
    canvas.style.width = columns * width + "px";
    canvas.style.height = n * stepCell + "px";
    canvas.dataset.step = name;
    box.append(canvas);
    figure.append(box);
    $("steps").append(figure);
    const panel = { canvas: canvas, box: box, columns: columns, width: width, bands: [] };
    canvas.addEventListener("mousemove", (e) => {
      const [i, j] = cellAt(canvas, e, n, columns);
      const pairs = columns === n; // scores and weights: a cell is (query i, key j)
      highlightSteps(i, pairs ? j : null);
      $("cell-readout").textContent = stepText(name, i, j);
    });
    canvas.addEventListener("mouseleave", () => highlightSteps(null, null));
    steps[name] = panel;
    return panel;
  }

  function stepText(name, i, j) {
    const di = detailIndex(state.li);
    if (name === "scores" || name === "weights") {
      const where = "query " + i + " " + JSON.stringify(tokens[i]) + ", key " + j + " " +
        JSON.stringify(tokens[j]) + ": ";
      if (name === "weights") return where + cellText(i, j);
      const s = slotOf(i, j);
      return where + (s < 0 ? "not stored" : number(pair("scores", di, state.hi, i, s)));
    }
    return name + "[" + i + ", " + j + "] (" + JSON.stringify(tokens[i]) + ") = " +
      number(vector(name.toLowerCase(), di, state.hi, i)[j]);
  }

  /** The stored slot of key j in row i of the selected head, or -1. */
  function slotOf(i, j) {
    if (dense) return j;
    const r = row(state.li, state.hi, i);
    return r.keys.indexOf(j);
  }

  if (data.details.length > 0) { // the tokens beside the first panel, as its row labels
    const figure = element("figure");
    figure.append(element("figcaption", "token"));
    const column = element("div", undefined, "query-labels");
    figure.append(column);
    $("steps").append(figure);
    tokenLabels(column, stepCell, 12, false).forEach((label, i) => hoverFocuses(label, i));
  }
  const scaledTitle = data.scaled_scores ? "scores = Q K\u1d40 / \u221a" + d : "scores = Q K\u1d40";
  if (data.details.length > 0) {
    stepPanel("Q", "Q = X W_Q + b_Q  (" + n + " \u00d7 " + d + ")", d);
    stepPanel("K", "K = X W_K + b_K  (" + n + " \u00d7 " + d + ")", d);
    stepPanel("scores", scaledTitle + "  (" + n + " \u00d7 " + n + ")", n);
    stepPanel("weights", "weights = softmax(scores + mask)  (" + n + " \u00d7 " + n + ")", n);
    stepPanel("Z", "Z = weights V  (" + n + " \u00d7 " + d + ")", d);
  }

  function paintStep(name, value, signed, top, masked) {
    const panel = steps[name];
    const context = panel.canvas.getContext("2d");
    const image = context.createImageData(panel.columns, n);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < panel.columns; j++) {
        const x = value(i, j);
        let color;
        if (masked !== undefined && masked(i, j)) color = maskedColor;
        else if (x === null) color = [255, 255, 255];
        else color = signed ? signedShade(x, top) : shade(colormap, x, top, false);
        paint(image, i * panel.columns + j, color);
      }
    }
    context.putImageData(image, 0, 0);
  }

  function drawSteps() {
    const di = detailIndex(state.li);
    if (Object.keys(steps).length === 0) {
      $("steps-note").textContent = "This page holds no layer's vectors (details=[]).";
      return;
    }
    $("steps").hidden = di < 0;
    if (di < 0) {
      $("steps-note").textContent = "This page holds the vectors of " +
        data.details.map((c) => "layer " + layers[c]).join(", ") + " only; to_html(..., " +
        "details=[" + layers[state.li] + "]) adds layer " + layers[state.li] + ".";
      drawn.steps = null;
      return;
    }
    const hi = state.hi;
    const vectors = {};
    for (const name of ["q", "k", "z"]) {
      vectors[name] = tokens.map((_, i) => vector(name, di, hi, i));
    }
    const scores = new Float32Array(n * n).fill(NaN);
    let scoreTop = 0;
    for (let i = 0; i < n; i++) {
      const r = row(state.li, hi, i);
      for (let s = 0; s < k; s++) {
        const value = pair("scores", di, hi, i, s);
        scores[i * n + r.keys[s]] = value;
        if (mayAttend(state.li, i, r.keys[s])) scoreTop = Math.max(scoreTop, Math.abs(value));
      }
    }
    const head = headWeights(state.li, hi);
    let weightTop = 0;
    for (const w of head.values) weightTop = Math.max(weightTop, w);
    const masked = (i, j) => !mayAttend(state.li, i, j);
    paintStep("Q", (i, c) => vectors.q[i][c], true, maxAbs(vectors.q));
    paintStep("K", (i, c) => vectors.k[i][c], true, maxAbs(vectors.k));
    paintStep("scores", (i, j) => (isNaN(scores[i * n + j]) ? null : scores[i * n + j]), true,
      scoreTop, masked);
    paintStep("weights", (i, j) => head.values[i * n + j], false, weightTop, masked);
    paintStep("Z", (i, c) => vectors.z[i][c], true, maxAbs(vectors.z));
    $("steps-note").textContent = "Layer " + layers[state.li] + ", head " + heads[hi] +
      ": Q, K and Z share nothing but their rows (one per token); scores and weights have " +
      "one row per query and one column per key" + (A.mask === undefined ? "" :
        "; grey = masked") + (dense ? "." : "; white = not stored.");
    drawn.steps = { layer: layers[state.li], head: heads[hi], highlight: null,
      scores: Array.from(scores, (x) => (isNaN(x) ? null : x)) };
    highlightSteps(state.query, null);
  }

  /**
   * Light up a query and a key in every step panel: the query's row in Q, scores, weights
   * and Z, the key's row in K and its column in scores and weights. Hovering a token makes
   * it both (i, null); hovering a cell of scores or weights gives its query i and key j.
   */
  function highlightSteps(i, j) {
    if (drawn.steps === null) return;
    const query = i === null ? state.query : i;
    const key = j === null ? query : j;
    for (const [name, panel] of Object.entries(steps)) {
      panel.bands.forEach((band) => band.remove());
      panel.bands = [];
      if (query === null) continue;
      const pairs = panel.columns === n; // scores and weights: rows are queries, columns keys
      const marks = name === "K" ? [["row", key, "key"]] : [["row", query, "query"]];
      if (pairs) marks.push(["column", key, "key"]);
      for (const [direction, index, kind] of marks) {
        const band = element("div", undefined, "band " + kind);
        if (direction === "row") {
          band.style.left = "0px";
          band.style.top = index * stepCell + "px";
          band.style.width = panel.columns * panel.width + 2 + "px";
          band.style.height = stepCell + 2 + "px";
          band.dataset.row = String(index);
        } else {
          band.style.top = "0px";
          band.style.left = index * panel.width + "px";
          band.style.height = n * stepCell + 2 + "px";
          band.style.width = panel.width + 2 + "px";
          band.dataset.column = String(index);
        }
        panel.box.append(band);
        panel.bands.push(band);
      }
    }
    drawn.steps.highlight = { query: query, key: key };
  }

  // ---- 5d. The query-key plane -------------------------------------------------------------

  // The plane's N points: the n tokens of the shown sequence or, in corpus mode (to_html(...,
  // corpus=True)), the real tokens of every sequence of the batch, the shown sequence's from
  // `offset` on. A.plane holds, per detail layer and head, the N queries then the N keys.
  const corpus = data.corpus; // null: the plane holds the shown sequence only
  const N = corpus === null ? n : corpus.tokens.length;
  const offset = corpus === null ? 0 : corpus.offset;
  const planeSize = N <= 100 ? 420 : 560;
  const planeCanvas = $("plane-canvas");
  planeCanvas.width = planeSize * pixelRatio;
  planeCanvas.height = planeSize * pixelRatio;
  planeCanvas.style.width = planeCanvas.style.height = planeSize + "px";
  const QUERY_COLOR = "#1b9e77";
  const KEY_COLOR = "#e7298a";
  const SEGMENT_COLORS = ["#1f77b4", "#ff7f0e"]; // sentence A, sentence B
  let planePoints = []; // [x, y, kind ("query" or "key"), point index t] in canvas pixels

  const pointToken = (t) => (corpus === null ? tokens[t] : corpus.tokens[t]);
  const pointSegments = corpus === null ? segments : corpus.segments; // null: one sentence
  const positionOf = (t) => (corpus === null ? t : corpus.positions[t]);
  let lastPosition = 1;
  for (let t = 0; t < N; t++) lastPosition = Math.max(lastPosition, positionOf(t));

  /** How a point is named: "query 3 "cat"", and its sequence in corpus mode. */
  function pointName(kind, t) {
    return kind + " " + positionOf(t) + " " + JSON.stringify(pointToken(t)) +
      (corpus === null ? "" : " (sequence " + corpus.sequences[t] + ")");
  }

  const planeColor = $("plane-color");
  planeColor.addEventListener("change", () => {
    planeHeadsLayer = -1; // the small multiples take the new colours too
    drawPlane();
  });
  if (pointSegments === null) planeColor.querySelector("[value=segment]").remove();
  if (corpus === null) planeColor.querySelector("[value=sequence]").remove();
  else planeColor.value = "sequence";

  /** The colour of point t, a query or a key, as the colour control says. */
  function pointColor(kind, t) {
    const coloring = planeColor.value;
    if (coloring === "position") {
      return "hsl(" + Math.round((270 * positionOf(t)) / lastPosition) + ", 70%, 45%)";
    }
    if (coloring === "segment") return SEGMENT_COLORS[pointSegments[t]];
    if (coloring === "sequence") return corpus.colors[corpus.sequences[t]];
    return kind === "query" ? QUERY_COLOR : KEY_COLOR;
  }

  /** Point p (0 .. 2N-1: queries, then keys) of head hi of detail layer di in a square
   * of `size` pixels with a margin: [x, y], y up, both axes on one scale. */
  function planeLayout(di, hi, size, margin) {
    const base = (di * H + hi) * 2 * N * 2;
    let span = 1e-12;
    for (let c = 0; c < 4 * N; c++) span = Math.max(span, Math.abs(A.plane.values[base + c]));
    const scale = (size / 2 - margin) / span;
    return (p) => [size / 2 + A.plane.values[base + 2 * p] * scale,
      size / 2 - A.plane.values[base + 2 * p + 1] * scale];
  }

  function drawPlane() {
    const di = detailIndex(state.li);
    const context = planeCanvas.getContext("2d");
    context.setTransform(pixelRatio, 0, 0, pixelRatio, 0, 0);
    context.clearRect(0, 0, planeSize, planeSize);
    planePoints = [];
    drawPlaneHeads(di);
    if (di < 0) {
      $("plane-note").textContent = "This page holds the vectors of " +
        data.details.map((c) => "layer " + layers[c]).join(", ") + " only.";
      drawn.plane = null;
      return;
    }
    const hi = state.hi;
    const xy = planeLayout(di, hi, planeSize, 16);
    // Lines from the focused query to the keys it reads most (its 3 largest weights).
    const focus = state.query;
    const strongest = [];
    if (focus !== null) {
      const r = row(state.li, hi, focus);
      const order = Array.from(r.keys.keys()).sort((a, b) => r.values[b] - r.values[a]);
      const [fx, fy] = xy(offset + focus);
      context.strokeStyle = "#444";
      context.lineWidth = 1;
      for (const s of order.slice(0, 3)) {
        const [kx, ky] = xy(N + offset + r.keys[s]);
        context.globalAlpha = Math.max(0.15, r.values[s]);
        context.beginPath();
        context.moveTo(fx, fy);
        context.lineTo(kx, ky);
        context.stroke();
        strongest.push(offset + r.keys[s]);
      }
      context.globalAlpha = 1;
    }
    const focused = focus === null ? -1 : offset + focus;
    const size = pointSize(N); // smaller points when there are many
    // Each token's query, then its key: drawn in turn, neither kind hides the other (all the
    // keys after all the queries covered most queries at 512 tokens); the focus on top.
    for (let p = 0; p < 2 * N; p++) planePoints.push([...xy(p), p < N ? "query" : "key", p % N]);
    for (const p of drawingOrder(N, focused)) {
      const [px, py, kind, t] = planePoints[p];
      context.fillStyle = pointColor(kind, t);
      context.beginPath();
      if (kind === "query") context.arc(px, py, t === focused ? 6 : size + 0.5, 0, 2 * Math.PI);
      else context.rect(px - size, py - size, 2 * size, 2 * size);
      context.fill();
      if (t === focused && kind === "query") {
        context.strokeStyle = "#d62728";
        context.lineWidth = 2;
        context.stroke();
      }
    }
    // Labels, most wanted first: the focused query and its keys, the shown sequence's queries
    // and keys, then (corpus) every other point.
    const wanted = [];
    if (focus !== null) {
      wanted.push(focused);
      for (const t of strongest) wanted.push(N + t);
    }
    for (let t = offset; t < offset + n; t++) wanted.push(t);
    for (let t = offset; t < offset + n; t++) wanted.push(N + t);
    for (let p = 0; p < 2 * N; p++) if (p % N < offset || p % N >= offset + n) wanted.push(p);
    const labels = placeLabels(context, Array.from(new Set(wanted), (p) => {
      const kind = p < N ? "query" : "key";
      return { point: p, kind: kind, index: p % N, color: pointColor(kind, p % N),
        at: planePoints[p] };
    }));
    const explained = [0, 1].map((c) => A.explained.values[(di * H + hi) * 2 + c]);
    $("plane-note").textContent = "Layer " + layers[state.li] + ", head " + heads[hi] +
      ": circles are queries, squares keys" + (corpus === null ? "" : ", " + N + " of each " +
        "from the " + corpus.count + " sequences of the batch (the shown one is sequence " +
        data.batch + ")") + "; the axes hold " + Math.round(100 * explained[0]) + "% and " +
      Math.round(100 * explained[1]) + "% of the variance; " + labels.length + " of " +
      2 * N + " points labelled (labels never overlap)" + (focus === null ? "." :
        "; lines join the focused query to its 3 strongest keys.");
    drawn.plane = { layer: layers[state.li], head: heads[hi], focus: focus,
      points: planePoints.map((p) => p.slice()), labels: labels, size: planeSize };
  }

  // Where a point's label may go, tried in this order (as viz.qk_space's LABEL_PLACES):
  // [dx, dy, alignment]: the label's box starts dx pixels right of the point (its right edge,
  // for "right"; its middle, for "center") and its middle dy pixels below it.
  const LABEL_PLACES = [[5, -7, "left"], [5, 7, "left"], [-5, -7, "right"], [-5, 7, "right"],
    [7, 0, "left"], [-7, 0, "right"], [0, -12, "center"], [0, 12, "center"]];
  const LABEL_FONT = 11; // pixels
  const LABEL_HEIGHT = 14; // pixels: the font's ascent and descent
  const LABEL_BIN = 32; // pixels: the side of a bin of placeLabels' grid

  /** A token as a label: at most 16 characters (a longer one ends with "\u2026"). */
  function labelText(token) {
    const characters = Array.from(token); // by code point: never half of a surrogate pair
    return characters.length <= 16 ? token : characters.slice(0, 15).join("") + "\u2026";
  }

  /**
   * Draw a label beside each point of `wanted` (in that order) where it overlaps no label
   * drawn before and no other point, and stays inside the canvas; a point with no such place
   * gets no label. Returns the labels drawn: { point, kind, index, text, color, box: [left,
   * top, right, bottom] }.
   */
  function placeLabels(context, wanted) {
    context.font = LABEL_FONT + "px sans-serif";
    // Every point (its marker's box) and every label drawn goes into the square bins of a grid
    // it touches, so a new label is checked against what lies in its own bins only, not
    // against all 2N points (at 512 tokens, a thousand times fewer comparisons).
    const bins = new Map(); // "column,row" -> [{ box, owner: point index, or -1 for a label }]
    const binsOf = (box) => {
      const keys = [];
      for (let x = Math.floor(box[0] / LABEL_BIN); x <= Math.floor(box[2] / LABEL_BIN); x++) {
        for (let y = Math.floor(box[1] / LABEL_BIN); y <= Math.floor(box[3] / LABEL_BIN); y++) {
          keys.push(x + "," + y);
        }
      }
      return keys;
    };
    const add = (box, owner) => {
      for (const key of binsOf(box)) {
        if (!bins.has(key)) bins.set(key, []);
        bins.get(key).push({ box: box, owner: owner });
      }
    };
    planePoints.forEach(([x, y], p) => add([x - 3, y - 3, x + 3, y + 3], p));
    const free = (box, point) => binsOf(box).every((key) => (bins.get(key) || []).every(
      (other) => other.owner === point || !overlap(box, other.box)));
    const placed = [];
    for (const { point, kind, index, color, at } of wanted) {
      const text = labelText(pointToken(index));
      const width = context.measureText(text).width;
      for (const [dx, dy, align] of LABEL_PLACES) {
        const left = at[0] + dx - (align === "right" ? width : align === "center" ? width / 2 : 0);
        const top = at[1] + dy - LABEL_HEIGHT / 2;
        const box = [left, top, left + width, top + LABEL_HEIGHT];
        const inside = box[0] >= 0 && box[1] >= 0 && box[2] <= planeSize && box[3] <= planeSize;
        if (!inside || !free(box, point)) continue;
        placed.push({ point: point, kind: kind, index: index, text: text, box: box,
          color: color });
        add(box, -1);
        break;
      }
    }
    context.textAlign = "left";
    context.textBaseline = "middle";
    context.lineJoin = "round";
    for (const label of placed) {
      const y = (label.box[1] + label.box[3]) / 2;
      context.lineWidth = 3; // a white halo, so a label stays readable over lines and points
      context.strokeStyle = "white";
      context.strokeText(label.text, label.box[0], y);
      context.fillStyle = label.color;
      context.fillText(label.text, label.box[0], y);
    }
    return placed;
  }

  function overlap(a, b) {
    return a[0] < b[2] && b[0] < a[2] && a[1] < b[3] && b[1] < a[3];
  }

  /** The half-width of a key's square in the plane (pixels; a query's dot is half a pixel
   * wider) when it holds n queries and n keys: smaller when there are many. */
  function pointSize(n) {
    return n <= 64 ? 3 : n <= 256 ? 2 : 1.5;
  }

  /**
   * The order to draw the plane's 2n points in (queries 0..n-1, keys n..2n-1): each token's
   * query, then its key, and the focused query (if any) last, on top.
   */
  function drawingOrder(n, focused) {
    const order = [];
    for (let t = 0; t < n; t++) {
      if (t !== focused) order.push(t);
      order.push(n + t);
    }
    if (focused >= 0) order.push(focused);
    return order;
  }

  // Small multiples: every head of the selected layer, queries and keys as dots, coloured as
  // the plane above.
  const planeThumb = 72;
  let planeHeadsLayer = -1; // the layer the small multiples show
  const planeButtons = heads.map((head, hi) => {
    const button = element("button");
    button.title = "head " + head + ": click to enlarge";
    button.dataset.head = String(head);
    const canvas = element("canvas");
    canvas.width = canvas.height = planeThumb * pixelRatio;
    canvas.style.width = canvas.style.height = planeThumb + "px";
    button.append(canvas, element("span", String(head)));
    button.addEventListener("click", () => select(state.li, hi));
    $("plane-heads").append(button);
    return button;
  });

  function drawPlaneHeads(di) {
    planeButtons.forEach((button, hi) => button.classList.toggle("selected", hi === state.hi));
    if (planeHeadsLayer === state.li) return;
    planeHeadsLayer = state.li;
    $("plane-heads").hidden = di < 0;
    if (di < 0) return;
    planeButtons.forEach((button, hi) => {
      const context = button.querySelector("canvas").getContext("2d");
      context.setTransform(pixelRatio, 0, 0, pixelRatio, 0, 0);
      context.clearRect(0, 0, planeThumb, planeThumb);
      const xy = planeLayout(di, hi, planeThumb, 4);
      const half = pointSize(N) / 2;
      for (const p of drawingOrder(N, -1)) {
        const [x, y] = xy(p);
        context.fillStyle = pointColor(p < N ? "query" : "key", p % N);
        context.fillRect(x - half, y - half, 2 * half, 2 * half);
      }
    });
  }

  planeCanvas.addEventListener("mousemove", (e) => {
    const box = planeCanvas.getBoundingClientRect();
    const x = e.clientX - box.left;
    const y = e.clientY - box.top;
    let best = null;
    let distance = 64; // within 8 pixels
    for (const point of planePoints) {
      const gap = (point[0] - x) ** 2 + (point[1] - y) ** 2;
      if (gap < distance) {
        distance = gap;
        best = point;
      }
    }
    if (best === null) {
      $("cell-readout").textContent = "";
      return;
    }
    const [, , kind, t] = best;
    $("cell-readout").textContent = pointName(kind, t);
    // a query of the shown sequence takes the focus (the page has only its weights)
    if (kind === "query" && t >= offset && t < offset + n && !state.pinned) setFocus(t - offset);
  });

  // ---- 6. Changing the selection and the focus ---------------------------------------------

  /** Select head heads[hi] of layer layers[li]: update the controls and redraw. */
  function select(li, hi) {
    state.li = li;
    state.hi = hi;
    $("layer-select").value = String(li);
    $("head-select").value = String(hi);
    thumbnails.forEach((button, c) => {
      const selected = c === li * H + hi;
      button.classList.toggle("selected", selected);
      button.setAttribute("aria-pressed", String(selected));
    });
    redraw();
  }

  function redraw() {
    drawHeatmap();
    drawHeadView();
    drawFocus();
    drawNeuron();
    drawSteps();
    drawPlane();
  }

  /** Focus query token i (or nothing, for null) in every view. */
  function setFocus(i) {
    if (i === state.query) return;
    state.query = i;
    drawFocus();
    drawHeadView();
    drawNeuron();
    highlightSteps(null, null);
    drawPlane();
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

  // ---- 7. A read-only view of the state, for tests and the curious -------------------------

  window.attentionView = Object.freeze({
    /** A copy of what is selected and what was drawn (the heatmap's weights, the lines...). */
    state: () => JSON.parse(JSON.stringify({
      layer: layers[state.li],
      head: heads[state.hi],
      query: state.query,
      pinned: state.pinned,
      filter: state.filter,
      sort: state.sort,
      shownHeads: heads.filter((_, hi) => state.shown[hi]),
      heatmap: drawn.heatmap,
      headView: drawn.headView,
      rowList: drawn.rowList,
      neuron: drawn.neuron,
      steps: drawn.steps,
      plane: drawn.plane,
    })),
  });
})().catch((error) => {
  document.getElementById("about").textContent = "The page could not draw: " + error;
  throw error;
});
