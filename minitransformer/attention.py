"""Scaled dot-product attention, its masks, and the reshapes that make it multi-head.

Vaswani et al. 2017, "Attention Is All You Need", section 3.2:

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d_head)) V

Shapes: B = batch, H = heads, S = sequence length, D = d_model, Dh = d_head = D / H.
Masks follow the Hugging Face and ``torch.nn.functional.scaled_dot_product_attention``
convention: **True (or 1) means "may attend"**.
"""

from __future__ import annotations

import math

import numpy as np

from minitransformer.functional import masked_softmax

# --------------------------------------------------------------------------- the heads


def split_heads(x: np.ndarray, n_heads: int) -> np.ndarray:
    """Cut the model dimension into heads: head h owns columns ``h*Dh : (h+1)*Dh``.

    Parameters
    ----------
    x : ndarray of shape (B, S, D)
    n_heads : int
        H; must divide D.

    Returns
    -------
    ndarray of shape (B, H, S, Dh) — a view, no copy.
    """
    B, S, D = x.shape
    if D % n_heads != 0:
        raise ValueError(f"split_heads: d_model={D} is not divisible by n_heads={n_heads}")
    return x.reshape(B, S, n_heads, D // n_heads).transpose(0, 2, 1, 3)  # (B, H, S, Dh)


def merge_heads(x: np.ndarray) -> np.ndarray:
    """Concatenate the heads back side by side: the inverse of :func:`split_heads`.

    Parameters
    ----------
    x : ndarray of shape (B, H, S, Dh)

    Returns
    -------
    ndarray of shape (B, S, H * Dh), head h in columns ``h*Dh : (h+1)*Dh``.
    """
    B, H, S, Dh = x.shape
    return x.transpose(0, 2, 1, 3).reshape(B, S, H * Dh)  # (B, S, H, Dh) -> (B, S, D)


# ---------------------------------------------------------------------------- the masks


def padding_mask(attention_mask: np.ndarray) -> np.ndarray:
    """Turn a per-token padding mask into an attention mask over keys.

    Parameters
    ----------
    attention_mask : ndarray of shape (B, S), bool or 0/1
        1 / True for real tokens, 0 / False for padding (the Hugging Face convention).

    Returns
    -------
    bool ndarray of shape (B, 1, 1, S): broadcasts over heads and queries, so every query
    may attend to every real key and to no padding key.
    """
    return np.asarray(attention_mask, dtype=bool)[:, None, None, :]


def causal_mask(seq_len: int) -> np.ndarray:
    """The mask that lets query i see only keys j <= i (decoders, GPT).

    Returns
    -------
    bool ndarray of shape (S, S): lower triangular, True on and below the diagonal.
    """
    return np.tril(np.ones((seq_len, seq_len), dtype=bool))


# ----------------------------------------------------------------------- the attention


def attention_scores(q: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Scaled dot products of every query with every key: ``q @ k^T / sqrt(Dh)``.

    Dividing by ``sqrt(Dh)`` keeps the scores' variance near 1 when q and k have unit-variance
    entries, so the softmax does not saturate as heads get wider (Vaswani et al., footnote 4).

    Parameters
    ----------
    q : ndarray of shape (..., S_q, Dh)
    k : ndarray of shape (..., S_k, Dh)

    Returns
    -------
    ndarray of shape (..., S_q, S_k)
    """
    # Scaling q first is the same product, and touches (S_q, Dh) numbers instead of (S_q, S_k).
    return (q * (1.0 / math.sqrt(q.shape[-1]))) @ k.swapaxes(-1, -2)


def scaled_dot_product_attention(
    q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``softmax(q k^T / sqrt(Dh), masked) @ v`` — and the pattern, not just the result.

    Parameters
    ----------
    q : ndarray of shape (..., S_q, Dh)
        Queries, e.g. (B, H, S, Dh).
    k : ndarray of shape (..., S_k, Dh)
        Keys.
    v : ndarray of shape (..., S_k, Dv)
        Values.
    mask : bool ndarray broadcastable to (..., S_q, S_k), or None
        True where a query may attend to a key. A query with no allowed key gets a zero
        output row (PyTorch SDPA does the same; ``nn.MultiheadAttention`` gives NaN).

    Returns
    -------
    out : ndarray of shape (..., S_q, Dv)
        ``weights @ v``: each query's weighted average of the value rows.
    weights : ndarray of shape (..., S_q, S_k)
        The attention pattern; each row sums to 1 (0 if fully masked).
    scores : ndarray of shape (..., S_q, S_k)
        ``q k^T / sqrt(Dh)`` before masking (finite numbers).
    """
    scores = attention_scores(q, k)  # (..., S_q, S_k)
    weights = masked_softmax(scores, mask)  # (..., S_q, S_k)
    out = weights @ v  # (..., S_q, Dv)
    return out, weights, scores
