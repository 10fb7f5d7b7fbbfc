"""The positional encoding figure: matrix, curves and similarity, for sinusoidal and learned."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

from minitransformer.config import EncoderConfig
from minitransformer.encoder import Encoder
from minitransformer.positional import sinusoidal_positional_encoding
from viz.positional import default_dims, positional_encoding


def panels(fig):
    return [ax for ax in fig.axes if ax.get_title()]


def test_sinusoidal_table_from_a_trace_in_three_panels():
    model = Encoder(EncoderConfig(d_model=32), seed=0)
    _, trace = model.run_with_trace(np.arange(10))
    fig = positional_encoding(trace)
    matrix, curves, similarity = panels(fig)
    table = trace["embed.positions"]
    np.testing.assert_array_equal(matrix.images[0].get_array(), table)
    assert matrix.get_title() == "Encoding matrix (10 positions x 32 dims)"
    assert (matrix.get_xlabel(), matrix.get_ylabel()) == ("dimension", "position")
    assert matrix.images[0].get_clim() == pytest.approx((-1.0, 1.0), abs=1e-6)

    assert default_dims(32) == [0, 1, 8, 16]
    assert [line.get_label() for line in curves.get_lines()[:4]] == ["dim 0", "dim 1", "dim 8",
                                                                     "dim 16"]  # fmt: skip
    np.testing.assert_array_equal(curves.get_lines()[2].get_ydata(), table[:, 8])

    expected = sinusoidal_positional_encoding(10, 32)
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(similarity.images[0].get_array(), expected @ expected.T, atol=1e-6)
    assert similarity.get_title() == "Cosine similarity of positions"
    assert fig.get_suptitle() == "Sinusoidal positional encoding (embed.positions)"
    assert len(fig.axes) == 5, "three panels and two colour bars"


def test_learned_table_from_a_model_with_chosen_rows_dims_and_dot_products():
    model = Encoder(EncoderConfig(positional="learned", max_len=20, d_model=16), seed=2)
    fig = positional_encoding(model, positions=12, dims=[3, 5], similarity="dot")
    matrix, curves, similarity = panels(fig)
    table = model.params["embed.W_pos"][:12]
    np.testing.assert_array_equal(matrix.images[0].get_array(), table)
    assert [line.get_label() for line in curves.get_lines()[:2]] == ["dim 3", "dim 5"]
    np.testing.assert_allclose(similarity.images[0].get_array(), table @ table.T, rtol=1e-6)
    assert similarity.get_title() == "Dot product of positions"
    assert fig.get_suptitle() == "Learned position embeddings (embed.W_pos)"


def test_a_sinusoidal_model_and_a_plain_array():
    model = Encoder(EncoderConfig(max_len=30, d_model=8), seed=0)
    (matrix, *_) = panels(positional_encoding(model))
    np.testing.assert_allclose(matrix.images[0].get_array(), sinusoidal_positional_encoding(30, 8))
    array = np.arange(12.0).reshape(4, 3)
    fig = positional_encoding(array)
    np.testing.assert_array_equal(panels(fig)[0].images[0].get_array(), array)
    assert fig.get_suptitle() == "Positional encoding"


def test_bad_input_is_named():
    with pytest.raises(ValueError, match='positional="none"'):
        positional_encoding(Encoder(EncoderConfig(positional="none")))
    with pytest.raises(TypeError, match="source must be a Trace, an Encoder or a 2-D ndarray"):
        positional_encoding([[0.0, 1.0]])
    with pytest.raises(ValueError, match=r"non-empty 2-D array .* got shape \(5,\)"):
        positional_encoding(np.zeros(5))
    with pytest.raises(IndexError, match=r"dims entry must be in \[0, 8\), got 8"):
        positional_encoding(np.zeros((4, 8)), dims=[8])
    with pytest.raises(ValueError, match="similarity must be one of"):
        positional_encoding(np.zeros((4, 8)), similarity="euclid")
    with pytest.raises(ValueError, match=r"positions must be in 1 .. 4 .*, got 9"):
        positional_encoding(np.zeros((4, 8)), positions=9)
    _, trace = Encoder(EncoderConfig(), seed=0).run_with_trace([1, 2], keep="embed.out")
    with pytest.raises(KeyError, match="needs 'embed.positions'.*without keep="):
        positional_encoding(trace)


def test_a_few_outliers_do_not_wash_out_a_learned_table():
    # MiniLM's W_pos: most values within ±0.05, a few near ±1.8
    table = np.random.default_rng(0).uniform(-0.05, 0.05, size=(64, 32))
    table[0, :3] = [1.8, -1.7, 1.6]
    fig = positional_encoding(table)
    matrix = panels(fig)[0]
    top = np.percentile(np.abs(table), 99)
    assert matrix.images[0].get_clim() == pytest.approx((-top, top))
    assert top < 0.06, "the colours span the typical values, not the outliers"
    bar = matrix.images[0].colorbar
    assert bar is not None and bar.extend == "both", "arrows: values beyond the scale"
    assert "clipped" in bar.ax.get_ylabel()

    plain = positional_encoding(sinusoidal_positional_encoding(16, 8))
    bar = panels(plain)[0].images[0].colorbar
    assert bar is not None and bar.extend == "neither" and bar.ax.get_ylabel() == "value"
