"""How one query attends: its dot product with every key, written out (BertViz's neuron view).

For query token i of one head, left to right::

    k_j   ->   q_i ⊙ k_j   ->   q_i · k_j = Σ (q_i ⊙ k_j)   ->   ÷ √d_head = scores[i, j]
          ->   softmax over j = weights[i, j]   ->   v_j   ->   weights[i, j] v_j
          ->   z_i = Σ_j weights[i, j] v_j

Read from the trace: q, k, v, scores, weights, mask and z. Computed for display only: the
element-wise products ``q ⊙ k_j`` and ``w_j v_j`` (the terms of sums whose results the trace
holds) and the dot products shown as ``scores · √d_head`` (a constant rescale). A test checks
that the terms add up to the recorded results.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

from minitransformer.trace import Trace
from viz.steps import draw_matrix, set_figure_texts, update_matrix
from viz.style import (
    HIGHLIGHT_COLOR,
    check_batch,
    check_index,
    check_layer_head,
    require_names,
    token_labels,
)

#: Vector panels (d_head wide) write their values in the cells up to this many entries.
ANNOTATE_MAX_CELLS = 96
#: The columns of single numbers per key are annotated up to this many keys.
ANNOTATE_MAX_KEYS = 40
#: Font size of the figure's title.
SUPTITLE_FONTSIZE = 13


def _outline_row(ax: Axes, row: int, width: int) -> None:
    """Outline row ``row`` (the query's own key) in the highlight colour."""
    ax.add_patch(
        Rectangle((-0.5, row - 0.5), width, 1, fill=False, lw=2.0, edgecolor=HIGHLIGHT_COLOR,
                  zorder=5)
    )  # fmt: skip


def _breakdown(
    trace: Trace, layer: int, head: int, query: int, batch: int
) -> tuple[int, int, int, int, int, dict[str, np.ndarray]]:
    """Checked ``(layer, head, query, batch, S)`` and the arrays of the breakdown by name:
    ``q, k, v, scores, weights, z`` read from the trace, ``masked`` (S,) True = key hidden
    from this query, and the display terms ``products, weighted, dots``."""
    layer, head = check_layer_head(trace, layer, head)
    b = f"blocks.{layer}.attn"
    require_names(
        trace, [f"{b}.{p}" for p in ("q", "k", "v", "scores", "mask", "weights", "z")],
        "query_breakdown",
    )  # fmt: skip
    batch = check_batch(trace, batch, f"{b}.q")
    S, Dh = trace[f"{b}.q"].shape[2], trace[f"{b}.q"].shape[3]
    query = check_index(query, S, "query")
    a = {name: trace[f"{b}.{name}"][batch, head] for name in ("k", "v")}  # (S, Dh)
    for name in ("q", "scores", "weights", "z"):
        a[name] = trace[f"{b}.{name}"][batch, head, query]  # (Dh,) or (S,)
    mask = trace[f"{b}.mask"][batch, 0]
    a["masked"] = ~np.broadcast_to(mask, (S, S))[query]  # (S,) True = this key is hidden
    a["products"] = a["q"] * a["k"]  # (S, Dh): the terms of each dot product
    a["weighted"] = a["weights"][:, None] * a["v"]  # (S, Dh): the terms of z
    a["dots"] = a["scores"] * np.sqrt(Dh)  # (S,): the recorded scores without the 1/√Dh
    return layer, head, query, batch, S, a


def _columns(
    a: dict[str, np.ndarray], annotate: bool | None = None
) -> list[tuple[str, np.ndarray, dict]]:
    """The seven columns, left to right: (title, (S, n) array, options of draw_matrix), then
    the query vector q and the head output z (1, Dh) with theirs."""
    S, Dh = a["k"].shape
    vectors = S * Dh <= ANNOTATE_MAX_CELLS if annotate is None else annotate
    per_key = S <= ANNOTATE_MAX_KEYS if annotate is None else annotate
    small = {"annotate": vectors, "fmt": ".2f"}
    numbers = {"annotate": per_key, "fmt": ".3g"}
    qk_limit = max(float(np.abs(a["q"]).max()), float(np.abs(a["k"]).max()))
    rows_masked = np.broadcast_to(a["masked"][:, None], (S, Dh))
    return [
        (f"k_j  ({S} × {Dh})", a["k"], {"limit": qk_limit, **small}),
        (f"q ⊙ k_j  ({S} × {Dh})", a["products"], small),
        ("q · k_j\n= row sum", a["dots"][:, None], numbers),
        (f"÷ √{Dh}\n= scores", a["scores"][:, None], numbers),
        ("softmax\n= weights", a["weights"][:, None],
         {"kind": "weights", "mask": a["masked"][:, None], "annotate": per_key,
          "fmt": ".2f", "limit": 1.0}),
        (f"v_j  ({S} × {Dh})", a["v"], small),
        (f"w_j v_j  ({S} × {Dh})", a["weighted"], {"mask": rows_masked, **small}),
        ("q", a["q"][None, :], {"limit": qk_limit, **small}),
        ("z", a["z"][None, :], small),
    ]  # fmt: skip


def _suptitle(layer: int, head: int, query: int, label: str) -> str:
    where = f"query {label!r} (position {query})"
    return f"Layer {layer}, head {head}: how {where} attends to every key"


def _q_title(label: str, Dh: int) -> str:
    return f"q = query {label!r}  (1 × {Dh})"


def query_breakdown(
    trace: Trace,
    layer: int,
    head: int,
    query: int,
    tokens: Sequence[str] | None = None,
    *,
    batch: int = 0,
    annotate: bool | None = None,
) -> Figure:
    """One query's attention computed in front of you: every product, sum and probability.

    Columns, one row per key j: the key vectors ``k_j``; the element-wise products
    ``q ⊙ k_j`` (their row sums are the dot products); the dot products ``q · k_j`` (drawn
    as the recorded ``scores · √d_head``); the scaled scores; the softmax probabilities
    (masked keys grey, hatched and labelled "masked"); the value vectors ``v_j``; and the
    weighted value rows ``w_j v_j``. Above the products: the query vector q; below the
    weighted rows: their sum ``z`` (the recorded head output of the query). Signed values use
    the diverging map centred at 0 (``q`` and ``k_j`` on one scale, so they can be compared);
    the query's own key row is outlined; small vectors and the per-key numbers are written in
    the cells. :func:`update_query_breakdown` shows another head or query in the same figure.

    Parameters
    ----------
    trace : Trace
        Needs ``blocks.{layer}.attn.`` ``q, k, v, scores, mask, weights, z``.
    layer, head : int
    query : int
        Position of the query token (from 0).
    tokens : sequence of str, optional
        Token strings (length S).
    batch : int
        Which sequence of the batch.
    annotate : bool, optional
        Write the values in the cells. Default: where they fit, the vectors up to
        ``ANNOTATE_MAX_CELLS`` entries and the per-key numbers up to ``ANNOTATE_MAX_KEYS``
        keys. (The explorer's small PNGs pass False beyond 16 tokens: there the numbers
        would be a few pixels tall, and they are most of the drawing time.)

    Returns
    -------
    matplotlib Figure (made without pyplot).
    """
    layer, head, query, batch, S, a = _breakdown(trace, layer, head, query, batch)
    Dh = a["k"].shape[1]
    labels = token_labels(tokens, S)
    columns = _columns(a, annotate)
    annotate_vec = bool(columns[0][2]["annotate"])
    annotate_num = bool(columns[2][2]["annotate"])

    vec = max(2.6, 0.42 * Dh) if annotate_vec else 2.8  # inches per d_head-wide column
    num = 1.1  # inches per column of single numbers
    row = 0.36 if S <= 32 else 0.2  # inches per key row: room for its label on every row
    fig = Figure(figsize=(4 * vec + 3 * num + 1.5, row * S + 3.6), layout="constrained")
    grid = fig.add_gridspec(
        3, 7, width_ratios=[vec, vec, num, num, num, vec, vec],
        height_ratios=[1.3, max(S, 2), 1.3],
    )  # fmt: skip
    for col, (title, array, options) in enumerate(columns[:7]):
        ax = fig.add_subplot(grid[1, col])
        wide = array.shape[1] > 1
        colorbar = "bottom" if wide or not annotate_num else None
        draw_matrix(ax, array, row_labels=labels if col == 0 else None, colorbar=colorbar,
                    fontsize=7 if wide else None, **options)  # fmt: skip
        if wide:
            ax.set_xlabel(f"d_head ({Dh})", fontsize=8)
        elif colorbar is not None:  # a narrow column: three ticks fit under it
            bar = ax.images[0].colorbar
            assert bar is not None
            bar.locator = MaxNLocator(nbins=3)
        if options.get("kind") == "weights":
            for j in np.flatnonzero(a["masked"]):
                ax.text(0, int(j), "masked", ha="center", va="center", fontsize=7, color="#555555")
        _outline_row(ax, query, array.shape[1])
        ax.set_title(title, fontsize=10)
    first_ax = fig.axes[0]
    first_ax.set_yticks(np.arange(S), labels)  # every key, the query's own included
    first_ax.set_ylabel("key j")
    _highlight_key_label(first_ax, query)

    q_ax = fig.add_subplot(grid[0, 1])
    draw_matrix(q_ax, columns[7][1], colorbar=None, fontsize=7, **columns[7][2])
    q_ax.set_title(_q_title(labels[query], Dh), fontsize=10, color=HIGHLIGHT_COLOR)
    z_ax = fig.add_subplot(grid[2, 6])
    draw_matrix(z_ax, columns[8][1], colorbar=None, fontsize=7, **columns[8][2])
    z_ax.set_xlabel(f"z = Σ_j w_j v_j  (1 × {Dh})", fontsize=10)
    fig.suptitle(_suptitle(layer, head, query, labels[query]), fontsize=SUPTITLE_FONTSIZE)
    return fig


def _highlight_key_label(ax: Axes, query: int) -> None:
    """The query's own key label in the highlight colour and bold, the others plain."""
    for position, tick in enumerate(ax.get_yticklabels()):
        focused = position == query
        tick.set_color(HIGHLIGHT_COLOR if focused else "black")
        tick.set_fontweight("bold" if focused else "normal")


def breakdown_layout(
    trace: Trace, layer: int, head: int, query: int, *, batch: int = 0
) -> tuple[object, ...]:
    """What fixes the layout of :func:`query_breakdown`: the sizes (S, d_head) and the keys
    this query may not see. Two states with equal layouts can be shown in one figure
    (:func:`update_query_breakdown`)."""
    *_, a = _breakdown(trace, layer, head, query, batch)
    return (a["k"].shape, a["masked"].tobytes())


def update_query_breakdown(
    fig: Figure,
    trace: Trace,
    layer: int,
    head: int,
    query: int,
    tokens: Sequence[str] | None = None,
    *,
    batch: int = 0,
    annotate: bool | None = None,
) -> None:
    """Show another head or query in a figure made by :func:`query_breakdown`, in place.

    Why: building the figure anew (nine panels, seven colour bars, a label per key, the
    constrained layout) takes several times longer than drawing it, too slow for the explorer
    to follow a control. Here only what depends on the head and query changes: the images and
    their colour limits, the numbers written in the cells, the outlined row, the highlighted
    key label and the titles. The figure then shows exactly what ``query_breakdown(trace,
    layer, head, query, tokens, batch=batch, annotate=annotate)`` would draw, provided it was
    drawn with the same ``annotate`` and both states have the same :func:`breakdown_layout`
    (same sizes and masked keys); otherwise a ``ValueError`` says to draw the figure anew.
    """
    layer, head, query, batch, S, a = _breakdown(trace, layer, head, query, batch)
    labels = token_labels(tokens, S)
    panels = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]  # columns, q, z
    if len(panels) != 9 or np.shape(np.asarray(panels[0].images[0].get_array())) != a["k"].shape:
        raise ValueError("fig is not a query breakdown of this trace: draw it with query_breakdown")
    texts = [t.get_text() for t in panels[4].texts]
    if texts.count("masked") != int(a["masked"].sum()):
        raise ValueError("this query sees other keys than the one drawn: draw it anew")
    for ax, (_, array, options) in zip(panels, _columns(a, annotate), strict=True):
        update_matrix(ax, array, **options)
        bar = ax.images[0].colorbar
        if bar is not None and array.shape[1] == 1:  # as query_breakdown: three ticks
            bar.locator = MaxNLocator(nbins=3)
        for patch in ax.patches:
            if patch.get_edgecolor()[:3] == to_rgb(HIGHLIGHT_COLOR):  # the query's own row
                patch.set_y(query - 0.5)  # type: ignore[attr-defined]
    _highlight_key_label(panels[0], query)
    panels[7].title.set_text(_q_title(labels[query], a["k"].shape[1]))
    set_figure_texts(fig, _suptitle(layer, head, query, labels[query]))
