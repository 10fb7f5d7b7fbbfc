"""The query breakdown: the drawn terms add up to the trace's dot products and head output."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import re

import numpy as np
import pytest
from conftest import make_encoder
from matplotlib.text import Annotation

from minitransformer.config import EncoderConfig
from viz.query import query_breakdown
from viz.style import (
    HIGHLIGHT_COLOR,
    MASKED_HATCH,
)

TOKENS = ["[CLS]", "the", "cat", "sat", "[SEP]", "[PAD]"]


@pytest.fixture(scope="module")
def trace():
    model = make_encoder(EncoderConfig(n_layers=2, n_heads=4, d_model=16), seed=5)
    ids = np.array([[1, 2, 3, 4, 5, 0], [6, 7, 8, 9, 10, 11]])
    return model.run_with_trace(ids, mask=[[1, 1, 1, 1, 1, 0], [1] * 6])[1]


def column_title(ax):
    """A column's title: its axes title, or for the scores the annotation above it."""
    notes = [t for t in ax.texts if isinstance(t, Annotation)]
    return notes[0].get_text() if notes else ax.get_title()


def panels(fig):
    """Panels by their title (x label for z) without the shape: "k_j", "q ⊙ k_j", ...; the
    query vector as "q"."""
    out = {}
    for ax in fig.axes:
        name = re.split(r"  \(|\n", column_title(ax) or ax.get_xlabel())[0]
        if ax.images and name:
            out["q" if name.startswith("q = query") else name] = ax
    return out


def drawn(ax):
    return ax.images[0].get_array()


def test_terms_add_up_to_what_the_trace_recorded(trace):
    fig = query_breakdown(trace, 1, 3, query=2, tokens=TOKENS)
    axes = panels(fig)
    assert set(axes) == {
        "k_j", "q", "q ⊙ k_j", "q · k_j", "÷ √4", "softmax", "v_j", "w_j v_j", "z = Σ_j w_j v_j"
    }  # fmt: skip
    head = trace.head(1, 3)
    q, k, v = head["q"][0, 2], head["k"][0], head["v"][0]
    np.testing.assert_array_equal(drawn(axes["q"]).data, q[None, :])
    np.testing.assert_array_equal(drawn(axes["k_j"]).data, k)
    np.testing.assert_array_equal(drawn(axes["v_j"]).data, v)
    products = drawn(axes["q ⊙ k_j"]).data
    np.testing.assert_allclose(products, q * k)
    dots = drawn(axes["q · k_j"]).data[:, 0]
    np.testing.assert_allclose(products.sum(axis=1), dots, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(dots, head["qk"][0, 2])  # the recorded dot products
    np.testing.assert_array_equal(drawn(axes["÷ √4"]).data[:, 0], head["scores"][0, 2])
    np.testing.assert_array_equal(drawn(axes["softmax"]).data[:, 0], head["weights"][0, 2])
    z = drawn(axes["z = Σ_j w_j v_j"]).data[0]
    np.testing.assert_array_equal(z, head["z"][0, 2])
    np.testing.assert_allclose(drawn(axes["w_j v_j"]).data.sum(axis=0), z, rtol=1e-5, atol=1e-6)
    # q and the keys share one symmetric colour scale; the query is named and highlighted.
    assert drawn(axes["q"]) is not None
    assert axes["q"].images[0].norm.vmax == axes["k_j"].images[0].norm.vmax
    assert axes["k_j"].images[0].norm.vmin == -axes["k_j"].images[0].norm.vmax
    assert axes["q"].get_title() == "q = query 'cat'  (1 × 4)"
    assert "query 'cat' (position 2)" in fig.get_suptitle()
    assert "Layer 1, head 3" in fig.get_suptitle()
    assert axes["k_j"].get_title() == "k_j  (6 × 4)"
    labels = axes["k_j"].get_yticklabels()
    assert [t.get_text() for t in labels] == TOKENS
    assert labels[2].get_color() == HIGHLIGHT_COLOR
    for name in ("k_j", "q ⊙ k_j", "q · k_j", "÷ √4", "softmax", "v_j", "w_j v_j"):
        boxes = [p for p in axes[name].patches if not p.get_fill() and p.get_hatch() is None]
        assert [(b.get_y(), b.get_height()) for b in boxes] == [(1.5, 1)], name


def test_masked_key_is_shown_as_masked_and_small_values_written(trace):
    fig = query_breakdown(trace, 0, 0, query=0, tokens=TOKENS)
    axes = panels(fig)
    softmax = axes["softmax"]
    np.testing.assert_array_equal(np.ma.getmaskarray(drawn(softmax))[:, 0], [0, 0, 0, 0, 0, 1])
    assert any(p.get_hatch() == MASKED_HATCH for p in softmax.patches)
    texts = {t.get_text() for t in softmax.texts}
    assert "masked" in texts
    weights = trace["blocks.0.attn.weights"][0, 0, 0]
    assert f"{weights[1]:.2f}" in texts
    assert np.ma.getmaskarray(drawn(axes["w_j v_j"]))[5].all()
    # 6 keys × 4 dims is small: every product is written in its cell.
    assert len(axes["q ⊙ k_j"].texts) == 24
    assert axes["q · k_j"].images[0].get_cmap().name.startswith("RdBu_r")


def test_other_sequence_of_the_batch(trace):
    fig = query_breakdown(trace, 0, 1, query=5, batch=1)
    z = drawn(panels(fig)["z = Σ_j w_j v_j"]).data[0]
    np.testing.assert_array_equal(z, trace["blocks.0.attn.z"][1, 1, 5])
    assert "query '5'" in fig.get_suptitle()


def test_clear_errors(trace):
    with pytest.raises(IndexError, match=r"query must be in \[0, 6\), got 6"):
        query_breakdown(trace, 0, 0, query=6)
    with pytest.raises(TypeError, match="query must be an int"):
        query_breakdown(trace, 0, 0, query="cat")
    with pytest.raises(IndexError, match="head must be"):
        query_breakdown(trace, 0, 4, query=0)
    with pytest.raises(IndexError, match="layer must be"):
        query_breakdown(trace, -1, 0, query=0)
    with pytest.raises(ValueError, match="tokens has 2 entries"):
        query_breakdown(trace, 0, 0, query=0, tokens=["a", "b"])
    with pytest.raises(KeyError, match="blocks.0.attn.v"):
        query_breakdown(trace.filter(["*.q", "*.k", "*.scores"]), 0, 0, query=0)


def test_causal_mask_hides_the_future_keys_of_the_query():
    model = make_encoder(EncoderConfig(causal=True, n_heads=2, d_model=8), seed=2)
    _, trace = model.run_with_trace([[1, 2, 3, 4, 5]])
    fig = query_breakdown(trace, 1, 1, query=1)
    softmax = panels(fig)["softmax"]
    np.testing.assert_array_equal(np.ma.getmaskarray(drawn(softmax))[:, 0], [0, 0, 1, 1, 1])
    assert [t.get_text() for t in softmax.texts].count("masked") == 3


def test_long_input_labels_every_key_and_keeps_narrow_colour_bars_sparse():
    model = make_encoder(EncoderConfig(n_layers=1, n_heads=2, d_model=8, max_len=64), seed=1)
    S = 60  # more than style.MAX_LABELS: other figures would label every 2nd token
    _, long_trace = model.run_with_trace(np.arange(S)[None, :] % 60 + 1)
    tokens = [f"t{i}" for i in range(S)]
    fig = query_breakdown(long_trace, 0, 1, query=31, tokens=tokens, top_k=S)  # every key
    axes = panels(fig)
    labels = axes["k_j"].get_yticklabels()
    assert [t.get_text() for t in labels] == tokens
    assert labels[31].get_color() == HIGHLIGHT_COLOR and labels[30].get_color() != HIGHLIGHT_COLOR
    assert fig.get_figheight() == pytest.approx(0.2 * S + 3.6)
    for name in ("q · k_j", "÷ √4", "softmax"):
        bar = axes[name].images[0].colorbar
        assert len(bar.ax.get_xticks()) <= 5, name


def test_annotate_false_leaves_the_cells_empty_and_adds_colour_bars(trace):
    fig = query_breakdown(trace, 0, 0, query=0, tokens=TOKENS, annotate=False)
    axes = panels(fig)
    assert [t.get_text() for t in axes["softmax"].texts] == ["masked"]
    assert not axes["q ⊙ k_j"].texts and not axes["q"].texts
    assert axes["q · k_j"].images[0].colorbar is not None  # a colour bar instead of numbers
    default = panels(query_breakdown(trace, 0, 0, query=0, tokens=TOKENS))
    assert len(default["q · k_j"].texts) == 6 and default["q · k_j"].images[0].colorbar is None


# -- numbers and titles from the trace and its config ------------------------------------------


@pytest.mark.parametrize(
    ("scale", "patch", "title"),
    [
        (True, None, "÷ √4\n= scores"),
        (False, None, "scores = q · k_j\n(not scaled)"),
        (True, {"blocks.0.attn.scores": lambda s: 2 * s}, "scores\n(patched)"),
    ],
)
def test_dot_products_are_recorded_and_the_scores_titled_from_the_config(scale, patch, title):
    model = make_encoder(EncoderConfig(n_layers=1, n_heads=4, d_model=16, scale_scores=scale))
    _, trace = model.run_with_trace([[1, 2, 3, 4, 5]], patch=patch)
    axes = panels(query_breakdown(trace, 0, 1, query=3))
    qk, scores = trace["blocks.0.attn.qk"][0, 1, 3], trace["blocks.0.attn.scores"][0, 1, 3]
    # the old column showed scores × √d_head: 2 q·k with the patch, 2 q·k unscaled
    np.testing.assert_array_equal(drawn(axes["q · k_j"]).data[:, 0], qk)
    (scores_ax,) = [ax for name, ax in axes.items() if column_title(ax) == title]
    np.testing.assert_array_equal(drawn(scores_ax).data[:, 0], scores)
    # q · k_j and the scores share one colour scale, so the division is seen
    assert scores_ax.images[0].get_clim() == axes["q · k_j"].images[0].get_clim()


# -- padding is not attention -------------------------------------------------------------


def test_a_padding_query_is_refused_and_padding_keys_set_no_colour_scale(trace):
    with pytest.raises(ValueError, match=r"query 5 is a padding position of batch row 0.*\(0, "
                                         r"1, 2, 3, 4\)"):  # fmt: skip
        query_breakdown(trace, 0, 0, query=5, tokens=TOKENS)
    axes = panels(query_breakdown(trace, 1, 2, query=1, tokens=TOKENS))
    k, v = trace["blocks.1.attn.k"][0, 2], trace["blocks.1.attn.v"][0, 2]
    q = trace["blocks.1.attn.q"][0, 2, 1]
    top = max(np.abs(k[:5]).max(), np.abs(q).max())  # the [PAD] key's k is left out
    assert axes["k_j"].images[0].get_clim() == pytest.approx((-top, top))
    top = np.abs(v[:5]).max()
    assert axes["v_j"].images[0].get_clim() == pytest.approx((-top, top))
    assert any(p.get_hatch() == MASKED_HATCH for p in axes["softmax"].patches)


# -- long inputs: the keys with the largest weights --------------------------------------------


@pytest.fixture(scope="module")
def long_trace():
    model = make_encoder(EncoderConfig(n_layers=1, n_heads=2, d_model=16, max_len=256), seed=4)
    return model.run_with_trace(np.arange(200)[None] % 60 + 1)[1]


def test_top_k_keys_and_one_row_for_the_others(long_trace):
    from viz.query import DEFAULT_TOP_K

    tokens = [f"w{i}" for i in range(200)]
    fig = query_breakdown(long_trace, 0, 1, query=150, tokens=tokens)
    weights = long_trace["blocks.0.attn.weights"][0, 1, 150]
    order = np.argsort(-weights, kind="stable")
    top = order[order != 150][:DEFAULT_TOP_K]
    keys = np.union1d(top, [150])  # the query's own key and the top 16 others
    assert len(keys) == DEFAULT_TOP_K + 1
    axes = panels(fig)
    labels = [t.get_text() for t in axes["k_j"].get_yticklabels()]
    others = 200 - len(keys)
    assert labels == [f"w{j} ({j})" for j in keys] + [f"{others} other keys"]
    shown = drawn(axes["softmax"]).data[:, 0]
    np.testing.assert_array_equal(shown[:-1], weights[keys])
    np.testing.assert_allclose(shown[-1], np.delete(weights, keys).sum(), rtol=1e-5)
    assert f"{shown[-1]:.2f}" in [t.get_text() for t in axes["softmax"].texts]
    # the rows of w_j v_j, the others' row included, still add up to the recorded z
    z = long_trace["blocks.0.attn.z"][0, 1, 150]
    np.testing.assert_allclose(drawn(axes["w_j v_j"]).data.sum(axis=0), z, rtol=1e-4, atol=1e-6)
    # the others' row holds no k, q ⊙ k, q · k, scores or v: grey
    for name in ("k_j", "q ⊙ k_j", "q · k_j", "v_j"):
        assert np.ma.getmaskarray(drawn(axes[name]))[-1].all(), name
    assert f"the {DEFAULT_TOP_K} others with the largest weights ({len(keys)} of 200 keys" in (
        fig.get_suptitle()
    )
    assert max(fig.get_size_inches()) * fig.dpi <= 2400
    one = panels(query_breakdown(long_trace, 0, 1, query=150, tokens=tokens, top_k=3))
    assert len(one["k_j"].get_yticklabels()) == 3 + 1 + 1  # 3 others, its own, the rest
    with pytest.raises(ValueError, match="top_k must be a positive int"):
        query_breakdown(long_trace, 0, 1, query=150, top_k=0)


def test_top_k_figure_updated_in_place_with_other_keys_equals_a_new_one(long_trace):
    from test_viz_explorer import assert_same_figure

    from viz.explorer import render_png
    from viz.query import breakdown_layout, update_query_breakdown

    tokens = [f"w{i}" for i in range(200)]
    fig = query_breakdown(long_trace, 0, 0, 40, tokens, top_k=5)
    render_png(fig)
    first = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    # every head and query shows its own key and 5 others: one layout, other keys
    states = [(0, h, q) for h in (0, 1) for q in (3, 41, 120)]
    layouts = {breakdown_layout(long_trace, *s, top_k=5) for s in [(0, 0, 40), *states]}
    assert len(layouts) == 1
    with pytest.raises(ValueError, match="draw it anew"):  # 6 others: another layout
        update_query_breakdown(fig, long_trace, 0, 1, 120, tokens, top_k=6)
    for layer, head, query in states:
        update_query_breakdown(fig, long_trace, layer, head, query, tokens, top_k=5)
        render_png(fig)
        shown = [t.get_text() for t in fig.axes[0].get_yticklabels()]
        assert f"w{query} ({query})" in shown
        assert_same_figure(fig, query_breakdown(long_trace, layer, head, query, tokens, top_k=5))
    assert shown != first, "the rows show other keys"


def test_tokens_are_drawn_literally(tmp_path):
    from readability import drawn_texts

    model = make_encoder(EncoderConfig(n_layers=1, n_heads=2, d_model=8), seed=0)
    _, trace = model.run_with_trace([[1, 2, 3, 4]])
    tokens = ["$x$", "a$b$c", "$\\frac{1}{$", "\udc80"]
    for query in (1, 2, 3):
        fig = query_breakdown(trace, 0, 0, query, tokens)
        fig.savefig(tmp_path / "query.png")  # "$\frac{1}{$" read as mathtext fails here
        texts = [t.text for t in drawn_texts(fig)]
        for token in ["$x$", "a$b$c", "$\\frac{1}{$", "\\udc80"]:
            assert token in texts
        label = ["$x$", "a$b$c", "$\\frac{1}{$", "\\udc80"][query]
        assert f"q = query '{label}'  (1 × 4)" in texts
        assert any(f"query '{label}' (position {query})" in t for t in texts)
