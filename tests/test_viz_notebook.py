"""A viz figure displays itself as a PNG in IPython, without pyplot or %matplotlib."""

from __future__ import annotations

import pytest
from matplotlib.figure import Figure

from viz.notebook import figure_png, show_figures_in_notebooks


def test_figures_display_as_png_in_an_ipython_shell() -> None:
    interactiveshell = pytest.importorskip("IPython.core.interactiveshell")
    shell = interactiveshell.InteractiveShell.instance()
    try:
        fig = Figure()
        fig.add_subplot().plot([0, 1], [1, 0])
        assert show_figures_in_notebooks() is True
        data, _ = shell.display_formatter.format(fig)
        assert data["image/png"][:8] == b"\x89PNG\r\n\x1a\n"
        assert data["image/png"] == figure_png(fig)
    finally:
        interactiveshell.InteractiveShell.clear_instance()


def test_outside_ipython_nothing_is_registered() -> None:
    assert show_figures_in_notebooks() is False  # pytest is not an IPython shell
