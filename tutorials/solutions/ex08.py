"""Answers for notebook 08: interpretability."""

import numpy as np

from minitransformer.interpret import head_mask_without


def rollout_two_layers(A1, A2):
    """Exercise 8.1: attention rollout after two layers, ``Â2 @ Â1``.

    A1, A2 : ndarray of shape (H, S, S), the attention of layers 1 and 2 for one sequence.
    Returns an ndarray of shape (S, S): row i = how much of each input token reaches token i.
    """
    S = A1.shape[-1]
    A1_hat = 0.5 * A1.mean(axis=0) + 0.5 * np.eye(S)  # heads averaged, plus the residual path
    A2_hat = 0.5 * A2.mean(axis=0) + 0.5 * np.eye(S)
    A1_hat /= A1_hat.sum(axis=1, keepdims=True)  # rows sum to 1 (already so without padding)
    A2_hat /= A2_hat.sum(axis=1, keepdims=True)
    return A2_hat @ A1_hat  # layer 2 mixes the states that layer 1 produced


def head_drop(model, token_ids, metric):
    """Exercise 8.2: ``metric(all heads) - metric(all heads but (l, h))`` for every head.

    Returns an ndarray of shape (n_layers, n_heads).
    """
    cfg = model.config
    full = metric(model(token_ids))
    drop = np.zeros((cfg.n_layers, cfg.n_heads))
    for l in range(cfg.n_layers):
        for h in range(cfg.n_heads):
            head_mask = head_mask_without(cfg, [(l, h)])  # ones, with a 0 for head (l, h)
            drop[l, h] = full - metric(model(token_ids, head_mask=head_mask))
    return drop


def completeness_gap(model, token_ids, objective, baseline_ids, scores):
    """Exercise 8.3: ``sum_j scores[j] - (F(x) - F(x'))`` for Integrated Gradients scores."""
    F_x = objective(model(token_ids))[0][0]  # values of the one-sequence batch
    F_baseline = objective(model(baseline_ids))[0][0]
    return float(np.sum(scores) - (F_x - F_baseline))
