"""The query breakdown: the drawn terms add up to the trace's dot products and head output."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import re

import numpy as np
import pytest
from conftest import make_encoder

from minitransformer.config import EncoderConfig
from viz.query import query_breakdown
from viz.style import HIGHLIGHT_COLOR, MASKED_HATCH

TOKENS = ["[CLS]", "the", "cat", "sat", "[SEP]", "[PAD]"]


@pytest.fixture(scope="module")
def trace():
    model = make_encoder(EncoderConfig(n_layers=2, n_heads=4, d_model=16), seed=5)
    ids = np.array([[1, 2, 3, 4, 5, 0], [6, 7, 8, 9, 10, 11]])
    return model.run_with_trace(ids, mask=[[1, 1, 1, 1, 1, 0], [1] * 6])[1]


def panels(fig):
    """Panels by their title (x label for z) without the shape: "k_j", "q ⊙ k_j", ...; the
    query vector as "q"."""
    out = {}
    for ax in fig.axes:
        name = re.split(r"  \(|\n", ax.get_title() or ax.get_xlabel())[0]
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
    np.testing.assert_allclose(dots, head["scores"][0, 2] * np.sqrt(4), rtol=1e-6)
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
    fig = query_breakdown(long_trace, 0, 1, query=31, tokens=tokens)
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
