"""Learner code for the check catalogue: right answers, and wrong ones written as a student would.

Every wrong implementation here is an actual function with one classic mistake, written
independently of the variants the checks compute internally. ``tests/test_check_catalogue.py``
runs each through its check and asserts the message names the mistake.
"""

from __future__ import annotations

import math

import numpy as np

from minitransformer.attention import merge_heads, scaled_dot_product_attention, split_heads
from minitransformer.config import EncoderConfig
from minitransformer.encoder import Encoder
from minitransformer.functional import gelu, linear, softmax

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


def softmax_min(x, axis=-1):
    e = np.exp(x - x.min(axis=axis, keepdims=True))  # the row minimum: overflows on big spreads
    return e / e.sum(axis=axis, keepdims=True)


def softmax_mean(x, axis=-1):
    e = np.exp(x - x.mean(axis=axis, keepdims=True))
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
    (softmax_min, "softmax_min_subtraction", "minimum, not its maximum"),
    (
        lambda x, axis=-1: (
            np.exp(x - x.max(axis, keepdims=True)) / np.exp(x).sum(axis, keepdims=True)
        ),
        "softmax_shift_numerator_only",
        "both places",
    ),
    (softmax_mean, "softmax_mean_subtraction", "mean, not its maximum"),
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
                elif layout == "sin_only":  # a copy-paste slip: sin in both columns
                    pe[pos, j] = math.sin(angle)
                else:
                    use_sin = (j % 2 == 0) == (layout == "interleaved")
                    pe[pos, j] = math.sin(angle) if use_sin else math.cos(angle)
        return pe

    return pe_fn


def positional_forgotten_two(max_len, d_model):
    pe = np.zeros((max_len, d_model))
    pos = np.arange(max_len)[:, None]
    i = np.arange(d_model // 2)  # the pair index 0, 1, 2, ...
    angle = pos / 10000 ** (i / d_model)  # should be 2i / d_model
    pe[:, 0::2], pe[:, 1::2] = np.sin(angle), np.cos(angle)
    return pe


POSITIONAL_MISTAKES = [
    (positional_forgotten_two, "pe_exponent_halved", "2i/d_model"),
    (make_positional(layout="sin_only"), "pe_one_function", "hold a sine"),
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
        divisor = {"v": np.sqrt(v.shape[-1]), "seq": np.sqrt(k.shape[-2])}.get(scale, d)
        scores = product(q, k_T) / divisor
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


def masked_attention(q, k, v, mask=None):
    """Softmax first, then the masked weights zeroed and the rows renormalised."""
    weights = softmax(q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1]))
    if mask is not None:
        weights = weights * mask
        weights = weights / weights.sum(axis=-1, keepdims=True)  # 0 / 0 for a blocked query
    return weights @ v, weights


SDPA_MISTAKES = [
    (masked_attention, "fully_masked_nan", "masked_attention check failed"),
    (masked_attention, "fully_masked_nan", "zeroed after the softmax"),
    (make_attention(scale="none"), "no_scaling", "sqrt(d_head)"),
    (make_attention(scale="d"), "scale_by_d", "square root"),
    (make_attention(scale="v"), "scale_by_d_v", "width of v"),
    (make_attention(scale="seq"), "scale_by_seq_len", "number of keys"),
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


def mha_without(bias):
    """Multi-head attention that forgets one bias (``"b_Q"`` or ``"b_O"``)."""

    def mha(x, W_Q, W_K, W_V, W_O, b_Q, b_K, b_V, b_O, n_heads, mask=None):
        b_Q = 0.0 if bias == "b_Q" else b_Q
        b_O = 0.0 if bias == "b_O" else b_O
        return my_mha(x, W_Q, W_K, W_V, W_O, b_Q, b_K, b_V, b_O, n_heads, mask)

    return mha


MHA_MISTAKES = [
    (mha_without("b_Q"), "unused_parameter", "never uses `b_Q`"),
    (mha_without("b_O"), "unused_parameter", "concat @ W_O + b_O"),
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
    names = ("W_Q", "W_K", "W_V", "W_O", "b_Q", "b_K", "b_V", "b_O")
    attn = [0.0 if bugs.get(f"no_{n}") else p[f"attn.{n}"] for n in names]
    b_1 = 0.0 if bugs.get("no_b_1") else p["ffn.b_1"]
    b_2 = 0.0 if bugs.get("no_b_2") else p["ffn.b_2"]
    act_fn = {"relu": lambda a: np.maximum(a, 0), "gelu": gelu, "none": lambda a: a}[act]

    def ln(name, t):
        return my_layer_norm(t, p[f"{name}.gamma"], p[f"{name}.beta"], 1e-5)

    def ffn(t):
        if bugs.get("relu_after_w2"):
            return act_fn((t @ p["ffn.W_1"] + b_1) @ p["ffn.W_2"] + b_2)
        return act_fn(t @ p["ffn.W_1"] + b_1) @ p["ffn.W_2"] + b_2

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
    if bugs.get("ln_x_plus_mha"):
        h = ln("ln1", x) + a
    elif bugs.get("x_twice"):
        h = ln("ln1", x + x + a)
    else:
        h = ln("ln1", a if bugs.get("no_attn_residual") else x + a)
    if bugs.get("residual_twice"):
        h = h + x
    f = ffn(x if bugs.get("ffn_on_x") else h)
    skip = x if bugs.get("ffn_from_x") else h
    summed = f if bugs.get("no_ffn_residual") else skip + f
    out = summed if bugs.get("no_ln2") else ln(ln2, summed)
    return out + h if bugs.get("residual_after_ln2") else out


def make_block(**bugs):
    return lambda x, params, n_heads, mask=None: my_block(x, params, n_heads, mask, **bugs)


def block_changing_params(x, params, n_heads, mask=None):
    params["ln1.gamma"] *= 2.0
    return my_block(x, params, n_heads, mask)


def block_with_prefixed_names(x, params, n_heads, mask=None):
    return x @ params["blocks.0.attn.W_Q"]


BLOCK_MISTAKES = [
    (make_block(no_b_1=True), "unused_parameter", "never uses `ffn.b_1`"),
    (make_block(no_b_2=True), "unused_parameter", "both biases count"),
    (make_block(no_ln2=True), "unused_parameter", "second add & norm"),
    (make_block(no_b_Q=True), "unused_parameter", "never uses `attn.b_Q`"),
    (make_block(ffn_on_x=True), "wrong_step", "feed-forward layer's input"),
    (make_block(ffn_on_x=True), "wrong_step", "x, the block's input"),
    (make_block(relu_after_w2=True), "wrong_step", "apply the activation before W_2"),
    (make_block(residual_twice=True), "wrong_step", "a residual added twice"),
    (make_block(x_twice=True), "wrong_step", "x is added twice"),
    (make_block(ln_x_plus_mha=True), "wrong_step", "not LN1(x) + MHA(x)"),
    (make_block(residual_after_ln2=True), "wrong_step", "a residual added after the last step"),
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


# ---------------------------------------------------------------- softmax's Jacobian (09)


def softmax_jacobian(p):
    return np.diag(p) - np.outer(p, p)


JACOBIAN_MISTAKES = [
    (lambda p: np.diag(p), "jacobian_no_outer", "diag(p) alone"),
    (lambda p: -np.outer(p, p), "jacobian_no_diagonal", "diagonal term"),
    (lambda p: np.diag(p * (1 - p)), "jacobian_diagonal_only", "off-diagonal"),
    (lambda p: np.diag(p) - p @ p, "jacobian_inner_product", "np.outer(p, p)"),
    (lambda p: np.diag(p) - p * p, "jacobian_elementwise_square", "broadcasts"),
    (lambda p: np.outer(p, p) - np.diag(p), "jacobian_sign", "wrong sign"),
    (lambda p: p * (1 - p), "wrong_shape", "only its diagonal"),
]

# ------------------------------------------------------------- target and pattern score (06)


def mirror_target(L):
    T = np.zeros((L, L))
    for i in range(L):
        T[i, L - 1 - i] = 1
    return T


def pattern_score(A, T):
    rows = T.sum(axis=1) > 0
    return (A * T).sum(axis=1)[rows].mean()


MIRROR_MISTAKES = [
    (lambda L: np.flip(np.eye(L)), "mirror_identity", "flips both axes"),
    (lambda L: np.roll(np.eye(L)[::-1], 1, axis=1), "mirror_shifted", "one key off"),
    (lambda L: np.eye(L)[::-1].tolist(), "returned_list", "list"),
    (lambda L: L - 1 - np.arange(L), "wrong_shape", "not the list of keys"),
    (lambda L: np.ones((L, L)), "mismatch", "expected"),
]

PATTERN_MISTAKES = [
    (lambda A, T: (A * T).sum(axis=1).mean(), "pattern_all_rows", "no 1 in their row"),
    (lambda A, T: (A * T).sum() / T.sum(), "pattern_mean_of_marked_entries", "counts twice"),
    (
        lambda A, T: (A * T).sum(axis=0)[T.sum(axis=0) > 0].mean(),
        "pattern_column_sums",
        "over the keys",
    ),
    (
        lambda A, T: ((A * T).sum(1) / np.maximum(T.sum(1), 1))[T.sum(1) > 0].mean(),
        "pattern_mean_not_sum",
        "0.5 / 0.5",
    ),
    (
        lambda A, T: np.where(T > 0, A, 0).max(axis=1)[T.sum(1) > 0].mean(),
        "pattern_max_not_sum",
        "largest weight",
    ),
    (lambda A, T: (A * T).sum(), "pattern_total", "total attention"),
    (lambda A, T: (A * T).sum(axis=1), "wrong_shape", "one number"),
]

# ----------------------------------------------------------- offset score, same token (07)


def offset_score(weights, k):
    S = weights.shape[-1]
    queries = np.arange(max(0, -k), min(S, S - k))
    return weights[..., queries, queries + k].mean(axis=-1)


def same_token_mask(ids):
    return (ids[:, None] == ids[None, :]) & ~np.eye(len(ids), dtype=bool)


OFFSET_MISTAKES = [
    (lambda w, k: np.diagonal(w, offset=-k, axis1=-2, axis2=-1).mean(-1), "offset_sign", "i - k"),
    (
        lambda w, k: np.diagonal(w, offset=k, axis1=-2, axis2=-1).sum(-1) / w.shape[-1],
        "offset_divided_by_all_queries",
        "have a key",
    ),
    (
        lambda w, k: np.mean(
            [w[..., i, (i + k) % w.shape[-1]] for i in range(w.shape[-1])], axis=0
        ),
        "offset_wraps_around",
        "wrap around",
    ),
    (
        lambda w, k: np.diagonal(w, offset=k, axis1=-2, axis2=-1),
        "wrong_shape",
        "average over the queries",
    ),
]

SAME_TOKEN_MISTAKES = [
    (lambda ids: ids[:, None] == ids[None, :], "same_token_diagonal", "~np.eye"),
    (lambda ids: np.tril(same_token_mask(ids)), "same_token_earlier_only", "earlier copies"),
    (lambda ids: np.triu(same_token_mask(ids)), "same_token_later_only", "later copies"),
    (lambda ids: same_token_mask(ids).astype(int), "wrong_dtype", "bool array"),
]

# ------------------------------------------------------------------- interpretability (08)


def rollout_two_layers(A1, A2):
    S = A1.shape[-1]
    A1_hat = 0.5 * A1.mean(axis=0) + 0.5 * np.eye(S)
    A2_hat = 0.5 * A2.mean(axis=0) + 0.5 * np.eye(S)
    return A2_hat @ A1_hat


def rollout_with(order="right", identity=True, heads="mean"):
    def rollout(A1, A2):
        S = A1.shape[-1]
        I = np.eye(S) if identity else 0.0
        avg = {"mean": lambda A: A.mean(axis=0), "sum": lambda A: A.sum(axis=0)}[heads]
        half = 0.5 if identity else 1.0
        A1_hat, A2_hat = half * avg(A1) + half * I, half * avg(A2) + half * I
        return A1_hat @ A2_hat if order == "reversed" else A2_hat @ A1_hat

    return rollout


ROLLOUT_MISTAKES = [
    (rollout_with(order="reversed"), "rollout_order", "Â2 @ Â1"),
    (rollout_with(identity=False), "rollout_no_residual", "residual term"),
    (
        lambda A1, A2: (A2.mean(0) + np.eye(len(A2[0]))) @ (A1.mean(0) + np.eye(len(A1[0]))),
        "rollout_unnormalised_identity",
        "rows sum to 4",
    ),
    (rollout_with(heads="sum"), "rollout_heads_summed", "summed the heads"),
    (
        lambda A1, A2: np.mean(
            [rollout_two_layers(a1[None], a2[None]) for a1, a2 in zip(A1, A2, strict=True)], 0
        ),
        "rollout_per_head",
        "each head on its own",
    ),
    (
        lambda A1, A2: (
            (0.5 * A2.mean(0) + 0.5 * np.eye(A2.shape[-1]))
            * (0.5 * A1.mean(0) + 0.5 * np.eye(A1.shape[-1]))
        ),
        "rollout_elementwise",
        "entry by entry",
    ),
    (
        lambda A1, A2: 0.5 * A2.mean(0) + 0.5 * np.eye(A2.shape[-1]),
        "rollout_last_layer_only",
        "second layer alone",
    ),
]


def head_drop(model, token_ids, metric, kept_alone=False, every_layer=False, sign=1):
    cfg = model.config
    full = metric(model(token_ids))
    drop = np.zeros((cfg.n_layers, cfg.n_heads))
    for l in range(cfg.n_layers):
        for h in range(cfg.n_heads):
            head_mask = np.zeros((cfg.n_layers, cfg.n_heads)) if kept_alone else np.ones_like(drop)
            layers = range(cfg.n_layers) if every_layer else [l]
            for layer in layers:
                head_mask[layer, h] = 1.0 if kept_alone else 0.0
            drop[l, h] = sign * (full - metric(model(token_ids, head_mask=head_mask)))
    return drop


HEAD_DROP_MISTAKES = [
    (lambda m, t, f: head_drop(m, t, f, sign=-1), "head_drop_sign", "wrong sign"),
    (lambda m, t, f: head_drop(m, t, f, kept_alone=True), "head_drop_head_kept_alone", "alone"),
    (
        lambda m, t, f: head_drop(m, t, f, every_layer=True),
        "head_drop_every_layer",
        "in every layer",
    ),
    (
        lambda m, t, f: f(m(t)) - head_drop(m, t, f),
        "head_drop_no_difference",
        "metric without the head",
    ),
    (lambda m, t, f: head_drop(m, t, f).T, "wrong_shape", "Layers and heads are swapped"),
]


def completeness_gap(model, token_ids, objective, baseline_ids, scores, mistake=""):
    F_x = objective(model(token_ids))[0][0]
    F_b = objective(model(baseline_ids))[0][0]
    gap = np.sum(scores) - (F_x - F_b)
    return {
        "": gap,
        "sign": -gap,
        "no_baseline": np.sum(scores) - F_x,
        "abs": abs(gap),
        "relative": gap / (F_x - F_b),
        "mean": np.mean(scores) - (F_x - F_b),
        "values": objective(model(token_ids))[0] - F_b,
    }[mistake]


def gap_with(mistake):
    return lambda m, t, f, b, s: completeness_gap(m, t, f, b, s, mistake)


COMPLETENESS_MISTAKES = [
    (gap_with("sign"), "gap_sign", "wrong sign"),
    (gap_with("no_baseline"), "gap_no_baseline", "F(x) alone"),
    (gap_with("abs"), "gap_sign", "absolute value"),
    (gap_with("relative"), "gap_relative", "divided the gap"),
    (gap_with("mean"), "gap_mean_of_scores", "averaged the scores"),
    (gap_with("values"), "wrong_shape", "one number"),
]

# ------------------------------------------------------------------------ debugging (10)


def attention_on_padding(weights, mask):
    on_padding = (weights * ~mask[:, None, None, :]).sum(axis=-1)  # (B, H, S)
    return on_padding[np.broadcast_to(mask[:, None, :], on_padding.shape)].mean()


def padding_with(mistake):
    def measure(weights, mask):
        pad = ~mask[:, None, None, :]
        real = np.broadcast_to(mask[:, None, :], weights.shape[:-1])
        if mistake == "mean":  # the mean over the padding keys instead of their sum
            n_padding = np.maximum((~mask).sum(axis=-1), 1)[:, None, None]  # (B, 1, 1)
            return ((weights * pad).sum(-1) / n_padding)[real].mean()
        if mistake == "all_queries":
            return (weights * pad).sum(-1).mean()
        if mistake == "per_sequence":
            per_sequence = [
                (weights[b] * pad[b]).sum(-1)[:, mask[b]].mean() for b in range(len(mask))
            ]
            return np.mean(per_sequence)
        if mistake == "real_keys":
            return (weights * mask[:, None, None, :]).sum(-1)[real].mean()
        if mistake == "total":
            return (weights * pad).sum(-1)[real].sum()
        return (weights * pad).mean()

    return measure


PADDING_MISTAKES = [
    (padding_with("mean"), "padding_mean_not_sum", "instead of summing"),
    (padding_with("all_queries"), "padding_all_queries", "padding queries too"),
    (padding_with("per_sequence"), "padding_mean_of_sequences", "each sequence first"),
    (padding_with("real_keys"), "padding_real_keys", "`~mask`"),
    (padding_with("total"), "padding_total", "returned a total"),
    (padding_with("mean_everything"), "padding_mean_over_keys_axis", "sum over the keys first"),
    (lambda w, m: (w * ~m[:, None, None, :]).sum(-1), "wrong_shape", "one number"),
]


def best_step(history):
    return history.val_steps[int(np.argmin(history.val_loss))]


BEST_STEP_MISTAKES = [
    (lambda h: int(np.argmin(h.val_loss)), "best_step_index", "position of the lowest loss"),
    (
        lambda h: h.val_steps[len(h.val_loss) - 1 - int(np.argmin(h.val_loss[::-1]))],
        "best_step_last_tie",
        "keeps the first",
    ),
    (lambda h: h.val_steps[int(np.argmax(h.val_loss))], "best_step_highest", "np.argmax"),
    (lambda h: h.steps[int(np.argmin(h.train_loss))], "best_step_training_loss", "val_loss"),
    (lambda h: min(h.val_loss), "best_step_loss_value", "lowest loss itself"),
    (lambda h: h.best_step, "best_step_attribute", "which `train` fills in"),
]

# ------------------------------------------------------------------------ callbacks (11)


def spikes_callback(compare="above", record="step", source="grad_norm", skip_zero=True, lag=0):
    """A GradientSpikes callback class with one of the classic slips."""

    class GradientSpikes:
        def __init__(self, threshold):
            self.threshold = threshold
            self.steps = []

        def on_step(self, step, model, classifier, history):
            if skip_zero and step == 0:
                return
            values = getattr(history, source)
            if lag and len(values) <= lag:
                return
            value = values[-1 - lag]  # at step 0 without the guard: IndexError
            hit = value > self.threshold if compare == "above" else value >= self.threshold
            if hit:
                self.steps.append(step if record == "step" else value)

    return GradientSpikes


SPIKES_MISTAKES = [
    (spikes_callback(compare="at_least"), "spikes_at_threshold", "not `>=`"),
    (spikes_callback(record="norm"), "spikes_norms", "self.steps.append(step)"),
    (spikes_callback(source="train_loss"), "spikes_loss", "history.train_loss"),
    (spikes_callback(lag=1), "spikes_previous_step", "grad_norm[-1]"),
    (spikes_callback(skip_zero=False), "raised", "Skip step 0"),
]
