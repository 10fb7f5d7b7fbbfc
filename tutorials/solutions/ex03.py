"""Answers for notebook 03: masking."""

import numpy as np


def masked_attention(q, k, v, mask=None):
    """Exercise 3.1: scaled dot-product attention that respects a mask.

    ``mask`` is a bool array broadcastable to (..., S_q, S_k): True where a query may attend
    to a key. Blocked scores become -inf before the softmax, so their weights are exactly 0.
    A query that may attend to no key gets weights and output of zeros (not NaN).
    """
    d_head = q.shape[-1]
    scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(d_head)  # (..., S_q, S_k)
    if mask is None:
        mask = np.ones(scores.shape, dtype=bool)
    mask = np.broadcast_to(mask, scores.shape)
    scores = np.where(mask, scores, -np.inf)
    # Stable softmax over the keys; a row with no allowed key has max -inf: use 0 instead.
    top = scores.max(axis=-1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    e = np.where(mask, np.exp(scores - top), 0.0)
    total = e.sum(axis=-1, keepdims=True)
    weights = e / np.where(total > 0, total, 1.0)  # a fully masked row stays all zeros
    out = weights @ v  # (..., S_q, d_v)
    return out, weights
