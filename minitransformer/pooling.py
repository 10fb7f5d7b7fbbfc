"""Sentence embeddings: one vector per text from the encoder's per-token hidden states.

all-MiniLM-L6-v2 (Reimers & Gurevych 2019, Sentence-BERT) turns the hidden states of a text
into one vector in two steps, as its sentence-transformers pipeline does:

1. mean pooling -- average the hidden vectors of the real tokens (padding excluded)::

       pooled[b] = sum_s mask[b, s] * hidden[b, s] / sum_s mask[b, s]

2. L2 normalisation -- divide by the length, so the dot product of two embeddings is their
   cosine similarity::

       embedding[b] = pooled[b] / max(||pooled[b]||, 1e-12)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from minitransformer.encoder import Encoder
from minitransformer.inputs import as_mask
from minitransformer.validation import check_int

NORM_EPS = 1e-12  # smallest length divided by (torch.nn.functional.normalize's eps)
PROGRESS_MIN_BATCHES = 8  # embed_sentences shows a progress bar from this many batches on


def sentence_embedding(
    hidden: np.ndarray, attention_mask: Any, normalize: bool = True
) -> np.ndarray:  # (B, S, D), (B, S) -> (B, D)
    """Mean of the real tokens' hidden vectors, then (by default) L2 normalisation.

    Parameters
    ----------
    hidden : ndarray of shape (batch, seq, d_model)
        The encoder's output.
    attention_mask : bool or 0/1 array of shape (batch, seq)
        1 for real tokens, 0 for padding.
    normalize : bool
        Divide each vector by its L2 norm (as all-MiniLM-L6-v2 does); then the dot product of
        two embeddings is their cosine similarity.

    Returns
    -------
    ndarray of shape (batch, d_model), the dtype of ``hidden``
        A row with no real token is all zeros.
    """
    hidden = np.asarray(hidden)
    if hidden.ndim != 3:
        raise ValueError(
            f"hidden must have shape (batch, seq, d_model), got {hidden.ndim}-D shape "
            f"{hidden.shape}"
        )
    mask = as_mask(attention_mask, hidden.shape[:2], name="attention_mask")
    weights = mask[:, :, None].astype(hidden.dtype)  # (B, S, 1): 1 for real tokens
    total = (hidden * weights).sum(axis=1)  # (B, D)
    count = weights.sum(axis=1)  # (B, 1)
    pooled = total / np.maximum(count, 1)  # (B, D); a row with no real token stays 0
    if not normalize:
        return pooled
    length = np.linalg.norm(pooled, axis=-1, keepdims=True)  # (B, 1)
    return pooled / np.maximum(length, NORM_EPS)


def embed_sentences(
    model: Encoder,
    tokenizer: Any,
    texts: Sequence[str],
    batch_size: int = 32,
    normalize: bool = True,
    progress: bool | None = None,
) -> np.ndarray:
    """Sentence embeddings of many texts, in batches: tokenize, encode, pool.

    Parameters
    ----------
    model : Encoder
    tokenizer : WordPieceTokenizer
        Called as ``tokenizer(batch_of_texts)``; returns ``input_ids``, ``attention_mask`` and
        ``token_type_ids`` of shape (batch, seq).
    texts : sequence of str
    batch_size : int
        Texts per forward pass; each batch is padded to its longest text.
    normalize : bool
        L2-normalise the embeddings (see :func:`sentence_embedding`).
    progress : bool, optional
        Show a ``tqdm`` progress bar. None (default): only for ``PROGRESS_MIN_BATCHES``
        batches or more.

    Returns
    -------
    ndarray of shape (len(texts), d_model)
        Row i is the embedding of ``texts[i]``.
    """
    if isinstance(texts, str) or not all(isinstance(text, str) for text in texts):
        raise TypeError("texts must be a sequence of str (a single text: pass [text])")
    batch_size = check_int("batch_size", batch_size, 1)
    if len(texts) == 0:
        return np.zeros((0, model.config.d_model), dtype=model.config.np_dtype)
    starts = range(0, len(texts), batch_size)
    if progress is None:
        progress = len(starts) >= PROGRESS_MIN_BATCHES
    from tqdm.auto import tqdm  # imported here: only this convenience function needs it

    embeddings = []
    for start in tqdm(starts, desc="embedding", unit="batch", disable=not progress):
        batch = tokenizer(list(texts[start : start + batch_size]))
        hidden = model(batch.input_ids, batch.attention_mask, token_type_ids=batch.token_type_ids)
        embeddings.append(sentence_embedding(hidden, batch.attention_mask, normalize))
    return np.concatenate(embeddings)
