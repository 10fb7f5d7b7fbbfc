"""Our NumPy functions and encoder against PyTorch, on identical weights.

Tolerances: float64 results agree to 1e-10 (relative and absolute); float32 results to
``rtol=1e-5`` with a small ``atol`` justified at each comparison (float32 rounding,
eps = 1.2e-7, accumulated over a few dozen operations on O(1) numbers).

What PyTorch 2.13 does with a query whose keys are *all* masked (checked here by hand and
relied on only where a test says so):

* ``F.scaled_dot_product_attention`` with a boolean ``attn_mask``: a zero output row (as ours).
  A manual ``softmax(scores.masked_fill(~mask, -inf))`` gives NaN for that row.
* ``nn.MultiheadAttention`` with ``need_weights=True``: NaN in both the weights and the
  output row (ours: zeros). With ``need_weights=False`` in training mode it goes through SDPA
  and returns zeros, but in eval under ``no_grad`` (its "fast path") NaN again.
* ``nn.TransformerEncoderLayer`` (fast path or not) computes padded *query* positions like
  any other position (they still attend to the real keys), exactly as we do, so a single
  layer matches us everywhere. ``nn.TransformerEncoder`` with post-norm layers in eval under
  ``no_grad`` converts the batch to a nested tensor and returns exact zeros at padded
  positions (with pre-norm layers it cannot and computes them normally); stacks are
  therefore compared at real-token positions only.

Gradients are tested elsewhere.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch reference tests need the 'test' extra")

from conftest import (  # noqa: E402
    copy_block_into,
    make_encoder,
    random_padding_mask,
    to_torch,
    torch_dtype,
    torch_encoder_layer,
    torch_mha,
)

from minitransformer import (  # noqa: E402
    EncoderConfig,
    causal_mask,
    gelu,
    gelu_tanh,
    layer_norm,
    linear,
    merge_heads,
    scaled_dot_product_attention,
    sinusoidal_positional_encoding,
    softmax,
    split_heads,
)

F = torch.nn.functional

# (dtype, rtol, atol). float32 atol: outputs are O(1) averages/sums of O(1) numbers, so a few
# ulps of 1 (1.2e-7 each) is the expected error near 0 where rtol alone cannot apply.
TOLERANCES = {"float64": (1e-10, 1e-10), "float32": (1e-5, 1e-6)}
DTYPES = list(TOLERANCES)


def assert_close(ours: np.ndarray, theirs: torch.Tensor, dtype: str, atol: float | None = None):
    rtol, default_atol = TOLERANCES[dtype]
    theirs_np = theirs.detach().numpy()
    assert ours.dtype == theirs_np.dtype == np.dtype(dtype)
    np.testing.assert_allclose(
        ours, theirs_np, rtol=rtol, atol=default_atol if atol is None else atol
    )


def qkv(dtype: str, shape=(2, 3, 5, 4), seed=0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return tuple(rng.standard_normal(shape).astype(dtype) for _ in range(3))  # type: ignore


def manual_torch_weights(q, k, mask=None):
    """softmax(q k^T / sqrt(Dh)) with masked keys at -inf, in torch (NaN on all-masked rows)."""
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1)


# ------------------------------------------------------------------------------ SDPA


@pytest.mark.parametrize("dtype", DTYPES)
def test_sdpa_without_mask_matches_torch(dtype):
    q, k, v = qkv(dtype)
    out, weights, scores = scaled_dot_product_attention(q, k, v)
    tq, tk, tv = to_torch(q), to_torch(k), to_torch(v)
    assert_close(out, F.scaled_dot_product_attention(tq, tk, tv), dtype)
    assert_close(weights, manual_torch_weights(tq, tk), dtype)
    assert_close(scores, tq @ tk.transpose(-1, -2) / math.sqrt(q.shape[-1]), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sdpa_with_boolean_mask_and_fully_masked_rows_matches_torch(dtype):
    q, k, v = qkv(dtype, seed=1)
    rng = np.random.default_rng(1)
    mask = rng.random((2, 3, 5, 5)) < 0.6  # True = may attend, in both libraries
    mask[0, 0, 2] = False  # fully masked query rows
    mask[1, 2, 0] = False
    mask[1, 1, 4] = False
    fully_masked = ~mask.any(axis=-1)  # (B, H, S)
    assert fully_masked.sum() >= 3

    out, weights, _ = scaled_dot_product_attention(q, k, v, mask)
    tq, tk, tv, tmask = to_torch(q), to_torch(k), to_torch(v), torch.from_numpy(mask)
    torch_out = F.scaled_dot_product_attention(tq, tk, tv, attn_mask=tmask)
    # PyTorch SDPA gives a zero output row to a query with no allowed key, as we do.
    assert_close(out, torch_out, dtype)
    assert not np.isnan(out).any() and not np.isnan(weights).any()
    assert np.all(out[fully_masked] == 0.0)
    assert np.all(weights[fully_masked] == 0.0)
    # The manual torch softmax is NaN on fully masked rows (0 / 0): compare the other rows.
    torch_weights = manual_torch_weights(tq, tk, tmask).numpy()
    assert np.isnan(torch_weights[fully_masked]).all()
    np.testing.assert_allclose(
        weights[~fully_masked], torch_weights[~fully_masked], *TOLERANCES[dtype]
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_sdpa_causal_mask_matches_torch_is_causal(dtype):
    q, k, v = qkv(dtype, seed=2)
    S = q.shape[-2]
    out, weights, _ = scaled_dot_product_attention(q, k, v, causal_mask(S))
    tq, tk, tv = to_torch(q), to_torch(k), to_torch(v)
    assert_close(out, F.scaled_dot_product_attention(tq, tk, tv, is_causal=True), dtype)
    torch_causal = torch.ones(S, S, dtype=torch.bool).tril()
    assert_close(weights, manual_torch_weights(tq, tk, torch_causal), dtype)


# ------------------------------------------------------------------ MultiheadAttention


def attention_config(dtype: str) -> EncoderConfig:
    return EncoderConfig(
        vocab_size=20, d_model=12, n_heads=3, n_layers=1, d_ff=16, max_len=8, dtype=dtype
    )


def attention_by_functions(params, x, pad, n_heads):
    """Multi-head attention from the public functions: linear, split, SDPA, merge, linear."""
    b = "blocks.0.attn"
    q = split_heads(linear(x, params[f"{b}.W_Q"], params[f"{b}.b_Q"]), n_heads)
    k = split_heads(linear(x, params[f"{b}.W_K"], params[f"{b}.b_K"]), n_heads)
    v = split_heads(linear(x, params[f"{b}.W_V"], params[f"{b}.b_V"]), n_heads)
    z, weights, _ = scaled_dot_product_attention(q, k, v, pad[:, None, None, :])
    return linear(merge_heads(z), params[f"{b}.W_O"], params[f"{b}.b_O"]), weights


@pytest.mark.parametrize("dtype", DTYPES)
def test_multihead_attention_matches_torch_with_key_padding_mask(dtype):
    model = make_encoder(attention_config(dtype), seed=3)
    rng = np.random.default_rng(3)
    ids = rng.integers(0, 20, size=(3, 6))
    pad = np.array([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0], [1, 0, 0, 0, 0, 0]], dtype=bool)
    _, trace = model.run_with_trace(ids, pad)
    x = trace["embed.out"]

    mha = torch_mha(model)
    with torch.no_grad():
        torch_out, torch_weights = mha(
            to_torch(x),
            to_torch(x),
            to_torch(x),
            key_padding_mask=torch.from_numpy(~pad),  # torch: True = IGNORE this key
            need_weights=True,
            average_attn_weights=False,  # per-head (B, H, S, S) instead of the head mean
        )
    assert_close(trace["blocks.0.attn.weights"], torch_weights, dtype)
    assert_close(trace["blocks.0.attn.out"], torch_out, dtype)

    out, weights = attention_by_functions(model.params, x, pad, model.config.n_heads)
    assert_close(weights, torch_weights, dtype)
    assert_close(out, torch_out, dtype)


def test_multihead_attention_fully_masked_row_torch_nan_ours_zero():
    """Causal + leading padding leaves query 0 with no key: torch MHA gives NaN, we give 0."""
    cfg = EncoderConfig(
        vocab_size=20, d_model=8, n_heads=2, n_layers=1, d_ff=8, max_len=8, causal=True,
        dtype="float64",
    )  # fmt: skip
    model = make_encoder(cfg, seed=4)
    pad = np.array([[0, 1, 1, 1]], dtype=bool)
    _, trace = model.run_with_trace([[3, 4, 5, 6]], pad)
    x = to_torch(trace["embed.out"])
    with torch.no_grad():
        torch_out, torch_weights = torch_mha(model)(
            x, x, x,
            key_padding_mask=torch.from_numpy(~pad),
            attn_mask=torch.ones(4, 4, dtype=torch.bool).triu(1),  # True = IGNORE (future)
            need_weights=True, average_attn_weights=False,
        )  # fmt: skip
    weights = trace["blocks.0.attn.weights"]
    assert torch.isnan(torch_weights[:, :, 0]).all() and torch.isnan(torch_out[:, 0]).all()
    assert np.all(weights[:, :, 0] == 0.0)
    # Query 0 reads nothing: its attention output is the bias b_O alone.
    np.testing.assert_array_equal(
        trace["blocks.0.attn.out"][0, 0], model.params["blocks.0.attn.b_O"]
    )
    np.testing.assert_allclose(weights[:, :, 1:], torch_weights[:, :, 1:].numpy(), 1e-10, 1e-10)
    np.testing.assert_allclose(
        trace["blocks.0.attn.out"][:, 1:], torch_out[:, 1:].numpy(), 1e-10, 1e-10
    )


# ------------------------------------------------------------- TransformerEncoderLayer


def layer_config(norm: str, activation: str, dtype: str, n_layers: int = 1) -> EncoderConfig:
    return EncoderConfig(
        vocab_size=30, d_model=16, n_heads=4, n_layers=n_layers, d_ff=24, max_len=10,
        positional="none", norm=norm, activation=activation, layer_norm_eps=1e-5, dtype=dtype,
    )  # fmt: skip


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize("norm", ["post", "pre"])
@pytest.mark.parametrize("padded", [False, True], ids=["no-padding", "padding"])
def test_block_matches_torch_transformer_encoder_layer(norm, activation, dtype, padded):
    cfg = layer_config(norm, activation, dtype)
    model = make_encoder(cfg, seed=5)
    rng = np.random.default_rng(5)
    ids = rng.integers(0, cfg.vocab_size, size=(3, 7))
    pad = random_padding_mask(rng, 3, 7) if padded else None
    if padded:
        pad[0] = True  # one full row, the others padded
        pad[1, 3:] = False
    hidden, trace = model.run_with_trace(ids, pad)

    # positional="none", no token types, no embedding LayerNorm: the block's input is W_E[ids].
    x = to_torch(model.params["embed.W_E"][ids])
    kpm = None if pad is None else torch.from_numpy(~pad)  # torch: True = IGNORE
    with torch.no_grad():  # eval + no_grad: torch takes its fused "fast path" here
        torch_out = torch_encoder_layer(model)(x, src_key_padding_mask=kpm)
    # The fast path computes padded query positions like the others, so compare everywhere.
    assert_close(trace["blocks.0.out"], torch_out, dtype)
    if norm == "post":
        assert_close(hidden, torch_out, dtype)
    else:  # our pre-norm stack ends with final_ln; torch's layer does not
        gamma, beta = (
            to_torch(model.params["final_ln.gamma"]),
            to_torch(model.params["final_ln.beta"]),
        )
        expected = F.layer_norm(torch_out, (cfg.d_model,), gamma, beta, cfg.layer_norm_eps)
        assert_close(hidden, expected, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("norm", ["post", "pre"])
def test_three_layer_stack_matches_torch_transformer_encoder(norm, dtype):
    cfg = layer_config(norm, "gelu", dtype, n_layers=3)
    model = make_encoder(cfg, seed=6)
    rng = np.random.default_rng(6)
    ids = rng.integers(0, cfg.vocab_size, size=(4, 8))
    pad = random_padding_mask(rng, 4, 8)
    pad[0] = True
    pad[1, 2:] = False
    hidden, trace = model.run_with_trace(ids, pad)

    final_norm = None
    if norm == "pre":
        final_norm = torch.nn.LayerNorm(cfg.d_model, eps=cfg.layer_norm_eps, dtype=torch_dtype(cfg))
        with torch.no_grad():
            final_norm.weight.copy_(to_torch(model.params["final_ln.gamma"]))
            final_norm.bias.copy_(to_torch(model.params["final_ln.beta"]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # nested tensors are a "prototype" API
        stack = torch.nn.TransformerEncoder(
            torch_encoder_layer(model, 0),
            num_layers=3,
            norm=final_norm,
            enable_nested_tensor=norm == "post",  # torch cannot nest pre-norm layers anyway
        ).eval()
        for l in range(3):  # TransformerEncoder deep-copies the layer: set each copy's weights
            copy_block_into(stack.layers[l], model.params, l)
        with torch.no_grad():
            torch_hidden = stack(
                to_torch(model.params["embed.W_E"][ids]),
                src_key_padding_mask=torch.from_numpy(~pad),
            )
    # Post-norm: torch returns exact zeros at padded positions (nested tensor); compare the
    # real-token positions, where both libraries compute the same function.
    assert_close(hidden[pad], torch_hidden[torch.from_numpy(pad)], dtype)

    # Layer by layer, without a padding mask (so no nested tensor), everywhere.
    hidden_full, trace_full = model.run_with_trace(ids)
    x = to_torch(model.params["embed.W_E"][ids])
    with torch.no_grad():
        for l in range(3):
            x = stack.layers[l](x)
            assert_close(trace_full[f"blocks.{l}.out"], x, dtype)


# ---------------------------------------------------------------- elementwise functions


def test_gelu_matches_torch_float64_over_a_wide_range():
    x = np.concatenate([np.linspace(-30, 30, 60001), [-30.0, 30.0, -1e-8, 0.0, 1e-8]])
    tx = torch.from_numpy(x)
    # |ours - torch| <= 1e-12: erf is accurate to ~2e-16, times |x| / 2 <= 15.
    np.testing.assert_allclose(gelu(x), F.gelu(tx).numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(
        gelu_tanh(x), F.gelu(tx, approximate="tanh").numpy(), rtol=1e-10, atol=1e-12
    )


def test_gelu_matches_torch_float32():
    x = np.linspace(-30, 30, 60001).astype(np.float32)
    tx = torch.from_numpy(x)
    ours, ours_tanh = gelu(x), gelu_tanh(x)
    assert ours.dtype == ours_tanh.dtype == np.float32
    # atol 2e-6: our float32 erf (A&S 7.1.26) is within 1e-6 of the true erf, and
    # gelu = x (1 + erf(x / sqrt 2)) / 2 multiplies that by |x| / 2 where erf is not
    # saturated (|x| < ~4), so <= 2e-6; relative error breaks down in the negative lobe
    # where gelu(x) -> 0.
    np.testing.assert_allclose(ours, F.gelu(tx).numpy(), rtol=1e-5, atol=2e-6)
    np.testing.assert_allclose(
        ours_tanh, F.gelu(tx, approximate="tanh").numpy(), rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_layer_norm_matches_torch(dtype):
    rng = np.random.default_rng(7)
    x = (3.0 + 2.0 * rng.standard_normal((2, 5, 16))).astype(dtype)
    gamma = (1 + 0.1 * rng.standard_normal(16)).astype(dtype)
    beta = (0.1 * rng.standard_normal(16)).astype(dtype)
    for eps in (1e-5, 1e-12):
        expected = F.layer_norm(to_torch(x), (16,), to_torch(gamma), to_torch(beta), eps)
        assert_close(layer_norm(x, gamma, beta, eps), expected, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_matches_torch(dtype):
    rng = np.random.default_rng(8)
    x = (5 * rng.standard_normal((3, 4, 9))).astype(dtype)
    for axis in (-1, 0, 1):
        assert_close(softmax(x, axis=axis), torch.softmax(to_torch(x), dim=axis), dtype)


@pytest.mark.parametrize("d_model", [16, 15])
def test_sinusoidal_encoding_matches_pytorch_tutorial_formula(d_model):
    max_len = 100
    # The PyTorch "Language Modeling with nn.Transformer" tutorial, interleaved sin/cos.
    position = torch.arange(max_len, dtype=torch.float64).unsqueeze(1)
    div_term = torch.exp(
        torch.arange(0, d_model, 2, dtype=torch.float64) * (-math.log(10000.0) / d_model)
    )
    pe = torch.zeros(max_len, d_model, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(position * div_term)
    pe[:, 1::2] = torch.cos(position * div_term)[:, : d_model // 2]  # odd width: one cos fewer
    # exp(-log(1e4) 2i/D) vs 1e4^(-2i/D) differ by ~1e-16 relative; angles up to 99 rad.
    np.testing.assert_allclose(
        sinusoidal_positional_encoding(max_len, d_model, "float64"), pe.numpy(), rtol=0, atol=1e-10
    )
    np.testing.assert_allclose(
        sinusoidal_positional_encoding(max_len, d_model), pe.numpy(), rtol=0, atol=1e-6
    )  # float32 rounding of values in [-1, 1]: half an ulp of 1 is 6e-8
