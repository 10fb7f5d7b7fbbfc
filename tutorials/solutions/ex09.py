"""Answers for notebook 09: architecture experiments."""

import numpy as np


def softmax_jacobian(p):
    """Exercise 9.1: ``J[i, j] = d p_i / d s_j = p_i (1[i == j] - p_j)`` for ``p = softmax(s)``.

    p : ndarray of shape (S,), one row of softmax weights.
    Returns an ndarray of shape (S, S): ``diag(p) - p p^T``.
    """
    return np.diag(p) - np.outer(p, p)


# Exercise 9.2: one change only (the scaling), both at the width asked about (8 heads of width
# 32 / 8 = 4), and several seeds, since runs of one variant differ by several steps.
variants = {
    "scaled, d_head 4": {"n_heads": 8},
    "unscaled, d_head 4": {"n_heads": 8, "scale_scores": False},
}
seeds = [0, 1, 2]
