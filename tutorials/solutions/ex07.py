"""Answers for notebook 07: reading real attention."""

import numpy as np


def offset_score(weights, k):
    """Exercise 7.1: mean over queries i of ``weights[..., i, i + k]`` (where key i + k exists).

    weights : ndarray of shape (..., S, S)
    Returns an ndarray of shape (...): e.g. (layers, heads).
    """
    S = weights.shape[-1]
    queries = np.arange(max(0, -k), min(S, S - k))  # the i with 0 <= i + k < S
    return weights[..., queries, queries + k].mean(axis=-1)


def same_token_mask(ids):
    """Exercise 7.2: True where ``ids[i] == ids[j]`` and ``i != j``; shape (S, S)."""
    ids = np.asarray(ids)
    same = ids[:, None] == ids[None, :]  # (S, 1) == (1, S) -> (S, S)
    return same & ~np.eye(len(ids), dtype=bool)
