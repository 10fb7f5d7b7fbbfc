"""The attention heatmap: checks what was drawn, not just that a figure exists."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from matplotlib.patches import Rectangle

from minitransformer import Encoder, EncoderConfig
from viz import attention_heatmap
from viz.heatmap import masked_blocks, masked_runs
from viz.style import (
    MASKED_HATCH,
)

TOKENS = ["the", "cat", "sat", "on", "the", "mat", "[PAD]", "[PAD]"]


@pytest.fixture(scope="module")
def padded_trace():
    model = Encoder(EncoderConfig(n_layers=2, n_heads=4), seed=0)
    ids = np.array([[1, 2, 3, 4, 1, 5, 0, 0]])
    _, trace = model.run_with_trace(ids, mask=[[1, 1, 1, 1, 1, 1, 0, 0]])
    return trace


def test_image_is_the_heads_weights_with_masked_cells_masked(padded_trace):
    fig = attention_heatmap(padded_trace, layer=1, head=2, tokens=TOKENS)
    ax = fig.axes[0]
    drawn = ax.images[0].get_array()
    weights = padded_trace["blocks.1.attn.weights"][0, 2]
    np.testing.assert_array_equal(drawn.data, weights)
    expected_mask = np.zeros((8, 8), dtype=bool)
    expected_mask[:, 6:] = True  # the two padding keys
    expected_mask[6:, :] = True  # and the two padding queries: padding is not attention
    np.testing.assert_array_equal(np.ma.getmaskarray(drawn), expected_mask)


def test_labels_title_and_colorbar(padded_trace):
    fig = attention_heatmap(padded_trace, layer=1, head=2, tokens=TOKENS)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == TOKENS
    assert [t.get_text() for t in ax.get_yticklabels()] == TOKENS
    assert ax.get_title() == "Layer 1, head 2: attention weights"
    assert "key" in ax.get_xlabel() and "query" in ax.get_ylabel()
    assert len(fig.axes) == 2, "a colour bar axes next to the heatmap"
    assert fig.axes[1].get_ylabel() == "attention weight"


def test_masked_cells_are_hatched_distinctly_from_zero_weights(padded_trace):
    fig = attention_heatmap(padded_trace, layer=0, head=0, tokens=TOKENS)
    ax = fig.axes[0]
    hatched = [p for p in ax.patches if isinstance(p, Rectangle) and p.get_hatch() == MASKED_HATCH]
    covered: list[tuple[int, int]] = []
    for patch in hatched:
        x0, y0 = patch.get_xy()
        columns = range(round(x0 + 0.5), round(x0 + 0.5 + patch.get_width()))
        rows = range(round(y0 + 0.5), round(y0 + 0.5 + patch.get_height()))
        covered += [(i, j) for i in rows for j in columns]
    masked_keys = {(i, j) for i in range(8) for j in (6, 7)}
    padding_queries = {(i, j) for i in (6, 7) for j in range(8)}
    assert len(covered) == len(set(covered)), "each cell hatched once"
    assert set(covered) == masked_keys | padding_queries
    # the two masked keys' columns above the padding rows are one rectangle, not six
    assert len(hatched) == 2
    # The colour of a masked cell is not the colour of weight 0.
    image = ax.images[0]
    cmap = image.get_cmap()
    assert cmap.get_bad()[:3] != pytest.approx(cmap(0.0)[:3])


def test_causal_mask_gives_one_run_per_row():
    mask = np.tril(np.ones((4, 4), dtype=bool))
    assert masked_runs(mask) == [(0, 1, 4), (1, 2, 4), (2, 3, 4)]
    assert masked_blocks(mask) == [(0, 1, 1, 4), (1, 2, 2, 4), (2, 3, 3, 4)]  # none alike


def test_a_masked_key_is_one_block_above_and_one_below_its_own_masked_row():
    mask = np.ones((5, 5), dtype=bool)
    mask[:, 2] = False  # key 2 masked for every query...
    mask[2, :] = False  # ...and query 2 reads nothing (the explorer's masked token)
    assert masked_blocks(mask) == [(0, 2, 2, 3), (2, 3, 0, 5), (3, 5, 2, 3)]
    mask[4, 3] = False  # a different run in the last row ends the block above it
    assert masked_blocks(mask) == [(0, 2, 2, 3), (2, 3, 0, 5), (3, 4, 2, 3), (4, 5, 2, 4)]
    model = Encoder(EncoderConfig(causal=True), seed=1)
    _, trace = model.run_with_trace([[1, 2, 3, 4, 5]])
    fig = attention_heatmap(trace, 0, 1)
    drawn = fig.axes[0].images[0].get_array()
    np.testing.assert_array_equal(np.ma.getmaskarray(drawn), ~np.tril(np.ones((5, 5), dtype=bool)))
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["0", "1", "2", "3", "4"]


def test_vmax_and_default_scale(padded_trace):
    weights = padded_trace["blocks.0.attn.weights"][0, 3]
    fig = attention_heatmap(padded_trace, 0, 3)
    assert fig.axes[0].images[0].get_clim() == pytest.approx((0.0, weights.max()))
    fig = attention_heatmap(padded_trace, 0, 3, vmax=1.0, colorbar=False)
    assert fig.axes[0].images[0].get_clim() == (0.0, 1.0)
    assert len(fig.axes) == 1


def test_draws_into_a_given_axes(padded_trace):
    from matplotlib.figure import Figure

    fig = Figure()
    axes = fig.subplots(1, 2)
    returned = attention_heatmap(padded_trace, 0, 1, ax=axes[1], colorbar=False)
    assert returned is fig
    assert len(axes[1].images) == 1 and len(axes[0].images) == 0


def test_long_inputs_thin_their_labels():
    model = Encoder(EncoderConfig(max_len=128, vocab_size=200), seed=0)
    _, trace = model.run_with_trace(np.arange(120))
    tokens = [f"t{i}" for i in range(120)]
    labels = [
        t.get_text() for t in attention_heatmap(trace, 0, 0, tokens).axes[0].get_xticklabels()
    ]
    assert 10 <= len(labels) <= 48
    assert labels[:2] == ["t0", "t3"]


def test_bad_input_is_named(padded_trace):
    with pytest.raises(ValueError, match="tokens has 3 entries but the trace has 8 positions"):
        attention_heatmap(padded_trace, 0, 0, tokens=["a", "b", "c"])
    with pytest.raises(IndexError, match=r"layer must be in \[0, 2\), got 5"):
        attention_heatmap(padded_trace, 5, 0)
    with pytest.raises(IndexError, match=r"head must be in \[0, 4\), got 4"):
        attention_heatmap(padded_trace, 0, 4)
    with pytest.raises(IndexError, match=r"batch must be in \[0, 1\), got 1"):
        attention_heatmap(padded_trace, 0, 0, batch=1)
    filtered = padded_trace.filter("*.attn.q")
    with pytest.raises(KeyError, match="blocks.0.attn.weights"):
        attention_heatmap(filtered, 0, 0)


def test_shared_validation_helpers_give_the_same_clear_errors(padded_trace):
    from viz.checks import check_indices, check_layer_head, require_names

    assert check_layer_head(padded_trace, np.int64(1), 3) == (1, 3)
    with pytest.raises(TypeError, match="layer must be an int, got float"):
        check_layer_head(padded_trace, 1.0, 0)
    with pytest.raises(TypeError, match="head must be an int, got bool"):
        check_layer_head(padded_trace, 0, True)
    with pytest.raises(IndexError, match=r"head must be in \[0, 4\), got -1"):
        check_layer_head(padded_trace, 0, -1)
    assert check_indices(None, 4, "heads", "head") == [0, 1, 2, 3]
    assert check_indices(range(1, 3), 4, "heads", "head") == [1, 2]
    with pytest.raises(ValueError, match="heads is empty"):
        check_indices([], 4, "heads", "head")
    with pytest.raises(ValueError, match="heads repeats an index"):
        check_indices([1, 1], 4, "heads", "head")
    with pytest.raises(TypeError, match="heads must be a list of ints"):
        check_indices(2, 4, "heads", "head")
    with pytest.raises(IndexError, match=r"head must be in \[0, 4\), got 9"):
        check_indices([0, 9], 4, "heads", "head")
    filtered = padded_trace.filter(["*.attn.q", "embed.out"])
    expected = "the test figure needs .blocks.0.attn.weights.*without keep="
    with pytest.raises(KeyError, match=expected):
        require_names(filtered, ["embed.out", "blocks.0.attn.weights"], figure="the test figure")


def test_annotations_write_each_visible_weight_and_switch_off_for_long_inputs(padded_trace):
    fig = attention_heatmap(padded_trace, 1, 0, TOKENS)
    ax = fig.axes[0]
    weights = padded_trace["blocks.1.attn.weights"][0, 0]
    written = {(round(t.get_position()[1]), round(t.get_position()[0])): t for t in ax.texts}
    assert set(written) == {(i, j) for i in range(6) for j in range(6)}, "no text on masked cells"
    assert {t.get_fontsize() for t in ax.texts} == {7.0}, "readable numbers: 7 points"
    assert written[2, 3].get_text() == f"{weights[2, 3]:.2f}"
    assert len(attention_heatmap(padded_trace, 1, 0, annotate=False).axes[0].texts) == 0

    model = Encoder(EncoderConfig(), seed=0)
    _, long_trace = model.run_with_trace(np.arange(17))
    assert len(attention_heatmap(long_trace, 0, 0).axes[0].texts) == 0
    assert len(attention_heatmap(long_trace, 0, 0, annotate=True).axes[0].texts) == 17 * 17


def test_attention_heads_row_shares_one_colour_scale(padded_trace):
    from viz.heatmap import attention_heads

    fig = attention_heads(padded_trace, 1, heads=[3, 0, 2], tokens=TOKENS)
    heads_axes = [ax for ax in fig.axes if ax.images]
    assert [ax.get_title() for ax in heads_axes] == ["head 3", "head 0", "head 2"]
    assert fig.get_suptitle() == "Layer 1: attention weights of 3 heads"
    weights = padded_trace["blocks.1.attn.weights"][0]
    for ax, h in zip(heads_axes, [3, 0, 2], strict=True):
        np.testing.assert_array_equal(ax.images[0].get_array().data, weights[h])
        assert ax.images[0].get_clim() == pytest.approx((0.0, weights[[3, 0, 2]].max()))
    assert len(fig.axes) == 4, "three heads and one colour bar"
    assert [t.get_text() for t in heads_axes[0].get_yticklabels()] == TOKENS
    assert not heads_axes[1].yaxis.get_tick_params()["labelleft"], "query labels once per row"


def test_attention_heads_unshared_scales_wrap_and_default_to_all_heads(padded_trace):
    from viz.heatmap import attention_heads

    fig = attention_heads(padded_trace, 0, share_scale=False, max_columns=3)
    visible = [ax for ax in fig.axes if ax.get_visible() and ax.images]
    assert [ax.get_title() for ax in visible] == ["head 0", "head 1", "head 2", "head 3"]
    weights = padded_trace["blocks.0.attn.weights"][0]
    for h, ax in enumerate(visible):
        assert ax.images[0].get_clim() == pytest.approx((0.0, weights[h].max()))
    positions = {round(ax.get_position().y0, 2) for ax in visible}
    assert len(positions) == 2, "four heads at three per row: two rows"


def test_attention_heads_bad_input(padded_trace):
    from viz.heatmap import attention_heads

    with pytest.raises(IndexError, match=r"head must be in \[0, 4\), got 4"):
        attention_heads(padded_trace, 0, heads=[0, 4])
    with pytest.raises(IndexError, match=r"layer must be in \[0, 2\), got 2"):
        attention_heads(padded_trace, 2)
    with pytest.raises(ValueError, match="tokens has 2 entries"):
        attention_heads(padded_trace, 0, tokens=["a", "b"])
    with pytest.raises(KeyError, match="re-run"):
        attention_heads(padded_trace.filter("embed.*"), 0)


def drawn(fig):
    """The figure drawn once (layout applied) and its renderer, to measure what was drawn."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return canvas.get_renderer()


def test_attention_heads_title_counts_heads_in_the_right_number(padded_trace):
    from viz.heatmap import attention_heads

    assert attention_heads(padded_trace, 0, heads=[2]).get_suptitle() == (
        "Layer 0: attention weights of 1 head"
    )
    assert attention_heads(padded_trace, 0).get_suptitle().endswith("of 4 heads")


def test_attention_heads_rows_do_not_overlap_and_the_colour_bar_is_close():
    from viz.heatmap import attention_heads

    model = Encoder(EncoderConfig(d_model=48, n_heads=12), seed=0)  # MiniLM's 12 heads
    _, trace = model.run_with_trace(np.arange(13))
    tokens = "[CLS] the cat sat on the mat because it was tired . [SEP]".split()
    fig = attention_heads(trace, 0, tokens=tokens)
    renderer = drawn(fig)
    heads_axes = [ax for ax in fig.axes if ax.images]
    first_row, second_row = heads_axes[:6], heads_axes[6:]
    bottom_of_first = min(ax.get_tightbbox(renderer).y0 for ax in first_row)  # incl. "key"
    top_of_second = max(ax.title.get_window_extent(renderer).y1 for ax in second_row)
    assert bottom_of_first > top_of_second, "the key labels of row 1 touch row 2's titles"
    bar = fig.axes[-1]
    assert bar.get_ylabel() == "attention weight"
    gap = bar.get_window_extent(renderer).x0 - first_row[-1].get_window_extent(renderer).x1
    assert 0 < gap < 0.3 * fig.dpi, f"{gap / fig.dpi:.2f} inches between heads and colour bar"


def test_attention_heads_thin_long_labels_to_what_fits_a_panel():
    from viz.heatmap import attention_heads

    model = Encoder(EncoderConfig(max_len=64, vocab_size=80), seed=0)
    _, trace = model.run_with_trace(np.arange(64))
    tokens = [f"tok{i}" for i in range(64)]
    fig = attention_heads(trace, 0, heads=[0, 1], tokens=tokens)
    renderer = drawn(fig)
    for ax in [ax for ax in fig.axes if ax.images]:
        boxes = sorted((t.get_window_extent(renderer) for t in ax.get_xticklabels()),
                       key=lambda box: box.x0)  # fmt: skip
        assert len(boxes) >= 10, "long inputs still get labels"
        for left, right in zip(boxes[:-1], boxes[1:], strict=True):
            assert right.x0 >= left.x1, "neighbouring key labels overlap"


# -- padding is not attention ------------------------------------------------------------------


def test_padding_queries_are_drawn_as_masked_and_never_set_the_colour_scale():
    from viz_inputs import PADDED_TOKENS, REAL, padded_trace, padding_rules

    from viz.heatmap import attention_heads
    from viz.style import PADDING_COLOR

    trace = padded_trace()
    real_top, _ = padding_rules(trace, 0, 1)
    fig = attention_heatmap(trace, 0, 1, PADDED_TOKENS[1], batch=1)
    ax = fig.axes[0]
    image = ax.images[0]
    assert image.get_clim() == pytest.approx((0.0, real_top)), "the top from real queries only"
    drawn_mask = np.ma.getmaskarray(image.get_array())
    assert drawn_mask[REAL:].all(), "every cell of a padding query's row is masked (grey)"
    assert not drawn_mask[:REAL, :REAL].any()
    hatched_rows = {
        row
        for p in ax.patches
        if p.get_width() == 8
        for row in range(round(p.get_y() + 0.5), round(p.get_y() + 0.5 + p.get_height()))
    }
    assert hatched_rows == set(range(REAL, 8)), "padding rows hatched across"
    for labels in (ax.get_yticklabels(), ax.get_xticklabels()):
        colours = [t.get_color() for t in labels]
        assert colours[REAL:] == [PADDING_COLOR] * 4 and PADDING_COLOR not in colours[:REAL]

    heads = attention_heads(trace, 0, tokens=PADDED_TOKENS[1], batch=1)
    weights = trace["blocks.0.attn.weights"][1]
    assert heads.axes[0].images[0].get_clim()[1] == pytest.approx(weights[:, :REAL].max())
    assert weights[:, :REAL].max() < weights.max()
    for ax in [ax for ax in heads.axes if ax.images]:
        assert np.ma.getmaskarray(ax.images[0].get_array())[REAL:].all()
    each = attention_heads(trace, 0, batch=1, share_scale=False)
    tops = [ax.images[0].get_clim()[1] for ax in each.axes if ax.images]
    assert tops == pytest.approx(list(weights[:, :REAL].max(axis=(1, 2))))


# -- a span of a long input ----------------------------------------------------------------------


def test_a_span_shows_those_positions_only_and_says_so():
    from viz_inputs import long_trace, word_tokens

    from viz.heatmap import attention_heads

    trace, tokens = long_trace(64), word_tokens(64)
    fig = attention_heatmap(trace, 1, 3, tokens, span=slice(20, 30))
    ax = fig.axes[0]
    weights = trace["blocks.1.attn.weights"][0, 3, 20:30, 20:30]
    np.testing.assert_array_equal(ax.images[0].get_array().data, weights)
    assert ax.images[0].get_clim() == pytest.approx((0.0, weights.max()))
    assert [t.get_text() for t in ax.get_xticklabels()] == tokens[20:30]
    assert ax.get_title() == "Layer 1, head 3: attention weights, tokens 20-29 of 64"
    assert len(ax.texts) == 100, "10 tokens: the weights are written"
    heads = attention_heads(trace, 0, heads=[0, 1], tokens=tokens, span=slice(-8, None))
    assert heads.get_suptitle().endswith("tokens 56-63 of 64")
    assert [t.get_text() for t in heads.axes[0].get_yticklabels()] == tokens[56:]
    with pytest.raises(TypeError, match="span must be a slice"):
        attention_heatmap(trace, 0, 0, span=(0, 4))
    with pytest.raises(ValueError, match="selects no position"):
        attention_heatmap(trace, 0, 0, span=slice(70, 80))
    with pytest.raises(ValueError, match="step 1"):
        attention_heatmap(trace, 0, 0, span=slice(0, 10, 2))


# -- readable from 4 to 512 tokens ---------------------------------------------------------------


@pytest.mark.parametrize("n_tokens", [4, 64, 200, 512])
def test_readable_and_within_a_slide_from_4_to_512_tokens(n_tokens):
    from readability import assert_readable
    from viz_inputs import long_trace, word_tokens

    from viz.heatmap import attention_heads

    trace, tokens = long_trace(n_tokens), word_tokens(n_tokens)
    fig = attention_heatmap(trace, 0, 0, tokens)
    assert_readable(fig, max_pixels=2400)
    shown = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert len(shown) >= min(n_tokens, 20)
    heads = attention_heads(trace, 0, tokens=tokens)  # 12 heads: two rows of six
    assert_readable(heads, max_pixels=2400)
