"""Answers for notebook 05: add & norm, the feed-forward layer and the encoder block."""

import numpy as np

from solutions.ex04 import multi_head_attention


def layer_norm(x, gamma, beta, eps=1e-5):
    """Exercise 5.1: normalise each token vector (the last axis), then scale and shift.

    Biased variance (divide by D, like ``np.var``), ``eps`` inside the square root.
    """
    mean = x.mean(axis=-1, keepdims=True)  # (..., 1)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)  # (..., 1)
    normed = (x - mean) / np.sqrt(var + eps)
    return gamma * normed + beta


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
