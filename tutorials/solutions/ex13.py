"""Answers for notebook 13: the causal decoder -- sampling, and an induction head's score."""

import numpy as np


def next_token_probs(logits, temperature=1.0, top_k=None):
    """Exercise 13.1: ``softmax(logits / temperature)`` over the ``top_k`` largest logits.

    logits : ndarray of shape (V,). Returns an ndarray of shape (V,) summing to 1.
    """
    scaled = logits / temperature
    if top_k is not None:
        kth = np.sort(logits)[-top_k]  # the k-th largest logit
        scaled = np.where(logits >= kth, scaled, -np.inf)  # exp(-inf) = 0: never drawn
    e = np.exp(scaled - scaled.max())  # the largest exponent is exp(0): no overflow
    return e / e.sum()


def induction_score(weights, period):
    """Exercise 13.2: mean of ``weights[i, i - period + 1]`` over ``i = period, ..., S - 1``.

    weights : ndarray of shape (S, S), one head's attention on a passage repeated every
    ``period`` characters.
    """
    queries = np.arange(period, len(weights))  # those with a previous occurrence
    return weights[queries, queries - period + 1].mean()  # the character after it
