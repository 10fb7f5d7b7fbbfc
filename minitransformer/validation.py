"""Checks on what users pass in, with messages that name the argument and what was wrong.

A teaching library must never compute something silently wrong from a malformed input:
every check here raises ``TypeError`` (wrong kind of value) or ``ValueError`` (right kind,
wrong shape or range) naming the argument, what was expected and what was received.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from minitransformer.config import EncoderConfig


def as_token_ids(token_ids: Any, config: EncoderConfig, name: str = "token_ids") -> np.ndarray:
    """Validate token ids and return them as an int64 array of shape (B, S).

    Accepts a sequence or array of integers of shape (S,) or (B, S); (S,) becomes (1, S).
    """
    ids = np.asarray(token_ids)
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
    _check_range(name, ids, config.vocab_size, "vocab_size")
    return ids.astype(np.int64, copy=False)


def as_mask(mask: Any, shape: tuple[int, int], name: str = "mask") -> np.ndarray:
    """Validate a padding mask and return it as a bool array of shape (B, S).

    ``mask`` must be bool or integer 0/1 (1 = real token), with the shape of the token ids:
    (S,) for (S,) ids is accepted as (1, S).
    """
    m = np.asarray(mask)
    if m.dtype != bool and not np.issubdtype(m.dtype, np.integer):
        raise TypeError(f"{name} must be bool or integer 0/1, got dtype {m.dtype}")
    if m.ndim == 1:
        m = m[None, :]
    if m.shape != shape:
        raise ValueError(f"{name} must have the token ids' shape {shape}, got {np.shape(mask)}")
    if m.dtype != bool and not np.isin(m, (0, 1)).all():
        raise ValueError(f"{name} must contain only 0 and 1, got values {np.unique(m)[:10]}")
    return m.astype(bool)


def as_token_type_ids(
    token_type_ids: Any, shape: tuple[int, int], config: EncoderConfig
) -> np.ndarray:
    """Validate token-type (segment) ids; None means all zeros. Returns int64 (B, S)."""
    name = "token_type_ids"
    if token_type_ids is None:
        return np.zeros(shape, dtype=np.int64)
    if config.type_vocab_size == 0:
        raise ValueError(f"{name} given, but this model has no token-type embeddings")
    t = np.asarray(token_type_ids)
    if t.dtype == bool or not np.issubdtype(t.dtype, np.integer):
        raise TypeError(f"{name} must be integers, got dtype {t.dtype}")
    if t.ndim == 1:
        t = t[None, :]
    if t.shape != shape:
        raise ValueError(
            f"{name} must have the token ids' shape {shape}, got {np.shape(token_type_ids)}"
        )
    _check_range(name, t, config.type_vocab_size, "type_vocab_size")
    return t.astype(np.int64, copy=False)


def _check_range(name: str, ids: np.ndarray, size: int, size_name: str) -> None:
    bad = (ids < 0) | (ids >= size)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"{name} must be in [0, {size}) ({size_name}), got {int(ids[where])} at index {where}"
        )
