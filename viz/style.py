"""One visual language for every figure: colour maps, sizes and token labels.

Every figure in :mod:`viz` takes its colours and sizes from here, so a head looks the same
in a heatmap, a grid of heads and a slide.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib as mpl
import numpy as np
from matplotlib.colors import Colormap

#: Colour map of attention weights: white (0) to dark blue (1).
WEIGHTS_CMAP = "Blues"
#: Colour of masked cells (keys a query may not attend to): drawn, but clearly not a weight.
MASKED_COLOR = "#d9d9d9"
#: Hatch drawn over masked cells, so they differ from a weight of 0 even in greyscale prints.
MASKED_HATCH = "////"
#: At most this many token labels per axis; longer inputs label every k-th token.
MAX_LABELS = 48


def weights_cmap() -> Colormap:
    """The attention colour map, with masked (invalid) cells in :data:`MASKED_COLOR`."""
    return mpl.colormaps[WEIGHTS_CMAP].with_extremes(bad=MASKED_COLOR)


def token_labels(tokens: Sequence[str] | None, n: int, name: str = "tokens") -> list[str]:
    """Labels for ``n`` positions: the tokens, or ``"0", "1", ...`` when none are given.

    Raises ``ValueError`` when the number of tokens does not match ``n``.
    """
    if tokens is None:
        return [str(i) for i in range(n)]
    labels = [str(t) for t in tokens]
    if len(labels) != n:
        raise ValueError(f"{name} has {len(labels)} entries but the trace has {n} positions")
    return labels


def label_positions(n: int, max_labels: int = MAX_LABELS) -> np.ndarray:
    """Which of ``n`` positions get a tick label: all of them, or every k-th for long inputs."""
    step = max(1, int(np.ceil(n / max_labels)))
    return np.arange(0, n, step)


def cell_size_inches(n: int) -> float:
    """Width of a figure that shows ``n`` tokens per axis with readable labels."""
    return float(np.clip(0.32 * n + 2.0, 4.0, 14.0))
