"""BertViz's head view as a static figure: who attends to whom, drawn as lines between tokens.

The tokens are written twice, queries in a left column and keys in a right column. A line
joins query i to key j, as opaque as the attention weight ``weights[i, j]``: a head that
copies from the previous token draws a staircase, a head that reads ``[CLS]`` draws a fan.
Several heads of one layer are overlaid, each in its own colour.

Padding is not attention: no line starts at a padding query, and padding tokens are written
in grey. Long inputs stay quick: lines too faint to show are not drawn, and past
:data:`MAX_LINES` only the strongest lines are, which the title then says.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.text import Text

from minitransformer.trace import Trace
from viz.checks import (
    check_batch,
    check_index,
    check_indices,
    check_layer,
    check_span,
    require_names,
)
from viz.style import (
    HIGHLIGHT_COLOR,
    LITERAL,
    PADDING_COLOR,
    figure_of,
    head_color,
    label_positions,
    real_positions,
    span_note,
    token_labels,
)

#: x coordinates of the query column (left) and the key column (right).
QUERY_X, KEY_X = 0.0, 1.0
#: At most this many lines are drawn, the strongest of all heads shown; the title says when
#: weaker ones were left out. (Drawing a line costs about 30 microseconds: 12 heads at 512
#: tokens are 3 million lines, which took 110 s; 10,000 take about half a second.)
MAX_LINES = 10_000
#: Lines fainter than this opacity (weight / strongest weight) are not drawn: at 8 bits per
#: colour channel they would not show.
MIN_ALPHA = 1 / 255
#: The gid of the query column's token labels (:func:`query_labels`).
QUERY_LABEL = "query label"
#: Font size of the token columns, and the height of one labelled row (points).
TOKEN_FONTSIZE = 8.0
ROW_POINTS = 1.3 * TOKEN_FONTSIZE
#: Height of a new head view, in inches: the rows plus room for the title, headers and legend,
#: at most MAX_HEIGHT (2000 pixels at 100 dpi); longer inputs label every k-th token.
EXTRA_HEIGHT, MIN_HEIGHT, MAX_HEIGHT = 1.8, 3.5, 20.0


@dataclass(frozen=True)
class HeadLines:
    """The lines a head view draws.

    Attributes
    ----------
    segments : list of ndarray of shape (n_h, 2, 2)
        Per head, its lines ``[(QUERY_X, row of query i), (KEY_X, row of key j)]``, query by
        query, key by key (rows counted from the first position shown).
    colors : list of ndarray of shape (n_h, 4)
        Per head, the RGBA colour of each line: the head's colour, opacity = weight / top.
    visible : int
        How many lines are at least :data:`MIN_ALPHA` opaque.
    threshold : float
        The smallest opacity drawn when only the strongest :data:`MAX_LINES` are drawn (else
        :data:`MIN_ALPHA`).
    """

    segments: list[np.ndarray]
    colors: list[np.ndarray]
    visible: int
    threshold: float

    @property
    def drawn(self) -> int:
        return sum(len(s) for s in self.segments)


def head_lines(
    weights: np.ndarray, heads: list[int], queries: np.ndarray, shown: range
) -> HeadLines:
    """Which lines to draw, and their colours.

    Parameters
    ----------
    weights : ndarray of shape (H, S, S)
        One layer's weights for one sequence.
    heads : list of int
    queries : int ndarray
        The query positions whose lines are drawn (real tokens inside ``shown``).
    shown : range
        The positions shown; the keys are all of them.
    """
    keys = np.arange(shown.start, shown.stop)
    # (len(heads), len(queries), len(keys)): the weights of the lines that may be drawn
    selected = weights[np.ix_(np.array(heads), queries, keys)]
    top = max(float(selected.max(initial=0.0)), 1e-12)
    alpha = selected / top  # opacity proportional to the weight
    keep = alpha >= MIN_ALPHA
    visible = int(keep.sum())
    threshold = MIN_ALPHA
    if visible > MAX_LINES:  # keep the MAX_LINES strongest lines of all heads
        threshold = float(np.partition(alpha.ravel(), -MAX_LINES)[-MAX_LINES])
        keep = alpha >= threshold
    segments, colors = [], []
    for h, head_alpha, head_keep in zip(heads, alpha, keep, strict=True):
        q, k = np.nonzero(head_keep)  # row-major: query by query, key by key
        lines = np.empty((len(q), 2, 2))
        lines[:, 0, 0], lines[:, 0, 1] = QUERY_X, queries[q] - shown.start
        lines[:, 1, 0], lines[:, 1, 1] = KEY_X, keys[k] - shown.start
        rgba = np.tile(np.array(to_rgba(head_color(h))), (len(q), 1))
        rgba[:, 3] = head_alpha[q, k]
        segments.append(lines)
        colors.append(rgba)
    return HeadLines(segments, colors, visible, threshold)


def head_view(
    trace: Trace,
    layer: int,
    heads: Iterable[int] | None = None,
    tokens: Sequence[str] | None = None,
    *,
    query: int | None = None,
    batch: int = 0,
    ax: Axes | None = None,
    span: slice | None = None,
) -> Figure:
    """Draw the attention of one layer's heads as lines from query tokens to key tokens.

    The line from query i (left) to key j (right) of head h has the colour of head h
    (:func:`viz.style.head_color`) and an opacity proportional to ``weights[h, i, j]``:
    alpha = weight / (largest weight drawn), so the strongest line is opaque and a weight of 0
    (including every masked key) is invisible. No line starts at a padding query (its weights
    are never used); padding tokens are written in grey. Lines fainter than
    :data:`MIN_ALPHA` are left out, and at most :data:`MAX_LINES` (the strongest) are drawn:
    the title says so when weaker visible lines were left out.

    Parameters
    ----------
    trace : Trace
        Needs ``blocks.{layer}.attn.weights``.
    layer : int
        Which block (from 0).
    heads : iterable of int, optional
        Which heads to overlay (default: all of them).
    tokens : sequence of str, optional
        Token labels (length S, drawn literally); default: positions 0 .. S-1.
    query : int, optional
        Focus on one query token: draw only its lines and highlight it.
    batch : int
        Which sequence of the batch.
    ax : matplotlib Axes, optional
        Where to draw; default: a new figure as tall as the number of tokens needs (at most
        :data:`MAX_HEIGHT` inches; longer inputs label every k-th token, each label marked by
        a dot at its line ends).
    span : slice, optional
        Show only these positions (queries and keys), e.g. ``slice(100, 164)`` or a window
        around ``query``; the title names them.

    Returns
    -------
    matplotlib Figure. Its axes holds one ``LineCollection`` per head (labelled ``"head h"``),
    whose segments run query by query, key by key, each with its own RGBA colour; token i of
    the span is written at y = i (counted from the span's start).
    """
    layer = check_layer(trace, layer)
    heads = check_indices(heads, trace.config.n_heads, "heads", "head")
    name = f"blocks.{layer}.attn.weights"
    require_names(trace, [name], figure="the head view")
    batch = check_batch(trace, batch, name)
    weights = trace[name][batch]  # (H, S, S)
    S = weights.shape[-1]
    labels = token_labels(tokens, S)
    shown = check_span(span, S)
    real = real_positions(trace, batch)
    queries = _queries(query, shown, real, S)
    lines = head_lines(weights, heads, queries, shown)

    n = len(shown)
    if ax is None:
        height = float(np.clip(n * ROW_POINTS / 72 + EXTRA_HEIGHT, MIN_HEIGHT, MAX_HEIGHT))
        ax = Figure(figsize=(4.8, height), layout="constrained").add_subplot()
    fig = figure_of(ax)

    width = 2.0 if query is not None else float(np.clip(24 / n, 0.5, 2.0))  # thin when many
    for h, segments, colors in zip(heads, lines.segments, lines.colors, strict=True):
        ax.add_collection(
            LineCollection(
                segments,  # type: ignore[arg-type]
                colors=colors,
                linewidths=width,
                label=f"head {h}",
            )
        )

    _write_tokens(ax, labels, real, shown, query)
    ax.set_xlim(QUERY_X - 0.6, KEY_X + 0.6)
    ax.set_ylim(n - 0.5, -0.5)  # first token at the top
    ax.set_axis_off()
    for x, header, side in ((QUERY_X - 0.05, "query", "right"), (KEY_X + 0.05, "key", "left")):
        # above the axes, in points: never on top of the first token, however many there are
        ax.annotate(
            header,
            (x, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(0, 4),
            textcoords="offset points",
            ha=side,
            va="bottom",
            fontweight="bold",
        )
    handles = [Line2D([], [], color=head_color(h), lw=2.5, label=f"head {h}") for h in heads]
    ax.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, 0.0),
        ncol=min(len(heads), 4),
        fontsize=8,
        frameon=False,
    )
    ax.set_title(
        _title(layer, heads, query, labels, real, shown, lines), fontsize=10, pad=18, **LITERAL
    )
    return fig


def _queries(query: int | None, shown: range, real: np.ndarray, S: int) -> np.ndarray:
    """The query positions whose lines are drawn: ``query`` or every position of ``shown``,
    padding left out (a padding query starts no line)."""
    if query is None:
        positions = np.arange(shown.start, shown.stop)
    else:
        query = check_index(query, S, "query")
        if query not in shown:
            raise ValueError(f"query {query} is outside span {shown.start}..{shown.stop - 1}")
        positions = np.array([query])
    return positions[real[positions]]


def _title(
    layer: int,
    heads: list[int],
    query: int | None,
    labels: list[str],
    real: np.ndarray,
    shown: range,
    lines: HeadLines,
) -> str:
    focus = "" if query is None else f", query {query} ({labels[query]!r})"
    heads_text = f"head {heads[0]}" if len(heads) == 1 else f"{len(heads)} heads"
    note = span_note(shown, len(labels))
    title = f"Layer {layer}, {heads_text}{focus}" + (f"\n{note}" if note else "")
    if query is not None and not real[query]:
        return title + "\npadding: its weights are never used, no lines"
    title += "\nline opacity = attention weight"
    if lines.drawn < lines.visible:
        title += f"\nthe {lines.drawn:,} strongest of {lines.visible:,} lines drawn"
    return title


def update_head_view(
    fig: Figure,
    trace: Trace,
    layer: int,
    heads: Iterable[int] | None = None,
    tokens: Sequence[str] | None = None,
    *,
    query: int | None = None,
    batch: int = 0,
    span: slice | None = None,
) -> None:
    """Show other heads (or another layer) in a figure made by :func:`head_view`, in place.

    Why: the token columns stay where they are; only the lines, the legend and the title
    change, and the highlighted query label when another query is shown. Setting those is
    much quicker than building the figure anew (token labels, the constrained layout), so the
    explorer follows the head and query controls this way. The figure then shows what
    ``head_view(trace, layer, heads, tokens, query=query, batch=batch, span=span)`` would
    draw, provided it was drawn for as many tokens and heads, and for the same ``query`` or
    (when every token is labelled) another single query; otherwise ``ValueError``.
    """
    layer = check_layer(trace, layer)
    heads = check_indices(heads, trace.config.n_heads, "heads", "head")
    name = f"blocks.{layer}.attn.weights"
    require_names(trace, [name], figure="the head view")
    batch = check_batch(trace, batch, name)
    weights = trace[name][batch]  # (H, S, S)
    S = weights.shape[-1]
    labels = token_labels(tokens, S)
    shown = check_span(span, S)
    real = real_positions(trace, batch)
    lines = head_lines(weights, heads, _queries(query, shown, real, S), shown)
    ax = fig.axes[0]
    collections = [c for c in ax.collections if isinstance(c, LineCollection)]
    local_query = None if query is None else query - shown.start
    rows, drawn_query = _drawn_for(ax)
    labels_in_place = query_labels(ax)
    other_query = (  # one query for another: only the highlight moves
        drawn_query is not None and local_query is not None and len(labels_in_place) == rows
    )
    if (
        len(collections) != len(heads)
        or rows != len(shown)
        or (drawn_query != local_query and not other_query)
    ):
        raise ValueError(
            "fig shows other tokens, another query or another number of heads: "
            "draw it anew with head_view"
        )
    if drawn_query != local_query:  # every row labelled, from the span's start
        for row, text in enumerate(labels_in_place):
            text.update(_query_label_look(shown.start + row, query, real))
    for collection, h, segments, colors in zip(
        collections, heads, lines.segments, lines.colors, strict=True
    ):
        collection.set_segments(segments)  # type: ignore[arg-type]  # an (n, 2, 2) array
        collection.set_color(colors)  # type: ignore[arg-type]  # one RGBA row per line
        collection.set_label(f"head {h}")
    legend = ax.get_legend()
    assert legend is not None, "head_view draws a legend of the heads"
    for line, text, h in zip(legend.get_lines(), legend.get_texts(), heads, strict=True):
        line.set_color(head_color(h))
        text.set_text(f"head {h}")
    ax.title.set_text(_title(layer, heads, query, labels, real, shown, lines))


def _drawn_for(ax: Axes) -> tuple[int, int | None]:
    """(rows, row of the framed query or None) of a head view's axes, read from what it drew:
    the y limits and the token framed as the query."""
    bottom, top = ax.get_ylim()
    framed = [t for t in ax.texts if t.get_bbox_patch() is not None]
    return round(bottom - top), (round(framed[0].get_position()[1]) if framed else None)


def query_labels(ax: Axes) -> list[Text]:
    """The token labels written down the query column of a head view's axes, top to bottom
    (every token, or every k-th and the query for long inputs)."""
    return [t for t in ax.texts if t.get_gid() == QUERY_LABEL]


def max_labelled_rows(fig_height: float) -> int:
    """How many tokens a head view ``fig_height`` inches tall labels each (more are labelled
    every k-th): as many rows as fit, :data:`ROW_POINTS` apart, below the title and above the
    legend."""
    return max(2, int((fig_height - EXTRA_HEIGHT + 0.6) * 72 / ROW_POINTS))


def _query_label_look(i: int, query: int | None, real: np.ndarray) -> dict[str, Any]:
    """How the query column writes token ``i``: padding grey; with a query selected, the
    query bold and framed in the highlight colour and the other tokens grey."""
    focused = i == query
    colour = PADDING_COLOR if not real[i] else ("black" if query is None or focused else "#7f7f7f")
    frame = {"facecolor": "none", "edgecolor": HIGHLIGHT_COLOR} if focused else None
    return {"color": colour, "fontweight": "bold" if focused else "normal", "bbox": frame}


def _write_tokens(
    ax: Axes, labels: list[str], real: np.ndarray, shown: range, query: int | None
) -> None:
    """Write the tokens of ``shown`` down the query column, then the key column; highlight
    ``query``.

    Every token when the rows are at least :data:`ROW_POINTS` apart, else every k-th (in the
    query column also the query, its labelled neighbours giving way), each labelled row marked
    by a dot at its line ends so that a label is seen to name the lines that end beside it.
    Padding tokens are grey.
    """
    n = len(shown)
    key_rows = label_positions(n, max_labels=max_labelled_rows(figure_of(ax).get_figheight()))
    step = int(key_rows[1] - key_rows[0]) if len(key_rows) > 1 else 1
    query_rows = key_rows
    if query is not None:  # the query is always labelled; its neighbours give way
        local = query - shown.start
        query_rows = np.union1d(key_rows[np.abs(key_rows - local) >= step], [local])
    if step > 1:
        for x, rows in ((QUERY_X, query_rows), (KEY_X, key_rows)):
            ax.plot(np.full(len(rows), x), rows, ls="", marker="o", ms=2.5, color="#404040")
    for row in query_rows.tolist():
        i = shown.start + row
        ax.text(
            QUERY_X - 0.05,
            row,
            labels[i],
            ha="right",
            va="center",
            fontsize=TOKEN_FONTSIZE,
            gid=QUERY_LABEL,
            **_query_label_look(i, query, real),
            **LITERAL,
        )
    for row in key_rows.tolist():
        i = shown.start + row
        ax.text(
            KEY_X + 0.05,
            row,
            labels[i],
            ha="left",
            va="center",
            fontsize=TOKEN_FONTSIZE,
            color="black" if real[i] else PADDING_COLOR,
            **LITERAL,
        )
