"""The head view: lines from queries to keys, as opaque as the attention weights."""

from __future__ import annotations

import importlib
import io

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from matplotlib.collections import LineCollection
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure

from minitransformer.config import EncoderConfig
from minitransformer.encoder import Encoder
from viz.head_view import head_view
from viz.style import (
    HIGHLIGHT_COLOR,
    head_color,
)

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


def test_one_line_per_visible_query_key_pair_with_alpha_proportional_to_the_weight(trace):
    fig = head_view(trace, 1, heads=[2, 0], tokens=TOKENS)
    weights = trace["blocks.1.attn.weights"][0]
    lines = collections(fig)
    assert [c.get_label() for c in lines] == ["head 2", "head 0"]
    top = weights[[2, 0], :5].max()  # the padding query (row 5) does not count
    for c, h in zip(lines, [2, 0], strict=True):
        segments = c.get_segments()
        # 5 real queries x 5 real keys: the padding query starts no line, and the lines to
        # the masked key (weight 0) are not drawn at all
        assert len(segments) == 5 * 5
        np.testing.assert_allclose(segments[1 * 5 + 3], [[0, 1], [1, 3]])  # query 1 -> key 3
        colors = c.get_colors()
        np.testing.assert_allclose(colors[:, 3], weights[h, :5, :5].ravel() / top, rtol=1e-6)
        np.testing.assert_allclose(colors[:, :3], np.tile(to_rgb(head_color(h)), (25, 1)))
    assert max(c.get_colors()[:, 3].max() for c in lines) == pytest.approx(1.0), (
        "the strongest line is opaque"
    )


def test_tokens_columns_legend_and_title(trace):
    fig = head_view(trace, 0, tokens=TOKENS)
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.texts]
    assert texts[:6] == texts[6:12] == TOKENS, "the query column, then the key column"
    assert "query" in texts and "key" in texts
    assert [t.get_text() for t in query_column(fig)] == TOKENS
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [f"head {h}" for h in range(4)]
    assert ax.get_title().startswith("Layer 0, 4 heads")
    assert len(collections(fig)) == 4


def test_query_focus_draws_only_that_querys_lines_and_highlights_it(trace):
    fig = head_view(trace, 1, heads=[3], tokens=TOKENS, query=2)
    (lines,) = collections(fig)
    segments = lines.get_segments()
    assert len(segments) == 5 and all(s[0][1] == 2 for s in segments), "5 keys, not the masked"
    weights = trace["blocks.1.attn.weights"][0, 3, 2, :5]
    np.testing.assert_allclose(lines.get_colors()[:, 3], weights / weights.max(), rtol=1e-6)
    ax = fig.axes[0]
    assert ax.get_title().startswith("Layer 1, head 3, query 2 ('dog')")
    framed = [t for t in ax.texts if t.get_bbox_patch() is not None]
    assert [t.get_text() for t in framed] == ["dog"]
    assert framed[0].get_bbox_patch().get_edgecolor()[:3] == pytest.approx(to_rgb(HIGHLIGHT_COLOR))
    others = [t for t in query_column(fig) if t.get_text() != "dog"]
    assert all(t.get_color() != "black" for t in others), "the other queries are dimmed"


def test_long_inputs_thin_the_token_labels_but_keep_every_visible_line():
    _, trace = Encoder(EncoderConfig(max_len=256), seed=0).run_with_trace(np.arange(256) % 64)
    fig = head_view(trace, 0, heads=[1], tokens=[f"t{i}" for i in range(256)], query=37)
    left = query_column(fig)
    names = [t.get_text() for t in left]
    assert 10 <= len(names) < 256 and "t37" in names, "the focused query is always labelled"
    weights = trace["blocks.0.attn.weights"][0, 1, 37]
    visible = np.count_nonzero(weights / weights.max() >= 1 / 255)  # fainter: invisible anyway
    assert len(collections(fig)[0].get_segments()) == visible > 200
    # every label sits on the row of its token, where its lines end, and is marked by a dot
    for text in left:
        assert text.get_position()[1] == int(text.get_text()[1:])
    (dots, key_dots) = [line for line in fig.axes[0].lines]
    assert sorted(dots.get_ydata()) == sorted(t.get_position()[1] for t in left)
    keys = [t for t in fig.axes[0].texts if t.get_position()[0] > 1]
    assert sorted(key_dots.get_ydata()) == sorted(t.get_position()[1] for t in keys)
    near_start = head_view(trace, 0, heads=[1], tokens=[f"t{i}" for i in range(256)], query=1)
    keys = [t.get_text() for t in near_start.axes[0].texts if t.get_position()[0] > 1]
    assert keys[:2] == ["t0", "t2"], "the key column keeps its labels beside the query"
    assert fig.get_figheight() * fig.dpi <= 2400


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


def test_update_in_place_to_another_query_moves_the_highlight(trace):
    from viz.head_view import query_labels, update_head_view

    fig = head_view(trace, 0, heads=[1], tokens=TOKENS, query=3)
    update_head_view(fig, trace, 1, heads=[2], tokens=TOKENS, query=0)
    fresh = head_view(trace, 1, heads=[2], tokens=TOKENS, query=0)

    def look(figure):
        return [
            (t.get_text(), t.get_color(), t.get_fontweight(), t.get_bbox_patch() is not None)
            for t in query_labels(figure.axes[0])
        ]

    assert look(fig) == look(fresh)
    assert [framed for *_, framed in look(fig)] == [True] + [False] * (len(TOKENS) - 1)
    np.testing.assert_array_equal(collections(fig)[0].get_segments(),
                                  collections(fresh)[0].get_segments())  # fmt: skip
    assert fig.axes[0].get_title() == fresh.axes[0].get_title()


def test_a_long_input_refuses_another_query_in_place():
    # past the rows a figure labels, the query's labelled neighbours give way to it: another
    # query writes other labels, so the figure is drawn anew
    from viz.head_view import max_labelled_rows, query_labels, update_head_view

    n = max_labelled_rows(4.0) * 3
    config = EncoderConfig(vocab_size=20, d_model=8, n_heads=2, n_layers=1, d_ff=16, max_len=n)
    _, long_trace = Encoder(config, seed=0).run_with_trace(np.arange(n)[None] % 20)
    ax = Figure(figsize=(4.8, 4.0)).add_subplot()
    fig = head_view(long_trace, 0, query=5, ax=ax)
    assert len(query_labels(fig.axes[0])) < n, "every k-th token labelled"
    with pytest.raises(ValueError, match="draw it anew"):
        update_head_view(fig, long_trace, 0, query=7)


# -- padding is not attention ------------------------------------------------------------------


def test_no_line_starts_at_a_padding_query_and_padding_is_grey():
    from viz_inputs import PADDED_TOKENS, REAL, padded_trace, padding_rules

    from viz.head_view import update_head_view
    from viz.style import PADDING_COLOR

    trace = padded_trace()
    real_top, _ = padding_rules(trace, 0, 1)
    fig = head_view(trace, 0, heads=[1], tokens=PADDED_TOKENS[1], batch=1)
    (lines,) = collections(fig)
    starts = {round(s[0][1]) for s in lines.get_segments()}
    assert starts <= set(range(REAL)), "no line from a padding query"
    assert lines.get_colors()[:, 3].max() == pytest.approx(1.0), "scaled to the real maximum"
    weights = trace["blocks.0.attn.weights"][1, 1]
    np.testing.assert_allclose(lines.get_colors()[:, 3],
                               weights[:REAL, :REAL].ravel() / real_top, rtol=1e-6)  # fmt: skip
    colours = [t.get_color() for t in query_column(fig)]
    assert colours[REAL:] == [PADDING_COLOR] * 4 and PADDING_COLOR not in colours[:REAL]
    focused = head_view(trace, 0, heads=[1], tokens=PADDED_TOKENS[1], batch=1, query=5)
    assert len(collections(focused)[0].get_segments()) == 0
    assert "padding: its weights are never used, no lines" in focused.axes[0].get_title()
    # in place, the same: another head of the padded sequence
    update_head_view(fig, trace, 1, heads=[3], tokens=PADDED_TOKENS[1], batch=1)
    fresh = head_view(trace, 1, heads=[3], tokens=PADDED_TOKENS[1], batch=1)
    np.testing.assert_array_equal(collections(fig)[0].get_segments(),
                                  collections(fresh)[0].get_segments())  # fmt: skip
    np.testing.assert_array_equal(collections(fig)[0].get_colors(),
                                  collections(fresh)[0].get_colors())  # fmt: skip


# -- long inputs: bounded lines, readable labels, linear time ----------------------------------


def test_past_the_line_limit_only_the_strongest_lines_are_drawn_and_the_title_says_so(
    monkeypatch,
):
    module = importlib.import_module("viz.head_view")  # (viz.head_view is the function)
    from viz_inputs import long_trace

    trace = long_trace(32, n_heads=4)
    every = head_view(trace, 0)
    all_alphas = np.concatenate([c.get_colors()[:, 3] for c in collections(every)])
    assert "strongest" not in every.axes[0].get_title()
    monkeypatch.setattr(module, "MAX_LINES", 100)
    fig = head_view(trace, 0)
    alphas = np.concatenate([c.get_colors()[:, 3] for c in collections(fig)])
    assert len(alphas) == 100
    np.testing.assert_allclose(np.sort(alphas), np.sort(all_alphas)[-100:])
    assert f"the 100 strongest of {len(all_alphas):,} lines drawn" in fig.axes[0].get_title()


def test_render_time_grows_at_most_linearly():
    """12 heads at 512 tokens used to draw every one of 3 million lines (110 s; 27 s at 256).
    Twice the tokens may not take more than 2.5 times as long (one run, as a ratio)."""
    from timing import cpu_seconds
    from viz_inputs import long_trace

    def seconds(n_tokens: int) -> float:
        trace = long_trace(n_tokens, n_heads=12)
        tokens = [f"t{i}" for i in range(n_tokens)]
        return cpu_seconds(
            lambda: head_view(trace, 0, tokens=tokens).savefig(io.BytesIO(), format="png")
        )

    seconds(64)  # warm up (fonts, caches)
    small, large = seconds(256), seconds(512)
    assert large <= 2.5 * small, f"256 tokens: {small:.2f} s, 512 tokens: {large:.2f} s"


@pytest.mark.parametrize("n_tokens", [4, 64, 200, 512])
def test_readable_from_4_to_512_tokens_with_labels_on_their_rows(n_tokens):
    from readability import assert_readable
    from viz_inputs import long_trace, word_tokens

    trace, tokens = long_trace(n_tokens), word_tokens(n_tokens)
    for heads, query in ((None, None), ([2], n_tokens // 2)):
        fig = head_view(trace, 1, heads, tokens, query=query)
        assert_readable(fig, max_pixels=2400)
        ax = fig.axes[0]
        rows = {round(t.get_position()[1]) for t in query_column(fig)}
        assert len(rows) >= min(n_tokens, 60), "long inputs keep many labels"
        if query is not None:
            assert query in rows
        for text in ax.texts:
            if text.get_position()[1] >= 0 and text.get_text() not in ("query", "key"):
                assert text.get_text() == tokens[round(text.get_position()[1])]


def test_a_span_shows_those_positions():
    from viz_inputs import long_trace, word_tokens

    trace, tokens = long_trace(64), word_tokens(64)
    fig = head_view(trace, 0, [1], tokens, span=slice(30, 40), query=33)
    (lines,) = collections(fig)
    assert {round(s[0][1]) for s in lines.get_segments()} == {3}, "query 33 is row 3"
    weights = trace["blocks.0.attn.weights"][0, 1, 33, 30:40]
    np.testing.assert_allclose(lines.get_colors()[:, 3], weights / weights.max(), rtol=1e-6)
    assert [t.get_text() for t in query_column(fig)] == tokens[30:40]
    assert "tokens 30-39 of 64" in fig.axes[0].get_title()
    with pytest.raises(ValueError, match="query 10 is outside span 30..39"):
        head_view(trace, 0, [1], span=slice(30, 40), query=10)
