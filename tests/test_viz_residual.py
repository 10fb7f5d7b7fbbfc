"""Residual stream norms and contribution sizes: the drawn numbers are norms of trace arrays."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

from minitransformer.config import EncoderConfig
from minitransformer.encoder import Encoder
from viz.residual import contribution_sizes, residual_norms, stream_names

TOKENS = ["[CLS]", "a", "b", "c", "[PAD]"]


@pytest.fixture(scope="module")
def post_trace():
    model = Encoder(EncoderConfig(n_layers=3), seed=0)
    _, trace = model.run_with_trace([[2, 5, 6, 7, 0], [2, 9, 9, 3, 0]], mask=[[1, 1, 1, 1, 0]] * 2)
    return trace


@pytest.fixture(scope="module")
def pre_trace():
    model = Encoder(EncoderConfig(n_layers=2, norm="pre"), seed=1)
    _, trace = model.run_with_trace([[2, 5, 6, 7, 0]], mask=[[1, 1, 1, 1, 0]])
    return trace


def test_norms_heatmap_holds_the_norm_of_every_token_at_every_checkpoint(post_trace):
    fig = residual_norms(post_trace, TOKENS, batch=1)
    ax_map, ax_lines = fig.axes[:2]
    names = ["embed.out", "blocks.0.out", "blocks.1.out", "blocks.2.out"]
    expected = np.stack([np.linalg.norm(post_trace[n][1], axis=-1) for n in names], axis=1)
    drawn = ax_map.images[0].get_array()
    np.testing.assert_allclose(drawn.data, expected, rtol=1e-6)
    assert [t.get_text() for t in ax_map.get_xticklabels()] == names
    assert [t.get_text() for t in ax_map.get_yticklabels()] == TOKENS
    lines = ax_lines.get_lines()
    assert len(lines) == 4 + 1, "one line per real token and the mean"
    np.testing.assert_allclose(lines[2].get_ydata(), expected[2], rtol=1e-6)
    np.testing.assert_allclose(lines[-1].get_ydata(), expected[:4].mean(axis=0), rtol=1e-6)
    assert lines[-1].get_label() == "mean over tokens"
    assert fig.get_suptitle() == (
        "Residual stream norms (post-norm, 3 layers, 4 tokens, 1 padding token left out)"
    )
    assert fig.axes[2].get_ylabel() == "L2 norm"


def test_padding_is_grey_and_sets_no_colour_scale(post_trace):
    from viz.style import PADDING_COLOR

    fig = residual_norms(post_trace, TOKENS, batch=1)
    image = fig.axes[0].images[0]
    drawn_mask = np.ma.getmaskarray(image.get_array())
    assert drawn_mask[4].all() and not drawn_mask[:4].any(), "the padding row is masked"
    real = image.get_array()[:4]
    assert image.get_clim() == pytest.approx((real.min(), real.max()))
    colours = [t.get_color() for t in fig.axes[0].get_yticklabels()]
    assert colours[4] == PADDING_COLOR and PADDING_COLOR not in colours[:4]
    assert np.array_equal(image.cmap.get_bad(), image.cmap.with_extremes(bad="#d9d9d9").get_bad())
    model = Encoder(EncoderConfig(n_layers=1), seed=0)
    _, padding_only = model.run_with_trace(
        [[2, 5, 6, 7, 0], [0] * 5], mask=[[1, 1, 1, 1, 0], [0] * 5]
    )
    with pytest.raises(ValueError, match="batch row 1 is padding only"):
        residual_norms(padding_only, batch=1)
    with pytest.raises(ValueError, match="batch row 1 is padding only"):
        contribution_sizes(padding_only, batch=1)


def test_inside_blocks_and_pre_norm_checkpoints(post_trace, pre_trace):
    assert stream_names(post_trace, inside_blocks=True)[:4] == [
        "embed.out", "blocks.0.resid_mid", "blocks.0.resid_post", "blocks.0.out"]  # fmt: skip
    fig = residual_norms(post_trace, inside_blocks=True)
    assert fig.axes[0].images[0].get_array().shape == (5, 1 + 3 * 3)
    names = ["embed.out", "blocks.0.out", "blocks.1.out", "final_ln.out"]
    fig = residual_norms(pre_trace)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == names


def test_contribution_bars_are_mean_norms_over_the_real_tokens(post_trace, pre_trace):
    fig = contribution_sizes(post_trace, batch=1)
    ax = fig.axes[0]
    labels = [c.get_label() for c in ax.containers]
    assert labels == ["residual into attention (resid_pre)", "attention output (attn.out)",
                      "residual into FFN (ln1.out)", "FFN output (ffn.out)"]  # fmt: skip
    heights = [[bar.get_height() for bar in c] for c in ax.containers]

    def mean_norm(name):  # over the 4 real tokens of sequence 1, not the padding
        return np.linalg.norm(post_trace[name][1, :4], axis=-1).mean()

    assert heights[0] == pytest.approx([mean_norm(n) for n in
                                        ["embed.out", "blocks.0.out", "blocks.1.out"]])  # fmt: skip
    assert heights[1] == pytest.approx([mean_norm(f"blocks.{l}.attn.out") for l in range(3)])
    assert heights[2] == pytest.approx([mean_norm(f"blocks.{l}.ln1.out") for l in range(3)])
    assert heights[3] == pytest.approx([mean_norm(f"blocks.{l}.ffn.out") for l in range(3)])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["layer 0", "layer 1", "layer 2"]
    assert ax.get_title().endswith("mean over 4 real tokens")

    ax = contribution_sizes(pre_trace).axes[0]
    assert ax.containers[2].get_label() == "residual into FFN (resid_mid)"


def test_bad_input_is_named(post_trace):
    with pytest.raises(ValueError, match="tokens has 2 entries but the trace has 5 positions"):
        residual_norms(post_trace, ["a", "b"])
    with pytest.raises(IndexError, match=r"batch must be in \[0, 2\), got 2"):
        residual_norms(post_trace, batch=2)
    with pytest.raises(IndexError, match=r"batch must be in \[0, 2\), got -1"):
        contribution_sizes(post_trace, batch=-1)
    filtered = post_trace.filter(["embed.out", "*.attn.mask"])
    with pytest.raises(KeyError, match="the residual norms figure needs 'blocks.0.out'"):
        residual_norms(filtered)
    with pytest.raises(
        KeyError,
        match="contribution sizes figure needs 'blocks.0.resid_pre', 'blocks.1.resid_pre', 'b",
    ):
        contribution_sizes(filtered)
