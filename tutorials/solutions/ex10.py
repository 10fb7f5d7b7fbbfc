"""Answers for notebook 10: debugging misaligned attention and overfitting."""

import numpy as np


def attention_on_padding(weights, mask):
    """Exercise 10.1: mean over real queries of the weight they put on padding keys.

    weights : ndarray of shape (B, H, S, S)
    mask : bool ndarray of shape (B, S), True for real tokens.
    """
    mask = np.asarray(mask, dtype=bool)
    padding_keys = ~mask[:, None, None, :]  # (B, 1, 1, S): broadcast over heads and queries
    on_padding = (weights * padding_keys).sum(axis=-1)  # (B, H, S): per query
    real_queries = np.broadcast_to(mask[:, None, :], on_padding.shape)  # (B, H, S)
    return float(on_padding[real_queries].mean())


def best_step(history):
    """Exercise 10.2: the evaluation step with the lowest held-out loss (first on a tie)."""
    return history.val_steps[int(np.argmin(history.val_loss))]


# Exercise 10.2: query i carries the position of i - 1, so it looks for the mirror of i - 1,
# 8 - i; the key carrying position 8 - i is the token after it, 9 - i: two places after the
# mirror 7 - i. Round the end (mod 8), since the roll gave token 0 the last position's row.
predicted_keys = [(9 - i) % 8 for i in range(8)]  # [1, 0, 7, 6, 5, 4, 3, 2]
