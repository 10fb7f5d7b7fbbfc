"""Positional information: attention alone is blind to order, so positions are added in.

Vaswani et al. 2017, section 3.5: a fixed sinusoidal encoding, one frequency per pair of
dimensions. BERT instead learns one vector per position (``embed.W_pos`` in the parameters).
"""

from __future__ import annotations

import numpy as np

from minitransformer.validation import check_int


def sinusoidal_positional_encoding(
    max_len: int, d_model: int, dtype: np.dtype | str = "float32"
) -> np.ndarray:  # max_len, d_model -> (max_len, d_model)
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
    max_len = check_int("max_len", max_len, 1)
    d_model = check_int("d_model", d_model, 1)
    position = np.arange(max_len, dtype=np.float64)[:, None]  # (max_len, 1)
    two_i = np.arange(0, d_model, 2, dtype=np.float64)  # (ceil(D/2),)
    angle = position / 10000.0 ** (two_i / d_model)  # (max_len, ceil(D/2))
    pe = np.zeros((max_len, d_model), dtype=np.float64)
    pe[:, 0::2] = np.sin(angle)
    pe[:, 1::2] = np.cos(angle[:, : d_model // 2])
    return pe.astype(dtype)


def position_embedding_backward(
    grad_out: np.ndarray, max_len: int
) -> np.ndarray:  # dL/dout (B, S, D) -> dL/dW_pos (max_len, D)
    """Gradient of learned position embeddings with respect to their table ``W_pos``.

    The forward pass adds the rows ``W_pos[0 .. S-1]`` to every sequence of the batch, so
    row ``s`` collects the gradient of position ``s`` summed over the batch:
    ``dL/dW_pos[s] = sum_b g[b, s]`` for ``s < S``, and 0 for the rows ``S .. max_len-1`` that
    were not used. (The sinusoidal encoding is a fixed table, not a parameter: it has no
    gradient to compute.)

    Parameters
    ----------
    grad_out : ndarray of shape (B, S, D)
        The gradient with respect to the summed embeddings.
    max_len : int
        Rows of ``W_pos``.

    Returns
    -------
    ndarray of shape (max_len, D): ``dL/dW_pos``.
    """
    B, S, D = grad_out.shape
    if S > max_len:
        raise ValueError(f"grad_out has {S} positions, more than max_len={max_len} rows of W_pos")
    grad_W_pos = np.zeros((max_len, D), dtype=grad_out.dtype)
    grad_W_pos[:S] = grad_out.sum(axis=0)  # (S, D): every sequence used the same rows
    return grad_W_pos
