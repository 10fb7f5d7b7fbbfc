"""How one query attends: its dot product with every key, written out (BertViz's neuron view).

For query token i of one head, left to right::

    k_j   ->   q_i ⊙ k_j   ->   q_i · k_j = Σ (q_i ⊙ k_j)   ->   ÷ √d_head = scores[i, j]
          ->   softmax over j = weights[i, j]   ->   v_j   ->   weights[i, j] v_j
          ->   z_i = Σ_j weights[i, j] v_j

Read from the trace: q, k, v, the dot products ``qk``, the scores, the weights, the mask and
z; the titles from ``trace.config`` (``scale_scores``) and ``trace.patched``. Computed for
display only, each the terms or the sum of a sum whose result the trace holds (the tests check
that they add up to the recorded results):

* the element-wise products ``q ⊙ k_j`` (their row sums are the recorded ``qk[i, j]``) and
  ``w_j v_j`` (their column sums are the recorded ``z_i``);
* for a long input, only the query's own key and the ``top_k`` other keys with the largest
  weights are drawn, and one row sums up the others: their weights added, and their rows
  ``w_j v_j`` added (so the column of ``w_j v_j`` still adds up to ``z_i``).

A padding query (``trace.real_tokens(batch)`` False) is refused with a ``ValueError``: its row
is not attention (no real token reads it), so there is nothing to break down. Padding keys
are masked keys: hatched, and like every masked key left out of the colour scales.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

from minitransformer.trace import Trace
from viz.checks import (
    check_batch,
    check_index,
    check_layer_head,
    require_names,
)
from viz.matrix import SUPTITLE, draw_matrix, set_figure_texts, update_matrix
from viz.style import (
    HIGHLIGHT_COLOR,
    LITERAL,
    padding_positions,
    plural,
    signed_limit,
    token_labels,
)

#: Vector panels (d_head wide) write their values in the cells up to this many entries.
ANNOTATE_MAX_CELLS = 96
#: The columns of single numbers per key are annotated up to this many keys.
ANNOTATE_MAX_KEYS = 40
#: Font size of the figure's title.
SUPTITLE_FONTSIZE = 13
#: Inputs up to this many tokens show every key; longer ones the query's own key and the
#: :data:`DEFAULT_TOP_K` other keys with the largest weights (``top_k=``).
ALL_KEYS_MAX = 32
#: How many keys a long input shows by default.
DEFAULT_TOP_K = 16


def _outline_row(ax: Axes, row: int, width: int) -> None:
    """Outline row ``row`` (the query's own key) in the highlight colour."""
    ax.add_patch(
        Rectangle(
            (-0.5, row - 0.5), width, 1, fill=False, lw=2.0, edgecolor=HIGHLIGHT_COLOR, zorder=5
        )
    )


def shown_keys(weights: np.ndarray, query: int, top_k: int | None = None) -> np.ndarray:
    """The key positions a breakdown draws, in position order.

    The query's own key and the ``top_k`` other keys with the largest weights (ties: the
    earlier position), so every head and query of an input shows as many keys (the explorer
    updates the figure in place); ``None``: every key up to :data:`ALL_KEYS_MAX` keys, else
    :data:`DEFAULT_TOP_K`. ``weights`` is the query's (S,) row of weights.
    """
    S = len(weights)
    if top_k is None:
        top_k = S if S <= ALL_KEYS_MAX else DEFAULT_TOP_K
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
        raise ValueError(f"top_k must be a positive int or None, got {top_k!r}")
    order = np.argsort(-weights, kind="stable")  # largest first; equal weights by position
    others = order[order != query]
    return np.union1d(others[: int(top_k)], [query])


def _breakdown(
    trace: Trace, layer: int, head: int, query: int, batch: int, top_k: int | None
) -> tuple[int, int, int, int, int, dict[str, Any]]:
    """Checked ``(layer, head, query, batch, S)`` and the arrays of the breakdown by name.

    Per shown key (rows): ``k, v`` (n, Dh), ``qk, scores, weights`` (n,), ``masked`` (n,) True
    = key hidden from this query, ``products`` and ``weighted`` (n, Dh), the display terms;
    ``keys`` (n,) their positions and ``others`` the positions left out; ``q, z`` (Dh,).
    With keys left out, ``other_weight`` and ``other_weighted`` (Dh,) sum their weights and
    their rows of ``weighted``.
    """
    layer, head = check_layer_head(trace, layer, head)
    b = f"blocks.{layer}.attn"
    names = ("q", "k", "v", "qk", "scores", "mask", "weights", "z")
    require_names(trace, [f"{b}.{p}" for p in names], "query_breakdown")
    batch = check_batch(trace, batch, f"{b}.q")
    S = trace[f"{b}.q"].shape[2]
    query = check_index(query, S, "query")
    padding = padding_positions(trace, batch, S)
    if padding[query]:
        real = ", ".join(str(i) for i in np.flatnonzero(~padding)[:12])
        raise ValueError(
            f"query {query} is a padding position of batch row {batch} (attention mask 0): its "
            f"row is not attention, no real token reads it; choose a real position ({real}"
            f"{', ...' if (~padding).sum() > 12 else ''})"
        )
    row = {name: trace[f"{b}.{name}"][batch, head, query] for name in ("qk", "scores", "weights")}
    keys = shown_keys(row["weights"], query, top_k)
    others = np.setdiff1d(np.arange(S), keys)
    a: dict[str, Any] = {"keys": keys, "others": others}
    for name in ("k", "v"):
        a[name] = trace[f"{b}.{name}"][batch, head][keys]  # (n, Dh)
    for name, values in row.items():
        a[name] = values[keys]  # (n,)
    for name in ("q", "z"):
        a[name] = trace[f"{b}.{name}"][batch, head, query]  # (Dh,)
    visible = np.broadcast_to(trace[f"{b}.mask"][batch, 0], (S, S))[query]  # (S,) True = seen
    a["masked"] = ~visible[keys]
    a["products"] = a["q"] * a["k"]  # (n, Dh): the terms of each dot product
    all_weighted = row["weights"][:, None] * trace[f"{b}.v"][batch, head]  # (S, Dh): terms of z
    a["weighted"] = all_weighted[keys]
    if len(others):
        a["other_weight"] = row["weights"][others].sum()
        a["other_weighted"] = all_weighted[others].sum(axis=0)
        a["other_masked"] = int((~visible[others]).sum())
    return layer, head, query, batch, S, a


def _limit(values: np.ndarray, seen: np.ndarray) -> float | None:
    """The signed colour limit of the rows of ``values`` whose key is ``seen``; None if none."""
    rows = np.asarray(values)[seen]
    if not rows.size:
        return None
    return signed_limit(np.abs(rows).ravel()) or None


def _columns(
    a: dict[str, Any], scores_title: str, annotate: bool | None = None
) -> list[tuple[str, np.ndarray, dict]]:
    """The seven columns, left to right: (title, (rows, n) array, options of draw_matrix),
    then the query vector q and the head output z (1, Dh) with theirs. With keys left out,
    each column has one more row: the other keys, grey, except in the weights (their sum)
    and in ``w_j v_j`` (the sum of their rows)."""
    n, Dh = a["k"].shape
    summary = len(a["others"]) > 0
    rows = n + summary
    vectors = rows * Dh <= ANNOTATE_MAX_CELLS if annotate is None else annotate
    per_key = rows <= ANNOTATE_MAX_KEYS if annotate is None else annotate
    seen = ~a["masked"]

    def column(values: np.ndarray, total: np.ndarray | float | None = None) -> np.ndarray:
        """(n, w) values with the other keys' row below: their sum, or zeros drawn grey."""
        values = values.reshape(n, -1)
        if not summary:
            return values
        last = np.zeros((1, values.shape[1])) if total is None else np.reshape(total, (1, -1))
        return np.concatenate([values, last])

    grey = np.append(np.zeros(n, bool), True) if summary else None  # the other keys' row
    masked = np.append(a["masked"], False) if summary else a["masked"]
    small = {"annotate": vectors, "fmt": ".2f"}
    numbers = {"annotate": per_key, "fmt": ".3g", "grey_rows": grey}
    qk_limit = _limit(np.concatenate([a["k"], a["q"][None]]), np.append(seen, True))
    dot_limit = _limit(np.stack([a["qk"], a["scores"]], axis=1), seen)
    return [
        (f"k_j  ({n} × {Dh})", column(a["k"]), {"limit": qk_limit, "grey_rows": grey, **small}),
        (
            f"q ⊙ k_j  ({n} × {Dh})",
            column(a["products"]),
            {"limit": _limit(a["products"], seen), "grey_rows": grey, **small},
        ),
        ("q · k_j\n= row sum", column(a["qk"]), {"limit": dot_limit, **numbers}),
        (scores_title, column(a["scores"]), {"limit": dot_limit, **numbers}),
        (
            "softmax\n= weights",
            column(a["weights"], a.get("other_weight")),
            {
                "kind": "weights",
                "mask": masked[:, None],
                "annotate": per_key,
                "fmt": ".2f",
                "limit": 1.0,
            },
        ),
        (
            f"v_j  ({n} × {Dh})",
            column(a["v"]),
            {"limit": _limit(a["v"], seen), "grey_rows": grey, **small},
        ),
        (
            f"w_j v_j  ({n} × {Dh})",
            column(a["weighted"], a.get("other_weighted")),
            {
                "mask": np.broadcast_to(masked[:, None], (rows, Dh)),
                "limit": _limit(a["weighted"], seen),
                **small,
            },
        ),
        ("q", a["q"][None, :], {"limit": qk_limit, **small}),
        ("z", a["z"][None, :], small),
    ]


def _scores_title(trace: Trace, layer: int) -> str:
    """The scores column's title, from ``config.scale_scores`` and ``trace.patched``."""
    if f"blocks.{layer}.attn.scores" in trace.patched:
        return "scores\n(patched)"
    if not trace.config.scale_scores:
        return "scores = q · k_j\n(not scaled)"
    return f"÷ √{trace.config.d_head}\n= scores"


def _key_labels(labels: list[str], a: dict[str, Any]) -> list[str]:
    """The row labels: each shown key's token (and its position, when keys are left out),
    then the row of the other keys."""
    keys, others = a["keys"], a["others"]
    if not len(others):
        return [labels[j] for j in keys]
    masked = a["other_masked"]
    other = plural(len(others), "other key") + (f" ({masked} masked)" if masked else "")
    return [f"{labels[j]} ({j})" for j in keys] + [other]


def _suptitle(layer: int, head: int, query: int, label: str, a: dict[str, Any], S: int) -> str:
    where = f"query '{label}' (position {query})"
    if not len(a["others"]):
        return f"Layer {layer}, head {head}: how {where} attends to every key"
    return (
        f"Layer {layer}, head {head}: how {where} attends\nto its own key and the "
        f"{len(a['keys']) - 1} others with the largest weights ({len(a['keys'])} of {S} keys, "
        "in position order; the rest summed in the last row)"
    )


def _q_title(label: str, Dh: int) -> str:
    return f"q = query '{label}'  (1 × {Dh})"


def query_breakdown(
    trace: Trace,
    layer: int,
    head: int,
    query: int,
    tokens: Sequence[str] | None = None,
    *,
    batch: int = 0,
    annotate: bool | None = None,
    top_k: int | None = None,
) -> Figure:
    """One query's attention computed in front of you: every product, sum and probability.

    Columns, one row per key j: the key vectors ``k_j``; the element-wise products
    ``q ⊙ k_j`` (their row sums are the dot products); the recorded dot products ``q · k_j``;
    the recorded scores (titled from the config: ``÷ √d_head``, not scaled, or patched); the
    softmax probabilities (masked keys grey, hatched and labelled "masked"); the value
    vectors ``v_j``; and the weighted value rows ``w_j v_j``. Above the products: the query
    vector q; below the weighted rows: their sum ``z`` (the recorded head output of the
    query). Signed values use the diverging map centred at 0 (``q`` and ``k_j`` on one scale,
    and ``q · k_j`` and the scores on one scale, so the division is seen); colour scales come
    from the keys the query sees. The query's own key row is outlined; small vectors and the
    per-key numbers are written in the cells. :func:`update_query_breakdown` shows another
    head or query in the same figure.

    Parameters
    ----------
    trace : Trace
        Needs ``blocks.{layer}.attn.`` ``q, k, v, qk, scores, mask, weights, z``.
    layer, head : int
    query : int
        Position of the query token (from 0); a padding position raises ``ValueError``.
    tokens : sequence of str, optional
        Token strings (length S), drawn literally.
    batch : int
        Which sequence of the batch.
    annotate : bool, optional
        Write the values in the cells. Default: where they fit, the vectors up to
        ``ANNOTATE_MAX_CELLS`` entries and the per-key numbers up to ``ANNOTATE_MAX_KEYS``
        rows. (The explorer's small PNGs pass False beyond 16 tokens: there the numbers
        would be a few pixels tall, and they are most of the drawing time.)
    top_k : int, optional
        Draw only the query's own key and the ``top_k`` other keys with the largest weights,
        in position order, and sum up the others in one last row ("183 other keys").
        Default: every key up to :data:`ALL_KEYS_MAX` tokens, else :data:`DEFAULT_TOP_K`.

    Returns
    -------
    matplotlib Figure (made without pyplot).
    """
    layer, head, query, batch, S, a = _breakdown(trace, layer, head, query, batch, top_k)
    Dh = a["k"].shape[1]
    labels = token_labels(tokens, S)
    columns = _columns(a, _scores_title(trace, layer), annotate)
    rows = columns[0][1].shape[0]
    own = int(np.searchsorted(a["keys"], query))  # the row of the query's own key
    annotate_vec = bool(columns[0][2]["annotate"])
    annotate_num = bool(columns[2][2]["annotate"])

    vec = max(2.6, 0.42 * Dh) if annotate_vec else 2.8  # inches per d_head-wide column
    num = 1.1  # inches per column of single numbers
    row = 0.36 if rows <= 32 else 0.2  # inches per key row: room for its label on every row
    fig = Figure(figsize=(4 * vec + 3 * num + 1.5, row * rows + 3.6), layout="constrained")
    grid = fig.add_gridspec(
        3,
        7,
        width_ratios=[vec, vec, num, num, num, vec, vec],
        height_ratios=[1.3, max(rows, 2), 1.3],
    )
    for col, (title, array, options) in enumerate(columns[:7]):
        ax = fig.add_subplot(grid[1, col])
        wide = array.shape[1] > 1
        colorbar = "bottom" if wide or not annotate_num else None
        draw_matrix(ax, array, colorbar=colorbar, fontsize=7 if wide else None, **options)
        if wide:
            ax.set_xlabel(f"d_head ({Dh})", fontsize=8)
        elif colorbar is not None:  # a narrow column: three ticks fit under it
            bar = ax.images[0].colorbar
            assert bar is not None
            bar.locator = MaxNLocator(nbins=3)
        if options.get("kind") == "weights":
            for j in np.flatnonzero(a["masked"]):
                ax.text(0, int(j), "masked", ha="center", va="center", fontsize=7, color="#555555")
        _outline_row(ax, own, array.shape[1])
        if col == 3:  # the scores' title changes with a what-if: a text of the axes, which
            # the explorer redraws with the data (see explorer.breakdown_artists)
            ax.annotate(
                title,
                (0.5, 1.0),
                xycoords="axes fraction",
                xytext=(0, 6),
                textcoords="offset points",
                ha="center",
                va="bottom",
                fontsize=10,
            )
        else:
            ax.set_title(title, fontsize=10)
    first_ax = fig.axes[0]
    first_ax.set_yticks(np.arange(rows), _key_labels(labels, a), **LITERAL)  # every row
    first_ax.set_ylabel("key j")
    _highlight_key_label(first_ax, own)

    q_ax = fig.add_subplot(grid[0, 1])
    draw_matrix(q_ax, columns[7][1], colorbar=None, fontsize=7, **columns[7][2])
    q_title = q_ax.set_title(_q_title(labels[query], Dh), fontsize=10, color=HIGHLIGHT_COLOR)
    q_title.update(LITERAL)  # a token in the title is drawn literally
    z_ax = fig.add_subplot(grid[2, 6])
    draw_matrix(z_ax, columns[8][1], colorbar=None, fontsize=7, **columns[8][2])
    z_ax.set_xlabel(f"z = Σ_j w_j v_j  (1 × {Dh})", fontsize=10)
    title = _suptitle(layer, head, query, labels[query], a, S)
    fig.suptitle(title, fontsize=SUPTITLE_FONTSIZE, gid=SUPTITLE, **LITERAL)
    return fig


def _highlight_key_label(ax: Axes, row: int) -> None:
    """The query's own key label (row ``row``) in the highlight colour and bold, the others
    plain."""
    for position, tick in enumerate(ax.get_yticklabels()):
        focused = position == row
        tick.set_color(HIGHLIGHT_COLOR if focused else "black")
        tick.set_fontweight("bold" if focused else "normal")


def breakdown_layout(
    trace: Trace, layer: int, head: int, query: int, *, batch: int = 0, top_k: int | None = None
) -> tuple[object, ...]:
    """What fixes the layout of :func:`query_breakdown`: the sizes (S, keys shown, d_head)
    and which rows hold keys this query may not see. Two states with equal layouts can be
    shown in one figure (:func:`update_query_breakdown`); with keys left out, their rows may
    hold other keys."""
    *_, S, a = _breakdown(trace, layer, head, query, batch, top_k)
    return (S, a["k"].shape, a["masked"].tobytes())


def key_label_choices(tokens: Sequence[str] | None, S: int, shown: int) -> list[str]:
    """Every row label a breakdown of ``S`` tokens showing ``shown`` keys (fewer than S) may
    draw, for any head and query: each token with its position, and the widest label of the
    other keys' row (digits are equally wide). A figure laid out with room for the widest
    can show any of them in place (the explorer does so)."""
    others = S - shown
    widest_other = plural(others, "other key") + f" ({others} masked)"
    return [f"{label} ({j})" for j, label in enumerate(token_labels(tokens, S))] + [widest_other]


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
    top_k: int | None = None,
) -> None:
    """Show another head or query in a figure made by :func:`query_breakdown`, in place.

    Why: building the figure anew (nine panels, seven colour bars, a label per key, the
    constrained layout) takes several times longer than drawing it, too slow for the explorer
    to follow a control. Here only what depends on the head and query changes: the images and
    their colour limits, the numbers written in the cells, the outlined row, the highlighted
    key label and the titles. The figure then shows exactly what ``query_breakdown(trace,
    layer, head, query, tokens, batch=batch, annotate=annotate, top_k=top_k)`` would draw,
    provided it was drawn with the same ``annotate`` and ``top_k`` and both states have the
    same :func:`breakdown_layout` (same sizes and rows of masked keys); otherwise a
    ``ValueError`` says to draw the figure anew. With keys left out, another head or query
    may show other keys: the row labels change too. A figure is laid out on its first
    drawing and keeps its margins, so lay it out with room for the widest label
    (:func:`key_label_choices`) if it is to show other keys after that, as the explorer does.
    """
    layer, head, query, batch, S, a = _breakdown(trace, layer, head, query, batch, top_k)
    labels = token_labels(tokens, S)
    panels = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]  # columns, q, z
    columns = _columns(a, _scores_title(trace, layer), annotate)
    if len(panels) != 9 or not panels[0].images:
        raise ValueError("fig is not a query breakdown: draw it with query_breakdown")
    masked_rows = [int(t.get_position()[1]) for t in panels[4].texts if t.get_text() == "masked"]
    if np.shape(np.asarray(panels[0].images[0].get_array())) != columns[0][1].shape or (
        masked_rows != list(np.flatnonzero(a["masked"]))
    ):
        raise ValueError("this query shows or sees other keys than the one drawn: draw it anew")
    own = int(np.searchsorted(a["keys"], query))
    key_labels = _key_labels(labels, a)
    if [t.get_text() for t in panels[0].get_yticklabels()] != key_labels:  # other keys
        panels[0].set_yticks(np.arange(len(key_labels)), key_labels, **LITERAL)
    for ax, (_, array, options) in zip(panels, columns, strict=True):
        update_matrix(ax, array, **options)
        bar = ax.images[0].colorbar
        if bar is not None and array.shape[1] == 1:  # as query_breakdown: three ticks
            bar.locator = MaxNLocator(nbins=3)
        for patch in ax.patches:
            if patch.get_edgecolor()[:3] == to_rgb(HIGHLIGHT_COLOR):  # the query's own row
                patch.set_y(own - 0.5)  # type: ignore[attr-defined]
    panels[3].texts[-1].set_text(columns[3][0])  # the scores' title: the last text
    _highlight_key_label(panels[0], own)
    panels[7].title.set_text(_q_title(labels[query], a["k"].shape[1]))
    set_figure_texts(fig, _suptitle(layer, head, query, labels[query], a, S))
