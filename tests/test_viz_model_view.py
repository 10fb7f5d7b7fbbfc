"""The model view: a layers x heads grid of thumbnails, checked on what it draws."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import importlib
import io
import time

import numpy as np
import pytest
from matplotlib.colors import to_rgba
from matplotlib.patches import Rectangle
from timing import cpu_seconds

from minitransformer.config import EncoderConfig
from minitransformer.encoder import Encoder
from viz.model_view import model_view
from viz.style import (
    HIGHLIGHT_COLOR,
    PADDING_COLOR,
)

TOKENS = ["[CLS]", "the", "cat", "sat", "[SEP]", "[PAD]"]


@pytest.fixture(scope="module")
def trace():
    model = Encoder(EncoderConfig(n_layers=3, n_heads=4), seed=0)
    _, trace = model.run_with_trace([[2, 5, 6, 7, 3, 0]], mask=[[1, 1, 1, 1, 1, 0]])
    return trace


def texts(ax):
    """The layer and head labels (the maxima written under the thumbnails left out)."""
    return [t.get_text() for t in ax.texts if not t.get_text().startswith("max ")]


def maxima(ax):
    return [t.get_text() for t in ax.texts if t.get_text().startswith("max ")]


def test_one_thumbnail_per_head_in_row_major_order_holding_its_weights(trace):
    fig = model_view(trace, TOKENS)
    ax = fig.axes[0]
    assert len(fig.axes) == 1, "one axes, no colour bar for per-thumbnail scales"
    assert len(ax.images) == 3 * 4
    for index, image in enumerate(ax.images):
        layer, head = divmod(index, 4)
        weights = trace[f"blocks.{layer}.attn.weights"][0, head]
        np.testing.assert_array_equal(image.get_array().data, weights)
        drawn_mask = np.ma.getmaskarray(image.get_array())
        assert drawn_mask[:, 5].all(), "the padding key is masked"
        assert drawn_mask[5].all(), "so is the padding query's row"
        assert not drawn_mask[:5, :5].any()
        assert image.get_clim() == pytest.approx((0.0, weights[:5].max()))
    assert maxima(ax) == [f"max {image.get_clim()[1]:.2f}" for image in ax.images]
    # thumbnails of one row side by side, rows below each other, none overlapping
    left = [image.get_extent()[0] for image in ax.images]
    top = [image.get_extent()[3] for image in ax.images]
    assert left[:4] == sorted(left[:4]) and left[4:8] == left[:4]
    assert top[0] == top[3] < top[4] == top[7] < top[8]
    assert left[1] - left[0] > 6, "a gap between neighbouring thumbnails"


def test_layer_and_head_labels_on_the_margins_and_token_labels(trace):
    fig = model_view(trace, TOKENS)
    ax = fig.axes[0]
    assert texts(ax) == ["head 0", "head 1", "head 2", "head 3", "layer 0", "layer 1", "layer 2"]
    assert [t.get_text() for t in ax.get_xticklabels()] == TOKENS * 4, "keys under every column"
    assert [t.get_text() for t in ax.get_yticklabels()] == TOKENS * 3, "queries beside every row"
    assert "3 layers x 4 heads" in fig.get_suptitle()


def test_selected_layers_and_heads_and_a_shared_scale(trace):
    fig = model_view(trace, layers=[2, 0], heads=[1], vmax=1.0)
    ax = fig.axes[0]
    assert texts(ax) == ["head 1", "layer 2", "layer 0"]
    assert maxima(ax) == [], "one scale: no maximum per thumbnail"
    np.testing.assert_array_equal(
        ax.images[0].get_array().data, trace["blocks.2.attn.weights"][0, 1]
    )
    np.testing.assert_array_equal(
        ax.images[1].get_array().data, trace["blocks.0.attn.weights"][0, 1]
    )
    assert all(image.get_clim() == (0.0, 1.0) for image in ax.images)
    assert len(fig.axes) == 2 and fig.axes[1].get_ylabel() == "attention weight"
    assert [t.get_text() for t in ax.get_xticklabels()] == [str(i) for i in range(6)]


def test_draws_into_a_given_axes(trace):
    from matplotlib.figure import Figure

    fig = Figure()
    left, right = fig.subplots(1, 2)
    assert model_view(trace, layers=[0], ax=right) is fig
    assert len(right.images) == 4 and len(left.images) == 0


def test_highlighted_heads_are_framed_around_their_thumbnail(trace):
    ax = model_view(trace, highlight=[(1, 2), (2, 0)]).axes[0]
    frames = [p for p in ax.patches if isinstance(p, Rectangle)]
    assert len(frames) == 2
    for frame, (layer, head) in zip(frames, [(1, 2), (2, 0)], strict=True):
        assert frame.get_edgecolor() == pytest.approx(to_rgba(HIGHLIGHT_COLOR))
        x0, x1, y1, y0 = ax.images[layer * 4 + head].get_extent()
        assert frame.get_xy() == pytest.approx((x0, y0))
        assert (frame.get_width(), frame.get_height()) == pytest.approx((x1 - x0, y1 - y0))


def test_minilm_sized_grid_renders_and_thins_its_labels():
    config = EncoderConfig(vocab_size=100, d_model=384, n_heads=12, n_layers=6, d_ff=1536,
                           max_len=128)  # fmt: skip
    _, trace = Encoder(config, seed=0).run_with_trace(np.arange(64) % 100)
    figures = []

    def draw() -> None:
        figures.append(model_view(trace, [f"w{i}" for i in range(64)], highlight=[(5, 11)]))
        figures[0].savefig(io.BytesIO(), format="png")

    assert cpu_seconds(draw) < 2.0, "the 6 x 12 model view at 64 tokens renders in < 2 s"
    fig = figures[0]
    ax = fig.axes[0]
    assert len(ax.images) == 72
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert len(labels) % 12 == 0 and 2 <= len(labels) // 12 <= 12
    assert labels[0] == "w0" and int(labels[1][1:]) > 1, "every k-th token"


def test_bad_input_is_named(trace):
    with pytest.raises(IndexError, match=r"layer must be in \[0, 3\), got 3"):
        model_view(trace, layers=[0, 3])
    with pytest.raises(IndexError, match=r"head must be in \[0, 4\), got 7"):
        model_view(trace, heads=[7])
    with pytest.raises(ValueError, match="tokens has 2 entries but the trace has 6 positions"):
        model_view(trace, tokens=["a", "b"])
    with pytest.raises(ValueError, match=r"highlight \(1, 2\) is not in the grid"):
        model_view(trace, layers=[0], highlight=[(1, 2)])
    with pytest.raises(IndexError, match=r"highlight head must be in \[0, 4\), got 4"):
        model_view(trace, highlight=[(0, 4)])
    with pytest.raises(TypeError, match=r"highlight must hold \(layer, head\) pairs.*got 2"):
        model_view(trace, highlight=(2, 3))
    with pytest.raises(IndexError, match=r"batch must be in \[0, 1\), got 2"):
        model_view(trace, batch=2)
    with pytest.raises(KeyError, match="the model view needs 'blocks.0.attn.weights'"):
        model_view(trace.filter("*.attn.q"))


def test_one_layer_one_head_title_is_singular_and_inside_the_figure():
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    model = Encoder(EncoderConfig(n_layers=1, n_heads=1, d_model=8, d_ff=16), seed=0)
    _, small = model.run_with_trace([[1, 2, 3, 4, 5, 6, 7, 8]])
    fig = model_view(small)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    (title,) = [text for text in fig.texts if text.get_text() == fig.get_suptitle()]
    assert "1 layer x 1 head\n" in title.get_text()
    box, page = title.get_window_extent(canvas.get_renderer()), fig.bbox
    assert page.x0 <= box.x0 and box.x1 <= page.x1, "the title is cut off at the sides"
    assert box.y1 <= page.y1


# -- padding is not attention ------------------------------------------------------------------


def test_padding_queries_are_masked_and_never_set_a_colour_scale():
    from viz_inputs import PADDED_TOKENS, REAL, padded_trace, padding_rules

    trace = padded_trace()
    real_top, _ = padding_rules(trace, 0, 1)  # a head whose padding rows hold its maximum
    fig = model_view(trace, PADDED_TOKENS[1], batch=1)
    ax = fig.axes[0]
    for index, image in enumerate(ax.images):
        layer, head = divmod(index, 4)
        weights = trace[f"blocks.{layer}.attn.weights"][1, head]
        assert image.get_clim()[1] == pytest.approx(weights[:REAL].max())
        assert np.ma.getmaskarray(image.get_array())[REAL:].all()
    assert ax.images[1].get_clim()[1] == pytest.approx(real_top)
    colours = [t.get_color() for t in ax.get_yticklabels()][:8]
    assert colours[REAL:] == [PADDING_COLOR] * 4 and PADDING_COLOR not in colours[:REAL]

    shared = model_view(trace, batch=1, vmax="shared")
    every = np.stack([trace[f"blocks.{l}.attn.weights"][1] for l in range(2)])  # (L, H, S, S)
    assert every[:, :, :REAL].max() < every.max()
    tops = [image.get_clim()[1] for image in shared.axes[0].images]
    assert tops == [pytest.approx(float(every[:, :, :REAL].max()))] * 8
    lines = model_view(trace, batch=1, kind="lines")
    (collection,) = lines.axes[0].collections
    starts = collection.get_segments()
    first = lines.axes[0].images[0].get_extent()  # (x0, x1, y1, y0) of layer 0 head 0
    rows = {round(s[0][1] - first[3] - 0.5) for s in starts
            if s[0][0] == first[0] and first[3] < s[0][1] < first[2]}  # fmt: skip
    assert rows, "layer 0, head 0 draws lines"
    assert rows <= set(range(REAL)), "no line starts at a padding query"


def test_a_shared_scale_has_a_colour_bar_and_says_so(trace):
    fig = model_view(trace, TOKENS, vmax="shared")
    ax = fig.axes[0]
    top = max(trace[f"blocks.{l}.attn.weights"][0, :, :5].max() for l in range(3))
    assert [image.get_clim() for image in ax.images] == [pytest.approx((0.0, top))] * 12
    assert len(fig.axes) == 2 and fig.axes[1].get_ylabel() == "attention weight"
    assert f"one colour scale, 0 to the largest weight {top:.2f}" in fig.get_suptitle()
    assert maxima(ax) == []
    with pytest.raises(ValueError, match="vmax must be a positive number"):
        model_view(trace, vmax=0.0)
    with pytest.raises(TypeError, match='vmax must be a number, "shared" or None'):
        model_view(trace, vmax="each")
    with pytest.raises(ValueError, match="kind must be one of"):
        model_view(trace, kind="arcs")


def test_line_thumbnails_join_each_query_to_its_keys_at_the_weights_opacity(trace):
    fig = model_view(trace, TOKENS, layers=[1], heads=[2], kind="lines")
    ax = fig.axes[0]
    (collection,) = ax.collections
    weights = trace["blocks.1.attn.weights"][0, 2]
    x0, x1, y1, y0 = ax.images[0].get_extent()
    assert not ax.images[0].get_visible(), "the image only marks the thumbnail's place"
    expected = {(i, j): weights[i, j] / weights[:5].max() for i in range(5) for j in range(5)}
    drawn = {}
    for (start, end), colour in zip(collection.get_segments(), collection.get_colors(),
                                    strict=True):  # fmt: skip
        assert start[0] == x0 and end[0] == x1, "queries on the left edge, keys on the right"
        drawn[round(start[1] - y0 - 0.5), round(end[1] - y0 - 0.5)] = colour[3]
    assert drawn.keys() == {k for k, v in expected.items() if v >= 1 / 255}
    for key, alpha in drawn.items():
        assert alpha == pytest.approx(expected[key], rel=1e-6)
    assert [t.get_text() for t in ax.get_xticklabels()] == [], "no key labels under lines"
    assert "lines from queries (left) to keys (right)" in fig.get_suptitle()


def test_a_previous_token_head_draws_climbing_lines_a_self_head_flat_ones():
    from viz_inputs import long_trace

    trace = long_trace(8, n_heads=2, n_layers=1)
    shifted = dict(trace.items())
    weights = np.zeros((1, 2, 8, 8), dtype=np.float32)
    weights[0, 0] = np.eye(8)  # head 0 reads itself
    weights[0, 1] = np.eye(8, k=-1) + np.eye(8)[0] * (np.arange(8) == 0)[:, None]  # previous
    shifted["blocks.0.attn.weights"] = weights
    fake = type(trace)(shifted, trace.config, padding_mask=np.ones((1, 8), dtype=bool))
    ax = model_view(fake, kind="lines").axes[0]
    (collection,) = ax.collections
    rises = {}
    for start, end in collection.get_segments():
        head = 0 if start[0] == ax.images[0].get_extent()[0] else 1
        rises.setdefault(head, set()).add(round(start[1] - end[1]))
    assert rises == {0: {0}, 1: {0, 1}}, "self: flat; previous token: one row up"


def test_thin_lines_past_the_limit_each_head_keeps_its_strongest_and_the_title_says_so(
    monkeypatch, trace
):
    module = importlib.import_module("viz.model_view")  # (viz.model_view is the function)
    every = model_view(trace, kind="lines", heads=[0, 1], layers=[0, 2])
    monkeypatch.setattr(module, "MAX_LINES", 12)  # 3 lines for each of the 4 heads
    fig = model_view(trace, kind="lines", heads=[0, 1], layers=[0, 2])
    (collection,) = fig.axes[0].collections
    (all_lines,) = every.axes[0].collections
    assert len(collection.get_segments()) == 12
    assert f"at most 3 lines per head, its strongest: 12 of {len(all_lines.get_segments())}" in (
        fig.get_suptitle().replace("\n", " ")
    )
    for image in fig.axes[0].images:  # each thumbnail: the 3 strongest of its own lines
        x0, _, y1, y0 = image.get_extent()

        def alphas(c, x0=x0, y0=y0, y1=y1):
            return sorted(a for (start, _), a in zip(c.get_segments(), c.get_colors()[:, 3],
                                                     strict=True)
                          if start[0] == x0 and y0 < start[1] < y1)  # fmt: skip

        assert alphas(collection) == pytest.approx(alphas(all_lines)[-3:])


def test_a_span_shows_those_positions(trace):
    from viz_inputs import long_trace, word_tokens

    long, tokens = long_trace(64), word_tokens(64)
    fig = model_view(long, tokens, span=slice(10, 20))
    ax = fig.axes[0]
    np.testing.assert_array_equal(
        ax.images[3].get_array().data, long["blocks.0.attn.weights"][0, 3, 10:20, 10:20]
    )
    assert "tokens 10-19 of 64" in fig.get_suptitle()
    assert [t.get_text() for t in ax.get_yticklabels()][:10] == tokens[10:20]


@pytest.mark.parametrize("n_tokens", [4, 64, 200, 512])
def test_the_minilm_sized_grid_is_readable_from_4_to_512_tokens(n_tokens):
    from readability import assert_readable
    from viz_inputs import long_trace, word_tokens

    trace = long_trace(n_tokens, n_heads=12, n_layers=6)
    start = time.process_time()
    fig = model_view(trace, word_tokens(n_tokens), highlight=[(2, 0)])
    fig.savefig(io.BytesIO(), format="png")
    seconds = time.process_time() - start
    assert_readable(fig, max_pixels=2400)
    assert seconds < 6.0, f"6 x 12 heads at {n_tokens} tokens took {seconds:.1f} s of CPU"
    ax = fig.axes[0]
    pixels = 1.5 * fig.dpi  # a thumbnail's side
    if n_tokens > pixels:  # block maxima, said in the title
        factor = int(np.ceil(n_tokens / pixels))
        assert ax.images[0].get_array().shape == (-(-n_tokens // factor),) * 2
        assert f"the largest weight of {factor} x {factor} tokens" in fig.get_suptitle()
        weights = trace["blocks.0.attn.weights"][0, 0]
        assert ax.images[0].get_array()[0, 0] == weights[:factor, :factor].max()
    assert_readable(model_view(trace, word_tokens(n_tokens), kind="lines"), max_pixels=2400)


def test_line_thumbnails_grey_out_the_padding_rows():
    from matplotlib.colors import to_hex
    from viz_inputs import REAL, padded_trace

    from viz.style import MASKED_COLOR

    ax = model_view(padded_trace(), batch=1, kind="lines").axes[0]
    bands = [p for p in ax.patches if to_hex(p.get_facecolor()) == MASKED_COLOR]
    assert len(bands) == 2 * 4, "one band per thumbnail"
    x0, x1, y1, y0 = ax.images[0].get_extent()
    assert (bands[0].get_x(), bands[0].get_y()) == pytest.approx((x0, y0 + REAL))
    assert (bands[0].get_width(), bands[0].get_height()) == pytest.approx((x1 - x0, 8 - REAL))
    assert not [p for p in model_view(padded_trace(), batch=0, kind="lines").axes[0].patches]
