"""Properties every forward pass must have, whatever the weights (NumPy only).

Attention rows are probability distributions, masked keys get nothing, a query with no key
reads nothing (never NaN), attention without positions is blind to order, padding does not
leak into real tokens, seeds make runs reproducible, and the trace agrees with the plain call.
Float64 properties hold to 1e-12 (a handful of roundings of O(1) numbers).
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_encoder, random_padding_mask

from minitransformer import (
    Encoder,
    EncoderConfig,
    causal_mask,
    masked_softmax,
    scaled_dot_product_attention,
)
from minitransformer.trace import expected_names


def small_config(**overrides) -> EncoderConfig:
    fields = dict(vocab_size=20, d_model=12, n_heads=3, n_layers=2, d_ff=16, max_len=10)
    fields.update(overrides)
    return EncoderConfig(**fields)


ALL_OPTIONS = dict(
    positional="learned", embed_layer_norm=True, type_vocab_size=2, activation="gelu"
)


def ids_and_mask(seed=0, batch=3, seq=7, vocab=20):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, vocab, size=(batch, seq))
    mask = random_padding_mask(rng, batch, seq)
    mask[0] = True
    mask[1, 4:] = False
    return ids, mask


# -------------------------------------------------------------------- attention rows


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("norm", ["post", "pre"])
def test_weights_rows_sum_to_one_and_masked_keys_get_exactly_zero(norm, causal):
    model = make_encoder(small_config(norm=norm, causal=causal, dtype="float64"), seed=1)
    ids, mask = ids_and_mask(seed=1)
    _, trace = model.run_with_trace(ids, mask)
    for l in range(2):
        weights = trace[f"blocks.{l}.attn.weights"]  # (B, H, S, S)
        allowed = np.broadcast_to(trace[f"blocks.{l}.attn.mask"], weights.shape)
        if causal:
            np.testing.assert_array_equal(allowed[0, 0], causal_mask(7))
        assert np.all(weights[~allowed] == 0.0)
        assert np.all(weights[allowed] > 0.0)
        rows_with_a_key = allowed.any(axis=-1)
        assert rows_with_a_key.all()  # the first token is real in every row here
        np.testing.assert_allclose(weights.sum(axis=-1), 1.0, rtol=0, atol=1e-12)


def test_query_with_all_keys_masked_gets_zero_row_and_no_nan_anywhere():
    # Causal + padding at the start: query 0 of row 1 may only see key 0, which is padding.
    model = make_encoder(small_config(causal=True, norm="pre", **ALL_OPTIONS), seed=2)
    ids = np.array([[1, 2, 3, 4, 5], [6, 7, 8, 9, 10]])
    mask = np.array([[1, 1, 1, 1, 1], [0, 0, 1, 1, 1]])
    hidden, trace = model.run_with_trace(ids, mask)
    for l in range(2):
        weights = trace[f"blocks.{l}.attn.weights"]
        assert np.all(weights[1, :, :2] == 0.0)  # queries 0 and 1 of row 1 see no key
        np.testing.assert_allclose(weights[1, :, 2:].sum(axis=-1), 1.0, atol=1e-6)
        assert np.all(trace[f"blocks.{l}.attn.z"][1, :, :2] == 0.0)
    for name, value in trace.items():
        if value.dtype != bool:
            assert np.all(np.isfinite(value)), name
    assert np.all(np.isfinite(hidden))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_masked_softmax_and_sdpa_give_zero_rows_when_every_key_is_masked(dtype):
    rng = np.random.default_rng(3)
    q, k, v = (rng.standard_normal((2, 4, 3)).astype(dtype) for _ in range(3))
    mask = np.ones((2, 4, 4), dtype=bool)
    mask[0, 1] = False
    mask[1, 3] = False
    out, weights, scores = scaled_dot_product_attention(q, k, v, mask)
    assert np.isfinite(scores).all() and np.isfinite(weights).all() and np.isfinite(out).all()
    assert np.all(weights[0, 1] == 0.0) and np.all(weights[1, 3] == 0.0)
    assert np.all(out[0, 1] == 0.0) and np.all(out[1, 3] == 0.0)
    np.testing.assert_array_equal(masked_softmax(scores, mask), weights)


# --------------------------------------------------------------------------- order


def test_attention_is_permutation_equivariant():
    rng = np.random.default_rng(4)
    q, k, v = (rng.standard_normal((2, 3, 6, 4)) for _ in range(3))
    perm = rng.permutation(6)
    out, weights, _ = scaled_dot_product_attention(q, k, v)
    out_p, weights_p, _ = scaled_dot_product_attention(q[:, :, perm], k[:, :, perm], v[:, :, perm])
    np.testing.assert_allclose(out_p, out[:, :, perm], rtol=0, atol=1e-12)
    np.testing.assert_allclose(weights_p, weights[:, :, perm][:, :, :, perm], rtol=0, atol=1e-12)


@pytest.mark.parametrize("norm", ["post", "pre"])
def test_encoder_without_positions_is_permutation_equivariant(norm):
    cfg = small_config(positional="none", norm=norm, embed_layer_norm=True, dtype="float64")
    model = make_encoder(cfg, seed=5)
    ids, mask = ids_and_mask(seed=5)
    perm = np.random.default_rng(5).permutation(7)
    hidden, trace = model.run_with_trace(ids, mask)
    hidden_p, trace_p = model.run_with_trace(ids[:, perm], mask[:, perm])
    np.testing.assert_allclose(hidden_p, hidden[:, perm], rtol=0, atol=1e-12)
    for l in range(2):
        w, w_p = trace[f"blocks.{l}.attn.weights"], trace_p[f"blocks.{l}.attn.weights"]
        np.testing.assert_allclose(w_p, w[:, :, perm][:, :, :, perm], rtol=0, atol=1e-12)


@pytest.mark.parametrize("positional", ["sinusoidal", "learned"])
def test_encoder_with_positions_is_not_permutation_equivariant(positional):
    model = make_encoder(small_config(positional=positional, dtype="float64"), seed=6)
    ids = np.array([[1, 2, 3, 4, 5, 6]])
    perm = np.array([5, 4, 3, 2, 1, 0])
    hidden, hidden_p = model(ids), model(ids[:, perm])
    # Each token's output now depends on where it sits: far more than rounding apart.
    assert np.abs(hidden_p - hidden[:, perm]).max() > 1e-2
    # ... while the same check passes without positions (the control for this test).
    no_pos = Encoder(
        small_config(positional="none", dtype="float64"),
        params={k: v for k, v in model.params.items() if k != "embed.W_pos"},
    )
    np.testing.assert_allclose(no_pos(ids[:, perm]), no_pos(ids)[:, perm], rtol=0, atol=1e-12)


# ------------------------------------------------------------------------- padding


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("norm", ["post", "pre"])
def test_padded_token_ids_do_not_affect_real_tokens(norm, causal):
    cfg = small_config(norm=norm, causal=causal, dtype="float64", **ALL_OPTIONS)
    model = make_encoder(cfg, seed=7)
    ids, mask = ids_and_mask(seed=7)
    types = np.random.default_rng(7).integers(0, 2, size=ids.shape)
    other_ids = np.where(mask, ids, (ids + 7) % 20)  # change every padded token
    other_types = np.where(mask, types, 1 - types)
    assert (other_ids != ids).any()
    hidden, trace = model.run_with_trace(ids, mask, token_type_ids=types)
    hidden_2, trace_2 = model.run_with_trace(other_ids, mask, token_type_ids=other_types)
    # Padded keys get weight exactly 0 and 0 * finite = 0, so at most summation-order noise.
    np.testing.assert_allclose(hidden_2[mask], hidden[mask], rtol=0, atol=1e-12)
    for l in range(2):
        w, w_2 = trace[f"blocks.{l}.attn.weights"], trace_2[f"blocks.{l}.attn.weights"]
        real_queries = np.broadcast_to(mask[:, None, :], w.shape[:3])  # (B, H, S)
        np.testing.assert_allclose(w_2[real_queries], w[real_queries], rtol=0, atol=1e-12)
    # ... and the padded positions themselves did change (the test would see a leak).
    assert np.abs(hidden_2[~mask] - hidden[~mask]).max() > 1e-3


# ------------------------------------------------------------------- reproducibility


def test_same_seed_same_params_and_outputs_different_seed_different():
    cfg = small_config(**ALL_OPTIONS)
    a, b, c = Encoder(cfg, seed=3), Encoder(cfg, seed=3), Encoder(cfg, seed=4)
    assert list(a.params) == list(b.params) == list(c.params)
    for name in a.params:
        np.testing.assert_array_equal(a.params[name], b.params[name])
    ids = [[1, 2, 3, 4]]
    np.testing.assert_array_equal(a(ids), b(ids))
    assert not np.array_equal(a.params["embed.W_E"], c.params["embed.W_E"])
    assert not np.array_equal(a.params["blocks.0.attn.W_Q"], c.params["blocks.0.attn.W_Q"])
    assert np.abs(a(ids) - c(ids)).max() > 1e-3


@pytest.mark.parametrize("norm", ["post", "pre"])
@pytest.mark.parametrize("causal", [False, True])
def test_float32_is_the_default_dtype_throughout_the_trace(norm, causal):
    cfg = small_config(norm=norm, causal=causal, dropout=0.1, **ALL_OPTIONS)
    assert cfg.dtype == "float32"
    model = Encoder(cfg, seed=0)
    assert all(p.dtype == np.float32 for p in model.params.values())
    ids, mask = ids_and_mask(seed=8)
    for training in (False, True):
        hidden, trace = model.run_with_trace(ids, mask, token_type_ids=ids % 2, training=training)
        assert hidden.dtype == np.float32
        for name, value in trace.items():
            if name.endswith("mask"):
                assert value.dtype == bool, name
            else:
                assert value.dtype == np.float32, (name, value.dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_call_equals_run_with_trace(dtype):
    model = make_encoder(small_config(dtype=dtype, causal=True, **ALL_OPTIONS), seed=9)
    ids, mask = ids_and_mask(seed=9)
    hidden, _ = model.run_with_trace(ids, mask, token_type_ids=ids % 2)
    np.testing.assert_array_equal(model(ids, mask, token_type_ids=ids % 2), hidden)


def test_keep_records_only_matching_names_with_the_full_traces_values():
    model = make_encoder(small_config(**ALL_OPTIONS), seed=10)
    ids, mask = ids_and_mask(seed=10)
    hidden, full = model.run_with_trace(ids, mask)
    for keep, expected in [
        ("*.attn.weights", ["blocks.0.attn.weights", "blocks.1.attn.weights"]),
        (
            ["embed.out", "blocks.1.ln?.mean"],
            ["embed.out", "blocks.1.ln1.mean", "blocks.1.ln2.mean"],
        ),
    ]:
        kept_hidden, kept = model.run_with_trace(ids, mask, keep=keep)
        assert kept.names() == expected
        np.testing.assert_array_equal(kept_hidden, hidden)
        for name in expected:
            np.testing.assert_array_equal(kept[name], full[name])


# -------------------------------------------------------------------------- dropout


def test_training_records_dropout_masks_and_is_reproducible_with_the_same_rng():
    model = make_encoder(small_config(dropout=0.3, **ALL_OPTIONS, dtype="float64"), seed=11)
    ids, mask = ids_and_mask(seed=11)
    run = model.run_with_trace
    h1, t1 = run(ids, mask, training=True, rng=np.random.default_rng(1))
    h2, t2 = run(ids, mask, training=True, rng=np.random.default_rng(1))
    h3, _ = run(ids, mask, training=True, rng=np.random.default_rng(2))
    assert t1.names() == expected_names(model.config, training=True)
    dropout_names = [n for n in t1.names() if n.endswith("dropout_mask")]
    assert len(dropout_names) == 1 + 4 * 2  # embed + (weights, attn.out, act, ffn.out) per block
    for name in dropout_names:
        keep = t1[name]
        assert keep.dtype == bool and 0.5 < keep.mean() < 0.9, name  # ~70% kept
        np.testing.assert_array_equal(keep, t2[name])
    np.testing.assert_array_equal(h1, h2)
    assert np.abs(h1 - h3).max() > 1e-3
    assert np.abs(h1 - model(ids, mask)).max() > 1e-3  # dropout did something

    # attn.weights is recorded before dropout; z uses the dropped, rescaled weights.
    for l in range(2):
        b = f"blocks.{l}.attn"
        dropped = t1[f"{b}.weights"] * t1[f"{b}.weights_dropout_mask"] / 0.7
        np.testing.assert_allclose(t1[f"{b}.z"], dropped @ t1[f"{b}.v"], rtol=0, atol=1e-12)
        np.testing.assert_allclose(t1[f"{b}.weights"].sum(-1), 1.0, rtol=0, atol=1e-12)


def test_eval_mode_ignores_dropout():
    cfg = small_config(dropout=0.5, **ALL_OPTIONS)
    model = make_encoder(cfg, seed=12)
    no_dropout = Encoder(small_config(dropout=0.0, **ALL_OPTIONS), params=model.params)
    ids, mask = ids_and_mask(seed=12)
    hidden, trace = model.run_with_trace(ids, mask)  # training=False by default
    assert not any(n.endswith("dropout_mask") for n in trace.names())
    np.testing.assert_array_equal(hidden, model(ids, mask))
    np.testing.assert_array_equal(hidden, no_dropout(ids, mask))
    # training=True with dropout 0 draws nothing and changes nothing
    hidden_0, trace_0 = no_dropout.run_with_trace(ids, mask, training=True)
    np.testing.assert_array_equal(hidden_0, hidden)
    assert trace_0.names() == trace.names()


def test_scale_scores_false_gives_the_raw_dot_products():
    from minitransformer import Encoder, EncoderConfig

    scaled = Encoder(EncoderConfig(d_model=16, n_heads=2, n_layers=1, dtype="float64"), seed=1)
    config = EncoderConfig(d_model=16, n_heads=2, n_layers=1, dtype="float64", scale_scores=False)
    raw = Encoder(config, params=scaled.params)
    _, t_scaled = scaled.run_with_trace([1, 2, 3, 4])
    _, t_raw = raw.run_with_trace([1, 2, 3, 4])
    q, k = t_raw["blocks.0.attn.q"], t_raw["blocks.0.attn.k"]
    np.testing.assert_allclose(t_raw["blocks.0.attn.scores"], q @ k.swapaxes(-1, -2), atol=1e-12)
    np.testing.assert_allclose(
        t_raw["blocks.0.attn.scores"], t_scaled["blocks.0.attn.scores"] * np.sqrt(8), atol=1e-12
    )
