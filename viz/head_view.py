"""BertViz's head view as a static figure: who attends to whom, drawn as lines between tokens.

The tokens are written twice, queries in a left column and keys in a right column. A line
joins query i to key j for every pair, as opaque as the attention weight ``weights[i, j]``:
a head that copies from the previous token draws a staircase, a head that reads ``[CLS]``
draws a fan. Several heads of one layer are overlaid, each in its own colour.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from minitransformer.trace import Trace
from viz.style import (
    HIGHLIGHT_COLOR,
    check_batch,
    check_index,
    check_indices,
    check_layer,
    figure_of,
    head_color,
    label_positions,
    require_names,
    token_labels,
)

#: x coordinates of the query column (left) and the key column (right).
QUERY_X, KEY_X = 0.0, 1.0


def head_view(
    trace: Trace,
    layer: int,
    heads: Iterable[int] | None = None,
    tokens: Sequence[str] | None = None,
    *,
    query: int | None = None,
    batch: int = 0,
    ax: Axes | None = None,
) -> Figure:
    """Draw the attention of one layer's heads as lines from query tokens to key tokens.

    The line from query i (left) to key j (right) of head h has the colour of head h
    (:func:`viz.style.head_color`) and an opacity proportional to ``weights[h, i, j]``:
    alpha = weight / (largest weight drawn), so the strongest line is opaque and a weight of 0
    (including every masked key) is invisible.

    Parameters
    ----------
    trace : Trace
        Needs ``blocks.{layer}.attn.weights``.
    layer : int
        Which block (from 0).
    heads : iterable of int, optional
        Which heads to overlay (default: all of them).
    tokens : sequence of str, optional
        Token labels (length S); default: positions 0 .. S-1.
    query : int, optional
        Focus on one query token: draw only its lines and highlight it.
    batch : int
        Which sequence of the batch.
    ax : matplotlib Axes, optional
        Where to draw; default: a new figure as tall as the number of tokens needs.

    Returns
    -------
    matplotlib Figure. Its axes holds one ``LineCollection`` per head (labelled ``"head h"``),
    whose segments run query by query, key by key (all S x S of them, or the S of ``query``),
    each with its own RGBA colour.
    """
    layer = check_layer(trace, layer)
    heads = check_indices(heads, trace.config.n_heads, "heads", "head")
    name = f"blocks.{layer}.attn.weights"
    require_names(trace, [name], figure="the head view")
    batch = check_batch(trace, batch, name)
    weights = trace[name][batch]  # (H, S, S)
    S = weights.shape[-1]
    labels = token_labels(tokens, S)
    queries = list(range(S)) if query is None else [check_index(query, S, "query")]

    if ax is None:
        height = float(np.clip(0.24 * S + 1.4, 3.5, 16.0))
        ax = Figure(figsize=(4.6, height), layout="constrained").add_subplot()
    fig = figure_of(ax)

    width = 2.0 if query is not None else float(np.clip(24 / S, 0.5, 2.0))  # thin when many
    segments = [[(QUERY_X, i), (KEY_X, j)] for i in queries for j in range(S)]
    for h, colors in zip(heads, _line_colors(weights, heads, queries), strict=True):
        ax.add_collection(LineCollection(segments, colors=colors, linewidths=width,
                                         label=f"head {h}"))  # fmt: skip

    _write_tokens(ax, labels, query)
    ax.set_xlim(QUERY_X - 0.6, KEY_X + 0.6)
    ax.set_ylim(S - 0.5, -1.2)  # first token at the top, room for the column headers
    ax.set_axis_off()
    ax.text(QUERY_X - 0.05, -1.0, "query", ha="right", va="center", fontweight="bold")
    ax.text(KEY_X + 0.05, -1.0, "key", ha="left", va="center", fontweight="bold")
    handles = [Line2D([], [], color=head_color(h), lw=2.5, label=f"head {h}") for h in heads]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0),
              ncol=min(len(heads), 4), fontsize=8, frameon=False)  # fmt: skip
    ax.set_title(_title(layer, heads, query, labels), fontsize=10)
    return fig


def _line_colors(weights: np.ndarray, heads: list[int], queries: list[int]) -> list[np.ndarray]:
    """The RGBA colours of each head's lines, query by query, key by key: the head's colour,
    opacity = weight / (largest weight drawn). ``weights`` is (H, S, S)."""
    shown = weights[np.ix_(heads, queries)]  # (len(heads), len(queries), S)
    top = max(float(shown.max()), 1e-12)
    out = []
    for h, head_weights in zip(heads, shown, strict=True):
        colors = np.tile(np.array(to_rgba(head_color(h))), (head_weights.size, 1))
        colors[:, 3] = head_weights.ravel() / top  # opacity proportional to the weight
        out.append(colors)
    return out


def _title(layer: int, heads: list[int], query: int | None, labels: list[str]) -> str:
    focus = "" if query is None else f", query {query} ({labels[query]!r})"
    heads_text = f"head {heads[0]}" if len(heads) == 1 else f"{len(heads)} heads"
    return f"Layer {layer}, {heads_text}{focus}\nline opacity = attention weight"


def update_head_view(
    fig: Figure,
    trace: Trace,
    layer: int,
    heads: Iterable[int] | None = None,
    tokens: Sequence[str] | None = None,
    *,
    query: int | None = None,
    batch: int = 0,
) -> None:
    """Show other heads (or another layer) in a figure made by :func:`head_view`, in place.

    Why: the lines stay where they are (query i to key j); only their colours and opacities,
    the legend and the title change. Setting those is much quicker than building the figure
    anew (thousands of segments, token labels, the constrained layout), so the explorer
    follows the head control this way. The figure then shows what ``head_view(trace, layer,
    heads, tokens, query=query, batch=batch)`` would draw, provided it was drawn for the same
    tokens, the same ``query`` and as many heads; otherwise ``ValueError``.
    """
    layer = check_layer(trace, layer)
    heads = check_indices(heads, trace.config.n_heads, "heads", "head")
    name = f"blocks.{layer}.attn.weights"
    require_names(trace, [name], figure="the head view")
    weights = trace[name][check_batch(trace, batch, name)]  # (H, S, S)
    S = weights.shape[-1]
    labels = token_labels(tokens, S)
    queries = list(range(S)) if query is None else [check_index(query, S, "query")]
    ax = fig.axes[0]
    collections = [c for c in ax.collections if isinstance(c, LineCollection)]
    # (get_paths, not get_segments: the latter copies every segment, 60 ms for 128 tokens)
    if len(collections) != len(heads) or len(collections[0].get_paths()) != len(queries) * S:
        raise ValueError("fig shows other tokens, another query or another number of heads: "
                         "draw it anew with head_view")  # fmt: skip
    for collection, h, colors in zip(collections, heads, _line_colors(weights, heads, queries),
                                     strict=True):  # fmt: skip
        collection.set_color(colors)  # type: ignore[arg-type]  # one RGBA row per line
        collection.set_label(f"head {h}")
    legend = ax.get_legend()
    assert legend is not None, "head_view draws a legend of the heads"
    for line, text, h in zip(legend.get_lines(), legend.get_texts(), heads, strict=True):
        line.set_color(head_color(h))
        text.set_text(f"head {h}")
    ax.title.set_text(_title(layer, heads, query, labels))


def _write_tokens(ax: Axes, labels: list[str], query: int | None) -> None:
    """Write the tokens down both columns (every k-th for long inputs); highlight ``query``."""
    S = len(labels)
    fig_height = ax.get_figure(root=True).get_figheight()  # type: ignore[union-attr]
    rows = set(label_positions(S, max_labels=max(2, int(fig_height * 72 / 11))).tolist())
    if query is not None:
        rows.add(query)
    frame = {"facecolor": "none", "edgecolor": HIGHLIGHT_COLOR}
    for i in sorted(rows):
        focused = i == query
        ax.text(QUERY_X - 0.05, i, labels[i], ha="right", va="center", fontsize=9,
                color="black" if query is None or focused else "#7f7f7f",
                fontweight="bold" if focused else "normal",
                bbox=frame if focused else None)  # fmt: skip
        ax.text(KEY_X + 0.05, i, labels[i], ha="left", va="center", fontsize=9)
