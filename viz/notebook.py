"""Show viz figures in notebooks without pyplot.

Every figure of :mod:`viz` is a ``matplotlib.figure.Figure`` made without pyplot (no global
state). Such a figure has no display hook of its own: as the last expression of a notebook cell
it would print as ``<Figure size 640x480 with 1 Axes>`` unless ``%matplotlib inline`` has been
run. ``import viz`` therefore registers a PNG formatter for figures with the running IPython
shell, the documented way to teach IPython to display a type; outside IPython it does nothing.
"""

from __future__ import annotations

import io
import sys

from matplotlib.figure import Figure


def figure_png(fig: Figure) -> bytes:
    """The figure as PNG bytes, trimmed to what was drawn (as the inline backend shows it)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    return buffer.getvalue()


def show_figures_in_notebooks() -> bool:
    """Register :func:`figure_png` as IPython's PNG display of figures.

    Returns True when an IPython shell is running (the formatter is now registered), False
    otherwise (nothing to do: scripts save figures with ``fig.savefig``).
    """
    if "IPython" not in sys.modules:  # never import IPython just to find it is not running
        return False
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None:
        return False
    shell.display_formatter.formatters["image/png"].for_type(Figure, figure_png)
    return True
