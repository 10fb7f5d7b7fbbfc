"""Answers for notebook 06: training a tiny encoder and watching heads form."""

import numpy as np


def mirror_target(L):
    """Exercise 6.1: the target matrix of reversal, ``T[i, L - 1 - i] = 1``.

    Returns an ndarray of shape (L, L): the anti-diagonal.
    """
    return np.eye(L)[::-1]  # the identity with its rows in reverse order


def my_pattern_score(A, T):
    """Exercise 6.2: ``mean_i sum_j A[i, j] T[i, j]`` over the rows i where T has a 1.

    A : ndarray of shape (S, S), one head's attention (rows sum to 1).
    T : ndarray of shape (S, S), 0/1 target matrix.
    """
    on_target = (A * T).sum(axis=1)  # (S,): attention of each query on its expected keys
    rows = T.sum(axis=1) > 0  # (S,): the queries that have an expected key
    return on_target[rows].mean()
