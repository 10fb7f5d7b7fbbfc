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
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

from minitransformer.trace import Trace
from viz.steps import draw_matrix
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


def _outline_row(ax: Axes, row: int, width: int) -> None:
    """Outline row ``row`` (the query's own key) in the highlight colour."""
    ax.add_patch(
        Rectangle((-0.5, row - 0.5), width, 1, fill=False, lw=2.0, edgecolor=HIGHLIGHT_COLOR,
                  zorder=5)
    )  # fmt: skip


def query_breakdown(
    trace: Trace,
    layer: int,
    head: int,
    query: int,
    tokens: Sequence[str] | None = None,
    *,
    batch: int = 0,
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
    the cells.

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

    Returns
    -------
    matplotlib Figure (made without pyplot).
    """
    layer, head = check_layer_head(trace, layer, head)
    b = f"blocks.{layer}.attn"
    require_names(
        trace, [f"{b}.{p}" for p in ("q", "k", "v", "scores", "mask", "weights", "z")],
        "query_breakdown",
    )  # fmt: skip
    batch = check_batch(trace, batch, f"{b}.q")
    S, Dh = trace[f"{b}.q"].shape[2], trace[f"{b}.q"].shape[3]
    query = check_index(query, S, "query")
    labels = token_labels(tokens, S)

    q = trace[f"{b}.q"][batch, head, query]  # (Dh,)
    k = trace[f"{b}.k"][batch, head]  # (S, Dh)
    v = trace[f"{b}.v"][batch, head]  # (S, Dh)
    scores = trace[f"{b}.scores"][batch, head, query]  # (S,)
    weights = trace[f"{b}.weights"][batch, head, query]  # (S,)
    z = trace[f"{b}.z"][batch, head, query]  # (Dh,)
    mask = trace[f"{b}.mask"][batch, 0]
    masked = ~np.broadcast_to(mask, (S, S))[query]  # (S,) True = this key is hidden
    products = q * k  # (S, Dh): the terms of each dot product
    weighted = weights[:, None] * v  # (S, Dh): the terms of z
    dots = scores * np.sqrt(Dh)  # (S,): the recorded scores without the 1/√Dh

    annotate_vec = S * Dh <= ANNOTATE_MAX_CELLS
    annotate_num = S <= ANNOTATE_MAX_KEYS
    qk_limit = max(float(np.abs(q).max()), float(np.abs(k).max()))
    rows_masked = np.broadcast_to(masked[:, None], (S, Dh))

    vec = max(2.6, 0.42 * Dh) if annotate_vec else 2.8  # inches per d_head-wide column
    num = 1.1  # inches per column of single numbers
    row = 0.36 if S <= 32 else 0.2  # inches per key row: room for its label on every row
    fig = Figure(figsize=(4 * vec + 3 * num + 1.5, row * S + 3.6), layout="constrained")
    grid = fig.add_gridspec(
        3, 7, width_ratios=[vec, vec, num, num, num, vec, vec],
        height_ratios=[1.3, max(S, 2), 1.3],
    )  # fmt: skip
    small = {"annotate": annotate_vec, "fmt": ".2f", "fontsize": 7}
    columns: list[tuple[str, np.ndarray, dict]] = [
        (f"k_j  ({S} × {Dh})", k, {"limit": qk_limit, **small}),
        (f"q ⊙ k_j  ({S} × {Dh})", products, small),
        ("q · k_j\n= row sum", dots[:, None], {"annotate": annotate_num, "fmt": ".3g"}),
        (f"÷ √{Dh}\n= scores", scores[:, None], {"annotate": annotate_num, "fmt": ".3g"}),
        ("softmax\n= weights", weights[:, None],
         {"kind": "weights", "mask": masked[:, None], "annotate": annotate_num, "fmt": ".2f",
          "limit": 1.0}),
        (f"v_j  ({S} × {Dh})", v, small),
        (f"w_j v_j  ({S} × {Dh})", weighted, {"mask": rows_masked, **small}),
    ]  # fmt: skip
    for col, (title, array, options) in enumerate(columns):
        ax = fig.add_subplot(grid[1, col])
        wide = array.shape[1] > 1
        colorbar = "bottom" if wide or not annotate_num else None
        draw_matrix(ax, array, row_labels=labels if col == 0 else None,
                    colorbar=colorbar, **options)  # fmt: skip
        if wide:
            ax.set_xlabel(f"d_head ({Dh})", fontsize=8)
        elif colorbar is not None:  # a narrow column: three ticks fit under it
            bar = ax.images[0].colorbar
            assert bar is not None
            bar.locator = MaxNLocator(nbins=3)
        if options.get("kind") == "weights":
            for j in np.flatnonzero(masked):
                ax.text(0, int(j), "masked", ha="center", va="center", fontsize=7, color="#555555")
        _outline_row(ax, query, array.shape[1])
        ax.set_title(title, fontsize=10)
    first_ax = fig.axes[0]
    first_ax.set_yticks(np.arange(S), labels)  # every key, the query's own included
    first_ax.set_ylabel("key j")
    for tick, label in zip(first_ax.get_yticklabels(), first_ax.get_yticks(), strict=True):
        if label == query:
            tick.set_color(HIGHLIGHT_COLOR)
            tick.set_fontweight("bold")

    q_ax = fig.add_subplot(grid[0, 1])
    draw_matrix(q_ax, q[None, :], limit=qk_limit, colorbar=None, **small)
    q_ax.set_title(f"q = query {labels[query]!r}  (1 × {Dh})", fontsize=10,
                   color=HIGHLIGHT_COLOR)  # fmt: skip
    z_ax = fig.add_subplot(grid[2, 6])
    draw_matrix(z_ax, z[None, :], colorbar=None, **small)
    z_ax.set_xlabel(f"z = Σ_j w_j v_j  (1 × {Dh})", fontsize=10)
    fig.suptitle(
        f"Layer {layer}, head {head}: how query {labels[query]!r} (position {query}) "
        "attends to every key",
        fontsize=13,
    )
    return fig
