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
from viz.matrix import draw_matrix, short_number, update_matrix
from viz.steps import (
    attention_step_frames,
    attention_steps,
    save_frames,
    step_panels,
)
from viz.style import (
    HIGHLIGHT_COLOR,
    MASKED_HATCH,
    padding_positions,
    signed_limit,
)

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
        "14. W_O[rows of head 2]  (8 × 32)",
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
        "W_O[rows of head 2]": p["blocks.1.attn.W_O"][16:24],
        "attn.out = concat W_O + b_O": trace[f"{b}.out"][1],
    }
    for name, array in expected.items():
        np.testing.assert_array_equal(drawn[name].data, array, err_msg=name)
    # Q Kᵀ is the recorded q k^T (not the scores rescaled), which is the product of q and k.
    q, k = trace[f"{b}.q"][1, 2], trace[f"{b}.k"][1, 2]
    np.testing.assert_array_equal(drawn["Q Kᵀ"].data, trace[f"{b}.qk"][1, 2])
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
        expected[:, 6] = True  # the [PAD] key...
        expected[6] = True  # ...and the [PAD] query row, grey
        np.testing.assert_array_equal(masked, expected)
        hatched = [p for p in axes[name].patches if p.get_hatch() == MASKED_HATCH]
        # hatched: the masked key of the 6 real queries, one block (the padding row is grey,
        # not hatched)
        assert [(p.get_x(), p.get_y(), p.get_width(), p.get_height()) for p in hatched] == [
            (5.5, -0.5, 1, 6)
        ]
    shown = np.ma.getmaskarray(axes["scores = Q Kᵀ / √8"].images[0].get_array())
    assert not shown[:6].any() and shown[6].all()  # only the padding query row is grey

    def outline(name):
        (box,) = [p for p in axes[name].patches if isinstance(p, Rectangle) and not p.get_fill()]
        assert box.get_edgecolor()[:3] == pytest.approx(matplotlib.colors.to_rgb(HIGHLIGHT_COLOR))
        return box.get_xy(), box.get_width(), box.get_height()

    assert outline("concat(z of all heads)") == ((7.5, -0.5), 8, 7)  # columns 8..15 = head 1
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
    ax = frames[8].axes[0]
    assert ax.get_title() == "9. scores = Q Kᵀ / √8  (7 × 7)"
    np.testing.assert_array_equal(
        ax.images[0].get_array().data, trace["blocks.0.attn.scores"][0, 3]
    )
    assert len(ax.texts) == 42, "a 7 × 7 frame writes its values in the 6 real rows' cells"
    assert [t.get_text() for t in ax.texts[:3]] == [
        short_number(v) for v in trace["blocks.0.attn.scores"][0, 3, 0, :3]
    ]
    assert "Divided by √8 = 2.83" in frames[8].get_supxlabel()
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
    from viz.steps import FRAME_MAX_LABELS, GRID_MAX_LABELS

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
    frame = attention_step_frames(long_trace, 0, 1, tokens)[0]  # one large panel: every 2nd
    ticks = frame.axes[0].get_yticks()
    assert len(ticks) == 20 <= FRAME_MAX_LABELS
    # each label sits on the row of the token it names
    labels = [t.get_text() for t in frame.axes[0].get_yticklabels()]
    assert labels == [tokens[int(i)] for i in ticks]


def test_update_matrix_draws_what_draw_matrix_draws_arrows_and_numbers_included():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

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


# -- no recomputed model math: every number and title from the trace and its config ------------


def frame_of(frames, key, panels):
    """The frame of the panel ``key`` among ``frames`` (made from ``panels``)."""
    return frames[[p.key for p in panels].index(key)]


@pytest.mark.parametrize("scale", [True, False])
def test_qk_is_the_recorded_qk_and_the_titles_follow_scale_scores(scale):
    model = make_encoder(EncoderConfig(n_layers=1, n_heads=2, d_model=16, scale_scores=scale))
    _, trace = model.run_with_trace([[1, 2, 3, 4, 5]])
    panels = {p.key: p for p in step_panels(trace, 0, 1)}
    qk, scores = trace["blocks.0.attn.qk"][0, 1], trace["blocks.0.attn.scores"][0, 1]
    # Without scaling the scores are q k^T itself; the old panel showed scores × √d_head.
    np.testing.assert_array_equal(panels["QK"].array, qk)
    np.testing.assert_array_equal(panels["scores"].array, scores)
    if scale:
        assert panels["scores"].name == "scores = Q Kᵀ / √8"
        assert "Divided by √8 = 2.83" in panels["scores"].explain
    else:
        assert panels["scores"].name == "scores = Q Kᵀ (not scaled)"
        assert "÷" not in panels["scores"].name and "√" not in panels["scores"].name
        assert "scale_scores=False" in panels["scores"].explain
        assert "Divided" not in panels["scores"].explain


def test_a_patched_trace_says_so_and_qk_stays_the_models():
    model = make_encoder(EncoderConfig(n_layers=1, n_heads=2, d_model=16))
    _, trace = model.run_with_trace(
        [[1, 2, 3, 4, 5]], patch={"blocks.0.attn.scores": lambda s: 2 * s}
    )
    assert trace.patched == {"blocks.0.attn.scores"}
    panels = {p.key: p for p in step_panels(trace, 0, 0)}
    # the old panel showed scores × √d_head = 2 q k^T here
    np.testing.assert_array_equal(panels["QK"].array, trace["blocks.0.attn.qk"][0, 0])
    assert panels["QK"].name == "Q Kᵀ"
    assert panels["scores"].name == "scores (patched)"
    assert "not Q Kᵀ / √8" in panels["scores"].explain and "patch" in panels["scores"].explain
    frames = attention_step_frames(trace, 0, 0)
    frame = frame_of(frames, "scores", list(panels.values()))
    assert frame.axes[0].get_title() == "6. scores (patched)  (5 × 5)"
    assert "replaced by a patch" in frame.get_supxlabel()
    legend = [t.get_text() for t in frame.axes[-1].get_legend().get_texts()]
    assert legend == ["Q Kᵀ", "scores (patched)"]


def test_q_k_and_v_patched_lose_their_formula():
    model = make_encoder(EncoderConfig(n_layers=1, n_heads=2, d_model=16))
    _, trace = model.run_with_trace([[1, 2, 3]], patch={"blocks.0.attn.q": lambda q: q * 0})
    panels = {p.key: p for p in step_panels(trace, 0, 0)}
    assert panels["Q"].name == "Q (patched)"
    assert "formula above does not hold" in panels["Q"].explain
    assert panels["K"].name == "K = X W_K + b_K"


def test_shared_colour_scale_and_histograms_of_qk_and_scores():
    model = make_encoder(EncoderConfig(n_layers=1, n_heads=2, d_model=32))
    _, trace = model.run_with_trace([[1, 2, 3, 4, 5, 6, 7, 8, 9]])
    panels = step_panels(trace, 0, 0)
    frames = attention_step_frames(trace, 0, 0)
    qk, scores = trace["blocks.0.attn.qk"][0, 0], trace["blocks.0.attn.scores"][0, 0]
    limits = {key: frame_of(frames, key, panels).axes[0].images[0].get_clim()
              for key in ("QK", "scores", "masked")}  # fmt: skip
    top = np.abs(qk).max()  # |q k^T| ≥ |scores|: the scale of the three is Q Kᵀ's
    assert limits == {key: pytest.approx((-top, top)) for key in limits}
    histograms = {}
    for key in ("QK", "scores"):
        side = [ax for ax in frame_of(frames, key, panels).axes if ax.get_label() == "side"][0]
        histograms[key] = side
        assert side.get_xlim() == pytest.approx((-top, top))  # the same axes in both frames
    (qk_bars,) = histograms["QK"].patches
    edges = qk_bars.get_data().edges
    np.testing.assert_array_equal(qk_bars.get_data().values, np.histogram(qk.ravel(), edges)[0])
    qk_outline, scores_bars = histograms["scores"].patches
    counts = scores_bars.get_data().values
    np.testing.assert_array_equal(counts, np.histogram(scores.ravel(), edges)[0])
    assert counts.sum() == qk.size
    # the scores' values spread over a √32 times narrower range: fewer bins hold them
    assert np.count_nonzero(counts) < np.count_nonzero(qk_outline.get_data().values)
    assert histograms["QK"].get_ylim() == histograms["scores"].get_ylim()


# -- padding is not attention -------------------------------------------------------------


def test_padding_rows_are_grey_and_never_set_a_colour_scale(trace, model):
    padding = padding_positions(trace, 0, 7)
    np.testing.assert_array_equal(padding, [0, 0, 0, 0, 0, 0, 1])
    frames = attention_step_frames(trace, 1, 2, TOKENS, model.params)
    panels = step_panels(trace, 1, 2, model.params)
    changed = 0
    for panel, frame in zip(panels, frames, strict=True):
        image = frame.axes[0].images[0]
        hidden = np.ma.getmaskarray(image.get_array())
        values = panel.array
        if panel.rows not in ("token", "query"):
            assert panel.padding is None and not hidden.any(), panel.key
            continue
        assert hidden[6].all(), f"{panel.key}: the [PAD] row is grey"
        real = values[:6] if panel.mask is None else values[:6][~panel.mask[:6]]
        if panel.kind == "weights":
            expected = (0.0, real.max())
            with_padding = values.max()
        else:
            top = panel.limit if panel.limit is not None else signed_limit(np.abs(real).ravel())
            expected, with_padding = (-top, top), signed_limit(np.abs(values).ravel())
        assert image.get_clim() == pytest.approx(expected), panel.key
        changed += not np.isclose(with_padding, expected[1])
        text = frame.get_supxlabel().replace("\n", " ")
        assert "Grey row: 1 padding position (attention mask 0)" in text
        hatched = [p for p in frame.axes[0].patches if p.get_hatch() == MASKED_HATCH]
        assert all(p.get_y() < 5.5 for p in hatched), "no hatching on the padding row"
    assert changed, "the padding row would have set some colour scale"


@pytest.mark.parametrize(
    ("causal", "mask", "words"),
    [
        (False, None, "No key is masked in this input"),
        (True, None, "later keys get −∞ (causal mask)"),
        (False, [[1, 1, 1, 1, 0, 0]], "the 2 padding positions (attention mask 0) get −∞"),
    ],
)
def test_the_mask_frame_says_what_this_mask_does(causal, mask, words):
    model = make_encoder(EncoderConfig(n_layers=1, n_heads=2, d_model=16, causal=causal))
    _, trace = model.run_with_trace([[1, 2, 3, 4, 5, 6]], mask)
    panels = step_panels(trace, 0, 0)
    frame = frame_of(attention_step_frames(trace, 0, 0), "masked", panels)
    text = frame.get_supxlabel().replace("\n", " ")
    assert words in text
    allowed = np.broadcast_to(trace["blocks.0.attn.mask"][0, 0], (6, 6))
    real = trace.real_tokens(0)
    # the words are true for the recorded mask
    if "No key" in words:
        assert allowed.all()
    if causal:
        np.testing.assert_array_equal(allowed, np.tril(np.ones((6, 6), bool)))
    if mask is not None:
        np.testing.assert_array_equal(allowed[real], np.broadcast_to(real, (4, 6)))
    # the mask is drawn beside the scores even when nothing is masked: 0 kept, −∞ hatched
    side = [ax for ax in frame.axes if ax.get_label() == "side"][0]
    assert side.get_title() == "mask: 0 or −∞"
    hatched = sum(
        round(p.get_width() * p.get_height())  # cells covered
        for p in side.patches
        if p.get_hatch() == MASKED_HATCH
    )
    assert hatched == int((~allowed[real]).sum())
    written = [t.get_text() for t in side.texts]
    assert written.count("−∞") == hatched and written.count("0") == int(allowed[real].sum())


# -- long inputs: a window of positions ------------------------------------------------------


def test_long_inputs_show_a_window_and_say_so():
    from viz.steps import MAX_WINDOW

    model = make_encoder(EncoderConfig(n_layers=1, n_heads=2, d_model=16, max_len=256), seed=1)
    S = 200
    _, trace = model.run_with_trace(np.arange(S)[None] % 60 + 1)
    panels = {p.key: p for p in step_panels(trace, 0, 1)}
    assert panels["weights"].array.shape == (MAX_WINDOW, MAX_WINDOW)
    frames = attention_step_frames(trace, 0, 1)
    assert frames[0].get_suptitle() == "Step 1 of 11 · layer 0, head 1 · positions 0–63 of 200"
    assert "Keys outside positions 0–63 are not drawn" in frames[7].get_supxlabel()
    fig = attention_steps(trace, 0, 1, window=slice(100, 140))
    assert "positions 100–139 of 200 shown" in fig.get_suptitle()
    panels = {p.key: p for p in step_panels(trace, 0, 1, window=slice(100, 140))}
    weights = trace["blocks.0.attn.weights"][0, 1]
    np.testing.assert_array_equal(panels["weights"].array, weights[100:140, 100:140])
    np.testing.assert_array_equal(panels["X"].array, trace["embed.out"][0, 100:140])
    # the row sums beside the weights add each row over all 200 keys
    frame = attention_step_frames(trace, 0, 1, window=slice(100, 110))[7]
    side = [ax for ax in frame.axes if ax.get_label() == "side"][0]
    sums = weights[100:110].sum(axis=1)
    assert [t.get_text() for t in side.texts] == [f"{s:.2f}" for s in sums]
    for bad, error in ((slice(5, 5), ValueError), (slice(0, 10, 2), ValueError), (3, TypeError)):
        with pytest.raises(error, match="window must"):
            step_panels(trace, 0, 1, window=bad)


# -- the weight frames and tokens drawn literally ----------------------------------------------


def test_weight_frames_show_this_heads_block_and_the_product_with_its_shapes(trace, model):
    frames = attention_step_frames(trace, 1, 2, TOKENS, model.params)
    w_q, w_o = frames[1], frames[13]
    assert w_q.axes[0].get_title() == "2. W_Q[:, head 2]  (32 × 8)"
    side = [ax for ax in w_q.axes if ax.get_label() == "side"][0]
    assert (
        side.texts[0].get_text()
        == "X  (7 × 32)\n· W_Q[:, head 2]  (32 × 8)\n+ b_Q  (8)\n= Q  (7 × 8)"
    )
    assert "W_Q is 32 × 32: 4 heads × 8 columns. Head 2 uses columns 16–23" in w_q.get_supxlabel()
    np.testing.assert_array_equal(
        w_o.axes[0].images[0].get_array(), model.params["blocks.1.attn.W_O"][16:24]
    )
    assert "its rows 16–23, shown here, multiply head 2's z" in w_o.get_supxlabel()


HOSTILE = ["$x$", "a$b$c", "$\\frac{1}{$", "\udc80"]
TOKEN_FRAMES = ("X", "QK", "masked", "weights")


def test_tokens_are_drawn_literally(tmp_path):
    from readability import drawn_texts

    model = make_encoder(EncoderConfig(n_layers=1, n_heads=2, d_model=8), seed=0)
    _, trace = model.run_with_trace([[1, 2, 3, 4]])
    expected = ["$x$", "a$b$c", "$\\frac{1}{$", "\\udc80"]  # the lone surrogate as its escape
    panels = step_panels(trace, 0, 0, model)
    frames = attention_step_frames(trace, 0, 0, HOSTILE, model)
    figures = [attention_steps(trace, 0, 0, HOSTILE, model)]
    # every kind of token axis: rows (X), rows and columns (Q Kᵀ; + mask and the weights, with
    # their second panel)
    figures += [f for f, p in zip(frames, panels, strict=True) if p.key in TOKEN_FRAMES]
    assert len(figures) == 1 + len(TOKEN_FRAMES)
    for n, fig in enumerate(figures):
        fig.savefig(tmp_path / f"{n}.png")  # "$\frac{1}{$" read as mathtext fails here
        texts = [t.text for t in drawn_texts(fig)]
        for token in expected:
            assert token in texts, (n, token)


@pytest.mark.parametrize(
    ("annotate", "steps"), [(None, (1, 2, 8, 9, 10, 11, 13, 14)), (False, (8, 10, 11))]
)
def test_frames_updated_in_place_equal_new_frames(trace, model, annotate, steps):
    """Every kind of frame: plain, with the product, histograms, mask, row sums, outline."""
    from test_viz_explorer import assert_same_figure

    from viz.explorer import render_png
    from viz.steps import attention_step_frame, update_step_frame

    _, patched = model.run_with_trace(
        np.array([[1, 2, 3, 4, 5, 6, 0]]), MASK[:1], patch={"blocks.1.attn.scores": np.negative}
    )
    for step in steps:
        fig = attention_step_frame(trace, 0, 0, step, TOKENS, model, annotate=annotate)
        render_png(fig)
        fig.set_layout_engine("none")  # as the explorer: the first drawing's layout is kept
        for other, layer, head in ((trace, 1, 2), (patched, 1, 3)):  # a patched what-if too
            update_step_frame(fig, other, layer, head, step, model, annotate=annotate)
            render_png(fig)
            fresh = attention_step_frame(other, layer, head, step, TOKENS, model, annotate=annotate)
            assert_same_figure(fig, fresh)
    if annotate is False:
        assert not fig.axes[0].texts, "no numbers in the cells"
