"""The inputs of a forward pass, checked: token ids, padding mask, token types and head mask.

Every function here takes what a user passes and returns a new array of a fixed shape and dtype,
or raises ``TypeError``/``ValueError`` naming the argument, what was expected and what was
received (:mod:`minitransformer.validation` holds the checks they are made of).

Two masks, two names: the **padding mask** is (B, S), True for the real tokens (the ``mask``
argument of the model, the tokenizer's ``attention_mask``, ``trace.padding_mask``); the
**attention mask** is what attention reads, True where a query may attend to a key (the trace
entry ``attn.mask``, made from the padding mask by
:func:`~minitransformer.attention.padding_mask`).

A tokenizer's batch is recognised by what it holds -- ``input_ids``, ``attention_mask`` and
``token_type_ids`` (:func:`is_token_batch`) -- not by its class, so the model does not import the
tokenizer to read it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from minitransformer.config import EncoderConfig
from minitransformer.validation import as_array, check_finite, check_ids_in_range

#: The attributes a tokenizer's batch holds: ids, padding mask and token types, each (B, S).
TOKEN_BATCH_FIELDS = ("input_ids", "attention_mask", "token_type_ids")


def is_token_batch(value: Any) -> bool:
    """Whether ``value`` is a tokenizer's batch: it has ``input_ids``, ``attention_mask`` and
    ``token_type_ids`` (:class:`~minitransformer.tokenizer.BatchEncoding` has them)."""
    return all(hasattr(value, field) for field in TOKEN_BATCH_FIELDS)


def split_token_batch(
    token_ids: Any,
    mask: Any,
    token_type_ids: Any,
    config: EncoderConfig,
    name: str = "token_ids",
) -> tuple[Any, Any, Any]:
    """``(token_ids, mask, token_type_ids)``, taken from ``token_ids`` when it is a tokenizer's
    batch (which must then come alone), else as given.

    A batch always holds token types (all 0 for single texts); they are dropped (None) for a
    model without token-type embeddings. Raises ``ValueError`` for a batch given with a
    ``mask`` or ``token_type_ids``: it holds its own.
    """
    if not is_token_batch(token_ids):
        return token_ids, mask, token_type_ids
    if mask is not None or token_type_ids is not None:
        raise ValueError(
            f"{name} is a BatchEncoding, which holds the mask and the token types: pass the "
            f"BatchEncoding alone (no mask or token_type_ids)"
        )
    batch = token_ids
    types = batch.token_type_ids if config.type_vocab_size > 0 else None
    return batch.input_ids, batch.attention_mask, types


def as_token_ids(token_ids: Any, config: EncoderConfig, name: str = "token_ids") -> np.ndarray:
    """Validate token ids and return them as an int64 array of shape (B, S).

    Accepts a sequence or array of integers of shape (S,) or (B, S); (S,) becomes (1, S).
    """
    in_range = f"in [0, {config.vocab_size}) (vocab_size)"
    ids = as_array(token_ids, name, "ids", in_range)
    if ids.dtype.kind in "US":
        raise TypeError(f"{name} must be integers, got text (dtype {ids.dtype}): tokenize it first")
    if ids.dtype == bool or not (ids.size == 0 or np.issubdtype(ids.dtype, np.integer)):
        raise TypeError(f"{name} must be integers, got an array of dtype {ids.dtype}")
    if ids.ndim == 1:
        ids = ids[None, :]
    if ids.ndim != 2:
        raise ValueError(
            f"{name} must have shape (seq,) or (batch, seq), got {ids.ndim}-D shape {ids.shape}"
        )
    B, S = ids.shape
    if B == 0 or S == 0:
        raise ValueError(f"{name} must hold at least one token, got shape {np.shape(token_ids)}")
    if S > config.max_len:
        raise ValueError(
            f"{name} has sequence length {S}, longer than max_len={config.max_len} of this model"
        )
    check_ids_in_range(name, ids, config.vocab_size, "vocab_size")
    return ids.astype(np.int64, copy=False)


def as_mask(mask: Any, shape: tuple[int, int], name: str = "mask") -> np.ndarray:
    """Validate a padding mask and return it as a new bool array of shape (B, S).

    ``mask`` must be bool or integer 0/1 (1 = real token), with the shape of the token ids:
    (S,) for (S,) ids is accepted as (1, S).
    """
    m = as_array(mask, name, "values", "0 or 1")
    if m.dtype != bool and not np.issubdtype(m.dtype, np.integer):
        raise TypeError(f"{name} must be bool or integer 0/1, got dtype {m.dtype}")
    if m.ndim == 1:
        m = m[None, :]
    if m.shape != shape:
        raise ValueError(f"{name} must have the token ids' shape {shape}, got {np.shape(mask)}")
    if m.dtype != bool and not np.isin(m, (0, 1)).all():
        raise ValueError(
            f"{name} must contain only 0 and 1, got values {np.unique(m)[:10].tolist()}"
        )
    return m.astype(bool)  # a copy: the caller's mask is never shared


def as_token_type_ids(
    token_type_ids: Any, shape: tuple[int, int], config: EncoderConfig
) -> np.ndarray:
    """Validate token-type (segment) ids; None means all zeros. Returns int64 (B, S)."""
    name = "token_type_ids"
    if token_type_ids is None:
        return np.zeros(shape, dtype=np.int64)
    if config.type_vocab_size == 0:
        raise ValueError(f"{name} given, but this model has no token-type embeddings")
    in_range = f"in [0, {config.type_vocab_size}) (type_vocab_size)"
    t = as_array(token_type_ids, name, "ids", in_range)
    if t.dtype == bool or not np.issubdtype(t.dtype, np.integer):
        raise TypeError(f"{name} must be integers, got dtype {t.dtype}")
    if t.ndim == 1:
        t = t[None, :]
    if t.shape != shape:
        raise ValueError(
            f"{name} must have the token ids' shape {shape}, got {np.shape(token_type_ids)}"
        )
    check_ids_in_range(name, t, config.type_vocab_size, "type_vocab_size")
    return t.astype(np.int64, copy=False)


def as_head_mask(head_mask: Any, config: EncoderConfig) -> np.ndarray | None:
    """Validate a head mask: None, or finite numbers of shape (n_layers, n_heads).

    Returns it as a new array of the model's dtype (None stays None).
    """
    if head_mask is None:
        return None
    checked = as_array(head_mask, "head_mask", "heads")
    if checked.dtype == bool or not np.issubdtype(checked.dtype, np.number):
        raise TypeError(
            f"head_mask must hold numbers (1 keeps a head, 0 removes it), got {checked.dtype}"
        )
    expected = (config.n_layers, config.n_heads)
    if checked.shape != expected:
        raise ValueError(
            f"head_mask must have shape (n_layers, n_heads) = {expected}, got {checked.shape}"
        )
    checked = checked.astype(config.np_dtype)  # a copy; checked after the cast (1e300: inf)
    check_finite("head_mask", checked)
    return checked
