"""The vectorised encoder against the loop-based textbook encoder, over random configs.

:func:`minitransformer.reference.reference_forward` shares no math with the encoder (plain
Python loops, ``math.erf``), so agreement over random small configs with every option
(positions, norms, activations, embedding LayerNorm, token types, causal masks, padding)
checks the vectorised code. Both run in float64; tolerance 1e-10 (relative and absolute):
the two compute the same sums in different orders, which costs ~1e-15 per operation.

Sizes are tiny because the reference is pure Python.
"""

from __future__ import annotations

import numpy as np
from conftest import random_params
from hypothesis import given, settings
from hypothesis import strategies as st

from minitransformer import Encoder, EncoderConfig
from minitransformer.reference import reference_forward


@st.composite
def configs(draw):
    n_heads = draw(st.sampled_from([1, 2, 4]))
    d_model = n_heads * draw(st.integers(max(1, -(-4 // n_heads)), 16 // n_heads))  # 4..16
    return EncoderConfig(
        vocab_size=draw(st.integers(2, 12)),
        d_model=d_model,
        n_heads=n_heads,
        n_layers=draw(st.integers(1, 2)),
        d_ff=draw(st.integers(1, 12)),
        max_len=draw(st.integers(5, 8)),
        positional=draw(st.sampled_from(["sinusoidal", "learned", "none"])),
        norm=draw(st.sampled_from(["post", "pre"])),
        activation=draw(st.sampled_from(["relu", "gelu", "gelu_tanh"])),
        embed_layer_norm=draw(st.booleans()),
        type_vocab_size=draw(st.sampled_from([0, 2])),
        layer_norm_eps=draw(st.sampled_from([1e-5, 1e-12])),
        causal=draw(st.booleans()),
        scale_scores=draw(st.booleans()),
        dtype="float64",
    )


@st.composite
def cases(draw):
    config = draw(configs())
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    B, S = draw(st.integers(1, 2)), draw(st.integers(1, 5))
    ids = rng.integers(0, config.vocab_size, size=(B, S))
    mask = None
    if draw(st.booleans()):  # padding anywhere, at least one real token per row
        mask = rng.random((B, S)) < 0.6
        mask[np.arange(B), rng.integers(0, S, size=B)] = True
    types = None
    if config.type_vocab_size > 0 and draw(st.booleans()):
        types = rng.integers(0, config.type_vocab_size, size=(B, S))
    return config, random_params(config, seed), ids, mask, types


@settings(max_examples=40, deadline=None, database=None)
@given(cases())
def test_encoder_matches_loop_reference(case):
    config, params, ids, mask, types = case
    hidden, trace = Encoder(config, params=params).run_with_trace(ids, mask, token_type_ids=types)
    ref_hidden, ref_weights = reference_forward(config, params, ids, mask, types)

    assert hidden.dtype == np.float64
    np.testing.assert_allclose(hidden, ref_hidden, rtol=1e-10, atol=1e-10)
    assert sorted(ref_weights) == list(range(config.n_layers))
    for l, weights in ref_weights.items():
        np.testing.assert_allclose(
            trace[f"blocks.{l}.attn.weights"], weights, rtol=1e-10, atol=1e-10
        )


def test_reference_agrees_on_a_fully_masked_causal_row():
    """Causal + a padded first token: query 0 has no key; both give it zero weights."""
    config = EncoderConfig(
        vocab_size=7, d_model=8, n_heads=2, n_layers=2, d_ff=6, max_len=6, causal=True,
        norm="pre", activation="gelu", dtype="float64",
    )  # fmt: skip
    params = random_params(config, seed=11)
    ids, mask = np.array([[1, 2, 3, 4]]), np.array([[0, 1, 1, 1]])
    hidden, trace = Encoder(config, params=params).run_with_trace(ids, mask)
    ref_hidden, ref_weights = reference_forward(config, params, ids, mask)
    np.testing.assert_allclose(hidden, ref_hidden, rtol=1e-10, atol=1e-10)
    for l in range(2):
        assert np.all(trace[f"blocks.{l}.attn.weights"][0, :, 0] == 0.0)
        np.testing.assert_allclose(trace[f"blocks.{l}.attn.weights"], ref_weights[l], atol=1e-10)
