"""The model view: a layers x heads grid of thumbnails, checked on what it draws."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import io
import time

import numpy as np
import pytest
from matplotlib.colors import to_rgba
from matplotlib.patches import Rectangle

from minitransformer.config import EncoderConfig
from minitransformer.encoder import Encoder
from viz.model_view import model_view
from viz.style import HIGHLIGHT_COLOR

TOKENS = ["[CLS]", "the", "cat", "sat", "[SEP]", "[PAD]"]


@pytest.fixture(scope="module")
def trace():
    model = Encoder(EncoderConfig(n_layers=3, n_heads=4), seed=0)
    _, trace = model.run_with_trace([[2, 5, 6, 7, 3, 0]], mask=[[1, 1, 1, 1, 1, 0]])
    return trace


def texts(ax):
    return [t.get_text() for t in ax.texts]


def test_one_thumbnail_per_head_in_row_major_order_holding_its_weights(trace):
    fig = model_view(trace, TOKENS)
    ax = fig.axes[0]
    assert len(fig.axes) == 1, "one axes, no colour bar for per-thumbnail scales"
    assert len(ax.images) == 3 * 4
    for index, image in enumerate(ax.images):
        layer, head = divmod(index, 4)
        weights = trace[f"blocks.{layer}.attn.weights"][0, head]
        np.testing.assert_array_equal(image.get_array().data, weights)
        assert np.ma.getmaskarray(image.get_array())[:, 5].all(), "the padding key is masked"
        assert not np.ma.getmaskarray(image.get_array())[:, :5].any()
        assert image.get_clim() == pytest.approx((0.0, weights.max()))
    # thumbnails of one row side by side, rows below each other, none overlapping
    left = [image.get_extent()[0] for image in ax.images]
    top = [image.get_extent()[3] for image in ax.images]
    assert left[:4] == sorted(left[:4]) and left[4:8] == left[:4]
    assert top[0] == top[3] < top[4] == top[7] < top[8]
    assert left[1] - left[0] > 6, "a gap between neighbouring thumbnails"


def test_layer_and_head_labels_on_the_margins_and_token_labels(trace):
    ax = model_view(trace, TOKENS).axes[0]
    assert texts(ax) == ["head 0", "head 1", "head 2", "head 3", "layer 0", "layer 1", "layer 2"]
    assert [t.get_text() for t in ax.get_xticklabels()] == TOKENS * 4, "keys under every column"
    assert [t.get_text() for t in ax.get_yticklabels()] == TOKENS * 3, "queries beside every row"
    assert "3 layers x 4 heads" in ax.get_title()


def test_selected_layers_and_heads_and_a_shared_scale(trace):
    fig = model_view(trace, layers=[2, 0], heads=[1], vmax=1.0)
    ax = fig.axes[0]
    assert texts(ax) == ["head 1", "layer 2", "layer 0"]
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
    start = time.process_time()  # CPU time of this process: not inflated by a busy machine
    fig = model_view(trace, [f"w{i}" for i in range(64)], highlight=[(5, 11)])
    fig.savefig(io.BytesIO(), format="png")
    assert time.process_time() - start < 2.0, "the 6 x 12 model view at 64 tokens renders in < 2 s"
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
    title = fig.axes[0].title
    assert "1 layer x 1 head:" in title.get_text().replace("\n", " ")
    box, page = title.get_window_extent(canvas.get_renderer()), fig.bbox
    assert page.x0 <= box.x0 and box.x1 <= page.x1, "the title is cut off at the sides"
    assert box.y1 <= page.y1
