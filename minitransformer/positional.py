"""Positional information: attention alone is blind to order, so positions are added in.

Vaswani et al. 2017, section 3.5: a fixed sinusoidal encoding, one frequency per pair of
dimensions. BERT instead learns one vector per position (``embed.W_pos`` in the parameters).
"""

from __future__ import annotations

import numpy as np


def sinusoidal_positional_encoding(
    max_len: int, d_model: int, dtype: np.dtype | str = "float32"
) -> np.ndarray:
    """The sinusoidal position table of "Attention Is All You Need".

    ``PE[pos, 2i] = sin(pos / 10000^(2i / d_model))`` and
    ``PE[pos, 2i+1] = cos(pos / 10000^(2i / d_model))``: even columns hold sines, odd
    columns cosines of the same frequency (interleaved, as in the paper and
    ``torch`` tutorials; some code concatenates all sines then all cosines instead).

    Parameters
    ----------
    max_len : int
        Number of positions (rows).
    d_model : int
        Width (columns). An odd width drops the last cosine.
    dtype : numpy dtype

    Returns
    -------
    ndarray of shape (max_len, d_model)
    """
    if max_len <= 0 or d_model <= 0:
        raise ValueError(f"max_len and d_model must be positive, got {max_len} and {d_model}")
    position = np.arange(max_len, dtype=np.float64)[:, None]  # (max_len, 1)
    two_i = np.arange(0, d_model, 2, dtype=np.float64)  # (ceil(D/2),)
    angle = position / 10000.0 ** (two_i / d_model)  # (max_len, ceil(D/2))
    pe = np.zeros((max_len, d_model), dtype=np.float64)
    pe[:, 0::2] = np.sin(angle)
    pe[:, 1::2] = np.cos(angle[:, : d_model // 2])
    return pe.astype(dtype)
