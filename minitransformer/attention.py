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

from minitransformer.functional import (
    Record,
    dropout,
    dropout_backward,
    masked_softmax,
    masked_softmax_backward,
    record_nothing,
)

# --------------------------------------------------------------------------- the heads


def split_heads(x: np.ndarray, n_heads: int) -> np.ndarray:  # (B, S, D) -> (B, H, S, Dh)
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


def split_heads_backward(grad_out: np.ndarray) -> np.ndarray:  # (B, H, S, Dh) -> (B, S, D)
    """Gradient of :func:`split_heads`: the same numbers moved back, i.e. :func:`merge_heads`.

    A reshape only moves entries, so the gradient of each input entry is the gradient of the
    output entry it was moved to: undo the move.

    Parameters
    ----------
    grad_out : ndarray of shape (B, H, S, Dh)

    Returns
    -------
    ndarray of shape (B, S, H * Dh)
    """
    return merge_heads(grad_out)


def merge_heads(x: np.ndarray) -> np.ndarray:  # (B, H, S, Dh) -> (B, S, D)
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


def merge_heads_backward(
    grad_out: np.ndarray, n_heads: int
) -> np.ndarray:  # (B, S, D) -> (B, H, S, Dh)
    """Gradient of :func:`merge_heads`: move the numbers back, i.e. :func:`split_heads`.

    Parameters
    ----------
    grad_out : ndarray of shape (B, S, D)
    n_heads : int

    Returns
    -------
    ndarray of shape (B, H, S, Dh)
    """
    return split_heads(grad_out, n_heads)


# ---------------------------------------------------------------------------- the masks


def padding_mask(mask: np.ndarray) -> np.ndarray:  # (B, S) -> (B, 1, 1, S)
    """The attention mask that keeps every query from attending to padding.

    Two masks, two shapes: the padding mask says which tokens are real (one entry per token);
    the attention mask says which keys each query may attend to (one entry per query and key,
    here the same for every query and head, so it is stored with axes of size 1 that
    broadcast).

    Parameters
    ----------
    mask : ndarray of shape (B, S), bool or 0/1
        The padding mask: 1 / True for real tokens, 0 / False for padding (the tokenizer's
        ``attention_mask``, the Hugging Face convention).

    Returns
    -------
    bool ndarray of shape (B, 1, 1, S): broadcasts over heads and queries, so every query
    may attend to every real key and to no padding key.
    """
    return np.asarray(mask, dtype=bool)[:, None, None, :]


def causal_mask(seq_len: int) -> np.ndarray:  # S -> (S, S)
    """The attention mask that lets query i see only keys j <= i (decoders, GPT).

    Returns
    -------
    bool ndarray of shape (S, S): lower triangular, True on and below the diagonal.
    """
    return np.tril(np.ones((seq_len, seq_len), dtype=bool))


# ----------------------------------------------------------------------- the attention


def dot_products(
    q: np.ndarray, k: np.ndarray
) -> np.ndarray:  # (..., S_q, Dh), (..., S_k, Dh) -> (..., S_q, S_k)
    """Every query's dot product with every key: ``q @ k^T``.

    Parameters
    ----------
    q : ndarray of shape (..., S_q, Dh)
    k : ndarray of shape (..., S_k, Dh)

    Returns
    -------
    ndarray of shape (..., S_q, S_k): entry ``[i, j]`` is ``q_i . k_j``.
    """
    return q @ k.swapaxes(-1, -2)  # (..., S_q, Dh) @ (..., Dh, S_k)


def scale_dot_products(
    qk: np.ndarray, d_head: int, scale: bool = True
) -> np.ndarray:  # (..., S_q, S_k) -> (..., S_q, S_k)
    """The scores from the dot products: ``qk / sqrt(d_head)``, or ``qk`` itself unscaled.

    Dividing by ``sqrt(d_head)`` keeps the scores' variance near 1 when q and k have
    unit-variance entries, so the softmax does not saturate as heads get wider (Vaswani et al.,
    footnote 4).

    Parameters
    ----------
    qk : ndarray of shape (..., S_q, S_k)
        :func:`dot_products`.
    d_head : int
    scale : bool
        False: return ``qk`` unchanged (the same array), to see what the scaling is for.

    Returns
    -------
    ndarray of shape (..., S_q, S_k)
    """
    return qk * (1.0 / math.sqrt(d_head)) if scale else qk


def attention_scores(
    q: np.ndarray, k: np.ndarray, scale: bool = True
) -> np.ndarray:  # (..., S_q, Dh), (..., S_k, Dh) -> (..., S_q, S_k)
    """Scaled dot products of every query with every key: ``q @ k^T / sqrt(Dh)``.

    :func:`dot_products` then :func:`scale_dot_products` (the encoder records both steps).

    Parameters
    ----------
    q : ndarray of shape (..., S_q, Dh)
    k : ndarray of shape (..., S_k, Dh)
    scale : bool
        False: the raw dot products ``q @ k^T``, to see what the scaling is for.

    Returns
    -------
    ndarray of shape (..., S_q, S_k)
    """
    return scale_dot_products(dot_products(q, k), q.shape[-1], scale)


def attention_scores_backward(
    grad_scores: np.ndarray, q: np.ndarray, k: np.ndarray, scale: bool = True
) -> tuple[np.ndarray, np.ndarray]:  # dL/dscores, q, k -> dq, dk
    """Gradients of :func:`attention_scores`, ``scores = q k^T / sqrt(Dh)``.

    ``dL/dq = g @ k / sqrt(Dh)`` and ``dL/dk = g^T @ q / sqrt(Dh)``, with ``g = dL/dscores``:
    query i collects the keys weighted by the gradient of its row, key j the queries
    weighted by the gradient of its column.

    Parameters
    ----------
    grad_scores : ndarray of shape (..., S_q, S_k)
    q : ndarray of shape (..., S_q, Dh)
    k : ndarray of shape (..., S_k, Dh)
    scale : bool
        As in :func:`attention_scores` (False: no ``1 / sqrt(Dh)`` factor).

    Returns
    -------
    grad_q : ndarray of shape (..., S_q, Dh)
    grad_k : ndarray of shape (..., S_k, Dh)
    """
    factor = 1.0 / math.sqrt(q.shape[-1]) if scale else 1.0
    grad_q = (grad_scores @ k) * factor  # (..., S_q, S_k) @ (..., S_k, Dh)
    grad_k = (grad_scores.swapaxes(-1, -2) @ q) * factor  # (..., S_k, S_q) @ (..., S_q, Dh)
    return grad_q, grad_k


def scaled_dot_product_attention(
    q: np.ndarray,  # (..., S_q, Dh)
    k: np.ndarray,  # (..., S_k, Dh)
    v: np.ndarray,  # (..., S_k, Dv)
    mask: np.ndarray | None = None,  # broadcastable to (..., S_q, S_k)
    *,
    scale: bool = True,
    dropout_p: float = 0.0,
    rng: np.random.Generator | None = None,
    record: Record = record_nothing,
    name: str = "attn",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # -> (..., S_q, Dv), (..., S_q, S_k) x 2
    """``softmax(q k^T / sqrt(Dh), masked) @ v`` -- and the pattern, not just the result.

    The steps, each recorded under its trace name (``name`` = ``"blocks.0.attn"`` in the
    encoder)::

        qk      = q @ k^T                          {name}.qk       (..., S_q, S_k)
        scores  = qk / sqrt(Dh)                    {name}.scores
        weights = masked_softmax(scores, mask)     {name}.mask, {name}.weights
        out     = weights @ v                      (..., S_q, Dv)

    Parameters
    ----------
    q : ndarray of shape (..., S_q, Dh)
        Queries, e.g. (B, H, S, Dh).
    k : ndarray of shape (..., S_k, Dh)
        Keys.
    v : ndarray of shape (..., S_k, Dv)
        Values.
    mask : bool ndarray broadcastable to (..., S_q, S_k), or None
        The attention mask: True where a query may attend to a key. A query with no allowed
        key gets a zero output row (PyTorch SDPA does the same; ``nn.MultiheadAttention``
        gives NaN).
    scale : bool
        Divide by ``sqrt(Dh)`` (default); False: the scores are ``q k^T`` itself, to see what
        the scaling is for.
    dropout_p : float
        In training: the probability of dropping each weight before it multiplies ``v``
        (inverted dropout, :func:`~minitransformer.functional.dropout`; the mask is recorded
        as ``{name}.weights_dropout_mask``). 0 (default): no dropout.
    rng : numpy.random.Generator, optional
        Draws the dropout mask; needed when ``dropout_p > 0``.
    record : function (name, array) -> array, optional
        Called with each intermediate above under its trace name; the computation continues
        with what it returns (see :data:`~minitransformer.functional.Record`: the encoder keeps
        them in its trace, and replaces them for activation patching). Default: record nothing.
    name : str
        The prefix of the recorded names, and what the scores are called in an error.

    Returns
    -------
    out : ndarray of shape (..., S_q, Dv)
        ``weights @ v``: each query's weighted average of the value rows.
    weights : ndarray of shape (..., S_q, S_k)
        The attention pattern; each row sums to 1 (0 if fully masked).
    scores : ndarray of shape (..., S_q, S_k)
        ``q k^T / sqrt(Dh)`` before masking (finite numbers).
    """
    if dropout_p > 0 and rng is None:
        raise ValueError(f"dropout_p={dropout_p} needs rng, a numpy.random.Generator")
    qk = record(f"{name}.qk", dot_products(q, k))  # (..., S_q, S_k): every q_i . k_j
    scores = record(f"{name}.scores", scale_dot_products(qk, q.shape[-1], scale))
    if mask is not None:
        mask = record(f"{name}.mask", mask)
    weights = masked_softmax(scores, mask, name=f"{name}.scores")  # (..., S_q, S_k)
    weights = record(f"{name}.weights", weights)
    used = weights
    if dropout_p > 0:
        assert rng is not None  # checked above
        used, keep = dropout(weights, dropout_p, rng)
        record(f"{name}.weights_dropout_mask", keep)
    out = used @ v  # (..., S_q, S_k) @ (..., S_k, Dv) -> (..., S_q, Dv)
    return out, weights, scores


def scaled_dot_product_attention_backward(
    grad_out: np.ndarray,  # (..., S_q, Dv)
    q: np.ndarray,  # (..., S_q, Dh)
    k: np.ndarray,  # (..., S_k, Dh)
    v: np.ndarray,  # (..., S_k, Dv)
    weights: np.ndarray,  # (..., S_q, S_k)
    *,
    scale: bool = True,
    dropout_p: float = 0.0,
    dropout_mask: np.ndarray | None = None,
    record: Record = record_nothing,
    name: str = "attn",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # -> the shapes of q, k, v
    """Gradients of :func:`scaled_dot_product_attention` with respect to q, k and v.

    Backwards through ``out = weights @ v``, ``weights = masked_softmax(scores)`` and
    ``scores = q k^T / sqrt(Dh)``, with ``g = dL/dout``::

        dL/dv       = weights^T @ g
        dL/dweights = g @ v^T
        dL/dscores  = weights * (dL/dweights - sum over keys of dL/dweights * weights)
        dL/dq       = dL/dscores @ k / sqrt(Dh),   dL/dk = dL/dscores^T @ q / sqrt(Dh)

    No mask is needed: the weights are exactly 0 where the mask was False, which makes the
    gradient of those scores 0 (see :func:`~minitransformer.functional.masked_softmax_backward`).

    Parameters
    ----------
    grad_out : ndarray of shape (..., S_q, Dv)
        ``dL/dout``.
    q : ndarray of shape (..., S_q, Dh)
    k : ndarray of shape (..., S_k, Dh)
    v : ndarray of shape (..., S_k, Dv)
    weights : ndarray of shape (..., S_q, S_k)
        The attention pattern the forward pass returned.
    scale : bool
        As in the forward pass (False: no ``1 / sqrt(Dh)`` factor).
    dropout_p : float
        The forward pass's dropout probability on the weights.
    dropout_mask : bool ndarray of shape (..., S_q, S_k), optional
        The mask it drew (``weights_dropout_mask`` in a training trace); needed when
        ``dropout_p > 0``.
    record : function (name, array) -> array, optional
        Called with ``dL/dweights`` as ``{name}.weights`` (gradient-weighted attention rollout
        reads it); the gradient continues with what it returns. Default: record nothing.
    name : str
        The prefix of the recorded name.

    Returns
    -------
    grad_q : ndarray of shape (..., S_q, Dh)
    grad_k : ndarray of shape (..., S_k, Dh)
    grad_v : ndarray of shape (..., S_k, Dv)
    """
    if dropout_p > 0 and dropout_mask is None:
        raise ValueError(f"dropout_p={dropout_p} needs the forward pass's dropout_mask")
    keep = dropout_mask if dropout_p > 0 else None
    # what multiplied v: the weights, after dropout in training
    used = weights if keep is None else weights * keep / (1.0 - dropout_p)
    grad_v = used.swapaxes(-1, -2) @ grad_out  # (..., S_k, S_q) @ (..., S_q, Dv)
    grad_used = grad_out @ v.swapaxes(-1, -2)  # (..., S_q, Dv) @ (..., Dv, S_k)
    grad_weights = grad_used if keep is None else dropout_backward(grad_used, keep, dropout_p)
    grad_weights = record(f"{name}.weights", grad_weights)  # (..., S_q, S_k)
    grad_scores = masked_softmax_backward(grad_weights, weights)  # (..., S_q, S_k)
    grad_q, grad_k = attention_scores_backward(grad_scores, q, k, scale)
    return grad_q, grad_k, grad_v
