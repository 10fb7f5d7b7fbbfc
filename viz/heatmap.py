"""The attention pattern of one head as a heatmap: queries down, keys across."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from minitransformer.trace import Trace
from viz.style import (
    MASKED_HATCH,
    cell_size_inches,
    check_batch,
    check_layer_head,
    label_positions,
    require_names,
    token_labels,
    weights_cmap,
)


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
    fig = ax.get_figure(root=True)
    assert isinstance(fig, Figure)

    shown = np.ma.masked_array(weights, mask=~mask)
    top = float(weights.max()) if vmax is None else vmax
    image = ax.imshow(shown, cmap=weights_cmap(), vmin=0.0, vmax=max(top, 1e-12), aspect="equal")
    for i, start, stop in masked_runs(mask):  # one hatched rectangle per run of masked keys
        ax.add_patch(
            Rectangle((start - 0.5, i - 0.5), stop - start, 1, fill=False, hatch=MASKED_HATCH,
                      lw=0, color="#8c8c8c")
        )  # fmt: skip

    ticks = label_positions(S)
    ax.set_xticks(ticks, [labels[t] for t in ticks], rotation=90)
    ax.set_yticks(ticks, [labels[t] for t in ticks])
    ax.set_xlabel("key (attended to)")
    ax.set_ylabel("query (attending)")
    ax.set_title(f"Layer {layer}, head {head}: attention weights")
    if colorbar:
        bar = fig.colorbar(image, ax=ax, shrink=0.8)
        bar.set_label("attention weight")
    return fig
