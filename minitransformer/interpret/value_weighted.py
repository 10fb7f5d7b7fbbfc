"""How much each key *contributes* to a query's output, not only how much weight it gets.

Kobayashi, Kuribayashi, Yokoi & Inui (2020), "Attention is Not Only a Weight: Analyzing
Transformers with Vector Norms" (EMNLP; code ``gorokoba560/norm-analysis-of-transformer``).
Head h's part of the attention output at query i is a sum over the keys j::

    MHA(x)_i = sum_h sum_j alpha^h_ij f^h(x_j) + b_O,     f^h(x_j) = v^h_j W_O^h

with ``v^h_j = x_j W_V^h + b_V^h`` (the trace's ``attn.v``; the value bias is inside f) and
``W_O^h`` the d_head rows of ``W_O`` that multiply head h's slice of ``attn.concat``. The
weight ``alpha_ij`` is only one factor of the vector ``alpha_ij f(x_j)`` that key j adds; its
size is

    ||alpha_ij f^h(x_j)|| = alpha_ij ||f^h(x_j)||         (alpha_ij >= 0 is a number)

A key with a large weight but a short ``f(x_j)`` adds little -- in BERT-like models, [CLS],
[SEP] and punctuation get much weight and have short transformed vectors (Kobayashi et al.,
Section 4), so the weight overstates them.

**The output bias** ``b_O`` is left out, as in the paper and its code: it is added once to
every query's output, the same vector whatever the input, so it belongs to no key j. With a
head mask (Michel et al.'s gates, recorded in the trace) a head's vectors are scaled by its
entry ``head_mask[l, h]`` (0 for a removed head), as the pass scaled them.
"""

from __future__ import annotations

import numpy as np

from minitransformer.encoder import Encoder
from minitransformer.trace import Trace


def _check_trace(model: Encoder, trace: Trace) -> None:
    """The trace must come from this model's config, in evaluation, with v and the weights."""
    if not isinstance(model, Encoder):
        raise TypeError(f"model must be an Encoder, got {type(model).__name__}")
    if not isinstance(trace, Trace):
        raise TypeError(f"trace must be a Trace (model.run_with_trace), got {type(trace).__name__}")
    if trace.config != model.config:
        raise ValueError("trace was recorded by a model with another config than this model's")
    names = [f"blocks.{l}.attn.{n}" for l in range(model.config.n_layers) for n in ("v", "weights")]
    missing = [n for n in names if n not in trace]
    if missing:
        raise KeyError(
            f"the trace did not record {missing[0]!r}: keep '*.attn.v' and '*.attn.weights'"
        )
    if any(name.endswith("weights_dropout_mask") for name in trace):
        raise ValueError(
            "trace is a training trace (attention dropout): use one recorded with "
            "training=False, whose weights are the ones the values were mixed with"
        )


def transformed_value_norms(model: Encoder, trace: Trace) -> np.ndarray:
    """``||f^h(x_j)|| = ||v^h_j W_O^h||`` for every layer, head and key.

    Parameters
    ----------
    model : Encoder
        The model that recorded ``trace`` (for ``W_O``).
    trace : Trace
        An evaluation trace with ``blocks.{l}.attn.v`` for every block.

    Returns
    -------
    ndarray of shape (L, B, H, S)
        ``[l, b, h, j]``: the length of the vector head h of block l would add for key j at
        weight 1 (float64; the trace's ``head_mask`` not applied).
    """
    _check_trace(model, trace)
    cfg = model.config
    H, Dh = cfg.n_heads, cfg.d_head
    norms = []
    for l in range(cfg.n_layers):
        v = trace[f"blocks.{l}.attn.v"].astype(np.float64)  # (B, H, S, Dh)
        W_O = model.params[f"blocks.{l}.attn.W_O"].astype(np.float64)  # (D, D)
        W_O_heads = W_O.reshape(H, Dh, cfg.d_model)  # (H, Dh, D): head h's rows of W_O
        f = np.einsum("bhsd,hde->bhse", v, W_O_heads)  # (B, H, S, D): f(x_j) per head
        norms.append(np.linalg.norm(f, axis=-1))  # (B, H, S)
    return np.stack(norms)


def value_weighted_norms(model: Encoder, trace: Trace) -> np.ndarray:
    """Kobayashi et al.'s ``||alpha^h_ij f^h(x_j)||`` for every layer, head, query and key.

    Parameters
    ----------
    model : Encoder
        The model that recorded ``trace`` (for ``W_O``).
    trace : Trace
        An evaluation trace (``training=False``) with ``blocks.{l}.attn.v`` and
        ``blocks.{l}.attn.weights`` for every block.

    Returns
    -------
    ndarray of shape (L, B, H, S, S), float64
        ``[l, b, h, i, j] = head_mask[l, h] * alpha^h_ij * ||v^h_j W_O^h||``: the length of
        the vector that key j adds to query i's output through head h of block l (the trace's
        head mask, 1 without one). Masked keys give 0, as their weights are 0;
        padding *query* rows are what the model computed for them (they read the real keys):
        leave them out with ``trace.padding_mask``. Compare row i with ``alpha`` row i: the two
        rank the keys differently where the value vectors differ in length.
    """
    _check_trace(model, trace)
    f_norms = transformed_value_norms(model, trace)  # (L, B, H, S)
    weights = np.stack(
        [trace[f"blocks.{l}.attn.weights"] for l in range(model.config.n_layers)]
    ).astype(np.float64)  # (L, B, H, S, S)
    norms = weights * f_norms[:, :, :, None, :]  # alpha_ij * ||f(x_j)||, key j on the last axis
    if trace.head_mask is not None:
        head_mask = np.asarray(trace.head_mask, dtype=np.float64)  # (L, H)
        norms = norms * np.abs(head_mask)[:, None, :, None, None]
    return norms
