"""Query–key space (AttentionViz): one head's queries and keys as points of one plane.

A query attends to the keys it has a large dot product with. Drawing queries and keys in the
same picture shows that directly: after the normalisation below, a query tends to sit near
the keys it attends to, and clusters show which kinds of tokens find each other. Following
AttentionViz (Yeh et al. 2023, arXiv 2305.03210; the authors' ``generate_data`` notebooks):

1. **Translate** the keys to the queries' centroid: ``k ← k − mean(k) + mean(q)``. For one
   query, ``q · (k_j + c)`` adds the same ``q · c`` to every score, so its softmax — its
   attention — is unchanged (the order of its scores too).
2. **Scale**: ``c = sqrt(mean‖q‖ / mean‖k‖)``, keys ``× c`` and queries ``÷ c``. Every dot
   product ``(q / c) · (k c) = q · k`` is unchanged, and queries and keys now have the same
   mean norm, so neither cloud is a speck beside the other.
3. **Project** queries and keys *jointly* onto their top two principal components (PCA with
   NumPy's SVD), so distances in the plane are comparable between the two kinds of point.

The q, k and weights are read from the trace; the normalisation and PCA are in
:mod:`minitransformer.interpret.qk_space` (:func:`normalize_qk`, :func:`qk_projection`), shared
with the TensorBoard projector.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.artist import Artist
from matplotlib.backend_bases import RendererBase
from matplotlib.collections import LineCollection, PathCollection
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patheffects import withStroke
from matplotlib.text import Annotation
from matplotlib.transforms import Bbox

from minitransformer.interpret.qk_space import QKProjection, qk_projection
from minitransformer.trace import Trace
from viz.checks import (
    check_batch,
    check_layer_head,
    require_names,
)
from viz.style import (
    LITERAL,
    real_positions,
    token_labels,
)

#: Colours of queries and keys (AttentionViz's green and pink).
QUERY_COLOR = "#1b9e77"
KEY_COLOR = "#e7298a"
#: Colour of the lines joining a query to the keys it attends to most.
LINE_COLOR = "#444444"
#: Points are labelled with their token when there are at most this many queries.
MAX_POINT_LABELS = 80
#: A white outline around each label, so it stays readable on top of a line.
LABEL_HALO = [withStroke(linewidth=2.5, foreground="white")]
#: Where a point's label may go, tried in this order: (offset in points, alignment). A label
#: that fits in none of these places without overlapping another label is not drawn.
LABEL_PLACES = (
    ((4, 3), "left", "bottom"),
    ((4, -3), "left", "top"),
    ((-4, 3), "right", "bottom"),
    ((-4, -3), "right", "top"),
    ((6, 0), "left", "center"),
    ((-6, 0), "right", "center"),
    ((0, 6), "center", "bottom"),
    ((0, -6), "center", "top"),
)
#: How far each alignment moves a label's box from its anchor, in widths (left, centre,
#: right) or heights (bottom, centre, top): "right" puts the box's right edge at the anchor.
ALIGNMENT_SHIFT = {"left": 0.0, "bottom": 0.0, "center": 0.5, "right": 1.0, "top": 1.0}


def _sequence_tokens(
    tokens: Sequence[str] | Sequence[Sequence[str]] | None, batches: list[int], S: int, B: int
) -> list[list[str]]:
    """Token labels of each shown sequence (flat list: one sequence; nested: one per batch)."""
    if tokens is None:
        return [token_labels(None, S) for _ in batches]
    if len(tokens) > 0 and all(isinstance(t, str) for t in tokens):
        if len(batches) != 1:
            raise ValueError(
                f"tokens is one sequence but {len(batches)} sequences are shown: pass a list of "
                f"{B} token lists, or batch= to show one sequence"
            )
        return [token_labels([str(t) for t in tokens], S)]
    if len(tokens) != B:
        raise ValueError(f"tokens has {len(tokens)} sequences but the trace has batch size {B}")
    return [token_labels([str(t) for t in tokens[b]], S, name=f"tokens[{b}]") for b in batches]


def _point_names(names: list[str], positions: np.ndarray) -> list[str]:
    """Point labels of one sequence: a repeated token gets its position, ``"the (4)"``."""
    pairs = zip(names, positions, strict=True)
    return [f"{n} ({i})" if names.count(n) > 1 else n for n, i in pairs]


def _qk_points(
    trace: Trace,
    layer: int,
    head: int,
    tokens: Sequence[str] | Sequence[Sequence[str]] | None,
    batch: int | None,
    top_k: int,
) -> tuple[int, int, list[str], QKProjection, list[Any], list[Any], int]:
    """What :func:`qk_space` draws: checked layer and head, the point names, the projection,
    the line segments with their RGBA colours, and the number of sequences shown."""
    layer, head = check_layer_head(trace, layer, head)
    b = f"blocks.{layer}.attn"
    require_names(trace, [f"{b}.{p}" for p in ("q", "k", "mask", "weights")], "qk_space")
    B, _, S, _ = trace[f"{b}.q"].shape
    batches = list(range(B)) if batch is None else [check_batch(trace, batch, f"{b}.q")]
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 0:
        raise ValueError(f"top_k must be an int >= 0, got {top_k!r}")
    labels = _sequence_tokens(tokens, batches, S, B)

    q_rows, k_rows, names, where = [], [], [], []  # where: (batch, position) of each point
    for seq, bb in enumerate(batches):
        real = np.flatnonzero(real_positions(trace, bb))  # padding is left out
        q_rows.append(trace[f"{b}.q"][bb, head, real])
        k_rows.append(trace[f"{b}.k"][bb, head, real])
        names += _point_names([labels[seq][i] for i in real], real)
        where += [(bb, int(i)) for i in real]
    q, k = np.vstack(q_rows), np.vstack(k_rows)  # (N, Dh) each
    proj = qk_projection(q, k)

    # Lines: each query to its top_k keys (same sequence), opacity = weight.
    index = {w: n for n, w in enumerate(where)}
    segments, colours = [], []
    line_rgb = to_rgb(LINE_COLOR)
    for n, (bb, i) in enumerate(where):
        weights = trace[f"{b}.weights"][bb, head, i]
        own = [j for (b2, j) in where if b2 == bb]
        for j in sorted(own, key=lambda j: -weights[j])[:top_k]:
            segments.append([proj.queries[n], proj.keys[index[(bb, j)]]])
            colours.append((*line_rgb, float(weights[j])))

    return layer, head, names, proj, segments, colours, len(batches)


def qk_space(
    trace: Trace,
    layer: int,
    head: int,
    tokens: Sequence[str] | Sequence[Sequence[str]] | None = None,
    *,
    batch: int | None = None,
    top_k: int = 2,
) -> Figure:
    """One head's queries (circles) and keys (triangles) in one PCA plane, tokens labelled.

    Only real tokens are shown (the trace's padding mask; padding is left out of the points,
    the PCA and the lines). Each query is joined to its ``top_k`` most-attended keys of its
    own sequence by a line whose opacity is the attention weight. With ``batch=None`` the
    queries and keys of every sequence of the batch are pooled — AttentionViz's corpus-level
    view.

    Parameters
    ----------
    trace : Trace
        Needs ``blocks.{layer}.attn.`` ``q, k, mask, weights``.
    layer, head : int
    tokens : sequence of str, or sequence of B sequences of str, optional
        Labels: one token list for one sequence (``batch=`` given, or B = 1), else one list
        per sequence of the batch. Default: positions.
    batch : int, optional
        Show only this sequence; default all.
    top_k : int
        Lines per query (0 for none).

    Up to :data:`MAX_POINT_LABELS` queries, every point is labelled with its token (drawn
    literally), placed where it overlaps no other label (:data:`LABEL_PLACES`, chosen when
    the figure is drawn); a label with no such place is left out.

    Returns
    -------
    matplotlib Figure (made without pyplot). The plotted coordinates are
    ``qk_projection(q_real, k_real)`` of the shown queries and keys, in batch-then-position
    order.
    """
    layer, head, names, proj, segments, colours, n_seqs = _qk_points(
        trace, layer, head, tokens, batch, top_k
    )
    fig = Figure(figsize=(9, 8), layout="constrained")
    ax = fig.add_subplot()
    if segments:
        ax.add_collection(LineCollection(segments, colors=colours, linewidths=1.5, zorder=1))
    for points, marker, colour, kind in (
        (proj.queries, "o", QUERY_COLOR, "query"),
        (proj.keys, "^", KEY_COLOR, "key"),
    ):
        ax.scatter(
            points[:, 0],
            points[:, 1],
            marker=marker,
            s=44,
            color=colour,
            label=kind,
            zorder=3,
            edgecolors="white",
            linewidths=0.5,
        )
    if len(names) <= MAX_POINT_LABELS:
        labels = []
        for points, colour in ((proj.queries, QUERY_COLOR), (proj.keys, KEY_COLOR)):
            for (x, y), name in zip(points, names, strict=True):
                label = ax.annotate(
                    name,
                    (x, y),
                    xytext=(4, 3),
                    textcoords="offset points",
                    fontsize=8,
                    color=colour,
                    path_effects=LABEL_HALO,
                    # speed: the point is inside the axes (its limits are fitted to the
                    # points), so matplotlib need not test it at each measure and draw
                    annotation_clip=False,
                    **LITERAL,
                )
                label.set_in_layout(False)  # inside the axes: the layout need not make room
                labels.append(label)
        ax.add_artist(LabelPlacer(labels))
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xlabel(_pc_label(1, proj))
    ax.set_ylabel(_pc_label(2, proj))
    handles = [
        Line2D([], [], marker="o", ls="", color=QUERY_COLOR, label="query"),
        Line2D([], [], marker="^", ls="", color=KEY_COLOR, label="key"),
    ]
    if top_k:
        handles.append(
            Line2D([], [], color=LINE_COLOR, label=f"top {top_k} keys per query (opacity = weight)")
        )
    # under the plane, not on it: "best" placement, which tests every corner against every
    # point and label, was half of the explorer's redraw of this view
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=3, fontsize=9)
    ax.set_title(_title(layer, head, len(names), n_seqs), fontsize=11)
    return fig


class LabelPlacer(Artist):
    """Places the point labels, each where it overlaps no other label, when the axes is drawn.

    Why an artist: where a label of 8 points lands in data coordinates is known only once the
    figure's layout has fixed the axes' size, that is, while the figure is being drawn. This
    artist draws nothing; it is drawn first (lowest zorder), moves the labels (tried in the
    places of :data:`LABEL_PLACES`, queries first, then keys) and hides a label that fits
    nowhere. So a figure whose points moved (:func:`update_qk_space`) places them anew.
    """

    def __init__(self, labels: list[Annotation]) -> None:
        super().__init__()
        self.labels = labels
        self.set_zorder(-np.inf)  # drawn before the labels it places
        self.set_in_layout(False)  # it has no extent of its own

    def draw(self, renderer: RendererBase) -> None:
        assert self.axes is not None, "the placer is added to the axes of its labels"
        frame = self.axes.bbox
        taken: list[Bbox] = []
        figure = self.axes.get_figure(root=True)
        assert figure is not None, "the axes is in a figure"
        pixels_per_point = figure.dpi / 72  # as matplotlib converts "offset points"
        for label in self.labels:
            label.set_visible(True)
            # speed: measured once, its lower left corner on the point; in each place the box
            # is that one moved by the offset and the alignment (measuring is slow)
            label.xyann = (0, 0)
            label.set(horizontalalignment="left", verticalalignment="bottom")
            measured = label.get_window_extent(renderer)
            for offset, ha, va in LABEL_PLACES:
                box = measured.translated(
                    offset[0] * pixels_per_point - ALIGNMENT_SHIFT[ha] * measured.width,
                    offset[1] * pixels_per_point - ALIGNMENT_SHIFT[va] * measured.height,
                )
                inside = (
                    frame.containsx(box.x0)
                    and frame.containsx(box.x1)
                    and (frame.containsy(box.y0) and frame.containsy(box.y1))
                )
                if inside and not any(box.overlaps(other) for other in taken):
                    label.xyann = offset
                    label.set(horizontalalignment=ha, verticalalignment=va)
                    taken.append(box)
                    break
            else:
                label.set_visible(False)


def _pc_label(axis: int, proj: QKProjection) -> str:
    return f"PC {axis} ({100 * proj.explained[axis - 1]:.0f}% of variance)"


def _title(layer: int, head: int, n_points: int, n_seqs: int) -> str:
    seqs = f"{n_seqs} sequence{'s' if n_seqs > 1 else ''}"
    return (
        f"Layer {layer}, head {head}: queries and keys in one space "
        f"({n_points} + {n_points} from {seqs})\n"
        "keys moved to the queries' centroid and rescaled (attention unchanged), then joint PCA"
    )


def update_qk_space(
    fig: Figure,
    trace: Trace,
    layer: int,
    head: int,
    tokens: Sequence[str] | Sequence[Sequence[str]] | None = None,
    *,
    batch: int | None = None,
    top_k: int = 2,
) -> None:
    """Show another layer or head in a figure made by :func:`qk_space`, in place.

    Why: building the figure anew (and its constrained layout) takes about as long as drawing
    it twice, too slow for the explorer's head control. Here the points, their labels and
    lines move, the axis labels and title are rewritten, and the axes limits are computed
    again from the new points, as a new figure would. The figure must show the same tokens
    and mask (as many points and lines); otherwise ``ValueError``.
    """
    layer, head, names, proj, segments, colours, n_seqs = _qk_points(
        trace, layer, head, tokens, batch, top_k
    )
    ax = fig.axes[0]
    lines = [c for c in ax.collections if isinstance(c, LineCollection)]
    dots = [c for c in ax.collections if isinstance(c, PathCollection)]  # queries, keys
    if (
        len(dots) != 2
        or np.shape(dots[0].get_offsets())[0] != len(names)
        or len(lines) != bool(segments)
    ):
        raise ValueError("fig shows other tokens or another mask: draw it anew with qk_space")
    for line_collection in lines:
        line_collection.set_segments(segments)
        line_collection.set_color(colours)
    for collection, points in zip(dots, (proj.queries, proj.keys), strict=True):
        collection.set_offsets(points)
    labelled = [text for text in ax.texts if isinstance(text, Annotation)]  # queries, keys
    for text, xy in zip(labelled, [*proj.queries, *proj.keys], strict=False):
        text.xy = (float(xy[0]), float(xy[1]))
    ax.xaxis.label.set_text(_pc_label(1, proj))
    ax.yaxis.label.set_text(_pc_label(2, proj))
    ax.title.set_text(_title(layer, head, len(names), n_seqs))
    # the axes limits, from the new points only (as add_collection does for a new figure)
    ax.ignore_existing_data_limits = True
    ax.update_datalim(np.vstack([proj.queries, proj.keys]))
    ax.autoscale_view()
