"""The learner checks: right implementations pass, and every classic mistake is named.

Each buggy implementation below is written the way a student would write it, independently of
the variants the checks compute internally; the test asserts that the check fails with the
mistake's name and a message that says what went wrong.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from minitransformer.attention import merge_heads, scaled_dot_product_attention, split_heads
from minitransformer.config import EncoderConfig
from minitransformer.encoder import Encoder
from minitransformer.functional import gelu, layer_norm, linear, softmax
from minitransformer.positional import sinusoidal_positional_encoding
from minitransformer.testing import (
    CheckFailed,
    check_encoder_block,
    check_layer_norm,
    check_multi_head_attention,
    check_positional_encoding,
    check_scaled_dot_product_attention,
    check_softmax,
)
from minitransformer.testing.encoder_block import (
    block_steps,
    block_variant,
    random_block_params,
)

# ------------------------------------------------------------------------------ softmax


def my_softmax(x, axis=-1):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def softmax_axis0(x, axis=-1):
    e = np.exp(x - x.max(axis=0, keepdims=True))
    return e / e.sum(axis=0, keepdims=True)


def softmax_axis1(x, axis=1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def softmax_whole(x, axis=-1):
    e = np.exp(x - x.max())
    return e / e.sum()


def softmax_sum_no_keepdims(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis)


def softmax_max_no_keepdims(x, axis=-1):
    e = np.exp(x - x.max(axis=axis))
    return e / e.sum(axis=axis, keepdims=True)


def softmax_no_max(x, axis=-1):
    e = np.exp(x)
    return e / e.sum(axis=axis, keepdims=True)


def softmax_global_max(x, axis=-1):
    e = np.exp(x - x.max())
    return e / e.sum(axis=axis, keepdims=True)


def softmax_in_place(x, axis=-1):
    x -= x.max(axis=axis, keepdims=True)
    np.exp(x, out=x)
    x /= x.sum(axis=axis, keepdims=True)
    return x


SOFTMAX_MISTAKES = [
    (softmax_axis0, "softmax_wrong_axis", "axis=0"),
    (softmax_axis1, "softmax_wrong_axis", "the last axis only of a 2-D array"),
    (softmax_whole, "softmax_whole_array", "whole array sums to 1"),
    (softmax_sum_no_keepdims, "softmax_missing_keepdims", "keepdims=True"),
    (softmax_max_no_keepdims, "softmax_missing_keepdims", "keepdims=True"),
    (lambda x, axis=-1: np.exp(x), "softmax_not_normalised", "without dividing"),
    (lambda x, axis=-1: x / x.sum(axis=axis, keepdims=True), "softmax_no_exp", "exponential"),
    (softmax_no_max, "softmax_no_max_subtraction", "overflows"),
    (softmax_global_max, "softmax_global_max", "maximum of the whole array"),
    (lambda x, axis=-1: my_softmax(x), "softmax_ignores_axis", "use the `axis` argument"),
    (lambda x: my_softmax(x), "raised", "axis=-1` parameter"),
    (softmax_in_place, "mutated_input", "changed its input `x`"),
    (lambda x, axis=-1: my_softmax(x, axis).tolist(), "returned_list", "returned a list"),
    (lambda x, axis=-1: None, "returned_none", "`return`"),
    (lambda x, axis=-1: (my_softmax(x, axis) * 100).astype(int), "integer_dtype", "int"),
    (lambda x, axis=-1: np.zeros_like(x), "mismatch", "expected"),
    (lambda x, axis=-1: x, "mismatch", "expected"),
    (lambda x, axis=-1: my_softmax(x, axis)[..., :1], "wrong_shape", "reduction"),
    (lambda x, axis=-1: np.full_like(x, 1 / x.shape[axis]), "mismatch", "expected"),
    (
        lambda x, axis=-1: my_softmax(x.astype(np.float32), axis).astype(np.float64),
        "imprecise",
        "float32",
    ),
    (lambda x, axis=-1: my_softmax(x, axis).astype(np.float16), "wrong_dtype", "float16"),
]

# --------------------------------------------------------------------------- layer norm


def my_layer_norm(x, gamma, beta, eps=1e-5):
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return gamma * (x - mean) / np.sqrt(var + eps) + beta


def make_layer_norm(axis=-1, ddof=0, eps_mode="inside", centre=True, by_var=False, affine="ok"):
    def ln(x, gamma, beta, eps=1e-5):
        mean = x.mean(axis=axis, keepdims=True)
        var = x.var(axis=axis, keepdims=True, ddof=ddof)
        e = {"inside": eps, "none": 0.0, "fixed": 1e-5}.get(eps_mode, eps)
        std = np.sqrt(var) + eps if eps_mode == "outside" else np.sqrt(var + e)
        x_hat = (x - mean if centre else x) / (var + eps if by_var else std)
        if affine == "none":
            return x_hat
        return x_hat * beta + gamma if affine == "swapped" else x_hat * gamma + beta

    return ln


def layer_norm_in_place(x, gamma, beta, eps=1e-5):
    x -= x.mean(axis=-1, keepdims=True)
    x /= np.sqrt((x**2).mean(axis=-1, keepdims=True) + eps)
    return x * gamma + beta


LAYER_NORM_MISTAKES = [
    (make_layer_norm(axis=0), "layer_norm_wrong_axis", "axis 0"),
    (make_layer_norm(axis=1), "layer_norm_wrong_axis", "axis 1"),
    (make_layer_norm(axis=None), "layer_norm_wrong_axis", "whole array"),
    (make_layer_norm(axis=2), "raised", "axis=-1"),
    (make_layer_norm(ddof=1), "layer_norm_unbiased_variance", "ddof=1"),
    (make_layer_norm(eps_mode="none"), "layer_norm_no_eps", "0 by 0"),
    (make_layer_norm(eps_mode="outside"), "layer_norm_eps_outside_sqrt", "outside the square root"),
    (make_layer_norm(eps_mode="fixed"), "layer_norm_ignores_eps", "use the `eps` argument"),
    (make_layer_norm(centre=False), "layer_norm_not_centred", "subtract the mean"),
    (make_layer_norm(by_var=True), "layer_norm_divided_by_variance", "standard deviation"),
    (make_layer_norm(affine="none"), "layer_norm_no_affine", "gamma * x_hat + beta"),
    (make_layer_norm(affine="swapped"), "layer_norm_gamma_beta_swapped", "swapped gamma"),
    (layer_norm_in_place, "mutated_input", "changed its input `x`"),
    (lambda x, gamma, beta, eps=1e-5: x, "mismatch", "expected"),
    (lambda x, gamma, beta, eps=1e-5: np.zeros_like(x), "mismatch", "expected"),
]

# ------------------------------------------------------------------ positional encoding


def my_positional_encoding(max_len, d_model):
    pe = np.zeros((max_len, d_model))
    for pos in range(max_len):
        for i in range(0, d_model, 2):
            angle = pos / 10000 ** (i / d_model)
            pe[pos, i] = math.sin(angle)
            pe[pos, i + 1] = math.cos(angle)
    return pe


def make_positional(base=10000, layout="interleaved", exponent="pair", start=0, dtype=float):
    def pe_fn(max_len, d_model):
        pe = np.zeros((max_len, d_model), dtype=dtype)
        for pos in range(max_len):
            for j in range(d_model):
                e = {"pair": 2 * (j // 2), "column": j, "double": 2 * j}[exponent] / d_model
                angle = (pos + start) / base**e
                if layout == "concatenated":
                    i = j % (d_model // 2)
                    angle = (pos + start) / base ** (2 * i / d_model)
                    pe[pos, j] = math.sin(angle) if j < d_model // 2 else math.cos(angle)
                else:
                    use_sin = (j % 2 == 0) == (layout == "interleaved")
                    pe[pos, j] = math.sin(angle) if use_sin else math.cos(angle)
        return pe

    return pe_fn


POSITIONAL_MISTAKES = [
    (make_positional(layout="concatenated"), "pe_concatenated", "interleaves"),
    (make_positional(layout="cos_first"), "pe_sin_cos_swapped", "cosines in the even"),
    (make_positional(exponent="column"), "pe_exponent_per_column", "share one"),
    (make_positional(exponent="double"), "pe_exponent_doubled", "twice as fast"),
    (make_positional(base=1000), "pe_wrong_base", "10000"),
    (make_positional(start=1), "pe_positions_from_1", "start at 0"),
    (lambda n, d: my_positional_encoding(n, d).T, "wrong_shape", "Rows and columns"),
    (
        lambda n, d: my_positional_encoding(n, d).T if n == d else my_positional_encoding(n, d),
        "pe_transposed",
        "swapped",
    ),
    (make_positional(dtype=int), "integer_dtype", "truncates"),
    (lambda n, d: my_positional_encoding(n, d).tolist(), "returned_list", "list"),
    (lambda n, d: my_positional_encoding(n, d)[None], "wrong_shape", "size 1"),
    (lambda n, d: np.zeros((n, d)), "mismatch", "expected"),
]

# -------------------------------------------------------------- scaled dot-product attention


def my_safe_softmax(scores):
    m = scores.max(axis=-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    e = np.exp(scores - m)
    total = e.sum(axis=-1, keepdims=True)
    return e / np.where(total > 0, total, 1.0)


def my_attention(q, k, v, mask=None):
    scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    weights = my_safe_softmax(scores)
    return weights @ v, weights


def make_attention(
    scale="sqrt", axis=-1, masking="where", kT="swapaxes", ret="both", exp=True, dot=False
):
    def attention(q, k, v, mask=None):
        k_T = k.T if kT == "T" else np.swapaxes(k, -1, -2)
        d = {"sqrt": np.sqrt(q.shape[-1]), "none": 1.0, "d": q.shape[-1]}.get(scale)
        product = np.dot if dot else np.matmul
        scores = product(q, k_T) / (np.sqrt(v.shape[-1]) if scale == "v" else d)
        if mask is not None and masking == "inverted":
            scores = np.where(mask, -np.inf, scores)
        elif mask is not None and masking == "plus_big":
            scores = scores + np.where(mask, 0.0, 1e9)
        elif mask is not None and masking == "plus_inf":
            scores = scores + np.where(mask, 0.0, np.inf)
        elif mask is not None and masking == "transposed":
            scores = np.where(np.swapaxes(mask, -1, -2), scores, -np.inf)
        elif mask is not None and masking == "zero":
            scores = np.where(mask, scores, 0.0)
        elif mask is not None and masking == "product":
            scores = scores + (1 - mask.astype(float)) * -np.inf
        elif mask is not None and masking == "additive":
            scores = scores + (1 - mask) * -1e9
        elif mask is not None and masking == "bool_minus":
            scores = scores + (True - mask) * 1e9  # TypeError: NumPy refuses bool subtract
        elif mask is not None and masking == "minus_1e9":
            scores = np.where(mask, scores, -1e9)
        elif mask is not None and masking in ("where", "plain_softmax"):
            scores = np.where(mask, scores, -np.inf)
        if not exp:
            weights = scores
        else:
            weights = np.exp(scores - scores.max(axis=axis, keepdims=True))
            weights = weights / weights.sum(axis=axis, keepdims=True)
        if masking == "where":  # the right treatment of a query with no allowed key
            weights = np.nan_to_num(weights)
        if mask is not None and masking == "after":
            weights = weights * mask
        out = product(weights, v)
        returns = {"both": (out, weights), "out": out, "swapped": (weights, out)}
        return returns.get(ret, (out, q @ k_T / np.sqrt(q.shape[-1])))

    return attention


SDPA_MISTAKES = [
    (make_attention(scale="none"), "no_scaling", "sqrt(d_head)"),
    (make_attention(scale="d"), "scale_by_d", "square root"),
    (make_attention(scale="v"), "scale_by_d_v", "width of v"),
    (make_attention(axis=-2), "softmax_over_queries", "over the queries"),
    (make_attention(axis=1), "softmax_fixed_axis", "axis=-1"),
    (make_attention(exp=False, ret="out"), "no_softmax", "skipped the softmax"),
    (make_attention(kT="T"), "raised", "k.swapaxes(-1, -2)"),
    (make_attention(dot=True), "wrong_shape", "np.dot"),
    (make_attention(masking="ignored"), "mask_ignored", "not used"),
    (make_attention(masking="inverted"), "mask_inverted", "True (or 1) means 'may attend'"),
    (make_attention(masking="plus_big"), "mask_inverted", "large positive number"),
    (make_attention(masking="plus_inf"), "mask_nan", "+inf instead of -inf"),
    (make_attention(masking="transposed"), "mask_transposed", "queries (rows) instead of keys"),
    (make_attention(masking="zero"), "mask_zero_fill", "exp(0) = 1"),
    (make_attention(masking="after"), "mask_after_softmax", "after the softmax"),
    (make_attention(masking="product"), "mask_nan", "0 * -inf is NaN"),
    (make_attention(masking="additive"), "fully_masked_additive", "changes nothing"),
    (make_attention(masking="bool_minus"), "raised", "`~mask`"),
    (make_attention(masking="plain_softmax"), "fully_masked_nan", "zeros"),
    (make_attention(masking="minus_1e9"), "fully_masked_uniform", "-1e9"),
    (make_attention(ret="swapped"), "swapped_returns", "return the output first"),
    (make_attention(ret="scores"), "weights_are_scores", "scores before the softmax"),
    (lambda q, k, v, mask=None: my_attention(q, k, v, mask)[1], "wrong_shape", "weights @ v"),
    (lambda q, k, v, mask=None: [my_attention(q, k, v, mask)[0]], "returned_list", "list"),
    (lambda q, k, v, mask=None: np.zeros((*q.shape[:-1], v.shape[-1])), "mismatch", "expected"),
    (lambda q, k, v, mask=None: v[..., : q.shape[-2], :], "mismatch", "expected"),
    (lambda q, k, v: my_attention(q, k, v), "no_mask_argument", "masked=False"),
]

# ------------------------------------------------------------------ multi-head attention


def my_mha(x, W_Q, W_K, W_V, W_O, b_Q, b_K, b_V, b_O, n_heads, mask=None):
    B, S, D = x.shape
    Dh = D // n_heads

    def heads(t):
        return t.reshape(B, S, n_heads, Dh).transpose(0, 2, 1, 3)

    q, k, v = heads(x @ W_Q + b_Q), heads(x @ W_K + b_K), heads(x @ W_V + b_V)
    z, weights = my_attention(q, k, v, mask)
    return z.transpose(0, 2, 1, 3).reshape(B, S, D) @ W_O + b_O, weights


def ours_mha(x, W_Q, W_K, W_V, W_O, b_Q, b_K, b_V, b_O, n_heads, mask=None):
    q = split_heads(linear(x, W_Q, b_Q), n_heads)
    k = split_heads(linear(x, W_K, b_K), n_heads)
    v = split_heads(linear(x, W_V, b_V), n_heads)
    z, weights, scores = scaled_dot_product_attention(q, k, v, mask)
    return linear(merge_heads(z), W_O, b_O), weights, scores


def make_mha(split="ok", merge="ok", scale="d_head", wT=False, W_O_used=True, bias=True, **kw):
    def mha(x, W_Q, W_K, W_V, W_O, b_Q, b_K, b_V, b_O, n_heads, mask=None):
        H = 1 if kw.get("one_head") else n_heads
        B, S, D = x.shape
        Dh = D // H

        def proj(W, b):
            return x @ (W.T if wT else W) + (b if bias else 0)

        def heads(t):
            if split == "strided":
                return t.reshape(B, S, Dh, H).transpose(0, 3, 1, 2)
            if split == "no_transpose":
                return t.reshape(B, H, S, Dh)
            if split == "not_moved":
                return t.reshape(B, S, H, Dh)
            return t.reshape(B, S, H, Dh).transpose(0, 2, 1, 3)

        q, k, v = heads(proj(W_Q, b_Q)), heads(proj(W_K, b_K)), heads(proj(W_V, b_V))
        d = {"d_head": Dh, "d_model": D, "none": 1.0}[scale]
        scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(d)
        if mask is not None and not kw.get("ignore_mask"):
            allowed = ~mask if kw.get("invert") else mask
            scores = np.where(allowed, scores, -np.inf)
        z = my_safe_softmax(scores) @ v
        if kw.get("return_heads"):
            return z
        if split == "strided":
            concat = z.transpose(0, 2, 3, 1).reshape(B, S, D)
        elif split in ("no_transpose", "not_moved") or merge == "no_transpose":
            concat = z.reshape(B, S, D)
        else:
            concat = z.transpose(0, 2, 1, 3).reshape(B, S, D)
        if not W_O_used:
            return concat
        return concat @ (W_O.T if wT else W_O) + (b_O if bias else 0)

    return mha


MHA_MISTAKES = [
    (make_mha(split="strided"), "heads_strided", "(B, S, d_head, H)"),
    (make_mha(split="no_transpose"), "heads_no_transpose", "straight to (B, H, S, d_head)"),
    (make_mha(split="not_moved"), "heads_not_moved", "across heads"),
    (make_mha(merge="no_transpose"), "merge_no_transpose", "merged wrongly"),
    (make_mha(scale="d_model"), "scale_by_sqrt_d_model", "1/sqrt(d_model)"),
    (make_mha(scale="none"), "no_scaling", "did not scale"),
    (make_mha(one_head=True), "ignores_n_heads", "single-head"),
    (make_mha(wT=True), "weights_transposed", "x @ W.T"),
    (make_mha(W_O_used=False), "no_output_projection", "W_O"),
    (make_mha(bias=False), "no_biases", "biases"),
    (make_mha(return_heads=True), "wrong_shape", "merge the heads"),
    (make_mha(ignore_mask=True), "mask_ignored", "not used"),
    (make_mha(invert=True), "mask_inverted", "forbids"),
    (lambda x, *args, **kwargs: x, "mismatch", "expected"),
    (lambda x, *args, **kwargs: np.zeros_like(x), "mismatch", "expected"),
]

# --------------------------------------------------------------------------- encoder block


def encoder_block_via_encoder(x, params, n_heads, mask=None, norm="post", activation="relu"):
    """Our Encoder, one block, its embedding table set so that the embeddings are exactly x."""
    B, S, D = x.shape
    d_ff = params["ffn.W_1"].shape[1]
    config = EncoderConfig(
        vocab_size=B * S,
        d_model=D,
        n_heads=n_heads,
        n_layers=1,
        d_ff=d_ff,
        max_len=S,
        positional="none",
        norm=norm,
        activation=activation,
        dtype=str(x.dtype),
    )
    full = {"embed.W_E": x.reshape(B * S, D), **{f"blocks.0.{k}": v for k, v in params.items()}}
    if norm == "pre":  # the block's output, before the encoder's final LayerNorm
        full.update({"final_ln.gamma": np.ones(D), "final_ln.beta": np.zeros(D)})
    model = Encoder(config, params=full)
    pad = None if mask is None else mask[:, 0, 0, :]
    _, trace = model.run_with_trace(np.arange(B * S).reshape(B, S), pad, keep="blocks.0.out")
    return trace["blocks.0.out"]


def my_block(x, params, n_heads, mask=None, pre_norm=False, act="relu", **bugs):
    p = params
    attn = [p[f"attn.{n}"] for n in ("W_Q", "W_K", "W_V", "W_O", "b_Q", "b_K", "b_V", "b_O")]

    def ln(name, t):
        return my_layer_norm(t, p[f"{name}.gamma"], p[f"{name}.beta"], 1e-5)

    def ffn(t):
        pre = t @ p["ffn.W_1"] + p["ffn.b_1"]
        act_fn = {"relu": lambda a: np.maximum(a, 0), "gelu": gelu, "none": lambda a: a}[act]
        return act_fn(pre) @ p["ffn.W_2"] + p["ffn.b_2"]

    def mha(t):
        return my_mha(t, *attn, n_heads, None if bugs.get("ignore_mask") else mask)[0]

    ln2 = "ln1" if bugs.get("same_norm") else "ln2"
    if pre_norm:
        h = x + mha(ln("ln1", x))
        return h + ffn(ln(ln2, h))
    a = mha(x)
    if bugs.get("sublayer_norm"):
        h = x + ln("ln1", a)
        return h + ln(ln2, ffn(h))
    h = ln("ln1", a if bugs.get("no_attn_residual") else x + a)
    f = ffn(h)
    skip = x if bugs.get("ffn_from_x") else h
    return ln(ln2, f if bugs.get("no_ffn_residual") else skip + f)


def make_block(**bugs):
    return lambda x, params, n_heads, mask=None: my_block(x, params, n_heads, mask, **bugs)


def block_changing_params(x, params, n_heads, mask=None):
    params["ln1.gamma"] *= 2.0
    return my_block(x, params, n_heads, mask)


def block_with_prefixed_names(x, params, n_heads, mask=None):
    return x @ params["blocks.0.attn.W_Q"]


BLOCK_MISTAKES = [
    (make_block(pre_norm=True), "block_pre_norm", "pre-norm block"),
    (make_block(no_attn_residual=True), "block_no_attention_residual", "residual"),
    (make_block(no_ffn_residual=True), "block_no_ffn_residual", "residual"),
    (make_block(ffn_from_x=True), "block_ffn_residual_from_input", "adds h"),
    (make_block(sublayer_norm=True), "block_norm_sublayer_only", "normalises the sum"),
    (make_block(same_norm=True), "block_same_norm", "ln2.gamma"),
    (make_block(act="none"), "block_no_activation", "no activation"),
    (make_block(act="gelu"), "block_wrong_activation", "uses gelu"),
    (make_block(ignore_mask=True), "mask_ignored", "not used"),
    (block_with_prefixed_names, "raised", "without the 'blocks.{l}.' prefix"),
    (block_changing_params, "mutated_input", "changed its input `params` (a key or an array"),
    (lambda x, params, n_heads, mask=None: x, "mismatch", "expected"),
    (lambda x, params, n_heads, mask=None: np.zeros_like(x), "mismatch", "expected"),
    (lambda x, params, n_heads, mask=None: my_layer_norm(x, 1, 0), "mismatch", "expected"),
]

# ----------------------------------------------------------------------------- the tests

CHECKS: dict[str, Callable[..., bool]] = {
    "softmax": check_softmax,
    "layer_norm": check_layer_norm,
    "positional": check_positional_encoding,
    "sdpa": check_scaled_dot_product_attention,
    "mha": check_multi_head_attention,
    "block": check_encoder_block,
}
MISTAKES = [
    (check, fn, mistake, phrase)
    for check, cases in [
        ("softmax", SOFTMAX_MISTAKES),
        ("layer_norm", LAYER_NORM_MISTAKES),
        ("positional", POSITIONAL_MISTAKES),
        ("sdpa", SDPA_MISTAKES),
        ("mha", MHA_MISTAKES),
        ("block", BLOCK_MISTAKES),
    ]
    for fn, mistake, phrase in cases
]


@pytest.mark.parametrize(
    ("check", "fn", "mistake", "phrase"),
    MISTAKES,
    ids=[f"{check}-{i}-{mistake}" for i, (check, _, mistake, _) in enumerate(MISTAKES)],
)
def test_each_mistake_is_named(check: str, fn: Callable[..., Any], mistake: str, phrase: str):
    with pytest.raises(CheckFailed) as failure:
        CHECKS[check](fn)
    message = str(failure.value)
    assert failure.value.mistake == mistake, message
    assert phrase in message, message
    assert isinstance(failure.value, AssertionError)


RIGHT = [
    ("softmax", softmax),
    ("softmax", my_softmax),
    ("softmax", lambda x, axis=-1: my_softmax(x, axis).astype(np.float32)),
    ("layer_norm", layer_norm),
    ("layer_norm", my_layer_norm),
    ("positional", sinusoidal_positional_encoding),  # float32 by default
    ("positional", my_positional_encoding),
    ("sdpa", scaled_dot_product_attention),  # returns (out, weights, scores)
    ("sdpa", my_attention),
    ("sdpa", lambda q, k, v, mask=None: my_attention(q, k, v, mask)[0]),  # output only
    ("mha", ours_mha),
    ("mha", my_mha),
    ("mha", lambda *args, **kwargs: my_mha(*args, **kwargs)[0]),
    ("block", encoder_block_via_encoder),
    ("block", make_block()),
]


@pytest.mark.parametrize(("check", "fn"), RIGHT)
def test_right_implementations_pass(check: str, fn: Callable[..., Any], capsys):
    assert CHECKS[check](fn) is True
    assert "✓" in capsys.readouterr().out


def unscaled_attention_without_mask(q, k, v):
    weights = my_softmax(q @ np.swapaxes(k, -1, -2))
    return weights @ v, weights


def test_attention_check_without_masks(capsys):
    """masked=False: a mask-less function passes, and is still checked for the scaling."""

    def attention(q, k, v):  # takes no mask at all, as in notebook 02
        return my_attention(q, k, v)

    assert check_scaled_dot_product_attention(attention, masked=False) is True
    assert capsys.readouterr().out == "✓ scaled_dot_product_attention: all 3 checks passed\n"
    with pytest.raises(CheckFailed) as failure:
        check_scaled_dot_product_attention(unscaled_attention_without_mask, masked=False)
    assert failure.value.mistake == "no_scaling"
    assert "did not scale the scores" in str(failure.value)
    with pytest.raises(CheckFailed) as failure:  # the masked cases need a mask argument
        check_scaled_dot_product_attention(attention)
    assert failure.value.mistake == "no_mask_argument"
    assert "check_scaled_dot_product_attention(scaled_dot_product_attention, masked=False)" in (
        str(failure.value)
    )


def not_written_yet(*args, **kwargs):
    raise NotImplementedError("your code here")  # the exercise stub of the notebooks


@pytest.mark.parametrize("check", CHECKS)
def test_an_unwritten_exercise_is_reported_as_such(check: str):
    with pytest.raises(CheckFailed) as failure:
        CHECKS[check](not_written_yet)
    message = str(failure.value)
    assert failure.value.mistake == "not_implemented", message
    assert message.endswith(
        "`not_written_yet` is not written yet: replace the `raise NotImplementedError` line "
        "with your code, then run the check again."
    ), message
    assert message.splitlines()[0].endswith(":") and "check failed on case 1" in message
    assert len(message.splitlines()) == 2  # the header and that sentence: no misleading hint


def test_an_unwritten_earlier_exercise_is_named():
    def softmax(x, axis=-1):
        raise NotImplementedError("your code here")

    def scaled_dot_product_attention(q, k, v):
        weights = softmax(q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1]))
        return weights @ v, weights

    with pytest.raises(CheckFailed) as failure:
        check_scaled_dot_product_attention(scaled_dot_product_attention, masked=False)
    assert failure.value.mistake == "not_implemented"
    assert "Your scaled_dot_product_attention calls `softmax`, which is not written yet" in (
        str(failure.value)
    )
    with pytest.raises(CheckFailed) as failure:  # a lambda is named by the check
        check_softmax(lambda x, axis=-1: softmax(x, axis))
    assert "\n`softmax` is not written yet" in str(failure.value)


def test_verbose_prints_every_case(capsys):
    check_softmax(softmax, verbose=True)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 6 and all("✓" in line for line in lines)
    assert lines[-1] == "✓ softmax: all 5 checks passed"


@pytest.mark.parametrize(("norm", "activation"), [("pre", "gelu"), ("post", "gelu_tanh")])
def test_block_options(norm: str, activation: str):
    def ours(x, params, n_heads, mask=None):
        return encoder_block_via_encoder(x, params, n_heads, mask, norm, activation)

    assert check_encoder_block(ours, norm=norm, activation=activation)
    with pytest.raises(CheckFailed) as failure:  # the default block is not this one
        check_encoder_block(ours)
    assert failure.value.mistake in ("mismatch", "block_wrong_activation")


def test_block_reference_matches_the_encoder():
    rng = np.random.default_rng(0)
    x, p = rng.normal(size=(2, 5, 12)), random_block_params(rng, 12, 20)
    mask = np.array([[True] * 5, [True] * 3 + [False] * 2])[:, None, None, :]
    for norm, activation in [("post", "relu"), ("pre", "gelu")]:
        expected = encoder_block_via_encoder(x, p, 3, mask, norm, activation)
        ours = block_steps(x, p, 3, mask, norm, activation, 1e-5)["out"]
        np.testing.assert_allclose(ours, expected, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(
            block_variant(x, p, 3, mask, norm, activation, 1e-5), expected, atol=1e-12
        )


def test_message_shows_expected_and_received_numbers():
    with pytest.raises(CheckFailed) as failure:
        check_softmax(softmax_axis0)
    message = str(failure.value)
    assert message.startswith("softmax check failed on case 1")
    assert "Example, output[" in message and "expected [" in message and "got [" in message
    expected_row = np.round(softmax(np.array([1.0, 2.0, 3.0, 0.5])), 3)
    assert f"{expected_row[0]:.3f}".rstrip("0") in message


def test_docstring_examples():
    import doctest

    import minitransformer.testing as testing
    import minitransformer.testing.softmax as softmax_module

    for module in (testing, softmax_module):
        result = doctest.testmod(module)
        assert result.failed == 0 and result.attempted >= 2


def test_passing_the_result_instead_of_the_function():
    with pytest.raises(TypeError, match=r"check_softmax\(softmax\)"):
        check_softmax(softmax(np.ones(3)))  # type: ignore[arg-type]


def test_bad_options_of_the_block_check():
    with pytest.raises(ValueError, match="norm"):
        check_encoder_block(make_block(), norm="middle")
    with pytest.raises(ValueError, match="activation"):
        check_encoder_block(make_block(), activation="tanh")
