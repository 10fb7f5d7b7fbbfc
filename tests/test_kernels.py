"""The compiled loops (``minitransformer/kernels.py``) compute what the NumPy code computes.

With numba installed, ``gelu``, ``standardize`` and ``masked_softmax`` hand float32 arrays to
compiled loops. Each test runs the same call with the loops and with pure NumPy
(``kernels.ENABLED`` False) and compares: the numbers to float32 rounding, the exact zeros of
masked keys and fully masked rows, and the same error for the same bad input.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest

from minitransformer import Encoder, EncoderConfig, kernels
from minitransformer import functional as F
from minitransformer.validation import NonFiniteError

pytest.importorskip("numba", reason="the compiled loops need numba (the 'fast' extra)")


def both(monkeypatch, fn):
    """``fn()`` with the compiled loops, then with pure NumPy. An error is returned as its
    type and message, so that both ways can be compared."""
    results = []
    for enabled in (True, False):
        monkeypatch.setattr(kernels, "ENABLED", enabled)
        try:
            results.append(fn())
        except NonFiniteError as error:
            results.append((type(error), str(error)))
    return results


def test_the_loops_are_used_for_float32_only():
    assert kernels.handles(np.ones(3, np.float32))
    assert not kernels.handles(np.ones(3, np.float64))
    assert not kernels.handles(np.ones((0, 3), np.float32))


def test_the_environment_variable_turns_the_loops_off():
    code = "from minitransformer import kernels; print(kernels.ENABLED)"
    env = {**os.environ, "MINITRANSFORMER_KERNELS": "0"}
    off = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert off.stdout.strip() == "False"


def test_gelu_is_the_exact_gelu_to_float32_precision(monkeypatch):
    x = np.concatenate([np.linspace(-12, 12, 24001), [-1e30, -50.0, 50.0, 1e30]])
    x = x.astype(np.float32)
    exact = np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x.astype(float)])
    compiled, numpy_ = both(monkeypatch, lambda: F.gelu(x))
    assert compiled.dtype == np.float32 and compiled.shape == x.shape
    # erf's error (< 5e-7) times |x| / 2, plus the rounding of float32
    bound = 4e-7 * np.maximum(1.0, np.abs(x.astype(float)))
    assert np.all(np.abs(compiled - exact) <= bound)
    assert np.all(np.abs(compiled - numpy_) <= 2 * bound)
    assert compiled[x >= 6].tolist() == x[x >= 6].tolist()  # Phi(x) = 1 in float32
    assert np.all(compiled[x <= -6] <= 0) and np.all(compiled[x <= -6] > -1e-7)


def test_gelu_keeps_shape_and_reads_non_contiguous_input(monkeypatch):
    x = np.random.default_rng(0).standard_normal((4, 6, 10)).astype(np.float32)
    view = x[:, ::2, ::3]  # not contiguous
    compiled, numpy_ = both(monkeypatch, lambda: F.gelu(view))
    assert compiled.shape == view.shape
    np.testing.assert_allclose(compiled, numpy_, rtol=0, atol=1e-6)


def test_gelu_of_inf_and_nan(monkeypatch):
    x = np.array([np.inf, np.nan, 0.0], np.float32)
    compiled, numpy_ = both(monkeypatch, lambda: F.gelu(x))
    assert compiled[0] == np.inf and np.isnan(compiled[1]) and compiled[2] == 0
    np.testing.assert_array_equal(compiled, numpy_)


@pytest.mark.parametrize("n_keys", [1, 5, 16, 17, 33, 128])
def test_masked_softmax_matches_numpy_with_masks_and_fully_masked_rows(monkeypatch, n_keys):
    rng = np.random.default_rng(n_keys)
    scores = (rng.standard_normal((2, 3, 7, n_keys)) * 4).astype(np.float32)
    mask = rng.random((2, 1, 7, n_keys)) > 0.4
    mask[0, 0, 3] = False  # a query that may see no key
    compiled, numpy_ = both(monkeypatch, lambda: F.masked_softmax(scores, mask))
    np.testing.assert_allclose(compiled, numpy_, rtol=0, atol=2e-7)
    masked = np.broadcast_to(~mask, scores.shape)
    assert np.all(compiled[masked] == 0)  # exactly zero, not tiny
    assert np.all(compiled[0, :, 3] == 0)  # the fully masked row: zeros, not NaN
    sums = compiled.sum(axis=-1)
    seen = np.broadcast_to(mask.any(axis=-1), sums.shape)
    np.testing.assert_allclose(sums[seen], 1.0, atol=1e-6)


def test_masked_softmax_without_mask_on_large_scores(monkeypatch):
    scores = np.array([[0.0, 1000.0, -1000.0], [-1e30, 0.0, 1e30]], np.float32)
    compiled, numpy_ = both(monkeypatch, lambda: F.masked_softmax(scores, None))
    np.testing.assert_array_equal(compiled, [[0, 1, 0], [0, 0, 1]])
    np.testing.assert_array_equal(compiled, numpy_)


# The NaN that x86 arithmetic makes (inf - inf, 0 * inf) has its sign bit set: read as an
# order key it is below every number, so the row maximum misses it and only the NaN count of
# the loop can catch it.
NEGATIVE_NAN = np.array([0xFFC00000], np.uint32).view(np.float32)[0]


@pytest.mark.parametrize(
    "where, value",
    [
        ((1, 2, 0), np.nan),
        ((1, 2, 9), np.nan),
        ((0, 4, 17), np.inf),
        ((1, 0, 31), np.nan),
        ((0, 3, 5), NEGATIVE_NAN),
    ],
)
def test_masked_softmax_raises_the_same_error_for_inf_and_nan(monkeypatch, where, value):
    scores = np.random.default_rng(1).standard_normal((2, 5, 40)).astype(np.float32)
    scores[where] = value
    compiled, numpy_ = both(monkeypatch, lambda: F.masked_softmax(scores, None, name="s"))
    assert compiled == numpy_
    assert compiled[0] is NonFiniteError and f"row {where[:2]}" in compiled[1]


def test_softmax_exponentials_are_float32_accurate_from_0_to_minus_100():
    # One row: 0 and 20,000 differences from -1e-6 to -100 (weights from ~1e-4 to ~1e-48).
    # The loop's exp(d) = 2^k * (Taylor polynomial of exp(r)) must be as good as float32 down
    # to the smallest normal numbers, and may give 0 only below 2^-125 (d < -86.6).
    d = np.concatenate([[0.0], -np.geomspace(1e-6, 100, 20_000)]).astype(np.float32)
    weights, row_max = kernels.softmax(d[None])
    exact = np.exp(d.astype(float))
    exact /= exact.sum()
    got = weights[0].astype(float)
    normal = exact > 1e-37
    assert np.all(np.abs(got - exact)[normal] <= 5e-7 * exact[normal])
    assert np.all(d[got == 0] < -86.6) and row_max[0, 0] == 0


@pytest.mark.parametrize("offset", [-1e4, -3.0, 0.0, 50.0])
def test_softmax_row_maximum_of_negative_and_positive_rows(monkeypatch, offset):
    # The row maximum is found on the floats' bits as ordered ints: rows of negative numbers
    # only (whose bits order backwards) and of positive numbers only, with -0.0 and +0.0.
    scores = (np.random.default_rng(4).standard_normal((6, 33)) + offset).astype(np.float32)
    scores[0, :2] = [-0.0, 0.0]
    weights, row_max = kernels.softmax(scores)
    np.testing.assert_array_equal(row_max[:, 0], scores.max(axis=-1))
    compiled, numpy_ = both(monkeypatch, lambda: F.masked_softmax(scores, None))
    np.testing.assert_allclose(compiled, numpy_, rtol=0, atol=2e-7)


def test_masked_softmax_raises_for_a_visible_row_of_minus_inf(monkeypatch):
    scores = np.random.default_rng(2).standard_normal((3, 20)).astype(np.float32)
    scores[1] = -np.inf
    compiled, numpy_ = both(monkeypatch, lambda: F.masked_softmax(scores, None))
    assert compiled == numpy_ and compiled[0] is NonFiniteError


@pytest.mark.parametrize("D", [1, 7, 16, 384])
def test_standardize_matches_numpy(monkeypatch, D):
    x = (np.random.default_rng(D).standard_normal((3, 5, D)) * 3 + 2).astype(np.float32)
    compiled, numpy_ = both(monkeypatch, lambda: F.standardize(x, 1e-5))
    for got, want in zip(compiled, numpy_, strict=True):
        assert got.shape == want.shape and got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("value", [np.inf, -np.inf, np.nan, 3e30])
def test_standardize_raises_the_same_error_for_inf_nan_and_overflow(monkeypatch, value):
    x = np.random.default_rng(3).standard_normal((4, 6, 32)).astype(np.float32)
    x[2, 3, 5] = value  # 3e30 squared overflows float32
    with np.errstate(all="ignore"):
        compiled, numpy_ = both(monkeypatch, lambda: F.standardize(x, 1e-5, name="ln"))
    assert compiled == numpy_
    assert compiled[0] is NonFiniteError and "(2, 3)" in compiled[1]


def test_a_float32_model_traces_the_same_numbers_with_and_without_the_loops(monkeypatch):
    config = EncoderConfig(
        vocab_size=50, d_model=32, n_heads=4, n_layers=2, d_ff=64, max_len=16,
        activation="gelu", embed_layer_norm=True,
    )  # fmt: skip
    model = Encoder(config, seed=0)
    ids = np.random.default_rng(0).integers(0, 50, size=(2, 12))
    mask = np.ones((2, 12), bool)
    mask[1, 9:] = False
    calls = []
    original = kernels.softmax
    monkeypatch.setattr(kernels, "softmax", lambda x: calls.append(x.shape) or original(x))
    compiled, numpy_ = both(monkeypatch, lambda: model.run_with_trace(ids, mask)[1])
    assert calls == [(2, 4, 12, 12)] * 2  # the loops ran, once per layer
    assert set(compiled.names()) == set(numpy_.names())
    for name in numpy_.names():
        got, want = compiled[name], numpy_[name]
        scale = max(1.0, float(np.abs(want).max()))
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * scale, err_msg=name)


def test_training_is_pure_numpy_so_a_run_is_the_same_with_or_without_the_loops(monkeypatch):
    from minitransformer.tasks import get_task
    from minitransformer.training import held_out, make_model, train

    used = []
    original = kernels.handles
    monkeypatch.setattr(kernels, "handles", lambda x: used.append(original(x)) or original(x))

    def run():
        model, classifier = make_model("reverse", seed=0)
        history = train(model, classifier, get_task("reverse"), steps=12, batch_size=16,
                        val_data=held_out("reverse", 64), eval_every=4, progress=False)  # fmt: skip
        return history.train_loss + history.val_acc, model.params["blocks.0.ffn.W_1"]

    (losses_on, weights_on), (losses_off, weights_off) = both(monkeypatch, run)
    assert losses_on == losses_off  # bit for bit
    np.testing.assert_array_equal(weights_on, weights_off)
    assert used and not any(used)  # asked, and told no every time
    model, _ = make_model("reverse", seed=0)
    monkeypatch.setattr(kernels, "ENABLED", True)
    assert kernels.handles(model.run_with_trace([[1, 2, 3]])[0])  # outside training: loops
