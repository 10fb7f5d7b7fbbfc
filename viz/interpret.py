"""Figures of :mod:`minitransformer.interpret`: head statistics and roles, head similarity,
relevance maps (rollout, flow), token colouring of attributions, pruning curves, the
diagnostics report, the "is attention an explanation?" experiments (permutation, uniform
attention, twin seeds, agreement of rankings), and value-weighted attention beside the
weights.

Every function draws numbers that an ``interpret`` function returned; nothing here touches a
model. Each returns a matplotlib ``Figure`` made without pyplot.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence

import matplotlib as mpl
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import Colormap, Normalize, to_rgba_array
from matplotlib.figure import Figure
from matplotlib.layout_engine import ConstrainedLayoutEngine
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import MaxNLocator
from matplotlib.typing import ColorType

from minitransformer.interpret.diagnostics import FLAGS, Report
from minitransformer.interpret.explanation import (
    RankingAgreement,
    TwinSeedResult,
    UniformAttentionResult,
)
from minitransformer.interpret.importance import PruningCurve
from minitransformer.interpret.stats import HeadRole, HeadStatistics
from minitransformer.trace import Trace
from viz.checks import (
    check_batch,
    check_index,
    check_layer_head,
    require_names,
)
from viz.style import (
    CELL_FONTSIZE,
    CHAR_EM,
    COLORBAR_SHRINK,
    HEADING_FONTSIZE,
    HIGHLIGHT_COLOR,
    LABEL_FONTSIZE,
    LEGEND_FONTSIZE,
    LITERAL,
    MASKED_COLOR,
    MIN_RANGE,
    NORMS_CMAP,
    NOTE_FONTSIZE,
    POINTS_PER_INCH,
    SIGNED_CMAP,
    SMALL_FONTSIZE,
    TICK_FONTSIZE,
    TITLE_FONTSIZE,
    drawable,
    head_color,
    label_positions,
    labels_that_fit,
    token_labels,
    weights_cmap,
)

#: :func:`token_scores_figure`: font sizes of tokens and method names, and of the scores under
#: the tokens; the widest a line of tokens may be before it wraps (inches).
TOKEN_FONTSIZE = 9
SCORE_FONTSIZE = 7.5
MAX_LINE_INCHES = 13.0


def _text_inches(text: str, fontsize: float) -> float:
    """An estimate of the width of one line of ``text``: 0.62 em a character (DejaVu Sans's
    widest lower-case letters; digits are 0.64 em, so numbers get 0.64)."""
    em = 0.64 if any(c.isdigit() for c in text) else 0.62
    return len(text) * em * fontsize / POINTS_PER_INCH


#: Statistics drawn by :func:`head_statistics_figure` by default, with their panel titles.
STATISTIC_TITLES = {
    "entropy": "entropy (nats)",
    "distance": "mean distance (tokens)",
    "confidence": "max weight (confidence)",
    "self": "share on self",
    "previous": "share on previous token",
    "next": "share on next token",
    "special": "share on special tokens",
    "punctuation": "share on punctuation",
    "padding": "share on padding",
}


#: Short names of head roles, so they fit in a cell of the roles panel.
SHORT_ROLES = {
    "special-token sink": "sink",
    "previous-token": "prev",
    "next-token": "next",
    "punctuation": "punct",
    "padding": "PAD!",
}


#: What a short role name means, for the roles panel's title (only names on the panel).
ROLE_NOTES = {
    "sink": "sink = special tokens",
    "prev": "prev/next = neighbour token",
    "next": "prev/next = neighbour token",
    "punct": "punct = punctuation",
    "PAD!": "PAD! = attends to padding",
    "pos": "pos k = fixed offset k",
}


def short_role(role: str) -> str:
    """The label of a role in a grid cell: ``"positional (offset +2)"`` -> ``"pos +2"``."""
    if role.startswith("positional (offset "):
        return "pos " + role.removeprefix("positional (offset ").rstrip(")")
    return SHORT_ROLES.get(role, role)


def roles_title(roles: Sequence[HeadRole]) -> str:
    """``"head roles"`` and the meaning of each short name that occurs among ``roles``.

    ``"head roles: sink = special tokens; prev/next = neighbour token"``; names that need
    no note (``self``, ``broad``, ``mixed``) add nothing, so a toy model without special
    tokens is not told about [CLS]/[SEP].
    """
    notes: list[str] = []
    for r in roles:
        note = ROLE_NOTES.get(short_role(r.role).split(" ")[0])
        if note is not None and note not in notes:
            notes.append(note)
    return "head roles: " + "; ".join(notes) if notes else "head roles"


def text_color_on(background: ColorType | np.ndarray) -> str:
    """``"black"`` or ``"white"``: whichever reads better on a cell of colour ``background``.

    Black when the background's relative luminance (WCAG 2: linearised sRGB, weighted
    0.2126 R + 0.7152 G + 0.0722 B) is above 0.179, where black and white text have the same
    contrast. This follows the colour actually drawn, so it is right for any colour map
    (light high values in ``viridis``, dark high values in ``Blues``).
    """
    srgb = to_rgba_array(background)[0, :3]  # red, green, blue in 0..1
    linear = np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)
    luminance = float(linear @ [0.2126, 0.7152, 0.0722])
    return "black" if luminance > 0.179 else "white"


def wrap_to_width(text: str, inches: float, fontsize: float) -> str:
    """``text`` broken at spaces into lines that fit ``inches`` at ``fontsize`` points.

    A character is counted as 0.6 em wide (a little wider than DejaVu Sans's average), so the
    lines stay inside the width.
    """
    return textwrap.fill(text, width=max(12, int(inches * POINTS_PER_INCH / (CHAR_EM * fontsize))))


#: :func:`head_statistics_figure` puts as many panels side by side as fit in this width
#: (inches): 20 inches is 2000 pixels at the default 100 dpi, a slide's width.
SLIDE_INCHES = 20.0


def _grid_panel(
    ax: Axes, values: np.ndarray, title: str, cmap: Colormap | str, vmin: float, vmax: float
) -> None:
    """An (L, H) image with each value written in its cell; layers down, heads across."""
    L, H = values.shape
    image = ax.imshow(values, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    _write_cells(ax, values, image.to_rgba(values), CELL_FONTSIZE)
    ax.set_title(title, fontsize=LABEL_FONTSIZE)
    ax.set_xticks(range(H))
    ax.set_yticks(range(L))
    ax.set_xlabel("head")
    ax.set_ylabel("layer")


def head_statistics_figure(
    stats: HeadStatistics,
    roles: Sequence[HeadRole] | None = None,
    quantities: Sequence[str] | None = None,
    max_columns: int | None = None,
) -> Figure:
    """One layers x heads panel per statistic, and (given ``roles``) a panel of head roles.

    Parameters
    ----------
    stats : HeadStatistics
        From :func:`minitransformer.interpret.stats.head_statistics`.
    roles : list of HeadRole, optional
        From :func:`~minitransformer.interpret.stats.head_roles`: the last panel writes each
        head's role in its cell (shortened by :func:`short_role`), coloured by role.
    quantities : list of str, optional
        Which statistics (keys of :data:`STATISTIC_TITLES`); default all of them. Shares are
        drawn on the attention colour scale 0..1; entropy on 0..max(uniform entropy).
    max_columns : int, optional
        Panels per row; default as many as fit in :data:`SLIDE_INCHES` (at most 4).

    Returns
    -------
    Figure with one axes per panel, titled as in :data:`STATISTIC_TITLES` (the roles panel's
    title starts with "head roles"). Each value is written in its cell at
    :data:`CELL_FONTSIZE` points; a cell is wide enough for it and for the longest role name.
    """
    names = list(STATISTIC_TITLES) if quantities is None else list(quantities)
    unknown = [n for n in names if n not in STATISTIC_TITLES]
    if unknown:
        raise ValueError(f"unknown statistics {unknown}; choose from {list(STATISTIC_TITLES)}")
    L, H = stats.shape
    labels = [short_role(r.role) for r in roles] if roles is not None else []
    widest = max([_text_inches("0.00", CELL_FONTSIZE)] + [_text_inches(t, 7) for t in labels])
    head_w = max(0.45, widest + 0.1)  # inches per head: its number (or role) and a margin
    cell_w, cell_h = max(head_w * H, 1.6), max(0.35 * L, 1.0)
    n_panels = len(names) + (roles is not None)
    fitting = max(1, int(SLIDE_INCHES // (cell_w + 0.9)))
    n_cols = min(n_panels, max_columns if max_columns is not None else min(4, fitting))
    n_rows = -(-n_panels // n_cols)
    fig = Figure(figsize=(n_cols * (cell_w + 0.9), n_rows * (cell_h + 1.1)), layout="constrained")
    axes = fig.subplots(n_rows, n_cols, squeeze=False).ravel()
    for ax, name in zip(axes, names, strict=False):
        values = getattr(stats, name)
        if name == "entropy":
            top = float(max(stats.uniform_entropy.max(), values.max(), MIN_RANGE))
            _grid_panel(ax, values, STATISTIC_TITLES[name], NORMS_CMAP, 0.0, top)
        elif name == "distance":
            _grid_panel(
                ax,
                values,
                STATISTIC_TITLES[name],
                NORMS_CMAP,
                0.0,
                float(max(values.max(), MIN_RANGE)),
            )
        else:
            _grid_panel(ax, values, STATISTIC_TITLES[name], weights_cmap(), 0.0, 1.0)
    if roles is not None:
        ax = axes[len(names)]
        kinds = sorted({r.role for r in roles})
        codes = np.zeros((L, H))
        for r in roles:
            codes[r.layer, r.head] = kinds.index(r.role)
        ax.imshow(codes, cmap="tab10", vmin=0, vmax=9, aspect="auto", alpha=0.35)
        for r in roles:
            ax.text(
                r.head,
                r.layer,
                short_role(r.role),
                ha="center",
                va="center",
                fontsize=SMALL_FONTSIZE,
            )
        ax.set_title(
            wrap_to_width(roles_title(roles), cell_w + 0.6, LABEL_FONTSIZE), fontsize=LABEL_FONTSIZE
        )
        ax.set_xticks(range(H))
        ax.set_yticks(range(L))
        ax.set_xlabel("head")
        ax.set_ylabel("layer")
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return fig


#: The MDS panel names a head only when no named head lies closer than this many inches on the
#: panel, so the names in a dense cluster do not pile up (the other heads keep their colour).
LABEL_GAP_INCHES = 0.4


def heads_to_label(coordinates: np.ndarray, gap: float) -> list[int]:
    """Which points get a name: at least ``gap`` apart, outliers first.

    Greedy: the points are visited from the farthest from the cloud's centre inwards, and a
    point is named when every point named so far is at least ``gap`` away (same units as
    ``coordinates``, shape (N, 2)). Outliers are therefore always named; in a cluster, one name
    stands for its neighbours. Points at the same place (equal to 1e-9 of the spread) are
    visited lowest index first, so the name a place gets does not depend on rounding. Returns
    the indices in increasing order.
    """
    centre = coordinates.mean(axis=0)
    distance = np.linalg.norm(coordinates - centre, axis=1)
    # Points at one place differ in the last bits (LAPACK rounding): compare distances rounded
    # to 1e-9 of the largest, so equal places tie and the stable sort names the lowest index.
    scale = float(distance.max()) if distance.size and distance.max() > 0 else 1.0
    far_first = np.argsort(-np.round(distance / scale, 9), kind="stable")
    named: list[int] = []
    for i in far_first:
        if all(np.linalg.norm(coordinates[i] - coordinates[j]) >= gap for j in named):
            named.append(int(i))
    return sorted(named)


def head_similarity_figure(
    distances: np.ndarray, coordinates: np.ndarray, names: Sequence[str], n_heads: int
) -> Figure:
    """Head-to-head Jensen-Shannon distances (left) and the heads placed by MDS (right).

    Parameters
    ----------
    distances : ndarray of shape (N, N)
        From :func:`~minitransformer.interpret.similarity.head_distances`.
    coordinates : ndarray of shape (N, 2)
        From :func:`~minitransformer.interpret.similarity.classical_mds`.
    names : list of str
        One per head (:func:`~minitransformer.interpret.similarity.head_names`).
    n_heads : int
        Heads per layer: points are coloured by layer (head index ``l * n_heads + h``).

    Returns
    -------
    Figure with two axes: "Jensen-Shannon distance between heads" and "heads placed by MDS"
    (one scatter collection per layer, labelled ``"layer l"``, and a text naming each head
    chosen by :func:`heads_to_label`: every head when they lie apart, outliers and one head per
    dense cluster otherwise). The MDS limits are padded so the names stay inside the axes.
    """
    N = len(names)
    if distances.shape != (N, N) or coordinates.shape != (N, 2):
        raise ValueError(
            f"distances must be ({N}, {N}) and coordinates ({N}, 2) for {N} names, got "
            f"{distances.shape} and {coordinates.shape}"
        )
    size = float(np.clip(0.25 * N + 2.5, 4.0, 9.0))
    # wide enough that the square matrix is limited by the height (its tick labels then keep
    # their margin), and a gap between the colour bar's label and the MDS panel
    fig = Figure(figsize=(2 * size + 2.5, size), layout=ConstrainedLayoutEngine(wspace=0.08))
    left, right = fig.subplots(1, 2)
    image = left.imshow(distances, cmap=NORMS_CMAP, vmin=0.0, vmax=float(np.sqrt(np.log(2))))
    ticks = label_positions(N)
    left.set_xticks(ticks, [names[t] for t in ticks], rotation=90, fontsize=SMALL_FONTSIZE)
    left.set_yticks(ticks, [names[t] for t in ticks], fontsize=SMALL_FONTSIZE)
    left.set_title("Jensen-Shannon distance between heads")
    fig.colorbar(image, ax=left, shrink=COLORBAR_SHRINK).set_label("mean JS distance (sqrt nats)")
    layer_of = np.arange(N) // n_heads
    for l in np.unique(layer_of):  # one scatter per layer: its colour and legend entry
        points = coordinates[layer_of == l]
        right.scatter(
            points[:, 0], points[:, 1], color=head_color(int(l)), s=40, label=f"layer {l}"
        )
    right.legend(fontsize=SMALL_FONTSIZE)
    # a square view around the cloud, padded by an eighth of its side (more on the right,
    # where the names are written), so the outermost heads keep their names inside the axes
    span = float(np.ptp(coordinates, axis=0).max()) or 1.0
    centre = (coordinates.max(axis=0) + coordinates.min(axis=0)) / 2
    right.set_xlim(centre[0] - 0.625 * span, centre[0] + 0.7 * span)
    right.set_ylim(centre[1] - 0.625 * span, centre[1] + 0.7 * span)
    per_inch = 1.325 * span / (size - 1.2)  # data units per inch: the axes is ~size - 1.2 wide
    for i in heads_to_label(coordinates, gap=LABEL_GAP_INCHES * per_inch):
        right.annotate(
            names[i],
            coordinates[i],
            fontsize=SMALL_FONTSIZE,
            xytext=(3, 3),
            textcoords="offset points",
        )
    right.set_title("heads placed by MDS (close = attend alike)")
    right.set_xlabel("MDS 1")
    right.set_ylabel("MDS 2")
    right.set_aspect("equal", adjustable="box")
    return fig


#: A relevance map has a dominant column when one input token holds at least this share of the
#: map's total relevance (rollout's [CLS] column in MiniLM).
DOMINANT_COLUMN_SHARE = 0.5


def has_dominant_column(relevance: np.ndarray) -> bool:
    """Whether one column of an (S, S) map holds at least :data:`DOMINANT_COLUMN_SHARE` of
    its total: on a colour scale shared with it, the other maps would look washed out."""
    total = float(relevance.sum())
    return total > 0 and float(relevance.sum(axis=0).max()) >= DOMINANT_COLUMN_SHARE * total


def relevance_maps_figure(
    maps: Mapping[str, np.ndarray],
    tokens: Sequence[str] | None = None,
    share_scale: bool | None = None,
) -> Figure:
    """Relevance matrices side by side: row i = output token, column j = input token.

    Parameters
    ----------
    maps : mapping of title -> ndarray of shape (S, S)
        E.g. ``{"raw attention (last layer)": ..., "rollout": ..., "flow": ...}`` for one
        sequence, from :mod:`minitransformer.interpret.rollout`.
    tokens : list of str, optional
    share_scale : bool, optional
        True: all maps on one colour scale from 0 to the largest value, with one colour bar
        (compares sizes across maps). False: each map from 0 to its own largest value, with
        its own colour bar (shows the pattern inside each map). Default: shared, unless a map
        has a dominant column (:func:`has_dominant_column`), whose large values would wash
        the other maps out.

    Returns
    -------
    Figure with one axes per map, titled by its key, and one colour bar ("relevance") for all
    of them or one per map.
    """
    if not maps:
        raise ValueError("maps is empty: give at least one (S, S) relevance matrix")
    arrays = {k: np.asarray(v) for k, v in maps.items()}
    S = next(iter(arrays.values())).shape[0]
    for title, a in arrays.items():
        if a.shape != (S, S):
            raise ValueError(f"map {title!r} must have shape ({S}, {S}), got {a.shape}")
    labels = token_labels(tokens, S)
    panel = float(np.clip(0.3 * S + 1.5, 3.0, 6.0))
    shown = label_positions(S, labels_that_fit(panel, TICK_FONTSIZE))
    # room for the rotated token labels under each map (0.6 em a character) and the title above
    label_inches = max(len(labels[t]) for t in shown) * CHAR_EM * TICK_FONTSIZE / POINTS_PER_INCH
    titles = {title: wrap_to_width(title, panel, TITLE_FONTSIZE) for title in arrays}
    title_lines = max(t.count("\n") + 1 for t in titles.values())
    height = panel + 0.9 + min(label_inches, 1.5) + 0.25 * title_lines
    fig = Figure(figsize=(len(arrays) * (panel + 1.1) + 1.0, height), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(arrays)))
    if share_scale is None:
        share_scale = not any(has_dominant_column(a) for a in arrays.values())
    shared_top = max(float(a.max()) for a in arrays.values())
    for ax, (title, a) in zip(axes, arrays.items(), strict=True):
        top = shared_top if share_scale else float(a.max())
        image = ax.imshow(a, cmap=weights_cmap(), vmin=0.0, vmax=max(top, MIN_RANGE))
        ax.set_title(titles[title], fontsize=TITLE_FONTSIZE, **LITERAL)
        ax.set_xticks(
            shown, [labels[t] for t in shown], rotation=90, fontsize=TICK_FONTSIZE, **LITERAL
        )
        ax.set_yticks(shown, [labels[t] for t in shown], fontsize=TICK_FONTSIZE, **LITERAL)
        ax.set_xlabel("input token")
        ax.set_ylabel("output token")
        if not share_scale:
            fig.colorbar(image, ax=ax, shrink=COLORBAR_SHRINK).set_label("relevance")
    if share_scale:
        fig.colorbar(image, ax=list(axes), shrink=COLORBAR_SHRINK).set_label("relevance")
    return fig


#: A row of :func:`token_scores_figure` is "≈ constant" when its spread (max - min) is below
#: this fraction of its largest |score|.
CONSTANT_SPREAD = 0.1
#: ... and then drawn at this fraction of the colour scale (pale), not saturated.
CONSTANT_SHADE = 0.25


def token_scores_figure(
    scores: Mapping[str, np.ndarray],
    tokens: Sequence[str],
    *,
    title: str | None = None,
    highlight: int | None = None,
) -> Figure:
    """Token colouring: one row per method, each token on a background coloured by its score.

    Each row is scaled to its own largest ``|score|`` (methods have different units): red =
    positive (supports the output), blue = negative, white = 0. The score is written under
    each token. A row whose scores hardly vary (max - min below :data:`CONSTANT_SPREAD` times
    its largest ``|score|``) says nothing about which token matters, yet scaled to its largest
    score it would look fully saturated: it is drawn at :data:`CONSTANT_SHADE` of the colour
    scale and its name gets "(≈ constant)".

    Each token gets the width of its text (or of its widest score); a sentence wider than
    :data:`MAX_LINE_INCHES` wraps into blocks of lines, every block repeating the method
    names, so one token's scores stay in one column.

    Parameters
    ----------
    scores : mapping of method name -> ndarray of shape (S,)
        E.g. occlusion, gradient x input, Integrated Gradients, a rollout row; finite.
    tokens : list of str
        The S tokens, drawn literally (``$`` is not mathtext).
    title : str, optional
    highlight : int, optional
        A position to frame (e.g. the output position being explained).

    Returns
    -------
    Figure with one axes, whose data units are inches; each token is a text artist whose
    background is its colour.
    """
    if not scores:
        raise ValueError("scores is empty: give at least one method's scores")
    labels = token_labels(tokens, len(tokens), "tokens")
    rows = _score_rows(scores, len(labels))
    numbers = {name: [f"{v:.2g}" for v in values] for name, values in rows.items()}
    names = {name: _row_name(name, values) for name, values in rows.items()}
    # one column per token, as wide as its text or its widest score, plus the box's padding
    widths = [
        max(
            _text_inches(labels[j], TOKEN_FONTSIZE),
            max(_text_inches(n[j], SCORE_FONTSIZE) for n in numbers.values()),
        )
        + 0.22
        for j in range(len(labels))
    ]
    name_lines = [line for label, _, _ in names.values() for line in label.split("\n")]
    name_width = max(_text_inches(line, TOKEN_FONTSIZE) for line in name_lines) + 0.25
    lines = _wrap_columns(widths, name_width)
    row_height, gap = 0.52, 0.25  # a token and its score; space between blocks of lines
    width = max(4.0, name_width + max(sum(widths[k] for k in line) for line in lines) + 0.3)
    title_text = title or "token attributions (red supports the output, blue opposes it)"
    title_text = wrap_to_width(title_text, width - 0.2, HEADING_FONTSIZE)
    title_inches = 0.22 * (title_text.count("\n") + 1)
    height = len(lines) * (len(rows) * row_height + gap) + 0.5 + title_inches
    fig = Figure(figsize=(width, height))
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))  # data units = inches from the lower left corner
    ax.set_xlim(0.0, width)
    ax.set_ylim(0.0, height)
    ax.axis("off")
    ax.text(
        width / 2,
        height - 0.1,
        title_text,
        ha="center",
        va="top",
        fontsize=HEADING_FONTSIZE,
        **LITERAL,
    )
    y = height - 0.3 - title_inches
    for line in lines:
        for name, values in rows.items():
            y -= row_height / 2
            label, top, shade = names[name]
            ax.text(
                name_width - 0.15,
                y + 0.06,
                label,
                ha="right",
                va="center",
                fontsize=TOKEN_FONTSIZE,
                **LITERAL,
            )
            x = name_width
            for j in line:
                scaled = shade * values[j] / top
                centre = (x + widths[j] / 2, y)
                _draw_token(ax, centre, labels[j], numbers[name][j], scaled, highlight == j)
                x += widths[j]
            y -= row_height / 2
        y -= gap
    return fig


def _score_rows(scores: Mapping[str, np.ndarray], S: int) -> dict[str, np.ndarray]:
    """Each method's scores as a float (S,) array, checked finite and of the tokens' length."""
    rows = {}
    for name, s in scores.items():
        if np.shape(s) != (S,):
            raise ValueError(
                f"scores[{name!r}] must have shape ({S},) like tokens, got {np.shape(s)}"
            )
        values = np.asarray(s, dtype=float)
        if not np.isfinite(values).all():
            raise ValueError(f"scores[{name!r}] must be finite, got nan or inf")
        rows[name] = values
    return rows


def _row_name(name: str, values: np.ndarray) -> tuple[str, float, float]:
    """A row's label, the largest ``|score|`` it is scaled by, and the share of the colour
    scale it reaches: :data:`CONSTANT_SHADE` and "(≈ constant)" when the scores hardly vary."""
    top = float(np.abs(values).max()) or 1.0
    if float(np.ptp(values)) < CONSTANT_SPREAD * top:
        return f"{drawable(name)}\n(≈ constant)", top, CONSTANT_SHADE
    return drawable(name), top, 1.0


def _wrap_columns(widths: list[float], name_width: float) -> list[list[int]]:
    """The columns of each line: as many as fit :data:`MAX_LINE_INCHES` after the names'
    ``name_width``, greedily (at least one)."""
    lines: list[list[int]] = [[]]
    for j, w in enumerate(widths):
        used = sum(widths[k] for k in lines[-1])
        if lines[-1] and name_width + used + w > MAX_LINE_INCHES:
            lines.append([])
        lines[-1].append(j)
    return lines


def _draw_token(
    ax: Axes, centre: tuple[float, float], label: str, score: str, scaled: float, framed: bool
) -> None:
    """A token ``label`` on a box coloured by its ``scaled`` score (-1 .. 1, blue to red), and
    its ``score`` written under it; ``framed`` draws the box's edge."""
    x, y = centre
    face = mpl.colormaps[SIGNED_CMAP](Normalize(vmin=-1.0, vmax=1.0)(scaled))
    box = {
        "boxstyle": "round,pad=0.25",
        "facecolor": face,
        "edgecolor": "black" if framed else "none",
    }
    ax.text(
        x,
        y + 0.08,
        label,
        ha="center",
        va="center",
        fontsize=TOKEN_FONTSIZE,
        color=text_color_on(face),
        bbox=box,
        **LITERAL,
    )
    ax.text(x, y - 0.16, score, ha="center", va="center", fontsize=SCORE_FONTSIZE, color="#444444")


#: (line style, marker, marker size) of the curves of :func:`pruning_curves_figure`, in order:
#: the later, thinner patterns let an equal earlier curve show through.
CURVE_STYLES = (("-", "o", 7), ("--", "s", 5), (":", "^", 4), ("-.", "D", 3))


def pruning_curves_figure(
    curves: Sequence[PruningCurve],
    metric_name: str = "metric",
    fraction: float | None = 0.9,
) -> Figure:
    """Metric against the number of heads removed, one line per removal order.

    Parameters
    ----------
    curves : list of PruningCurve
        From :func:`~minitransformer.interpret.importance.pruning_curve` (e.g. by importance
        and at random); labelled by their ``label``.
    metric_name : str
        The y-axis label.
    fraction : float, optional
        Draw a dashed line at this fraction of the full model's metric (the first curve's
        first point), the level :meth:`PruningCurve.heads_needed` reads; None for none.

    Returns
    -------
    Figure with one axes; one line per curve (plus the dashed line), each with its own line
    style and marker from :data:`CURVE_STYLES` so that equal curves stay visible on top of
    each other; integer ticks on the x axis.
    """
    if not curves:
        raise ValueError("curves is empty: give at least one PruningCurve")
    fig = Figure(figsize=(6.0, 4.0), layout="constrained")
    ax = fig.add_subplot()
    for index, curve in enumerate(curves):
        linestyle, marker, size = CURVE_STYLES[index % len(CURVE_STYLES)]
        ax.plot(
            curve.n_removed,
            curve.metric,
            linestyle=linestyle,
            marker=marker,
            markersize=size,
            color=head_color(index),
            label=curve.label or f"order {index}",
        )
    if fraction is not None:
        level = fraction * curves[0].metric[0]
        ax.axhline(
            level,
            linestyle="--",
            color="#777777",
            linewidth=1,
            label=f"{fraction:.0%} of the full model",
        )
    n_heads = curves[0].n_heads
    ax.set_xlabel(f"heads removed (of {n_heads})")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # whole heads only
    ax.set_ylabel(metric_name)
    ax.set_title("Pruning heads: how many does the model need?")
    ax.legend()
    return fig


#: The colour of each diagnostics flag (and of a head without one).
FLAG_COLORS = {
    "padding": "#d62728",
    "sink": "#ff7f0e",
    "duplicate": "#9467bd",
    "uniform": "#8c8c8c",
    "overfit": "#e377c2",
    "ok": "#ffffff",
}


#: Font size of the flag names in the cells of :func:`diagnostics_figure`.
DIAGNOSTICS_FONTSIZE = 9


def diagnostics_figure(report: Report) -> Figure:
    """The heads grid of a diagnostics report: each cell coloured by the head's first flag.

    Parameters
    ----------
    report : Report
        From :func:`minitransformer.interpret.diagnostics.diagnose`.

    Returns
    -------
    Figure with one axes: an (L, H) image of RGBA colours from :data:`FLAG_COLORS` (the first
    flag in :data:`~minitransformer.interpret.diagnostics.FLAGS` order; white = no flag), each
    cell naming all its flags, and a legend with one entry per flag kind present (plus "ok").
    When the report made no overfitting verdict, a line under the grid (the figure's
    ``supxlabel``) says why: "overfitting not checked: not enough data (n = 4 inputs + 4
    held-out; ...)" or "... no held-out inputs" -- so "ok" is not read as "not overfit".
    """
    L, H = report.shape
    colors = np.zeros((L, H, 4))
    present = set()
    # cells of 1.0 x 0.75 inches hold two flag names at 9 points; the legend takes 1.3 inches
    width = max(3.5, 1.0 * H + 2.3)
    fig = Figure(figsize=(width, max(2.2, 0.75 * L + 1.4)), layout="constrained")
    ax = fig.add_subplot()
    for l in range(L):
        for h in range(H):
            kinds = report.flags_of(l, h)
            first = kinds[0] if kinds else "ok"
            present.add(first)
            colors[l, h] = mpl.colors.to_rgba(FLAG_COLORS[first])
            ax.text(
                h,
                l,
                "\n".join(kinds) or "ok",
                ha="center",
                va="center",
                fontsize=DIAGNOSTICS_FONTSIZE,
            )
    ax.imshow(colors, aspect="auto")
    ax.set_xticks(range(H))
    ax.set_yticks(range(L))
    ax.set_xticks(np.arange(H + 1) - 0.5, minor=True)  # thin lines between the cells
    ax.set_yticks(np.arange(L + 1) - 0.5, minor=True)
    ax.grid(which="minor", color="#bbbbbb", linewidth=0.5)
    ax.tick_params(which="minor", length=0)
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    title = "attention diagnostics (first flag colours the head)"
    ax.set_title(wrap_to_width(title, width - 1.8, LABEL_FONTSIZE), fontsize=LABEL_FONTSIZE)
    handles = [
        Patch(facecolor=FLAG_COLORS[kind], edgecolor="black", label=kind)
        for kind in (*FLAGS, "ok")
        if kind in present
    ]
    fig.legend(handles=handles, loc="outside right center", fontsize=LEGEND_FONTSIZE)
    if report.overfit_note:
        note = f"overfitting not checked: {report.overfit_note}"
        fig.supxlabel(
            wrap_to_width(note, width - 0.4, NOTE_FONTSIZE), fontsize=NOTE_FONTSIZE, color="#444444"
        )
    return fig


#: Points of :func:`permutation_figure` that would cover each other (a tie, see
#: :func:`tie_groups`) are spread over this half-width around their mean x.
TIE_SPREAD = 0.025
#: Two points tie when their y values fall in the same bin of this fraction of the largest y.
TIE_HEIGHT = 0.03


def tie_groups(x: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
    """The ties of :func:`permutation_figure`: groups of more than one point ``(x, y)`` that
    share a cell of width ``2 * TIE_SPREAD`` in x (cells centred on multiples of it, e.g.
    [0.975, 1.025)) and height ``TIE_HEIGHT * max(y)`` in y, so they would cover each other.
    Each group is an array of indices; the cells do not overlap, so neither do the ties."""
    height = TIE_HEIGHT * max(float(np.max(y)), MIN_RANGE)
    cells = np.stack([np.round(x / (2 * TIE_SPREAD)), np.round(y / height)], axis=1)
    _, which = np.unique(cells, axis=0, return_inverse=True)
    groups = [np.flatnonzero(which.ravel() == c) for c in range(which.max() + 1)]
    return [g for g in groups if len(g) > 1]


def spread_ties(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The x positions at which to draw points ``(x, y)`` so that ties do not hide each other.

    A group of :func:`tie_groups` with n points, taken in the order of ``y``, is laid out evenly
    from ``-TIE_SPREAD`` to ``+TIE_SPREAD`` around its mean x (a strip plot: neighbours in y
    are neighbours across). Points without a tie stay put.
    """
    shown = np.array(x, dtype=float)
    for group in tie_groups(x, y):
        in_y_order = group[np.argsort(y[group], kind="stable")]
        offsets = np.linspace(-TIE_SPREAD, TIE_SPREAD, len(group))
        shown[in_y_order] = x[group].mean() + offsets
    return shown


def permutation_figure(changes: np.ndarray, max_attention: np.ndarray) -> Figure:
    """Jain & Wallace (2019)'s Figure 3: output change under permuted attention vs how peaked
    the attention was.

    Parameters
    ----------
    changes : ndarray of shape (n_permutations, n_inputs)
        From :func:`~minitransformer.interpret.interventions.attention_permutation_effect`
        with a metric giving one number per input.
    max_attention : ndarray of shape (n_inputs,)
        Each input's largest attention weight (of the row that matters, e.g. the explained
        position's row in the last block).

    Returns
    -------
    Figure with one axes: one point per input at (max attention, median |change|), the y axis
    from 0. Inputs with (almost) the same max attention, e.g. the many one-hot rows at 1.0 of a
    toy model, with (almost) the same change too, are spread sideways by :func:`spread_ties`
    so that each stays visible (the x position is exact to within ``2 * TIE_SPREAD``), and a
    text ``"n = k"`` to the right of such a group of k points says how many there are (they
    may still cover each other when their changes are equal too). Counts are placed largest
    group first and left out where they would cover a count already placed (groups one
    above the other closer than a line of text).
    """
    changes, peak = np.asarray(changes), np.asarray(max_attention)
    if changes.ndim != 2 or peak.shape != (changes.shape[1],):
        raise ValueError(
            f"changes must be (n_permutations, n_inputs) and max_attention (n_inputs,), got "
            f"{changes.shape} and {peak.shape}"
        )
    median = np.median(np.abs(changes), axis=0)
    height = 3.8
    fig = Figure(figsize=(5.0, height), layout="constrained")
    ax = fig.add_subplot()
    shown_x = spread_ties(peak, median)
    # clip_on=False: points at 0 are drawn whole, not cut in half by the axis
    ax.scatter(shown_x, median, s=18, color=head_color(0), alpha=0.7, clip_on=False)
    top = max(float(median.max()) * 1.15, MIN_RANGE)  # from 0: sizes, not differences
    # a count needs a line of text: its font size plus a gap, in y units (the axes is about
    # the figure's height less 1.1 inches of title and labels)
    line = top * (CELL_FONTSIZE + 3) / ((height - 1.1) * POINTS_PER_INCH)
    placed: list[tuple[float, float]] = []  # (x cell, y) of the counts drawn
    groups = sorted(tie_groups(peak, median), key=len, reverse=True)
    for group in groups:
        cell, y = (
            float(np.round(peak[group].mean() / (2 * TIE_SPREAD))),
            float(median[group].mean()),
        )
        if any(c == cell and abs(y - y0) < line for c, y0 in placed):
            continue
        placed.append((cell, y))
        ax.annotate(
            f"n = {len(group)}",
            (float(shown_x[group].max()), y),
            xytext=(4, 0),
            textcoords="offset points",
            ha="left",
            va="center",
            fontsize=CELL_FONTSIZE,
        )
    ax.set_xlabel("max attention weight (ties spread sideways)")
    ax.set_ylabel("median |output change| over permutations")
    right = 1.0 + 2 * TIE_SPREAD
    if any(peak[g].mean() > 0.8 for g in groups):  # room for the counts right of x = 1
        right += 0.15
    ax.set_xlim(0.0, right)
    ax.set_xticks(np.linspace(0.0, 1.0, 6))
    ax.set_ylim(0.0, top)
    ax.set_title("Permuting attention (Jain & Wallace 2019)")
    return fig


def uniform_attention_figure(results: Sequence[UniformAttentionResult]) -> Figure:
    """Held-out accuracy per task with learned and with uniform attention (two bars each).

    Returns
    -------
    Figure with one axes: two bar containers labelled "learned attention" and "uniform
    attention", one bar per task (x tick labels = task names); the figure's legend sits below
    the axes.
    """
    if not results:
        raise ValueError("results is empty: give at least one UniformAttentionResult")
    x = np.arange(len(results))
    width = max(4.5, 0.9 * len(results) + 2.0)
    fig = Figure(figsize=(width, 3.9), layout="constrained")
    ax = fig.add_subplot()
    ax.bar(
        x - 0.2, [r.learned for r in results], 0.4, color=head_color(0), label="learned attention"
    )
    ax.bar(
        x + 0.2, [r.uniform for r in results], 0.4, color=head_color(1), label="uniform attention"
    )
    ax.set_xticks(x, [r.task for r in results])
    ax.set_ylim(0.0, 1.05)
    ax.set_ylabel("held-out accuracy")
    title = "Freeze attention to uniform and retrain (Wiegreffe & Pinter 2019)"
    ax.set_title(wrap_to_width(title, width - 0.8, 12))
    # below the task names, outside the axes: a legend inside would cover the bars
    fig.legend(fontsize=LEGEND_FONTSIZE, loc="outside lower center", ncols=2, frameon=False)
    return fig


#: The bars of :func:`twin_seeds_figure`: field of TwinSeedResult -> label.
TWIN_BARS = {
    "attention_on_twin": "attention on twin",
    "occlusion_first": "occlusion ranks twin first",
    "integrated_gradients_first": "IG ranks twin first",
    "gradient_x_input_first": "grad x input ranks twin first",
}


def twin_seeds_figure(results: Sequence[TwinSeedResult]) -> Figure:
    """Per seed of the twin task: attention on the twin, and how often each attribution ranks
    the twin first (a group of bars per seed; the accuracy in the tick label).

    Returns
    -------
    Figure with one axes and one bar container per entry of :data:`TWIN_BARS`.
    """
    if not results:
        raise ValueError("results is empty: give at least one TwinSeedResult")
    x = np.arange(len(results))
    width = 0.8 / len(TWIN_BARS)
    fig = Figure(figsize=(max(5.0, 1.1 * len(results) + 2.5), 3.8), layout="constrained")
    ax = fig.add_subplot()
    for k, (field, label) in enumerate(TWIN_BARS.items()):
        values = [getattr(r, field) for r in results]
        ax.bar(x - 0.4 + (k + 0.5) * width, values, width, color=head_color(k), label=label)
    ax.set_xticks(x, [f"seed {r.seed}\nacc {r.accuracy:.2f}" for r in results])
    ax.set_ylim(0.0, 1.05)
    ax.set_ylabel("share")
    ax.set_title("Twin task: equally accurate models,\nopposite attention", fontsize=LABEL_FONTSIZE)
    fig.legend(fontsize=SMALL_FONTSIZE, loc="outside right upper")
    return fig


def ranking_agreement_figure(agreement: RankingAgreement) -> Figure:
    """The mean Spearman correlation between every two methods' token rankings.

    Returns
    -------
    Figure with one axes: an (M, M) image of ``agreement.mean`` on a signed scale -1..1,
    each value written in its cell ("undef." where no input defines rho: drawn in the colour
    map's "bad" grey), methods as tick labels, and a colour bar.
    """
    mean = agreement.mean
    M = len(agreement.methods)
    fig = Figure(figsize=(1.1 * M + 2.6, 1.0 * M + 1.2), layout="constrained")
    ax = fig.add_subplot()
    signed = mpl.colormaps[SIGNED_CMAP].with_extremes(bad=MASKED_COLOR)  # nan: undefined
    image = ax.imshow(mean, cmap=signed, vmin=-1.0, vmax=1.0)
    for m in range(M):
        for n in range(M):
            undefined = bool(np.isnan(mean[m, n]))  # every input had a constant score row
            ax.text(
                n,
                m,
                "undef." if undefined else f"{mean[m, n]:.2f}",
                ha="center",
                va="center",
                fontsize=CELL_FONTSIZE,
                color="white" if abs(mean[m, n]) > 0.6 else "black",
            )
    ax.set_xticks(range(M), agreement.methods, rotation=30, ha="right")
    ax.set_yticks(range(M), agreement.methods)
    ax.set_title(
        f"Do explanations agree? mean Spearman rho over {len(agreement.rho)} inputs",
        fontsize=LABEL_FONTSIZE,
    )
    fig.colorbar(image, ax=ax, shrink=COLORBAR_SHRINK).set_label("Spearman rho")
    return fig


#: :func:`value_weighted_figure` writes every cell's number up to this many (real) tokens, and
#: draws every key of the query's row up to :data:`ALL_KEYS_UP_TO` keys; beyond, the
#: :data:`TOP_KEYS` largest of each measure.
VALUE_WEIGHTED_ANNOTATE = 16
ALL_KEYS_UP_TO = 24
TOP_KEYS = 10


def value_weighted_figure(
    trace: Trace,
    norms: np.ndarray,
    layer: int,
    head: int,
    tokens: Sequence[str] | None = None,
    *,
    batch: int = 0,
    query: int | None = None,
) -> Figure:
    """Attention weights beside Kobayashi et al.'s value-weighted norms, for one head.

    Left: the weights ``alpha_ij`` of the trace (row i = query, column j = key). Right:
    ``||alpha_ij f(x_j)||`` (:func:`~minitransformer.interpret.value_weighted_norms`), the
    length of what key j adds to query i's output. Each map has its own colour scale from 0
    (different units) and writes its numbers in the cells up to
    :data:`VALUE_WEIGHTED_ANNOTATE` tokens. Given a ``query``, its row is framed in both maps
    and two bar panels list that row's keys with both numbers (a key with a large weight but a
    short value vector shows a long bar on the left and a short one on the right). Padding is
    left out: only the batch row's real tokens are drawn.

    Parameters
    ----------
    trace : Trace
        The evaluation trace the norms were computed from (``blocks.{layer}.attn.weights``).
    norms : ndarray of shape (L, B, H, S, S)
        ``value_weighted_norms(model, trace)``.
    layer, head : int
    tokens : list of str, optional
        The S tokens of the batch row (padding included), drawn literally.
    batch : int
    query : int, optional
        A real position whose row is framed and drawn as bars.

    Returns
    -------
    Figure with two image axes ("attention weight ..." and "value-weighted ..."), each with
    a colour bar, and given ``query`` two bar axes whose bars are in key order.
    """
    layer, head = check_layer_head(trace, layer, head)
    name = f"blocks.{layer}.attn.weights"
    require_names(trace, [name], "value_weighted_figure")
    batch = check_batch(trace, batch, name)
    weights = trace[name][batch, head]  # (S, S)
    S = weights.shape[-1]
    expected = (trace.config.n_layers, trace[name].shape[0], trace.config.n_heads, S, S)
    if np.shape(norms) != expected:
        raise ValueError(
            f"norms must have shape {expected} (value_weighted_norms of this trace), got "
            f"{np.shape(norms)}"
        )
    labels = token_labels(tokens, S)
    real = np.flatnonzero(trace.real_tokens(batch))
    if query is not None:
        query = check_index(query, S, "query")
        if query not in real:
            raise ValueError(f"query {query} is a padding position: choose a real token")
    A = weights[np.ix_(real, real)].astype(np.float64)  # (n, n): real queries and keys
    N = np.asarray(norms)[layer, batch, head][np.ix_(real, real)]
    names = [labels[j] for j in real]
    n = len(real)
    panel = float(np.clip(0.34 * n + 1.6, 3.5, 7.0))
    bars = query is not None
    shown = label_positions(n, labels_that_fit(panel, TICK_FONTSIZE))
    label_inches = min(
        max(len(names[t]) for t in shown) * CHAR_EM * TICK_FONTSIZE / POINTS_PER_INCH, 1.5
    )
    width = 2 * (panel + 1.3) + (2 * 3.0 + 1.0 if bars else 0.0) + 0.4
    height = panel + 1.4 + label_inches
    fig = Figure(figsize=(width, height), layout="constrained")
    columns = [panel + 1.3, panel + 1.3] + ([3.0, 3.0] if bars else [])
    axes = fig.subplots(1, len(columns), width_ratios=columns)
    panels = [
        (A, f"attention weight α (layer {layer}, head {head})", weights_cmap(), 1.0),
        (N, "value-weighted ‖α f(x)‖ (Kobayashi et al. 2020)", NORMS_CMAP, float(N.max())),
    ]
    row = None if query is None else int(np.flatnonzero(real == query)[0])
    for ax, (values, title, cmap, top) in zip(axes[:2], panels, strict=True):
        image = ax.imshow(values, cmap=cmap, vmin=0.0, vmax=max(top, MIN_RANGE))
        if n <= VALUE_WEIGHTED_ANNOTATE:
            _write_cells(ax, values, image.to_rgba(values), SMALL_FONTSIZE)
        ax.set_title(wrap_to_width(title, panel + 0.8, TITLE_FONTSIZE), fontsize=TITLE_FONTSIZE)
        ticks = [names[t] for t in shown]
        ax.set_xticks(shown, ticks, rotation=90, fontsize=TICK_FONTSIZE, **LITERAL)
        ax.set_yticks(shown, ticks, fontsize=TICK_FONTSIZE, **LITERAL)
        ax.set_xlabel("key j")
        ax.set_ylabel("query i")
        fig.colorbar(image, ax=ax, shrink=COLORBAR_SHRINK)
        if row is not None:
            frame = Rectangle(
                (-0.5, row - 0.5), n, 1, fill=False, edgecolor=HIGHLIGHT_COLOR, linewidth=2
            )
            ax.add_patch(frame)
    if row is not None:
        _query_bars(axes[2:], names[row], A[row], N[row], names, real)
    return fig


def _write_cells(ax: Axes, values: np.ndarray, colours: np.ndarray, fontsize: float) -> None:
    """Each value of a 2-D map written in its cell (row i at y = i, column j at x = j), black
    or white on the cell's colour (``colours``: the map's (rows, columns, 4) RGBA)."""
    for (i, j), value in np.ndenumerate(values):
        color = text_color_on(colours[i, j])
        ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=fontsize, color=color)


def _query_bars(
    axes: Sequence[Axes],
    word: str,
    weights: np.ndarray,
    norms: np.ndarray,
    names: list[str],
    real: np.ndarray,
) -> None:
    """The keys of query ``word`` as bars: its (n,) weights on ``axes[0]``, its value-weighted
    norms on ``axes[1]``; every key up to :data:`ALL_KEYS_UP_TO`, else the :data:`TOP_KEYS`
    largest of either, in sentence order. ``names`` and ``real`` name and place the keys."""
    n = len(names)
    keys = np.arange(n)
    if n > ALL_KEYS_UP_TO:  # the largest keys of either measure, in sentence order
        largest = np.concatenate([np.argsort(-weights)[:TOP_KEYS], np.argsort(-norms)[:TOP_KEYS]])
        keys = np.unique(largest)  # sorted: sentence order
    key_names = [names[k] for k in keys]
    if len(set(key_names)) < len(key_names):  # a word twice: say which, by its position
        key_names = [f"{names[k]} ({real[k]})" for k in keys]
    for ax, values, what, colour in (
        (axes[0], weights, "weight α", head_color(0)),
        (axes[1], norms, "‖α f(x)‖", head_color(2)),
    ):
        y = np.arange(len(keys))
        ax.barh(y, values[keys], color=colour)
        top = float(values[keys].max()) or 1.0
        for k, v in enumerate(values[keys]):  # bar k is key keys[k]
            ax.text(v + 0.02 * top, k, f"{v:.3f}", va="center", fontsize=CELL_FONTSIZE)
        ax.set_xlim(0.0, 1.3 * top)
        ax.set_ylim(len(keys) - 0.5, -0.5)  # the first key on top, as in the maps
        ax.set_yticks(y, key_names, fontsize=TICK_FONTSIZE, **LITERAL)
        title = wrap_to_width(f"“{drawable(word)}” reads: {what}", 2.8, LABEL_FONTSIZE)
        ax.set_title(title, fontsize=LABEL_FONTSIZE, **LITERAL)
        ax.set_xlabel(what if len(keys) == n else f"{what} (largest {TOP_KEYS} of each)")
