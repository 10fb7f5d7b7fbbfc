"""Answers for notebook 02: scaled dot-product attention by hand."""

import numpy as np


def softmax(x, axis=-1):
    """Exercise 2.1: exponentiate and normalise along ``axis``, stably.

    Subtracting the largest value first changes nothing mathematically (it cancels in the
    fraction) but keeps ``np.exp`` from overflowing on large inputs.
    """
    shifted = x - x.max(axis=axis, keepdims=True)  # largest entry becomes 0
    e = np.exp(shifted)
    return e / e.sum(axis=axis, keepdims=True)


def scaled_dot_product_attention(q, k, v):
    """Exercise 2.2: ``softmax(q k^T / sqrt(d_head)) v``, no mask (masks come in notebook 03).

    q : (..., S_q, d_head), k : (..., S_k, d_head), v : (..., S_k, d_v)
    Returns out (..., S_q, d_v) and weights (..., S_q, S_k).
    """
    d_head = q.shape[-1]
    scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(d_head)  # (..., S_q, S_k)
    weights = softmax(scores, axis=-1)  # each query's row sums to 1 over the keys
    out = weights @ v  # (..., S_q, d_v): a weighted average of the value rows
    return out, weights
