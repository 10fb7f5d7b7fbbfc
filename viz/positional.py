"""Positional encodings in three pictures: the table, a few of its columns, and its geometry.

Attention alone cannot tell word order apart, so the encoder adds a vector per position
(:mod:`minitransformer.positional`). The figure shows that table three ways: as a matrix
(positions down, dimensions across); a few dimensions as curves over position (the
sinusoids of Vaswani et al., or whatever a learned table became); and the similarity of every
pair of positions, which shows that nearby positions get similar vectors.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from matplotlib.figure import Figure

from minitransformer.encoder import Encoder
from minitransformer.positional import sinusoidal_positional_encoding
from minitransformer.trace import Trace
from viz.checks import (
    check_index,
    require_names,
)
from viz.style import (
    SIGNED_CMAP,
    signed_limit,
)

SIMILARITIES = ("cosine", "dot")


def positional_table(source: Trace | Encoder | np.ndarray) -> tuple[np.ndarray, str]:
    """The (positions, d_model) table to draw and a name for it.

    Parameters
    ----------
    source : Trace, Encoder or ndarray
        A trace (its ``embed.positions``: the rows added to this input), an encoder (its
        learned ``embed.W_pos``, or the sinusoidal table of its config, ``max_len`` rows), or a
        2-D array such as ``sinusoidal_positional_encoding(64, 32)``.
    """
    if isinstance(source, Trace | Encoder):
        config = source.config
        if config.positional == "none":
            raise ValueError(
                'the encoder has positional="none": it adds no positional encoding to draw'
            )
        kind = (
            "learned position embeddings"
            if config.positional == "learned"
            else ("sinusoidal positional encoding")
        )
        if isinstance(source, Trace):
            require_names(source, ["embed.positions"], figure="the positional encoding figure")
            return np.asarray(source["embed.positions"]), f"{kind} (embed.positions)"
        if config.positional == "learned":
            return np.asarray(source.params["embed.W_pos"]), f"{kind} (embed.W_pos)"
        return sinusoidal_positional_encoding(config.max_len, config.d_model), kind
    if isinstance(source, np.ndarray):
        if source.ndim != 2 or 0 in source.shape:
            raise ValueError(
                f"a positional table must be a non-empty 2-D array (positions, d_model), "
                f"got shape {source.shape}"
            )
        return source, "positional encoding"
    raise TypeError(
        f"source must be a Trace, an Encoder or a 2-D ndarray, got {type(source).__name__}"
    )


def default_dims(d_model: int) -> list[int]:
    """Dimensions worth plotting: a sine/cosine pair (0, 1), then two slower ones."""
    return sorted({d for d in (0, 1, 2 * (d_model // 8), 2 * (d_model // 4)) if d < d_model})


def positional_encoding(
    source: Trace | Encoder | np.ndarray,
    *,
    positions: int | None = None,
    dims: Iterable[int] | None = None,
    similarity: str = "cosine",
) -> Figure:
    """Draw a positional table: matrix, a few dimensions over position, position similarity.

    Parameters
    ----------
    source : Trace, Encoder or ndarray of shape (positions, d_model)
        See :func:`positional_table`: works the same for sinusoidal and learned tables.
    positions : int, optional
        Show only the first ``positions`` rows (default: all of them).
    dims : iterable of int, optional
        Which columns to plot as curves (default: :func:`default_dims`).
    similarity : {"cosine", "dot"}
        Right panel: ``cos(p_i, p_j)`` (scale -1 .. 1) or the dot product ``p_i . p_j``.

    Returns
    -------
    matplotlib Figure with three axes (matrix, curves, similarity) and two colour bars. The
    matrix is coloured from -top to top with ``top`` = :func:`viz.style.signed_limit` (the 99th
    percentile of |value| when a few outliers would wash out the rest, as in MiniLM's learned
    table; its colour bar then has arrows at both ends).
    """
    table, name = positional_table(source)
    if positions is not None:
        if isinstance(positions, bool) or not isinstance(positions, int | np.integer):
            raise TypeError(f"positions must be an int, got {type(positions).__name__}")
        if not 1 <= positions <= table.shape[0]:
            raise ValueError(
                f"positions must be in 1 .. {table.shape[0]} (the rows of the "
                f"table), got {positions}"
            )
        table = table[:positions]
    n_positions, d_model = table.shape
    dims = (
        default_dims(d_model)
        if dims is None
        else [check_index(d, d_model, "dims entry") for d in dims]
    )
    if similarity not in SIMILARITIES:
        raise ValueError(f"similarity must be one of {SIMILARITIES}, got {similarity!r}")

    fig = Figure(figsize=(15.5, 4.8), layout="constrained")
    ax_matrix, ax_curves, ax_similarity = fig.subplots(1, 3, width_ratios=[1.15, 1.1, 1.0])

    # A few huge entries (MiniLM's learned table) would wash out the rest: the colour scale
    # stops at the 99th percentile of |value| then, and the colour bar's arrows say so.
    top = signed_limit(np.abs(table)) or 1.0
    clipped = float(np.abs(table).max()) > top
    image = ax_matrix.imshow(
        table, cmap=SIGNED_CMAP, vmin=-top, vmax=top, aspect="auto", interpolation="nearest"
    )
    ax_matrix.set(
        xlabel="dimension",
        ylabel="position",
        title=f"Encoding matrix ({n_positions} positions x {d_model} dims)",
    )
    bar = fig.colorbar(image, ax=ax_matrix, shrink=0.85, extend="both" if clipped else "neither")
    bar.set_label(f"value (clipped at ±{top:.2g})" if clipped else "value")

    for d in dims:
        ax_curves.plot(np.arange(n_positions), table[:, d], lw=1.6, label=f"dim {d}")
    ax_curves.axhline(0.0, color="#bfbfbf", lw=0.8)
    ax_curves.set(xlabel="position", ylabel="value", title="A few dimensions over position")
    ax_curves.legend(fontsize=8, loc="upper right")

    products = table @ table.T  # (positions, positions): p_i . p_j
    if similarity == "cosine":
        norms = np.linalg.norm(table, axis=1)
        products = products / np.maximum(np.outer(norms, norms), 1e-12)
        scale, title = 1.0, "Cosine similarity of positions"
    else:
        scale, title = float(np.abs(products).max()) or 1.0, "Dot product of positions"
    image = ax_similarity.imshow(
        products, cmap=SIGNED_CMAP, vmin=-scale, vmax=scale, interpolation="nearest"
    )
    ax_similarity.set(xlabel="position j", ylabel="position i", title=title)
    fig.colorbar(image, ax=ax_similarity, shrink=0.85).set_label(similarity)
    fig.suptitle(name[0].upper() + name[1:])
    return fig
