"""Step-by-step attention for one head: every matrix of the computation, in order.

::

    X  ->  Q = X W_Q + b_Q,   K = X W_K + b_K,   V = X W_V + b_V     (this head's columns)
       ->  Q Kᵀ  ->  ÷ √d_head = scores  ->  + mask  ->  softmax = weights
       ->  z = weights V  ->  concat (all heads)  ->  attn.out = concat W_O + b_O

Every matrix is read from the trace (``blocks.{l}.attn.`` ``q, k, v, qk, scores, mask,
weights, z, concat, out`` and the block input X) or from the parameters; nothing of the model
is computed again. Every title comes from ``trace.config`` (``scale_scores``, ``d_head``,
``causal``) and from what the trace knows of its inputs: a name in ``trace.patched`` is titled
"patched" (a what-if replaced it, so its formula does not hold), and padding positions
(``trace.real_tokens(batch)`` False) are drawn grey.

The figures show the trace's arrays through these identities only (each checked by
``tests/test_viz_steps.py``):

* **+ mask**: ``scores + mask`` is the recorded scores where the mask lets a query see a key
  and −∞ where it does not (``masked_softmax``), so it is drawn as the scores with the masked
  cells hatched, and its side panel draws the recorded mask as 0 / −∞.
* **head slices**: head h's columns of W_Q, W_K and W_V are ``[:, h·Dh:(h+1)·Dh]``, and the
  rows of W_O that multiply its z are ``W_O[h·Dh:(h+1)·Dh, :]`` (``split_heads`` and
  ``merge_heads``).
* **counts and sums for the eye**: the histograms beside Q Kᵀ and the scores count the
  recorded values; the column beside the weights adds each recorded row of weights over all
  keys (1 for every query that sees a key).

Padding positions are drawn grey, without values, in every panel whose rows are tokens, and
never set a colour scale: the model computes rows for them (a batch is rectangular), but no
real token reads them. Masked keys are hatched. Long inputs show a window of positions
(``window=``; by default the first :data:`MAX_WINDOW`), and the figure says which.

:func:`step_panels` lists the panels as data (one :class:`StepPanel` per matrix);
:func:`attention_steps` draws them all as one figure, :func:`attention_step_frames` one
numbered figure per step for slides, and :func:`save_frames` writes those to files.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Mapping, Sequence
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
from matplotlib.patches import ConnectionPatch, Rectangle, StepPatch

from minitransformer.trace import Trace
from viz.heatmap import masked_runs
from viz.style import (
    HIGHLIGHT_COLOR,
    LITERAL,
    MASKED_COLOR,
    MASKED_HATCH,
    MAX_LABELS,
    SIGNED_CMAP,
    check_batch,
    check_layer_head,
    label_positions,
    labels_that_fit,
    plural,
    require_names,
    signed_limit,
    token_labels,
    weights_cmap,
)

#: Axis names of the panels: token axes get token labels, the others their size.
TOKEN_AXES = ("token", "query", "key")
#: Frames write the values into the cells of matrices up to this many rows and columns.
FRAME_ANNOTATE_MAX = 16
#: Inputs longer than this show a window of this many positions (``window=``).
MAX_WINDOW = 64
#: Size of one frame (a slide), in inches: 1000 × 620 px at 100 dpi.
FRAME_SIZE = (10.0, 6.2)
#: Font size of the token labels of a frame, and the room for them (inches along an axis).
FRAME_LABEL_FONTSIZE = 9.0
FRAME_LABEL_INCHES = 4.4
#: Font size of the token labels of the small panels of :func:`attention_steps`, and the room
#: for them (about 3 inches a panel).
GRID_LABEL_FONTSIZE = 8.0
GRID_LABEL_INCHES = 2.6
#: At most this many token labels per axis on the small panels of :func:`attention_steps`.
GRID_MAX_LABELS = labels_that_fit(GRID_LABEL_INCHES, GRID_LABEL_FONTSIZE)
#: At most this many token labels per axis on a frame.
FRAME_MAX_LABELS = labels_that_fit(FRAME_LABEL_INCHES, FRAME_LABEL_FONTSIZE)
#: Characters per line of a frame's explanation (10-point text across a 10-inch slide).
EXPLAIN_WIDTH = 120
#: Bins of the histograms beside Q Kᵀ and the scores.
HISTOGRAM_BINS = 31
#: Colour of padding rows and of the "other keys" row: grey without hatching (masked keys
#: are the same grey, hatched).
PADDING_COLOR = MASKED_COLOR
#: Frames write "padding" across a block of at least this many grey rows.
PADDING_NOTE_ROWS = 3
#: Colours of the two histograms: Q Kᵀ in grey, the scores in the signed map's red.
QK_COLOR, SCORES_COLOR = "#8c8c8c", "#b2182b"


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
        What the matrix is, as a formula (``"Q = X W_Q + b_Q"``), or ``"... (patched)"``.
    array : ndarray of shape (rows, cols)
        The values drawn.
    rows, cols : str
        What each axis indexes: ``"token"``, ``"query"``, ``"key"``, ``"d_model"``, ``"d_head"``.
    kind : str
        ``"signed"`` (diverging colours centred at 0) or ``"weights"`` (attention weights).
    explain : str
        What a slide says under the matrix: true for this trace.
    mask : ndarray of bool, optional
        True where a key is masked for a query (drawn grey and hatched, not as a value).
    outline : tuple (axis, start, stop), optional
        A block of rows (``"rows"``) or columns (``"cols"``) to outline: this head's part.
    padding : ndarray of bool of shape (rows,), optional
        True for the rows of padding positions: drawn grey, left out of the colour scale.
    limit : float, optional
        The colour limit (±limit) shared by Q Kᵀ, the scores and the masked scores; None: the
        panel's own (see :func:`color_scale`).
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
    padding: np.ndarray | None = None
    limit: float | None = None

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


def padding_positions(trace: Trace, batch: int, n: int) -> np.ndarray:
    """``(n,)`` bool, True at the padding positions of batch row ``batch`` (attention mask 0).

    From ``trace.real_tokens(batch)``; a trace that does not know its mask (one made by hand,
    not by ``run_with_trace``) has no padding.
    """
    if trace.padding_mask is None:
        return np.zeros(n, bool)
    return ~np.asarray(trace.real_tokens(batch), bool)


def token_window(n: int, window: slice | None = None) -> slice:
    """The positions shown, as ``slice(start, stop)`` within ``n`` positions.

    ``None``: all of them up to :data:`MAX_WINDOW`, else the first ``MAX_WINDOW``. A slice is
    resolved like list indexing (``slice(100, None)``, ``slice(-32, None)``) and must keep at
    least one position in steps of 1; anything else raises ``TypeError``/``ValueError``.
    """
    if window is None:
        return slice(0, min(n, MAX_WINDOW))
    if not isinstance(window, slice):
        raise TypeError(f"window must be a slice of positions or None, got {window!r}")
    start, stop, step = window.indices(n)
    if step != 1 or stop <= start:
        raise ValueError(
            f"window must select at least one of the {n} positions in steps of 1, got {window!r}"
        )
    return slice(start, stop)


def window_note(window: slice, n: int) -> str:
    """``"positions 0–63 of 200"``, or ``""`` when the window shows all ``n`` positions."""
    if window.stop - window.start == n:
        return ""
    return f"positions {window.start}–{window.stop - 1} of {n}"


def mask_explanation(trace: Trace, batch: int, n: int) -> str:
    """What "+ mask" does to batch row ``batch`` (``n`` positions), in words: which keys are
    masked and why.

    Padding keys (``trace.real_tokens``) and the causal mask (``config.causal``) are named;
    with neither, it says that no key is masked and the scores pass unchanged.
    """
    padding = int(padding_positions(trace, batch, n).sum())
    causal = trace.config.causal
    if not padding and not causal:
        return ("No key is masked in this input (no padding, not causal): + mask adds 0 "
                "everywhere, so the scores pass unchanged.")  # fmt: skip
    parts = []
    if padding:
        parts.append(f"the {plural(padding, 'padding position')} (attention mask 0) get −∞ as "
                     "keys for every query")  # fmt: skip
    if causal:
        parts.append("each query's later keys get −∞ (causal mask): a token reads only itself "
                     "and earlier tokens")  # fmt: skip
    sentence = "; ".join(parts)
    return f"Hatched: {sentence}. exp(−∞) = 0, so those keys get weight 0."


def _padding_sentence(padding: np.ndarray) -> str:
    n = int(padding.sum())
    rows = "row" if n == 1 else "rows"
    return (f" Grey {rows}: {plural(n, 'padding position')} (attention mask 0), computed by the "
            "model but read by no real token.")  # fmt: skip


def step_panels(
    trace: Trace,
    layer: int,
    head: int,
    params: Any = None,
    *,
    batch: int = 0,
    window: slice | None = None,
) -> list[StepPanel]:
    """The matrices of one head's attention, in order, each read from the trace.

    Parameters
    ----------
    trace : Trace
        Needs X (see :func:`attention_input_name`) and ``blocks.{layer}.attn.`` ``q, k, v,
        qk, scores, mask, weights, z, concat, out``.
    layer, head : int
    params : dict or Encoder, optional
        The model's parameters; when given, the panels include this head's slices
        ``W_Q[:, h·Dh:(h+1)·Dh]`` (also W_K, W_V) and the rows ``W_O[h·Dh:(h+1)·Dh, :]``.
    batch : int
        Which sequence of the batch.
    window : slice, optional
        The positions shown on token axes (see :func:`token_window`; default: all, or the
        first :data:`MAX_WINDOW` of a longer input).

    Returns
    -------
    list of StepPanel, numbered from 1.
    """
    return _panels(trace, layer, head, params, batch, window)[0]


def _panels(
    trace: Trace, layer: int, head: int, params: Any, batch: int, window: slice | None
) -> tuple[list[StepPanel], slice, int]:
    """:func:`step_panels`, the window of positions they show and the input length S."""
    layer, head = check_layer_head(trace, layer, head)
    b = f"blocks.{layer}.attn"
    x_name = attention_input_name(trace, layer)
    parts = ("q", "k", "v", "qk", "scores", "mask", "weights", "z", "concat", "out")
    require_names(trace, [x_name, *(f"{b}.{p}" for p in parts)], "attention_steps")
    batch = check_batch(trace, batch, f"{b}.q")
    config = trace.config
    D, Dh, H = config.d_model, config.d_head, config.n_heads
    cols = slice(head * Dh, (head + 1) * Dh)
    span = f"{cols.start}–{cols.stop - 1}"
    S = trace[f"{b}.q"].shape[2]
    win = token_window(S, window)
    keys = (win, win)  # a (query, key) matrix cut to the window
    masked = ~np.broadcast_to(trace[f"{b}.mask"][batch, 0], (S, S))[keys]
    padding = padding_positions(trace, batch, S)[win]
    rows_out = padding if padding.any() else None
    pad_text = _padding_sentence(padding) if padding.any() else ""

    def read(name: str, *index: int) -> np.ndarray:
        """The entry ``name`` of this batch row (and of ``index``: the head)."""
        where = (batch, *index)  # a tuple index: [batch] or [batch, head]
        return np.asarray(trace[name][where])

    def named(name: str, formula: str) -> str:
        """The formula, or "... (patched)" when a patch replaced the entry."""
        return f"{formula.split(' = ')[0]} (patched)" if name in trace.patched else formula

    def patched_text(name: str) -> str:
        return (f" Patched: a what-if replaced {name}, so the formula above does not hold."
                if name in trace.patched else "")  # fmt: skip

    def panel(key: str, name: str, array: np.ndarray, rows: str, cols_: str, explain: str,
              kind: str = "signed", **extra: Any) -> StepPanel:  # fmt: skip
        if rows in TOKEN_AXES:
            extra.setdefault("padding", rows_out)
            explain += pad_text
        return StepPanel(0, key, name, np.asarray(array), rows, cols_, kind, explain, **extra)

    x_what = "LN1(block input)" if config.norm == "pre" else "block input"
    panels = [
        panel("X", named(x_name, f"X = {x_what}"), read(x_name)[win], "token", "d_model",
              f"One row per token: the {D}-dimensional vectors attention reads ({x_name})."
              + patched_text(x_name)),
    ]  # fmt: skip
    W = head_params(params, layer, D) if params is not None else None
    hd = f"d_head of head {head}"
    if W is not None:
        for w in ("W_Q", "W_K", "W_V"):
            explain = (f"{w} is {D} × {D}: {plural(H, 'head')} × {Dh} columns. Head {head} uses "
                       f"columns {span}, shown here. Learned numbers: read their shape and "
                       "role, not a pattern.")  # fmt: skip
            panels.append(panel(w, f"{w}[:, head {head}]", W[w][:, cols], "d_model", hd, explain))
    for p, w, role in (("q", "Q", "query"), ("k", "K", "key"), ("v", "V", "value")):
        name = f"{b}.{p}"
        panels.append(
            panel(w, named(name, f"{w} = X W_{w} + b_{w}"), read(name, head)[win], "token", hd,
                  f"Each token's {role} for head {head}: X times this head's columns of W_{w}, "
                  "plus bias." + patched_text(name))
        )  # fmt: skip
    qk, scores = read(f"{b}.qk", head)[keys], read(f"{b}.scores", head)[keys]
    counted = ~masked & ~padding[:, None]  # the cells that reach the softmax
    scores_name, scores_text = _scores_title(trace, f"{b}.scores")
    shared = signed_limit(np.abs(np.concatenate([qk[counted], scores[counted]]))) or None
    panels += [
        panel("QK", named(f"{b}.qk", "Q Kᵀ"), qk, "query", "key",
              f"Every query's dot product with every key, q_i · k_j ({b}.qk). Q Kᵀ, the "
              "scores and the masked scores share one colour scale." + patched_text(f"{b}.qk"),
              limit=shared),
        panel("scores", scores_name, scores, "query", "key", scores_text, limit=shared),
        panel("masked", "scores + mask", scores, "query", "key", mask_explanation(trace, batch, S),
              mask=masked, limit=shared),
        panel("weights", named(f"{b}.weights", "weights = softmax(row)"),
              read(f"{b}.weights", head)[keys], "query", "key",
              _weights_text(masked, win, S) + patched_text(f"{b}.weights"), kind="weights",
              mask=masked),
        panel("z", named(f"{b}.z", "z = weights V"), read(f"{b}.z", head)[win], "token", hd,
              "Each token's output of this head: the weighted average of the value rows."
              + patched_text(f"{b}.z")),
        panel("concat", "concat(z of all heads)", read(f"{b}.concat")[win], "token", "d_model",
              f"The heads' z side by side; head {head}'s columns {span} are outlined.",
              outline=("cols", cols.start, cols.stop)),
    ]  # fmt: skip
    if W is not None:
        panels.append(panel("W_O", f"W_O[rows of head {head}]", W["W_O"][cols],
                            f"rows {span} of W_O", "d_model",
                            f"W_O is {D} × {D}; its rows {span}, shown here, multiply head "
                            f"{head}'s z (columns {span} of concat). attn.out adds every "
                            "head's part, plus b_O."))  # fmt: skip
    name = f"{b}.out"
    explain = "Attention's output, added to the residual stream." + patched_text(name)
    panels.append(panel("out", named(name, "attn.out = concat W_O + b_O"), read(name)[win],
                        "token", "d_model", explain))  # fmt: skip
    return [replace(p, number=n) for n, p in enumerate(panels, 1)], win, S


def _scores_title(trace: Trace, name: str) -> tuple[str, str]:
    """The scores panel's formula and sentence, from ``config.scale_scores`` and whether a
    patch replaced the scores."""
    Dh = trace.config.d_head
    root = float(np.sqrt(Dh))  # the constant of the config, written out
    formula = f"Q Kᵀ / √{Dh}" if trace.config.scale_scores else "Q Kᵀ"
    if name in trace.patched:
        return ("scores (patched)",
                f"These scores were replaced by a patch (a what-if), so they are not {formula}: "
                "compare the two histograms.")  # fmt: skip
    if not trace.config.scale_scores:
        return ("scores = Q Kᵀ (not scaled)",
                f"This model does not divide by √{Dh} (scale_scores=False): the scores are Q Kᵀ "
                "itself, and the two histograms coincide.")  # fmt: skip
    return (f"scores = {formula}",
            f"Divided by √{Dh} = {root:.3g}: the same pattern with numbers {root:.3g} times "
            "smaller, paler on the shared colour scale; the histogram narrows.")  # fmt: skip


def _weights_text(masked: np.ndarray, window: slice, n: int) -> str:
    """The weights panel's sentence: what the softmax gives (and what the window leaves out)."""
    text = "Softmax of each row: weights ≥ 0 that sum to 1 over the keys."
    if masked.any():
        text += " Masked keys (hatched) get exactly 0."
    if window.stop - window.start < n:
        text += f" Keys outside positions {window.start}–{window.stop - 1} are not drawn."
    return text


# -- drawing ------------------------------------------------------------------------------

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


def _format(value: float, fmt: Format) -> str:
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
    hidden = _hidden(array.shape, mask, grey_rows)
    shown = np.ma.masked_array(array, mask=hidden)
    vmin, vmax, clipped = color_scale(array, kind, hidden, limit)
    cmap = (
        weights_cmap()
        if kind == "weights"
        else mpl.colormaps[SIGNED_CMAP].with_extremes(bad=MASKED_COLOR)
    )
    image = ax.imshow(shown, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto",
                      interpolation="nearest")  # fmt: skip
    if mask is not None:
        hatched = np.asarray(mask, bool) & ~_row_mask(array.shape, grey_rows)
        for i, start, stop in masked_runs(~hatched):  # runs of masked cells
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
            set_ticks(ticks, [labels[t] for t in ticks], rotation=rotation, **LITERAL)
            if label_size is not None:
                ax.tick_params(axis="x" if rotation else "y", labelsize=label_size)
    if annotate:
        rows, cols = array.shape
        size = float(np.clip(140 / max(rows, cols, 1), 7, 9)) if fontsize is None else fontsize
        for i, j in _annotated_cells(shown):
            ax.text(j, i, _format(array[i, j], fmt), ha="center", va="center", fontsize=size,
                    color=_text_color(array[i, j], vmin, vmax))  # fmt: skip
    if colorbar is not None:
        fig = ax.get_figure(root=True)
        assert fig is not None
        horizontal = colorbar == "bottom"
        extend = "both" if clipped else "neither"
        bar = fig.colorbar(image, ax=ax, location=colorbar, shrink=0.8, extend=extend,
                           aspect=_bar_aspect(horizontal), pad=0.02)  # fmt: skip
        bar.ax.tick_params(labelsize=7)


def _row_mask(shape: tuple[int, ...], grey_rows: np.ndarray | None) -> np.ndarray:
    """``grey_rows`` (rows,) spread over every column of a ``shape`` matrix."""
    if grey_rows is None:
        return np.zeros(shape, bool)
    return np.broadcast_to(np.asarray(grey_rows, bool)[:, None], shape)


def _hidden(
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
    hidden = _hidden(array.shape, mask, grey_rows)
    shown = np.ma.masked_array(array, mask=hidden)
    vmin, vmax, clipped = color_scale(array, kind, hidden, limit)
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
            text.set_text(_format(array[i, j], fmt))
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
    label_size: float | None = None,
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
        limit=panel.limit,
        fmt=_panel_format(panel),
        fontsize=_cell_fontsize(panel),
        max_labels=max_labels,
        grey_rows=panel.padding,
        label_size=label_size,
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


def _panel_format(panel: StepPanel) -> Format:
    """Weights with two decimals, other values in at most 5 characters."""
    return ".2f" if panel.kind == "weights" else short_number


def _cell_fontsize(panel: StepPanel) -> float:
    """8 points in the cells of up to 10 × 10 matrices, 7 beyond."""
    return 8.0 if max(panel.array.shape) <= 10 else 7.0


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
    window: slice | None = None,
) -> Figure:
    """One figure with every step of one head's attention, numbered, shapes in the titles.

    Rows: (1) X and Q, K, V (with this head's slices of W_Q, W_K, W_V above them when
    ``params`` is given); (2) Q Kᵀ → ÷√d_head → + mask → softmax, the first three on one
    colour scale, so that the division is seen as the pattern growing paler; (3) z = weights V
    → concat of all heads → (this head's rows of W_O) → attn.out. Other signed matrices use
    the diverging map centred at 0, each on its own symmetric scale (shown by its colour bar),
    weights the attention map; masked keys are hatched, padding rows grey; this head's columns
    are outlined in concat.

    Parameters
    ----------
    trace : Trace
        See :func:`step_panels` for the names it needs.
    layer, head : int
    tokens : sequence of str, optional
        Token strings (length S) for the token axes.
    params : dict or Encoder, optional
        Show W_Q, W_K, W_V (this head's columns) and W_O (this head's rows) too.
    batch : int
        Which sequence of the batch.
    window : slice, optional
        The positions shown (default: all, or the first :data:`MAX_WINDOW`); the title says
        which when some are left out.

    Returns
    -------
    matplotlib Figure (made without pyplot).
    """
    listed, win, S = _panels(trace, layer, head, params, batch, window)
    panels = {p.key: p for p in listed}
    labels = token_labels(tokens, S)[win]
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
        _draw_panel(ax, panels[key], labels, colorbar="bottom", max_labels=GRID_MAX_LABELS,
                    label_size=GRID_LABEL_FONTSIZE)  # fmt: skip
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
            axes[b].set_xlabel(f"{panels[b].rows} ({r}) × {panels[b].cols} ({c})", fontsize=8)
    notes = [f"d_model {trace.config.d_model}, d_head {trace.config.d_head}", plural(S, "token")]
    if window_note(win, S):
        notes.append(f"{window_note(win, S)} shown: window= chooses")
    title = f"Layer {layer}, head {head}: attention step by step ({', '.join(notes)})"
    legend = _grid_legend(panels["masked"], trace.config.causal)
    fig.suptitle(title + (f"\n{legend}" if legend else ""), fontsize=14)
    return fig


def _grid_legend(masked: StepPanel, causal: bool) -> str:
    """What the grey cells of the grid mean, or ``""`` when there are none."""
    parts = []
    if masked.mask is not None and masked.mask.any():
        parts.append(
            "hatched: masked keys (weight 0"
            + ("; causal: each query's later keys)" if causal else ")")
        )
    if masked.padding is not None and masked.padding.any():
        parts.append(f"grey rows: {plural(int(masked.padding.sum()), 'padding position')}, "
                     "which no real token reads")  # fmt: skip
    return "; ".join(parts)


def attention_step_frames(
    trace: Trace,
    layer: int,
    head: int,
    tokens: Sequence[str] | None = None,
    params: Any = None,
    *,
    batch: int = 0,
    window: slice | None = None,
    annotate: bool | None = None,
) -> list[Figure]:
    """The steps of :func:`attention_steps` as separate figures, one per slide.

    Frame n shows panel n large, titled ``"Step n of N · layer l, head h"`` above the panel's
    formula and shape, with what it shows written underneath (true for this trace: masks,
    padding, patches and the config's scaling). Matrices of at most
    :data:`FRAME_ANNOTATE_MAX` rows and columns have their values written in the cells
    (``annotate=True``/``False``: always, never; the explorer's small PNGs pass False, where
    the numbers would be a few pixels tall and most of the drawing time).
    Beside the matrix, some frames have a second panel: the weight frames the product they
    take part in, with its shapes; Q Kᵀ and the scores histograms of their values (on the
    same axes, so the division by √d_head is seen narrowing them); + mask the mask itself
    (0 or −∞, even when nothing is masked); the weights the sum of each row. Q Kᵀ, the scores
    and the masked scores share one colour scale.

    Returns
    -------
    list of matplotlib Figure, in step order.
    """
    panels, win, S = _panels(trace, layer, head, params, batch, window)
    labels = token_labels(tokens, S)[win]
    context = _FrameContext(trace, layer, head, batch, win, S, annotate)
    return [_frame(panels, panel.number, labels, context) for panel in panels]


def attention_step_frame(
    trace: Trace,
    layer: int,
    head: int,
    step: int,
    tokens: Sequence[str] | None = None,
    params: Any = None,
    *,
    batch: int = 0,
    window: slice | None = None,
    annotate: bool | None = None,
) -> Figure:
    """Frame number ``step`` (from 1) of :func:`attention_step_frames`, drawn alone."""
    panels, win, S = _panels(trace, layer, head, params, batch, window)
    _check_step(step, len(panels))
    labels = token_labels(tokens, S)[win]
    return _frame(panels, step, labels, _FrameContext(trace, layer, head, batch, win, S, annotate))


def _check_step(step: object, n: int) -> None:
    if isinstance(step, bool) or not isinstance(step, int) or not 1 <= step <= n:
        raise IndexError(f"step must be an int in [1, {n}], got {step!r}")


@dataclass(frozen=True)
class _FrameContext:
    """What a frame says besides its panel: where it is from, and the whole weights rows."""

    trace: Trace
    layer: int
    head: int
    batch: int
    window: slice
    n: int  # the input length S
    annotate: bool | None = None  # write the values in the cells; None: small matrices

    def annotated(self, panel: StepPanel) -> bool:
        """Whether the frame writes its numbers in the cells of ``panel``."""
        return max(panel.array.shape) <= FRAME_ANNOTATE_MAX if self.annotate is None else (
            self.annotate)  # fmt: skip

    def title(self, number: int, n_steps: int) -> str:
        where = window_note(self.window, self.n)
        return (f"Step {number} of {n_steps} · layer {self.layer}, head {self.head}"
                + (f" · {where}" if where else ""))  # fmt: skip

    def row_sums(self) -> np.ndarray:
        """(rows,) each shown query's recorded weights added over all S keys."""
        weights = self.trace[f"blocks.{self.layer}.attn.weights"][self.batch, self.head]
        return np.asarray(weights[self.window].sum(axis=-1))


def _side(panel: StepPanel) -> str | None:
    """The kind of second panel a frame has beside its matrix, or None."""
    if panel.key in ("W_Q", "W_K", "W_V", "W_O"):
        return "product"
    return {"QK": "histogram", "scores": "histogram", "masked": "mask", "weights": "sums"}.get(
        panel.key
    )


def _frame(panels: list[StepPanel], number: int, labels: list[str], ctx: _FrameContext) -> Figure:
    panel = panels[number - 1]
    fig = Figure(figsize=FRAME_SIZE, layout="constrained")
    side = _side(panel)
    rows, cols = panel.array.shape
    wide = side == "product" and rows < cols  # a wide band: the product written underneath
    if side is None:
        ax = fig.add_subplot()
    else:
        if wide:
            grid = fig.add_gridspec(2, 1, height_ratios=[1.0, 1.0])
        else:
            grid = fig.add_gridspec(1, 2, width_ratios=[1.0, 1.0] if side == "product" else
                                    [3.0, 1.25])  # fmt: skip
        ax = fig.add_subplot(grid[0, 0])
    _draw_panel(ax, panel, labels, colorbar="bottom" if wide else "right", fontsize=11,
                annotate=ctx.annotated(panel), max_labels=FRAME_MAX_LABELS,
                label_size=FRAME_LABEL_FONTSIZE)  # fmt: skip
    _label_padding(ax, panel.padding, cols)
    if side == "product":  # a weight matrix in its own shape: a tall strip or a wide band
        ax.set_box_aspect(float(np.clip(rows / cols, 0.25, 4.0)))
    if side is not None:
        side_ax = fig.add_subplot(grid[1, 0] if wide else grid[0, 1], label="side")
        _draw_side(side_ax, side, panels, panel, ctx)
    fig.suptitle(ctx.title(number, len(panels)), fontsize=11, color="#555555")
    fig.supxlabel(_wrap(panel.explain), fontsize=10)
    return fig


def _label_padding(ax: Axes, padding: np.ndarray | None, cols: int) -> None:
    """Write "padding" across each block of at least :data:`PADDING_NOTE_ROWS` grey rows."""
    if padding is None:
        return
    for _, start, stop in masked_runs(~np.asarray(padding)[None, :]):  # runs of padding rows
        if stop - start >= PADDING_NOTE_ROWS:
            ax.text((cols - 1) / 2, (start + stop - 1) / 2, "padding: not attention",
                    ha="center", va="center", fontsize=10, color="#555555")  # fmt: skip


def _wrap(text: str) -> str:
    return textwrap.fill(text, EXPLAIN_WIDTH)


# -- the second panel of a frame --------------------------------------------------------------


def _draw_side(
    ax: Axes, side: str, panels: list[StepPanel], panel: StepPanel, ctx: _FrameContext
) -> None:
    """Draw the second panel of ``panel``'s frame on ``ax`` (see :func:`_side`)."""
    if side == "product":
        ax.set_axis_off()
        ax.text(0.5 if panel.key == "W_O" else 0.0, 0.5, _product_text(panel, panels, ctx),
                transform=ax.transAxes, ha="center" if panel.key == "W_O" else "left",
                va="center", fontsize=12, linespacing=1.6)  # fmt: skip
    elif side == "histogram":
        _draw_histograms(ax, panels, panel)
    elif side == "mask":
        _draw_mask(ax, panel, ctx.annotated(panel))
    else:  # the sums written on white, padding rows grey
        sums = ctx.row_sums()
        draw_matrix(ax, np.zeros((len(sums), 1)), colorbar=None, grey_rows=panel.padding)
        every = ctx.annotated(panel)
        size = _cell_fontsize(panel) if every else 10
        for row, text in _sum_texts(sums, panel.padding, every):
            ax.text(0, row, text, ha="center", va="center", fontsize=size)
        ax.set_title("row sums", fontsize=11)
        ax.set_xlabel("Σ over all keys", fontsize=10)


def _sum_texts(
    sums: np.ndarray, padding: np.ndarray | None, every: bool
) -> list[tuple[float, str]]:
    """Where and what to write of the row sums: each real row's sum (``every``), or one line
    in the middle with the smallest and largest."""
    real = np.ones(len(sums), bool) if padding is None else ~padding
    if every:
        return [(float(i), f"{sums[i]:.2f}") for i in np.flatnonzero(real)]
    shown = sums[real] if real.any() else sums
    low, high = f"{shown.min():.2f}", f"{shown.max():.2f}"
    text = f"every row\n{low}" if low == high else f"from {low}\nto {high}"
    return [((len(sums) - 1) / 2, text)]


def _product_text(panel: StepPanel, panels: list[StepPanel], ctx: _FrameContext) -> str:
    """The product a weight matrix takes part in, with every shape."""
    by_key = {p.key: p for p in panels}
    config = ctx.trace.config
    D, Dh, h = config.d_model, config.d_head, ctx.head
    S = by_key["X"].array.shape[0]
    if panel.key == "W_O":
        return (f"attn.out  ({S} × {D})\n= concat ({S} × {D}) · W_O ({D} × {D}) + b_O ({D})\n\n"
                f"head {h}'s part of it:\nz ({S} × {Dh}) · these rows ({Dh} × {D})")  # fmt: skip
    w = panel.key[-1]
    return (f"X  ({S} × {D})\n· {panel.key}[:, head {h}]  ({D} × {Dh})\n+ b_{w}  ({Dh})"
            f"\n= {w}  ({S} × {Dh})")  # fmt: skip


def _histogram_counts(panels: list[StepPanel]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bin edges and the counts of Q Kᵀ and of the scores over the cells that reach the
    softmax (not masked, not padding), on one set of bins wide enough for both."""
    by_key = {p.key: p for p in panels}
    masked = by_key["masked"]
    hidden = _hidden(masked.array.shape, masked.mask, masked.padding)
    qk, scores = by_key["QK"].array[~hidden], by_key["scores"].array[~hidden]
    top = float(np.abs(np.concatenate([qk, scores])).max()) if qk.size else 1.0
    edges = np.linspace(-top, top, HISTOGRAM_BINS + 1)
    return edges, np.histogram(qk, edges)[0], np.histogram(scores, edges)[0]


def _draw_histograms(ax: Axes, panels: list[StepPanel], panel: StepPanel) -> None:
    """Q Kᵀ's values (and on the scores' frame the scores' too) as histograms on one pair of
    axes, the same for both frames: the division by √d_head narrows the distribution."""
    edges, qk, scores = _histogram_counts(panels)
    names = _histogram_names(panels)
    ax.stairs(qk, edges, fill=panel.key == "QK", color=QK_COLOR, label=names[0])
    if panel.key == "scores":
        ax.stairs(scores, edges, fill=True, color=SCORES_COLOR, alpha=0.6, label=names[1])
    _histogram_limits(ax, edges, qk, scores)
    ax.legend(fontsize=8, loc="upper left", frameon=False)
    ax.set_title("values", fontsize=11)
    ax.set_xlabel("value (cells that reach the softmax)", fontsize=9)
    ax.set_ylabel("cells", fontsize=9)
    ax.tick_params(labelsize=8)


def _histogram_names(panels: list[StepPanel]) -> tuple[str, str]:
    """The legend of the histograms: ``"Q Kᵀ"`` and ``"scores"`` (or "... (patched)")."""
    by_key = {p.key: p for p in panels}
    return by_key["QK"].name, by_key["scores"].name.split(" = ")[0]


def _histogram_limits(ax: Axes, edges: np.ndarray, qk: np.ndarray, scores: np.ndarray) -> None:
    """The same axes for both histogram frames: every value, the larger count, room above."""
    ax.set_xlim(float(edges[0]), float(edges[-1]))
    ax.set_ylim(0, 1.25 * max(int(qk.max(initial=0)), int(scores.max(initial=0)), 1))


def _draw_mask(ax: Axes, panel: StepPanel, annotate: bool) -> None:
    """The mask added to the scores: 0 where a query may see a key (white), −∞ where not
    (hatched); drawn even when nothing is masked."""
    rows, cols = panel.array.shape
    masked = np.zeros((rows, cols), bool) if panel.mask is None else panel.mask
    values = np.where(masked, -np.inf, 0.0)
    draw_matrix(ax, np.zeros((rows, cols)), mask=masked, colorbar=None, grey_rows=panel.padding,
                limit=1.0)  # fmt: skip
    if annotate:
        for (i, j), value in np.ndenumerate(values):
            if panel.padding is None or not panel.padding[i]:
                ax.text(j, i, "0" if value == 0 else "−∞", ha="center", va="center",
                        fontsize=_cell_fontsize(panel), color="#444444")  # fmt: skip
    ax.set_title("mask: 0 or −∞", fontsize=11)
    ax.set_xlabel("white 0: kept\nhatched −∞: masked", fontsize=9)
    ax.set_ylabel("query", fontsize=9)


def update_step_frame(
    fig: Figure,
    trace: Trace,
    layer: int,
    head: int,
    step: int,
    params: Any = None,
    *,
    batch: int = 0,
    window: slice | None = None,
    annotate: bool | None = None,
) -> None:
    """Show another layer or head in a frame made by :func:`attention_step_frame`, in place.

    Why: the explorer follows the head control faster by swapping the data than by building
    the figure anew (axes, colour bar, constrained layout). Afterwards the figure shows what
    ``attention_step_frame(trace, layer, head, step, tokens, params, batch=batch,
    window=window, annotate=annotate)`` would draw: the matrix and its colour scale, the
    numbers in the cells, the outlined block of this head, the second panel (histograms, row
    sums, the product), the titles and the explanation. The frame must show the same step of
    a trace with the same tokens, mask and padding (the panel's shape and hidden cells); else
    ``ValueError``.
    """
    panels, win, S = _panels(trace, layer, head, params, batch, window)
    _check_step(step, len(panels))
    panel = panels[step - 1]
    ctx = _FrameContext(trace, layer, head, batch, win, S, annotate)
    ax = fig.axes[0]
    update_matrix(ax, panel.array, kind=panel.kind, mask=panel.mask, annotate=ctx.annotated(panel),
                  limit=panel.limit, fmt=_panel_format(panel), grey_rows=panel.padding)  # fmt: skip
    ax.title.set_text(panel.title)
    ax.yaxis.label.set_text(_axis_label(panel.rows, panel.array.shape[0]))
    ax.xaxis.label.set_text(_axis_label(panel.cols, panel.array.shape[1]))
    if panel.outline is not None:  # this head's columns of concat
        _, start, _ = panel.outline
        (outline,) = [p for p in ax.patches if isinstance(p, Rectangle) and not p.get_fill()
                      and p.get_hatch() is None]  # fmt: skip
        outline.set_x(start - 0.5)
    side = _side(panel)
    side_axes = [a for a in fig.axes if a.get_label() == "side"]
    if side is not None:
        _update_side(side_axes[0], side, panels, panel, ctx)
    set_figure_texts(fig, ctx.title(step, len(panels)), _wrap(panel.explain))


def _update_side(
    ax: Axes, side: str, panels: list[StepPanel], panel: StepPanel, ctx: _FrameContext
) -> None:
    """Put the data of ``panel``'s second panel into the one drawn on ``ax``."""
    if side == "product":
        ax.texts[0].set_text(_product_text(panel, panels, ctx))
    elif side == "histogram":
        edges, qk, scores = _histogram_counts(panels)
        stairs = [p for p in ax.patches if isinstance(p, StepPatch)]
        for patch, counts in zip(stairs, (qk, scores), strict=False):
            patch.set_data(counts, edges)
        _histogram_limits(ax, edges, qk, scores)
        legend = ax.get_legend()
        assert legend is not None  # _draw_histograms made one
        for text, name in zip(legend.get_texts(), _histogram_names(panels), strict=False):
            text.set_text(name)
    elif side == "sums":
        texts = _sum_texts(ctx.row_sums(), panel.padding, ctx.annotated(panel))
        for text, (_, words) in zip(ax.texts, texts, strict=True):
            text.set_text(words)


def set_figure_texts(fig: Figure, suptitle: str, supxlabel: str | None = None) -> None:
    """Change the words of ``fig``'s title (and bottom label), keeping their places.

    ``fig.suptitle(text)`` would also move the title back to its default height, undoing the
    constrained layout that placed it, in a figure updated in place after its layout was
    fixed. matplotlib has no public handle on these texts, hence ``_suptitle``.
    """
    fig._suptitle.set_text(suptitle)  # type: ignore[attr-defined]
    if supxlabel is not None:
        fig._supxlabel.set_text(supxlabel)  # type: ignore[attr-defined]


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
