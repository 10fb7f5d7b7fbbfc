"""Matrices drawn as images, and redrawn in place: the drawing shared by the step-by-step figures,
the query breakdown and the multi-head anatomy.

:func:`draw_matrix` draws a 2-D array with the colours of :mod:`viz.style` (the diverging map
for signed values, the attention map for weights), hatches masked cells, greys padding rows,
labels tokens literally and writes values in cells; :func:`update_matrix` puts new values into
a matrix already drawn (an interactive view swaps data rather than building a figure anew);
:func:`color_scale` is the colour limits both use. :func:`set_figure_texts` changes a figure's
title and bottom label in place.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import matplotlib as mpl
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colorbar import Colorbar
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from matplotlib.text import Text

from viz.heatmap import hatch_masked
from viz.style import (
    LITERAL,
    MASKED_COLOR,
    MAX_LABELS,
    SIGNED_CMAP,
    label_positions,
    signed_limit,
    weights_cmap,
)

#: A format for the numbers in cells: a format spec (``".2f"``) or a function of the value.
Format = str | Callable[[float], str]


def short_number(value: float) -> str:
    """A value in at most 5 characters for a cell: ``"-37"``, ``"4.7"``, ``"-0.52"``."""
    size = abs(value)
    if size >= 9.5:
        return f"{value:.0f}"
    if size >= 0.995:
        return f"{value:.1f}"
    return f"{value:.2f}"


def format_value(value: float, fmt: Format) -> str:
    """``value`` written with ``fmt``: a format spec (``".2f"``) or a function of the value."""
    return fmt(float(value)) if callable(fmt) else format(value, fmt)


def draw_matrix(
    ax: Axes,
    array: np.ndarray,
    *,
    kind: str = "signed",
    mask: np.ndarray | None = None,
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
    annotate: bool = False,
    colorbar: str | None = "bottom",
    limit: float | None = None,
    fmt: Format = ".2g",
    fontsize: float | None = None,
    max_labels: int = MAX_LABELS,
    grey_rows: np.ndarray | None = None,
    label_size: float | None = None,
) -> None:
    """Draw a 2-D array as an image on ``ax``.

    ``kind="signed"``: the diverging map :data:`~viz.style.SIGNED_CMAP`, white at 0 and
    symmetric limits ±``limit`` (default :func:`~viz.style.signed_limit`: max|value|, or the
    99th percentile of |value| when outliers exceed it :data:`~viz.style.OUTLIER_RATIO` times;
    the colour bar then shows arrows for the clipped values). ``kind="weights"``:
    :func:`~viz.style.weights_cmap` from 0 to ``limit`` (default the largest value).
    Cells where ``mask`` is True are grey and hatched; rows where ``grey_rows`` is True
    (padding) are grey, not hatched; neither has its value written or sets the colour scale.
    Labels are drawn literally (a token ``"$x$"`` is not mathtext), ``label_size`` points,
    thinned for long axes (at most ``max_labels`` per axis, each on the row it names);
    ``annotate`` writes each value in its cell (format ``fmt``, a spec or a function, size
    ``fontsize``, default from the number of cells, at least 7 points); ``colorbar`` is
    ``"bottom"``, ``"right"`` or ``None``.
    """
    hidden = hidden_cells(array.shape, mask, grey_rows)
    shown = np.ma.masked_array(array, mask=hidden)
    vmin, vmax, clipped = color_scale(array, kind, hidden, limit)
    cmap = (
        weights_cmap()
        if kind == "weights"
        else mpl.colormaps[SIGNED_CMAP].with_extremes(bad=MASKED_COLOR)
    )
    image = ax.imshow(
        shown, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto", interpolation="nearest"
    )
    if mask is not None:
        hatched = np.asarray(mask, bool) & ~_row_mask(array.shape, grey_rows)
        hatch_masked(ax, ~hatched)
    for labels, set_ticks, n in (
        (row_labels, ax.set_yticks, array.shape[0]),
        (col_labels, ax.set_xticks, array.shape[1]),
    ):
        if labels is None:
            set_ticks([])
        else:
            ticks = label_positions(n, max_labels)
            rotation = 90 if set_ticks == ax.set_xticks else 0
            set_ticks(ticks, [labels[t] for t in ticks], rotation=rotation, **LITERAL)
            if label_size is not None:
                ax.tick_params(axis="x" if rotation else "y", labelsize=label_size)
    if annotate:
        rows, cols = array.shape
        size = float(np.clip(140 / max(rows, cols, 1), 7, 9)) if fontsize is None else fontsize
        for i, j in _annotated_cells(shown):
            ax.text(
                j,
                i,
                format_value(array[i, j], fmt),
                ha="center",
                va="center",
                fontsize=size,
                color=_text_color(array[i, j], vmin, vmax),
            )
    if colorbar is not None:
        fig = ax.get_figure(root=True)
        assert fig is not None
        horizontal = colorbar == "bottom"
        extend = "both" if clipped else "neither"
        bar = fig.colorbar(
            image,
            ax=ax,
            location=colorbar,
            shrink=0.8,
            extend=extend,
            aspect=_bar_aspect(horizontal),
            pad=0.02,
        )
        bar.ax.tick_params(labelsize=7)


def _row_mask(shape: tuple[int, ...], grey_rows: np.ndarray | None) -> np.ndarray:
    """``grey_rows`` (rows,) spread over every column of a ``shape`` matrix."""
    if grey_rows is None:
        return np.zeros(shape, bool)
    return np.broadcast_to(np.asarray(grey_rows, bool)[:, None], shape)


def hidden_cells(
    shape: tuple[int, ...], mask: np.ndarray | None, grey_rows: np.ndarray | None
) -> np.ndarray:
    """The cells drawn without a value: masked keys and grey (padding) rows."""
    hidden = _row_mask(shape, grey_rows).copy()
    if mask is not None:
        hidden |= np.asarray(mask, bool)
    return hidden


def color_scale(
    array: np.ndarray,
    kind: str = "signed",
    mask: np.ndarray | None = None,
    limit: float | None = None,
) -> tuple[float, float, bool]:
    """The colour limits ``(vmin, vmax)`` :func:`draw_matrix` uses for ``array`` (cells where
    ``mask`` is True left out), and whether some values lie beyond them (the colour bar then
    has arrows). See :func:`draw_matrix`."""
    shown = np.ma.masked_array(array, mask=np.zeros(array.shape, bool) if mask is None else mask)
    values = shown.compressed()
    if kind == "weights":
        top = (float(values.max()) if values.size else 1.0) if limit is None else limit
        return 0.0, max(top, 1e-12), False
    top = signed_limit(np.abs(values)) if limit is None else limit
    clipped = bool(values.size) and float(np.max(np.abs(values))) > top
    top = max(top, 1e-12)
    return -top, top, clipped


def _annotated_cells(shown: np.ma.MaskedArray) -> list[tuple[int, int]]:
    """The cells that get their value written, row by row: every cell that is not masked."""
    return [(int(i), int(j)) for i, j in np.argwhere(~np.ma.getmaskarray(shown))]


def _text_color(value: float, vmin: float, vmax: float) -> str:
    """White on dark cells (beyond 60 % of the colour scale), black elsewhere."""
    return "white" if abs(value) > 0.6 * max(abs(vmin), vmax) else "black"


def update_matrix(
    ax: Axes,
    array: np.ndarray,
    *,
    kind: str = "signed",
    mask: np.ndarray | None = None,
    annotate: bool = False,
    limit: float | None = None,
    fmt: Format = ".2g",
    grey_rows: np.ndarray | None = None,
) -> None:
    """Show new values in a matrix drawn by :func:`draw_matrix`, without drawing it anew.

    Why: building a figure (axes, ticks, colour bars, layout) costs several times more than
    drawing it, so an interactive view (:mod:`viz.explorer`) that shows another head or
    another query in the same figure swaps the data instead. The result is what
    :func:`draw_matrix` would draw with the same arguments: the image's values and colour
    limits (its colour bar follows, arrows included), and the numbers written in the cells.
    ``array`` must have the shape, ``mask`` and ``grey_rows`` the hidden cells and
    ``annotate`` the value of the first drawing (the texts written in the cells are
    rewritten, not added).
    """
    hidden = hidden_cells(array.shape, mask, grey_rows)
    shown = np.ma.masked_array(array, mask=hidden)
    vmin, vmax, clipped = color_scale(array, kind, hidden, limit)
    image = ax.images[0]
    drawn = np.shape(np.asarray(image.get_array()))
    if drawn != shown.shape:
        raise ValueError(
            f"array has shape {array.shape} but the matrix drawn has shape {drawn}: "
            "draw it anew with draw_matrix"
        )
    image.set_data(shown)
    image.set_clim(vmin, vmax)
    extend: Literal["neither", "both"] = "both" if clipped else "neither"
    if image.colorbar is not None and image.colorbar.extend != extend:
        _replace_colorbar(image, image.colorbar, extend)
    if annotate:
        for text, (i, j) in zip(ax.texts, _annotated_cells(shown), strict=False):
            text.set_text(format_value(array[i, j], fmt))
            text.set_color(_text_color(array[i, j], vmin, vmax))


def _replace_colorbar(image: AxesImage, bar: Colorbar, extend: Literal["neither", "both"]) -> None:
    """A new colour bar for ``image`` in the place of ``bar``, with arrows ``extend``.

    matplotlib cannot change the arrows of a colour bar once made, so :func:`update_matrix`
    makes the bar anew on the same axes (keeping its place on the page) when the values now
    do (or no longer) go beyond the colour limits.
    """
    # the old bar stops following the image (matplotlib keeps its callback id on the image)
    image.callbacks.disconnect(image.colorbar_cid)  # type: ignore[attr-defined]
    cax = bar.ax
    cax.set_axes_locator(None)  # type: ignore[arg-type]  # the old bar's placer, which made room for its arrows...
    horizontal = bar.orientation == "horizontal"
    aspect = _bar_aspect(horizontal)  # ...by changing the length : thickness ratio: restore it
    cax.set_box_aspect(1 / aspect if horizontal else aspect)
    cax.clear()
    Colorbar(cax, image, orientation=bar.orientation, extend=extend, ticklocation=bar.ticklocation)
    cax.tick_params(labelsize=7)  # as draw_matrix


def _bar_aspect(horizontal: bool) -> float:
    """Length : thickness of draw_matrix's colour bars."""
    return 30.0 if horizontal else 20.0


# -- figure texts, changed in place -------------------------------------------------------------

#: The ``gid`` of a figure's title and bottom label, given when they are made
#: (``fig.suptitle(text, gid=SUPTITLE)``), so that :func:`figure_text` finds them again.
SUPTITLE, SUPXLABEL = "suptitle", "supxlabel"


def figure_text(fig: Figure, gid: str) -> Text:
    """The figure-level text made with ``gid`` (:data:`SUPTITLE` or :data:`SUPXLABEL`).

    Raises ``ValueError`` when the figure has none (it was not made by this package)."""
    found = [text for text in fig.texts if text.get_gid() == gid]
    if not found:
        raise ValueError(f"the figure has no text with gid {gid!r}: make it with gid={gid!r}")
    return found[0]


def set_figure_texts(fig: Figure, suptitle: str, supxlabel: str | None = None) -> None:
    """Change the words of ``fig``'s title (and bottom label), keeping their places.

    ``fig.suptitle(text)`` would also move the title back to its default height, undoing the
    constrained layout that placed it, in a figure updated in place after its layout was
    fixed; so the texts themselves are changed, found by their ``gid`` (:func:`figure_text`).
    """
    figure_text(fig, SUPTITLE).set_text(suptitle)
    if supxlabel is not None:
        figure_text(fig, SUPXLABEL).set_text(supxlabel)
