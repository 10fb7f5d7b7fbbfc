"""Every head of every layer at once: a layers x heads grid of small attention pictures.

BertViz's "model view", drawn as one static figure: row l holds the heads of layer l, column h
head h. Each thumbnail is either the same picture as :func:`viz.heatmap.attention_heatmap`
(queries down, keys across; ``kind="heatmap"``) or BertViz's lines from queries (left edge) to
keys (right edge; ``kind="lines"``), where a previous-token head draws lines that climb one
row and a self head flat ones, which a small heatmap shows as nearly the same diagonal.
Small enough to scan a whole model for patterns: heads that look at the previous token, at
``[CLS]``, at themselves, or spread evenly.

Colour scales: each thumbnail on its own maximum (written under it, so a head whose largest
weight is 0.3 is not mistaken for a sharp one), or one scale for all (``vmax="shared"`` or a
number) with a colour bar. Padding queries are drawn as masked and never set a scale.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.colors import Normalize, to_rgba
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from minitransformer.trace import Trace
from viz.checks import (
    check_batch,
    check_index,
    check_indices,
    check_span,
    require_names,
)
from viz.style import (
    CHAR_EM,
    HIGHLIGHT_COLOR,
    LITERAL,
    MASKED_COLOR,
    MIN_FONTSIZE,
    POINTS_PER_INCH,
    block_max,
    figure_of,
    grey_padding_labels,
    head_color,
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

#: Largest width and height of one thumbnail, in inches; many heads get smaller ones, so that
#: the figure stays within MAX_FIGURE_INCHES (2400 pixels at 100 dpi).
THUMBNAIL_INCHES = 1.5
MAX_FIGURE_INCHES = 24.0
#: Room around the grid, in inches: layer labels and token labels (width), title and token
#: labels (height).
MARGIN_WIDTH, MARGIN_HEIGHT = 1.9, 1.7
#: White gap between thumbnails, in inches (it holds the "max 0.31" under each thumbnail).
GAP_INCHES = 0.22
#: Font size of the token labels along the bottom and the right of the grid, and of the
#: maxima written under the thumbnails.
TOKEN_FONTSIZE = MIN_FONTSIZE
#: Font size of the title.
TITLE_FONTSIZE = 10.0
#: Font size of the layer and head labels.
HEAD_LABEL_FONTSIZE = 9
#: Line thumbnails draw at most this many lines in all, an equal share per head (each head's
#: strongest); the title says when weaker ones were left out. Lines fainter than MIN_ALPHA are
#: never drawn.
MAX_LINES = 10_000
MIN_ALPHA = 1 / 255
KINDS = ("heatmap", "lines")


def model_view(
    trace: Trace,
    tokens: Sequence[str] | None = None,
    layers: Iterable[int] | None = None,
    heads: Iterable[int] | None = None,
    highlight: Iterable[tuple[int, int]] = (),
    *,
    batch: int = 0,
    vmax: float | str | None = None,
    kind: str = "heatmap",
    span: slice | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Draw the attention weights of many heads as a grid: one row per layer, one column per head.

    For speed at 6 x 12 heads the grid is one axes holding one image per head (placed with
    ``extent``), not one axes per head. Thumbnail (layer row r, head column c) covers
    x from ``c * step - 0.5`` and y from ``r * step - 0.5``, ``n`` cells each way (``n``
    tokens shown, ``step`` = n plus the gap).

    Parameters
    ----------
    trace : Trace
        Needs ``blocks.{l}.attn.weights`` and ``blocks.{l}.attn.mask`` of every layer shown.
    tokens : sequence of str, optional
        Token labels (length S, drawn literally): keys under every column, queries right of
        every row, thinned to what fits a thumbnail. Default: positions 0 .. S-1.
    layers, heads : iterables of int, optional
        Which rows and columns, in this order (default: all layers, all heads).
    highlight : iterable of (layer, head)
        Heads to frame in :data:`viz.style.HIGHLIGHT_COLOR` (each must be in the grid).
    batch : int
        Which sequence of the batch. Its padding queries are drawn as masked (grey) and never
        set a colour scale.
    vmax : float, "shared" or None
        ``None`` (default): each thumbnail scaled to its own largest weight, which shows the
        *shape* of every pattern, even of heads that spread their weight thinly; that maximum
        is written under the thumbnail. ``"shared"``: one scale from 0 to the largest weight
        in the grid; a number: one scale ``[0, vmax]`` (``1.0`` compares heads absolutely).
        One scale comes with a colour bar (heatmaps).
    kind : {"heatmap", "lines"}
        Heatmap thumbnails, or BertViz's lines from each query (left edge) to the keys (right
        edge) in the head's colour, opacity = weight / top of the scale (at most
        :data:`MAX_LINES` in all, an equal share per head: its strongest); padding queries
        are a grey band.
    span : slice, optional
        Show only these positions (``slice(0, 32)``), as queries and keys.
    ax : matplotlib Axes, optional
        Where to draw the grid; default: a new figure sized to hold it (at most 24 inches,
        2400 pixels at 100 dpi, on its long side).

    Returns
    -------
    matplotlib Figure. ``fig.axes[0].images`` holds the heatmap thumbnails in row-major order
    (layer by layer, head by head), each with the (n, n) weights of its head as data and masked
    cells (masked keys, padding queries) masked (grey) -- or, with more tokens than a
    thumbnail has pixels, their block maxima (:func:`viz.style.block_max`, said in the
    title); ``kind="lines"`` draws one
    ``LineCollection`` and an invisible image per head instead (its extent marks the
    thumbnail). The layer and head labels (and the maxima) are texts of that axes.
    """
    layers = check_indices(layers, trace.config.n_layers, "layers", "layer")
    heads = check_indices(heads, trace.config.n_heads, "heads", "head")
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    names = [f"blocks.{l}.attn.{part}" for l in layers for part in ("weights", "mask")]
    require_names(trace, names, figure="the model view")
    batch = check_batch(trace, batch, names[0])
    framed = _check_highlight(highlight, layers, heads, trace)
    S = trace[names[0]].shape[-1]
    labels = token_labels(tokens, S)
    shown = check_span(span, S)
    real = real_positions(trace, batch)
    n = len(shown)
    patterns = _patterns(trace, layers, batch, shown, real)  # per layer: (H, n, n), (n, n)
    shared = _scale(vmax, patterns, heads)

    n_rows, n_cols = len(layers), len(heads)
    thumb = _thumbnail_inches(n_rows, n_cols)
    own_figure = ax is None
    if ax is None:
        ax = _grid_axes(n_rows, n_cols, thumb, bar=shared is not None and kind == "heatmap")
    fig = figure_of(ax)
    # More tokens than pixels: each pixel shows the largest weight of its block of tokens.
    grid = _Grid(n, gap=n * GAP_INCHES / thumb, factor=max(1, -(-n // round(thumb * fig.dpi))))
    image, lines = None, _Lines(per_head=max(1, MAX_LINES // (n_rows * n_cols)))
    padding_runs = _runs(~real[shown.start : shown.stop])
    for r, (layer, (weights, mask)) in enumerate(zip(layers, patterns, strict=True)):
        for c, head in enumerate(heads):
            x0, y0 = grid.corner(r, c)
            top = weight_limit(weights[head], mask) if shared is None else shared
            image = ax.imshow(
                block_max(weights[head], mask, grid.factor),
                cmap=weights_cmap(),
                norm=Normalize(0.0, top),
                interpolation="nearest",
                extent=(x0, x0 + grid.cover, y0 + grid.cover, y0),
                visible=kind == "heatmap",
            )
            if kind == "lines":
                lines.add(weights[head] * mask / top, x0, y0, head_color(head))
                _draw_padding_bands(ax, grid, x0, y0, padding_runs)
            _mark_thumbnail(
                ax, grid, x0, y0, top if shared is None else None, (layer, head) in framed
            )
            if r == 0:
                _label(ax, f"head {head}", (x0 + n / 2, y0), (0, 3), ha="center", va="bottom")
        _label(
            ax,
            f"layer {layer}",
            (-0.5, r * grid.step + n / 2 - 0.5),
            (-4, 0),
            ha="right",
            va="center",
        )
    drawn, visible = lines.draw(ax)
    ax.set_xlim(-0.5, (n_cols - 1) * grid.step + n - 0.5)
    ax.set_ylim((n_rows - 1) * grid.step + n - 0.5 + (grid.gap if shared is None else 0), -0.5)
    ax.set_aspect("equal")
    for spine in ax.spines.values():
        spine.set_visible(False)
    _token_ticks(ax, labels, real, shown, grid.step, n_rows, n_cols, thumb, kind)
    if shared is not None and image is not None and kind == "heatmap":
        bar = fig.colorbar(image, ax=ax, shrink=0.6, pad=0.02)
        bar.set_label("attention weight")
    title = _title(
        n_rows, n_cols, vmax, shared, kind, span_note(shown, S), drawn, visible, lines.per_head
    )
    if grid.factor > 1 and kind == "heatmap":
        title += f"\neach pixel: the largest weight of {grid.factor} x {grid.factor} tokens"
    title = _wrap(title, fig.get_figwidth())
    if own_figure:  # a title above everything, which the layout keeps clear of the head labels
        fig.suptitle(title, fontsize=TITLE_FONTSIZE)
    else:
        ax.set_title(title, fontsize=TITLE_FONTSIZE, pad=16)
    return fig


def _thumbnail_inches(n_rows: int, n_cols: int) -> float:
    """The side of a thumbnail: :data:`THUMBNAIL_INCHES`, smaller when the grid would be wider
    or taller than :data:`MAX_FIGURE_INCHES`."""
    return float(
        min(
            THUMBNAIL_INCHES,
            (MAX_FIGURE_INCHES - MARGIN_WIDTH) / n_cols - GAP_INCHES,
            (MAX_FIGURE_INCHES - MARGIN_HEIGHT) / n_rows - GAP_INCHES,
        )
    )


def _grid_axes(n_rows: int, n_cols: int, thumb: float, bar: bool) -> Axes:
    """The axes of a new figure sized to hold the grid (and a colour bar: ``bar``)."""
    bar_inches = 0.9 if bar else 0.0
    width = max(4.0, n_cols * (thumb + GAP_INCHES) + MARGIN_WIDTH + bar_inches)
    height = n_rows * (thumb + GAP_INCHES) + MARGIN_HEIGHT
    return Figure(figsize=(width, height), layout="constrained").add_subplot()


@dataclass(frozen=True)
class _Grid:
    """Where the thumbnails go, in cells of the axes: ``n`` cells a side, ``gap`` cells apart;
    each pixel the largest weight of ``factor`` x ``factor`` cells."""

    n: int
    gap: float
    factor: int

    @property
    def step(self) -> float:
        """From one thumbnail to the next."""
        return self.n + self.gap

    @property
    def cover(self) -> int:
        """The cells a (pooled) image covers: ``n`` rounded up to whole blocks."""
        return -(-self.n // self.factor) * self.factor  # ceiling division

    def corner(self, row: int, column: int) -> tuple[float, float]:
        """The top-left corner of the thumbnail in grid ``row`` and ``column``."""
        return column * self.step - 0.5, row * self.step - 0.5


def _draw_padding_bands(
    ax: Axes, grid: _Grid, x0: float, y0: float, runs: list[tuple[int, int]]
) -> None:
    """A line thumbnail's padding queries: a grey band each run, and no line."""
    for start, stop in runs:
        ax.add_patch(
            Rectangle((x0, y0 + start), grid.n, stop - start, lw=0, facecolor=MASKED_COLOR)
        )


def _mark_thumbnail(
    ax: Axes, grid: _Grid, x0: float, y0: float, top: float | None, framed: bool
) -> None:
    """The frame of a highlighted head (``framed``), and its maximum ``top`` written under it
    (None: one scale for all, nothing written)."""
    n = grid.n
    if framed:
        frame = Rectangle(
            (x0, y0), n, n, fill=False, lw=2.5, edgecolor=HIGHLIGHT_COLOR, clip_on=False
        )
        ax.add_patch(frame)
    if top is not None:
        ax.text(
            x0,
            y0 + n + 0.08 * grid.gap,
            f"max {top:.2f}",
            ha="left",
            va="top",
            fontsize=TOKEN_FONTSIZE,
            color="#404040",
        )


def _label(
    ax: Axes, text: str, xy: tuple[float, float], offset: tuple[int, int], ha: str, va: str
) -> None:
    """A head or layer label, ``offset`` points from ``xy``, aligned by ``ha`` and ``va``."""
    ax.annotate(
        text,
        xy,
        xytext=offset,
        textcoords="offset points",
        ha=ha,
        va=va,
        fontsize=HEAD_LABEL_FONTSIZE,
    )


def _wrap(title: str, inches: float) -> str:
    """Each line of ``title`` broken into lines that fit ``inches`` at :data:`TITLE_FONTSIZE`
    (a character is :data:`~viz.style.CHAR_EM` em wide)."""
    width = int(inches * POINTS_PER_INCH / (CHAR_EM * TITLE_FONTSIZE))
    return "\n".join(textwrap.fill(line, width) for line in title.split("\n"))


def _patterns(
    trace: Trace, layers: list[int], batch: int, shown: range, real: np.ndarray
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per layer: the (H, n, n) weights of the positions shown, and the (n, n) cells drawn
    as weights (masked keys and padding queries left out)."""
    S = trace[f"blocks.{layers[0]}.attn.weights"].shape[-1]
    window = np.ix_(shown, shown)
    out = []
    for layer in layers:
        weights = trace[f"blocks.{layer}.attn.weights"][batch][:, shown.start : shown.stop]
        mask = np.broadcast_to(trace[f"blocks.{layer}.attn.mask"][batch, 0], (S, S))
        out.append((weights[..., shown.start : shown.stop], shown_mask(mask, real)[window]))
    return out


def _scale(
    vmax: float | str | None, patterns: list[tuple[np.ndarray, np.ndarray]], heads: list[int]
) -> float | None:
    """The one top of the colour scale (None: each thumbnail on its own maximum)."""
    if vmax is None:
        return None
    if vmax == "shared":
        return max(weight_limit(w[h], m) for w, m in patterns for h in heads)
    if isinstance(vmax, bool) or not isinstance(vmax, int | float | np.floating | np.integer):
        raise TypeError(f'vmax must be a number, "shared" or None, got {vmax!r}')
    if not 0 < vmax < np.inf:
        raise ValueError(f"vmax must be a positive number, got {vmax!r}")
    return float(vmax)


class _Lines:
    """The lines of the line thumbnails, collected head by head and drawn as one collection.

    Each thumbnail draws at most ``per_head`` lines, its strongest: a share of
    :data:`MAX_LINES` for every head, so that no head is left blank because others are
    sharper, and 72 heads at 512 tokens (19 million query-key pairs) stay quick.
    """

    def __init__(self, per_head: int) -> None:
        self.per_head = per_head
        self.segments: list[np.ndarray] = []  # (n, 2, 2) per thumbnail
        self.colors: list[np.ndarray] = []  # (n, 4) per thumbnail: RGBA
        self.visible = 0  # lines at least MIN_ALPHA opaque, before any thinning

    def add(self, alpha: np.ndarray, x0: float, y0: float, colour: str) -> None:
        """The lines of one thumbnail: query i (left edge, row i) to key j (right edge, row j),
        opacity ``alpha[i, j]`` (weight / top of the scale; 0 for masked cells)."""
        n = alpha.shape[0]
        i, j = np.nonzero(alpha >= MIN_ALPHA)  # row-major: query by query, key by key
        self.visible += len(i)
        if len(i) > self.per_head:  # this head's strongest lines, in the same order
            strongest = np.sort(np.argpartition(alpha[i, j], -self.per_head)[-self.per_head :])
            i, j = i[strongest], j[strongest]
        lines = np.empty((len(i), 2, 2))
        lines[:, 0, 0], lines[:, 0, 1] = x0, y0 + 0.5 + i
        lines[:, 1, 0], lines[:, 1, 1] = x0 + n, y0 + 0.5 + j
        rgba = np.tile(np.array(to_rgba(colour)), (len(i), 1))
        rgba[:, 3] = np.minimum(alpha[i, j], 1.0)
        self.segments.append(lines)
        self.colors.append(rgba)

    def draw(self, ax: Axes) -> tuple[int, int]:
        """Draw the lines; return (drawn, visible) line counts."""
        if not self.segments:
            return 0, 0
        segments, colors = np.concatenate(self.segments), np.concatenate(self.colors)
        ax.add_collection(
            LineCollection(segments, colors=colors, linewidths=0.8),  # type: ignore[arg-type]
            autolim=False,
        )
        return len(segments), self.visible


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """The runs ``(start, stop)`` of consecutive True entries of a 1-D bool array."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], flags.astype(np.int8), [0]])))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def _token_ticks(
    ax: Axes,
    labels: list[str],
    real: np.ndarray,
    shown: range,
    step: float,
    n_rows: int,
    n_cols: int,
    thumb: float,
    kind: str,
) -> None:
    """Token labels: keys under every column (heatmaps), queries right of every row, every
    k-th token when a thumbnail cannot hold them all; padding tokens grey."""
    n = len(shown)
    rows = label_positions(n, max_labels=labels_that_fit(thumb, TOKEN_FONTSIZE))
    names = [labels[shown.start + t] for t in rows]
    if kind == "heatmap":
        ax.set_xticks(
            [c * step + t for c in range(n_cols) for t in rows],
            names * n_cols,
            rotation=90,
            **LITERAL,
        )
    else:
        ax.set_xticks([])
    ax.set_yticks([r * step + t for r in range(n_rows) for t in rows], names * n_rows, **LITERAL)
    ax.yaxis.tick_right()
    ax.tick_params(length=0, labelsize=TOKEN_FONTSIZE, pad=1)
    positions = [shown.start + t for t in rows]  # (after tick_right: the labels drawn)
    if kind == "heatmap":
        grey_padding_labels(ax.get_xticklabels(), positions * n_cols, real)
    grey_padding_labels(ax.get_yticklabels(), positions * n_rows, real)


def _title(
    n_rows: int,
    n_cols: int,
    vmax: float | str | None,
    shared: float | None,
    kind: str,
    note: str,
    drawn: int,
    visible: int,
    per_head: int,
) -> str:
    """The title: the grid, how to read a thumbnail, its scale, the span and any thinning."""
    grid = f"Attention weights, {plural(n_rows, 'layer')} x {plural(n_cols, 'head')}"
    reading = (
        "queries down, keys across"
        if kind == "heatmap"
        else "lines from queries (left) to keys (right)"
    )
    if shared is None:
        scale = "each map on its own maximum (written under it)"
    elif vmax == "shared":
        scale = f"one colour scale, 0 to the largest weight {shared:.2f}"
    else:
        scale = f"one colour scale, 0 to {shared:g}"
    if kind == "lines":
        scale = scale.replace("colour scale", "scale").replace("map", "head") + "; opacity = weight"
    lines = [f"{grid}{', ' + note if note else ''}", f"{reading}; {scale}"]
    if drawn < visible:
        lines.append(
            f"at most {per_head:,} lines per head, its strongest: {drawn:,} of {visible:,} drawn"
        )
    return "\n".join(lines)


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
            raise ValueError(
                f"highlight {(layer, head)} is not in the grid (layers {layers}, heads {heads})"
            )
        framed.add((layer, head))
    return framed
