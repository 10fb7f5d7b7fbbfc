"""One visual language for every figure: colour maps, sizes and token labels.

Every figure in :mod:`viz` takes its colours and sizes from here, so a head looks the same
in a heatmap, a grid of heads and a slide.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import matplotlib as mpl
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import Colormap
from matplotlib.figure import Figure
from matplotlib.text import Text

from minitransformer.trace import Trace

#: Colour map of attention weights: white (0) to dark blue (1).
WEIGHTS_CMAP = "Blues"
#: Colour of masked cells (keys a query may not attend to): drawn, but clearly not a weight.
MASKED_COLOR = "#d9d9d9"
#: Hatch drawn over masked cells, so they differ from a weight of 0 even in greyscale prints.
MASKED_HATCH = "////"
#: At most this many token labels per axis; longer inputs label every k-th token.
MAX_LABELS = 48
#: Heatmaps write each weight in its cell (``annotate=None``) up to this many tokens.
ANNOTATE_MAX_TOKENS = 16
#: Colour of the frame around a highlighted head (model view) and of a focused token: a red
#: that no head colour comes close to, so a highlight never looks like a head.
HIGHLIGHT_COLOR = "#d62728"
#: Qualitative colours for telling heads apart (head view lines, legends, tick labels): head h
#: gets ``HEAD_COLORS[h % 12]``. Twelve mid-to-dark tones (MiniLM and BERT-base have 12 heads),
#: each readable as text on white (contrast at least 4.5 : 1) and none of them red.
HEAD_COLORS: tuple[str, ...] = (
    "#1f77b4",  # blue
    "#9a6700",  # ochre
    "#2e7d32",  # green
    "#c2338f",  # magenta
    "#8a5cb8",  # purple
    "#8c564b",  # brown
    "#00808c",  # teal
    "#767600",  # olive
    "#26358f",  # navy
    "#666666",  # grey
    "#5e1f6e",  # plum
    "#1a1a1a",  # black
)
#: Diverging colour map for signed values (encodings, vectors): blue < 0 < red, white at 0.
SIGNED_CMAP = "RdBu_r"
#: Colour map for non-negative sizes (norms).
NORMS_CMAP = "viridis"
#: Signed matrices are coloured from -top to top with top = max|value|, unless a few outliers
#: are more than this many times the 99th percentile of |value| (MiniLM's residual stream and
#: its learned position table have a few huge entries): then top = that percentile, so the
#: other values stay visible, and the colour bar's arrows say that larger values are clipped
#: to the end colours (:func:`signed_limit`).
OUTLIER_RATIO = 4.0


#: Keyword arguments for every matplotlib text that shows tokens or other user text: drawn
#: literally, never as mathtext, so a token "$x$" reads "$x$" (``ax.set_xticks(ticks, labels,
#: **LITERAL)``, ``ax.text(x, y, token, **LITERAL)``).
LITERAL: dict[str, Any] = {"parse_math": False}
#: Colour of the labels of padding tokens. Padding is not attention: a padding query's row is
#: drawn as masked (grey, hatched), never sets a colour scale and starts no head-view line, and
#: its label is written in this grey (:func:`real_positions`, :func:`shown_mask`).
PADDING_COLOR = "#9e9e9e"
#: The smallest font size (points) of any text a figure draws at its default size.
MIN_FONTSIZE = 7.0
#: Font sizes (points) by what they write, from the smallest: dense labels (head names on a
#: scatter, role names in cells, legends of small panels); the numbers in cells; legends; notes
#: and token labels; axis labels and the titles of small panels; panel titles; a figure's title.
SMALL_FONTSIZE = MIN_FONTSIZE
CELL_FONTSIZE = 8
LEGEND_FONTSIZE = 8
TICK_FONTSIZE = 9
NOTE_FONTSIZE = 9
LABEL_FONTSIZE = 10
TITLE_FONTSIZE = 11
HEADING_FONTSIZE = 12
#: Points to the inch (a font size in points, a figure size in inches).
POINTS_PER_INCH = 72
#: The width of an average character in em (a little wider than DejaVu Sans's average), to
#: estimate how much room a text needs.
CHAR_EM = 0.6
#: Colour bars are this fraction of their axes' height.
COLORBAR_SHRINK = 0.8
#: The smallest top of a colour scale or axis: matplotlib needs a positive range, also when
#: every value is 0.
MIN_RANGE = 1e-12


def weights_cmap() -> Colormap:
    """The attention colour map, with masked (invalid) cells in :data:`MASKED_COLOR`."""
    return mpl.colormaps[WEIGHTS_CMAP].with_extremes(bad=MASKED_COLOR)


def token_labels(tokens: Sequence[str] | None, n: int, name: str = "tokens") -> list[str]:
    """Labels for ``n`` positions: the tokens, or ``"0", "1", ...`` when none are given.

    A lone surrogate (which no font can draw) is written as its escape, ``"\\udc80"``; draw the
    labels with :data:`LITERAL` so that ``$`` is not read as mathtext.
    Raises ``ValueError`` when the number of tokens does not match ``n``.
    """
    if tokens is None:
        return [str(i) for i in range(n)]
    labels = [drawable(str(t)) for t in tokens]
    if len(labels) != n:
        raise ValueError(f"{name} has {len(labels)} entries but the trace has {n} positions")
    return labels


def drawable(text: str) -> str:
    """``text`` with every lone surrogate written as its escape (``"\\udc80"``), so that it can
    be drawn and saved; other text is returned unchanged."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


# -- padding is not attention ----------------------------------------------------------------


def real_positions(trace: Trace, batch: int) -> np.ndarray:
    """(S,) bool: True for the real tokens of batch row ``batch``, False for padding.

    Read from the trace's inputs (:meth:`Trace.real_tokens`), never guessed from the weights.
    """
    return np.asarray(trace.real_tokens(batch), dtype=bool)


def padding_positions(trace: Trace, batch: int, n: int) -> np.ndarray:
    """``(n,)`` bool, True at the padding positions of batch row ``batch`` (attention mask 0).

    From ``trace.real_tokens(batch)``; a trace that does not know its mask (one made by hand,
    not by ``run_with_trace``) has no padding.
    """
    if trace.padding_mask is None:
        return np.zeros(n, bool)
    return ~np.asarray(trace.real_tokens(batch), bool)


def shown_mask(mask: np.ndarray, real: np.ndarray) -> np.ndarray:
    """The cells of an attention pattern a figure draws as weights.

    Parameters
    ----------
    mask : bool ndarray of shape (S, S)
        The attention mask: True where query i may attend to key j.
    real : bool ndarray of shape (S,)
        True for real tokens (:func:`real_positions`).

    Returns
    -------
    bool ndarray of shape (S, S): ``mask`` with every padding query's row False. A padding
    query's weights are computed but never used, so figures draw its row as masked.
    """
    return np.asarray(mask, dtype=bool) & np.asarray(real, dtype=bool)[:, None]


def weight_limit(weights: np.ndarray, shown: np.ndarray) -> float:
    """Top of a colour scale of attention weights: the largest weight of the ``shown`` cells.

    Padding rows and masked keys never set the scale. 1.0 when no cell is shown (a batch row
    of padding only), and never below 1e-12 (a colour scale needs a positive range).
    """
    if not np.any(shown):
        return 1.0
    return max(float(np.max(weights[shown])), 1e-12)


def grey_padding_labels(texts: Sequence[Text], positions: Iterable[int], real: Any) -> None:
    """Write the tick labels ``texts`` of padding positions in :data:`PADDING_COLOR`."""
    for text, position in zip(texts, positions, strict=True):
        if not real[position]:
            text.set_color(PADDING_COLOR)


def block_max(weights: np.ndarray, shown: np.ndarray, factor: int) -> np.ma.MaskedArray:
    """An (n, n) attention pattern made ``factor`` times smaller for a small picture.

    Each block of ``factor`` x ``factor`` cells becomes the largest of its ``shown`` weights,
    so that a sharp pattern (one key per query) stays as dark as it is, which averaging the
    block (what resampling a large image does) would fade to 1 / factor. A block without a
    shown cell is masked. The last blocks are partly outside the pattern when ``factor`` does
    not divide n: they cover ``ceil(n / factor) * factor`` cells.

    Parameters
    ----------
    weights : ndarray of shape (n, n)
    shown : bool ndarray of shape (n, n)
        The cells drawn as weights (:func:`shown_mask`).
    factor : int

    Returns
    -------
    masked ndarray of shape (ceil(n / factor), ceil(n / factor)): for ``factor`` 1, the
    weights themselves with the cells not shown masked.
    """
    if factor == 1:
        return np.ma.masked_array(weights, mask=~shown)
    n = weights.shape[0]
    m = -(-n // factor)  # ceiling division
    cells = np.full((m * factor, m * factor), -np.inf, dtype=weights.dtype)
    cells[:n, :n] = np.where(shown, weights, -np.inf)
    blocks = cells.reshape(m, factor, m, factor).max(axis=(1, 3))
    return np.ma.masked_invalid(blocks)  # a block of masked cells only stays -inf: masked


# -- which tokens a figure shows -------------------------------------------------------------


def span_note(shown: range, n: int) -> str:
    """``""`` when every position is shown, else ``"tokens 100-163 of 512"``."""
    if len(shown) == n:
        return ""
    return f"tokens {shown.start}-{shown.stop - 1} of {n}"


def label_positions(n: int, max_labels: int = MAX_LABELS) -> np.ndarray:
    """Which of ``n`` positions get a tick label: all of them, or every k-th for long inputs."""
    step = max(1, int(np.ceil(n / max_labels)))
    return np.arange(0, n, step)


def labels_that_fit(inches: float, fontsize: float) -> int:
    """How many token labels fit side by side along ``inches`` of an axis at ``fontsize`` points:
    one per 1.5 line heights, at least 2."""
    return max(2, int(inches * POINTS_PER_INCH / (1.5 * fontsize)))


def plural(n: int, word: str) -> str:
    """``"1 head"``, ``"12 heads"``: a count with its noun in the right number."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def cell_size_inches(n: int) -> float:
    """Width of a figure that shows ``n`` tokens per axis with readable labels."""
    return float(np.clip(0.32 * n + 2.0, 4.0, 14.0))


def signed_limit(magnitudes: np.ndarray) -> float:
    """The colour limit ``top`` of a signed matrix (drawn from -top to top) from its |values|.

    max|value|, or the 99th percentile of |value| when the largest is more than
    :data:`OUTLIER_RATIO` times that percentile; 0.0 for an empty array.
    """
    if magnitudes.size == 0:
        return 0.0
    top, typical = float(magnitudes.max()), float(np.percentile(magnitudes, 99))
    return typical if top > OUTLIER_RATIO * typical > 0 else top


def figure_of(ax: Axes) -> Figure:
    """The figure an axes belongs to (the top-level one, even for a subfigure)."""
    fig = ax.get_figure(root=True)
    if not isinstance(fig, Figure):
        raise TypeError(f"ax must belong to a matplotlib Figure, got {type(fig).__name__}")
    return fig


def head_color(head: int) -> str:
    """The colour of head ``head`` in every figure that tells heads apart by colour."""
    return HEAD_COLORS[head % len(HEAD_COLORS)]
