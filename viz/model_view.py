"""Every head of every layer at once: a layers x heads grid of small attention maps.

BertViz's "model view", drawn as one static figure: row l holds the heads of layer l, column h
head h. Each thumbnail is the same picture as :func:`viz.heatmap.attention_heatmap` (queries
down, keys across), small enough to scan a whole model for patterns: heads that look at the
previous token, at ``[CLS]``, at themselves, or spread evenly.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from minitransformer.trace import Trace
from viz.style import (
    HIGHLIGHT_COLOR,
    check_batch,
    check_index,
    check_indices,
    figure_of,
    label_positions,
    plural,
    require_names,
    token_labels,
    weights_cmap,
)

#: Width and height of one thumbnail, in inches.
THUMBNAIL_INCHES = 1.15
#: Font size of the token labels along the bottom and the right of the grid.
TOKEN_FONTSIZE = 5.0
#: Font size of the title; it is wrapped to the figure's width (small grids get two lines).
TITLE_FONTSIZE = 10.0


def model_view(
    trace: Trace,
    tokens: Sequence[str] | None = None,
    layers: Iterable[int] | None = None,
    heads: Iterable[int] | None = None,
    highlight: Iterable[tuple[int, int]] = (),
    *,
    batch: int = 0,
    vmax: float | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Draw the attention weights of many heads as a grid: one row per layer, one column per head.

    Every thumbnail shows queries down and keys across. For speed at 6 x 12 heads the grid is
    one axes holding one image per head (placed with ``extent``), not one axes per head.

    Parameters
    ----------
    trace : Trace
        Needs ``blocks.{l}.attn.weights`` and ``blocks.{l}.attn.mask`` of every layer shown.
    tokens : sequence of str, optional
        Token labels (length S): keys under every column, queries right of every row, thinned
        to what fits a thumbnail. Default: positions 0 .. S-1.
    layers, heads : iterables of int, optional
        Which rows and columns, in this order (default: all layers, all heads).
    highlight : iterable of (layer, head)
        Heads to frame in :data:`viz.style.HIGHLIGHT_COLOR` (each must be in the grid).
    batch : int
        Which sequence of the batch.
    vmax : float, optional
        One colour scale ``[0, vmax]`` for every thumbnail, with a colour bar (``vmax=1.0``
        compares heads absolutely). Default: each thumbnail is scaled to its own largest weight,
        which shows the *shape* of every pattern, even of heads that spread their weight thinly.
    ax : matplotlib Axes, optional
        Where to draw the grid; default: a new figure sized to hold it.

    Returns
    -------
    matplotlib Figure. ``fig.axes[0].images`` holds the thumbnails in row-major order (layer by
    layer, head by head), each with the (S, S) weights of its head as data and masked cells
    masked (grey); the layer and head labels are texts of that axes.
    """
    layers = check_indices(layers, trace.config.n_layers, "layers", "layer")
    heads = check_indices(heads, trace.config.n_heads, "heads", "head")
    names = [f"blocks.{l}.attn.{part}" for l in layers for part in ("weights", "mask")]
    require_names(trace, names, figure="the model view")
    batch = check_batch(trace, batch, names[0])
    framed = _check_highlight(highlight, layers, heads, trace)
    S = trace[names[0]].shape[-1]
    labels = token_labels(tokens, S)

    n_rows, n_cols = len(layers), len(heads)
    scale = "each map scaled to its own maximum" if vmax is None else f"colour scale 0 to {vmax:g}"
    title = (f"Attention weights, {plural(n_rows, 'layer')} x {plural(n_cols, 'head')}: "
             f"queries down, keys across ({scale})")  # fmt: skip
    if ax is None:
        width = max(3.6, n_cols * THUMBNAIL_INCHES + (2.4 if vmax is not None else 1.7))
        title = _wrap(title, width)
        height = n_rows * THUMBNAIL_INCHES + 1.3 + 0.2 * title.count("\n")
        ax = Figure(figsize=(width, height), layout="constrained").add_subplot()
    fig = figure_of(ax)
    step = S + max(1.0, S / 6)  # thumbnail plus the white gap between thumbnails, in cells
    cmap = weights_cmap()
    image = None
    for r, layer in enumerate(layers):
        weights = trace[f"blocks.{layer}.attn.weights"][batch]  # (H, S, S)
        mask = np.broadcast_to(trace[f"blocks.{layer}.attn.mask"][batch, 0], (S, S))
        for c, head in enumerate(heads):
            x0, y0 = c * step - 0.5, r * step - 0.5  # the thumbnail's top-left corner
            top = float(weights[head].max()) if vmax is None else vmax
            image = ax.imshow(np.ma.masked_array(weights[head], mask=~mask), cmap=cmap,
                              vmin=0.0, vmax=max(top, 1e-12), interpolation="nearest",
                              extent=(x0, x0 + S, y0 + S, y0))  # fmt: skip
            if (layer, head) in framed:
                ax.add_patch(Rectangle((x0, y0), S, S, fill=False, lw=2.5,
                                       edgecolor=HIGHLIGHT_COLOR, clip_on=False))  # fmt: skip
            if r == 0:
                ax.text(x0 + S / 2, y0 - 0.04 * S, f"head {head}", ha="center", va="bottom",
                        fontsize=9)  # fmt: skip
        ax.text(-0.08 * S, r * step + S / 2 - 0.5, f"layer {layer}", ha="right", va="center",
                fontsize=9)  # fmt: skip
    ax.set_xlim(-0.5, (n_cols - 1) * step + S - 0.5)
    ax.set_ylim((n_rows - 1) * step + S - 0.5, -0.5)
    ax.set_aspect("equal")
    for spine in ax.spines.values():
        spine.set_visible(False)

    shown = label_positions(S, max_labels=max(2, int(THUMBNAIL_INCHES * 72 / (TOKEN_FONTSIZE + 2))))
    ax.set_xticks([c * step + t for c in range(n_cols) for t in shown],
                  [labels[t] for _ in range(n_cols) for t in shown], rotation=90)  # fmt: skip
    ax.set_yticks([r * step + t for r in range(n_rows) for t in shown],
                  [labels[t] for _ in range(n_rows) for t in shown])  # fmt: skip
    ax.yaxis.tick_right()
    ax.tick_params(length=0, labelsize=TOKEN_FONTSIZE, pad=1)
    if vmax is not None and image is not None:
        bar = fig.colorbar(image, ax=ax, shrink=0.6, pad=0.06)
        bar.set_label("attention weight")
    ax.set_title(_wrap(title, fig.get_figwidth()), fontsize=TITLE_FONTSIZE, pad=16)
    return fig


def _wrap(title: str, inches: float) -> str:
    """``title`` broken into lines that fit ``inches`` at :data:`TITLE_FONTSIZE`."""
    return textwrap.fill(title, int(inches * 72 / (0.6 * TITLE_FONTSIZE)))


def _check_highlight(
    highlight: Iterable[tuple[int, int]], layers: list[int], heads: list[int], trace: Trace
) -> set[tuple[int, int]]:
    """The highlighted (layer, head) pairs, each checked to be a cell of the grid."""
    framed = set()
    for pair in highlight:
        if not isinstance(pair, tuple | list) or len(pair) != 2:
            raise TypeError(
                f"highlight must hold (layer, head) pairs, e.g. highlight=[(2, 3)], got {pair!r}"
            )
        layer = check_index(pair[0], trace.config.n_layers, "highlight layer")
        head = check_index(pair[1], trace.config.n_heads, "highlight head")
        if layer not in layers or head not in heads:
            raise ValueError(f"highlight {(layer, head)} is not in the grid (layers {layers}, "
                             f"heads {heads})")  # fmt: skip
        framed.add((layer, head))
    return framed
