"""Answers for notebook 01: tokens, embeddings and positions."""

import numpy as np


def positional_encoding(max_len, d_model):
    """Exercise 1.1: the sinusoidal table of "Attention Is All You Need" (section 3.5).

    ``PE[pos, 2i] = sin(pos / 10000^(2i / d_model))`` and
    ``PE[pos, 2i+1] = cos(pos / 10000^(2i / d_model))``.

    Returns an ndarray of shape (max_len, d_model): one row per position.
    """
    positions = np.arange(max_len)[:, None]  # (max_len, 1): 0, 1, 2, ...
    two_i = np.arange(0, d_model, 2)  # (d_model / 2,): 0, 2, 4, ... the even columns
    frequencies = 1.0 / 10000.0 ** (two_i / d_model)  # (d_model / 2,)
    angles = positions * frequencies  # (max_len, d_model / 2)
    PE = np.zeros((max_len, d_model))
    PE[:, 0::2] = np.sin(angles)  # even columns: sines
    PE[:, 1::2] = np.cos(angles)  # odd columns: cosines of the same frequency
    return PE
