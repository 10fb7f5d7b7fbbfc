"""Every figure is readable and draws tokens literally.

* Every figure of the gallery (``benchmarks/gallery.py``'s :func:`figure_builders`), for MiniLM
  (when installed) and the shipped toy model, plus the variants the gallery does not draw
  (line thumbnails, a shared scale, a padded batch row), passes :func:`readability.assert_readable`:
  no text under 7 points, none outside the figure or its axes, none overlapping another, and
  the figure at most 2400 pixels on its long side (a slide at 100 dpi).
* Tokens that look like TeX (``"$x$"``, ``"$\\frac{1}{$"``, which mathtext cannot parse) and a
  lone surrogate are drawn as they are: every figure that shows tokens draws them, saves a PNG,
  and its labels read exactly the tokens (the surrogate as its escape).
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from matplotlib.figure import Figure
from matplotlib.text import Text
from readability import assert_readable
from viz_inputs import HOSTILE_DRAWN, HOSTILE_TOKENS, PADDED_TOKENS, padded_trace

import viz
from minitransformer import Encoder, EncoderConfig
from viz.training import animate_attention, attention_over_training

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
import gallery  # noqa: E402  (a script of benchmarks/, found through the path above)

CHECKED = gallery.figure_builders()
MAX_PIXELS = 2400


@pytest.fixture(scope="module")
def toy() -> gallery.Subject:
    return gallery.toy_subject()


@pytest.fixture(scope="module")
def minilm() -> gallery.Subject:
    try:
        return gallery.minilm_subject()
    except (ImportError, FileNotFoundError, OSError) as error:
        pytest.skip(f"all-MiniLM-L6-v2 is not installed: {error}")


@pytest.mark.parametrize("stem", [stem for stem, _, _ in CHECKED])
def test_every_gallery_figure_of_the_toy_model_is_readable(toy, stem):
    (build,) = [build for name, _, build in CHECKED if name == stem]
    assert_readable(build(toy), max_pixels=MAX_PIXELS)


@pytest.mark.parametrize("stem", [stem for stem, _, _ in CHECKED])
def test_every_gallery_figure_of_minilm_is_readable(minilm, stem):
    (build,) = [build for name, _, build in CHECKED if name == stem]
    assert_readable(build(minilm), max_pixels=MAX_PIXELS)


def test_the_contributions_title_fits_a_one_layer_model(toy):
    """It reached 24 pixels outside a 1-layer figure."""
    assert toy.trace.config.n_layers == 1
    assert_readable(viz.contribution_sizes(toy.trace), max_pixels=MAX_PIXELS)


def test_the_one_layer_model_views_title_stays_clear_of_the_head_label(toy):
    for kind in ("heatmap", "lines"):
        for vmax in (None, "shared"):
            fig = viz.model_view(toy.trace, toy.tokens, kind=kind, vmax=vmax)
            assert_readable(fig, max_pixels=MAX_PIXELS)


#: Figures drawn for one row of a padded batch (row 1: 4 tokens, 4 [PAD]).
PADDED_FIGURES: dict[str, Callable[[], Figure]] = {
    "heatmap": lambda: viz.attention_heatmap(padded_trace(), 0, 1, PADDED_TOKENS[1], batch=1),
    "heads": lambda: viz.attention_heads(padded_trace(), 0, tokens=PADDED_TOKENS[1], batch=1),
    "model view": lambda: viz.model_view(padded_trace(), PADDED_TOKENS[1], batch=1),
    "model view, lines": lambda: viz.model_view(
        padded_trace(), PADDED_TOKENS[1], batch=1, kind="lines"
    ),
    "head view": lambda: viz.head_view(padded_trace(), 1, tokens=PADDED_TOKENS[1], batch=1),
    "head view, padding query": lambda: viz.head_view(
        padded_trace(), 1, [0], PADDED_TOKENS[1], query=6, batch=1
    ),
    "residual norms": lambda: viz.residual_norms(padded_trace(), PADDED_TOKENS[1], batch=1),
    "contributions": lambda: viz.contribution_sizes(padded_trace(), batch=1),
    "qk space": lambda: viz.qk_space(padded_trace(), 1, 2, PADDED_TOKENS[1], batch=1),
    "qk space, both rows": lambda: viz.qk_space(padded_trace(), 1, 2, PADDED_TOKENS),
}


@pytest.mark.parametrize("name", list(PADDED_FIGURES))
def test_figures_of_a_padded_batch_row_are_readable(name):
    assert_readable(PADDED_FIGURES[name](), max_pixels=MAX_PIXELS)


# -- tokens drawn literally ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def hostile():
    """A 1-layer, 2-head model on the four hostile tokens, and its parameters."""
    model = Encoder(EncoderConfig(n_layers=1, n_heads=2, d_model=8, d_ff=16, vocab_size=10), 0)
    _, trace = model.run_with_trace([[1, 2, 3, 4]])
    return trace, model.params


def tick_texts(ax, axis: str = "y") -> list[str]:
    labels = ax.get_yticklabels() if axis == "y" else ax.get_xticklabels()
    return [t.get_text() for t in labels]


def saved_and_literal(fig: Figure) -> None:
    """The figure saves as PNG, and every text holding a ``$`` is drawn without mathtext."""
    fig.savefig(io.BytesIO(), format="png")
    with_dollars = [t for t in fig.findobj(Text) if "$" in t.get_text()]
    assert with_dollars, "the tokens are drawn somewhere"
    for text in with_dollars:
        assert not text.get_parse_math(), f"{text.get_text()!r} would be read as mathtext"


def snapshots_of(trace):
    """Attention snapshots with the trace's weights at two steps (the training strip)."""
    from types import SimpleNamespace

    weights = trace["blocks.0.attn.weights"][0][None]  # (layers, heads, S, S)
    return SimpleNamespace(steps=[0, 10], weights=np.stack([weights, weights]))


def test_heatmaps_draw_the_tokens_literally(hostile):
    trace, _ = hostile
    fig = viz.attention_heatmap(trace, 0, 1, HOSTILE_TOKENS)
    saved_and_literal(fig)
    assert tick_texts(fig.axes[0], "x") == tick_texts(fig.axes[0]) == HOSTILE_DRAWN
    fig = viz.attention_heads(trace, 0, tokens=HOSTILE_TOKENS)
    saved_and_literal(fig)
    assert tick_texts(fig.axes[0]) == tick_texts(fig.axes[1], "x") == HOSTILE_DRAWN


def test_model_views_draw_the_tokens_literally(hostile):
    trace, _ = hostile
    for kind in ("heatmap", "lines"):
        fig = viz.model_view(trace, HOSTILE_TOKENS, kind=kind)
        saved_and_literal(fig)
        assert tick_texts(fig.axes[0]) == HOSTILE_DRAWN
        if kind == "heatmap":
            assert tick_texts(fig.axes[0], "x") == HOSTILE_DRAWN * 2  # under both heads


def test_head_views_draw_the_tokens_literally(hostile):
    trace, _ = hostile
    fig = viz.head_view(trace, 0, tokens=HOSTILE_TOKENS)
    saved_and_literal(fig)
    columns = [t.get_text() for t in fig.axes[0].texts if t.get_text() not in ("query", "key")]
    assert columns == HOSTILE_DRAWN * 2, "the query column, then the key column"
    fig = viz.head_view(trace, 0, [1], HOSTILE_TOKENS, query=2)
    saved_and_literal(fig)
    assert "query 2 ('$\\\\frac{1}{$')" in fig.axes[0].get_title()


def test_other_token_figures_draw_the_tokens_literally(hostile, tmp_path):
    trace, params = hostile
    fig = viz.multihead_anatomy(trace, 0, 0, HOSTILE_TOKENS, params)
    saved_and_literal(fig)
    assert "token '$x$' (position 0)" in fig.get_suptitle()
    fig = viz.residual_norms(trace, HOSTILE_TOKENS)
    saved_and_literal(fig)
    assert tick_texts(fig.axes[0]) == HOSTILE_DRAWN
    fig = viz.qk_space(trace, 0, 1, HOSTILE_TOKENS)
    saved_and_literal(fig)
    assert [t.get_text() for t in fig.axes[0].texts] == HOSTILE_DRAWN * 2
    snapshots = snapshots_of(trace)
    fig = attention_over_training(snapshots, 0, 1, HOSTILE_TOKENS)
    saved_and_literal(fig)
    assert tick_texts(fig.axes[0]) == tick_texts(fig.axes[0], "x") == HOSTILE_DRAWN
    written = animate_attention(snapshots, 0, 1, tmp_path / "head.gif", tokens=HOSTILE_TOKENS)
    assert written.stat().st_size > 0
