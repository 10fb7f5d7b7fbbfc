"""Generating text from a causal language model: temperature, top-k, and the sampling loop.

A language model gives, at its last position, logits ``z`` over the vocabulary for the next
token. Generation turns them into probabilities, draws one token, appends it, and runs the
model again on the longer text (its last ``max_len`` tokens)::

    p = softmax(z / T)                    temperature T: T < 1 sharpens, T > 1 flattens
    p[every token outside the top k] = 0  top-k: only the k most likely tokens may be drawn
    p = p / sum(p)                        renormalise what is left

(Fan et al. 2018 for top-k; ``T -> 0`` tends to greedy decoding, the argmax.) The draws come
from a seeded ``numpy.random.Generator``: the same seed gives the same text.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from minitransformer.encoder import Encoder
from minitransformer.functional import softmax
from minitransformer.heads import Classifier
from minitransformer.validation import as_array, check_finite, check_int, check_number


def next_token_probs(logits: Any, temperature: float = 1.0, top_k: int | None = None) -> np.ndarray:
    """The distribution to draw the next token from: ``softmax(logits / T)``, top-k kept.

    Parameters
    ----------
    logits : ndarray of shape (..., V)
    temperature : float > 0
    top_k : int in [1, V], optional
        Keep the ``top_k`` largest logits of each row (all of them when None). Where logits
        tie at the k-th value, every tied token is kept.

    Returns
    -------
    float64 ndarray of shape (..., V): rows sum to 1.
    """
    z = as_array(logits, "logits").astype(np.float64)
    if z.ndim == 0 or z.shape[-1] == 0:
        raise ValueError(f"logits must have shape (..., V) with V >= 1, got {z.shape}")
    check_finite("logits", z)
    temperature = check_number("temperature", temperature, 0.0, open_min=True)
    with np.errstate(over="ignore"):  # a tiny temperature sends z - max < 0 to -inf: p = 0
        shifted = (z - z.max(axis=-1, keepdims=True)) / temperature  # <= 0: exp cannot overflow
    if top_k is not None:
        top_k = check_int("top_k", top_k, 1, z.shape[-1])
        kth = np.sort(z, axis=-1)[..., -top_k, None]  # (..., 1): the k-th largest logit
        shifted = np.where(z >= kth, shifted, -np.inf)  # exp(-inf) = 0: never drawn
    return softmax(shifted, axis=-1)


def generate(
    model: Encoder,
    head: Classifier,
    prompt_ids: Any,
    n_new: int,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Continue ``prompt_ids`` by ``n_new`` tokens drawn from the model, one at a time.

    Parameters
    ----------
    model : Encoder
        A causal model (``config.causal = True``): its position i must not have seen i + 1.
    head : Classifier
        Per-token logits over the model's vocabulary.
    prompt_ids : int array of shape (S,)
        At least one token.
    n_new : int >= 0
    temperature, top_k
        As in :func:`next_token_probs`.
    seed : int
        Seeds the draws.

    Returns
    -------
    int64 ndarray of shape (S + n_new,): the prompt, then the new tokens.
    """
    cfg = model.config
    if not cfg.causal:
        raise ValueError(
            "generate needs a causal model (config.causal=True): a bidirectional encoder's "
            "position i has read position i + 1, so it was never trained to predict it"
        )
    if head.pooling != "token" or head.n_classes != cfg.vocab_size:
        raise ValueError(
            f"head must give per-token logits over the {cfg.vocab_size} tokens of the model "
            f"(pooling='token', n_classes={cfg.vocab_size}), got {head!r}"
        )
    ids = as_array(prompt_ids, "prompt_ids")
    if ids.ndim != 1 or ids.size == 0 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(
            f"prompt_ids must be a non-empty 1-D int array, got {ids.dtype} {ids.shape}"
        )
    if ids.min() < 0 or ids.max() >= cfg.vocab_size:
        raise ValueError(
            f"prompt_ids must be in [0, {cfg.vocab_size}), got {ids.min()}..{ids.max()}"
        )
    n_new = check_int("n_new", n_new, 0)
    next_token_probs(np.zeros(cfg.vocab_size), temperature, top_k)  # checks both up front
    rng = np.random.default_rng(check_int("seed", seed, 0))
    out = list(ids.astype(np.int64))
    for _ in range(n_new):
        window = np.array(out[-cfg.max_len :])[None]  # (1, S'): the model's longest input
        logits = head(model(window))[0, -1]  # (V,): the last position predicts the next
        p = next_token_probs(logits, temperature, top_k)
        out.append(int(rng.choice(cfg.vocab_size, p=p)))
    return np.array(out, dtype=np.int64)
