"""Kobayashi et al.'s value-weighted attention ``||alpha_ij f(x_j)||`` against a direct loop."""

from __future__ import annotations

import numpy as np
import pytest

from minitransformer.config import EncoderConfig
from minitransformer.interpret import (
    head_mask_without,
    transformed_value_norms,
    value_weighted_norms,
)
from tests.conftest import make_encoder

CFG = EncoderConfig(vocab_size=12, d_model=12, n_heads=3, n_layers=2, d_ff=16, max_len=8,
                    dtype="float64", dropout=0.1)  # fmt: skip
IDS = np.array([[1, 4, 2, 7, 3, 5], [5, 5, 9, 11, 0, 0]])
MASK = IDS != 0


def by_loop(model, trace, l, b, h, i, j):
    """The vector head h of block l adds to query i for key j, built entry by entry:
    x_j = the block's attention input (its input resid_pre, post-norm), v = x_j W_V + b_V for the
    head's columns, f = v W_O for the head's rows, times alpha_ij (and the head's mask)."""
    p, Dh = model.params, CFG.d_head
    x = trace[f"blocks.{l}.resid_pre"][b, j]
    cols = slice(h * Dh, (h + 1) * Dh)
    v = x @ p[f"blocks.{l}.attn.W_V"][:, cols] + p[f"blocks.{l}.attn.b_V"][cols]
    f = v @ p[f"blocks.{l}.attn.W_O"][cols, :]
    head_mask = 1.0 if trace.head_mask is None else trace.head_mask[l, h]
    return head_mask * trace[f"blocks.{l}.attn.weights"][b, h, i, j] * f


@pytest.mark.parametrize("head_mask", [None, head_mask_without(CFG, [(1, 2)])])
def test_norms_equal_the_vectors_built_by_a_loop(head_mask):
    model = make_encoder(CFG, seed=3)
    _, trace = model.run_with_trace(IDS, MASK, head_mask=head_mask)
    N = value_weighted_norms(model, trace)
    assert N.shape == (2, 2, 3, 6, 6) and N.dtype == np.float64
    for l in range(2):
        for b in range(2):
            for h in range(3):
                for i in range(6):
                    for j in range(6):
                        vector = by_loop(model, trace, l, b, h, i, j)
                        assert N[l, b, h, i, j] == pytest.approx(
                            np.linalg.norm(vector), rel=1e-10, abs=1e-12
                        )
    assert (N[:, 1, :, :, 4:] == 0).all()  # masked keys add nothing
    if head_mask is not None:
        assert (N[1, :, 2] == 0).all() and (N[1, :, :2] > 0).any()
    # the per-head vectors add up to the attention output minus the output bias
    out = trace["blocks.0.attn.out"][0, 2] - model.params["blocks.0.attn.b_O"]
    total = sum(by_loop(model, trace, 0, 0, h, 2, j) for h in range(3) for j in range(6))
    np.testing.assert_allclose(total, out, rtol=1e-10, atol=1e-12)


def test_transformed_norms_are_the_norms_at_weight_one():
    model = make_encoder(CFG, seed=4)
    _, trace = model.run_with_trace(IDS, MASK)
    f = transformed_value_norms(model, trace)
    A = np.stack([trace[f"blocks.{l}.attn.weights"] for l in range(2)])
    np.testing.assert_allclose(value_weighted_norms(model, trace), A * f[:, :, :, None, :])
    assert f.shape == (2, 2, 3, 6)


def test_bad_traces_are_refused():
    model = make_encoder(CFG, seed=5)
    _, kept = model.run_with_trace(IDS, keep="*.attn.weights")
    with pytest.raises(KeyError, match=r"did not record 'blocks\.0\.attn\.v'"):
        value_weighted_norms(model, kept)
    _, training = model.run_with_trace(IDS, training=True)
    with pytest.raises(ValueError, match="training trace"):
        value_weighted_norms(model, training)
    other = make_encoder(EncoderConfig(vocab_size=12, d_model=8, n_heads=2, max_len=8), seed=0)
    _, trace = other.run_with_trace(IDS)
    with pytest.raises(ValueError, match="another config"):
        value_weighted_norms(model, trace)
    with pytest.raises(TypeError, match="trace must be a Trace"):
        value_weighted_norms(model, {"blocks.0.attn.v": 0})


def test_minilm_it_reads_cls_by_weight_but_because_by_contribution():
    """Issue 14's example: MiniLM block 2, head 0, "it" in "The cat sat on the mat because it
    was tired." gives [CLS] 0.285 of its weight. Kobayashi's ||alpha f(x)|| (f = v W_O^h) is
    0.041 for [CLS] against 2.11 for "because"; the issue's 0.044 and 2.42 are ||alpha v||,
    the same without W_O^h."""
    try:
        from minitransformer.pretrained import load_pretrained

        model, tok = load_pretrained("all-MiniLM-L6-v2")
    except FileNotFoundError as error:
        pytest.skip(f"all-MiniLM-L6-v2 is not installed: {error}")
    batch = tok("The cat sat on the mat because it was tired.")
    tokens = batch.tokens[0]
    it, because = tokens.index("it"), tokens.index("because")
    _, trace = model.run_with_trace(batch)
    alpha = trace["blocks.2.attn.weights"][0, 0, it]
    norms = value_weighted_norms(model, trace)[2, 0, 0, it]
    assert alpha[0] == pytest.approx(0.285, abs=5e-4)
    assert alpha[because] == pytest.approx(0.590, abs=5e-4)
    assert norms[0] == pytest.approx(0.041, abs=5e-4)
    assert norms[because] == pytest.approx(2.106, abs=5e-3)
    v = trace["blocks.2.attn.v"][0, 0].astype(np.float64)  # (S, Dh)
    without_W_O = alpha * np.linalg.norm(v, axis=-1)
    assert without_W_O[0] == pytest.approx(0.044, abs=5e-4)
    assert without_W_O[because] == pytest.approx(2.42, abs=5e-3)
    # the lesson: by weight [CLS] is 0.48 of "because"; by contribution 0.02
    assert alpha[0] / alpha[because] > 0.4 and norms[0] / norms[because] < 0.03
