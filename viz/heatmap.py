"""The attention pattern of one head as a heatmap: queries down, keys across.

:func:`attention_heatmap` draws one head; :func:`attention_heads` draws several heads of one
layer side by side on one colour scale, so their patterns can be compared.

Padding is not attention: a padding query's row is drawn as masked (grey and hatched, its
label grey) and never sets the colour scale, like a masked key (:func:`viz.style.shown_mask`).
Long inputs can be cut to a span of positions (``span=slice(100, 164)``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from matplotlib.patches import Rectangle

from minitransformer.trace import Trace
from viz.checks import (
    check_batch,
    check_indices,
    check_layer,
    check_layer_head,
    check_span,
    require_names,
)
from viz.style import (
    ANNOTATE_MAX_TOKENS,
    LITERAL,
    MASKED_HATCH,
    MAX_LABELS,
    MIN_FONTSIZE,
    block_max,
    cell_size_inches,
    figure_of,
    grey_padding_labels,
    label_positions,
    labels_that_fit,
    plural,
    real_positions,
    shown_mask,
    span_note,
    token_labels,
    weight_limit,
    weights_cmap,
)

#: Font size of the token labels on the panels of :func:`attention_heads`.
HEADS_FONTSIZE = 8.0
#: Width of one character of a token label, in inches (about 0.6 em at HEADS_FONTSIZE).
CHAR_INCHES = 0.6 * HEADS_FONTSIZE / 72
#: Font size of the weights written in the cells (the smallest any figure uses).
CELL_FONTSIZE = MIN_FONTSIZE
#: The longest side of a figure, in inches: 2400 pixels at the default 100 dpi, a slide.
MAX_FIGURE_INCHES = 24.0


def head_weights(
    trace: Trace, layer: int, head: int, batch: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """The (S, S) weights of one head for one sequence, and the (S, S) cells drawn as weights.

    The second array is True where query i may attend to key j *and* query i is a real token:
    a padding query's row is False like a masked key (:func:`viz.style.shown_mask`), so it is
    drawn as masked and never sets a colour scale. Raises ``KeyError`` when the trace did not
    record the weights or the mask (e.g. recorded with ``keep=``), ``IndexError`` for a layer,
    head or batch index out of range.
    """
    layer, head = check_layer_head(trace, layer, head)
    weights_name, mask_name = f"blocks.{layer}.attn.weights", f"blocks.{layer}.attn.mask"
    require_names(trace, [weights_name, mask_name], figure="the attention heatmap")
    batch = check_batch(trace, batch, weights_name)
    weights = trace[weights_name]
    S = weights.shape[-1]
    mask = np.broadcast_to(trace[mask_name][batch, 0], (S, S))
    return weights[batch, head], shown_mask(mask, real_positions(trace, batch))


def masked_runs(mask: np.ndarray) -> list[tuple[int, int, int]]:
    """The masked cells of an (S, S) mask as runs ``(row, start, stop)`` of consecutive keys."""
    runs = []
    for i, row in enumerate(mask):
        masked = np.concatenate([[False], ~row, [False]]).astype(np.int8)
        edges = np.flatnonzero(np.diff(masked))  # starts and stops alternate
        runs += [(i, int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]
    return runs


def masked_blocks(mask: np.ndarray) -> list[tuple[int, int, int, int]]:
    """The masked cells of an (S, S) mask as rectangles ``(row_start, row_stop, start, stop)``:
    the runs of :func:`masked_runs`, each merged with the same run in the rows just below (so
    a masked key's column is one rectangle, not one per row)."""
    blocks: list[tuple[int, int, int, int]] = []
    last: dict[tuple[int, int], int] = {}  # (start, stop) -> index in blocks of its latest block
    for i, start, stop in masked_runs(mask):
        index = last.get((start, stop))
        if index is not None and blocks[index][1] == i:  # the same run in the row above
            blocks[index] = (blocks[index][0], i + 1, start, stop)
        else:
            last[(start, stop)] = len(blocks)
            blocks.append((i, i + 1, start, stop))
    return blocks


def hatch_masked(ax: Axes, mask: np.ndarray) -> None:
    """Cover the masked cells of an (S, S) ``mask`` (False = masked) drawn on ``ax`` with
    hatched rectangles (:func:`masked_blocks`), so they never look like a small weight.
    :func:`remove_hatches` takes them off again (the explorer, masking another token)."""
    for row_start, row_stop, start, stop in masked_blocks(mask):
        ax.add_patch(
            Rectangle(
                (start - 0.5, row_start - 0.5),
                stop - start,
                row_stop - row_start,
                fill=False,
                hatch=MASKED_HATCH,
                lw=0,
                color="#8c8c8c",
            )
        )


def remove_hatches(ax: Axes) -> None:
    """Remove the rectangles :func:`hatch_masked` drew on ``ax``."""
    for patch in list(ax.patches):
        if patch.get_hatch() == MASKED_HATCH:
            patch.remove()


def draw_weights(
    ax: Axes,
    weights: np.ndarray,
    mask: np.ndarray,
    labels: Sequence[str],
    *,
    vmax: float,
    annotate: bool,
    hatch: bool = True,
    max_labels: int = MAX_LABELS,
    real: np.ndarray | None = None,
    factor: int = 1,
) -> AxesImage:
    """Draw an (n, n) attention pattern into ``ax``: the shared drawing of every heatmap.

    Masked cells (``mask`` False: masked keys and padding queries) are left out of the image
    (they show the colour map's "bad" grey) and, with ``hatch``, covered by hatched
    rectangles; ``annotate`` writes each visible weight in its cell; at most ``max_labels``
    token labels per axis (every k-th token for long inputs), drawn literally (no mathtext);
    the labels of padding tokens (``real`` False) are grey. Cell (i, j) is at x = j, y = i.
    With ``factor`` > 1 (more tokens than pixels), each block of ``factor`` x ``factor`` cells
    is drawn as its largest weight (:func:`viz.style.block_max`). Returns the image (for a
    colour bar).
    """
    n = weights.shape[0]
    cover = -(-n // factor) * factor - 0.5  # where the (pooled) image ends
    image = ax.imshow(
        block_max(weights, mask, factor),
        cmap=weights_cmap(),
        vmin=0.0,
        vmax=max(vmax, 1e-12),
        aspect="equal",
        extent=(-0.5, cover, cover, -0.5),
    )
    ax.set(xlim=(-0.5, n - 0.5), ylim=(n - 0.5, -0.5))
    if hatch:
        hatch_masked(ax, mask)
    if annotate:
        for i, j in zip(*np.nonzero(mask), strict=True):
            dark = weights[i, j] > 0.6 * vmax  # white text on dark cells
            ax.text(
                j,
                i,
                f"{weights[i, j]:.2f}",
                ha="center",
                va="center",
                fontsize=CELL_FONTSIZE,
                color="white" if dark else "black",
            )
    ticks = label_positions(n, max_labels)
    ax.set_xticks(ticks, [labels[t] for t in ticks], rotation=90, **LITERAL)
    ax.set_yticks(ticks, [labels[t] for t in ticks], **LITERAL)
    if real is not None:
        grey_padding_labels(ax.get_xticklabels(), ticks, real)
        grey_padding_labels(ax.get_yticklabels(), ticks, real)
    return image


def attention_heatmap(
    trace: Trace,
    layer: int,
    head: int,
    tokens: Sequence[str] | None = None,
    ax: Axes | None = None,
    *,
    batch: int = 0,
    vmax: float | None = None,
    colorbar: bool = True,
    annotate: bool | None = None,
    span: slice | None = None,
) -> Figure:
    """Draw one head's attention weights: row i = query token i, column j = key token j.

    Cell (i, j) is how much token i reads from token j; each row sums to 1. Masked cells
    (keys the query may not see: padding, or the future under a causal mask) are grey and
    hatched, so they never look like a small weight; so are the rows of padding queries
    (computed, but never used by the model), whose labels are grey.

    Parameters
    ----------
    trace : Trace
        From ``model.run_with_trace``; needs ``blocks.{layer}.attn.weights`` and ``.mask``.
    layer, head : int
        Which block and head (from 0).
    tokens : sequence of str, optional
        Token strings for the axis labels (length S, drawn literally); default: positions
        0 .. S-1.
    ax : matplotlib Axes, optional
        Where to draw; default: a new figure sized to the number of tokens.
    batch : int
        Which sequence of the batch.
    vmax : float, optional
        Top of the colour scale (default: the largest weight of a real query of this head, so
        weak patterns stay visible; pass 1.0 to compare heads on one scale).
    colorbar : bool
        Draw a colour bar labelled "attention weight".
    annotate : bool, optional
        Write each weight (two decimals) in its cell. Default: only for at most
        ``style.ANNOTATE_MAX_TOKENS`` (16) tokens shown, where the numbers still fit.
    span : slice, optional
        Show only these positions as queries and keys (``slice(100, 164)``); the title names
        them, and a row then sums to less than 1 (the keys outside the span are not shown).
        Cell (i, j) of the span is drawn at x = j, y = i counted from the span's start.

    Returns
    -------
    matplotlib Figure, made without pyplot (no global state): ``fig.savefig("head.png")``,
    or leave it as the last expression of a notebook cell to display it.
    """
    weights, mask = head_weights(trace, layer, head, batch)
    S = weights.shape[0]
    labels = token_labels(tokens, S)
    shown = check_span(span, S)
    window = np.ix_(shown, shown)
    weights, mask = weights[window], mask[window]
    n = len(shown)
    if ax is None:
        size = cell_size_inches(n)
        ax = Figure(figsize=(size + 1.2, size), layout="constrained").add_subplot()
    fig = figure_of(ax)

    top = weight_limit(weights, mask) if vmax is None else vmax
    annotate = n <= ANNOTATE_MAX_TOKENS if annotate is None else annotate
    real = real_positions(trace, check_batch(trace, batch, f"blocks.{layer}.attn.weights"))
    image = draw_weights(
        ax,
        weights,
        mask,
        [labels[i] for i in shown],
        vmax=top,
        annotate=annotate,
        real=real[shown.start : shown.stop],
    )
    ax.set_xlabel("key (attended to)")
    ax.set_ylabel("query (attending)")
    note = span_note(shown, S)
    ax.set_title(f"Layer {layer}, head {head}: attention weights" + (f", {note}" if note else ""))
    if colorbar:
        bar = fig.colorbar(image, ax=ax, shrink=0.8)
        bar.set_label("attention weight")
    return fig


def attention_heads(
    trace: Trace,
    layer: int,
    heads: Sequence[int] | None = None,
    tokens: Sequence[str] | None = None,
    *,
    batch: int = 0,
    share_scale: bool = True,
    annotate: bool = False,
    max_columns: int = 6,
    span: slice | None = None,
) -> Figure:
    """Several heads of one layer side by side: one heatmap per head, queries down, keys across.

    Parameters
    ----------
    trace : Trace
        Needs ``blocks.{layer}.attn.weights`` and ``.mask``.
    layer : int
        Which block (from 0).
    heads : sequence of int, optional
        Which heads, in this order (default: all of them).
    tokens : sequence of str, optional
        Token labels (length S); the query labels are written on the first column only.
    batch : int
        Which sequence of the batch.
    share_scale : bool
        One colour scale (0 to the largest weight of a real query in the heads shown) and one
        colour bar, so the colours mean the same in every head. ``False``: each head scaled to
        its own maximum, with its own colour bar, to see the shape of weak patterns.
    annotate : bool
        Write each weight in its cell (readable only for short inputs).
    max_columns : int
        Heads per row; more heads wrap onto further rows.
    span : slice, optional
        Show only these positions (see :func:`attention_heatmap`).

    Returns
    -------
    matplotlib Figure with one axes per head (titled ``"head h"``) and the colour bar(s), at
    most :data:`MAX_FIGURE_INCHES` wide (the panels shrink for many columns).
    """
    layer = check_layer(trace, layer)
    heads = check_indices(heads, trace.config.n_heads, "heads", "head")
    patterns = [head_weights(trace, layer, h, batch) for h in heads]
    S = patterns[0][0].shape[0]
    labels = token_labels(tokens, S)
    shown = check_span(span, S)
    window = np.ix_(shown, shown)
    patterns = [(weights[window], mask[window]) for weights, mask in patterns]
    real = real_positions(trace, check_batch(trace, batch, f"blocks.{layer}.attn.weights"))
    real, labels = real[shown.start : shown.stop], [labels[i] for i in shown]
    n = len(shown)
    n_cols = min(len(heads), max_columns)
    n_rows = -(-len(heads) // n_cols)  # ceiling division
    bars = 0.9 if share_scale else 0.8 * n_cols
    label_inches = max(len(label) for label in labels) * CHAR_INCHES  # the longest label
    # The side of one head's map, in inches: grows with the tokens, at most what keeps the
    # figure within MAX_FIGURE_INCHES (the query labels, the colour bar(s) and the gaps).
    room = (MAX_FIGURE_INCHES - 0.5 - label_inches - bars) / n_cols - 0.15
    panel = float(np.clip(0.16 * n + 1.0, 1.6, min(5.0, room)))
    max_labels = labels_that_fit(panel, HEADS_FONTSIZE)  # long inputs: every k-th token
    label_inches = max(len(labels[t]) for t in label_positions(n, max_labels)) * CHAR_INCHES
    # Size the figure to its content: the query labels take width once per row, the key
    # labels (rotated) height once per row; one colour bar, or one per head.
    width = 0.5 + label_inches + n_cols * (panel + 0.15) + bars
    height = 0.5 + n_rows * (panel + label_inches + 0.8)
    # "compressed": the constrained layout made for grids of fixed-aspect axes; the shared
    # colour bar gets a thin column of its own, right next to the heads.
    fig = Figure(figsize=(width, height), layout="compressed")
    grid = fig.add_gridspec(
        n_rows, n_cols + share_scale, width_ratios=[1.0] * n_cols + [0.05] * share_scale
    )
    shared_top = max(weight_limit(w, m) for w, m in patterns)
    factor = max(1, -(-n // round(panel * fig.dpi)))  # more tokens than pixels: block maxima
    for index, (h, (weights, mask)) in enumerate(zip(heads, patterns, strict=True)):
        ax = fig.add_subplot(grid[index // n_cols, index % n_cols])
        top = shared_top if share_scale else weight_limit(weights, mask)
        image = draw_weights(
            ax,
            weights,
            mask,
            labels,
            vmax=top,
            annotate=annotate,
            max_labels=max_labels,
            real=real,
            factor=factor,
        )
        ax.tick_params(labelsize=HEADS_FONTSIZE)
        ax.set_title(f"head {h}")
        if index % n_cols:
            ax.tick_params(labelleft=False)
        else:
            ax.set_ylabel("query")
        ax.set_xlabel("key")
        if not share_scale:
            fig.colorbar(image, ax=ax, shrink=0.7)
    if share_scale:
        bar = fig.colorbar(image, cax=fig.add_subplot(grid[:, n_cols]))
        bar.set_label("attention weight")
    note = span_note(shown, S)
    pooled = f"\neach pixel: the largest weight of {factor} x {factor} tokens" if factor > 1 else ""
    fig.suptitle(
        f"Layer {layer}: attention weights of {plural(len(heads), 'head')}"
        + (f", {note}" if note else "")
        + pooled
    )
    return fig
