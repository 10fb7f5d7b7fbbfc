"""Answers for notebook 05: add & norm, the feed-forward layer and the encoder block."""

import numpy as np

import minitransformer as mt  # multi-head attention from the library's pieces (exercise 4.1)


def layer_norm(x, gamma, beta, eps=1e-5):
    """Exercise 5.1: normalise each token vector (the last axis), then scale and shift.

    Biased variance (divide by D, like ``np.var``), ``eps`` inside the square root.
    """
    mean = x.mean(axis=-1, keepdims=True)  # (..., 1)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)  # (..., 1)
    normed = (x - mean) / np.sqrt(var + eps)
    return gamma * normed + beta


def multi_head_attention(x, W_Q, W_K, W_V, W_O, b_Q, b_K, b_V, b_O, n_heads, mask=None):
    """Exercise 4.1, from the library's pieces: returns out (B, S, D) and weights (B, H, S, S)."""
    q = mt.split_heads(mt.linear(x, W_Q, b_Q), n_heads)  # (B, H, S, d_head)
    k = mt.split_heads(mt.linear(x, W_K, b_K), n_heads)
    v = mt.split_heads(mt.linear(x, W_V, b_V), n_heads)
    z, weights, _ = mt.scaled_dot_product_attention(q, k, v, mask)
    return mt.linear(mt.merge_heads(z), W_O, b_O), weights


def feed_forward(h, W_1, b_1, W_2, b_2):
    """The position-wise feed-forward layer: ``relu(h W_1 + b_1) W_2 + b_2``."""
    return np.maximum(0.0, h @ W_1 + b_1) @ W_2 + b_2


def encoder_block(x, params, n_heads, mask=None):
    """Exercise 5.2: one post-norm encoder block (Vaswani et al. 2017, BERT).

    h = LN1(x + MHA(x)),  out = LN2(h + FFN(h))
    """
    p = params
    attn_out, _ = multi_head_attention(
        x,
        p["attn.W_Q"], p["attn.W_K"], p["attn.W_V"], p["attn.W_O"],
        p["attn.b_Q"], p["attn.b_K"], p["attn.b_V"], p["attn.b_O"],
        n_heads,
        mask=mask,
    )  # fmt: skip
    h = layer_norm(x + attn_out, p["ln1.gamma"], p["ln1.beta"])  # add & norm 1
    ffn_out = feed_forward(h, p["ffn.W_1"], p["ffn.b_1"], p["ffn.W_2"], p["ffn.b_2"])
    return layer_norm(h + ffn_out, p["ln2.gamma"], p["ln2.beta"])  # add & norm 2


# Exercise 5.3: the second residual of mystery_block adds resid_mid (x + MHA(x), before LN1)
# instead of h = LN1(x + MHA(x)). Everything before it matches the trace.
first_wrong = "resid_post"


def fixed_block(x, params, n_heads, mask=None, eps=1e-5):
    """Exercise 5.4: ``mystery_block`` with its second residual taken from h, not resid_mid."""
    p = params
    steps = {}
    q = mt.split_heads(mt.linear(x, p["attn.W_Q"], p["attn.b_Q"]), n_heads)
    k = mt.split_heads(mt.linear(x, p["attn.W_K"], p["attn.b_K"]), n_heads)
    v = mt.split_heads(mt.linear(x, p["attn.W_V"], p["attn.b_V"]), n_heads)
    z, _, _ = mt.scaled_dot_product_attention(q, k, v, mask)
    steps["attn.out"] = mt.linear(mt.merge_heads(z), p["attn.W_O"], p["attn.b_O"])
    steps["resid_mid"] = x + steps["attn.out"]
    steps["ln1.out"] = mt.layer_norm(steps["resid_mid"], p["ln1.gamma"], p["ln1.beta"], eps)
    steps["ffn.pre"] = mt.linear(steps["ln1.out"], p["ffn.W_1"], p["ffn.b_1"])
    steps["ffn.act"] = mt.relu(steps["ffn.pre"])
    steps["ffn.out"] = mt.linear(steps["ffn.act"], p["ffn.W_2"], p["ffn.b_2"])
    steps["resid_post"] = steps["ln1.out"] + steps["ffn.out"]  # the fix: h + FFN(h)
    steps["ln2.out"] = mt.layer_norm(steps["resid_post"], p["ln2.gamma"], p["ln2.beta"], eps)
    steps["out"] = steps["ln2.out"]
    return steps["out"], steps
