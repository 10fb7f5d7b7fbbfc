"""Multi-head anatomy: how the heads' outputs for one token become attention's output.

For token t of block l::

    concat_t = [z_t^0, z_t^1, ..., z_t^{H-1}]                 (1 × D): the heads side by side
    attn.out_t = concat_t W_O + b_O
               = Σ_h z_t^h W_O[h·Dh:(h+1)·Dh, :] + b_O        (each head reads its own rows)

The z rows, concat and attn.out are read from the trace; W_O and b_O from the parameters.
:func:`head_contributions` computes the terms ``z_t^h W_O[h-block]`` of the sum, which the
trace does not hold separately (a decomposition of ``attn.out`` for display; their sum plus
``b_O`` is the recorded ``attn.out``, which a test checks).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from minitransformer.trace import Trace
from viz.checks import (
    as_params,
    check_batch,
    check_index,
    check_layer,
    head_params,
    require_names,
)
from viz.matrix import (
    draw_matrix,
)
from viz.style import (
    LITERAL,
    head_color,
    real_positions,
    token_labels,
)

#: The z panel (about 3 inches wide) writes each value in its cell up to this d_head; wider
#: rows leave too little room per number.
ANNOTATE_MAX_D_HEAD = 8


def _token_rows(trace: Trace, layer: int, token: int, batch: int) -> tuple[np.ndarray, ...]:
    """The (H, Dh) z rows, (D,) concat row and (D,) attn.out row of one token, checked.

    Padding is not attention: a padding token's rows are computed but never used, so asking
    for one raises ``ValueError`` naming the real positions.
    """
    b = f"blocks.{layer}.attn"
    require_names(trace, [f"{b}.z", f"{b}.concat", f"{b}.out"], "multihead_anatomy")
    batch = check_batch(trace, batch, f"{b}.z")
    token = check_index(token, trace[f"{b}.z"].shape[2], "token")
    real = real_positions(trace, batch)
    if not real[token]:
        raise ValueError(
            f"token {token} is padding in batch row {batch}: its attention output is never "
            f"used; pick a real token (positions {np.flatnonzero(real).tolist()})"
        )
    z = trace[f"{b}.z"][batch, :, token]  # (H, Dh)
    return z, trace[f"{b}.concat"][batch, token], trace[f"{b}.out"][batch, token]


def head_contributions(
    trace: Trace, layer: int, token: int, params: Any, *, batch: int = 0
) -> np.ndarray:
    """Each head's share of ``attn.out`` for one token: ``z^h W_O[h·Dh:(h+1)·Dh, :]``.

    Parameters
    ----------
    trace : Trace
        Needs ``blocks.{layer}.attn.z``.
    layer, token : int
    params : dict or Encoder
        The parameters of the model that made the trace (for ``W_O``).
    batch : int

    Returns
    -------
    ndarray of shape (n_heads, d_model); ``contributions.sum(0) + b_O == attn.out[token]``.
    Raises ``ValueError`` for a padding token.
    """
    layer = check_layer(trace, layer)
    z, _, _ = _token_rows(trace, layer, token, batch)
    W_O = head_params(params, layer, trace.config.d_model)["W_O"]
    H, Dh = z.shape
    return np.stack([z[h] @ W_O[h * Dh : (h + 1) * Dh] for h in range(H)])  # (H, D)


def multihead_anatomy(
    trace: Trace,
    layer: int,
    token: int,
    tokens: Sequence[str] | None = None,
    params: Any = None,
    *,
    batch: int = 0,
) -> Figure:
    """For one token: each head's z, their concatenation, W_O, and attention's output.

    Left: the heads' z rows (H × d_head), head labels in the head colours. With ``params``:
    the concatenation drawn as a column (entry i multiplies row i of W_O) beside W_O (its row
    blocks marked per head), then below W_O each head's contribution ``z^h W_O[h-block]``, the
    bias b_O and their sum attn.out, column-aligned with W_O, with bars of each row's norm on
    the right. Without ``params``: the concatenation and attn.out as rows.

    Parameters
    ----------
    trace : Trace
        Needs ``blocks.{layer}.attn.z``, ``.concat``, ``.out``.
    layer : int
    token : int
        Position of the token (from 0); a real token, not padding (``ValueError``).
    tokens : sequence of str, optional
        Token strings (length S), for the title (drawn literally).
    params : dict or Encoder, optional
        Adds W_O and the per-head contributions.
    batch : int

    Returns
    -------
    matplotlib Figure (made without pyplot).
    """
    layer = check_layer(trace, layer)
    z, concat, out = _token_rows(trace, layer, token, batch)
    labels = token_labels(tokens, trace[f"blocks.{layer}.attn.z"].shape[2])
    if params is None:
        fig, z_ax = _rows_layout(concat, out, z.shape[0])
    else:
        parts = head_contributions(trace, layer, token, params, batch=batch)
        W_O = head_params(params, layer, trace.config.d_model)["W_O"]
        b_O = np.asarray(as_params(params)[f"blocks.{layer}.attn.b_O"])
        fig, z_ax = _weights_layout(concat, out, W_O, b_O, parts)
    _draw_head_outputs(z_ax, z)
    title = f"Layer {layer}, token {labels[token]!r} (position {token}): how the heads combine"
    fig.suptitle(title, fontsize=13, **LITERAL)
    return fig


def _rows_layout(concat: np.ndarray, out: np.ndarray, H: int) -> tuple[Figure, Axes]:
    """The figure without parameters: concat and attn.out as rows right of the z panel; returns
    the figure and its z panel, empty."""
    D = concat.shape[0]
    fig = Figure(figsize=(13, max(4.5, 0.3 * H + 2.5)), layout="constrained")
    grid = fig.add_gridspec(2, 2, width_ratios=[1, 3])
    z_ax = fig.add_subplot(grid[:, 0])
    concat_ax = fig.add_subplot(grid[0, 1])
    draw_matrix(concat_ax, concat[None, :], row_labels=["concat"])
    concat_ax.set_title(f"concat = [z of head 0, ..., head {H - 1}]  (1 × {D})")
    _mark_heads(concat_ax, H, D // H, "cols")
    out_ax = fig.add_subplot(grid[1, 1])
    draw_matrix(out_ax, out[None, :], row_labels=["attn.out"])
    out_ax.set_title(f"attn.out = concat W_O + b_O  (1 × {D})  — pass params to see W_O")
    out_ax.set_xlabel(f"d_model ({D})")
    return fig, z_ax


def _weights_layout(
    concat: np.ndarray, out: np.ndarray, W_O: np.ndarray, b_O: np.ndarray, parts: np.ndarray
) -> tuple[Figure, Axes]:
    """The figure with parameters: concat as a column beside W_O, each head's contribution,
    b_O and their sum below W_O with bars of their norms, and the formula; returns the figure
    and its z panel, empty."""
    H, D = parts.shape
    Dh = D // H
    rows = np.vstack([parts, b_O[None, :], out[None, :]])  # (H + 2, D)
    fig = Figure(figsize=(16, 10), layout="constrained")
    grid = fig.add_gridspec(
        2, 4, width_ratios=[2.2, 0.35, 6, 1.6], height_ratios=[5, 1.4 + 0.25 * H]
    )
    z_ax = fig.add_subplot(grid[0, 0])
    concat_ax = fig.add_subplot(grid[0, 1])
    draw_matrix(concat_ax, concat[:, None], colorbar=None)
    concat_ax.set_title(f"concat\n({D} × 1)", fontsize=10)
    _mark_heads(concat_ax, H, Dh, "rows", names=True)
    w_ax = fig.add_subplot(grid[0, 2])
    draw_matrix(w_ax, W_O, colorbar="right")
    _mark_heads(w_ax, H, Dh, "rows")
    w_ax.set_title(f"W_O  ({D} × {D}): head h's z multiplies the rows of block h")
    w_ax.set_xlabel(f"d_model ({D})")
    parts_ax = fig.add_subplot(grid[1, 2])
    row_names = [f"head {h}: z W_O[h]" for h in range(H)] + ["+ b_O", "= attn.out"]
    draw_matrix(parts_ax, rows, row_labels=row_names, colorbar="right")
    parts_ax.axhline(H + 0.5, color="black", lw=1.5)
    for h, tick in enumerate(parts_ax.get_yticklabels()[:H]):
        tick.set_color(head_color(h))
    parts_ax.set_title(f"Each head's contribution, the bias and their sum  ({H + 2} × {D})")
    parts_ax.set_xlabel(f"d_model ({D}); every column adds up to attn.out")
    _draw_row_norms(fig.add_subplot(grid[1, 3]), rows)
    text_ax = fig.add_subplot(grid[1, 0:2])
    text_ax.axis("off")
    text_ax.text(
        0.5,
        0.5,
        "attn.out = concat W_O + b_O\n"
        "         = Σ_h  z^h W_O[h·Dh:(h+1)·Dh]  +  b_O\n\n"
        f"d_head Dh = {Dh}: head h's z meets\nrows h·{Dh} .. (h+1)·{Dh}−1 of W_O",
        ha="center",
        va="center",
        multialignment="left",
        fontsize=11,
        family="monospace",
    )
    return fig, z_ax


def _draw_row_norms(ax: Axes, rows: np.ndarray) -> None:
    """Bars of the norm of each row: the H heads' contributions in their colours, then the
    bias and the sum outlined (they are not heads)."""
    H = rows.shape[0] - 2
    norms = np.linalg.norm(rows, axis=1)
    bars = ax.barh(np.arange(H + 2), norms, color=[head_color(h) for h in range(H)] + 2 * ["white"])
    # the bias and the sum are not heads: outlined, not filled, so no head colour is mistaken
    bars[H].set(edgecolor="black", hatch="///")  # + b_O
    bars[H + 1].set(edgecolor="black", linewidth=2)  # = attn.out
    ax.set_ylim(H + 1.5, -0.5)  # same row order as the matrix beside it
    ax.set_yticks([])
    ax.set_title("norm ‖row‖", fontsize=10)


def _draw_head_outputs(ax: Axes, z: np.ndarray) -> None:
    """The (H, Dh) z rows of the heads, labelled in the head colours."""
    H, Dh = z.shape
    draw_matrix(
        ax,
        z,
        row_labels=[f"head {h}" for h in range(H)],
        colorbar="bottom",
        annotate=Dh <= ANNOTATE_MAX_D_HEAD,
        fmt=".2f",
        fontsize=7,
    )
    for h, tick in enumerate(ax.get_yticklabels()):
        tick.set_color(head_color(h))
    ax.set_title(f"z of each head  ({H} × {Dh})")
    ax.set_xlabel(f"d_head ({Dh})")


def _mark_heads(ax: Any, H: int, Dh: int, axis: str, names: bool = False) -> None:
    """Lines between the heads' blocks of a concat-sized axis; ``names`` labels each block."""
    line = ax.axhline if axis == "rows" else ax.axvline
    for h in range(1, H):
        line(h * Dh - 0.5, color="black", lw=1.0)
    if names:
        ax.set_yticks([h * Dh + (Dh - 1) / 2 for h in range(H)], [f"head {h}" for h in range(H)])
        for h, tick in enumerate(ax.get_yticklabels()):
            tick.set_color(head_color(h))
