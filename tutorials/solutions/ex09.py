"""Answers for notebook 09: architecture experiments."""

import numpy as np


def softmax_jacobian(p):
    """Exercise 9.1: ``J[i, j] = d p_i / d s_j = p_i (1[i == j] - p_j)`` for ``p = softmax(s)``.

    p : ndarray of shape (S,), one row of softmax weights.
    Returns an ndarray of shape (S, S): ``diag(p) - p p^T``.
    """
    return np.diag(p) - np.outer(p, p)
