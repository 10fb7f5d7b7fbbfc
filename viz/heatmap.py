"""The attention pattern of one head as a heatmap: queries down, keys across.

:func:`attention_heatmap` draws one head; :func:`attention_heads` draws several heads of one
layer side by side on one colour scale, so their patterns can be compared.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from matplotlib.patches import Rectangle

from minitransformer.trace import Trace
from viz.style import (
    ANNOTATE_MAX_TOKENS,
    MASKED_HATCH,
    MAX_LABELS,
    cell_size_inches,
    check_batch,
    check_indices,
    check_layer,
    check_layer_head,
    figure_of,
    label_positions,
    labels_that_fit,
    plural,
    require_names,
    token_labels,
    weights_cmap,
)

#: Font size of the token labels on the panels of :func:`attention_heads`.
HEADS_FONTSIZE = 8.0
#: Width of one character of a token label, in inches (about 0.6 em at HEADS_FONTSIZE).
CHAR_INCHES = 0.6 * HEADS_FONTSIZE / 72


def head_pattern(
    trace: Trace, layer: int, head: int, batch: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """The (S, S) weights of one head for one sequence, and the (S, S) mask it was computed with.

    Raises ``KeyError`` when the trace did not record the weights or the mask (e.g. recorded
    with ``keep=``), ``IndexError`` for a layer, head or batch index out of range.
    """
    layer, head = check_layer_head(trace, layer, head)
    weights_name, mask_name = f"blocks.{layer}.attn.weights", f"blocks.{layer}.attn.mask"
    require_names(trace, [weights_name, mask_name], figure="the attention heatmap")
    batch = check_batch(trace, batch, weights_name)
    weights = trace[weights_name]
    S = weights.shape[-1]
    mask = np.broadcast_to(trace[mask_name][batch, 0], (S, S))
    return weights[batch, head], mask


def masked_runs(mask: np.ndarray) -> list[tuple[int, int, int]]:
    """The masked cells of an (S, S) mask as runs ``(row, start, stop)`` of consecutive keys."""
    runs = []
    for i, row in enumerate(mask):
        masked = np.concatenate([[False], ~row, [False]]).astype(np.int8)
        edges = np.flatnonzero(np.diff(masked))  # starts and stops alternate
        runs += [(i, int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]
    return runs


def hatch_masked(ax: Axes, mask: np.ndarray) -> None:
    """Cover the masked cells of an (S, S) ``mask`` (False = masked) drawn on ``ax`` with
    hatched rectangles, one per run of masked keys in a row, so they never look like a small
    weight. :func:`remove_hatches` takes them off again (the explorer, masking another token)."""
    for i, start, stop in masked_runs(mask):
        ax.add_patch(
            Rectangle((start - 0.5, i - 0.5), stop - start, 1, fill=False,
                      hatch=MASKED_HATCH, lw=0, color="#8c8c8c")
        )  # fmt: skip


def remove_hatches(ax: Axes) -> None:
    """Remove the rectangles :func:`hatch_masked` drew on ``ax``."""
    for patch in list(ax.patches):
        if patch.get_hatch() == MASKED_HATCH:
            patch.remove()


def draw_pattern(
    ax: Axes,
    weights: np.ndarray,
    mask: np.ndarray,
    labels: Sequence[str],
    *,
    vmax: float,
    annotate: bool,
    hatch: bool = True,
    max_labels: int = MAX_LABELS,
) -> AxesImage:
    """Draw an (S, S) attention pattern into ``ax``: the shared drawing of every heatmap.

    Masked cells are left out of the image (they show the colour map's "bad" grey) and,
    with ``hatch``, covered by hatched rectangles; ``annotate`` writes each visible weight
    in its cell; at most ``max_labels`` token labels per axis (every k-th token for long
    inputs). Returns the image (for a colour bar).
    """
    S = weights.shape[0]
    shown = np.ma.masked_array(weights, mask=~mask)
    image = ax.imshow(shown, cmap=weights_cmap(), vmin=0.0, vmax=max(vmax, 1e-12), aspect="equal")
    if hatch:
        hatch_masked(ax, mask)
    if annotate:
        fontsize = 7 if S <= 10 else 5.5
        for i, j in zip(*np.nonzero(mask), strict=True):
            dark = weights[i, j] > 0.6 * vmax  # white text on dark cells
            ax.text(j, i, f"{weights[i, j]:.2f}", ha="center", va="center",
                    fontsize=fontsize, color="white" if dark else "black")  # fmt: skip
    ticks = label_positions(S, max_labels)
    ax.set_xticks(ticks, [labels[t] for t in ticks], rotation=90)
    ax.set_yticks(ticks, [labels[t] for t in ticks])
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
) -> Figure:
    """Draw one head's attention weights: row i = query token i, column j = key token j.

    Cell (i, j) is how much token i reads from token j; each row sums to 1. Masked cells
    (keys the query may not see: padding, or the future under a causal mask) are grey and
    hatched, so they never look like a small weight.

    Parameters
    ----------
    trace : Trace
        From ``model.run_with_trace``; needs ``blocks.{layer}.attn.weights`` and ``.mask``.
    layer, head : int
        Which block and head (from 0).
    tokens : sequence of str, optional
        Token strings for the axis labels (length S); default: positions 0 .. S-1.
    ax : matplotlib Axes, optional
        Where to draw; default: a new figure sized to the number of tokens.
    batch : int
        Which sequence of the batch.
    vmax : float, optional
        Top of the colour scale (default: the largest weight of this head, so weak patterns
        stay visible; pass 1.0 to compare heads on one scale).
    colorbar : bool
        Draw a colour bar labelled "attention weight".
    annotate : bool, optional
        Write each weight (two decimals) in its cell. Default: only for inputs of at most
        ``style.ANNOTATE_MAX_TOKENS`` (16) tokens, where the numbers still fit.

    Returns
    -------
    matplotlib Figure, made without pyplot (no global state): ``fig.savefig("head.png")``,
    or leave it as the last expression of a notebook cell to display it.
    """
    weights, mask = head_pattern(trace, layer, head, batch)
    S = weights.shape[0]
    labels = token_labels(tokens, S)
    if ax is None:
        size = cell_size_inches(S)
        ax = Figure(figsize=(size + 1.2, size), layout="constrained").add_subplot()
    fig = figure_of(ax)

    top = float(weights.max()) if vmax is None else vmax
    annotate = S <= ANNOTATE_MAX_TOKENS if annotate is None else annotate
    image = draw_pattern(ax, weights, mask, labels, vmax=top, annotate=annotate)
    ax.set_xlabel("key (attended to)")
    ax.set_ylabel("query (attending)")
    ax.set_title(f"Layer {layer}, head {head}: attention weights")
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
        One colour scale (0 to the largest weight of the heads shown) and one colour bar, so
        the colours mean the same in every head. ``False``: each head scaled to its own
        maximum, with its own colour bar, to see the shape of weak patterns.
    annotate : bool
        Write each weight in its cell (readable only for short inputs).
    max_columns : int
        Heads per row; more heads wrap onto further rows.

    Returns
    -------
    matplotlib Figure with one axes per head (titled ``"head h"``) and the colour bar(s).
    """
    layer = check_layer(trace, layer)
    heads = check_indices(heads, trace.config.n_heads, "heads", "head")
    patterns = [head_pattern(trace, layer, h, batch) for h in heads]
    S = patterns[0][0].shape[0]
    labels = token_labels(tokens, S)
    n_cols = min(len(heads), max_columns)
    n_rows = -(-len(heads) // n_cols)  # ceiling division
    panel = float(np.clip(0.16 * S + 1.0, 2.2, 5.0))  # side of one head's map, in inches
    max_labels = labels_that_fit(panel, HEADS_FONTSIZE)  # long inputs: every k-th token
    shown = label_positions(S, max_labels)
    label_inches = max(len(labels[t]) for t in shown) * CHAR_INCHES  # the longest label
    # Size the figure to its content: the query labels take width once per row, the key
    # labels (rotated) height once per row; one colour bar, or one per head.
    bars = 0.9 if share_scale else 0.8 * n_cols
    width = 0.5 + label_inches + n_cols * (panel + 0.15) + bars
    height = 0.5 + n_rows * (panel + label_inches + 0.8)
    # "compressed": the constrained layout made for grids of fixed-aspect axes; the shared
    # colour bar gets a thin column of its own, right next to the heads.
    fig = Figure(figsize=(width, height), layout="compressed")
    grid = fig.add_gridspec(n_rows, n_cols + share_scale,
                            width_ratios=[1.0] * n_cols + [0.05] * share_scale)  # fmt: skip
    shared_top = max(float(w.max()) for w, _ in patterns)
    for index, (h, (weights, mask)) in enumerate(zip(heads, patterns, strict=True)):
        ax = fig.add_subplot(grid[index // n_cols, index % n_cols])
        top = shared_top if share_scale else float(weights.max())
        image = draw_pattern(ax, weights, mask, labels, vmax=top, annotate=annotate,
                             max_labels=max_labels)  # fmt: skip
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
    fig.suptitle(f"Layer {layer}: attention weights of {plural(len(heads), 'head')}")
    return fig
