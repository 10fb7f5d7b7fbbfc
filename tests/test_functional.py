"""The pure math functions, one by one, against their definitions (NumPy only)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from minitransformer import (
    causal_mask,
    dropout,
    erf,
    gelu,
    gelu_tanh,
    layer_norm,
    linear,
    masked_softmax,
    merge_heads,
    padding_mask,
    relu,
    sinusoidal_positional_encoding,
    softmax,
    split_heads,
)

# ------------------------------------------------------------------------------- erf


def erf_grid(dtype: str) -> np.ndarray:
    """A dense grid over [-10, 10], the float64 switch point 0.5 and its neighbours, large and
    tiny |x| (down to the dtype's smallest subnormal), and +-inf.

    The largest finite float32 value is 1e18: the float32 erf squares |x|, which overflows
    (with a RuntimeWarning, but the right result) above ~1.8e19.
    """
    info = np.finfo(dtype)
    dense = np.linspace(-10, 10, 200_001)
    around_switch = np.array([0.5, np.nextafter(0.5, 0), np.nextafter(0.5, 1)])
    largest = 1e18 if dtype == "float32" else float(info.max)
    large = np.array([12.0, 26.0, 30.0, 1e3, 1e10, largest, np.inf])
    tiny = np.array([1e-20, float(info.smallest_normal), float(info.smallest_subnormal)])
    grid = np.concatenate([dense, around_switch, -around_switch, large, -large, tiny, -tiny])
    return grid.astype(dtype)


def test_erf_float64_matches_math_erf():
    x = erf_grid("float64")
    ours = erf(x)
    assert ours.dtype == np.float64 and ours.shape == x.shape
    expected = np.array([math.erf(v) for v in x])
    # Both sides round (ours through np.exp, math.erf through libm) to within a few ulps:
    # 1e-14 leaves room for that on any machine and still proves double precision (a
    # float32-grade approximation is off by 1e-7).
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-14)
    # near 0, erf(x) ~ 2x/sqrt(pi): the relative error matters too (subnormals have no
    # relative precision to speak of, so they are left to the absolute check)
    small = (np.abs(x) < 0.5) & (np.abs(x) >= np.finfo(np.float64).smallest_normal)
    np.testing.assert_allclose(ours[small], expected[small], rtol=1e-14, atol=0)


def test_erf_infinities_and_odd_symmetry():
    for dtype in (np.float32, np.float64):
        y = erf(np.array([np.inf, -np.inf, 0.0], dtype))
        assert y.dtype == dtype
        np.testing.assert_array_equal(y, [1.0, -1.0, 0.0])
    x = np.linspace(0, 8, 1001)
    np.testing.assert_array_equal(erf(-x), -erf(x))


def test_erf_float32_matches_math_erf_to_1e6():
    x = erf_grid("float32")
    ours = erf(x)
    assert ours.dtype == np.float32 and ours.shape == x.shape
    expected = np.array([math.erf(float(v)) for v in x])  # erf of the float32 inputs
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-6)


def test_erf_keeps_the_shape():
    x = np.linspace(-3, 3, 24).reshape(2, 3, 4)
    assert erf(x).shape == (2, 3, 4)
    np.testing.assert_allclose(erf(x).ravel(), erf(x.ravel()), rtol=0, atol=0)


# ---------------------------------------------------------------------- activations


def test_gelu_values():
    assert gelu(np.array([0.0]))[0] == 0.0 and gelu_tanh(np.array([0.0]))[0] == 0.0
    big = np.array([10.0, 30.0, 1e3])
    np.testing.assert_allclose(gelu(big), big, rtol=1e-15)  # Phi(x) = 1 to double precision
    np.testing.assert_allclose(gelu_tanh(big), big, rtol=1e-15)
    np.testing.assert_allclose(gelu(-big), 0.0, atol=1e-20)  # x Phi(x) -> 0 from below
    np.testing.assert_allclose(gelu_tanh(-big), 0.0, atol=1e-20)
    # gelu(1) = Phi(1) = 0.8413447460685429 (the standard normal CDF at 1)
    np.testing.assert_allclose(
        gelu(np.array([1.0, -1.0])), [0.8413447460685429, -0.15865525393145707], rtol=1e-14
    )
    x = np.linspace(-5, 5, 1001)
    exact = np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x])
    # atol: near x = -5, 1 + erf(x / sqrt(2)) cancels, so an ulp of erf (ours or libm's) is
    # ~3e-16 of gelu; 1e-14 allows for it and still catches any real error in erf
    np.testing.assert_allclose(gelu(x), exact, rtol=1e-14, atol=1e-14)
    # The tanh form is an approximation: close to exact (< 5e-4), but not equal.
    assert 1e-5 < np.abs(gelu_tanh(x) - exact).max() < 5e-4


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_activations_keep_dtype_and_shape(dtype):
    x = np.linspace(-3, 3, 12, dtype=dtype).reshape(3, 4)
    for f in (relu, gelu, gelu_tanh):
        y = f(x)
        assert y.dtype == np.dtype(dtype) and y.shape == (3, 4)
    np.testing.assert_array_equal(relu(x), np.where(x > 0, x, 0))


# -------------------------------------------------------------------------- softmax


def test_softmax_is_stable_for_huge_inputs():
    x = np.array([[1e4, 0.0, -1e4], [1e4, 1e4, 1e4], [-1e4, -1e4 - 1, -1e4]])
    y = softmax(x)
    assert np.all(np.isfinite(y))
    np.testing.assert_allclose(y[0], [1.0, 0.0, 0.0], atol=1e-300)
    np.testing.assert_allclose(y[1], [1 / 3] * 3, rtol=1e-15)
    e = np.exp([0.0, -1.0, 0.0])
    np.testing.assert_allclose(y[2], e / e.sum(), rtol=1e-14)
    y32 = softmax(x.astype(np.float32))
    assert y32.dtype == np.float32 and np.all(np.isfinite(y32))


def test_softmax_sums_to_one_and_is_invariant_to_adding_a_constant():
    x = np.random.default_rng(0).standard_normal((4, 5, 7))
    for axis in (-1, 0, 1):
        y = softmax(x, axis=axis)
        np.testing.assert_allclose(y.sum(axis=axis), 1.0, rtol=0, atol=1e-14)
        np.testing.assert_allclose(softmax(x + 123.0, axis=axis), y, rtol=1e-12, atol=0)
    e = np.exp(x)
    np.testing.assert_allclose(softmax(x), e / e.sum(-1, keepdims=True), rtol=1e-14)


def test_masked_softmax():
    scores = np.array([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [5.0, 6.0, 7.0]])
    mask = np.array([[True, False, True], [False, False, False], [True, True, True]])
    y = masked_softmax(scores, mask)
    e = np.exp([1.0, 3.0])
    # ours divides exp(s - max) by its sum, the test exp(s) by its: equal to a few ulps
    np.testing.assert_allclose(y[0], [e[0] / e.sum(), 0.0, e[1] / e.sum()], rtol=1e-14)
    assert y[0, 1] == 0.0
    np.testing.assert_array_equal(y[1], [0.0, 0.0, 0.0])  # fully masked row: zeros, not NaN
    np.testing.assert_allclose(y[2], softmax(scores[2]), rtol=1e-14)
    np.testing.assert_array_equal(masked_softmax(scores, None), softmax(scores))
    # a broadcast mask (one per key) and huge scores
    y = masked_softmax(np.array([[1e4, -1e4, 0.0]]), np.array([False, True, True]))
    np.testing.assert_allclose(y, [[0.0, 0.0, 1.0]], atol=1e-300)


# ----------------------------------------------------------------------- layer norm


def layer_norm_parts(x, eps):
    """normed, mean and std as layer_norm records them (its gamma 1, beta 0)."""
    recorded = {}

    def record(name, value):
        recorded[name.split(".")[-1]] = value
        return value

    D = x.shape[-1]
    out = layer_norm(x, np.ones(D), np.zeros(D), eps, record=record)
    np.testing.assert_array_equal(out, recorded["out"])
    return recorded["normed"], recorded["mean"], recorded["std"]


def test_layer_norm_records_mean_zero_variance_one_per_row():
    x = 5.0 + 3.0 * np.random.default_rng(1).standard_normal((2, 4, 16))
    x_hat, mean, std = layer_norm_parts(x, eps=1e-12)
    assert x_hat.shape == x.shape and mean.shape == std.shape == (2, 4, 1)
    np.testing.assert_allclose(x_hat.mean(-1), 0.0, atol=1e-14)
    np.testing.assert_allclose(x_hat.var(-1), 1.0, rtol=1e-10)
    np.testing.assert_allclose(mean[..., 0], x.mean(-1), rtol=1e-14)
    np.testing.assert_allclose(std[..., 0], np.sqrt(x.var(-1) + 1e-12), rtol=1e-14)  # biased


def test_layer_norm_eps_sits_inside_the_square_root():
    x = np.array([[1.0, -1.0, 1.0, -1.0]]) * 1e-3  # variance 1e-6
    for eps in (1e-12, 1e-6, 1.0):
        x_hat, _, std = layer_norm_parts(x, eps)
        np.testing.assert_allclose(std, math.sqrt(1e-6 + eps), rtol=1e-14)
        np.testing.assert_allclose(x_hat.var(-1), 1e-6 / (1e-6 + eps), rtol=1e-10)
    # a constant row: variance 0, so std = sqrt(eps) and x_hat = 0 (no division by zero)
    x_hat, mean, std = layer_norm_parts(np.full((1, 5), 7.0), 1e-5)
    np.testing.assert_array_equal(x_hat, 0.0)
    np.testing.assert_allclose(std, math.sqrt(1e-5), rtol=1e-14)


# --------------------------------------------------------------------------- linear


def test_linear_shapes_and_values():
    rng = np.random.default_rng(2)
    x, W, b = rng.standard_normal((2, 3, 4)), rng.standard_normal((4, 5)), rng.standard_normal(5)
    y = linear(x, W, b)
    assert y.shape == (2, 3, 5)
    expected = np.einsum("bsi,io->bso", x, W) + b  # y_o = sum_i x_i W[i, o] + b_o
    np.testing.assert_allclose(y, expected, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(linear(x, W), expected - b, rtol=1e-13, atol=1e-14)
    assert linear(x[0, 0], W, b).shape == (5,)
    np.testing.assert_allclose(linear(x[0, 0], W, b), expected[0, 0], rtol=1e-13, atol=1e-14)


# -------------------------------------------------------------------------- heads


def test_split_heads_head_h_is_columns_h_dh_to_h_plus_1_dh():
    x = np.arange(2 * 3 * 12, dtype=float).reshape(2, 3, 12)
    heads = split_heads(x, 4)  # Dh = 3
    assert heads.shape == (2, 4, 3, 3)
    for h in range(4):
        np.testing.assert_array_equal(heads[:, h], x[:, :, h * 3 : (h + 1) * 3])
    np.testing.assert_array_equal(merge_heads(heads), x)
    z = np.random.default_rng(3).standard_normal((2, 4, 5, 2))
    np.testing.assert_array_equal(split_heads(merge_heads(z), 4), z)
    with pytest.raises(ValueError, match=r"d_model=12 is not divisible by n_heads=5"):
        split_heads(x, 5)


# -------------------------------------------------------------------------- masks


def test_padding_mask_shape_and_values():
    m = padding_mask(np.array([[1, 1, 0], [1, 0, 0]]))
    assert m.shape == (2, 1, 1, 3) and m.dtype == bool
    np.testing.assert_array_equal(m[:, 0, 0], [[True, True, False], [True, False, False]])
    assert np.broadcast_shapes(m.shape, (2, 4, 3, 3)) == (2, 4, 3, 3)


def test_causal_mask_shape_and_values():
    m = causal_mask(4)
    assert m.shape == (4, 4) and m.dtype == bool
    for i in range(4):
        for j in range(4):
            assert m[i, j] == (j <= i)
    np.testing.assert_array_equal(causal_mask(1), [[True]])


# ------------------------------------------------------------------------ positions


def test_sinusoidal_encoding_values():
    pe = sinusoidal_positional_encoding(50, 8, "float64")
    assert pe.shape == (50, 8) and pe.dtype == np.float64
    pos = np.arange(50)
    # atol 1e-12: NumPy's power and sin (SIMD on some CPUs) and Python's ** may each differ
    # by an ulp of an angle up to ~50 rad; a wrong frequency or layout is off by O(1)
    np.testing.assert_allclose(pe[:, 0], np.sin(pos), rtol=0, atol=1e-12)  # frequency 1
    np.testing.assert_allclose(pe[:, 1], np.cos(pos), rtol=0, atol=1e-12)
    np.testing.assert_allclose(pe[:, 2], np.sin(pos / 10000 ** (2 / 8)), rtol=0, atol=1e-12)
    np.testing.assert_allclose(pe[:, 7], np.cos(pos / 10000 ** (6 / 8)), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(pe[0, 0::2], 0.0)  # sin(0)
    np.testing.assert_array_equal(pe[0, 1::2], 1.0)  # cos(0)
    assert sinusoidal_positional_encoding(4, 6).dtype == np.float32  # the default


def test_sinusoidal_encoding_odd_width_and_range():
    pe = sinusoidal_positional_encoding(300, 7, "float64")
    assert pe.shape == (300, 7)
    pos = np.arange(300)
    np.testing.assert_allclose(pe[:, 6], np.sin(pos / 10000 ** (6 / 7)), rtol=0, atol=1e-12)
    np.testing.assert_allclose(pe[:, 5], np.cos(pos / 10000 ** (4 / 7)), rtol=0, atol=1e-12)
    assert np.all(np.abs(pe) <= 1.0)
    with pytest.raises(ValueError, match=r"max_len must be a positive int, got 0"):
        sinusoidal_positional_encoding(0, 4)


# -------------------------------------------------------------------------- dropout


def test_dropout_keep_fraction_scaling_and_expectation():
    p, n = 0.3, 400_000
    x = np.random.default_rng(4).uniform(1.0, 2.0, size=n)
    out, keep = dropout(x, p, np.random.default_rng(5))
    assert keep.dtype == bool and keep.shape == out.shape == x.shape
    # keep ~ Bernoulli(1 - p): standard deviation of the fraction sqrt(p (1-p) / n) = 7e-4
    assert abs(keep.mean() - (1 - p)) < 5 * math.sqrt(p * (1 - p) / n)
    np.testing.assert_allclose(out[keep], x[keep] / (1 - p), rtol=1e-15)
    assert np.all(out[~keep] == 0.0)
    # E[out] = E[x]: |mean(out) - mean(x)| is within 5 standard errors
    assert abs(out.mean() - x.mean()) < 5 * out.std() / math.sqrt(n)
    # the same generator state gives the same mask; p = 0 keeps everything unchanged
    _, keep_again = dropout(x, p, np.random.default_rng(5))
    np.testing.assert_array_equal(keep, keep_again)
    out0, keep0 = dropout(x, 0.0, np.random.default_rng(5))
    assert keep0.all()
    np.testing.assert_array_equal(out0, x)
    assert dropout(x.astype(np.float32), p, np.random.default_rng(5))[0].dtype == np.float32


def test_erf_float32_saturates_without_overflow_warnings():
    import warnings

    from minitransformer.functional import erf

    x = np.array([-3e38, -1e20, -10.0, 10.0, 1e20, 3e38], dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an overflow RuntimeWarning fails the test
        y = erf(x)
    np.testing.assert_array_equal(y, np.array([-1, -1, -1, 1, 1, 1], dtype=np.float32))
