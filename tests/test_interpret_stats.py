"""Head statistics, roles, Jensen-Shannon head distances, MDS and clustering."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from minitransformer.config import EncoderConfig
from minitransformer.interpret.similarity import (
    LOG2,
    classical_mds,
    cluster_heads,
    head_distances,
    head_names,
    js_divergence,
)
from minitransformer.interpret.stats import (
    attention_weights,
    head_roles,
    head_statistics,
    punctuation_ids,
    query_mask,
    roles_table,
)
from tests.conftest import make_encoder

S = 6


def shifted(offset: int, S: int = S) -> np.ndarray:
    """(S, S) pattern: row i puts all weight on i + offset (clipped to the sequence)."""
    A = np.zeros((S, S))
    A[np.arange(S), np.clip(np.arange(S) + offset, 0, S - 1)] = 1.0
    return A


def uniform(S: int = S) -> np.ndarray:
    return np.full((S, S), 1.0 / S)


def one_layer(*patterns: np.ndarray, B: int = 2) -> np.ndarray:
    """(1, B, H, S, S) weights with head h = patterns[h] in every sequence."""
    return np.broadcast_to(np.stack(patterns)[None, None], (1, B, len(patterns), S, S)).copy()


def test_statistics_of_known_patterns():
    A = one_layer(shifted(-1), shifted(+1), shifted(0), uniform())
    st = head_statistics(A)
    assert st.shape == (1, 4)
    # previous-token head: every row but the first reads i - 1 (row 0 reads itself)
    assert st.previous[0, 0] == pytest.approx(5 / 6)
    assert st.next[0, 1] == pytest.approx(5 / 6)
    assert st.self[0, 2] == pytest.approx(1.0)
    assert st.distance[0, 2] == 0.0 and st.distance[0, 0] == pytest.approx(5 / 6)
    # uniform head: entropy log n, distance (n^2 - 1) / (3n) (Vig & Belinkov), confidence 1/n
    assert st.entropy[0, 3] == pytest.approx(np.log(S))
    assert st.uniform_entropy[0, 3] == pytest.approx(np.log(S))
    assert st.distance[0, 3] == pytest.approx((S**2 - 1) / (3 * S))
    assert st.confidence[0, 3] == pytest.approx(1 / S)
    assert st.entropy[0, 0] == 0.0 and st.confidence[0, 0] == 1.0
    assert st.top_offset[0, 0] == -1 and st.top_offset_share[0, 0] == pytest.approx(5 / 6)


def test_shares_on_special_punctuation_and_padding_use_ids_and_skip_padding_queries():
    ids = np.array([[1, 5, 9, 5, 2, 0], [1, 5, 5, 2, 0, 0]])  # 1 = [CLS], 2 = [SEP], 9 = ".", 0 pad
    mask = ids != 0
    first = np.zeros((S, S))
    first[:, 0] = 1.0  # everything on [CLS]
    broken = np.zeros((S, S))
    broken[:, -1] = 1.0  # everything on the last position: padding in both sequences
    A = one_layer(first, broken)
    st = head_statistics(A, ids, mask, special_ids=[1, 2], punctuation=[9], pad_id=0)
    assert st.special[0, 0] == 1.0 and st.padding[0, 0] == 0.0
    assert st.padding[0, 1] == 1.0
    by_position = head_statistics(A, mask=mask, special_positions=[0])
    assert by_position.special[0, 0] == 1.0
    # only real rows count: (5 + 4) rows; entropy baseline averages log 5 and log 4
    assert st.uniform_entropy[0, 0] == pytest.approx((5 * np.log(5) + 4 * np.log(4)) / 9)
    roles = head_roles(st)
    assert [r.role for r in roles] == ["special-token sink", "padding"]
    assert "1.00 of attention on special" in roles[0].evidence
    with pytest.raises(ValueError, match="need token_ids"):
        head_statistics(A, special_ids=[1])


def test_roles_of_a_model_with_a_pure_previous_token_head():
    """Hand-built weights: W_Q = 0 and learned positions in W_K make head 0 read i - 1."""
    cfg = EncoderConfig(
        vocab_size=8, d_model=8, n_heads=2, n_layers=1, d_ff=8, max_len=S,
        positional="learned", dtype="float64",
    )  # fmt: skip
    model = make_encoder(cfg)
    p = model.params
    p["embed.W_E"][:] = 0.0
    p["embed.W_pos"][:] = np.eye(S, 8) * 1.0  # position i -> unit vector e_i (d_model >= S)
    # head 0 (columns 0..3): scores[i, j] = 50 [j == i - 1] via q = e_i, k = shift(e_j)
    p["blocks.0.attn.W_Q"][:] = 0.0
    p["blocks.0.attn.W_K"][:] = 0.0
    p["blocks.0.attn.b_Q"][:] = 0.0
    p["blocks.0.attn.b_K"][:] = 0.0
    d_head = 4
    for i in range(1, min(S, d_head + 1)):
        p["blocks.0.attn.W_Q"][i, i - 1] = 50.0  # query i -> direction i - 1
        p["blocks.0.attn.W_K"][i - 1, i - 1] = 1.0  # key i - 1 -> direction i - 1
    _, trace = model.run_with_trace(np.ones((3, 5), dtype=int))
    st = head_statistics(attention_weights(trace), mask=query_mask(trace))
    roles = head_roles(st)
    assert roles[0].role == "previous-token", roles_table(roles)
    assert roles[1].role == "broad"  # W_Q, W_K of head 1 see constant inputs: uniform rows


def test_positional_role_needs_one_fixed_offset():
    n = 24  # Voita et al.'s 90%: the last two rows cannot read i + 2, so 22/24 do
    skip = np.full((n, n), 0.6 / (n - 1))
    skip[np.arange(n), np.minimum(np.arange(n) + 2, n - 1)] = 0.4  # argmax at i + 2, share 0.4
    mirror = np.eye(n)[::-1]  # reversal: offset n - 1 - 2i changes with i
    A = np.stack([skip, mirror])[None, None]  # (1, 1, 2, n, n)
    roles = head_roles(head_statistics(A))
    assert roles[0].role == "positional (offset +2)", roles[0]
    assert roles[1].role == "sharp"
    assert "max weight 1.00" in roles[1].evidence


def test_query_mask_reads_the_padding_mask_of_the_trace():
    cfg = EncoderConfig(vocab_size=8, d_model=8, n_heads=2, n_layers=2, d_ff=8, max_len=8)
    mask = np.array([[1, 1, 1, 0], [1, 1, 1, 1]])
    _, trace = make_encoder(cfg).run_with_trace(np.ones((2, 4), int), mask)
    np.testing.assert_array_equal(query_mask(trace), mask == 1)
    assert attention_weights(trace).shape == (2, 2, 2, 4, 4)
    with pytest.raises(KeyError, match="keep"):
        attention_weights(trace.filter("*.attn.z"))


def test_punctuation_ids_from_a_vocabulary():
    assert punctuation_ids(["[PAD]", ".", "the", "##,", "?!", "a.b", "#"]) == [1, 3, 4, 6]


# --------------------------------------------------------------- similarity


def test_js_divergence_properties():
    rng = np.random.default_rng(0)
    P, Q = rng.dirichlet(np.ones(5), size=20), rng.dirichlet(np.ones(5), size=20)
    js = js_divergence(P, Q)
    np.testing.assert_allclose(js, js_divergence(Q, P))
    assert (js >= 0).all() and (js <= LOG2).all()
    np.testing.assert_allclose(js_divergence(P, P), 0.0, atol=1e-15)
    assert js_divergence(np.eye(3)[0], np.eye(3)[1]) == pytest.approx(LOG2)
    # against the definition with explicit logs (no zeros here)
    M = (P + Q) / 2
    expected = 0.5 * (P * np.log(P / M)).sum(-1) + 0.5 * (Q * np.log(Q / M)).sum(-1)
    np.testing.assert_allclose(js, expected, rtol=1e-12)


def test_head_distances_find_duplicates_and_are_a_metric():
    weights = np.concatenate(
        [
            one_layer(shifted(-1), shifted(+1), uniform()),
            one_layer(shifted(-1), uniform(), shifted(0)),
        ]
    )  # (2, B, 3, S, S): L1H0 duplicates L0H0; L1H1 duplicates L0H2
    D = head_distances(weights)
    assert D.shape == (6, 6)
    np.testing.assert_allclose(D, D.T)
    assert np.diag(D).max() == 0.0
    assert D[0, 3] == 0.0 and D[2, 4] == 0.0
    assert D[0, 1] == pytest.approx(np.sqrt(LOG2))  # disjoint one-hot rows (except the ends)
    for a, b, c in itertools.permutations(range(6), 3):
        assert D[a, c] <= D[a, b] + D[b, c] + 1e-12
    assert cluster_heads(D, threshold=0.05) == [[0, 3], [2, 4], [1], [5]]
    assert head_names(2, 3)[3] == "L1H0"


def test_classical_mds_recovers_euclidean_points():
    X = np.random.default_rng(1).standard_normal((7, 2))
    D = np.sqrt(((X[:, None] - X[None]) ** 2).sum(-1))
    Y = classical_mds(D, dims=2)
    D_Y = np.sqrt(((Y[:, None] - Y[None]) ** 2).sum(-1))
    np.testing.assert_allclose(D_Y, D, atol=1e-10)
    with pytest.raises(ValueError, match="symmetric"):
        classical_mds(np.arange(6.0).reshape(2, 3))
