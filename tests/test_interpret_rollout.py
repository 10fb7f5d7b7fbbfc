"""Attention rollout and attention flow (Abnar & Zuidema 2020), and the max-flow under it."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from minitransformer.interpret.rollout import (
    attention_flow,
    attention_rollout,
    max_flow,
    residual_attention,
)

# Two layers, one head, three tokens, by hand.
W1 = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
W2 = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
GOLDEN = np.stack([W1, W2])[:, None, None]  # (L=2, B=1, H=1, 3, 3)


def test_rollout_by_hand():
    R = attention_rollout(GOLDEN)
    # A_hat_1 = 0.5 W1 + 0.5 I; A_hat_2 = 0.5 W2 + 0.5 I; R_2 = A_hat_2 A_hat_1
    np.testing.assert_allclose(R[0, 0], [[1, 0, 0], [0.25, 0.75, 0], [0, 0, 1]])
    np.testing.assert_allclose(R[1, 0], [[0.5, 0, 0.5], [0.625, 0.375, 0], [0.125, 0.375, 0.5]])


def test_flow_by_hand_takes_the_narrowest_edge_of_each_path():
    F = attention_flow(GOLDEN)
    # into (2, 1): via (1, 0) min(0.5, 1) + via (1, 1) min(0.5, 0.25) = 0.75 from input 0;
    # via (1, 1) min(0.5, 0.75) = 0.5 from input 1; normalised by 1.25
    np.testing.assert_allclose(F[1, 0, 1], [0.6, 0.4, 0.0])
    np.testing.assert_allclose(F[0], attention_rollout(GOLDEN)[0])  # one layer: flow = rollout


def test_rollout_rows_sum_to_one_identity_stays_and_uniform_spreads():
    rng = np.random.default_rng(0)
    A = rng.dirichlet(np.ones(5), size=(3, 2, 4, 5))  # (L, B, H, S, S), random rows
    R = attention_rollout(A)
    np.testing.assert_allclose(R.sum(-1), 1.0, atol=1e-12)
    eye = np.broadcast_to(np.eye(5), (3, 2, 4, 5, 5))
    np.testing.assert_allclose(attention_rollout(eye), np.broadcast_to(np.eye(5), (3, 2, 5, 5)))
    flat = np.full((8, 1, 2, 5, 5), 0.2)
    assert np.abs(attention_rollout(flat)[-1] - 0.2).max() < 0.01  # 0.5^8 of I left
    assert np.abs(attention_rollout(flat)[0] - 0.2).max() > 0.3


def test_padding_rows_become_identity_and_never_feed_real_tokens():
    A = np.zeros((1, 1, 1, 3, 3))
    A[..., :2, :2] = 0.5  # token 2 is padding: no weight in, all-zero row out
    A_hat = residual_attention(A, residual=0.0)
    np.testing.assert_allclose(A_hat[0, 0, 2], [0, 0, 1])
    R = attention_rollout(np.concatenate([A, A]))
    assert (R[:, 0, :2, 2] == 0).all()
    with pytest.raises(ValueError, match="residual must be in"):
        residual_attention(A, residual=1.5)


def brute_force_min_cut(capacity: np.ndarray, source: int, sink: int) -> float:
    """Smallest total capacity of the edges leaving a set that holds source but not sink."""
    n = len(capacity)
    others = [v for v in range(n) if v not in (source, sink)]
    best = np.inf
    for k in range(len(others) + 1):
        for chosen in itertools.combinations(others, k):
            inside = np.zeros(n, bool)
            inside[[source, *chosen]] = True
            best = min(best, capacity[inside][:, ~inside].sum())
    return float(best)


def test_max_flow_equals_min_cut_on_random_graphs():
    rng = np.random.default_rng(1)
    for _ in range(30):
        n = int(rng.integers(3, 8))
        capacity = rng.uniform(0, 1, (n, n)) * (rng.uniform(size=(n, n)) < 0.5)
        np.fill_diagonal(capacity, 0)
        assert max_flow(capacity, 0, n - 1) == pytest.approx(
            brute_force_min_cut(capacity, 0, n - 1), abs=1e-12
        )


def test_max_flow_on_a_textbook_graph_needs_the_reverse_edge():
    # s=0 -> 1 -> 3=t and 0 -> 2 -> 3, with a cross edge 1 -> 2: max flow 2 (CLRS-like)
    c = np.zeros((4, 4))
    c[0, 1] = c[0, 2] = c[1, 3] = c[2, 3] = 1.0
    c[1, 2] = 1.0
    assert max_flow(c, 0, 3) == 2.0


def test_flow_rows_sum_to_one_respect_padding_and_refuse_long_inputs():
    rng = np.random.default_rng(2)
    A = rng.dirichlet(np.ones(4), size=(3, 1, 2, 4))
    F = attention_flow(A)
    np.testing.assert_allclose(F.sum(-1), 1.0, atol=1e-12)
    assert (F >= 0).all()
    mask = np.array([[1, 1, 1, 0]])
    Am = A.copy()
    Am[..., 3] = 0.0
    Am /= Am.sum(-1, keepdims=True)
    Am[..., 3, :] = 0.0
    Fm = attention_flow(Am, mask)
    assert (Fm[:, :, 3] == 0).all() and (Fm[:, :, :, 3] == 0).all()
    with pytest.raises(ValueError, match="max_tokens=16"):
        attention_flow(np.full((1, 1, 1, 17, 17), 1 / 17))
