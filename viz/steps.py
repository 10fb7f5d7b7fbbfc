"""Step-by-step attention for one head: every matrix of the computation, in order.

::

    X  ->  Q = X W_Q + b_Q,   K = X W_K + b_K,   V = X W_V + b_V     (this head's columns)
       ->  Q Kᵀ  ->  ÷ √d_head = scores  ->  + mask  ->  softmax = weights
       ->  z = weights V  ->  concat (all heads)  ->  attn.out = concat W_O + b_O

Every matrix is read from the trace (and the weights from ``params``); nothing is recomputed.
The one exception is a display rescale: the trace records ``scores = Q Kᵀ / √d_head``, and the
"Q Kᵀ" panel shows ``scores · √d_head`` (a constant factor, not a matrix product), so the
division by √d_head can be seen as its own step: same pattern, smaller numbers.

:func:`step_panels` lists the panels as data (one :class:`StepPanel` per matrix);
:func:`attention_steps` draws them all as one figure, :func:`attention_step_frames` one
numbered figure per step for slides, and :func:`save_frames` writes those to files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import matplotlib as mpl
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colorbar import Colorbar
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from matplotlib.layout_engine import ConstrainedLayoutEngine
from matplotlib.patches import ConnectionPatch, Rectangle

from minitransformer.trace import Trace
from viz.heatmap import masked_runs
from viz.style import (
    HIGHLIGHT_COLOR,
    MASKED_COLOR,
    MASKED_HATCH,
    MAX_LABELS,
    SIGNED_CMAP,
    check_batch,
    check_layer_head,
    label_positions,
    require_names,
    signed_limit,
    token_labels,
    weights_cmap,
)

#: Axis names of the panels: token axes get token labels, the others their size.
TOKEN_AXES = ("token", "query", "key")
#: Frames write the values into the cells of matrices up to this many rows and columns.
FRAME_ANNOTATE_MAX = 10
#: At most this many token labels per axis on the small panels of :func:`attention_steps`
#: (about 3 inches each): more would overlap. The single-panel frames use style.MAX_LABELS.
GRID_MAX_LABELS = 16


@dataclass(frozen=True)
class StepPanel:
    """One matrix of the step-by-step figure.

    Attributes
    ----------
    number : int
        Its step number (1, 2, ...), in reading order.
    key : str
        Short id used for layout and tests: ``"X"``, ``"W_Q"``, ``"Q"``, ``"QK"``,
        ``"scores"``, ``"masked"``, ``"weights"``, ``"z"``, ``"concat"``, ``"W_O"``, ``"out"``...
    name : str
        What the matrix is, as a formula (``"Q = X W_Q + b_Q"``).
    array : ndarray of shape (rows, cols)
        The values drawn.
    rows, cols : str
        What each axis indexes: ``"token"``, ``"query"``, ``"key"``, ``"d_model"``, ``"d_head"``.
    kind : str
        ``"signed"`` (diverging colours centred at 0) or ``"weights"`` (attention weights).
    explain : str
        One sentence for a slide.
    mask : ndarray of bool, optional
        True where a cell is masked (drawn grey and hatched, not as a value).
    outline : tuple (axis, start, stop), optional
        A block of rows (``"rows"``) or columns (``"cols"``) to outline: this head's part.
    """

    number: int
    key: str
    name: str
    array: np.ndarray
    rows: str
    cols: str
    kind: str
    explain: str
    mask: np.ndarray | None = None
    outline: tuple[str, int, int] | None = None

    @property
    def title(self) -> str:
        """``"5. Q = X W_Q + b_Q  (9 × 8)"``: number, formula and shape."""
        r, c = self.array.shape
        return f"{self.number}. {self.name}  ({r} × {c})"


def attention_input_name(trace: Trace, layer: int) -> str:
    """The trace name of X, the (B, S, D) input the queries, keys and values are made from.

    Post-norm: the block input (``embed.out`` or ``blocks.{layer-1}.out``);
    pre-norm: the normalised block input ``blocks.{layer}.ln1.out``.
    """
    if trace.config.norm == "pre":
        return f"blocks.{layer}.ln1.out"
    return "embed.out" if layer == 0 else f"blocks.{layer - 1}.out"


def as_params(params: Any) -> Mapping[str, np.ndarray]:
    """``params`` as a name -> array mapping: a dict as it is, an Encoder's ``.params``.

    Raises ``TypeError`` for anything else.
    """
    if not isinstance(params, Mapping) and isinstance(getattr(params, "params", None), Mapping):
        params = params.params  # an Encoder: use its parameter dict
    if not isinstance(params, Mapping):
        raise TypeError(f"params must be model.params (a dict), got {type(params).__name__}")
    return params


def head_params(params: Any, layer: int, d_model: int) -> dict[str, np.ndarray]:
    """``W_Q, W_K, W_V, W_O`` of block ``layer`` from ``params`` (a dict, or a model's ``.params``).

    Raises ``TypeError`` if ``params`` is not a mapping, ``KeyError`` naming a missing weight,
    ``ValueError`` if a weight is not (d_model, d_model) (params of another model).
    """
    params = as_params(params)
    out = {}
    for w in ("W_Q", "W_K", "W_V", "W_O"):
        name = f"blocks.{layer}.attn.{w}"
        if name not in params:
            raise KeyError(f"params has no {name!r}: pass the params of the model of the trace")
        value = np.asarray(params[name])
        if value.shape != (d_model, d_model):
            raise ValueError(
                f"params[{name!r}] has shape {value.shape} but the trace's d_model is {d_model}: "
                "pass the params of the model that made the trace"
            )
        out[w] = value
    return out


def step_panels(
    trace: Trace, layer: int, head: int, params: Any = None, *, batch: int = 0
) -> list[StepPanel]:
    """The matrices of one head's attention, in order, each read from the trace.

    Parameters
    ----------
    trace : Trace
        Needs X (see :func:`attention_input_name`) and ``blocks.{layer}.attn.`` ``q, k, v,
        scores, mask, weights, z, concat, out``.
    layer, head : int
    params : dict or Encoder, optional
        The model's parameters; when given, the panels include this head's slices
        ``W_Q[:, h·Dh:(h+1)·Dh]`` (also W_K, W_V) and ``W_O``.
    batch : int
        Which sequence of the batch.

    Returns
    -------
    list of StepPanel, numbered from 1.
    """
    layer, head = check_layer_head(trace, layer, head)
    b = f"blocks.{layer}.attn"
    x_name = attention_input_name(trace, layer)
    parts = ("q", "k", "v", "scores", "mask", "weights", "z", "concat", "out")
    require_names(trace, [x_name, *(f"{b}.{p}" for p in parts)], "attention_steps")
    batch = check_batch(trace, batch, f"{b}.q")
    D, Dh = trace.config.d_model, trace.config.d_head
    cols = slice(head * Dh, (head + 1) * Dh)
    S = trace[f"{b}.q"].shape[2]
    mask = np.broadcast_to(trace[f"{b}.mask"][batch, 0], (S, S))
    scores = trace[f"{b}.scores"][batch, head]
    hd = f"d_head (head {head})"
    x_what = "LN1(block input)" if trace.config.norm == "pre" else "block input"

    def panel(key: str, name: str, array: np.ndarray, rows: str, cols_: str, explain: str,
              kind: str = "signed", **extra: Any) -> StepPanel:  # fmt: skip
        return StepPanel(0, key, name, np.asarray(array), rows, cols_, kind, explain, **extra)

    panels = [
        panel("X", f"X = {x_what}", trace[x_name][batch], "token", "d_model",
              f"One row per token: the {D}-dimensional vectors attention reads ({x_name})."),
    ]  # fmt: skip
    if params is not None:
        W = head_params(params, layer, D)
        for w in ("W_Q", "W_K", "W_V"):
            explain = f"The {Dh} columns of {w} that belong to head {head}."
            panels.append(panel(w, f"{w}[:, head {head}]", W[w][:, cols], "d_model", hd, explain))
    for p, w, role in (("q", "Q", "query"), ("k", "K", "key"), ("v", "V", "value")):
        panels.append(
            panel(w, f"{w} = X W_{w} + b_{w}", trace[f"{b}.{p}"][batch, head], "token", hd,
                  f"Each token's {role} for head {head}: X times this head's columns of W_{w}, "
                  "plus bias.")
        )  # fmt: skip
    panels += [
        panel("QK", "Q Kᵀ", scores * np.sqrt(Dh), "query", "key",
              "Dot product of every query with every key (recorded scores × √d_head)."),
        panel("scores", f"scores = Q Kᵀ / √{Dh}", scores, "query", "key",
              f"Divided by √d_head = {np.sqrt(Dh):.3g}: same pattern, numbers a softmax can use."),
        panel("masked", "scores + mask", scores, "query", "key",
              "Keys a query may not see (grey) are set to −∞, so they get weight 0.", mask=~mask),
        panel("weights", "weights = softmax(row)", trace[f"{b}.weights"][batch, head], "query",
              "key", "Softmax of each row: positive weights that sum to 1 over the keys.",
              kind="weights", mask=~mask),
        panel("z", "z = weights V", trace[f"{b}.z"][batch, head], "token", hd,
              "Each token's output of this head: the weighted average of the value rows."),
        panel("concat", "concat(z of all heads)", trace[f"{b}.concat"][batch], "token", "d_model",
              f"The heads' z side by side; head {head} is outlined.",
              outline=("cols", cols.start, cols.stop)),
    ]  # fmt: skip
    if params is not None:
        panels.append(panel("W_O", "W_O", W["W_O"], "d_model", "d_model",
                            f"The output projection; the outlined rows read head {head}'s z.",
                            outline=("rows", cols.start, cols.stop)))  # fmt: skip
    out = trace[f"{b}.out"][batch]
    explain = "Attention's output, added to the residual stream."
    panels.append(panel("out", "attn.out = concat W_O + b_O", out, "token", "d_model", explain))
    return [replace(p, number=n) for n, p in enumerate(panels, 1)]


# -- drawing ------------------------------------------------------------------------------


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
    fmt: str = ".2g",
    fontsize: float | None = None,
    max_labels: int = MAX_LABELS,
) -> None:
    """Draw a 2-D array as an image on ``ax``.

    ``kind="signed"``: the diverging map :data:`~viz.style.SIGNED_CMAP`, white at 0 and
    symmetric limits ±``limit`` (default :func:`~viz.style.signed_limit`: max|value|, or the
    99th percentile of |value| when outliers exceed it :data:`~viz.style.OUTLIER_RATIO` times;
    the colour bar then shows arrows for the clipped values). ``kind="weights"``:
    :func:`~viz.style.weights_cmap` from 0 to ``limit`` (default the largest value).
    Cells where ``mask`` is True are grey and hatched. Labels are thinned for long axes (at
    most ``max_labels`` per axis);
    ``annotate`` writes each value in its cell (format ``fmt``, size ``fontsize``, default
    scaled to the number of cells); ``colorbar`` is ``"bottom"``,
    ``"right"`` or ``None``.
    """
    shown = _masked(array, mask)
    vmin, vmax, clipped = color_scale(array, kind, mask, limit)
    cmap = (
        weights_cmap()
        if kind == "weights"
        else mpl.colormaps[SIGNED_CMAP].with_extremes(bad=MASKED_COLOR)
    )
    image = ax.imshow(shown, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto",
                      interpolation="nearest")  # fmt: skip
    if mask is not None:
        for i, start, stop in masked_runs(~np.asarray(mask)):  # runs of masked cells
            ax.add_patch(
                Rectangle((start - 0.5, i - 0.5), stop - start, 1, fill=False,
                          hatch=MASKED_HATCH, lw=0, color="#8c8c8c")
            )  # fmt: skip
    for labels, set_ticks, n in ((row_labels, ax.set_yticks, array.shape[0]),
                                 (col_labels, ax.set_xticks, array.shape[1])):  # fmt: skip
        if labels is None:
            set_ticks([])
        else:
            ticks = label_positions(n, max_labels)
            rotation = 90 if set_ticks == ax.set_xticks else 0
            set_ticks(ticks, [labels[t] for t in ticks], rotation=rotation)
    if annotate:
        rows, cols = array.shape
        size = float(np.clip(140 / max(rows, cols, 1), 5, 9)) if fontsize is None else fontsize
        for i, j in _annotated_cells(shown):
            ax.text(j, i, format(array[i, j], fmt), ha="center", va="center", fontsize=size,
                    color=_text_color(array[i, j], vmin, vmax))  # fmt: skip
    if colorbar is not None:
        fig = ax.get_figure(root=True)
        assert fig is not None
        horizontal = colorbar == "bottom"
        extend = "both" if clipped else "neither"
        bar = fig.colorbar(image, ax=ax, location=colorbar, shrink=0.8, extend=extend,
                           aspect=_bar_aspect(horizontal), pad=0.02)  # fmt: skip
        bar.ax.tick_params(labelsize=7)


def _masked(array: np.ndarray, mask: np.ndarray | None) -> np.ma.MaskedArray:
    """``array`` as a masked array (``mask`` True = masked cell), as draw_matrix shows it."""
    return np.ma.masked_array(array, mask=np.zeros(array.shape, bool) if mask is None else mask)


def color_scale(
    array: np.ndarray,
    kind: str = "signed",
    mask: np.ndarray | None = None,
    limit: float | None = None,
) -> tuple[float, float, bool]:
    """The colour limits ``(vmin, vmax)`` :func:`draw_matrix` uses for ``array`` (cells where
    ``mask`` is True left out), and whether some values lie beyond them (the colour bar then
    has arrows). See :func:`draw_matrix`."""
    shown = _masked(array, mask)
    if kind == "weights":
        top = float(np.max(shown.data)) if limit is None else limit
        return 0.0, max(top, 1e-12), False
    top = signed_limit(np.abs(shown.compressed())) if limit is None else limit
    clipped = bool(shown.count()) and float(np.max(np.abs(shown))) > top
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
    fmt: str = ".2g",
) -> None:
    """Show new values in a matrix drawn by :func:`draw_matrix`, without drawing it anew.

    Why: building a figure (axes, ticks, colour bars, layout) costs several times more than
    drawing it, so an interactive view (:mod:`viz.explorer`) that shows another head or
    another query in the same figure swaps the data instead. The result is what
    :func:`draw_matrix` would draw with the same arguments: the image's values and colour
    limits (its colour bar follows, arrows included), and the numbers written in the cells.
    ``array`` must have the shape, ``mask`` the masked cells and ``annotate`` the value of the
    first drawing (the texts written in the cells are rewritten, not added).
    """
    shown = _masked(array, mask)
    vmin, vmax, clipped = color_scale(array, kind, mask, limit)
    image = ax.images[0]
    drawn = np.shape(np.asarray(image.get_array()))
    if drawn != shown.shape:
        raise ValueError(f"array has shape {array.shape} but the matrix drawn has shape {drawn}: "
                         "draw it anew with draw_matrix")  # fmt: skip
    image.set_data(shown)
    image.set_clim(vmin, vmax)
    extend: Literal["neither", "both"] = "both" if clipped else "neither"
    if image.colorbar is not None and image.colorbar.extend != extend:
        _replace_colorbar(image, image.colorbar, extend)
    if annotate:
        for text, (i, j) in zip(ax.texts, _annotated_cells(shown), strict=False):
            text.set_text(format(array[i, j], fmt))
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


def _draw_panel(
    ax: Axes,
    panel: StepPanel,
    labels: list[str],
    colorbar: str | None,
    fontsize: float = 8,
    annotate: bool = False,
    max_labels: int = MAX_LABELS,
) -> None:
    """One step panel: the matrix, token labels on token axes, sizes on the others."""
    draw_matrix(
        ax,
        panel.array,
        kind=panel.kind,
        mask=panel.mask,
        row_labels=labels if panel.rows in TOKEN_AXES else None,
        col_labels=labels if panel.cols in TOKEN_AXES else None,
        colorbar=colorbar,
        annotate=annotate,
        max_labels=max_labels,
    )
    ax.set_title(panel.title, fontsize=fontsize + 2)
    r, c = panel.array.shape
    ax.set_ylabel(_axis_label(panel.rows, r), fontsize=fontsize)
    ax.set_xlabel(_axis_label(panel.cols, c), fontsize=fontsize)
    if panel.outline is not None:
        axis, start, stop = panel.outline
        xy, size = ((start - 0.5, -0.5), (stop - start, r)) if axis == "cols" else (
            (-0.5, start - 0.5), (c, stop - start))  # fmt: skip
        ax.add_patch(Rectangle(xy, *size, fill=False, lw=2.0, edgecolor=HIGHLIGHT_COLOR))


def _axis_label(axis: str, n: int) -> str:
    """A panel's axis label: "query" for token axes, else the axis with its size "d_model (32)"."""
    return axis if axis in TOKEN_AXES else f"{axis} ({n})"


def _arrow(fig: Figure, a: Axes, b: Axes, down: bool = False) -> None:
    """An arrow from panel ``a`` to panel ``b`` (right-to-left edge, or bottom-to-top)."""
    start, end = ((0.5, 0.0), (0.5, 1.0)) if down else ((1.0, 0.5), (0.0, 0.5))
    fig.add_artist(
        ConnectionPatch(start, end, coordsA=a.transAxes, coordsB=b.transAxes,
                        arrowstyle="-|>", mutation_scale=18, lw=2.0, color="#444444",
                        shrinkA=2, shrinkB=2, zorder=10)
    )  # fmt: skip


def attention_steps(
    trace: Trace,
    layer: int,
    head: int,
    tokens: Sequence[str] | None = None,
    params: Any = None,
    *,
    batch: int = 0,
) -> Figure:
    """One figure with every step of one head's attention, numbered, shapes in the titles.

    Rows: (1) X and Q, K, V (with this head's slices of W_Q, W_K, W_V above them when
    ``params`` is given); (2) Q Kᵀ → ÷√d_head → + mask → softmax; (3) z = weights V →
    concat of all heads → (W_O) → attn.out. Signed matrices use the diverging map centred at
    0 (each panel its own symmetric scale, shown by its colour bar), weights the attention map;
    masked cells are grey and hatched; this head's block is outlined in concat and W_O.

    Parameters
    ----------
    trace : Trace
        See :func:`step_panels` for the names it needs.
    layer, head : int
    tokens : sequence of str, optional
        Token strings (length S) for the token axes.
    params : dict or Encoder, optional
        Show W_Q, W_K, W_V (this head's columns) and W_O too.
    batch : int
        Which sequence of the batch.

    Returns
    -------
    matplotlib Figure (made without pyplot).
    """
    panels = {p.key: p for p in step_panels(trace, layer, head, params, batch=batch)}
    labels = token_labels(tokens, panels["Q"].array.shape[0])
    with_w = params is not None
    rows = 4 if with_w else 3
    # wider gaps between panels than the default, to leave room for the arrows
    fig = Figure(figsize=(17, 4.3 * rows), layout=ConstrainedLayoutEngine(wspace=0.06))
    grid = fig.add_gridspec(rows, 4)
    top = 1 if with_w else 0
    slots: dict[str, Any] = {"X": grid[0 : top + 1, 0]}
    if with_w:
        slots.update({"W_Q": grid[0, 1], "W_K": grid[0, 2], "W_V": grid[0, 3]})
    slots.update({"Q": grid[top, 1], "K": grid[top, 2], "V": grid[top, 3]})
    slots.update({k: grid[top + 1, i] for i, k in enumerate(("QK", "scores", "masked", "weights"))})
    last = ("z", "concat", "W_O", "out") if with_w else ("z", "concat", "out")
    slots.update({k: grid[top + 2, i] for i, k in enumerate(last)})

    axes = {key: fig.add_subplot(slot) for key, slot in slots.items()}
    for key, ax in axes.items():
        _draw_panel(ax, panels[key], labels, colorbar="bottom", max_labels=GRID_MAX_LABELS)
    arrows = [("QK", "scores"), ("scores", "masked"), ("masked", "weights")]
    arrows += list(zip(last, last[1:], strict=False))
    for a, b in arrows:
        _arrow(fig, axes[a], axes[b])
        if panels[b].rows in TOKEN_AXES:  # same tokens as the panel on its left: keep the
            axes[b].tick_params(labelleft=False)  # gap free for the arrow
            axes[b].set_ylabel("")
        else:  # no row label in the gap either: say both sizes underneath
            r, c = panels[b].array.shape
            axes[b].set_ylabel("")
            axes[b].set_xlabel(f"rows: {panels[b].rows} ({r}), columns: {panels[b].cols} ({c})",
                               fontsize=8)  # fmt: skip
    fig.suptitle(
        f"Layer {layer}, head {head}: attention step by step "
        f"(d_model {trace.config.d_model}, d_head {trace.config.d_head}, "
        f"{len(labels)} tokens)",
        fontsize=14,
    )
    return fig


def attention_step_frames(
    trace: Trace,
    layer: int,
    head: int,
    tokens: Sequence[str] | None = None,
    params: Any = None,
    *,
    batch: int = 0,
) -> list[Figure]:
    """The steps of :func:`attention_steps` as separate figures, one per slide.

    Frame n shows panel n large, titled ``"Step n of N · layer l, head h"`` above the panel's
    formula and shape, with one explanatory sentence underneath. Matrices of at most
    :data:`FRAME_ANNOTATE_MAX` rows and columns have their values written in the cells.

    Returns
    -------
    list of matplotlib Figure, in step order.
    """
    panels = step_panels(trace, layer, head, params, batch=batch)
    labels = token_labels(tokens, panels[0].array.shape[0])
    return [_frame(panel, len(panels), labels, layer, head) for panel in panels]


def attention_step_frame(
    trace: Trace,
    layer: int,
    head: int,
    step: int,
    tokens: Sequence[str] | None = None,
    params: Any = None,
    *,
    batch: int = 0,
) -> Figure:
    """Frame number ``step`` (from 1) of :func:`attention_step_frames`, drawn alone."""
    panels = step_panels(trace, layer, head, params, batch=batch)
    if not isinstance(step, int) or not 1 <= step <= len(panels):
        raise IndexError(f"step must be an int in [1, {len(panels)}], got {step!r}")
    labels = token_labels(tokens, panels[0].array.shape[0])
    return _frame(panels[step - 1], len(panels), labels, layer, head)


def _frame(panel: StepPanel, n_steps: int, labels: list[str], layer: int, head: int) -> Figure:
    fig = Figure(figsize=(8, 6), layout="constrained")
    ax = fig.add_subplot()
    _draw_panel(ax, panel, labels, colorbar="right", fontsize=11, annotate=_annotated(panel))
    fig.suptitle(_frame_title(panel, n_steps, layer, head), fontsize=11, color="#555555")
    fig.supxlabel(panel.explain, fontsize=10)
    return fig


def _annotated(panel: StepPanel) -> bool:
    """Frames write the values of small matrices into their cells."""
    return max(panel.array.shape) <= FRAME_ANNOTATE_MAX


def _frame_title(panel: StepPanel, n_steps: int, layer: int, head: int) -> str:
    return f"Step {panel.number} of {n_steps} · layer {layer}, head {head}"


def set_figure_texts(fig: Figure, suptitle: str, supxlabel: str | None = None) -> None:
    """Change the words of ``fig``'s title (and bottom label), keeping their places.

    ``fig.suptitle(text)`` would also move the title back to its default height, undoing the
    constrained layout that placed it, in a figure updated in place after its layout was
    fixed. matplotlib has no public handle on these texts, hence ``_suptitle``.
    """
    fig._suptitle.set_text(suptitle)  # type: ignore[attr-defined]
    if supxlabel is not None:
        fig._supxlabel.set_text(supxlabel)  # type: ignore[attr-defined]


def update_step_frame(
    fig: Figure,
    trace: Trace,
    layer: int,
    head: int,
    step: int,
    params: Any = None,
    *,
    batch: int = 0,
) -> None:
    """Show another layer or head in a frame made by :func:`attention_step_frame`, in place.

    Why: the explorer follows the head control faster by swapping the data than by building
    the figure anew (axes, colour bar, constrained layout). Afterwards the figure shows what
    ``attention_step_frame(trace, layer, head, step, tokens, params, batch=batch)`` would draw:
    the matrix and its colour scale, the numbers in the cells, the outlined block of this
    head, the titles and the explanation. The frame must show the same step of a trace with
    the same tokens and mask (the panel's shape and masked cells); else ``ValueError``.
    """
    panels = step_panels(trace, layer, head, params, batch=batch)
    if not isinstance(step, int) or not 1 <= step <= len(panels):
        raise IndexError(f"step must be an int in [1, {len(panels)}], got {step!r}")
    panel = panels[step - 1]
    ax = fig.axes[0]
    update_matrix(ax, panel.array, kind=panel.kind, mask=panel.mask, annotate=_annotated(panel))
    ax.title.set_text(panel.title)
    ax.yaxis.label.set_text(_axis_label(panel.rows, panel.array.shape[0]))
    ax.xaxis.label.set_text(_axis_label(panel.cols, panel.array.shape[1]))
    if panel.outline is not None:  # this head's block of concat or W_O
        axis, start, _ = panel.outline
        outline = ax.patches[-1]  # drawn last, after the hatching of masked cells
        assert isinstance(outline, Rectangle)
        if axis == "cols":
            outline.set_x(start - 0.5)
        else:
            outline.set_y(start - 0.5)
    set_figure_texts(fig, _frame_title(panel, len(panels), layer, head), panel.explain)


def save_frames(frames: Sequence[Figure], directory: str | Path, fmt: str = "png") -> list[Path]:
    """Save frames as ``step_01.<fmt>``, ``step_02.<fmt>``, ... in ``directory`` (created).

    Returns
    -------
    list of Path, the files written, in order.
    """
    if fmt not in ("png", "svg", "pdf"):
        raise ValueError(f"fmt must be 'png', 'svg' or 'pdf', got {fmt!r}")
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for n, fig in enumerate(frames, 1):
        path = folder / f"step_{n:02d}.{fmt}"
        fig.savefig(path, dpi=100)
        paths.append(path)
    return paths
