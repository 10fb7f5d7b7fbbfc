"""Step-by-step attention: every panel shows the trace's own array, titled with its shape."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import re

import numpy as np
import pytest
from conftest import make_encoder
from matplotlib.patches import ConnectionPatch, Rectangle

from minitransformer.config import EncoderConfig
from viz.steps import attention_step_frames, attention_steps, save_frames, step_panels
from viz.style import HIGHLIGHT_COLOR, MASKED_HATCH

TOKENS = ["[CLS]", "the", "cat", "sat", "on", "mat", "[PAD]"]
MASK = [[1, 1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1, 1]]


@pytest.fixture(scope="module")
def model():
    return make_encoder(EncoderConfig(n_layers=2, n_heads=4, d_model=32), seed=3)


@pytest.fixture(scope="module")
def trace(model):
    ids = np.array([[1, 2, 3, 4, 5, 6, 0], [7, 8, 9, 10, 11, 12, 13]])
    return model.run_with_trace(ids, mask=MASK)[1]


def panels_by_title(fig):
    """The step panels of a figure (colour bars have no title), by title."""
    return {ax.get_title(): ax for ax in fig.axes if re.match(r"^\d+\. ", ax.get_title())}


def test_every_panel_title_has_number_formula_and_shape(trace, model):
    fig = attention_steps(trace, 1, 2, TOKENS, params=model.params)
    titles = sorted(panels_by_title(fig), key=lambda t: int(t.split(".")[0]))
    assert titles == [
        "1. X = block input  (7 × 32)",
        "2. W_Q[:, head 2]  (32 × 8)",
        "3. W_K[:, head 2]  (32 × 8)",
        "4. W_V[:, head 2]  (32 × 8)",
        "5. Q = X W_Q + b_Q  (7 × 8)",
        "6. K = X W_K + b_K  (7 × 8)",
        "7. V = X W_V + b_V  (7 × 8)",
        "8. Q Kᵀ  (7 × 7)",
        "9. scores = Q Kᵀ / √8  (7 × 7)",
        "10. scores + mask  (7 × 7)",
        "11. weights = softmax(row)  (7 × 7)",
        "12. z = weights V  (7 × 8)",
        "13. concat(z of all heads)  (7 × 32)",
        "14. W_O  (32 × 32)",
        "15. attn.out = concat W_O + b_O  (7 × 32)",
    ]
    assert fig.get_suptitle().startswith("Layer 1, head 2: attention step by step")
    assert len([a for a in fig.artists if isinstance(a, ConnectionPatch)]) == 6


def test_images_are_the_trace_arrays(trace, model):
    fig = attention_steps(trace, 1, 2, TOKENS, params=model.params, batch=1)
    axes = {t.split("  ")[0].split(". ", 1)[1]: ax for t, ax in panels_by_title(fig).items()}
    drawn = {name: ax.images[0].get_array() for name, ax in axes.items()}
    b, p = "blocks.1.attn", model.params
    expected = {
        "X = block input": trace["blocks.0.out"][1],
        "W_Q[:, head 2]": p["blocks.1.attn.W_Q"][:, 16:24],
        "W_V[:, head 2]": p["blocks.1.attn.W_V"][:, 16:24],
        "Q = X W_Q + b_Q": trace[f"{b}.q"][1, 2],
        "K = X W_K + b_K": trace[f"{b}.k"][1, 2],
        "V = X W_V + b_V": trace[f"{b}.v"][1, 2],
        "scores = Q Kᵀ / √8": trace[f"{b}.scores"][1, 2],
        "weights = softmax(row)": trace[f"{b}.weights"][1, 2],
        "z = weights V": trace[f"{b}.z"][1, 2],
        "concat(z of all heads)": trace[f"{b}.concat"][1],
        "W_O": p["blocks.1.attn.W_O"],
        "attn.out = concat W_O + b_O": trace[f"{b}.out"][1],
    }
    for name, array in expected.items():
        np.testing.assert_array_equal(drawn[name].data, array, err_msg=name)
    # Q Kᵀ is the recorded scores rescaled by √d_head, and equals the product of q and k.
    q, k = trace[f"{b}.q"][1, 2], trace[f"{b}.k"][1, 2]
    np.testing.assert_allclose(drawn["Q Kᵀ"].data, q @ k.T, rtol=1e-4, atol=1e-5)
    # Signed panels use the diverging map, centred at 0.
    image = axes["Q = X W_Q + b_Q"].images[0]
    assert image.get_cmap().name.startswith("RdBu_r")
    assert image.norm.vmin == pytest.approx(-image.norm.vmax)
    assert image.norm.vmax == pytest.approx(np.abs(q).max())


def test_mask_panels_and_head_outlines(trace, model):
    fig = attention_steps(trace, 0, 1, TOKENS, params=model.params)
    axes = {t.split("  ")[0].split(". ", 1)[1]: ax for t, ax in panels_by_title(fig).items()}
    for name in ("scores + mask", "weights = softmax(row)"):
        masked = np.ma.getmaskarray(axes[name].images[0].get_array())
        expected = np.zeros((7, 7), bool)
        expected[:, 6] = True  # the [PAD] key
        np.testing.assert_array_equal(masked, expected)
        hatched = [p for p in axes[name].patches if p.get_hatch() == MASKED_HATCH]
        assert [(p.get_x(), p.get_width(), p.get_height()) for p in hatched] == [(5.5, 1, 1)] * 7
    assert not np.ma.getmaskarray(axes["scores = Q Kᵀ / √8"].images[0].get_array()).any()

    def outline(name):
        (box,) = [p for p in axes[name].patches if isinstance(p, Rectangle) and not p.get_fill()]
        assert box.get_edgecolor()[:3] == pytest.approx(matplotlib.colors.to_rgb(HIGHLIGHT_COLOR))
        return box.get_xy(), box.get_width(), box.get_height()

    assert outline("concat(z of all heads)") == ((7.5, -0.5), 8, 7)  # columns 8..15 = head 1
    assert outline("W_O") == ((-0.5, 7.5), 32, 8)  # rows 8..15 read head 1
    labels = [t.get_text() for t in axes["weights = softmax(row)"].get_xticklabels()]
    assert labels == TOKENS


def test_without_params_and_pre_norm():
    model = make_encoder(EncoderConfig(norm="pre", n_heads=2, d_model=16), seed=1)
    _, trace = model.run_with_trace([[1, 2, 3, 4, 5]])
    panels = step_panels(trace, 1, 0)
    assert [p.key for p in panels] == [
        "X", "Q", "K", "V", "QK", "scores", "masked", "weights", "z", "concat", "out",
    ]  # fmt: skip
    assert panels[0].name == "X = LN1(block input)"
    np.testing.assert_array_equal(panels[0].array, trace["blocks.1.ln1.out"][0])
    fig = attention_steps(trace, 1, 0)
    assert len(panels_by_title(fig)) == 11
    assert "11. attn.out = concat W_O + b_O  (5 × 16)" in panels_by_title(fig)


def test_frames_one_per_step_and_saved(trace, model, tmp_path):
    frames = attention_step_frames(trace, 0, 3, TOKENS, params=model.params)
    assert len(frames) == 15
    assert frames[8].get_suptitle() == "Step 9 of 15 · layer 0, head 3"
    (ax, _bar) = frames[8].axes
    assert ax.get_title() == "9. scores = Q Kᵀ / √8  (7 × 7)"
    np.testing.assert_array_equal(
        ax.images[0].get_array().data, trace["blocks.0.attn.scores"][0, 3]
    )
    assert len(ax.texts) == 49, "a 7 × 7 frame writes its values in the cells"
    assert "√d_head" in frames[8].get_supxlabel()
    paths = save_frames(frames[:3], tmp_path / "slides")
    assert [p.name for p in paths] == ["step_01.png", "step_02.png", "step_03.png"]
    assert all(p.stat().st_size > 1000 for p in paths)
    with pytest.raises(ValueError, match="fmt must be"):
        save_frames(frames[:1], tmp_path, fmt="jpeg")


def test_clear_errors(trace, model):
    with pytest.raises(IndexError, match=r"layer must be in \[0, 2\), got 2"):
        attention_steps(trace, 2, 0)
    with pytest.raises(IndexError, match=r"head must be in \[0, 4\), got 4"):
        attention_steps(trace, 0, 4)
    with pytest.raises(IndexError, match="batch"):
        attention_steps(trace, 0, 0, batch=2)
    with pytest.raises(ValueError, match="tokens has 3 entries but the trace has 7"):
        attention_steps(trace, 0, 0, tokens=["a", "b", "c"])
    with pytest.raises(KeyError, match="blocks.0.attn.q"):
        attention_steps(trace.filter("*.attn.weights"), 0, 0)
    with pytest.raises(TypeError, match="params must be"):
        attention_steps(trace, 0, 0, params=[1, 2])
    other = make_encoder(EncoderConfig(d_model=16, n_heads=4), seed=0)
    with pytest.raises(ValueError, match="d_model is 32"):
        attention_steps(trace, 0, 0, params=other.params)
    # A model is accepted in place of its params.
    assert len(step_panels(trace, 0, 0, params=model)) == 15


def test_one_frame_alone_equals_that_frame_of_all_frames() -> None:
    from minitransformer import Encoder, EncoderConfig
    from viz.steps import attention_step_frame, attention_step_frames

    model = Encoder(EncoderConfig(vocab_size=10, d_model=8, n_heads=2, n_layers=1), seed=0)
    _, trace = model.run_with_trace([1, 2, 3])
    frames = attention_step_frames(trace, 0, 1, params=model)
    for step in (1, len(frames)):
        alone = attention_step_frame(trace, 0, 1, step, params=model)
        assert alone.get_suptitle() == frames[step - 1].get_suptitle()
        np.testing.assert_array_equal(
            alone.axes[0].images[0].get_array(), frames[step - 1].axes[0].images[0].get_array()
        )
    with pytest.raises(IndexError, match="step must be"):
        attention_step_frame(trace, 0, 1, len(frames) + 1)


def test_signed_colours_clip_a_few_outliers_and_say_so():
    from matplotlib.figure import Figure

    from viz.steps import draw_matrix

    rng = np.random.default_rng(0)
    plain = rng.standard_normal((13, 200))
    outlier = plain.copy()
    outlier[:, 7] = 40.0  # one huge dimension, as in MiniLM's residual stream
    for array, top, extend in (
        (plain, np.abs(plain).max(), "neither"),
        (outlier, np.percentile(np.abs(outlier), 99), "both"),
    ):
        ax = Figure().add_subplot()
        draw_matrix(ax, array, colorbar="right")
        assert ax.images[0].get_clim() == pytest.approx((-top, top))
        np.testing.assert_array_equal(ax.images[0].get_array().data, array)  # values unchanged
        colorbar = ax.images[0].colorbar
        assert colorbar is not None and colorbar.extend == extend


def test_long_inputs_thin_the_labels_of_the_small_grid_panels():
    from viz.steps import GRID_MAX_LABELS

    model = make_encoder(EncoderConfig(n_layers=1, n_heads=2, d_model=8), seed=3)
    S = 40
    _, long_trace = model.run_with_trace(np.arange(1, S + 1)[None, :] % 60)
    tokens = [f"t{i}" for i in range(S)]
    fig = attention_steps(long_trace, 0, 1, tokens)
    token_axes = [ax for ax in fig.axes if ax.get_yticklabels() and ax.images]
    assert token_axes
    for ax in token_axes:
        shown = [t.get_text() for t in ax.get_yticklabels()]
        assert 0 < len(shown) <= GRID_MAX_LABELS and shown[0] == "t0", ax.get_title()
    frame = attention_step_frames(long_trace, 0, 1, tokens)[0]  # one large panel: all 40
    assert [t.get_text() for t in frame.axes[0].get_yticklabels()] == tokens


def test_update_matrix_draws_what_draw_matrix_draws_arrows_and_numbers_included():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from viz.steps import draw_matrix, update_matrix

    def pixels(fig):
        canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
        canvas.draw()
        return np.asarray(canvas.buffer_rgba()).copy()

    def drawn(array, mask):
        fig = Figure(figsize=(3, 9), layout="constrained")
        draw_matrix(fig.add_subplot(), array, mask=mask, annotate=True)
        return fig

    rng = np.random.default_rng(0)
    mask = np.zeros((60, 3), bool)
    mask[5] = True
    plain = rng.normal(size=(60, 3))
    outlier = plain.copy()
    outlier[0, 0] = 50.0  # beyond the colour scale: the colour bar gets arrows
    fig = drawn(plain, mask)
    pixels(fig)
    fig.set_layout_engine("none")  # as the explorer: the layout of the first drawing is kept
    for array in (outlier, plain):
        update_matrix(fig.axes[0], array, mask=mask, annotate=True)
        fresh = drawn(array, mask)
        pixels(fresh)
        fresh.set_layout_engine("none")
        for ax, new_ax in zip(fig.axes, fresh.axes, strict=True):  # same places on the page
            new_ax.set_position(ax.get_position(original=True))
        np.testing.assert_array_equal(pixels(fig), pixels(fresh))
        bar = fig.axes[0].images[0].colorbar
        assert bar.extend == ("both" if array is outlier else "neither")
        assert fig.axes[0].texts[0].get_text() == format(array[0, 0], ".2g")
    with pytest.raises(ValueError, match="draw it anew"):
        update_matrix(fig.axes[0], plain[:4], annotate=True)
