"""The head view: lines from queries to keys, as opaque as the attention weights."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from matplotlib.collections import LineCollection
from matplotlib.colors import to_rgb

from minitransformer.config import EncoderConfig
from minitransformer.encoder import Encoder
from viz.head_view import head_view
from viz.style import HIGHLIGHT_COLOR, head_color

TOKENS = ["[CLS]", "my", "dog", "barks", "[SEP]", "[PAD]"]


@pytest.fixture(scope="module")
def trace():
    model = Encoder(EncoderConfig(n_layers=2, n_heads=4), seed=3)
    _, trace = model.run_with_trace([[2, 8, 9, 10, 3, 0]], mask=[[1, 1, 1, 1, 1, 0]])
    return trace


def query_column(fig):
    """The texts written down the query column (left of x = 0, below the header)."""
    return [t for t in fig.axes[0].texts if t.get_position()[0] < 0 and t.get_position()[1] >= 0]


def collections(fig):
    return [c for c in fig.axes[0].collections if isinstance(c, LineCollection)]


def test_one_line_per_query_key_pair_with_alpha_proportional_to_the_weight(trace):
    fig = head_view(trace, 1, heads=[2, 0], tokens=TOKENS)
    weights = trace["blocks.1.attn.weights"][0]
    lines = collections(fig)
    assert [c.get_label() for c in lines] == ["head 2", "head 0"]
    top = weights[[2, 0]].max()
    for c, h in zip(lines, [2, 0], strict=True):
        segments = c.get_segments()
        assert len(segments) == 6 * 6
        np.testing.assert_allclose(segments[1 * 6 + 3], [[0, 1], [1, 3]])  # query 1 -> key 3
        colors = c.get_colors()
        np.testing.assert_allclose(colors[:, 3], weights[h].ravel() / top, rtol=1e-6)
        np.testing.assert_allclose(colors[:, :3], np.tile(to_rgb(head_color(h)), (36, 1)))
    assert lines[0].get_colors()[:, 3].max() == pytest.approx(1.0) or (
        lines[1].get_colors()[:, 3].max() == pytest.approx(1.0)
    ), "the strongest line is opaque"
    padding_key = [lines[0].get_colors()[i * 6 + 5, 3] for i in range(6)]
    assert padding_key == [0.0] * 6, "the masked key gets invisible lines"


def test_tokens_columns_legend_and_title(trace):
    fig = head_view(trace, 0, tokens=TOKENS)
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.texts]
    assert texts[:2] == ["[CLS]", "[CLS]"] and texts.count("dog") == 2
    assert "query" in texts and "key" in texts
    assert [t.get_text() for t in query_column(fig)] == TOKENS
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [f"head {h}" for h in range(4)]
    assert ax.get_title().startswith("Layer 0, 4 heads")
    assert len(collections(fig)) == 4


def test_query_focus_draws_only_that_querys_lines_and_highlights_it(trace):
    fig = head_view(trace, 1, heads=[3], tokens=TOKENS, query=2)
    (lines,) = collections(fig)
    segments = lines.get_segments()
    assert len(segments) == 6 and all(s[0][1] == 2 for s in segments)
    weights = trace["blocks.1.attn.weights"][0, 3, 2]
    np.testing.assert_allclose(lines.get_colors()[:, 3], weights / weights.max(), rtol=1e-6)
    ax = fig.axes[0]
    assert ax.get_title().startswith("Layer 1, head 3, query 2 ('dog')")
    framed = [t for t in ax.texts if t.get_bbox_patch() is not None]
    assert [t.get_text() for t in framed] == ["dog"]
    assert framed[0].get_bbox_patch().get_edgecolor()[:3] == pytest.approx(to_rgb(HIGHLIGHT_COLOR))
    others = [t for t in query_column(fig) if t.get_text() != "dog"]
    assert all(t.get_color() != "black" for t in others), "the other queries are dimmed"


def test_long_inputs_thin_the_token_labels_but_keep_every_line():
    _, trace = Encoder(EncoderConfig(max_len=128), seed=0).run_with_trace(np.arange(128) % 64)
    fig = head_view(trace, 0, heads=[1], tokens=[f"t{i}" for i in range(128)], query=37)
    left = [t.get_text() for t in query_column(fig)]
    assert 10 <= len(left) < 128 and "t37" in left, "the focused query is always labelled"
    assert len(collections(fig)[0].get_segments()) == 128


def test_bad_input_is_named(trace):
    with pytest.raises(IndexError, match=r"layer must be in \[0, 2\), got 2"):
        head_view(trace, 2)
    with pytest.raises(IndexError, match=r"head must be in \[0, 4\), got 5"):
        head_view(trace, 0, heads=[5])
    with pytest.raises(IndexError, match=r"query must be in \[0, 6\), got 6"):
        head_view(trace, 0, query=6)
    with pytest.raises(ValueError, match="tokens has 5 entries but the trace has 6 positions"):
        head_view(trace, 0, tokens=TOKENS[:5])
    with pytest.raises(KeyError, match="the head view needs 'blocks.1.attn.weights'"):
        head_view(trace.filter("blocks.0.*"), 1)


def test_update_in_place_shows_the_other_heads_and_refuses_another_query(trace):
    from viz.head_view import update_head_view

    fig = head_view(trace, 0, heads=[1, 2], tokens=TOKENS, query=3)
    update_head_view(fig, trace, 1, heads=[0, 3], tokens=TOKENS, query=3)
    fresh = head_view(trace, 1, heads=[0, 3], tokens=TOKENS, query=3)
    for drawn, new in zip(collections(fig), collections(fresh), strict=True):
        np.testing.assert_array_equal(drawn.get_colors(), new.get_colors())
        assert drawn.get_label() == new.get_label()
    legend, new_legend = fig.axes[0].get_legend(), fresh.axes[0].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["head 0", "head 3"]
    assert [line.get_color() for line in legend.get_lines()] == [
        line.get_color() for line in new_legend.get_lines()
    ]
    assert fig.axes[0].get_title() == fresh.axes[0].get_title()
    with pytest.raises(ValueError, match="draw it anew"):
        update_head_view(fig, trace, 1, heads=[0, 3], tokens=TOKENS)  # all queries: more lines
