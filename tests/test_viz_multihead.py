"""Multi-head anatomy: z rows, concat, W_O and attn.out as recorded; contributions add up."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from conftest import make_encoder
from matplotlib.colors import to_rgb

from minitransformer import Encoder
from minitransformer.config import EncoderConfig
from viz.multihead import head_contributions, multihead_anatomy
from viz.style import (
    head_color,
)

TOKENS = ["[CLS]", "a", "dog", "ran", "[SEP]"]


@pytest.fixture(scope="module")
def model():
    return make_encoder(EncoderConfig(n_layers=2, n_heads=4, d_model=16), seed=7)


@pytest.fixture(scope="module")
def trace(model):
    return model.run_with_trace(np.array([[1, 2, 3, 4, 5], [6, 7, 8, 9, 10]]))[1]


def by_title(fig):
    return {ax.get_title(): ax for ax in fig.axes if ax.get_title()}


def test_contributions_sum_to_attn_out_minus_bias(trace, model):
    for layer, token, batch in ((0, 0, 0), (1, 3, 1)):
        parts = head_contributions(trace, layer, token, model.params, batch=batch)
        assert parts.shape == (4, 16)
        b_O = model.params[f"blocks.{layer}.attn.b_O"]
        out = trace[f"blocks.{layer}.attn.out"][batch, token]
        np.testing.assert_allclose(parts.sum(axis=0), out - b_O, rtol=1e-4, atol=1e-5)
    # Head 2's share depends only on head 2's z and rows 8..11 of W_O.
    z2 = trace["blocks.1.attn.z"][1, 2, 3]
    np.testing.assert_allclose(parts[2], z2 @ model.params["blocks.1.attn.W_O"][8:12], rtol=1e-6)


def test_with_params_draws_z_concat_W_O_contributions_and_norm_bars(trace, model):
    fig = multihead_anatomy(trace, 1, 3, TOKENS, params=model, batch=1)
    assert fig.get_suptitle() == "Layer 1, token 'ran' (position 3): how the heads combine"
    axes = by_title(fig)
    z_ax = axes["z of each head  (4 × 4)"]
    np.testing.assert_array_equal(
        z_ax.images[0].get_array().data, trace["blocks.1.attn.z"][1, :, 3]
    )
    ticks = z_ax.get_yticklabels()
    assert [t.get_text() for t in ticks] == ["head 0", "head 1", "head 2", "head 3"]
    assert ticks[1].get_color() == head_color(1)
    concat_ax = axes["concat\n(16 × 1)"]
    np.testing.assert_array_equal(
        concat_ax.images[0].get_array().data[:, 0], trace["blocks.1.attn.concat"][1, 3]
    )
    w_ax = next(ax for t, ax in axes.items() if t.startswith("W_O  (16 × 16)"))
    np.testing.assert_array_equal(
        w_ax.images[0].get_array().data, model.params["blocks.1.attn.W_O"]
    )
    assert sorted(line.get_ydata()[0] for line in w_ax.lines) == [3.5, 7.5, 11.5]  # head blocks
    parts_ax = axes["Each head's contribution, the bias and their sum  (6 × 16)"]
    rows = parts_ax.images[0].get_array().data
    np.testing.assert_allclose(rows[:4], head_contributions(trace, 1, 3, model.params, batch=1))
    np.testing.assert_array_equal(rows[4], model.params["blocks.1.attn.b_O"])
    np.testing.assert_array_equal(rows[5], trace["blocks.1.attn.out"][1, 3])
    np.testing.assert_allclose(rows[:5].sum(axis=0), rows[5], rtol=1e-4, atol=1e-5)
    bars = axes["norm ‖row‖"].patches
    np.testing.assert_allclose([b.get_width() for b in bars], np.linalg.norm(rows, axis=1))
    assert bars[2].get_facecolor()[:3] == pytest.approx(to_rgb(head_color(2)))


def test_without_params_shows_concat_and_attn_out_rows(trace):
    fig = multihead_anatomy(trace, 0, 4)
    axes = by_title(fig)
    concat_ax = axes["concat = [z of head 0, ..., head 3]  (1 × 16)"]
    np.testing.assert_array_equal(
        concat_ax.images[0].get_array().data[0], trace["blocks.0.attn.concat"][0, 4]
    )
    assert sorted(line.get_xdata()[0] for line in concat_ax.lines) == [3.5, 7.5, 11.5]
    out_ax = next(ax for t, ax in axes.items() if t.startswith("attn.out = concat W_O + b_O"))
    np.testing.assert_array_equal(
        out_ax.images[0].get_array().data[0], trace["blocks.0.attn.out"][0, 4]
    )
    assert "pass params" in out_ax.get_title()
    assert "token '4' (position 4)" in fig.get_suptitle()


def test_clear_errors(trace, model):
    with pytest.raises(IndexError, match=r"token must be in \[0, 5\), got 5"):
        multihead_anatomy(trace, 0, 5)
    with pytest.raises(IndexError, match="layer must be"):
        multihead_anatomy(trace, 2, 0)
    with pytest.raises(IndexError, match="batch"):
        multihead_anatomy(trace, 0, 0, batch=3)
    with pytest.raises(ValueError, match="tokens has 1 entries"):
        multihead_anatomy(trace, 0, 0, tokens=["x"])
    with pytest.raises(KeyError, match="blocks.0.attn.concat"):
        multihead_anatomy(trace.filter(["*.attn.z", "*.attn.out"]), 0, 0)
    with pytest.raises(TypeError, match="params must be"):
        head_contributions(trace, 0, 0, params="weights.npz")


def test_z_values_are_written_only_when_they_fit(trace):
    small = by_title(multihead_anatomy(trace, 0, 1, TOKENS))["z of each head  (4 × 4)"]
    assert len(small.texts) == 16  # d_head 4: every value in its cell
    wide_model = make_encoder(EncoderConfig(n_layers=1, n_heads=2, d_model=32), seed=0)
    _, wide_trace = wide_model.run_with_trace(np.array([[1, 2, 3]]))
    wide = by_title(multihead_anatomy(wide_trace, 0, 0))["z of each head  (2 × 16)"]
    assert len(wide.texts) == 0, "16 numbers per row would overlap in the z panel"


def test_bias_and_sum_bars_are_outlined_not_coloured_like_a_head() -> None:
    from matplotlib.colors import to_hex

    from minitransformer import Encoder, EncoderConfig
    from viz.multihead import multihead_anatomy
    from viz.style import head_color

    model = Encoder(EncoderConfig(vocab_size=10, d_model=24, n_heads=12, n_layers=1), seed=0)
    _, trace = model.run_with_trace([1, 2, 3])
    fig = multihead_anatomy(trace, 0, 1, params=model)
    bar_ax = next(ax for ax in fig.axes if ax.get_title() == "norm ‖row‖")
    bars = bar_ax.patches
    assert [to_hex(b.get_facecolor()) for b in bars[:12]] == [head_color(h) for h in range(12)]
    assert {to_hex(b.get_facecolor()) for b in bars[12:]} == {"#ffffff"}
    assert bars[12].get_hatch() == "///" and bars[13].get_linewidth() == 2


def test_a_padding_token_is_refused_naming_the_real_positions():
    from viz_inputs import PADDED_TOKENS, padded_trace

    trace = padded_trace()
    params = Encoder(
        EncoderConfig(n_layers=2, n_heads=4, d_model=16, d_ff=32, vocab_size=20), seed=0
    ).params
    message = r"token 5 is padding in batch row 1: .*positions \[0, 1, 2, 3\]"
    with pytest.raises(ValueError, match=message):
        multihead_anatomy(trace, 0, 5, PADDED_TOKENS[1], params, batch=1)
    with pytest.raises(ValueError, match=message):
        head_contributions(trace, 1, 5, params, batch=1)
    fig = multihead_anatomy(trace, 0, 5, PADDED_TOKENS[0], params, batch=0)  # real in row 0
    assert "'it' (position 5)" in fig.get_suptitle()
